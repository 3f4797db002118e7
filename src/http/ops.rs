//! Operations: `/healthz` (the process answers), `/readyz` (the store answers), Prometheus `/metrics`, and
//! the OpenAPI document of the non-FHIR endpoints.

use super::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::Arc;

/// `GET /healthz`.
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`.
pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if state.gateway.store.ready().await {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "store unreachable").into_response()
    }
}

/// `GET /metrics`.
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    if let Ok(counts) = state.gateway.store.outbox_counts().await {
        for (status, count) in counts {
            metrics::gauge!("onedoor_outbox", "status" => status).set(count as f64);
        }
    }
    (
        [("content-type", "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// `GET /openapi.json`.
pub async fn openapi() -> Json<Value> {
    let op = |summary: &str, auth: &str| json!({"summary": summary, "security": if auth.is_empty() { json!([]) } else { json!([{auth: []}]) }, "responses": {"200": {"description": "OK"}}});
    Json(json!({
        "openapi": "3.0.3",
        "info": {"title": "onedoor gateway (non-FHIR endpoints)", "version": env!("CARGO_PKG_VERSION"),
                 "description": "The FHIR R4 REST subset is described by GET /fhir/metadata."},
        "components": {"securitySchemes": {
            "partnerKey": {"type": "http", "scheme": "bearer", "description": "A partner API key (onedoor partners add)"},
            "adminToken": {"type": "http", "scheme": "bearer", "description": "ONEDOOR_ADMIN_TOKEN"}}},
        "paths": {
            "/ingest/{source}": {"post": {
                "summary": "Upload an export for a configured source; answers 202 with a job id",
                "security": [{"partnerKey": []}],
                "parameters": [{"name": "source", "in": "path", "required": true, "schema": {"type": "string"}},
                               {"name": "filename", "in": "query", "required": false, "schema": {"type": "string"}}],
                "requestBody": {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
                "responses": {"202": {"description": "Accepted; see /jobs/{id}"}, "401": {"description": "No or unknown API key"}, "404": {"description": "No such source"}}}},
            "/jobs/{id}": {"get": op("Progress and per-record errors of an ingest job", "partnerKey")},
            "/admin/messages": {"get": op("Deliveries, filtered by status (pending, delivered, dead, withheld)", "adminToken")},
            "/admin/dead-letters": {"get": op("Dead-lettered deliveries", "adminToken")},
            "/admin/messages/{id}/replay": {"post": op("Queue the message's undelivered deliveries again (consent is decided again)", "adminToken")},
            "/admin/disclosures": {"get": op("Who received what about a person (patient=ID)", "adminToken")},
            "/healthz": {"get": op("Liveness", "")},
            "/readyz": {"get": op("Readiness: the store answers", "")},
            "/metrics": {"get": op("Prometheus metrics", "")}
        }
    }))
}
