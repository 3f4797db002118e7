//! The ingest job runner: any node claims a stored job (a lease, like outbox work), writes its upload out
//! of the store into a temporary folder under its own name, runs the source's mapping through the
//! pipeline, and hands the bundles to the gateway in batches of [`JOB_BATCH`], each stored with the job's
//! progress in one transaction (group commit). A job interrupted by a crash or a restart is claimed again
//! when its lease ends; the records already committed are skipped, so it resumes after the last batch,
//! and its report counts the resumption. Re-ingesting the same records never duplicates them (the gateway knows each referral).

use crate::adapters::niem::IncidentHistory;
use crate::gateway::{
    Arrival, AssembledRecord, Gateway, GatewayError, JOB_BATCH, JobCursor, JobRecord,
};
use crate::mapping::EngineOptions;
use crate::pipeline::{self, Sink};
use crate::store::StoreError;
use crate::store::jobs::{ClaimedJob, JobStatus};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Run until `stop` turns true (a job in hand is finished first).
pub async fn run(gateway: Arc<Gateway>, mut stop: watch::Receiver<bool>) {
    let poll = Duration::from_millis(gateway.config.server.outbox_poll_ms.max(100) * 4);
    loop {
        if *stop.borrow() {
            break;
        }
        let lease = gateway.config.server.claim_lease_ms as i64;
        match gateway.store.claim_job(&gateway.node, lease).await {
            Ok(Some(job)) => {
                run_guarded(&gateway, job).await;
                continue;
            }
            Ok(None) => {}
            Err(err) => tracing::error!(error = %err, "job claim failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = gateway.jobs_waiting.notified() => {}
            _ = stop.changed() => {}
        }
    }
    tracing::info!("job runner stopped");
}

/// Run a job in its own task, so that a panic in it fails that job and never the runner.
async fn run_guarded(gateway: &Arc<Gateway>, job: ClaimedJob) {
    let id = job.id.clone();
    let task = tokio::spawn({
        let gateway = gateway.clone();
        async move { run_job(&gateway, job).await }
    });
    let Err(err) = task.await else { return };
    tracing::error!(job = %id, panicked = err.is_panic(), "the job stopped on an internal error; marked failed");
    let report = json!({"error": PANICKED});
    if let Err(err) = gateway
        .store
        .finish_job(&id, &gateway.node, JobStatus::Failed, &report)
        .await
    {
        tracing::error!(job = %id, error = %err, "could not record the job's end");
    }
}

/// The report of a job that panicked (never the panic's message: it may quote the records).
const PANICKED: &str =
    "the job stopped on an internal error (a bug, logged); the records stored before it are kept";

async fn run_job(gateway: &Arc<Gateway>, job: ClaimedJob) {
    let id = job.id.clone();
    if job.resumed > 0 {
        tracing::info!(job = %id, from_record = job.records_done, resumed = job.resumed, "job resumed after an interruption");
    }
    let outcome = execute(gateway, job).await;
    let (status, report) = match outcome {
        Ok(report) => (JobStatus::Done, report),
        Err(JobError::ClaimLost) => {
            tracing::warn!(job = %id, "another node took the job over; leaving it");
            return;
        }
        Err(JobError::Store(err)) => {
            tracing::error!(job = %id, error = %err, "the store failed during the job; it will be resumed when its lease ends");
            return;
        }
        Err(JobError::Failed(message)) => (JobStatus::Failed, json!({"error": message})),
    };
    match gateway
        .store
        .finish_job(&id, &gateway.node, status, &report)
        .await
    {
        Ok(()) => tracing::info!(job = %id, status = %status, "ingest finished"),
        Err(err) => tracing::error!(job = %id, error = %err, "could not record the job's end"),
    }
}

/// Why a job stopped.
enum JobError {
    /// Another node holds it now.
    ClaimLost,
    /// The store failed; the job is resumed later.
    Store(StoreError),
    /// The upload as a whole cannot be converted.
    Failed(String),
}

impl From<StoreError> for JobError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::ClaimLost(_) => Self::ClaimLost,
            other => Self::Store(other),
        }
    }
}

async fn execute(gateway: &Arc<Gateway>, job: ClaimedJob) -> Result<Value, JobError> {
    let source = gateway
        .config
        .sources
        .get(&job.source)
        .cloned()
        .ok_or_else(|| {
            JobError::Failed(format!("source '{}' is no longer configured", job.source))
        })?;
    let dir = tempfile::tempdir().map_err(|e| JobError::Failed(e.to_string()))?;
    let file = dir.path().join(&job.upload_name);
    gateway.store.job_upload(&job.id, &file).await?;
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
    let history = incident_history(gateway, &source.mapping).await?;
    request.incident_history = history.as_ref().map(|(history, _)| history.clone());
    let runtime = tokio::runtime::Handle::current();
    let gateway_for_job = gateway.clone();
    let resumed = job.resumed;
    let (outcome, sink) = tokio::task::spawn_blocking(move || {
        let mut sink = GatewaySink::new(gateway_for_job, runtime, job);
        let outcome = pipeline::convert(&request, &mut sink);
        (outcome, sink)
    })
    .await
    .map_err(|_| JobError::Failed(PANICKED.to_owned()))?;
    drop(dir);
    if let Some(err) = sink.stopped {
        return Err(err);
    }
    let summary = outcome.map_err(|e| JobError::Failed(e.to_string()))?;
    if let Some((history, _held)) = &history {
        let (forgotten, added) = {
            let history = history.lock().unwrap_or_else(|p| p.into_inner());
            (history.forgotten().to_vec(), history.added().to_vec())
        };
        gateway
            .store
            .save_incident_history(&forgotten, &added)
            .await?;
    }
    let counts = sink.cursor.job.counts;
    Ok(json!({
        "summary": summary,
        "accepted": counts.accepted,
        "updated": counts.updated,
        "duplicates": counts.duplicates,
        "refused": sink.cursor.job.refused,
        "resumed": resumed,
    }))
}

type SharedHistory = Arc<std::sync::Mutex<IncidentHistory>>;

/// The repeat-incident history for a source that keeps one (`niem`), loaded from the store and held (one
/// such ingest at a time on this node) until the job saves it; `None` for other adapters.
async fn incident_history(
    gateway: &Arc<Gateway>,
    mapping: &str,
) -> Result<Option<(SharedHistory, tokio::sync::OwnedMutexGuard<()>)>, JobError> {
    let adapter = crate::mapping::catalog::find(&gateway.config.gateway.mappings, mapping)
        .map(|m| m.file.mapping.adapter.get_ref().clone())
        .unwrap_or_default();
    let keeps_history = crate::adapters::registry::find(&adapter)
        .is_some_and(|source| source.keeps_incident_history());
    if !keeps_history {
        return Ok(None);
    }
    let held = gateway.history_lock.clone().lock_owned().await;
    // The configured salt, or the one generated for this deployment and kept in the store; never the
    // public default.
    let salt = match &gateway.config.gateway.history_salt {
        Some(salt) => salt.clone(),
        None => gateway.store.history_salt().await?,
    };
    let mut history = IncidentHistory::new(&salt);
    history.load(gateway.store.incident_sightings().await?);
    Ok(Some((Arc::new(std::sync::Mutex::new(history)), held)))
}

/// Hands each converted group to the gateway, skipping those a previous run of the job committed.
struct GatewaySink {
    gateway: Arc<Gateway>,
    runtime: tokio::runtime::Handle,
    source: String,
    org: String,
    cursor: JobCursor,
    /// Records committed before this run (skipped).
    skip: i64,
    seen: i64,
    lines: u64,
    resources: u64,
    stopped: Option<JobError>,
    /// Records waiting for the next batch commit, with their ordinals.
    pending: Vec<(i64, AssembledRecord)>,
}

impl GatewaySink {
    fn new(gateway: Arc<Gateway>, runtime: tokio::runtime::Handle, job: ClaimedJob) -> Self {
        let node = gateway.node.clone();
        let lease_ms = gateway.config.server.claim_lease_ms as i64;
        Self {
            source: format!("source:{}", job.source),
            org: job.org.clone(),
            skip: job.records_done,
            cursor: JobCursor {
                job,
                node,
                lease_ms,
            },
            gateway,
            runtime,
            seen: 0,
            lines: 0,
            resources: 0,
            stopped: None,
            pending: Vec::new(),
        }
    }

    /// Commit the pending records in one transaction (the job's progress with them).
    fn flush(&mut self) -> std::io::Result<()> {
        if self.pending.is_empty() || self.stopped.is_some() {
            return Ok(());
        }
        let records = std::mem::take(&mut self.pending);
        let batch = self.runtime.block_on(self.gateway.accept_job_batch(
            &self.source,
            &self.org,
            records,
            &mut self.cursor,
        ));
        let stored = match batch {
            Ok(outcomes) => {
                self.lines += outcomes
                    .iter()
                    .filter(
                        |o| matches!(o, JobRecord::Accepted(a) if a.arrival != Arrival::Duplicate),
                    )
                    .count() as u64;
                return Ok(());
            }
            Err(GatewayError::Store(err)) => err,
            Err(other) => StoreError::Corrupt(other.to_string()),
        };
        let message = stored.to_string();
        self.stopped = Some(stored.into());
        Err(std::io::Error::other(message))
    }
}

impl Sink for GatewaySink {
    fn accept(&mut self, resources: Vec<Value>, passthrough: bool) -> std::io::Result<()> {
        self.seen += 1;
        if self.seen <= self.skip || self.stopped.is_some() {
            return Ok(());
        }
        let record = AssembledRecord::of_group(resources, passthrough);
        let value = record.value();
        crate::http::guard::test_panic_if_marked(value, crate::http::guard::TEST_PANIC_JOB);
        self.resources += crate::consent::subject::resources(value).len() as u64;
        self.pending.push((self.seen, record));
        if self.pending.len() >= JOB_BATCH {
            return self.flush();
        }
        Ok(())
    }

    fn written(&self) -> (u64, u64) {
        (self.lines, self.resources)
    }

    fn finish(&mut self) -> std::io::Result<()> {
        self.flush()
    }
}
