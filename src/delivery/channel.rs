//! Subscription channels (rest-hook, R5 Subscriptions Backport IG for R4): the one HTTP client every
//! channel shares (TLS verification on, `server.notify_timeout_ms` per attempt), the POST of a
//! notification Bundle with the channel's own headers (an authorization token the subscriber chose, so it
//! can trust what arrives), the handshake a new Subscription must pass before it is active, and the
//! heartbeats sent to active Subscriptions nothing was sent to for their period.

use super::destination::{Delivery, Outcome};
use super::http::HttpPost;
use crate::canonical::subscription::{self, Notification, NotificationType};
use crate::gateway::Gateway;
use crate::store::{StoredSubscription, SubscriptionStatus};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often the heartbeat loop looks for Subscriptions due one.
const HEARTBEAT_TICK: Duration = Duration::from_millis(500);

/// The client Subscription channels are sent through.
#[derive(Clone)]
pub struct Channels {
    client: reqwest::Client,
    timeout: Duration,
}

impl Channels {
    /// A client whose attempts end after `timeout_ms`.
    pub fn new(timeout_ms: u64) -> Result<Self, String> {
        let timeout = Duration::from_millis(timeout_ms.max(1));
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(timeout)
            .build()
            .map_err(|e| format!("notification client: {e}"))?;
        Ok(Self { client, timeout })
    }

    /// POST a notification Bundle to `endpoint` with the channel's `headers`, within the timeout.
    pub async fn post(
        &self,
        endpoint: &str,
        headers: &[String],
        body: &serde_json::Value,
        key: &str,
    ) -> Outcome {
        let post = HttpPost::channel(self.client.clone(), endpoint, headers);
        let sent = post.post(Delivery::notification(body, key), "application/fhir+json");
        match tokio::time::timeout(self.timeout, sent).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::retry(format!("no answer within {} ms", self.timeout.as_millis())),
        }
    }

    /// Deliver a queued notification to its Subscription as stored now (a Subscription deleted or turned
    /// off meanwhile is a permanent failure: nothing is sent).
    pub async fn notify(
        &self,
        subscription: Option<&StoredSubscription>,
        body: &serde_json::Value,
        key: &str,
    ) -> Outcome {
        let Some(found) = subscription else {
            return Outcome::Permanent {
                reason: "the Subscription no longer exists".into(),
            };
        };
        if !matches!(
            found.status,
            SubscriptionStatus::Active | SubscriptionStatus::Error
        ) {
            return Outcome::Permanent {
                reason: format!("the Subscription is {}", found.status),
            };
        }
        self.post(&found.endpoint, &found.headers, body, key).await
    }

    /// The handshake of a new Subscription: a `handshake` notification its endpoint must accept (2xx);
    /// otherwise what went wrong, to tell the subscriber.
    pub async fn handshake(
        &self,
        base_url: &str,
        id: &str,
        endpoint: &str,
        headers: &[String],
    ) -> Result<(), String> {
        let body = subscription::notification_bundle(&Notification {
            base_url,
            subscription: id,
            status: SubscriptionStatus::Requested.as_str(),
            kind: NotificationType::Handshake,
            events: 0,
            focus: None,
        });
        match self
            .post(endpoint, headers, &body, &format!("handshake:{id}"))
            .await
        {
            Outcome::Delivered => Ok(()),
            Outcome::Retry { reason, .. } | Outcome::Permanent { reason } => Err(reason),
        }
    }

    /// Send one heartbeat to `found`.
    async fn heartbeat(&self, base_url: &str, found: &StoredSubscription) -> Outcome {
        let body = subscription::notification_bundle(&Notification {
            base_url,
            subscription: &found.id,
            status: found.status.as_str(),
            kind: NotificationType::Heartbeat,
            events: found.events,
            focus: None,
        });
        let key = format!("heartbeat:{}:{}", found.id, uuid::Uuid::new_v4());
        self.post(&found.endpoint, &found.headers, &body, &key)
            .await
    }
}

/// Send heartbeats until `stop` turns true: every Subscription with a heartbeat period that nothing was
/// sent to for that period gets one (several nodes may each send one; a heartbeat carries no event, so a
/// second is harmless). A heartbeat that fails is counted and logged (the Subscription's id, no content);
/// the next comes a period later.
pub async fn run_heartbeats(
    gateway: Arc<Gateway>,
    channels: Channels,
    mut stop: watch::Receiver<bool>,
) {
    let base_url = gateway.config.server.base_url.clone();
    loop {
        if *stop.borrow() {
            return;
        }
        match gateway.store.heartbeats_due().await {
            Ok(due) => {
                for found in due {
                    if let Err(error) = gateway.store.subscription_sent(&found.id).await {
                        tracing::warn!(%error, "cannot record a heartbeat");
                        continue;
                    }
                    let channels = channels.clone();
                    let base_url = base_url.clone();
                    tokio::spawn(async move {
                        let outcome = channels.heartbeat(&base_url, &found).await;
                        if outcome != Outcome::Delivered {
                            metrics::counter!("onedoor_heartbeats_failed_total").increment(1);
                            tracing::warn!(subscription = %found.id, ?outcome, "heartbeat not delivered");
                        }
                    });
                }
            }
            Err(error) => tracing::warn!(%error, "cannot read the Subscriptions due a heartbeat"),
        }
        tokio::select! {
            _ = tokio::time::sleep(HEARTBEAT_TICK) => {}
            _ = stop.changed() => {}
        }
    }
}
