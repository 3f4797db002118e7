//! What keeps one request from taking others down: a panic in a handler answers 500 with an
//! OperationOutcome (and is logged by its location only, never its message, which may quote received
//! data); every error answered by the framework itself (a body over the limit, a malformed query, an
//! unknown route, a body that stopped arriving) is an OperationOutcome too; and, for tests only, a route that
//! panics on demand: `POST /admin/test-panic`, which exists only when `ONEDOOR_TEST_PANIC_ROUTE=1` is set
//! when the server starts.

use super::error::outcome;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::any::Any;

/// The environment variable that adds the test-only panic route.
pub const TEST_PANIC_ENV: &str = "ONEDOOR_TEST_PANIC_ROUTE";

/// Whether the test-only panic hooks are armed (`ONEDOOR_TEST_PANIC_ROUTE=1`).
pub fn test_panics_armed() -> bool {
    std::env::var(TEST_PANIC_ENV).as_deref() == Ok("1")
}

/// What a record carries to make the job storing it panic in tests (only when armed).
pub const TEST_PANIC_JOB: &str = "onedoor-test-panic-job";
/// What a referral carries to make each of its deliveries panic in tests (only when armed).
pub const TEST_PANIC_DELIVERY: &str = "onedoor-test-panic-delivery";

/// Panic when armed and `value` carries `marker` (the job and outbox panic tests); free when not armed.
pub fn test_panic_if_marked(value: &serde_json::Value, marker: &str) {
    static ARMED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *ARMED.get_or_init(test_panics_armed) && value.to_string().contains(marker) {
        panic!("test panic requested for {value}");
    }
}

/// The answer to a request whose handler panicked (`CatchPanicLayer`).
pub fn panic_response(_payload: Box<dyn Any + Send + 'static>) -> Response {
    metrics::counter!("onedoor_http_panics_total").increment(1);
    tracing::error!("a request handler panicked; answered 500");
    fhir_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "exception",
        "internal error: the request could not be completed; nothing was stored for it",
    )
}

/// Log panics by location only: the message may quote received data (a name, a value).
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let thread = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_owned();
        tracing::error!(%location, %thread, "panic (its message is not logged: it may quote received data)");
    }));
}

/// `POST /admin/test-panic` (test-only, see the module doc): panics with the request body in the message,
/// so a test can check that the message never reaches the log.
pub async fn test_panic(body: axum::body::Bytes) -> Response {
    panic!("test panic: {}", String::from_utf8_lossy(&body));
}

/// Turn the framework's own plain-text errors (status ≥ 400 without a JSON body) into OperationOutcomes.
pub async fn outcome_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    if status.as_u16() < 400 || is_json {
        return response;
    }
    let (code, diagnostics) = framework_error(status);
    let mut rewritten = fhir_error(status, code, diagnostics);
    for name in [header::RETRY_AFTER, header::ALLOW, header::WWW_AUTHENTICATE] {
        if let Some(value) = response.headers().get(&name) {
            rewritten.headers_mut().insert(name, value.clone());
        }
    }
    rewritten
}

fn framework_error(status: StatusCode) -> (&'static str, &'static str) {
    match status.as_u16() {
        400 => (
            "invalid",
            "malformed request: a query or path value could not be read, or the body stopped arriving",
        ),
        404 => ("not-found", "no such endpoint"),
        405 => ("not-supported", "method not allowed on this endpoint"),
        408 => ("timeout", "the request body stopped arriving"),
        413 => (
            "too-costly",
            "body larger than the limit (server.max_json_bytes for JSON, server.max_upload_bytes for /ingest)",
        ),
        415 => ("not-supported", "unsupported media type"),
        _ => ("exception", "the request could not be completed"),
    }
}

fn fhir_error(status: StatusCode, code: &str, diagnostics: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/fhir+json")],
        Body::from(outcome("error", code, diagnostics).to_string()),
    )
        .into_response()
}
