//! The outbox worker: claims due deliveries (a lease, `SKIP LOCKED` on PostgreSQL, so several nodes share
//! the work), re-runs the consent decision at send time, sends, and records the result. Deliveries run
//! concurrently, bounded per destination and in all (see [`run`]); the outbox promises no order between
//! deliveries (a retried one may arrive after a later one, as before): each carries its revision.
//!
//! Each step is one store transaction: the send-time decision with its audit entry (and, when withheld,
//! the withheld mark); after the send, the delivered mark with its disclosure and a `disclosed` audit
//! entry — a disclosure is recorded only once the receiver acknowledged; or the failure with its next
//! attempt. Retries span the configured window (`retry_window_ms`, from when the delivery was queued):
//! capped exponential backoff with jitter, or longer when the receiver's `Retry-After` asks. After the
//! window, or at once when the receiver refuses the request for good (a 4xx other than 408, 409, 425,
//! 429), a delivery is a dead letter, audited as not disclosed. Dead letters are retried when their
//! destination answers again: at once after any delivery to it succeeds, and by a probe (one dead letter
//! per destination every `dead_letter_probe_ms`). Each delivery carries an idempotency key so a receiver
//! that saw a request before can recognise it.

use super::destination::Outcome;
use super::send::Sender;
use crate::consent::audit::{AuditEntry, EntryKind};
use crate::consent::{Released, Withheld, gate};
use crate::gateway::Gateway;
use crate::store::{DeliveryKind, OutboxItem, StoreError, now_ms};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

const BATCH: usize = 16;

/// How many deliveries may be in flight: all together, and per destination (or notification endpoint).
struct Limits {
    global: Arc<Semaphore>,
    per: HashMap<String, Arc<Semaphore>>,
    sender: Arc<Sender>,
}

/// The two permits a delivery holds while it runs.
type Permits = (OwnedSemaphorePermit, OwnedSemaphorePermit);

impl Limits {
    fn new(server: &crate::config::Server, sender: Arc<Sender>) -> Self {
        Self {
            global: Arc::new(Semaphore::new(server.max_in_flight.max(1))),
            per: HashMap::new(),
            sender,
        }
    }

    /// The key of a delivery's destination (the outbox's `kind:destination`).
    fn key(item: &OutboxItem) -> String {
        format!("{}:{}", item.kind, item.destination)
    }

    /// The destinations with no room left, to leave out of the next claim.
    fn busy(&self) -> Vec<String> {
        self.per
            .iter()
            .filter(|(_, s)| s.available_permits() == 0)
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Room for a delivery, or `None` when its destination (or the worker) is full.
    fn try_acquire(&mut self, item: &OutboxItem) -> Option<Permits> {
        let notification = item.kind == DeliveryKind::Notification;
        let sender = &self.sender;
        let own = self.per.entry(Self::key(item)).or_insert_with(|| {
            Arc::new(Semaphore::new(
                sender.max_in_flight(&item.destination, notification),
            ))
        });
        let own = own.clone().try_acquire_owned().ok()?;
        let global = self.global.clone().try_acquire_owned().ok()?;
        Some((global, own))
    }
}

/// Run until `stop` turns true; the deliveries in flight are finished first (graceful shutdown).
///
/// Deliveries run concurrently, each in a task of its own: at most `server.max_in_flight` at once, and at
/// most `max_in_flight` per destination (`server.destination_max_in_flight` by default), each attempt
/// bounded by its destination's timeout. A destination with no room left is left out of the claims, so a
/// slow or silent receiver holds only its own slots and never delays the others.
pub async fn run(gateway: Arc<Gateway>, sender: Arc<Sender>, mut stop: watch::Receiver<bool>) {
    let poll = Duration::from_millis(gateway.config.server.outbox_poll_ms);
    let mut limits = Limits::new(&gateway.config.server, sender.clone());
    let mut tasks = JoinSet::new();
    let mut last_probe = now_ms();
    loop {
        if *stop.borrow() {
            break;
        }
        if now_ms() - last_probe >= gateway.config.server.dead_letter_probe_ms as i64 {
            last_probe = now_ms();
            probe(&gateway).await;
        }
        while tasks.try_join_next().is_some() {}
        let started = claim_and_start(&gateway, &sender, &mut limits, &mut tasks).await;
        if started == 0 {
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = stop.changed() => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
    }
    while tasks.join_next().await.is_some() {}
    tracing::info!("outbox worker stopped");
}

/// Claim what there is room for and start each delivery; how many started.
async fn claim_and_start(
    gateway: &Arc<Gateway>,
    sender: &Arc<Sender>,
    limits: &mut Limits,
    tasks: &mut JoinSet<()>,
) -> usize {
    let room = limits.global.available_permits().min(BATCH);
    if room == 0 {
        return 0;
    }
    let lease = gateway.config.server.claim_lease_ms as i64;
    let items = match gateway
        .store
        .claim_due_except(room as i64, lease, &limits.busy())
        .await
    {
        Ok(items) => items,
        Err(err) => {
            tracing::error!(error = %err, "outbox claim failed");
            return 0;
        }
    };
    let mut started = 0;
    for item in items {
        let Some(permits) = limits.try_acquire(&item) else {
            if let Err(err) = gateway.store.release_claim(&item).await {
                tracing::warn!(outbox = %item.id, error = %err, "could not give back a claim; it comes back when its lease ends");
            }
            continue;
        };
        let (gateway, sender) = (gateway.clone(), sender.clone());
        tasks.spawn(async move {
            deliver_guarded(&gateway, &sender, item).await;
            drop(permits);
        });
        started += 1;
    }
    started
}

async fn probe(gateway: &Gateway) {
    let quiet = gateway.config.server.dead_letter_probe_ms as i64;
    match gateway.store.probe_dead_letters(quiet).await {
        Ok(0) => {}
        Ok(probed) => tracing::info!(
            probed,
            "dead letters probed: one per destination tried again"
        ),
        Err(err) => tracing::error!(error = %err, "dead-letter probe failed"),
    }
}

/// What an attempt came to.
enum Attempt {
    /// The receiver acknowledged; the disclosure to record (referrals).
    Delivered(Option<(AuditEntry, crate::consent::audit::Disclosure)>),
    /// The gate withheld it at send time (already recorded).
    Withheld,
    /// The send failed (a retry or a permanent failure); the decision's audit entry (referrals), for a
    /// dead letter.
    Failed(Outcome, Option<AuditEntry>),
}

/// Deliver in a task of its own, so that a panic fails that delivery (retried like a failed send, never
/// a dead letter before its window ends) and never the worker.
async fn deliver_guarded(gateway: &Arc<Gateway>, sender: &Arc<Sender>, item: OutboxItem) {
    let task = tokio::spawn({
        let (gateway, sender, item) = (gateway.clone(), sender.clone(), item.clone());
        async move { deliver(&gateway, &sender, item).await }
    });
    let Err(err) = task.await else { return };
    tracing::error!(outbox = %item.id, panicked = err.is_panic(), "the delivery stopped on an internal error; retried later");
    let error = Outcome::retry("internal error while delivering (a bug, logged)");
    if let Err(err) = failed(gateway, &item, &error, None).await {
        tracing::error!(outbox = %item.id, error = %err, "could not record the failure; the lease will expire and it will be retried");
    }
}

async fn deliver(gateway: &Gateway, sender: &Sender, mut item: OutboxItem) {
    let lease = gateway.config.server.claim_lease_ms as i64;
    match gateway.store.renew_claim(&mut item, lease).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(outbox = %item.id, "the claim ran out while the batch was sent; another worker has it");
            return;
        }
        Err(err) => {
            tracing::error!(outbox = %item.id, error = %err, "could not renew the claim; left for its lease to end");
            return;
        }
    }
    let started = std::time::Instant::now();
    let attempt = match attempt(gateway, sender, &item).await {
        Ok(attempt) => attempt,
        Err(err) => {
            tracing::error!(outbox = %item.id, error = %err, "delivery could not be prepared; the lease will expire and it will be tried again");
            return;
        }
    };
    metrics::histogram!("onedoor_delivery_seconds").record(started.elapsed().as_secs_f64());
    let recorded = match attempt {
        Attempt::Delivered(disclosed) => delivered(gateway, &item, disclosed).await,
        Attempt::Withheld => Ok(()),
        Attempt::Failed(error, entry) => failed(gateway, &item, &error, entry).await,
    };
    if let Err(err) = recorded {
        tracing::error!(outbox = %item.id, error = %err, "could not record the delivery result; the lease will expire and it will be retried");
    }
}

async fn delivered(
    gateway: &Gateway,
    item: &OutboxItem,
    disclosed: Option<(AuditEntry, crate::consent::audit::Disclosure)>,
) -> Result<(), StoreError> {
    let store = &gateway.store;
    let mut tx = store.begin().await?;
    let mut head = store.lock_chain(&mut tx).await?;
    if store.mark_delivered(&mut tx, &item.id).await?
        && let Some((entry, disclosure)) = disclosed
    {
        store
            .record_disclosure(&mut tx, Some(&item.id), &disclosure)
            .await?;
        let entry = entry.for_delivery(EntryKind::Disclosed, &item.id);
        store.append_audit(&mut tx, &mut head, vec![entry]).await?;
    }
    // The destination answered: its dead letters go back in the queue with the same commit.
    let requeued = store.requeue_dead_in(&mut tx, &item.destination).await?;
    tx.commit().await?;
    metrics::counter!("onedoor_deliveries_total", "outcome" => "delivered").increment(1);
    tracing::info!(outbox = %item.id, message = %item.message_id, destination = %item.destination, "delivered");
    if requeued > 0 {
        tracing::info!(destination = %item.destination, requeued, "the destination answers again: its dead letters are queued again");
    }
    Ok(())
}

async fn failed(
    gateway: &Gateway,
    item: &OutboxItem,
    error: &Outcome,
    entry: Option<AuditEntry>,
) -> Result<(), StoreError> {
    let attempts = item.attempts + 1;
    let next = match error {
        Outcome::Retry { after, .. } => {
            next_attempt(&gateway.config.server, item, attempts, *after)
        }
        Outcome::Delivered | Outcome::Permanent { .. } => None,
    };
    let error = error.reason().unwrap_or_default();
    let outcome = if next.is_some() { "retried" } else { "dead" };
    metrics::counter!("onedoor_deliveries_total", "outcome" => outcome).increment(1);
    tracing::warn!(outbox = %item.id, message = %item.message_id, attempts, outcome, error = %error, "delivery failed");
    let store = &gateway.store;
    let mut tx = store.begin().await?;
    let mut head = store.lock_chain(&mut tx).await?;
    store.mark_failed(&mut tx, &item.id, error, next).await?;
    if let (None, Some(entry)) = (next, entry) {
        let entry = entry.for_delivery(EntryKind::NotDisclosed, &item.id);
        store.append_audit(&mut tx, &mut head, vec![entry]).await?;
    }
    tx.commit().await
}

/// When to try again, or `None` for a dead letter: capped exponential backoff with jitter, at least what
/// `Retry-After` asks, and never past the retry window (nor `max_attempts`, when set).
fn next_attempt(
    server: &crate::config::Server,
    item: &OutboxItem,
    attempts: i64,
    retry_after: Option<Duration>,
) -> Option<i64> {
    if server.max_attempts > 0 && attempts >= server.max_attempts {
        return None;
    }
    let backoff = backoff_ms(server.retry_base_ms, server.retry_max_delay_ms, attempts);
    let asked = retry_after.map_or(0, |d| d.as_millis() as i64);
    let at = now_ms() + backoff.max(asked);
    (at <= item.created_at + server.retry_window_ms as i64).then_some(at)
}

async fn attempt(
    gateway: &Gateway,
    sender: &Sender,
    item: &OutboxItem,
) -> Result<Attempt, StoreError> {
    let Some(message) = gateway.store.message(&item.message_id).await? else {
        return Ok(Attempt::Failed(Outcome::retry("message not found"), None));
    };
    crate::http::guard::test_panic_if_marked(
        &message.body,
        crate::http::guard::TEST_PANIC_DELIVERY,
    );
    if item.kind == DeliveryKind::Notification {
        let subscription = gateway.store.subscription(&item.destination).await?;
        let outcome = sender
            .channels()
            .notify(subscription.as_ref(), &message.body, &item.idempotency_key)
            .await;
        return Ok(match outcome {
            Outcome::Delivered => {
                gateway.store.subscription_sent(&item.destination).await?;
                Attempt::Delivered(None)
            }
            failed => Attempt::Failed(failed, None),
        });
    }
    let source = gateway.source_of(&message).await?;
    let Some(request) = gateway.disclosing_to(&item.destination, source.as_deref()) else {
        let error = Outcome::retry(format!(
            "destination '{}' is no longer configured",
            item.destination
        ));
        return Ok(Attempt::Failed(error, None));
    };
    let (released, entry) = match decide_at_send(gateway, item, &message.body, request).await? {
        Some(decided) => decided,
        None => return Ok(Attempt::Withheld),
    };
    Ok(
        match sender
            .send(&item.destination, &released, &item.idempotency_key)
            .await
        {
            Outcome::Delivered => Attempt::Delivered(Some((entry, released.disclosure().clone()))),
            failed => Attempt::Failed(failed, Some(entry)),
        },
    )
}

/// The send-time decision, audited in its own transaction; a withheld delivery is marked in it too
/// (`None`). A redacted record that is not valid FHIR is never sent: it fails like a send would.
async fn decide_at_send(
    gateway: &Gateway,
    item: &OutboxItem,
    record: &Value,
    request: crate::consent::Disclosing,
) -> Result<Option<(Released<Value>, AuditEntry)>, StoreError> {
    let store = &gateway.store;
    let now = chrono::Utc::now().fixed_offset();
    let mut tx = store.begin().await?;
    let mut head = store.lock_chain(&mut tx).await?;
    let outcome = gateway
        .with_gate(&mut tx, |gate| {
            gate.release_for_delivery(record, request.clone(), now)
        })
        .await
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let decision = match &outcome {
        Ok(released) => released.decision().clone(),
        Err(Withheld::Denied(decision)) => (**decision).clone(),
        // The decision could not be audited: a store failure, retried when the lease ends — never a
        // withheld or dead delivery.
        Err(Withheld::Audit(err)) => return Err(StoreError::Corrupt(err.to_string())),
        Err(other) => {
            tracing::error!(outbox = %item.id, error = %other, "the released record is not valid; not sent");
            store
                .mark_withheld(&mut tx, &item.id, &other.to_string())
                .await?;
            tx.commit().await?;
            return Ok(None);
        }
    };
    let entry = gate::audit_entry(&decision, &request, now);
    store
        .append_audit(&mut tx, &mut head, vec![entry.clone()])
        .await?;
    match outcome {
        Ok(released) => {
            tx.commit().await?;
            Ok(Some((released, entry)))
        }
        Err(_) => {
            let reason = decision.explanation.last().cloned().unwrap_or_default();
            store.mark_withheld(&mut tx, &item.id, &reason).await?;
            tx.commit().await?;
            metrics::counter!("onedoor_deliveries_total", "outcome" => "withheld").increment(1);
            tracing::info!(outbox = %item.id, message = %item.message_id, "withheld by the consent gate at send time");
            Ok(None)
        }
    }
}

/// Exponential backoff with jitter: base × 2^(attempt−1), plus up to one base of jitter, at most `cap`.
pub fn backoff_ms(base: u64, cap: u64, attempt: i64) -> i64 {
    let exponent = (attempt.max(1) - 1).min(30) as u32;
    let jitter = uuid::Uuid::new_v4().as_u128() as u64 % base.max(1);
    let delay = base
        .saturating_mul(1u64 << exponent)
        .saturating_add(jitter)
        .min(cap.max(1));
    delay as i64
}

#[cfg(test)]
mod tests {
    use super::backoff_ms;

    #[test]
    fn backoff_doubles_with_bounded_jitter_up_to_the_cap() {
        for attempt in 1..6 {
            let delay = backoff_ms(100, 1_000_000, attempt);
            let floor = 100 * (1 << (attempt - 1));
            assert!(
                delay >= floor && delay < floor + 100,
                "attempt {attempt}: {delay}"
            );
        }
        assert_eq!(backoff_ms(1000, 900_000, 40), 900_000);
    }
}
