//! A runnable example of a receiving agency (`onedoor example-receiver`), used by the README walk-through
//! and by the integration tests as a real HTTP server: it accepts referral Bundles and notifications on any
//! path, answers with errors for its first N requests when asked to (to show retries), and counts each
//! idempotency key once. It logs resource types and keys, never content.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// What the receiver has seen.
#[derive(Debug, Default)]
pub struct Received {
    /// Every request: (path, idempotency key, resource types), in order.
    pub requests: Vec<(String, String, Vec<String>)>,
    /// Distinct idempotency keys accepted (answered 2xx).
    pub accepted_keys: Vec<String>,
    /// Bodies accepted, by key.
    pub bodies: Vec<Value>,
    failures_left: u32,
    delay_ms: u64,
}

/// A running receiver.
#[derive(Clone)]
pub struct Receiver {
    /// What it has seen.
    pub received: Arc<Mutex<Received>>,
}

impl Receiver {
    /// Answer the next `count` requests with 503 (the agency's server goes down).
    pub fn fail_next(&self, count: u32) {
        let mut seen = self.received.lock().unwrap_or_else(|p| p.into_inner());
        seen.failures_left = count;
    }

    /// Stop answering with errors (the agency's server is back).
    pub fn answer_again(&self) {
        let mut seen = self.received.lock().unwrap_or_else(|p| p.into_inner());
        seen.failures_left = 0;
    }

    /// Accepted bodies posted to paths starting with `prefix`.
    pub fn accepted_on(&self, prefix: &str) -> Vec<Value> {
        let seen = self.received.lock().unwrap_or_else(|p| p.into_inner());
        seen.requests
            .iter()
            .zip(
                seen.requests
                    .iter()
                    .map(|r| seen.accepted_keys.iter().position(|k| k == &r.1)),
            )
            .filter(|((path, _, _), index)| path.starts_with(prefix) && index.is_some())
            .filter_map(|(_, index)| index.and_then(|i| seen.bodies.get(i).cloned()))
            .collect::<Vec<_>>()
            .into_iter()
            .fold(Vec::new(), |mut unique, body| {
                if !unique.contains(&body) {
                    unique.push(body);
                }
                unique
            })
    }
}

/// Serve on `listener`; the first `fail_first` requests get HTTP 503; each answer waits `delay_ms` (a
/// slow agency).
pub async fn serve(listener: TcpListener, fail_first: u32, delay_ms: u64) -> Receiver {
    let received = Arc::new(Mutex::new(Received {
        failures_left: fail_first,
        delay_ms,
        ..Received::default()
    }));
    let receiver = Receiver {
        received: received.clone(),
    };
    let app = Router::new()
        .route("/received", get(list))
        .fallback(accept)
        .with_state(received);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    receiver
}

async fn list(State(received): State<Arc<Mutex<Received>>>) -> axum::Json<Value> {
    let seen = received.lock().unwrap_or_else(|p| p.into_inner());
    axum::Json(
        json!({"requests": seen.requests.len(), "accepted": seen.accepted_keys.len(), "keys": seen.accepted_keys}),
    )
}

async fn accept(
    State(received): State<Arc<Mutex<Received>>>,
    request: Request,
) -> (StatusCode, String) {
    let path = request.uri().path().to_owned();
    let key = request
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = axum::body::to_bytes(request.into_body(), 64 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let delay = received.lock().map(|r| r.delay_ms).unwrap_or(0);
    if delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
    let kinds: Vec<String> = value["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["resource"]["resourceType"].as_str().map(str::to_owned))
        .collect();
    let mut seen = received.lock().unwrap_or_else(|p| p.into_inner());
    seen.requests
        .push((path.clone(), key.clone(), kinds.clone()));
    if seen.failures_left > 0 {
        seen.failures_left -= 1;
        eprintln!("example receiver: {path}: answering 503 on purpose (key {key})");
        return (StatusCode::SERVICE_UNAVAILABLE, "try again".into());
    }
    if seen.accepted_keys.contains(&key) {
        eprintln!("example receiver: {path}: duplicate delivery of key {key}, already accepted");
        return (StatusCode::OK, "duplicate".into());
    }
    seen.accepted_keys.push(key.clone());
    seen.bodies.push(value);
    eprintln!(
        "example receiver: {path}: accepted {} ({}) key {key}",
        if kinds.is_empty() {
            "a request".to_owned()
        } else {
            format!("a Bundle of {}", kinds.len())
        },
        kinds.join(", ")
    );
    (StatusCode::OK, "accepted".into())
}
