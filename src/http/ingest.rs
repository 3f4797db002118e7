//! `POST /ingest/{source}`: an export (CSV, zip, JSON, NDJSON) for a configured source, streamed to a
//! temporary file within the upload limit; answered 202 with a job id at once. The job runs the source's
//! mapping through the pipeline and hands every bundle to the gateway (stored, routed, consent-checked).
//! `GET /jobs/{id}` reports progress, counts and per-record errors.

use super::AppState;
use super::auth::Partner;
use super::error::ApiError;
use crate::adapters::niem::IncidentHistory;
use crate::canonical::bundle;
use crate::gateway::Gateway;
use crate::mapping::EngineOptions;
use crate::pipeline::{self, Sink};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

/// Accept an upload and start its job.
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
    let dir = tempfile::tempdir().map_err(|e| ApiError::Internal(e.to_string()))?;
    let (upload, size, head) =
        receive(body, dir.path(), gateway.config.server.max_upload_bytes).await?;
    let extension = params
        .get("filename")
        .and_then(|f| f.rsplit_once('.'))
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_else(|| sniff(&head).to_owned());
    let file = dir.path().join(format!("upload.{extension}"));
    std::fs::rename(&upload, &file).map_err(|e| ApiError::Internal(e.to_string()))?;
    let job = uuid::Uuid::new_v4().to_string();
    gateway.store.create_job(&job, &source_name).await?;
    let org = source.org.clone().unwrap_or_else(|| partner.org.clone());
    let mut request = pipeline::request(
        &gateway.config.gateway.mappings,
        &source.mapping,
        &file,
        source.roster.as_deref(),
        EngineOptions {
            source_system: source.source_system.clone(),
            ..EngineOptions::default()
        },
    );
    let history = incident_history(&gateway, &source.mapping).await?;
    request.incident_history = history.as_ref().map(|(history, _)| history.clone());
    let runtime = tokio::runtime::Handle::current();
    let job_id = job.clone();
    tracing::info!(job = %job, source = %source_name, bytes = size, "ingest accepted");
    tokio::task::spawn_blocking(move || {
        let _keep = dir;
        let mut sink = GatewaySink {
            gateway: gateway.clone(),
            runtime: runtime.clone(),
            source: format!("source:{source_name}"),
            org,
            accepted: 0,
            duplicates: 0,
            errors: Vec::new(),
            lines: 0,
            resources: 0,
        };
        let mut outcome = pipeline::convert(&request, &mut sink);
        if let (Ok(_), Some((history, _held))) = (&outcome, &history) {
            let history = history.lock().unwrap_or_else(|p| p.into_inner());
            let saved = runtime.block_on(
                gateway
                    .store
                    .save_incident_history(history.forgotten(), history.added()),
            );
            if let Err(err) = saved {
                outcome = Err(pipeline::PipelineError::Source(format!(
                    "the repeat-incident history could not be saved: {err}"
                )));
            }
        }
        let (status, report) = match outcome {
            Ok(summary) => (
                "done",
                json!({"summary": summary, "accepted": sink.accepted, "duplicates": sink.duplicates, "refused": sink.errors}),
            ),
            Err(err) => ("failed", json!({"error": err.to_string()})),
        };
        let _ = runtime.block_on(gateway.store.update_job(&job_id, status, &report));
        tracing::info!(job = %job_id, status, "ingest finished");
    });
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({"job": job, "status": "running", "href": format!("/jobs/{job}")})),
    )
        .into_response())
}

/// The repeat-incident history for a `niem` source, loaded from the store and held (one such ingest at a
/// time) until the job saves it; `None` for other adapters.
async fn incident_history(
    gateway: &Arc<Gateway>,
    mapping: &str,
) -> Result<Option<(SharedHistory, tokio::sync::OwnedMutexGuard<()>)>, ApiError> {
    let adapter = crate::mapping::catalog::find(&gateway.config.gateway.mappings, mapping)
        .map(|m| m.file.mapping.adapter.get_ref().clone())
        .unwrap_or_default();
    if adapter != "niem" {
        return Ok(None);
    }
    let held = gateway.history_lock.clone().lock_owned().await;
    let salt = gateway
        .config
        .gateway
        .history_salt
        .as_deref()
        .unwrap_or(pipeline::DEFAULT_HISTORY_SALT);
    let mut history = IncidentHistory::new(salt);
    history.load(gateway.store.incident_sightings().await?);
    Ok(Some((Arc::new(std::sync::Mutex::new(history)), held)))
}

type SharedHistory = Arc<std::sync::Mutex<IncidentHistory>>;

/// `GET /jobs/{id}`.
pub async fn job(
    State(state): State<Arc<AppState>>,
    _partner: Partner,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let job = state
        .gateway
        .store
        .job(&id)
        .await?
        .ok_or(ApiError::NotFound)?;
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
    file.sync_all()
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

/// Hands each converted group to the gateway.
struct GatewaySink {
    gateway: Arc<Gateway>,
    runtime: tokio::runtime::Handle,
    source: String,
    org: String,
    accepted: u64,
    duplicates: u64,
    errors: Vec<String>,
    lines: u64,
    resources: u64,
}

impl Sink for GatewaySink {
    fn accept(&mut self, resources: Vec<Value>, passthrough: bool) -> std::io::Result<()> {
        let record = bundle::group_record(resources, passthrough);
        self.resources += crate::consent::subject::resources(&record).len() as u64;
        match self
            .runtime
            .block_on(self.gateway.accept(&self.source, &self.org, record))
        {
            Ok(accepted) if accepted.created => self.accepted += 1,
            Ok(_) => self.duplicates += 1,
            Err(crate::gateway::GatewayError::Invalid(why)) => self.errors.push(why),
            Err(other) => return Err(std::io::Error::other(other.to_string())),
        }
        self.lines += 1;
        Ok(())
    }

    fn written(&self) -> (u64, u64) {
        (self.lines, self.resources)
    }

    fn finish(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
