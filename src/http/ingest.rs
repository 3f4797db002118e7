//! `POST /ingest/{source}`: an export (CSV, zip, JSON, NDJSON, XML) for a configured source, streamed to a
//! temporary file within the upload limit, then stored with its job in the store in one transaction;
//! only then is it answered 202 with the job id. Any node's job runner (`crate::jobs`) claims it and runs
//! it; a job interrupted by a crash resumes on whichever node claims it next. An upload cut off mid-body
//! is refused and nothing is stored. `GET /jobs/{id}` reports progress, counts and per-record errors.

use super::AppState;
use super::auth::Partner;
use super::error::ApiError;
use crate::store::jobs::NewJob;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

/// Accept an upload: store it durably with its job, then answer 202.
pub async fn ingest(
    State(state): State<Arc<AppState>>,
    partner: Partner,
    Path(source_name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let gateway = state.gateway.clone();
    let source = gateway
        .config
        .sources
        .get(&source_name)
        .cloned()
        .ok_or(ApiError::NotFound)?;
    may_ingest(&gateway.config, &partner, &source_name, &source)?;
    let dir = tempfile::tempdir().map_err(|e| ApiError::Internal(e.to_string()))?;
    let (upload, size, head) =
        receive(body, dir.path(), gateway.config.server.max_upload_bytes).await?;
    let upload_name = upload_name(params.get("filename").map(String::as_str), &head);
    let job = NewJob {
        id: uuid::Uuid::new_v4().to_string(),
        source: source_name.clone(),
        org: source.org.clone().unwrap_or_else(|| partner.org.clone()),
        upload_name,
        partner: partner.name.clone(),
    };
    gateway.store.create_job(&job, &upload).await?;
    gateway.jobs_waiting.notify_one();
    tracing::info!(job = %job.id, source = %source_name, bytes = size, "ingest stored; answering 202");
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({"job": job.id, "status": "queued", "href": format!("/jobs/{}", job.id)})),
    )
        .into_response())
}

/// A partner ingests only into the sources it is given (`[partners.X] sources`), and only a source whose
/// records are its own organization's; anything else is refused before a byte is stored.
fn may_ingest(
    config: &crate::config::Config,
    partner: &Partner,
    name: &str,
    source: &crate::config::Source,
) -> Result<(), ApiError> {
    let listed = config
        .partners
        .get(&partner.name)
        .is_some_and(|p| p.sources.iter().any(|s| s == name));
    let own = source.org.as_deref().is_none_or(|org| org == partner.org);
    if listed && own {
        return Ok(());
    }
    Err(ApiError::NotAllowed(format!(
        "partner '{}' may not ingest into source '{name}' (its [partners.{}] sources do not list it, or the source holds another organization's records)",
        partner.name, partner.name
    )))
}

/// The upload's name: the caller's `filename` (its last path part, safe characters only), or
/// `upload.<format>` from its first bytes.
fn upload_name(given: Option<&str>, head: &[u8]) -> String {
    let cleaned: String = given
        .and_then(|g| g.rsplit(['/', '\\']).next())
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .take(120)
        .collect();
    if cleaned.contains('.') && !cleaned.starts_with('.') {
        cleaned
    } else {
        format!("upload.{}", sniff(head))
    }
}

/// `GET /jobs/{id}`: for the partner that posted it (anyone else: 404, as if it did not exist).
pub async fn job(
    State(state): State<Arc<AppState>>,
    partner: Partner,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (job, owner) = state
        .gateway
        .store
        .job(&id)
        .await?
        .ok_or(ApiError::NotFound)?;
    if owner != partner.name {
        return Err(ApiError::NotFound);
    }
    Ok(axum::Json(job).into_response())
}

/// Stream the upload to a file, refusing it past `limit` bytes; returns the file, its size and its first
/// bytes (to recognise the format).
async fn receive(
    body: axum::body::Body,
    dir: &std::path::Path,
    limit: usize,
) -> Result<(std::path::PathBuf, usize, Vec<u8>), ApiError> {
    use futures_util::StreamExt;
    let path = dir.join("upload.part");
    let mut file = std::fs::File::create(&path).map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut stream = body.into_data_stream();
    let (mut size, mut head) = (0usize, Vec::new());
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::Invalid(format!("upload interrupted: {e}")))?;
        size += chunk.len();
        if size > limit {
            return Err(ApiError::Invalid(format!(
                "upload larger than the limit of {limit} bytes (server.max_upload_bytes)"
            )));
        }
        if head.len() < 4096 {
            head.extend_from_slice(&chunk[..chunk.len().min(4096 - head.len())]);
        }
        file.write_all(&chunk)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
    }
    // The fsync on a blocking thread: it can take milliseconds, and the runtime may have one worker.
    tokio::task::spawn_blocking(move || file.sync_all())
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((path, size, head))
}

fn sniff(body: &[u8]) -> &'static str {
    match body.first() {
        Some(b'P') if body.starts_with(b"PK") => "zip",
        Some(b'<') => "xml",
        Some(b'{') | Some(b'[') => {
            if body.iter().filter(|b| **b == b'\n').count() > 1 && body.starts_with(b"{") {
                "ndjson"
            } else {
                "json"
            }
        }
        _ => "csv",
    }
}
