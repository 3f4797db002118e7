//! The admin API (token in `ONEDOOR_ADMIN_TOKEN`): messages and their deliveries, dead letters, replay
//! (which re-runs the consent decision when the delivery is made), and the disclosure log.

use super::AppState;
use super::auth::Admin;
use super::error::ApiError;
use crate::store::DeliveryStatus;
use axum::Json;
use axum::extract::{Path, Query, State};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// `GET /admin/messages?status=pending|delivered|dead|withheld`.
pub async fn messages(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let status = params
        .get("status")
        .map(|s| s.parse::<DeliveryStatus>())
        .transpose()
        .map_err(|_| {
            ApiError::Invalid("status: expected pending, delivered, withheld or dead".into())
        })?;
    let rows = state.gateway.store.outbox(status, 500).await?;
    Ok(Json(json!({"deliveries": rows})))
}

/// `GET /admin/dead-letters`.
pub async fn dead_letters(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({"deliveries": state.gateway.store.outbox(Some(DeliveryStatus::Dead), 500).await?}),
    ))
}

/// `POST /admin/dead-letters/{destination}/replay`: every dead letter of a destination is queued again.
pub async fn replay_destination(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
    Path(destination): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let queued = state.gateway.store.requeue_dead(&destination).await?;
    tracing::info!(%destination, queued, "dead letters replayed");
    Ok(Json(json!({"destination": destination, "queued": queued})))
}

/// `POST /admin/messages/{id}/replay`: every undelivered delivery of the message (referrals and
/// notifications) is queued again.
pub async fn replay(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let store = &state.gateway.store;
    store.message(&id).await?.ok_or(ApiError::NotFound)?;
    let queued = store.replay(&id).await?;
    tracing::info!(message = %id, queued, "replay requested");
    Ok(Json(
        json!({"message": id, "queued": queued, "note": "the consent decision is made again when each delivery is sent"}),
    ))
}

/// `GET /admin/disclosures?patient=ID`.
pub async fn disclosures(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let patient = params
        .get("patient")
        .ok_or_else(|| ApiError::Invalid("patient is required".into()))?;
    let found = state.gateway.store.disclosures(patient).await?;
    Ok(Json(json!({"patient": patient, "disclosures": found})))
}
