//! The referrer's notifications of a Task status change, through FHIR Subscriptions (R5 Backport IG for
//! R4, topic [`TASK_STATUS_TOPIC`](crate::canonical::subscription::TASK_STATUS_TOPIC)): every active
//! Subscription of the referring organization's partners that wants the new status gets an id-only
//! event notification, numbered and queued in the outbox in the transaction that stores the change. A
//! partner's `notify_url` is the shortcut for one such Subscription, kept in step with the configuration
//! at start-up.

use super::{Gateway, GatewayError};
use crate::canonical::subscription::{self, Notification, NotificationType};
use crate::store::messages::NewDelivery;
use crate::store::{
    DeliveryKind, DeliveryStatus, Message, StoredSubscription, SubscriptionStatus, WriteTx,
};

/// The id of the Subscription a partner's `notify_url` stands for.
pub fn shortcut_id(partner: &str) -> String {
    let clean: String = partner
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .take(48)
        .collect();
    format!("notify-url-{clean}")
}

impl Gateway {
    /// Queue an event notification of Task `task_id` (now at `version`, status `status`) for every active
    /// Subscription of the referring organization `org` that wants it, inside `tx`.
    pub(super) async fn notify_referrer(
        &self,
        tx: &mut WriteTx<'_>,
        org: Option<&str>,
        task_id: &str,
        version: i64,
        status: &str,
    ) -> Result<(), GatewayError> {
        let Some(org) = org else { return Ok(()) };
        for listener in self.store.active_subscriptions(tx, org).await? {
            if !listener.wants(status) {
                continue;
            }
            let events = self.store.next_event(tx, &listener.id).await?;
            let body = subscription::notification_bundle(&Notification {
                base_url: &self.config.server.base_url,
                subscription: &listener.id,
                status: SubscriptionStatus::Active.as_str(),
                kind: NotificationType::EventNotification,
                events,
                focus: Some(task_id),
            });
            let message = Message {
                id: uuid::Uuid::new_v4().to_string(),
                source: "notification".into(),
                referral_key: format!(
                    "notification:Task/{task_id}/_history/{version}/Subscription/{}",
                    listener.id
                ),
                revision: 1,
                content_hash: String::new(),
                body,
                versions: Vec::new(),
            };
            let delivery = NewDelivery {
                kind: DeliveryKind::Notification,
                destination: listener.id.clone(),
                status: DeliveryStatus::Pending,
            };
            self.store.insert_message(tx, &message, &[delivery]).await?;
        }
        Ok(())
    }

    /// Keep the Subscriptions that partners' `notify_url`s stand for in step with the configuration: one
    /// active Subscription per partner with a `notify_url` (its endpoint as configured), and those of
    /// partners without one any more turned off. No handshake: the configuration is trusted.
    pub async fn subscribe_notify_urls(&self) -> Result<(), GatewayError> {
        for (name, partner) in &self.config.partners {
            let id = shortcut_id(name);
            let Some(url) = &partner.notify_url else {
                self.store
                    .set_subscription_status(&id, SubscriptionStatus::Off)
                    .await?;
                continue;
            };
            let existing = self.store.subscription(&id).await?;
            if existing.as_ref().is_some_and(|s| {
                s.endpoint == *url && s.org == partner.org && s.status == SubscriptionStatus::Active
            }) {
                continue;
            }
            let asked = subscription::shortcut(name, url);
            let stored = StoredSubscription {
                id: id.clone(),
                partner: name.clone(),
                org: partner.org.clone(),
                version: 1,
                status: SubscriptionStatus::Active,
                endpoint: url.clone(),
                headers: Vec::new(),
                heartbeat_secs: 0,
                statuses: Vec::new(),
                events: 0,
                last_sent_ms: crate::store::now_ms(),
                body: subscription::resource(&asked, &id, "active"),
            };
            self.store.put_subscription(&stored).await?;
        }
        Ok(())
    }
}
