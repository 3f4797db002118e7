//! FHIR Subscriptions over REST (R5 Subscriptions Backport IG for R4): `POST /fhir/Subscription` creates
//! one on the topic "a referral Task's status changed" after a handshake its endpoint must accept (else
//! 422 saying what the endpoint answered, and nothing is kept); `GET /fhir/Subscription/{id}`,
//! `GET /fhir/Subscription/{id}/_history/{vid}` (the current version), `GET /fhir/Subscription/{id}/$status`, `GET /fhir/Subscription?status=` and `DELETE
//! /fhir/Subscription/{id}` serve the partners of the organization that created it (anyone else: 404).
//! Event notifications are queued by the gateway with each Task change (`gateway::notifications`) and
//! delivered, with the channel's headers, by the outbox (`delivery::channel`).

use super::AppState;
use super::auth::Partner;
use super::error::{ApiError, outcome};
use super::fhir::{Version, fhir, location, parse_resource, versioned};
use crate::canonical::subscription::{self, Notification, NotificationType};
use crate::store::{StoredSubscription, SubscriptionStatus};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use std::sync::Arc;

/// `POST /fhir/Subscription`: check what is asked, shake hands with the endpoint, then keep it active and
/// answer 201 with its `Location`.
pub async fn create(
    State(state): State<Arc<AppState>>,
    partner: Partner,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let asked = parse_resource(&body, "Subscription")?;
    let channel = subscription::parse(&asked).map_err(|e| ApiError::Invalid(e.to_string()))?;
    let id = uuid::Uuid::new_v4().to_string();
    let base_url = &state.gateway.config.server.base_url;
    state
        .channels
        .handshake(base_url, &id, &channel.endpoint, &channel.headers)
        .await
        .map_err(|reason| {
            ApiError::Invalid(format!(
                "Subscription.channel.endpoint did not accept the handshake ({reason}); the Subscription was not created"
            ))
        })?;
    let now = crate::store::now_ms();
    let stored = StoredSubscription {
        id: id.clone(),
        partner: partner.name.clone(),
        org: partner.org.clone(),
        version: 1,
        status: SubscriptionStatus::Active,
        endpoint: channel.endpoint,
        headers: channel.headers,
        heartbeat_secs: i64::try_from(channel.heartbeat_secs).unwrap_or(0),
        statuses: channel.statuses,
        events: 0,
        last_sent_ms: now,
        body: subscription::resource(&asked, &id, SubscriptionStatus::Active.as_str()),
    };
    state.gateway.store.put_subscription(&stored).await?;
    tracing::info!(subscription = %id, partner = %partner.name, "subscription created");
    let (body, version) = served(&stored);
    let mut response = versioned(StatusCode::CREATED, body, &version);
    if let Ok(location) = location(&state, "Subscription", &id, version.id).parse() {
        response.headers_mut().insert("location", location);
    }
    Ok(response)
}

/// The Subscription as served: its body with `meta.versionId`, and its version for the headers.
fn served(stored: &StoredSubscription) -> (Value, Version) {
    let mut body = stored.body.clone();
    if let Some(meta) = body.get_mut("meta").and_then(Value::as_object_mut) {
        meta.insert("versionId".into(), json!(stored.version.to_string()));
    }
    let version = Version::from_body(stored.version, &body);
    (body, version)
}

/// A Subscription of the partner's organization; 404 for anything else, whether or not it exists.
async fn own(
    state: &AppState,
    partner: &Partner,
    id: &str,
) -> Result<StoredSubscription, ApiError> {
    state
        .gateway
        .store
        .subscription(id)
        .await?
        .filter(|s| s.org == partner.org)
        .ok_or(ApiError::NotFound)
}

/// `GET /fhir/Subscription/{id}`.
pub async fn read(
    State(state): State<Arc<AppState>>,
    partner: Partner,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let found = own(&state, &partner, &id).await?;
    let (body, version) = served(&found);
    Ok(versioned(StatusCode::OK, body, &version))
}

/// `GET /fhir/Subscription/{id}/_history/{vid}`: the current version only (a status change makes a new
/// one; older versions are not kept); any other version is 404.
pub async fn vread(
    State(state): State<Arc<AppState>>,
    partner: Partner,
    Path((id, vid)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let found = own(&state, &partner, &id).await?;
    if vid != found.version.to_string() {
        return Err(ApiError::NotFound);
    }
    let (body, version) = served(&found);
    Ok(versioned(StatusCode::OK, body, &version))
}

/// `DELETE /fhir/Subscription/{id}`: no more notifications (those queued are dropped as ended). A
/// `notify_url` shortcut comes back at the next start while the configuration names it.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    partner: Partner,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    own(&state, &partner, &id).await?;
    state.gateway.store.delete_subscription(&id).await?;
    tracing::info!(subscription = %id, partner = %partner.name, "subscription deleted");
    Ok(fhir(
        StatusCode::OK,
        outcome(
            "information",
            "deleted",
            &format!("Subscription/{id} deleted"),
        ),
    ))
}

/// `GET /fhir/Subscription/{id}/$status`: the SubscriptionStatus (`query-status`).
pub async fn status(
    State(state): State<Arc<AppState>>,
    partner: Partner,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let found = own(&state, &partner, &id).await?;
    let bundle = subscription::notification_bundle(&Notification {
        base_url: &state.gateway.config.server.base_url,
        subscription: &found.id,
        status: found.status.as_str(),
        kind: NotificationType::QueryStatus,
        events: found.events,
        focus: None,
    });
    let parameters = bundle
        .pointer("/entry/0/resource")
        .cloned()
        .unwrap_or(Value::Null);
    Ok(fhir(
        StatusCode::OK,
        json!({"resourceType": "Bundle", "type": "searchset", "total": 1,
               "entry": [{"resource": parameters, "search": {"mode": "match"}}]}),
    ))
}

/// `GET /fhir/Subscription`: the Subscriptions of the partner's organization, optionally `status=`; any
/// other parameter is 400.
pub async fn search(
    State(state): State<Arc<AppState>>,
    partner: Partner,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let mut wanted: Option<Vec<String>> = None;
    for (name, value) in &params {
        if name != "status" {
            return Err(ApiError::BadRequest(format!(
                "search parameter '{}' is not supported for Subscription: only 'status'",
                name.chars().take(60).collect::<String>()
            )));
        }
        wanted
            .get_or_insert_with(Vec::new)
            .extend(value.split(',').map(str::to_owned));
    }
    let base = &state.gateway.config.server.base_url;
    let entries: Vec<Value> = state
        .gateway
        .store
        .subscriptions_in(&partner.org)
        .await?
        .iter()
        .filter(|s| {
            wanted
                .as_ref()
                .is_none_or(|w| w.iter().any(|v| v == s.status.as_str()))
        })
        .map(|s| {
            json!({"fullUrl": format!("{base}/fhir/Subscription/{}", s.id),
                   "resource": served(s).0, "search": {"mode": "match"}})
        })
        .collect();
    Ok(fhir(
        StatusCode::OK,
        json!({"resourceType": "Bundle", "type": "searchset", "total": entries.len(), "entry": entries}),
    ))
}
