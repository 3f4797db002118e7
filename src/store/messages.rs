//! Referral messages and their deliveries (the outbox).
//!
//! A message is one revision of one referral (`referral_key`: the ServiceRequest it carries, whatever path
//! it came by), with the hash of its content: an identical copy finds the stored revision (a duplicate), a
//! changed copy is stored as the next revision and delivered again. Each delivery is an outbox row, claimed
//! with a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL, one atomic `UPDATE ... RETURNING` on SQLite) so any
//! node can make it and a crashed node's claims come back when the lease ends. A referral's message names the
//! resource versions it carries rather than holding a second copy of them ([`super::carried`]).

use super::{
    AnyQuery, Backend, Insert, ROWS_PER_STATEMENT, RowsInsert, Store, StoreError, WriteTx, carried,
    now_ms,
};
use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;
use std::collections::HashMap;

/// What a delivery carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryKind {
    /// A referral bundle, through the consent gate.
    Referral,
    /// An id-only Task notification to the referrer.
    Notification,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Due, or waiting for its next attempt.
    Pending,
    /// Acknowledged by the receiver.
    Delivered,
    /// Withheld by the consent gate.
    Withheld,
    /// Retries ran out (the retry window passed); retried when the destination answers again.
    Dead,
}

macro_rules! text_enum {
    ($ty:ty { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            /// The stored text.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }
        impl std::str::FromStr for $ty {
            type Err = StoreError;
            fn from_str(text: &str) -> Result<Self, StoreError> {
                match text {
                    $($text => Ok(Self::$variant),)+
                    other => Err(StoreError::Corrupt(format!(
                        "{} '{other}'", stringify!($ty)
                    ))),
                }
            }
        }
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use text_enum;

text_enum!(DeliveryKind { Referral => "referral", Notification => "notification" });
text_enum!(DeliveryStatus { Pending => "pending", Delivered => "delivered", Withheld => "withheld", Dead => "dead" });

/// A stored message (one revision of a referral, or a notification).
#[derive(Debug, Clone)]
pub struct Message {
    /// Message id.
    pub id: String,
    /// The source it came from (`source:NAME`, `partner:NAME`, `notification`).
    pub source: String,
    /// The referral it is a revision of (`ServiceRequest/id`), or another unique key.
    pub referral_key: String,
    /// 1, 2, ... per referral.
    pub revision: i64,
    /// SHA-256 of the content that makes a revision (see the gateway).
    pub content_hash: String,
    /// The bundle.
    pub body: Value,
    /// The stored version of each resource it carries (in the order [`crate::consent::subject::resources`]
    /// lists them), written in the same transaction: the store keeps the bundle naming them rather than a
    /// second copy of each ([`super::carried`]). Empty: the body is kept whole.
    pub versions: Vec<i64>,
}

/// The newest stored revision of a referral.
#[derive(Debug, Clone)]
pub struct Revision {
    /// Message id.
    pub id: String,
    /// Revision number.
    pub revision: i64,
    /// Content hash.
    pub content_hash: String,
}

/// One outbox row: a delivery to make.
#[derive(Debug, Clone)]
pub struct OutboxItem {
    /// Row id.
    pub id: String,
    /// The message delivered.
    pub message_id: String,
    /// What it carries.
    pub kind: DeliveryKind,
    /// The destination name (configuration) or, for notifications, the partner name.
    pub destination: String,
    /// Attempts so far.
    pub attempts: i64,
    /// The key the receiver deduplicates on.
    pub idempotency_key: String,
    /// When it was queued (the retry window counts from here).
    pub created_at: i64,
    /// The end of this worker's claim: also its fencing token (see [`Store::renew_claim`]).
    pub claimed_until: i64,
}

/// A delivery to queue with a message.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    /// What it carries.
    pub kind: DeliveryKind,
    /// Destination or partner name.
    pub destination: String,
    /// Pending or withheld (by the decision made when it was accepted).
    pub status: DeliveryStatus,
}

impl Store {
    /// The newest revision of a referral, read inside `tx`.
    pub async fn latest_revision(
        &self,
        tx: &mut WriteTx<'_>,
        referral_key: &str,
    ) -> Result<Option<Revision>, StoreError> {
        let row = sqlx::query(&self.sql(
            "SELECT id, revision, content_hash FROM messages WHERE referral_key = $1 ORDER BY revision DESC LIMIT 1",
        ))
        .bind(referral_key)
        .fetch_optional(tx.conn())
        .await?;
        row.map(|r| {
            Ok(Revision {
                id: r.try_get("id")?,
                revision: r.try_get("revision")?,
                content_hash: r.try_get("content_hash")?,
            })
        })
        .transpose()
    }

    /// The newest revision of each of the referrals `keys`, read inside `tx` in one query per
    /// [`super::ROWS_PER_STATEMENT`] keys (a group commit reads its submissions' together). A key with no
    /// message is absent.
    pub async fn latest_revisions(
        &self,
        tx: &mut WriteTx<'_>,
        keys: &[&str],
    ) -> Result<std::collections::HashMap<String, Revision>, StoreError> {
        let mut latest = std::collections::HashMap::<String, Revision>::new();
        for chunk in keys.chunks(super::ROWS_PER_STATEMENT) {
            let wanted: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = self.sql(&format!(
                "SELECT referral_key, id, revision, content_hash FROM messages WHERE referral_key IN ({})",
                wanted.join(", ")
            ));
            let query = chunk.iter().fold(sqlx::query(&sql), |q, key| q.bind(*key));
            for row in query.fetch_all(tx.conn()).await? {
                let revision = Revision {
                    id: row.try_get("id")?,
                    revision: row.try_get("revision")?,
                    content_hash: row.try_get("content_hash")?,
                };
                let key: String = row.try_get("referral_key")?;
                match latest.get(&key) {
                    Some(held) if held.revision >= revision.revision => {}
                    _ => {
                        latest.insert(key, revision);
                    }
                }
            }
        }
        Ok(latest)
    }

    /// The destinations that received (or are due to receive) earlier revisions of a referral.
    pub async fn earlier_recipients(
        &self,
        tx: &mut WriteTx<'_>,
        referral_key: &str,
    ) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(&self.sql(
            "SELECT DISTINCT o.destination FROM outbox o JOIN messages m ON m.id = o.message_id \
             WHERE m.referral_key = $1 AND o.kind = 'referral' AND o.status IN ('delivered', 'pending', 'dead')",
        ))
        .bind(referral_key)
        .fetch_all(tx.conn())
        .await?;
        rows.iter().map(|r| Ok(r.try_get("destination")?)).collect()
    }

    /// Store a message and its deliveries inside `tx`.
    pub async fn insert_message(
        &self,
        tx: &mut WriteTx<'_>,
        message: &Message,
        deliveries: &[NewDelivery],
    ) -> Result<(), StoreError> {
        self.insert_messages(tx, &[(message, deliveries)]).await
    }

    /// Store messages with their deliveries and the resources each carries inside `tx`, with one
    /// multi-row insert per table (per [`super::ROWS_PER_STATEMENT`] rows).
    pub async fn insert_messages(
        &self,
        tx: &mut WriteTx<'_>,
        messages: &[(&Message, &[NewDelivery])],
    ) -> Result<(), StoreError> {
        let rows = MessageRows::new(messages, now_ms());
        for insert in rows.inserts(messages).iter() {
            self.insert_many(tx, insert.as_ref()).await?;
        }
        Ok(())
    }

    /// The newest revision carrying `kind/id` that was delivered to one of `destinations`: the message id
    /// and the destination.
    pub async fn delivered_with(
        &self,
        kind: &str,
        id: &str,
        destinations: &[String],
    ) -> Result<Option<(String, String)>, StoreError> {
        if destinations.is_empty() {
            return Ok(None);
        }
        let listed: Vec<String> = (0..destinations.len())
            .map(|i| format!("${}", i + 3))
            .collect();
        let query = format!(
            "SELECT m.id AS id, o.destination AS destination FROM message_resources r \
             JOIN messages m ON m.id = r.message_id JOIN outbox o ON o.message_id = m.id \
             WHERE r.resource_type = $1 AND r.resource_id = $2 AND o.kind = 'referral' AND o.status = 'delivered' \
             AND o.destination IN ({}) ORDER BY m.revision DESC, o.delivered_at DESC LIMIT 1",
            listed.join(", ")
        );
        let sql = self.sql(&query);
        let mut q = sqlx::query(&sql).bind(kind).bind(id);
        for destination in destinations {
            q = q.bind(destination);
        }
        let row = q.fetch_optional(self.pool()).await?;
        row.map(|r| Ok((r.try_get("id")?, r.try_get("destination")?)))
            .transpose()
    }

    /// Store a message with its deliveries in a transaction of its own; a message with the same referral
    /// key and revision already stored is left as it is (`false`).
    pub async fn accept_message(
        &self,
        message: &Message,
        deliveries: &[NewDelivery],
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        if self
            .latest_revision(&mut tx, &message.referral_key)
            .await?
            .is_some()
        {
            return Ok(false);
        }
        self.insert_message(&mut tx, message, deliveries).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// A message by id.
    pub async fn message(&self, id: &str) -> Result<Option<Message>, StoreError> {
        let row = sqlx::query(&self.sql(
            "SELECT id, source, referral_key, revision, content_hash, body, names_versions FROM messages WHERE id = $1",
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut message = Message {
            id: row.try_get("id")?,
            source: row.try_get("source")?,
            referral_key: row.try_get("referral_key")?,
            revision: row.try_get("revision")?,
            content_hash: row.try_get("content_hash")?,
            body: serde_json::from_str(&row.try_get::<String, _>("body")?)?,
            versions: Vec::new(),
        };
        if row.try_get::<i64, _>("names_versions")? != 0 {
            let named = carried::names(&message.id, &message.body)?;
            let versions = self.versions_of(&named).await?;
            let body = std::mem::take(&mut message.body);
            (message.body, message.versions) = carried::put_back(&message.id, body, &versions)?;
        }
        Ok(Some(message))
    }

    /// The bodies of the resource versions `named`, as stored, read together (current and superseded).
    async fn versions_of(
        &self,
        named: &[carried::Named],
    ) -> Result<HashMap<carried::Named, Value>, StoreError> {
        let mut found = HashMap::with_capacity(named.len());
        for chunk in named.chunks(ROWS_PER_STATEMENT) {
            let condition = (0..chunk.len())
                .map(|i| {
                    let at = 3 * i;
                    format!(
                        "(resource_type = ${} AND id = ${} AND version = ${})",
                        at + 1,
                        at + 2,
                        at + 3
                    )
                })
                .collect::<Vec<_>>()
                .join(" OR ");
            let query = format!(
                "SELECT resource_type, id, version, body FROM resources WHERE {condition} \
                 UNION ALL SELECT resource_type, id, version, body FROM resource_versions WHERE {condition}"
            );
            let sql = self.sql(&query);
            let mut q = sqlx::query(&sql);
            for name in chunk {
                q = q.bind(&name.kind).bind(&name.id).bind(name.version);
            }
            for row in q.fetch_all(self.pool()).await? {
                let name = carried::Named {
                    kind: row.try_get("resource_type")?,
                    id: row.try_get("id")?,
                    version: row.try_get("version")?,
                };
                found.insert(
                    name,
                    serde_json::from_str(&row.try_get::<String, _>("body")?)?,
                );
            }
        }
        Ok(found)
    }

    /// Claim up to `limit` due deliveries for `lease_ms`. Another worker (or node) cannot claim them until
    /// the lease ends; a crashed worker's claims come back when it does.
    pub async fn claim_due(
        &self,
        limit: i64,
        lease_ms: i64,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        let now = now_ms();
        let query = match self.backend {
            // The rows are locked and skipped by other claimers in a CTE evaluated once; the outer update
            // checks the lease again on the row's newest version.
            Backend::Postgres => {
                "WITH due AS (SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= $2 \
                 AND claimed_until <= $2 ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
                 UPDATE outbox SET claimed_until = $1 FROM due WHERE outbox.id = due.id AND outbox.claimed_until <= $2 \
                 RETURNING outbox.id, outbox.message_id, outbox.kind, outbox.destination, outbox.attempts, \
                 outbox.idempotency_key, outbox.created_at, outbox.claimed_until"
            }
            Backend::Sqlite => {
                "UPDATE outbox SET claimed_until = $1 WHERE id IN (SELECT id FROM outbox WHERE status = 'pending' \
                 AND next_attempt_at <= $2 AND claimed_until <= $2 ORDER BY next_attempt_at LIMIT $3) \
                 RETURNING id, message_id, kind, destination, attempts, idempotency_key, created_at, claimed_until"
            }
        };
        let mut tx = self.begin().await?;
        let rows = sqlx::query(&self.sql(query))
            .bind(now + lease_ms)
            .bind(now)
            .bind(limit)
            .fetch_all(tx.conn())
            .await?;
        tx.commit().await?;
        rows.iter().map(outbox_item).collect()
    }

    /// Like [`Store::claim_due`], leaving out the deliveries of `busy` destinations (`kind:destination`,
    /// those with as many deliveries in flight as they may have), so one slow receiver's backlog never
    /// takes the claims of the others.
    pub async fn claim_due_except(
        &self,
        limit: i64,
        lease_ms: i64,
        busy: &[String],
    ) -> Result<Vec<OutboxItem>, StoreError> {
        if busy.is_empty() {
            return self.claim_due(limit, lease_ms).await;
        }
        let listed: Vec<String> = (0..busy.len()).map(|i| format!("${}", i + 4)).collect();
        let skip = format!(
            "AND (kind || ':' || destination) NOT IN ({})",
            listed.join(", ")
        );
        let query = match self.backend {
            Backend::Postgres => format!(
                "WITH due AS (SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= $2 \
                 AND claimed_until <= $2 {skip} ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
                 UPDATE outbox SET claimed_until = $1 FROM due WHERE outbox.id = due.id AND outbox.claimed_until <= $2 \
                 RETURNING outbox.id, outbox.message_id, outbox.kind, outbox.destination, outbox.attempts, \
                 outbox.idempotency_key, outbox.created_at, outbox.claimed_until"
            ),
            Backend::Sqlite => format!(
                "UPDATE outbox SET claimed_until = $1 WHERE id IN (SELECT id FROM outbox WHERE status = 'pending' \
                 AND next_attempt_at <= $2 AND claimed_until <= $2 {skip} ORDER BY next_attempt_at LIMIT $3) \
                 RETURNING id, message_id, kind, destination, attempts, idempotency_key, created_at, claimed_until"
            ),
        };
        let now = now_ms();
        let sql = self.sql(&query);
        let mut q = sqlx::query(&sql).bind(now + lease_ms).bind(now).bind(limit);
        for key in busy {
            q = q.bind(key);
        }
        let mut tx = self.begin().await?;
        let rows = q.fetch_all(tx.conn()).await?;
        tx.commit().await?;
        rows.iter().map(outbox_item).collect()
    }

    /// Give back a claim this worker will not work on now (its destination has no room): claimable again
    /// at once. A claim that is no longer this worker's is left alone.
    pub async fn release_claim(&self, item: &OutboxItem) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(&self.sql(
            "UPDATE outbox SET claimed_until = 0 WHERE id = $1 AND claimed_until = $2 AND status = 'pending'",
        ))
        .bind(&item.id)
        .bind(item.claimed_until)
        .execute(tx.conn())
        .await?;
        tx.commit().await
    }

    /// Extend this worker's claim on a delivery just before working on it (a slow batch must not outlive
    /// its lease). False when the claim is no longer this worker's: its lease ran out and another worker
    /// (or node) claimed the delivery, or it was recorded meanwhile; the caller leaves it.
    pub async fn renew_claim(
        &self,
        item: &mut OutboxItem,
        lease_ms: i64,
    ) -> Result<bool, StoreError> {
        let until = now_ms() + lease_ms;
        let mut tx = self.begin().await?;
        let renewed = sqlx::query(&self.sql(
            "UPDATE outbox SET claimed_until = $1 WHERE id = $2 AND claimed_until = $3 AND status = 'pending'",
        ))
        .bind(until)
        .bind(&item.id)
        .bind(item.claimed_until)
        .execute(tx.conn())
        .await?
        .rows_affected()
            == 1;
        tx.commit().await?;
        if renewed {
            item.claimed_until = until;
        }
        Ok(renewed)
    }

    /// Mark a delivery delivered inside `tx` (where its disclosure is also recorded). Returns false when
    /// the row was no longer pending (already recorded).
    pub async fn mark_delivered(&self, tx: &mut WriteTx<'_>, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(&self.sql(
            "UPDATE outbox SET status = 'delivered', delivered_at = $1, attempts = attempts + 1, claimed_until = 0, last_error = NULL \
             WHERE id = $2 AND status = 'pending'",
        ))
        .bind(now_ms())
        .bind(id)
        .execute(tx.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Record a failed attempt: retry at `next_attempt_at`, or dead-letter (inside `tx`, where a dead
    /// letter is also audited).
    pub async fn mark_failed(
        &self,
        tx: &mut WriteTx<'_>,
        id: &str,
        error: &str,
        next_attempt_at: Option<i64>,
    ) -> Result<(), StoreError> {
        let (status, next) = match next_attempt_at {
            Some(at) => (DeliveryStatus::Pending, at),
            None => (DeliveryStatus::Dead, now_ms()),
        };
        sqlx::query(&self.sql(
            "UPDATE outbox SET status = $1, attempts = attempts + 1, next_attempt_at = $2, claimed_until = 0, last_error = $3 WHERE id = $4",
        ))
        .bind(status.as_str())
        .bind(next)
        .bind(error)
        .bind(id)
        .execute(tx.conn())
        .await?;
        Ok(())
    }

    /// Mark a delivery withheld by the consent gate at send time (inside `tx`, with its audit entry).
    pub async fn mark_withheld(
        &self,
        tx: &mut WriteTx<'_>,
        id: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(&self.sql(
            "UPDATE outbox SET status = 'withheld', claimed_until = 0, last_error = $1 WHERE id = $2",
        ))
        .bind(reason)
        .bind(id)
        .execute(tx.conn())
        .await?;
        Ok(())
    }

    /// Put every undelivered delivery of a message (referrals and notifications) back in the queue:
    /// due now, its retry window starting again.
    pub async fn replay(&self, message_id: &str) -> Result<u64, StoreError> {
        self.requeue("message_id = $2 AND status <> 'delivered'", message_id)
            .await
    }

    /// Put every dead letter of a destination back in the queue (it answers again).
    pub async fn requeue_dead(&self, destination: &str) -> Result<u64, StoreError> {
        self.requeue("destination = $2 AND status = 'dead'", destination)
            .await
    }

    async fn requeue(&self, condition: &str, value: &str) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        let requeued = self.requeue_in(&mut tx, condition, value).await?;
        tx.commit().await?;
        Ok(requeued)
    }

    /// Put a destination's dead letters back in the queue inside `tx` (the transaction that records a
    /// delivery to it: it answers again).
    pub async fn requeue_dead_in(
        &self,
        tx: &mut WriteTx<'_>,
        destination: &str,
    ) -> Result<u64, StoreError> {
        self.requeue_in(tx, "destination = $2 AND status = 'dead'", destination)
            .await
    }

    async fn requeue_in(
        &self,
        tx: &mut WriteTx<'_>,
        condition: &str,
        value: &str,
    ) -> Result<u64, StoreError> {
        let result = sqlx::query(&self.sql(&format!(
            "UPDATE outbox SET status = 'pending', next_attempt_at = $1, created_at = $1, claimed_until = 0 WHERE {condition}"
        )))
        .bind(now_ms())
        .bind(value)
        .execute(tx.conn())
        .await?;
        Ok(result.rows_affected())
    }

    /// One dead letter per destination whose last attempt is older than `quiet_ms` is made due again (a
    /// probe): if it goes through, the destination answers again and its other dead letters follow.
    pub async fn probe_dead_letters(&self, quiet_ms: i64) -> Result<u64, StoreError> {
        let now = now_ms();
        let rows = sqlx::query(&self.sql(
            "SELECT destination, MIN(id) AS id FROM outbox WHERE status = 'dead' AND next_attempt_at <= $1 GROUP BY destination",
        ))
        .bind(now - quiet_ms)
        .fetch_all(self.pool())
        .await?;
        let mut probed = 0;
        for row in rows {
            let id: String = row.try_get("id")?;
            let mut tx = self.begin().await?;
            // A probe gets one attempt: its window is already over, so a failure dead-letters it again
            // and stamps `next_attempt_at` (the quiet period starts anew).
            probed += sqlx::query(&self.sql(
                "UPDATE outbox SET status = 'pending', next_attempt_at = $1, claimed_until = 0 WHERE id = $2 AND status = 'dead'",
            ))
            .bind(now)
            .bind(&id)
            .execute(tx.conn())
            .await?
            .rows_affected();
            tx.commit().await?;
        }
        Ok(probed)
    }

    /// Outbox rows by status, newest first, as JSON for the admin API.
    pub async fn outbox(
        &self,
        status: Option<DeliveryStatus>,
        limit: i64,
    ) -> Result<Vec<Value>, StoreError> {
        let rows = match status {
            Some(status) => {
                sqlx::query(&self.sql(
                    "SELECT * FROM outbox WHERE status = $1 ORDER BY created_at DESC LIMIT $2",
                ))
                .bind(status.as_str())
                .bind(limit)
                .fetch_all(self.pool())
                .await?
            }
            None => {
                sqlx::query(&self.sql("SELECT * FROM outbox ORDER BY created_at DESC LIMIT $1"))
                    .bind(limit)
                    .fetch_all(self.pool())
                    .await?
            }
        };
        rows.iter().map(outbox_json).collect()
    }

    /// Counts of outbox rows by status.
    pub async fn outbox_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM outbox GROUP BY status")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("status")?, r.try_get("n")?)))
            .collect()
    }
}

fn outbox_item(row: &AnyRow) -> Result<OutboxItem, StoreError> {
    Ok(OutboxItem {
        id: row.try_get("id")?,
        message_id: row.try_get("message_id")?,
        kind: row.try_get::<String, _>("kind")?.parse()?,
        destination: row.try_get("destination")?,
        attempts: row.try_get("attempts")?,
        idempotency_key: row.try_get("idempotency_key")?,
        created_at: row.try_get("created_at")?,
        claimed_until: row.try_get("claimed_until")?,
    })
}

fn outbox_json(row: &AnyRow) -> Result<Value, StoreError> {
    Ok(serde_json::json!({
        "id": row.try_get::<String, _>("id")?,
        "message": row.try_get::<String, _>("message_id")?,
        "kind": row.try_get::<String, _>("kind")?,
        "destination": row.try_get::<String, _>("destination")?,
        "status": row.try_get::<String, _>("status")?,
        "attempts": row.try_get::<i64, _>("attempts")?,
        "last_error": row.try_get::<Option<String>, _>("last_error")?,
    }))
}

/// The rows messages add to `messages`, `outbox` and `message_resources`, gathered so that their inserts can be
/// sent one by one ([`Store::insert_messages`]) or with others ([`Store::insert_together`]).
pub(crate) struct MessageRows<'m> {
    now: i64,
    deliveries: Vec<(&'m str, &'m NewDelivery, String)>,
    resources: Vec<(&'m str, &'m str, &'m str)>,
}

impl<'m> MessageRows<'m> {
    /// The deliveries (each with a new time-ordered outbox id) and carried resources of `messages`.
    pub(crate) fn new(messages: &'m [(&'m Message, &'m [NewDelivery])], now: i64) -> Self {
        let deliveries = (messages.iter())
            .flat_map(|(message, deliveries)| {
                let id = message.id.as_str();
                deliveries
                    .iter()
                    .map(move |d| (id, d, uuid::Uuid::now_v7().to_string()))
            })
            .collect();
        let mut resources: Vec<(&str, &str, &str)> = (messages.iter())
            .flat_map(|(message, _)| {
                crate::consent::subject::resources(&message.body)
                    .into_iter()
                    .map(|resource| {
                        let (kind, id) = crate::canonical::bundle::type_and_id(resource);
                        (message.id.as_str(), kind, id)
                    })
            })
            .collect();
        // A resource listed twice in a message is one row.
        let mut seen = std::collections::HashSet::new();
        resources.retain(|row| seen.insert(*row));
        Self {
            now,
            deliveries,
            resources,
        }
    }

    /// The three inserts, in table order: messages, their outbox rows, the resources each carries.
    pub(crate) fn inserts<'r>(
        &'r self,
        messages: &'r [(&'m Message, &'m [NewDelivery])],
    ) -> [Box<dyn RowsInsert + 'r>; 3] {
        [
            Box::new(Insert {
                // Shared columns last, as inserts sent together bind them (store::inserts).
                into: "messages (id, source, referral_key, revision, content_hash, body, names_versions, received_at)",
                columns: &["", "", "", "", "", "", "", "$1"],
                rows: messages,
                shared: Some(self.now),
                bind: bind_message,
            }),
            Box::new(Insert {
                into: "outbox (id, message_id, kind, destination, status, idempotency_key, attempts, claimed_until, next_attempt_at, created_at)",
                columns: &["", "", "", "", "", "", "0", "0", "$1", "$1"],
                rows: &self.deliveries,
                shared: Some(self.now),
                bind: bind_delivery,
            }),
            Box::new(Insert {
                into: "message_resources (message_id, resource_type, resource_id)",
                columns: &["", "", ""],
                rows: &self.resources,
                shared: None,
                bind: |query, (message_id, kind, id)| query.bind(*message_id).bind(*kind).bind(*id),
            }),
        ]
    }
}

fn bind_message<'q>(
    query: AnyQuery<'q>,
    (message, _): &'q (&Message, &[NewDelivery]),
) -> AnyQuery<'q> {
    let query = query
        .bind(&message.id)
        .bind(&message.source)
        .bind(&message.referral_key)
        .bind(message.revision)
        .bind(&message.content_hash);
    match carried::naming_versions(&message.body, &message.versions) {
        Some(naming) => query.bind(naming).bind(1_i64),
        None => (query.bind(crate::json_text::to_string(&message.body))).bind(0_i64),
    }
}

fn bind_delivery<'q>(
    query: AnyQuery<'q>,
    (message_id, delivery, outbox_id): &'q (&str, &NewDelivery, String),
) -> AnyQuery<'q> {
    query
        .bind(outbox_id)
        .bind(*message_id)
        .bind(delivery.kind.as_str())
        .bind(&delivery.destination)
        .bind(delivery.status.as_str())
        .bind(format!(
            "{message_id}:{}:{}",
            delivery.destination, delivery.kind
        ))
}
