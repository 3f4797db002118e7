//! The reference for the server benchmark: an axum handler that does nothing (answers 201 with `{}`), on the
//! same runtime settings as `onedoor serve`, so the ratio shows what durable acceptance costs.

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;

#[tokio::main]
async fn main() {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8099".to_owned());
    let app = Router::new().route(
        "/fhir/ServiceRequest",
        post(|| async { (StatusCode::CREATED, "{}") }),
    );
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .expect("listen");
    println!(
        "noop listening on http://{}",
        listener.local_addr().expect("address")
    );
    axum::serve(listener, app).await.expect("serve");
}
