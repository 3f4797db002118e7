//! The FHIR R4 REST subset under `/fhir`: `metadata`; ServiceRequest create/read/search; Task
//! read/search/update (the closed loop); Consent create/read/search/update (IHE PCF ITI-108 style: search
//! by patient and status); Patient read; transaction Bundle POST; `$validate`. A partner sees only the
//! referrals it sent or received and the Tasks it owns or requested; anything else is 404, so existence
//! does not leak.

use super::AppState;
use super::auth::Partner;
use super::error::{ApiError, outcome};
use crate::access::{self, Reader};
use crate::consent::model;
use crate::store::ResourceIndex;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

type Params = Query<HashMap<String, String>>;

fn fhir(status: StatusCode, body: Value) -> Response {
    (
        status,
        [("content-type", "application/fhir+json")],
        body.to_string(),
    )
        .into_response()
}

fn parse(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::Invalid(format!("body is not JSON: {e}")))
}

fn reader(state: &AppState, partner: &Partner) -> Reader {
    Reader::of(&state.gateway, &partner.name, &partner.org)
}

/// `GET /fhir/metadata`: what this server really supports.
pub async fn metadata(State(state): State<Arc<AppState>>) -> Response {
    let resource = |kind: &str, interactions: &[&str], search: &[&str]| {
        json!({"type": kind, "interaction": interactions.iter().map(|i| json!({"code": i})).collect::<Vec<_>>(),
               "searchParam": search.iter().map(|s| json!({"name": s, "type": if *s == "status" { "token" } else { "reference" }})).collect::<Vec<_>>()})
    };
    fhir(
        StatusCode::OK,
        json!({
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": "2026-11-28",
            "kind": "instance",
            "software": {"name": "onedoor", "version": env!("CARGO_PKG_VERSION")},
            "implementation": {"description": "onedoor referral gateway", "url": format!("{}/fhir", state.gateway.config.server.base_url)},
            "fhirVersion": "4.0.1",
            "format": ["application/fhir+json"],
            "rest": [{
                "mode": "server",
                "security": super::smart::capability_security(&state.gateway.config),
                "resource": [
                    resource("ServiceRequest", &["create", "read", "search-type"], &["patient", "status", "requester", "performer"]),
                    resource("Task", &["read", "update", "search-type"], &["focus", "patient", "status", "requester", "owner"]),
                    resource("Consent", &["create", "read", "update", "search-type"], &["patient", "status"]),
                    resource("Patient", &["read"], &[]),
                ],
                "interaction": [{"code": "transaction"}],
                "operation": [{"name": "validate", "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate"}]
            }]
        }),
    )
}

/// `POST /fhir/ServiceRequest`: a referral; the gateway builds its Task, routes it, asks consent, stores it,
/// then answers 201.
pub async fn create_service_request(
    State(state): State<Arc<AppState>>,
    partner: Partner,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let request = parse(&body)?;
    if request["resourceType"] != "ServiceRequest" {
        return Err(ApiError::Invalid("expected a ServiceRequest".into()));
    }
    let gateway = &state.gateway;
    let bundle = gateway.referral_from_request(request, &partner.org).await?;
    let accepted = gateway
        .accept(&format!("partner:{}", partner.name), &partner.org, bundle)
        .await?;
    let id = accepted.service_request.clone().unwrap_or_default();
    let stored = gateway
        .store
        .resource("ServiceRequest", &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let status = if accepted.created() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut response = fhir(status, stored.body);
    if let Ok(location) = format!(
        "{}/fhir/ServiceRequest/{id}/_history/{}",
        gateway.config.server.base_url, stored.version
    )
    .parse()
    {
        response.headers_mut().insert("location", location);
    }
    Ok(response)
}

/// `GET /fhir/{type}/{id}`: what the partner sent, or what the consent gate releases to it now (the
/// released, possibly redacted, version); anything else is 404, whether or not it exists.
pub async fn read(
    State(state): State<Arc<AppState>>,
    partner: Partner,
    Path((kind, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let body = access::read(&state.gateway, &reader(&state, &partner), &kind, &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(fhir(StatusCode::OK, body))
}

/// `GET /fhir/Patient/{id}`: as any read.
pub async fn read_patient(
    state: State<Arc<AppState>>,
    partner: Partner,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    read(state, partner, Path(("Patient".to_owned(), id))).await
}

/// `GET /fhir/{type}?...`: search what this partner may see.
pub async fn search(
    State(state): State<Arc<AppState>>,
    partner: Partner,
    Path(kind): Path<String>,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let allowed: &[&str] = match kind.as_str() {
        "ServiceRequest" => &[
            "patient",
            "status",
            "requester:identifier",
            "performer:identifier",
        ],
        "Task" => &[
            "focus",
            "patient",
            "status",
            "requester:identifier",
            "owner:identifier",
        ],
        "Consent" => &["patient", "status"],
        _ => return Err(ApiError::NotFound),
    };
    let mut filters = Vec::new();
    for (name, value) in &params {
        match name.as_str() {
            "_count" => {}
            n if allowed.contains(&n) => filters.push((column(n), value.clone())),
            other => {
                return Err(ApiError::Invalid(format!(
                    "unsupported search parameter '{other}' for {kind} (supported: {})",
                    allowed.join(", ")
                )));
            }
        }
    }
    let limit = super::params::count(params.get("_count").map(String::as_str))?;
    let store = &state.gateway.store;
    let reader = reader(&state, &partner);
    let mut found: Vec<(String, Value)> = Vec::new();
    for side in ["sender_org", "receiver_org"] {
        let mut scoped = filters.clone();
        scoped.push((side, partner.org.clone()));
        for resource in store.search(&kind, &scoped, limit).await? {
            if found.iter().any(|(id, _)| *id == resource.id) {
                continue;
            }
            let id = resource.id.clone();
            if let Some(body) = access::visible(&state.gateway, &reader, resource).await? {
                found.push((id, body));
            }
        }
    }
    let entries: Vec<Value> = found
        .into_iter()
        .map(|(id, body)| json!({"fullUrl": format!("{}/fhir/{kind}/{id}", state.gateway.config.server.base_url), "resource": body, "search": {"mode": "match"}}))
        .collect();
    Ok(fhir(
        StatusCode::OK,
        json!({"resourceType": "Bundle", "type": "searchset", "total": entries.len(), "entry": entries}),
    ))
}

/// The indexed column a search parameter reads. Organizations are searched by identifier
/// (`performer:identifier=urn:onedoor:agencies|county-food-bank`).
fn column(param: &str) -> &'static str {
    match param {
        "patient" => "patient",
        "status" => "status",
        "requester:identifier" => "sender_org",
        "performer:identifier" | "owner:identifier" => "receiver_org",
        _ => "focus",
    }
}

/// `GET /fhir/Task/{id}/_history`: every version of a Task, newest first (status changes by the receiver,
/// revisions of the referral by the referrer), for the partners that see the Task.
pub async fn task_history(
    State(state): State<Arc<AppState>>,
    partner: Partner,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let store = &state.gateway.store;
    access::read(&state.gateway, &reader(&state, &partner), "Task", &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let base = &state.gateway.config.server.base_url;
    let entries: Vec<Value> = store
        .history("Task", &id)
        .await?
        .into_iter()
        .map(|body| {
            let version = body.pointer("/meta/versionId").and_then(Value::as_str).unwrap_or_default().to_owned();
            json!({"fullUrl": format!("{base}/fhir/Task/{id}/_history/{version}"), "resource": body})
        })
        .collect();
    Ok(fhir(
        StatusCode::OK,
        json!({"resourceType": "Bundle", "type": "history", "total": entries.len(), "entry": entries}),
    ))
}

/// `PUT /fhir/Task/{id}`: the receiver progresses the referral; the requester may cancel it.
pub async fn update_task(
    State(state): State<Arc<AppState>>,
    partner: Partner,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let task = parse(&body)?;
    if task["resourceType"] != "Task" || task["id"].as_str().is_some_and(|i| i != id) {
        return Err(ApiError::Invalid(format!("expected Task/{id}")));
    }
    let updated = state
        .gateway
        .update_task(&reader(&state, &partner), &id, task)
        .await?;
    Ok(fhir(StatusCode::OK, updated))
}

/// `POST /fhir/Consent` and `PUT /fhir/Consent/{id}`: record a consent (or its revocation). It takes effect
/// at once: queued deliveries are decided again when they are sent.
pub async fn put_consent(
    State(state): State<Arc<AppState>>,
    partner: Partner,
    id: Option<Path<String>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let mut consent = parse(&body)?;
    if consent["resourceType"] != "Consent" {
        return Err(ApiError::Invalid("expected a Consent".into()));
    }
    let gateway = &state.gateway;
    let reader = reader(&state, &partner);
    let creating = id.is_none();
    let id = match id {
        Some(Path(id)) => {
            let existing = gateway.store.resource("Consent", &id).await?;
            if existing.as_ref().is_some_and(|r| !reader.sent(r)) {
                return Err(ApiError::NotFound);
            }
            id
        }
        None => uuid::Uuid::new_v4().to_string(),
    };
    let custodian = model::custodian(&consent).filter(|c| reader.custodian_of.contains(c));
    let Some(custodian) = custodian else {
        return Err(ApiError::NotAllowed(format!(
            "Consent.organization must name the custodian of the record, and that must be {} or an organization it is custodian for ([partners.{}] custodian_for)",
            partner.org, partner.name
        )));
    };
    crate::checked::set(&mut consent, "Consent", "id", json!(id))
        .map_err(|e| ApiError::Invalid(e.to_string()))?;
    gateway.check(&consent)?;
    let parsed = model::parse(&consent).map_err(|errors| ApiError::Invalid(errors.join("; ")))?;
    if !access::holds_person(gateway, &reader, &parsed.patient).await? {
        return Err(ApiError::NotAllowed(format!(
            "{} holds no record of the person this Consent is about: only the custodian of a person's record records their consent",
            partner.org
        )));
    }
    let index = ResourceIndex {
        patient: parsed
            .patient
            .reference
            .clone()
            .or(parsed.patient.identifier.clone()),
        sender_org: Some(custodian),
        receiver_org: None,
        status: consent["status"].as_str().map(str::to_owned),
        focus: None,
    };
    let _ = parsed;
    gateway
        .store
        .put_consent(&consent, &index, expected_version(&headers)?)
        .await?;
    tracing::info!(consent = %id, "consent recorded");
    let stored = gateway
        .store
        .resource("Consent", &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(fhir(
        if creating {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        stored.body,
    ))
}

/// The version an update is based on, from `If-Match` (`W/"3"` or `"3"`), FHIR's version-aware update.
fn expected_version(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get("if-match") else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    let inner = text.trim_start_matches("W/").trim_matches('"');
    inner
        .parse()
        .map(Some)
        .map_err(|_| ApiError::Invalid(format!("If-Match '{text}': expected a version as W/\"N\"")))
}

/// `POST /fhir`: a transaction Bundle (a whole referral).
pub async fn transaction(
    State(state): State<Arc<AppState>>,
    partner: Partner,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let bundle = parse(&body)?;
    if bundle["resourceType"] != "Bundle" || bundle["type"] != "transaction" {
        return Err(ApiError::Invalid("expected a transaction Bundle".into()));
    }
    let accepted = state
        .gateway
        .accept(
            &format!("partner:{}", partner.name),
            &partner.org,
            bundle.clone(),
        )
        .await?;
    let status = if accepted.created() {
        "201 Created"
    } else {
        "200 OK"
    };
    let entries: Vec<Value> = crate::consent::subject::resources(&bundle)
        .iter()
        .map(|r| json!({"response": {"status": status, "location": format!("{}/{}", r["resourceType"].as_str().unwrap_or_default(), r["id"].as_str().unwrap_or_default())}}))
        .collect();
    Ok(fhir(
        StatusCode::OK,
        json!({"resourceType": "Bundle", "type": "transaction-response", "entry": entries}),
    ))
}

/// `POST /fhir/$validate` and `POST /fhir/{type}/$validate`: an OperationOutcome listing every issue.
pub async fn validate(
    State(state): State<Arc<AppState>>,
    _headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let resource = parse(&body)?;
    let resource = if resource["resourceType"] == "Parameters" {
        resource["parameter"]
            .as_array()
            .and_then(|p| p.iter().find(|x| x["name"] == "resource"))
            .map(|p| p["resource"].clone())
            .unwrap_or_default()
    } else {
        resource
    };
    let issues = crate::validation::Validator::new().validate(&resource);
    let _ = &state;
    if issues.is_empty() {
        return Ok(fhir(
            StatusCode::OK,
            outcome(
                "information",
                "informational",
                "All OK: valid FHIR R4 (schema, model, SDOHCC rules)",
            ),
        ));
    }
    let list: Vec<Value> = issues.iter().map(|i| json!({"severity": "error", "code": "invalid", "diagnostics": i.message, "expression": [i.path]})).collect();
    Ok(fhir(
        StatusCode::OK,
        json!({"resourceType": "OperationOutcome", "issue": list}),
    ))
}

/// Unknown FHIR paths.
pub async fn not_supported() -> ApiError {
    ApiError::NotFound
}

/// JSON helper for other modules.
pub fn json_response(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}
