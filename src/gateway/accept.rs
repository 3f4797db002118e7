//! Accepting a submission: the one transaction that decides whether it is new, a revision or a duplicate,
//! routes it, asks the consent gate per destination (audited), stores its resources and the message with
//! its outbox rows, and advances the job it came in — all committed before anything is acknowledged.

use super::plan::Plan;
use super::{Accepted, Arrival, Gateway, GatewayError, JobCursor};
use crate::store::messages::{NewDelivery, Revision};
use crate::store::{DeliveryKind, DeliveryStatus, Message, Store, StoreError, WriteTx};
use serde_json::Value;

impl Gateway {
    /// Accept a referral bundle (or any bundle) from `source`, sent on behalf of `sender_org`.
    pub async fn accept(
        &self,
        source: &str,
        sender_org: &str,
        bundle: Value,
    ) -> Result<Accepted, GatewayError> {
        self.accept_for_job(source, sender_org, bundle, None).await
    }

    /// Accept a bundle; with a job cursor, the job advances in the same transaction.
    ///
    /// One referral is one referral whatever path it comes by: its key is its ServiceRequest (whose id the
    /// mappings derive from the source system and record id). An identical copy is a duplicate; a changed
    /// copy is the next revision, decided again and delivered to every destination that had the earlier
    /// one as well as to the current routes; the Task keeps its status and its history shows the revision.
    pub async fn accept_for_job(
        &self,
        source: &str,
        sender_org: &str,
        bundle: Value,
        job: Option<&mut JobCursor>,
    ) -> Result<Accepted, GatewayError> {
        self.check(&bundle)?;
        let bundle = self.assign_from_directory(bundle).await?;
        let plan = Plan::of(&bundle, sender_org);
        let mut tx = self.store.begin().await?;
        let mut head = self.store.lock_chain(&mut tx).await?;
        self.owned_by_sender(&mut tx, &bundle, sender_org).await?;
        let latest = self.store.latest_revision(&mut tx, &plan.key).await?;
        let (arrival, revision) = arrival_of(latest.as_ref(), &plan);
        if arrival == Arrival::Duplicate {
            advance(&self.store, &mut tx, job, arrival).await?;
            tx.commit().await?;
            return Ok(plan.accepted(
                latest.map(|l| l.id).unwrap_or_default(),
                arrival,
                revision,
                Vec::new(),
            ));
        }
        let destinations = self.destinations(&mut tx, &plan, &bundle, arrival).await?;
        let body = self
            .keep_held_task(&mut tx, bundle, &plan, revision)
            .await?;
        let (routed, entries) = self
            .decide_all(&mut tx, &body, &destinations, sender_org)
            .await?;
        self.store.append_audit(&mut tx, &mut head, entries).await?;
        for (resource, index) in plan.indexed(&body) {
            self.store
                .upsert_resource(&mut tx, &resource, &index)
                .await?;
        }
        let message = Message {
            id: uuid::Uuid::new_v4().to_string(),
            source: source.to_owned(),
            referral_key: plan.key.clone(),
            revision,
            content_hash: plan.content_hash.clone(),
            body,
        };
        self.store
            .insert_message(&mut tx, &message, &deliveries(&routed))
            .await?;
        advance(&self.store, &mut tx, job, arrival).await?;
        tx.commit().await?;
        metrics::counter!("onedoor_messages_accepted_total").increment(1);
        tracing::info!(message = %message.id, revision, arrival = ?arrival, destinations = routed.len(), "message accepted");
        Ok(plan.accepted(message.id, arrival, revision, routed))
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

/// Advance a job (if any) by one record in `tx`.
async fn advance(
    store: &Store,
    tx: &mut WriteTx<'_>,
    job: Option<&mut JobCursor>,
    arrival: Arrival,
) -> Result<(), StoreError> {
    let Some(cursor) = job else { return Ok(()) };
    cursor.job.records_done += 1;
    match arrival {
        Arrival::New => cursor.job.counts.accepted += 1,
        Arrival::Updated => cursor.job.counts.updated += 1,
        Arrival::Duplicate => cursor.job.counts.duplicates += 1,
    }
    store
        .job_progress(tx, &cursor.job, &cursor.node, cursor.lease_ms)
        .await
}
