//! FHIR Subscriptions as the store keeps them (`subscriptions` table): the partner and organization that
//! asked, the channel (endpoint, headers, heartbeat period), the Task statuses it filters on, its status,
//! and the event counter, advanced in the transaction that queues each event notification so event
//! numbers are never reused, on any node. Every write goes through a [`WriteTx`] (on SQLite, this
//! process's writer turn), never straight to the pool.

use super::messages::text_enum;
use super::{Store, StoreError, WriteTx, now_ms};
use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

/// A Subscription's status (FHIR R4 `Subscription.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionStatus {
    /// Asked for; the handshake has not been answered.
    Requested,
    /// Notifications are sent.
    Active,
    /// Notifications could not be delivered.
    Error,
    /// Ended by the subscriber or the configuration.
    Off,
}

text_enum!(SubscriptionStatus { Requested => "requested", Active => "active", Error => "error", Off => "off" });

/// One stored Subscription.
#[derive(Debug, Clone)]
pub struct StoredSubscription {
    /// Id.
    pub id: String,
    /// The partner that created it (or whose `notify_url` it stands for).
    pub partner: String,
    /// That partner's organization (`system|value`): it hears of the Tasks of referrals this organization
    /// made.
    pub org: String,
    /// Version (1, 2...), advanced by each status change.
    pub version: i64,
    /// Status.
    pub status: SubscriptionStatus,
    /// Where notifications are POSTed.
    pub endpoint: String,
    /// Channel headers, `Name: value`, sent with every notification.
    pub headers: Vec<String>,
    /// Heartbeat period in seconds (0: none).
    pub heartbeat_secs: i64,
    /// Task statuses notified (empty: all).
    pub statuses: Vec<String>,
    /// Events notified since it started.
    pub events: i64,
    /// When a notification was last queued or sent to it (ms since the epoch).
    pub last_sent_ms: i64,
    /// The Subscription resource as served (status and meta kept current).
    pub body: Value,
}

impl StoredSubscription {
    /// Whether a Task status change to `status` is notified to it.
    pub fn wants(&self, status: &str) -> bool {
        self.status == SubscriptionStatus::Active
            && (self.statuses.is_empty() || self.statuses.iter().any(|s| s == status))
    }
}

const COLUMNS: &str = "id, partner, org, version, status, endpoint, headers, heartbeat_secs, statuses, events, last_sent_ms, body";

impl Store {
    /// Store a new Subscription, or replace one with the same id (the `notify_url` shortcut at start-up).
    pub async fn put_subscription(&self, s: &StoredSubscription) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(&self.sql(&format!(
            "INSERT INTO subscriptions ({COLUMNS}, updated_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
             ON CONFLICT (id) DO UPDATE SET partner = $2, org = $3, version = subscriptions.version + 1, status = $5, \
             endpoint = $6, headers = $7, heartbeat_secs = $8, statuses = $9, body = $12, updated_ms = $13"
        )))
        .bind(&s.id)
        .bind(&s.partner)
        .bind(&s.org)
        .bind(s.version)
        .bind(s.status.as_str())
        .bind(&s.endpoint)
        .bind(serde_json::to_string(&s.headers).unwrap_or_default())
        .bind(s.heartbeat_secs)
        .bind(serde_json::to_string(&s.statuses).unwrap_or_default())
        .bind(s.events)
        .bind(s.last_sent_ms)
        .bind(s.body.to_string())
        .bind(now_ms())
        .execute(tx.conn())
        .await?;
        tx.commit().await
    }

    /// One Subscription.
    pub async fn subscription(&self, id: &str) -> Result<Option<StoredSubscription>, StoreError> {
        let row = sqlx::query(&self.sql(&format!(
            "SELECT {COLUMNS} FROM subscriptions WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(subscription_of).transpose()
    }

    /// The Subscriptions of partners of `org` that are active, read inside `tx` (an event's listeners).
    pub async fn active_subscriptions(
        &self,
        tx: &mut WriteTx<'_>,
        org: &str,
    ) -> Result<Vec<StoredSubscription>, StoreError> {
        let rows = sqlx::query(&self.sql(&format!(
            "SELECT {COLUMNS} FROM subscriptions WHERE org = $1 AND status = 'active' ORDER BY id"
        )))
        .bind(org)
        .fetch_all(tx.conn())
        .await?;
        rows.iter().map(subscription_of).collect()
    }

    /// Every Subscription with a heartbeat that nothing was sent to for its period.
    pub async fn heartbeats_due(&self) -> Result<Vec<StoredSubscription>, StoreError> {
        let rows = sqlx::query(&self.sql(&format!(
            "SELECT {COLUMNS} FROM subscriptions WHERE status = 'active' AND heartbeat_secs > 0 \
             AND last_sent_ms + heartbeat_secs * 1000 <= $1 ORDER BY id"
        )))
        .bind(now_ms())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(subscription_of).collect()
    }

    /// Count one more event for a Subscription inside `tx`; the event's number.
    pub async fn next_event(&self, tx: &mut WriteTx<'_>, id: &str) -> Result<i64, StoreError> {
        let row = sqlx::query(&self.sql(
            "UPDATE subscriptions SET events = events + 1, last_sent_ms = $2 WHERE id = $1 RETURNING events",
        ))
        .bind(id)
        .bind(now_ms())
        .fetch_one(tx.conn())
        .await?;
        Ok(row.try_get("events")?)
    }

    /// Record that something was sent to a Subscription now (its heartbeat starts again).
    pub async fn subscription_sent(&self, id: &str) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(&self.sql("UPDATE subscriptions SET last_sent_ms = $2 WHERE id = $1"))
            .bind(id)
            .bind(now_ms())
            .execute(tx.conn())
            .await?;
        tx.commit().await
    }

    /// Change a Subscription's status (its served body too); false when there is none.
    pub async fn set_subscription_status(
        &self,
        id: &str,
        status: SubscriptionStatus,
    ) -> Result<bool, StoreError> {
        let Some(mut found) = self.subscription(id).await? else {
            return Ok(false);
        };
        if let Some(body) = found.body.as_object_mut() {
            body.insert("status".into(), Value::from(status.as_str()));
        }
        let mut tx = self.begin().await?;
        let done = sqlx::query(&self.sql(
            "UPDATE subscriptions SET status = $2, body = $3, version = version + 1, updated_ms = $4 WHERE id = $1",
        ))
        .bind(id)
        .bind(status.as_str())
        .bind(found.body.to_string())
        .bind(now_ms())
        .execute(tx.conn())
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// Remove a Subscription (its queued notifications then fail as ended); false when there was none.
    pub async fn delete_subscription(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(&self.sql("DELETE FROM subscriptions WHERE id = $1"))
            .bind(id)
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// The Subscriptions of an organization's partners, oldest first.
    pub async fn subscriptions_in(&self, org: &str) -> Result<Vec<StoredSubscription>, StoreError> {
        let rows = sqlx::query(&self.sql(&format!(
            "SELECT {COLUMNS} FROM subscriptions WHERE org = $1 ORDER BY updated_ms, id"
        )))
        .bind(org)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(subscription_of).collect()
    }
}

fn subscription_of(row: &AnyRow) -> Result<StoredSubscription, StoreError> {
    let json = |column: &str| -> Result<Value, StoreError> {
        let text: String = row.try_get(column)?;
        serde_json::from_str(&text)
            .map_err(|e| StoreError::Corrupt(format!("subscriptions.{column}: {e}")))
    };
    let strings = |column: &str| -> Result<Vec<String>, StoreError> {
        serde_json::from_value(json(column)?)
            .map_err(|e| StoreError::Corrupt(format!("subscriptions.{column}: {e}")))
    };
    Ok(StoredSubscription {
        id: row.try_get("id")?,
        partner: row.try_get("partner")?,
        org: row.try_get("org")?,
        version: row.try_get("version")?,
        status: row.try_get::<String, _>("status")?.parse()?,
        endpoint: row.try_get("endpoint")?,
        headers: strings("headers")?,
        heartbeat_secs: row.try_get("heartbeat_secs")?,
        statuses: strings("statuses")?,
        events: row.try_get("events")?,
        last_sent_ms: row.try_get("last_sent_ms")?,
        body: json("body")?,
    })
}
