//! The FHIR R4 REST subset under `/fhir`: `metadata`; ServiceRequest create/read/search; Task
//! read/search/update (the closed loop); Consent create/read/search/update (IHE PCF ITI-108 style: search
//! by patient and status); Patient read; `vread` of every type read; transaction Bundle POST; `$validate`
//! (with a `profile`). A partner sees only the referrals it sent or received and the Tasks it owns or
//! requested; anything else is 404, so existence does not leak.
//!
//! As FHIR clients expect: `ETag: W/"<versionId>"` and `Last-Modified` on reads, vreads, creates and
//! updates; `Location` (`.../_history/<versionId>`) on every create; `If-Match` on updates (412 on a stale
//! version); 400 for a body that is not JSON, 422 for JSON that is not valid FHIR (each issue with its
//! `expression`). Search, with its paging and parameters, is in `search`.

use super::AppState;
use super::auth::Partner;
use super::error::{ApiError, outcome};
use crate::access::{self, Reader};
use crate::consent::model;
use crate::members::Members;
use crate::store::{ResourceIndex, StoredResource};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::Arc;

type Params = Query<Vec<(String, String)>>;

pub(super) fn fhir(status: StatusCode, body: Value) -> Response {
    (
        status,
        [("content-type", "application/fhir+json")],
        crate::json_text::to_string(&body),
    )
        .into_response()
}

/// A version of a stored resource as the HTTP headers tell it.
#[derive(Debug, Clone)]
pub(super) struct Version {
    /// `meta.versionId`.
    pub(super) id: i64,
    /// `meta.lastUpdated` of that version.
    pub(super) updated: Option<String>,
}

impl Version {
    fn of(stored: &StoredResource) -> Self {
        Self::from_body(stored.version, &stored.body)
    }

    pub(super) fn from_body(id: i64, body: &Value) -> Self {
        let updated = body
            .at(&["meta", "lastUpdated"])
            .and_then(Value::as_str)
            .map(str::to_owned);
        Self { id, updated }
    }
}

/// A FHIR response with `ETag` and `Last-Modified` of `version`.
pub(super) fn versioned(status: StatusCode, body: Value, version: &Version) -> Response {
    let mut response = fhir(status, body);
    let headers = response.headers_mut();
    if let Ok(etag) = format!("W/\"{}\"", version.id).parse() {
        headers.insert("etag", etag);
    }
    let modified = version
        .updated
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%a, %d %b %Y %H:%M:%S GMT")
                .to_string()
        });
    if let Some(Ok(modified)) = modified.map(|m| m.parse()) {
        headers.insert("last-modified", modified);
    }
    response
}

/// A created resource's answer: `Location` of its version besides `ETag` and `Last-Modified`.
fn created(state: &AppState, status: StatusCode, stored: StoredResource) -> Response {
    let version = Version::of(&stored);
    let location = location(state, &stored.resource_type, &stored.id, version.id);
    let mut response = versioned(status, stored.body, &version);
    if let Ok(location) = location.parse() {
        response.headers_mut().insert("location", location);
    }
    response
}

/// The absolute URL of one version of a resource.
pub(super) fn location(state: &AppState, kind: &str, id: &str, version: i64) -> String {
    format!(
        "{}/fhir/{kind}/{id}/_history/{version}",
        state.gateway.config.server.base_url
    )
}

/// The body as JSON: 400 when it is not JSON or not a JSON object.
fn parse(body: &[u8]) -> Result<Value, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("body is not JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::BadRequest(
            "body is not a FHIR resource: expected a JSON object".into(),
        ));
    }
    Ok(value)
}

/// The body as a resource of `kind` that is valid FHIR: 400 when it is not JSON or another type, 422
/// with every issue (and its `expression`) when it breaks the schema, an invariant or a claimed profile.
pub(super) fn parse_resource(body: &[u8], kind: &str) -> Result<Value, ApiError> {
    let value = parse_of_type(body, kind)?;
    let issues = crate::validation::Validator::new().validate(&value);
    if !issues.is_empty() {
        return Err(ApiError::Unprocessable(issues));
    }
    Ok(value)
}

/// The body as JSON of resource type `kind`, not yet validated: 400 when it is not.
fn parse_of_type(body: &[u8], kind: &str) -> Result<Value, ApiError> {
    let value = parse(body)?;
    let found = value.get("resourceType").and_then(Value::as_str);
    if found != Some(kind) {
        return Err(ApiError::BadRequest(format!(
            "expected a {kind}, got resourceType {}",
            found.map_or("(none)".to_owned(), |f| format!("'{f}'"))
        )));
    }
    Ok(value)
}

pub(super) fn reader(state: &AppState, partner: &Partner) -> Reader {
    Reader::of(&state.gateway, &partner.name, &partner.org)
}

/// One `rest.resource` of the CapabilityStatement.
fn capability(kind: &str, interactions: &[&str], versioning: &str) -> Value {
    let search: Vec<Value> = super::search::search_params(kind)
        .unwrap_or_default()
        .iter()
        .map(|p| json!({"name": p.name, "type": p.kind, "documentation": p.documentation}))
        .collect();
    let mut resource = json!({
        "type": kind,
        "interaction": interactions.iter().map(|i| json!({"code": i})).collect::<Vec<_>>(),
        "versioning": versioning,
        "readHistory": true,
        "updateCreate": false,
    });
    if !search.is_empty() {
        resource["searchParam"] = Value::Array(search);
    }
    resource
}

/// The Subscription resource of the CapabilityStatement: the Backport IG profile and the one topic.
fn subscription_capability() -> Value {
    use crate::canonical::subscription::{
        BACKPORT_SUBSCRIPTION, TASK_STATUS_TOPIC, TOPIC_CANONICAL_EXTENSION,
    };
    let mut resource = capability(
        "Subscription",
        &["create", "read", "vread", "delete", "search-type"],
        "versioned",
    );
    if let Some(object) = resource.as_object_mut() {
        object.insert(
            "extension".into(),
            json!([{"url": TOPIC_CANONICAL_EXTENSION, "valueCanonical": TASK_STATUS_TOPIC}]),
        );
        object.insert("supportedProfile".into(), json!([BACKPORT_SUBSCRIPTION]));
        object.insert("searchParam".into(), json!([{"name": "status", "type": "token", "documentation": "The Subscription's status (requested, active, error, off)"}]));
        object.insert("operation".into(), json!([{"name": "status", "definition": "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-status"}]));
    }
    resource
}

/// `GET /fhir/metadata`: what this server really supports.
pub async fn metadata(State(state): State<Arc<AppState>>) -> Response {
    fhir(StatusCode::OK, capability_statement(&state))
}

/// The CapabilityStatement: every interaction and search parameter served, nothing else.
pub fn capability_statement(state: &AppState) -> Value {
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-12-02",
        "kind": "instance",
        "software": {"name": "onedoor", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "onedoor referral gateway", "url": format!("{}/fhir", state.gateway.config.server.base_url)},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json"],
        "rest": [{
            "mode": "server",
            "documentation": "Searchsets are paged: _count (default 50, at most 500) and _offset, with self, next and previous links and a total of every match. A search parameter not listed here is refused with 400 (handling=strict) unless the request sends Prefer: handling=lenient. Updates take If-Match: W/\"<versionId>\" (412 when stale).",
            "security": super::smart::capability_security(&state.gateway.config),
            "resource": [
                capability("ServiceRequest", &["create", "read", "vread", "search-type"], "versioned"),
                capability("Task", &["read", "vread", "update", "history-instance", "search-type"], "versioned-update"),
                capability("Consent", &["create", "read", "vread", "update", "search-type"], "versioned-update"),
                capability("Patient", &["read", "vread"], "versioned"),
                subscription_capability(),
            ],
            "interaction": [{"code": "transaction"}],
            "operation": [
                {"name": "validate", "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate"},
                {"name": "status", "definition": "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-status"}
            ]
        }]
    })
}

/// `POST /fhir/ServiceRequest`: a referral; the gateway builds its Task, routes it, asks consent, stores it,
/// then answers 201 with its `Location`.
pub async fn create_service_request(
    State(state): State<Arc<AppState>>,
    partner: Partner,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    // Validated once, as posted, by the gateway that builds the referral around it.
    let request = parse_of_type(&body, "ServiceRequest")?;
    let gateway = &state.gateway;
    let built = gateway.referral_from_request(request, &partner.org).await?;
    let accepted = gateway
        .accept_built(&format!("partner:{}", partner.name), &partner.org, built)
        .await?;
    let status = if accepted.created() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    // As this acceptance left it stored: no read after the commit (which could meet a later version).
    let stored = match accepted.service_request_stored {
        Some(stored) => stored.resource()?,
        None => {
            let id = accepted.service_request.unwrap_or_default();
            (gateway.store.resource("ServiceRequest", &id).await?).ok_or(ApiError::NotFound)?
        }
    };
    Ok(created(&state, status, stored))
}

/// A resource as the partner may see it now (through [`access::visible`]) and its current version; 404
/// when it does not exist or is not visible.
async fn visible_now(
    state: &AppState,
    partner: &Partner,
    kind: &str,
    id: &str,
) -> Result<(Value, StoredVersion), ApiError> {
    let stored = state
        .gateway
        .store
        .resource(kind, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let reader = reader(state, partner);
    let version = StoredVersion {
        version: Version::of(&stored),
        as_stored: reader.sent(&stored) || stored.resource_type == "Task",
    };
    let body = access::visible(&state.gateway, &reader, stored)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok((body, version))
}

/// The current version of a resource read, and whether the reader sees it as stored (what it sent, or a
/// Task) rather than as the consent gate releases it now.
struct StoredVersion {
    version: Version,
    as_stored: bool,
}

/// `GET /fhir/{type}/{id}`: what the partner sent, or what the consent gate releases to it now (the
/// released, possibly redacted, version); anything else is 404, whether or not it exists.
pub async fn read(
    State(state): State<Arc<AppState>>,
    partner: Partner,
    Path((kind, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (body, current) = visible_now(&state, &partner, &kind, &id).await?;
    Ok(versioned(StatusCode::OK, body, &current.version))
}

/// `GET /fhir/{type}/{id}/_history/{vid}`: one version, through the same access check as a read (the
/// resource must be visible to the partner now). What a partner sent, and a Task, are served at every
/// version; a resource the partner reads through the consent gate only at its current version, as the
/// gate releases it now (older versions were never released to it as such). Unknown version: 404.
pub async fn vread(
    State(state): State<Arc<AppState>>,
    partner: Partner,
    Path((kind, id, vid)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let (body, current) = visible_now(&state, &partner, &kind, &id).await?;
    let vid: i64 = vid.parse().map_err(|_| ApiError::NotFound)?;
    if vid == current.version.id {
        return Ok(versioned(StatusCode::OK, body, &current.version));
    }
    if !current.as_stored {
        return Err(ApiError::NotFound);
    }
    let old = state
        .gateway
        .store
        .resource_at(&kind, &id, vid)
        .await?
        .ok_or(ApiError::NotFound)?;
    let version = Version::from_body(vid, &old);
    Ok(versioned(StatusCode::OK, old, &version))
}

/// `GET /fhir/Patient/{id}`: as any read.
pub async fn read_patient(
    state: State<Arc<AppState>>,
    partner: Partner,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    read(state, partner, Path(("Patient".to_owned(), id))).await
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
            let version = body.at(&["meta", "versionId"]).and_then(Value::as_str).unwrap_or_default().to_owned();
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
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let task = parse_resource(&body, "Task")?;
    if task
        .get("id")
        .and_then(Value::as_str)
        .is_some_and(|i| i != id)
    {
        return Err(ApiError::BadRequest(format!(
            "the Task's id is not '{id}', the id in the URL"
        )));
    }
    let if_match = expected_version(&headers)?;
    let reader = reader(&state, &partner);
    let updated = state
        .gateway
        .update_task(&reader, &id, task, if_match)
        .await?;
    let version = updated
        .at(&["meta", "versionId"])
        .and_then(Value::as_str)
        .and_then(|v| v.parse().ok())
        .unwrap_or_default();
    let version = Version::from_body(version, &updated);
    Ok(versioned(StatusCode::OK, updated, &version))
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
    let mut consent = parse_resource(&body, "Consent")?;
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
    if creating {
        return Ok(created(&state, StatusCode::CREATED, stored));
    }
    let version = Version::of(&stored);
    Ok(versioned(StatusCode::OK, stored.body, &version))
}

/// The version an update is based on, from `If-Match` (`W/"3"` or `"3"`), FHIR's version-aware update;
/// anything else is 400.
pub fn expected_version(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get("if-match") else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    let quoted = text.strip_prefix("W/").unwrap_or(text);
    quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| v.parse().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "If-Match '{}': expected a version as W/\"N\" or \"N\"",
                text.chars().take(40).collect::<String>()
            ))
        })
}

/// `POST /fhir`: a transaction Bundle (a whole referral).
pub async fn transaction(
    State(state): State<Arc<AppState>>,
    partner: Partner,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    // Parsed only: the gateway validates the Bundle once as it accepts it (422 with every issue).
    let bundle = parse_of_type(&body, "Bundle")?;
    if bundle.get("type").and_then(Value::as_str) != Some("transaction") {
        return Err(ApiError::BadRequest(
            "expected a Bundle of type transaction".into(),
        ));
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
    let mut entries = Vec::new();
    for resource in crate::consent::subject::resources(&bundle) {
        let (kind, id) = crate::canonical::bundle::type_and_id(resource);
        entries.push(entry_response(&state, status, kind, id).await?);
    }
    Ok(fhir(
        StatusCode::OK,
        json!({"resourceType": "Bundle", "type": "transaction-response", "entry": entries}),
    ))
}

/// A transaction-response entry: status, and the stored version's `location`, `etag` and `lastModified`.
async fn entry_response(
    state: &AppState,
    status: &str,
    kind: &str,
    id: &str,
) -> Result<Value, ApiError> {
    let Some(stored) = state.gateway.store.resource(kind, id).await? else {
        return Ok(json!({"response": {"status": status, "location": format!("{kind}/{id}")}}));
    };
    let version = Version::of(&stored);
    let mut response = json!({"status": status, "location": location(state, kind, id, version.id),
                              "etag": format!("W/\"{}\"", version.id)});
    if let Some(updated) = version.updated {
        response["lastModified"] = json!(updated);
    }
    Ok(json!({"response": response}))
}

/// The profiles `$validate` knows, with the resource type each constrains: the SDOHCC profiles whose
/// rules onedoor checks (`canonical::profile`, `validation::invariants`).
const KNOWN_PROFILES: &[(&str, &str)] = &[
    (crate::canonical::SDOHCC_SERVICE_REQUEST, "ServiceRequest"),
    (crate::canonical::SDOHCC_TASK_REFERRAL, "Task"),
    (
        "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-TaskForPatient",
        "Task",
    ),
    (
        "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-Condition",
        "Condition",
    ),
    (
        "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-HealthcareService",
        "HealthcareService",
    ),
];

/// `POST /fhir/$validate` and `POST /fhir/{type}/$validate`: an OperationOutcome listing every issue. The
/// body is the resource or a Parameters with `resource` (and optionally `profile`); `profile` may also be
/// a query parameter. With a profile, the resource is validated as claiming it (its rules apply); a
/// profile onedoor does not know is 400.
pub async fn validate(
    Query(params): Params,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let body = parse(&body)?;
    let (mut resource, from_body) =
        if body.get("resourceType").and_then(Value::as_str) == Some("Parameters") {
            (
                parameter(&body, "resource").cloned().unwrap_or(Value::Null),
                profile_parameter(&body),
            )
        } else {
            (body, None)
        };
    if !resource.is_object() {
        return Err(ApiError::BadRequest(
            "Parameters: no 'resource' parameter holding the resource to validate".into(),
        ));
    }
    let profile = super::search::last(&params, "profile")
        .map(str::to_owned)
        .or(from_body);
    if let Some(profile) = profile {
        claim_profile(&mut resource, &profile)?;
    }
    let issues = crate::validation::Validator::new().validate(&resource);
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
    Ok(fhir(StatusCode::OK, super::error::issues_outcome(&issues)))
}

/// A named parameter's `resource` in a Parameters resource.
fn parameter<'a>(parameters: &'a Value, name: &str) -> Option<&'a Value> {
    parameters
        .get("parameter")
        .and_then(Value::as_array)?
        .iter()
        .find(|p| p.get("name").and_then(Value::as_str) == Some(name))?
        .get("resource")
}

/// The `profile` parameter of a Parameters resource (`valueUri` or `valueCanonical`).
fn profile_parameter(parameters: &Value) -> Option<String> {
    let found = parameters
        .get("parameter")
        .and_then(Value::as_array)?
        .iter()
        .find(|p| p.get("name").and_then(Value::as_str) == Some("profile"))?;
    ["valueCanonical", "valueUri", "valueString"]
        .iter()
        .find_map(|k| found.get(*k).and_then(Value::as_str))
        .map(str::to_owned)
}

/// Make `resource` claim `profile` (in `meta.profile`), so the profile's rules are checked: 400 for a
/// profile onedoor does not know, 422 for a resource of another type than the profile's.
fn claim_profile(resource: &mut Value, profile: &str) -> Result<(), ApiError> {
    let canonical = profile.split('|').next().unwrap_or_default();
    let Some((_, kind)) = KNOWN_PROFILES.iter().find(|(url, _)| *url == canonical) else {
        let known: Vec<&str> = KNOWN_PROFILES.iter().map(|(url, _)| *url).collect();
        return Err(ApiError::BadRequest(format!(
            "unknown profile '{}': onedoor validates against {}",
            profile.chars().take(120).collect::<String>(),
            known.join(", ")
        )));
    };
    let found = resource.get("resourceType").and_then(Value::as_str);
    if found != Some(*kind) {
        return Err(ApiError::Unprocessable(vec![crate::validation::Issue {
            path: "/resourceType".into(),
            message: format!(
                "profile {canonical} is for {kind}, not {}",
                found.unwrap_or("(no resourceType)")
            ),
            source: crate::validation::IssueSource::Profile,
        }]));
    }
    let meta = resource
        .as_object_mut()
        .map(|o| o.entry("meta").or_insert_with(|| json!({})));
    let Some(meta) = meta.and_then(Value::as_object_mut) else {
        return Err(ApiError::BadRequest("meta: expected an object".into()));
    };
    let profiles = meta.entry("profile").or_insert_with(|| json!([]));
    match profiles.as_array_mut() {
        Some(list) => list.push(json!(canonical)),
        None => {
            return Err(ApiError::BadRequest(
                "meta.profile: expected an array".into(),
            ));
        }
    }
    Ok(())
}

/// Unknown FHIR paths.
pub async fn not_supported() -> ApiError {
    ApiError::NotFound
}

/// JSON helper for other modules.
pub fn json_response(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}
