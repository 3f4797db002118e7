//! Accepting a submission, inside its group commit's transaction: whether it is new, a revision or a
//! duplicate, where it is routed, the consent gate's decision per destination (audited), and what it stores
//! (its resources, the message with its outbox rows, gathered with the batch's others in `batch`), and the
//! job it came in advanced — all committed before anything is acknowledged.

use super::batch::{BatchReads, BatchWrites, SubmissionWrites};
use super::disclosure::DecidedEarly;
use super::plan::Plan;
use super::{Accepted, Arrival, Gateway, GatewayError, JobCursor};
use crate::consent::audit::ChainHead;
use crate::store::messages::{NewDelivery, Revision};
use crate::store::{DeliveryKind, DeliveryStatus, Message, StoreError, WriteTx};
use serde_json::Value;

/// One group's resources as the pipeline built them, each validated, made one record (a transaction
/// Bundle, or a passthrough record's own resource): what a job hands the gateway. Only the pipeline's sinks
/// make one, so the gateway checks only what assembling added ([`Gateway::prepare_assembled`]).
pub struct AssembledRecord(Value);

impl AssembledRecord {
    /// The record of a group the pipeline handed its sink ([`crate::pipeline::Sink::accept`]).
    pub(crate) fn of_group(resources: Vec<Value>, passthrough: bool) -> Self {
        Self(crate::canonical::bundle::group_record(
            resources,
            passthrough,
        ))
    }

    /// The record.
    pub fn value(&self) -> &Value {
        &self.0
    }
}

/// A submission checked and planned, ready for its transaction.
pub(super) struct Prepared {
    source: String,
    sender_org: String,
    bundle: Value,
    plan: Plan,
    /// Its consent decisions as a new referral, made on the consent state this node had loaded.
    early: Option<DecidedEarly>,
}

impl Prepared {
    /// What deciding it reads: its referral's key, and its resources' (and its Task's) types and ids.
    pub(super) fn reads(&self) -> (&str, Vec<(&str, &str)>) {
        (&self.plan.key, self.plan.keys())
    }
}

impl Gateway {
    /// Accept a referral bundle (or any bundle) from `source`, sent on behalf of `sender_org`.
    ///
    /// One referral is one referral whatever path it comes by: its key is its ServiceRequest (whose id the
    /// mappings derive from the source system and record id). An identical copy is a duplicate; a changed
    /// copy is the next revision, decided again and delivered to every destination that had the earlier
    /// one as well as to the current routes; the Task keeps its status and its history shows the revision.
    /// Submissions arriving together share one transaction (group commit, `commits`); none is answered
    /// before that transaction commits.
    pub async fn accept(
        self: &std::sync::Arc<Self>,
        source: &str,
        sender_org: &str,
        bundle: Value,
    ) -> Result<Accepted, GatewayError> {
        let prepared = self.prepare(source, sender_org, bundle).await?;
        self.commit_grouped(prepared).await
    }

    /// Accept a referral built around a ServiceRequest posted on its own ([`Gateway::referral_from_request`]),
    /// as [`Gateway::accept`] does, the request not validated a second time: each other resource of the
    /// bundle is, on its own (the Bundle around them is the gateway's).
    pub async fn accept_built(
        self: &std::sync::Arc<Self>,
        source: &str,
        sender_org: &str,
        built: super::tasks::BuiltReferral,
    ) -> Result<Accepted, GatewayError> {
        let issues = self.validator.validate_entries_from(&built.bundle, 1);
        if !issues.is_empty() {
            return Err(GatewayError::Unprocessable(issues));
        }
        let prepared = self
            .prepare_checked(source, sender_org, built.bundle)
            .await?;
        self.commit_grouped(prepared).await
    }

    /// What is worked out before the transaction: the bundle validated (once, here), its performer from
    /// the directory, its plan, and its consent decisions as a new referral (kept inside the transaction
    /// if it is one and the consent state has not changed since: off the group commit's serial path).
    pub(super) async fn prepare(
        &self,
        source: &str,
        sender_org: &str,
        bundle: Value,
    ) -> Result<Prepared, GatewayError> {
        self.check(&bundle)?;
        self.prepare_checked(source, sender_org, bundle).await
    }

    /// [`Gateway::prepare`] for a job's record, whose resources the pipeline validated: only what
    /// assembling them into the record added is checked ([`crate::validation::Validator::validate_assembled`]).
    pub(super) async fn prepare_assembled(
        &self,
        source: &str,
        sender_org: &str,
        record: AssembledRecord,
    ) -> Result<Prepared, GatewayError> {
        let issues = self.validator.validate_assembled(&record.0);
        if !issues.is_empty() {
            return Err(GatewayError::Unprocessable(issues));
        }
        self.prepare_checked(source, sender_org, record.0).await
    }

    /// [`Gateway::prepare`] for a bundle already validated.
    async fn prepare_checked(
        &self,
        source: &str,
        sender_org: &str,
        bundle: Value,
    ) -> Result<Prepared, GatewayError> {
        super::ownership::carries_only_referral_records(&bundle)?;
        let bundle = self.assign_from_directory(bundle).await?;
        let plan = Plan::of(&bundle, sender_org);
        let routes = self.routes_for(plan.performer.as_deref(), plan.request(&bundle));
        let early = self.decide_early(&bundle, routes, sender_org).await;
        Ok(Prepared {
            source: source.to_owned(),
            sender_org: sender_org.to_owned(),
            bundle,
            plan,
            early,
        })
    }

    /// An acceptance inside a group commit's transaction `tx`: the arrival is decided, consent asked per
    /// destination, and what it writes (audit entries sealed on `head`, resources, the message and its
    /// outbox rows) gathered into `batch`, written with the batch's others; the job (if any) advanced.
    /// It is decided on what `reads` read for the whole batch, unless this transaction wrote (or
    /// gathered) any of that since: then it reads again, after what is gathered is written.
    /// `Ok(Err(_))`: refused (nothing of it gathered); `Err`: the batch's earlier writes, written first
    /// because this submission reads what they wrote, failed: the transaction cannot go on.
    pub(super) async fn accept_into(
        &self,
        tx: &mut WriteTx<'_>,
        batch: &mut BatchWrites,
        head: &mut ChainHead,
        (prepared, reads): (Prepared, Option<&BatchReads>),
        job: Option<&mut JobCursor>,
    ) -> Result<Result<Accepted, GatewayError>, StoreError> {
        let references = prepared.plan.references();
        let key = prepared.plan.key.as_str();
        let out_of_date = batch.changed(key, references.iter().map(String::as_str));
        if batch.touches(key, references.iter().map(String::as_str)) {
            batch.write(&self.store, tx).await?;
        }
        let reads = reads.filter(|_| !out_of_date);
        Ok(self
            .decide_submission(tx, batch, head, (prepared, reads), job)
            .await)
    }

    async fn decide_submission(
        &self,
        tx: &mut WriteTx<'_>,
        batch: &mut BatchWrites,
        head: &mut ChainHead,
        (prepared, reads): (Prepared, Option<&BatchReads>),
        job: Option<&mut JobCursor>,
    ) -> Result<Accepted, GatewayError> {
        // A job's records are not answered one by one: no stored copy of their ServiceRequest is kept.
        let answered = job.is_none();
        let read_now;
        let reads = match reads {
            Some(reads) => reads,
            None => {
                read_now = BatchReads::read(&self.store, tx, &[prepared.reads()]).await?;
                &read_now
            }
        };
        let Prepared {
            source,
            sender_org,
            bundle,
            plan,
            early,
        } = prepared;
        let held = &reads.held;
        let latest = reads.revisions.get(&plan.key).cloned();
        self.owned_by_sender(held, &bundle, &sender_org)?;
        let (arrival, revision) = arrival_of(latest.as_ref(), &plan);
        if arrival == Arrival::Duplicate {
            advance(job, arrival);
            let mut accepted = plan.accepted(
                latest.map(|l| l.id).unwrap_or_default(),
                arrival,
                revision,
                Vec::new(),
            );
            if answered {
                accepted.service_request_stored = plan.stored_request(held, &[]);
            }
            return Ok(accepted);
        }
        let destinations = self.destinations(tx, &plan, &bundle, arrival).await?;
        // Decided early as a new referral: still so if it is one and keeps its bundle (no Task held).
        let as_prepared = arrival == Arrival::New
            && (plan.task.as_deref()).is_none_or(|task| held.get("Task", task).is_none());
        let early = early.filter(|_| as_prepared);
        let body = self.keep_held_task(held, bundle, &plan, revision)?;
        let (routed, entries) = self
            .decide_all(tx, &body, &destinations, &sender_org, early)
            .await?;
        let (resources, versions) = held.plan_versions(&plan.indexed(&body));
        let message = Message {
            id: uuid::Uuid::now_v7().to_string(),
            source,
            referral_key: plan.key.clone(),
            revision,
            content_hash: plan.content_hash.clone(),
            body,
            versions,
        };
        let mut accepted = plan.accepted(message.id.clone(), arrival, revision, routed);
        if answered {
            accepted.service_request_stored = plan.stored_request(held, &resources);
        }
        batch.add(
            head,
            SubmissionWrites {
                entries,
                resources,
                message,
                deliveries: deliveries(&accepted.routed),
            },
        );
        advance(job, arrival);
        Ok(accepted)
    }

    /// The destinations of a new or updated referral: its current routes, and for a revision every
    /// destination that had an earlier one.
    async fn destinations(
        &self,
        tx: &mut WriteTx<'_>,
        plan: &Plan,
        bundle: &Value,
        arrival: Arrival,
    ) -> Result<Vec<String>, GatewayError> {
        let mut destinations = self.routes_for(plan.performer.as_deref(), plan.request(bundle));
        if arrival == Arrival::Updated {
            for earlier in self.store.earlier_recipients(tx, &plan.key).await? {
                if !destinations.contains(&earlier) {
                    destinations.push(earlier);
                }
            }
        }
        Ok(destinations)
    }
}

/// Count and log an acceptance once its transaction has committed.
pub(super) fn accepted_now(accepted: &Accepted) {
    if accepted.arrival != Arrival::Duplicate {
        metrics::counter!("onedoor_messages_accepted_total").increment(1);
    }
    tracing::info!(message = %accepted.message, revision = accepted.revision, arrival = ?accepted.arrival, destinations = accepted.routed.len(), "message accepted");
}

/// New, a changed copy (the next revision) or an identical copy of the revision held, with its revision.
fn arrival_of(latest: Option<&Revision>, plan: &Plan) -> (Arrival, i64) {
    match latest {
        Some(held) if held.content_hash == plan.content_hash => (Arrival::Duplicate, held.revision),
        Some(held) => (Arrival::Updated, held.revision + 1),
        None => (Arrival::New, 1),
    }
}

/// The outbox rows of a routed message: pending where consent let it, withheld elsewhere.
fn deliveries(routed: &[(String, String)]) -> Vec<NewDelivery> {
    routed
        .iter()
        .map(|(destination, status)| NewDelivery {
            kind: DeliveryKind::Referral,
            destination: destination.clone(),
            status: if status == "pending" {
                DeliveryStatus::Pending
            } else {
                DeliveryStatus::Withheld
            },
        })
        .collect()
}

/// Advance a job (if any) by one record (its progress is written with the job's batch).
fn advance(job: Option<&mut JobCursor>, arrival: Arrival) {
    let Some(cursor) = job else { return };
    cursor.job.records_done += 1;
    match arrival {
        Arrival::New => cursor.job.counts.accepted += 1,
        Arrival::Updated => cursor.job.counts.updated += 1,
        Arrival::Duplicate => cursor.job.counts.duplicates += 1,
    }
}
