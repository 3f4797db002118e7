//! The HTTP API (axum): the FHIR R4 REST subset (`fhir`, its search in `search`, Subscriptions in
//! `subscriptions`), ingest and jobs
//! (`ingest`), the admin API (`admin`), operations (`ops`), partner authentication (`auth`) and
//! OperationOutcome errors (`error`).

pub mod admin;
pub mod auth;
pub mod error;
pub mod fhir;
pub mod guard;
pub mod ingest;
pub mod jwt_crypto;
pub mod listener;
pub mod ops;
pub mod params;
pub mod search;
pub mod smart;
pub mod subscriptions;
pub mod tls;

use crate::gateway::Gateway;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{MethodRouter, get, post, put};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::RequestBodyTimeoutLayer;

/// What every handler sees.
pub struct AppState {
    /// The gateway.
    pub gateway: Arc<Gateway>,
    /// The metrics renderer.
    pub metrics: PrometheusHandle,
    /// HMAC of `ONEDOOR_ADMIN_TOKEN` under the server secret, when set.
    pub admin_token_hash: Option<String>,
    /// The server secret keys, tokens and the admin token are hashed under.
    pub credentials: auth::Credentials,
    /// The client Subscription handshakes go through.
    pub channels: crate::delivery::channel::Channels,
}

/// The process-wide Prometheus recorder (installed once).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Every route with its handlers: the router and the list of paths are built from this one place, so a
/// route cannot exist without being listed (the authorization matrix test covers [`paths`]).
fn routes(server: &crate::config::Server) -> Routes {
    Routes::default()
        .add("/fhir/metadata", get(fhir::metadata))
        .add("/auth/token", post(smart::token))
        .add(
            "/.well-known/smart-configuration",
            get(smart::configuration),
        )
        .add(
            "/fhir/.well-known/smart-configuration",
            get(smart::configuration),
        )
        .add("/fhir", post(fhir::transaction))
        .add("/fhir/$validate", post(fhir::validate))
        .add(
            "/fhir/ServiceRequest",
            post(fhir::create_service_request)
                .get(|s, p, h, q| search::search(s, p, Path("ServiceRequest".to_owned()), h, q)),
        )
        .add(
            "/fhir/Consent",
            post(|s, p, h, b| fhir::put_consent(s, p, None, h, b))
                .get(|s, p, h, q| search::search(s, p, Path("Consent".to_owned()), h, q)),
        )
        .add(
            "/fhir/Consent/{id}",
            put(|s, p, id, h, b| fhir::put_consent(s, p, Some(id), h, b)).get(
                |s, p, Path(id): Path<String>| fhir::read(s, p, Path(("Consent".to_owned(), id))),
            ),
        )
        .add(
            "/fhir/Task/{id}",
            put(fhir::update_task).get(|s, p, Path(id): Path<String>| {
                fhir::read(s, p, Path(("Task".to_owned(), id)))
            }),
        )
        .add("/fhir/Task/{id}/_history", get(fhir::task_history))
        .add(
            "/fhir/Subscription",
            post(subscriptions::create).get(subscriptions::search),
        )
        .add(
            "/fhir/Subscription/{id}",
            get(subscriptions::read).delete(subscriptions::delete),
        )
        .add(
            "/fhir/Subscription/{id}/_history/{vid}",
            get(subscriptions::vread),
        )
        .add(
            "/fhir/Subscription/{id}/$status",
            get(subscriptions::status),
        )
        .add("/fhir/Patient/{id}", get(fhir::read_patient))
        .add("/fhir/{kind}", get(search::search))
        .add("/fhir/{kind}/{id}", get(fhir::read))
        .add("/fhir/{kind}/{id}/_history/{vid}", get(fhir::vread))
        .add("/fhir/{kind}/$validate", post(fhir::validate))
        .add(
            "/ingest/{source}",
            post(ingest::ingest).layer(DefaultBodyLimit::max(server.max_upload_bytes)),
        )
        .add("/jobs/{id}", get(ingest::job))
        .add("/admin/messages", get(admin::messages))
        .add("/admin/dead-letters", get(admin::dead_letters))
        .add("/admin/messages/{id}/replay", post(admin::replay))
        .add(
            "/admin/dead-letters/{destination}/replay",
            post(admin::replay_destination),
        )
        .add("/admin/disclosures", get(admin::disclosures))
        .add("/healthz", get(ops::healthz))
        .add("/readyz", get(ops::readyz))
        .add("/metrics", get(ops::metrics))
        .add("/openapi.json", get(ops::openapi))
}

/// The router under construction, and the paths added to it.
#[derive(Default)]
struct Routes {
    router: Router<Arc<AppState>>,
    paths: Vec<&'static str>,
}

impl Routes {
    fn add(mut self, path: &'static str, handlers: MethodRouter<Arc<AppState>>) -> Self {
        self.paths.push(path);
        self.router = self.router.route(path, handlers);
        self
    }
}

/// Every path the API serves (the test-only panic route aside).
pub fn paths() -> Vec<&'static str> {
    routes(&crate::config::Server::default()).paths
}

/// The router.
pub fn router(state: Arc<AppState>) -> Router {
    let server = state.gateway.config.server.clone();
    let router = routes(&server).router;
    router
        .merge(test_routes())
        // Limits and panic safety around every route (issue 10): JSON bodies up to `max_json_bytes`
        // (`/ingest` streams its upload under `max_upload_bytes` itself, not through this limit); a body
        // that sends nothing for `body_read_timeout_ms` is abandoned; the framework's own errors are
        // OperationOutcomes; a panic answers 500.
        .layer(DefaultBodyLimit::max(server.max_json_bytes))
        .layer(RequestBodyTimeoutLayer::new(Duration::from_millis(
            server.body_read_timeout_ms.max(1),
        )))
        .layer(middleware::from_fn(guard::outcome_errors))
        .layer(CatchPanicLayer::custom(guard::panic_response))
        .layer(middleware::from_fn(timing))
        .with_state(state)
}

/// The test-only panic route, present only when `ONEDOOR_TEST_PANIC_ROUTE=1` (see [`guard`]).
fn test_routes() -> Router<Arc<AppState>> {
    let routes = Router::new();
    if guard::test_panics_armed() {
        tracing::warn!(
            "ONEDOOR_TEST_PANIC_ROUTE=1: POST /admin/test-panic panics on purpose (tests only)"
        );
        return routes.route("/admin/test-panic", post(guard::test_panic));
    }
    routes
}

async fn timing(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = request.method().to_string();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!("onedoor_http_request_seconds", "route" => route.clone(), "method" => method.clone(), "status" => status).record(started.elapsed().as_secs_f64());
    tracing::debug!(%route, %method, status = response.status().as_u16(), "request");
    response
}
