//! The outbox worker: claims due deliveries (a lease, `SKIP LOCKED` on PostgreSQL, so several nodes share
//! the work), re-runs the consent decision at send time, sends, and records the result: delivered, retried
//! later (exponential backoff with jitter), dead-lettered after the configured attempts, or withheld.
//! Each delivery carries an idempotency key so a receiver that saw a request before can recognise it.

use super::send::{SendError, Sender};
use crate::consent::{Disclosing, Withheld};
use crate::gateway::Gateway;
use crate::store::{OutboxItem, now_ms};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

const BATCH: i64 = 16;

/// Run until `stop` turns true; the batch in hand is finished first (graceful shutdown).
pub async fn run(gateway: Arc<Gateway>, sender: Arc<Sender>, mut stop: watch::Receiver<bool>) {
    let poll = Duration::from_millis(gateway.config.server.outbox_poll_ms);
    loop {
        if *stop.borrow() {
            break;
        }
        let worked = match gateway
            .store
            .claim_due(BATCH, gateway.config.server.claim_lease_ms as i64)
            .await
        {
            Ok(items) => {
                let count = items.len();
                for item in items {
                    deliver(&gateway, &sender, item).await;
                }
                count > 0
            }
            Err(err) => {
                tracing::error!(error = %err, "outbox claim failed");
                false
            }
        };
        if !worked {
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = stop.changed() => {}
            }
        }
    }
    tracing::info!("outbox worker stopped");
}

async fn deliver(gateway: &Gateway, sender: &Sender, item: OutboxItem) {
    let started = std::time::Instant::now();
    let result = attempt(gateway, sender, &item).await;
    metrics::histogram!("onedoor_delivery_seconds").record(started.elapsed().as_secs_f64());
    let store = &gateway.store;
    let recorded = match result {
        Ok(()) => {
            metrics::counter!("onedoor_deliveries_total", "outcome" => "delivered").increment(1);
            tracing::info!(outbox = %item.id, message = %item.message_id, destination = %item.destination, "delivered");
            store.delivered(&item.id).await
        }
        Err(Failure::Withheld(reason)) => {
            metrics::counter!("onedoor_deliveries_total", "outcome" => "withheld").increment(1);
            tracing::info!(outbox = %item.id, message = %item.message_id, "withheld by the consent gate at send time");
            store.withheld(&item.id, &reason).await
        }
        Err(Failure::Send(error)) => {
            let attempts = item.attempts + 1;
            let next = (attempts < gateway.config.server.max_attempts)
                .then(|| now_ms() + backoff_ms(gateway.config.server.retry_base_ms, attempts));
            let outcome = if next.is_some() { "retried" } else { "dead" };
            metrics::counter!("onedoor_deliveries_total", "outcome" => outcome).increment(1);
            tracing::warn!(outbox = %item.id, message = %item.message_id, attempts, outcome, error = %error, "delivery failed");
            store.failed(&item.id, &error.to_string(), next).await
        }
    };
    if let Err(err) = recorded {
        tracing::error!(outbox = %item.id, error = %err, "could not record the delivery result; the lease will expire and it will be retried");
    }
}

enum Failure {
    Withheld(String),
    Send(SendError),
}

async fn attempt(gateway: &Gateway, sender: &Sender, item: &OutboxItem) -> Result<(), Failure> {
    let message = match gateway.store.message(&item.message_id).await {
        Ok(Some(message)) => message,
        Ok(None) => return Err(Failure::Send(SendError::Other("message not found".into()))),
        Err(err) => return Err(Failure::Send(SendError::Other(err.to_string()))),
    };
    if item.kind == "notification" {
        return sender
            .notify(&item.destination, &message.body, &item.idempotency_key)
            .await
            .map_err(Failure::Send);
    }
    let Some(destination) = gateway.config.destinations.get(&item.destination) else {
        return Err(Failure::Send(SendError::Other(format!(
            "destination '{}' is no longer configured",
            item.destination
        ))));
    };
    let request = Disclosing {
        recipient: destination.org.clone(),
        purpose: destination.purpose.clone(),
        source: None,
    };
    let released =
        gateway
            .gate
            .lock()
            .await
            .release(message.body, request, chrono::Utc::now().fixed_offset());
    match released {
        Ok(released) => sender
            .send(&item.destination, &released, &item.idempotency_key)
            .await
            .map_err(Failure::Send),
        Err(Withheld::Denied(decision)) => Err(Failure::Withheld(
            decision.explanation.last().cloned().unwrap_or_default(),
        )),
        Err(other) => Err(Failure::Send(SendError::Other(other.to_string()))),
    }
}

/// Exponential backoff with jitter: base × 2^(attempt−1), plus up to one base of jitter, at most 10 minutes.
pub fn backoff_ms(base: u64, attempt: i64) -> i64 {
    let exponent = (attempt.max(1) - 1).min(16) as u32;
    let delay = base.saturating_mul(1u64 << exponent).min(600_000);
    let jitter = uuid::Uuid::new_v4().as_u128() as u64 % base.max(1);
    (delay + jitter) as i64
}

#[cfg(test)]
mod tests {
    use super::backoff_ms;

    #[test]
    fn backoff_doubles_with_bounded_jitter() {
        for attempt in 1..6 {
            let delay = backoff_ms(100, attempt);
            let floor = 100 * (1 << (attempt - 1));
            assert!(
                delay >= floor && delay < floor + 100,
                "attempt {attempt}: {delay}"
            );
        }
        assert!(backoff_ms(1000, 40) <= 601_000);
    }
}
