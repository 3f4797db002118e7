//! FHIR search (`GET /fhir/{type}?...`): exactly the search parameters the CapabilityStatement lists
//! ([`search_params`], the one list both read), `_lastUpdated` with `ge`/`le`/`gt`/`lt`, and searchsets
//! paged by `_count` (default 50, at most 500) and `_offset` with `self`/`next`/`previous` links and a
//! `total` of every match the partner may see now. An unsupported parameter is 400 naming it (FHIR's
//! `handling=strict`); with `Prefer: handling=lenient` it is ignored and left out of the links. Every
//! match is decided as a read is ([`access::may_see`], which records nothing); only the page handed over
//! goes through [`access::visible`], audited and recorded as disclosures.

use super::AppState;
use super::auth::Partner;
use super::error::ApiError;
use super::fhir::{fhir, reader};
use crate::access;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};
use std::sync::Arc;

type Params = Query<Vec<(String, String)>>;

/// One search parameter a type supports: its name in the CapabilityStatement, the query key a client
/// sends, its FHIR type, and the indexed column it reads (`None` for `_lastUpdated`).
pub struct SearchParam {
    /// Its name in the CapabilityStatement.
    pub name: &'static str,
    /// The query key a client sends (`requester:identifier`).
    pub key: &'static str,
    /// Its FHIR search parameter type.
    pub kind: &'static str,
    column: Option<&'static str>,
    /// How to use it.
    pub documentation: &'static str,
}

const fn param(
    name: &'static str,
    key: &'static str,
    kind: &'static str,
    column: Option<&'static str>,
    documentation: &'static str,
) -> SearchParam {
    SearchParam {
        name,
        key,
        kind,
        column,
        documentation,
    }
}

const PATIENT: SearchParam = param(
    "patient",
    "patient",
    "reference",
    Some("patient"),
    "The person: patient=Patient/<id>",
);
const STATUS: SearchParam = param(
    "status",
    "status",
    "token",
    Some("status"),
    "The status code: status=<code>",
);
const LAST_UPDATED: SearchParam = param(
    "_lastUpdated",
    "_lastUpdated",
    "date",
    None,
    "When the resource last changed: prefixes ge, le, gt, lt (eq or none: the whole precision given)",
);
const REQUESTER: SearchParam = param(
    "requester",
    "requester:identifier",
    "reference",
    Some("sender_org"),
    "The referring organization by identifier: requester:identifier=<system>|<value>",
);

/// The search parameters of a type, the same list the CapabilityStatement advertises and search accepts.
pub fn search_params(kind: &str) -> Option<&'static [SearchParam]> {
    const SERVICE_REQUEST: &[SearchParam] = &[
        PATIENT,
        STATUS,
        REQUESTER,
        param(
            "performer",
            "performer:identifier",
            "reference",
            Some("receiver_org"),
            "The receiving organization by identifier: performer:identifier=<system>|<value>",
        ),
        LAST_UPDATED,
    ];
    const TASK: &[SearchParam] = &[
        PATIENT,
        STATUS,
        REQUESTER,
        param(
            "owner",
            "owner:identifier",
            "reference",
            Some("receiver_org"),
            "The receiving organization by identifier: owner:identifier=<system>|<value>",
        ),
        param(
            "focus",
            "focus",
            "reference",
            Some("focus"),
            "The referral: focus=ServiceRequest/<id>",
        ),
        LAST_UPDATED,
    ];
    const CONSENT: &[SearchParam] = &[PATIENT, STATUS, LAST_UPDATED];
    match kind {
        "ServiceRequest" => Some(SERVICE_REQUEST),
        "Task" => Some(TASK),
        "Consent" => Some(CONSENT),
        _ => None,
    }
}

/// A search as parsed from the query: equality filters on indexed columns, `_lastUpdated` comparisons,
/// the page asked for, and the query kept for the links (without `_offset`).
struct SearchQuery {
    filters: Vec<(&'static str, String)>,
    updated: Vec<(&'static str, i64)>,
    count: i64,
    offset: i64,
    kept: Vec<(String, String)>,
}

impl SearchQuery {
    /// The query of a search of `kind`: an unsupported parameter is 400 naming it, unless `lenient`
    /// (`Prefer: handling=lenient`), when it is ignored (and left out of the links).
    fn parse(
        kind: &str,
        params: &[(String, String)],
        supported: &[SearchParam],
        lenient: bool,
    ) -> Result<Self, ApiError> {
        let mut query = Self {
            filters: Vec::new(),
            updated: Vec::new(),
            count: super::params::count(last(params, "_count"))?,
            offset: super::params::offset(last(params, "_offset"))?,
            kept: Vec::new(),
        };
        for (name, value) in params {
            if name == "_count" || name == "_offset" {
                if name == "_count" {
                    query.kept.push((name.clone(), value.clone()));
                }
                continue;
            }
            let Some(found) = supported.iter().find(|p| p.key == name) else {
                if lenient {
                    continue;
                }
                return Err(unsupported(kind, name, supported));
            };
            query.add(found, name, value)?;
            query.kept.push((name.clone(), value.clone()));
        }
        Ok(query)
    }

    fn add(&mut self, found: &SearchParam, name: &str, value: &str) -> Result<(), ApiError> {
        match found.column {
            None => self.updated.extend(super::params::last_updated(value)?),
            Some(_) if value.contains(',') => {
                return Err(ApiError::BadRequest(format!(
                    "{name}: a list of values (OR) is not supported; search once per value"
                )));
            }
            Some(column) => self.filters.push((column, value.to_owned())),
        }
        Ok(())
    }
}

/// The last value of a query parameter.
pub fn last<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .rev()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// 400 naming the parameter and what is supported.
fn unsupported(kind: &str, name: &str, supported: &[SearchParam]) -> ApiError {
    let keys: Vec<&str> = supported.iter().map(|p| p.key).collect();
    ApiError::BadRequest(format!(
        "unsupported search parameter '{}' for {kind} (supported: {}, _count, _offset)",
        name.chars().take(60).collect::<String>(),
        keys.join(", ")
    ))
}

/// Whether the request asks for `Prefer: handling=lenient`.
fn lenient(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([',', ';']))
        .any(|p| p.trim().eq_ignore_ascii_case("handling=lenient"))
}

/// `GET /fhir/{type}?...`: search what this partner may see, a page at a time. `total` counts every match
/// the partner may see now (each decided as a read would be, unrecorded), not the page; only the page is
/// audited as disclosed.
pub async fn search(
    State(state): State<Arc<AppState>>,
    partner: Partner,
    Path(kind): Path<String>,
    headers: HeaderMap,
    Query(params): Params,
) -> Result<Response, ApiError> {
    let supported = search_params(&kind).ok_or(ApiError::NotFound)?;
    let query = SearchQuery::parse(&kind, &params, supported, lenient(&headers))?;
    let gateway = &state.gateway;
    let matches = gateway
        .store
        .search_matches(&kind, &query.filters, &partner.org, &query.updated)
        .await?;
    let reader = reader(&state, &partner);
    let mut seen = Vec::new();
    for resource in matches {
        if access::may_see(gateway, &reader, &resource).await? {
            seen.push(resource);
        }
    }
    let total = seen.len() as i64;
    let mut page: Vec<(String, Value)> = Vec::new();
    for resource in seen
        .into_iter()
        .skip(usize::try_from(query.offset).unwrap_or(usize::MAX))
        .take(usize::try_from(query.count).unwrap_or_default())
    {
        let id = resource.id.clone();
        if let Some(body) = access::visible(gateway, &reader, resource).await? {
            page.push((id, body));
        }
    }
    Ok(fhir(
        StatusCode::OK,
        searchset(&state, &kind, &query, total, page),
    ))
}

/// The searchset Bundle of one page of `found`, with its links.
fn searchset(
    state: &AppState,
    kind: &str,
    query: &SearchQuery,
    total: i64,
    page: Vec<(String, Value)>,
) -> Value {
    let base = &state.gateway.config.server.base_url;
    let entries: Vec<Value> = page
        .into_iter()
        .map(|(id, body)| json!({"fullUrl": format!("{base}/fhir/{kind}/{id}"), "resource": body, "search": {"mode": "match"}}))
        .collect();
    let link = |relation: &str, offset: i64| {
        let mut pairs = query.kept.clone();
        pairs.push(("_offset".into(), offset.to_string()));
        json!({"relation": relation, "url": format!("{base}/fhir/{kind}?{}", encode_query(&pairs))})
    };
    let mut links = vec![link("self", query.offset)];
    if query.offset + query.count < total {
        links.push(link("next", query.offset + query.count));
    }
    if query.offset > 0 {
        links.push(link("previous", (query.offset - query.count).max(0)));
    }
    let mut bundle =
        json!({"resourceType": "Bundle", "type": "searchset", "total": total, "link": links});
    if !entries.is_empty() {
        bundle["entry"] = Value::Array(entries);
    }
    bundle
}

/// `name=value&...` with every byte but the unreserved ones percent-encoded.
fn encode_query(pairs: &[(String, String)]) -> String {
    let encode = |text: &str| {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b':' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(n, v)| format!("{}={}", encode(n), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}
