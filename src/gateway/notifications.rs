//! The referrer's notifications of a Task change: id-only (Gravity subscription style), queued in the
//! outbox in the transaction that stores the change.

use super::{Gateway, GatewayError};
use crate::store::messages::NewDelivery;
use crate::store::{DeliveryKind, DeliveryStatus, Message, WriteTx};
use serde_json::{Value, json};

impl Gateway {
    /// Queue an id-only notification (Gravity subscription style) for the partners acting for the
    /// referrer, inside `tx`.
    pub(super) async fn notify_referrer(
        &self,
        tx: &mut WriteTx<'_>,
        org: Option<&str>,
        task_id: &str,
        version: i64,
    ) -> Result<(), GatewayError> {
        let Some(org) = org else { return Ok(()) };
        for (name, _) in self
            .config
            .partners
            .iter()
            .filter(|(_, p)| p.org == org && p.notify_url.is_some())
        {
            let message = Message {
                id: uuid::Uuid::new_v4().to_string(),
                source: "notification".into(),
                referral_key: format!("notification:Task/{task_id}/_history/{version}/{name}"),
                revision: 1,
                content_hash: String::new(),
                body: notification(&self.config.server.base_url, task_id, version),
            };
            let delivery = NewDelivery {
                kind: DeliveryKind::Notification,
                destination: name.clone(),
                status: DeliveryStatus::Pending,
            };
            self.store.insert_message(tx, &message, &[delivery]).await?;
        }
        Ok(())
    }
}

/// The id-only notification of a Task change: a `history` Bundle whose first entry is the
/// SubscriptionStatus-style Parameters and whose second names the Task, without its content.
pub fn notification(base_url: &str, task_id: &str, version: i64) -> Value {
    json!({
        "resourceType": "Bundle",
        "type": "history",
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "entry": [
            {"fullUrl": format!("urn:uuid:{}", uuid::Uuid::new_v4()), "resource": {
                "resourceType": "Parameters",
                "parameter": [
                    {"name": "type", "valueCode": "event-notification"},
                    {"name": "notification-event", "part": [
                        {"name": "event-number", "valueString": version.to_string()},
                        {"name": "focus", "valueReference": {"reference": format!("Task/{task_id}")}}
                    ]}
                ]
            }, "request": {"method": "GET", "url": "$status"}, "response": {"status": "200"}},
            {"fullUrl": format!("{base_url}/fhir/Task/{task_id}"), "request": {"method": "PUT", "url": format!("Task/{task_id}")}, "response": {"status": "200"}}
        ]
    })
}
