//! The gateway's core, shared by every way a referral arrives (FHIR REST, transaction Bundle, ingest):
//! validate, index the resources, route by performer (or need), ask the consent gate for each destination
//! (audited), and commit the message with its outbox rows in one transaction — before anything is
//! acknowledged. Also the closed loop: a receiver's Task status change, checked against the referral
//! workflow, stored, and notified to the referrer.
//!
//! This module holds the [`Gateway`] itself, its construction and its errors; each role is a submodule:
//! `accept` (the one transaction a submission is), `commits` (group commit: submissions arriving
//! together share that transaction), `batch` (their writes, written together), `plan` (what a submitted bundle is worked out to
//! be), `routing` (which destinations it goes to), `performer` (the directory's performer, and the
//! organization a performer resolves to), `ownership` (which records a sender may write),
//! `disclosure` (the consent decision per destination), `consent_state` (the cached consent gate),
//! `tasks` (the Tasks and Organizations the gateway builds), `workflow` (Task update rules) and
//! `notifications` (the referrer's notifications).

mod accept;
mod batch;
mod commits;
mod consent_state;
mod disclosure;
mod notifications;
mod ownership;
mod performer;
mod plan;
mod routing;
mod tasks;
mod workflow;

pub use accept::AssembledRecord;
pub use commits::{JOB_BATCH, JobRecord};
pub use notifications::shortcut_id;
pub use performer::performer_org;
pub use tasks::{legacy_task_id, referral_task_id};

use crate::config::Config;
use crate::store::jobs::ClaimedJob;
use crate::store::{Store, StoreError};
use crate::validation::Validator;
use consent_state::ConsentState;
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::Mutex;

/// Why a submission or an update is refused.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The resource is not valid FHIR R4 / SDOHCC.
    #[error("{0}")]
    Invalid(String),
    /// The record is not valid FHIR R4 / SDOHCC: every issue with its path.
    #[error("{}", .0.iter().take(10).map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Unprocessable(Vec<crate::validation::Issue>),
    /// A workflow rule forbids it (Task status change).
    #[error("{0}")]
    Conflict(String),
    /// Not found, or not visible to this partner (the two are indistinguishable on purpose).
    #[error("not found")]
    NotFound,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The consent gate could not decide.
    #[error("consent gate: {0}")]
    Consent(String),
    /// The caller may see this but not do it.
    #[error("{0}")]
    NotAllowed(String),
}

/// What an accepted submission was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Arrival {
    /// A referral (or record) not held before.
    New,
    /// A changed copy of a held one: stored as its next revision and delivered again.
    Updated,
    /// An identical copy of a held one: nothing stored, nothing delivered.
    Duplicate,
}

/// What happened to an accepted submission.
#[derive(Debug, Clone, Serialize)]
pub struct Accepted {
    /// The stored message (the new revision, or the one held when a duplicate).
    pub message: String,
    /// New, updated or duplicate.
    pub arrival: Arrival,
    /// The referral's revision (1, 2...).
    pub revision: i64,
    /// Where it goes and whether consent let it (`pending`) or not (`withheld`).
    pub routed: Vec<(String, String)>,
    /// The ServiceRequest id, when the submission is a referral.
    pub service_request: Option<String>,
    /// That ServiceRequest as this acceptance left it stored (its version and `meta`; the one held when
    /// nothing of it changed), so the answer to its `POST` needs no read after the commit. Not kept for a
    /// job's records (nobody answers them one by one).
    #[serde(skip)]
    pub service_request_stored: Option<Box<crate::store::StoredNow>>,
    /// The Task id.
    pub task: Option<String>,
}

impl Accepted {
    /// Whether something new was stored (a new referral or a new revision).
    pub fn created(&self) -> bool {
        self.arrival != Arrival::Duplicate
    }
}

/// A job's place, advanced in the transaction that stores each batch of its records.
pub struct JobCursor {
    /// The job as claimed, with its counts so far.
    pub job: ClaimedJob,
    /// The node holding it.
    pub node: String,
    /// Its lease, extended at each record.
    pub lease_ms: i64,
}

impl JobCursor {
    /// Count a refused record (its ordinal in the upload and why) in the job's progress.
    pub fn refuse(&mut self, record: i64, why: String) {
        self.job.records_done += 1;
        self.job
            .refused
            .push(serde_json::json!({"record": record, "error": why}));
    }
}

/// The shared gateway state.
pub struct Gateway {
    /// The store.
    pub store: Store,
    /// The configuration.
    pub config: Config,
    /// This node's name in claims (jobs).
    pub node: String,
    /// Wakes the job runner when an upload is stored.
    pub jobs_waiting: tokio::sync::Notify,
    consents: Mutex<ConsentState>,
    /// Held while a `niem` ingest reads, counts and saves the repeat-incident history (one at a time).
    pub history_lock: Arc<Mutex<()>>,
    validator: Validator,
    /// The group committer's queue (SQLite), started with the first submission.
    commits: std::sync::OnceLock<commits::CommitQueue>,
}

impl Gateway {
    /// Assemble the gateway.
    pub fn new(store: Store, config: Config) -> Arc<Self> {
        Arc::new(Self {
            store,
            config,
            node: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()),
            jobs_waiting: tokio::sync::Notify::new(),
            consents: Mutex::new(ConsentState::unloaded()),
            history_lock: Arc::new(Mutex::new(())),
            validator: Validator::new(),
            commits: std::sync::OnceLock::new(),
        })
    }

    /// Validate a record; the error lists the issues with their paths.
    pub fn check(&self, record: &Value) -> Result<(), GatewayError> {
        let issues = self.validator.validate(record);
        if issues.is_empty() {
            return Ok(());
        }
        Err(GatewayError::Unprocessable(issues))
    }
}
