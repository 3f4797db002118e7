//! The durable store (DESIGN.md section 9): SQLite (WAL) embedded by default, PostgreSQL for more than one
//! gateway node. Both sit behind [`Store`], one set of queries over sqlx's `Any` driver; where the dialects
//! differ (claiming outbox work: `FOR UPDATE SKIP LOCKED` on PostgreSQL, one atomic `UPDATE ... RETURNING`
//! on SQLite) the store says so. Migrations are embedded and run at start-up.
//!
//! Everything a partner sends is committed here before it is acknowledged; delivery works from the outbox
//! table, so an accepted referral survives a crash and a restart.

mod migrations;

use crate::adapters::niem::history::Sighting;
use serde_json::Value;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use std::time::Duration;

/// Which database is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite, WAL mode.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database said no.
    #[error("store: {0}")]
    Database(#[from] sqlx::Error),
    /// The URL names no supported database.
    #[error("store: unsupported database URL '{0}' (expected sqlite://PATH or postgres://...)")]
    UnsupportedUrl(String),
    /// Stored JSON is unreadable.
    #[error("store: stored JSON is unreadable: {0}")]
    Json(#[from] serde_json::Error),
    /// A stored value is not what its column holds.
    #[error("store: unreadable stored value: {0}")]
    Corrupt(String),
}

/// A stored referral message.
#[derive(Debug, Clone)]
pub struct Message {
    /// Message id.
    pub id: String,
    /// The source it came from.
    pub source: String,
    /// Its key in the source (idempotency).
    pub source_key: String,
    /// The bundle.
    pub body: Value,
}

/// One outbox row: a delivery to make.
#[derive(Debug, Clone)]
pub struct OutboxItem {
    /// Row id.
    pub id: String,
    /// The message delivered.
    pub message_id: String,
    /// `referral` or `notification`.
    pub kind: String,
    /// The destination name (configuration) or, for notifications, the partner name.
    pub destination: String,
    /// Attempts so far.
    pub attempts: i64,
    /// The key the receiver deduplicates on.
    pub idempotency_key: String,
}

/// A stored FHIR resource with what access control needs.
#[derive(Debug, Clone)]
pub struct StoredResource {
    /// Type.
    pub resource_type: String,
    /// Id.
    pub id: String,
    /// Version (1, 2...).
    pub version: i64,
    /// The resource.
    pub body: Value,
    /// The organization that sent it (requester), `system|value`.
    pub sender_org: Option<String>,
    /// The organization it was sent to (performer/owner), `system|value`.
    pub receiver_org: Option<String>,
}

/// What to index a resource by.
#[derive(Debug, Clone, Default)]
pub struct ResourceIndex {
    /// `Patient/id`.
    pub patient: Option<String>,
    /// Sender organization.
    pub sender_org: Option<String>,
    /// Receiver organization.
    pub receiver_org: Option<String>,
    /// Status.
    pub status: Option<String>,
    /// Task.focus reference.
    pub focus: Option<String>,
}

/// The store.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// SQLite has one writer at a time, and a deferred transaction that read first fails at once when it
    /// must wait to write; writers queue here instead (PostgreSQL needs no such lock).
    writer: std::sync::Arc<tokio::sync::Mutex<()>>,
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Store {
    /// Connect (`sqlite://path` — created if missing — or `postgres://...`) and migrate.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        };
        let url = match backend {
            Backend::Sqlite if !url.contains('?') => format!("{url}?mode=rwc"),
            _ => url.to_owned(),
        };
        let max = if backend == Backend::Sqlite { 4 } else { 10 };
        let sqlite = backend == Backend::Sqlite;
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if sqlite {
                        // Durable commits (a referral acknowledged is on disk), readers beside the writer.
                        for pragma in [
                            "PRAGMA journal_mode=WAL",
                            "PRAGMA synchronous=FULL",
                            "PRAGMA busy_timeout=15000",
                        ] {
                            sqlx::query(pragma).execute(&mut *conn).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        let store = Self {
            pool,
            backend,
            writer: Default::default(),
        };
        migrations::run(&store).await?;
        Ok(store)
    }

    /// Which database.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Rewrite `$1` placeholders for SQLite (`?1`).
    fn sql(&self, query: &str) -> String {
        match self.backend {
            Backend::Postgres => query.to_owned(),
            Backend::Sqlite => query.replace('$', "?"),
        }
    }

    /// Hold the write lock (SQLite) for the duration of a write.
    async fn write(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.backend {
            Backend::Sqlite => Some(self.writer.lock().await),
            Backend::Postgres => None,
        }
    }

    async fn execute(&self, query: &str) -> Result<(), StoreError> {
        sqlx::query(&self.sql(query)).execute(&self.pool).await?;
        Ok(())
    }

    /// Whether the database answers.
    pub async fn ready(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// Store a message and its outbox rows in one transaction. Idempotent on (source, source_key): a second
    /// submission returns the first message's id and `false`.
    pub async fn accept_message(
        &self,
        message: &Message,
        resources: &[(Value, ResourceIndex)],
        outbox: &[(String, String, String)],
    ) -> Result<(String, bool), StoreError> {
        let _writing = self.write().await;
        let mut tx = self.pool.begin().await?;
        let existing =
            sqlx::query(&self.sql("SELECT id FROM messages WHERE source = $1 AND source_key = $2"))
                .bind(&message.source)
                .bind(&message.source_key)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(row) = existing {
            tx.rollback().await?;
            return Ok((row.try_get::<String, _>("id")?, false));
        }
        let now = now_ms();
        sqlx::query(&self.sql("INSERT INTO messages (id, source, source_key, received_at, body) VALUES ($1, $2, $3, $4, $5)"))
            .bind(&message.id)
            .bind(&message.source)
            .bind(&message.source_key)
            .bind(now)
            .bind(message.body.to_string())
            .execute(&mut *tx)
            .await?;
        for (resource, index) in resources {
            upsert_resource(&mut tx, self, resource, index).await?;
        }
        for (kind, destination, status) in outbox {
            insert_outbox(&mut tx, self, &message.id, kind, destination, status, now).await?;
        }
        tx.commit().await?;
        Ok((message.id.clone(), true))
    }

    /// Queue a delivery for an existing message (notifications, replays).
    pub async fn enqueue(
        &self,
        message_id: &str,
        kind: &str,
        destination: &str,
    ) -> Result<(), StoreError> {
        let _writing = self.write().await;
        let mut tx = self.pool.begin().await?;
        insert_outbox(
            &mut tx,
            self,
            message_id,
            kind,
            destination,
            "pending",
            now_ms(),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A message by id.
    pub async fn message(&self, id: &str) -> Result<Option<Message>, StoreError> {
        let row = sqlx::query(
            &self.sql("SELECT id, source, source_key, body FROM messages WHERE id = $1"),
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| -> Result<Message, StoreError> {
            Ok(Message {
                id: row.try_get("id")?,
                source: row.try_get("source")?,
                source_key: row.try_get("source_key")?,
                body: serde_json::from_str(&row.try_get::<String, _>("body")?)?,
            })
        })
        .transpose()
    }

    /// Claim up to `limit` due deliveries for `lease` milliseconds. Another worker (or node) cannot claim them
    /// until the lease ends; a crashed worker's claims come back when it does.
    pub async fn claim_due(
        &self,
        limit: i64,
        lease_ms: i64,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        let _writing = self.write().await;
        let now = now_ms();
        let query = match self.backend {
            Backend::Postgres => {
                "UPDATE outbox SET claimed_until = $1 WHERE id IN (SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= $2 \
                 AND claimed_until <= $2 ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
                 RETURNING id, message_id, kind, destination, attempts, idempotency_key"
            }
            Backend::Sqlite => {
                "UPDATE outbox SET claimed_until = $1 WHERE id IN (SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= $2 \
                 AND claimed_until <= $2 ORDER BY next_attempt_at LIMIT $3) \
                 RETURNING id, message_id, kind, destination, attempts, idempotency_key"
            }
        };
        let rows = sqlx::query(&self.sql(query))
            .bind(now + lease_ms)
            .bind(now)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(outbox_item).collect()
    }

    /// Record a successful delivery.
    pub async fn delivered(&self, id: &str) -> Result<(), StoreError> {
        let _writing = self.write().await;
        sqlx::query(&self.sql("UPDATE outbox SET status = 'delivered', delivered_at = $1, claimed_until = 0, last_error = NULL WHERE id = $2"))
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Record a failed attempt: retry at `next_attempt_at`, or dead-letter.
    pub async fn failed(
        &self,
        id: &str,
        error: &str,
        next_attempt_at: Option<i64>,
    ) -> Result<(), StoreError> {
        let _writing = self.write().await;
        let (status, next) = match next_attempt_at {
            Some(at) => ("pending", at),
            None => ("dead", 0),
        };
        sqlx::query(&self.sql("UPDATE outbox SET status = $1, attempts = attempts + 1, next_attempt_at = $2, claimed_until = 0, last_error = $3 WHERE id = $4"))
            .bind(status)
            .bind(next)
            .bind(error)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Mark a delivery withheld by the consent gate (at send time).
    pub async fn withheld(&self, id: &str, reason: &str) -> Result<(), StoreError> {
        let _writing = self.write().await;
        sqlx::query(&self.sql("UPDATE outbox SET status = 'withheld', claimed_until = 0, last_error = $1 WHERE id = $2")).bind(reason).bind(id).execute(&self.pool).await?;
        Ok(())
    }

    /// Put every delivery of a message back in the queue (replay): attempts reset, due now.
    pub async fn replay(&self, message_id: &str) -> Result<u64, StoreError> {
        let _writing = self.write().await;
        let result = sqlx::query(&self.sql(
            "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = $1, claimed_until = 0 WHERE message_id = $2 AND kind = 'referral' AND status <> 'delivered'",
        ))
        .bind(now_ms())
        .bind(message_id)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected())
    }

    /// Outbox rows by status (`dead`, `pending`...), newest first, as JSON for the admin API.
    pub async fn outbox(&self, status: Option<&str>, limit: i64) -> Result<Vec<Value>, StoreError> {
        let rows = match status {
            Some(status) => {
                sqlx::query(&self.sql(
                    "SELECT * FROM outbox WHERE status = $1 ORDER BY created_at DESC LIMIT $2",
                ))
                .bind(status)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&self.sql("SELECT * FROM outbox ORDER BY created_at DESC LIMIT $1"))
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(outbox_json).collect()
    }

    /// Counts of outbox rows by status.
    pub async fn outbox_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM outbox GROUP BY status")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("status")?, r.try_get("n")?)))
            .collect()
    }

    /// Insert or update a resource (version + 1 on update).
    pub async fn put_resource(
        &self,
        resource: &Value,
        index: &ResourceIndex,
    ) -> Result<i64, StoreError> {
        let _writing = self.write().await;
        let mut tx = self.pool.begin().await?;
        let version = upsert_resource(&mut tx, self, resource, index).await?;
        tx.commit().await?;
        Ok(version)
    }

    /// A resource by type and id.
    pub async fn resource(
        &self,
        kind: &str,
        id: &str,
    ) -> Result<Option<StoredResource>, StoreError> {
        let row =
            sqlx::query(&self.sql("SELECT * FROM resources WHERE resource_type = $1 AND id = $2"))
                .bind(kind)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        row.as_ref().map(stored_resource).transpose()
    }

    /// Search resources of a type by the indexed fields (`patient`, `status`, `focus`, `sender_org`,
    /// `receiver_org`), limited.
    pub async fn search(
        &self,
        kind: &str,
        filters: &[(&str, String)],
        limit: i64,
    ) -> Result<Vec<StoredResource>, StoreError> {
        let mut query = String::from("SELECT * FROM resources WHERE resource_type = $1");
        for (index, (column, _)) in filters.iter().enumerate() {
            query.push_str(&format!(" AND {column} = ${}", index + 2));
        }
        query.push_str(&format!(
            " ORDER BY updated_at DESC LIMIT ${}",
            filters.len() + 2
        ));
        let sql = self.sql(&query);
        let mut q = sqlx::query(&sql).bind(kind);
        for (_, value) in filters {
            q = q.bind(value.clone());
        }
        let rows = q.bind(limit).fetch_all(&self.pool).await?;
        rows.iter().map(stored_resource).collect()
    }

    /// Register a partner's API key hash.
    pub async fn add_partner(
        &self,
        name: &str,
        org: &str,
        key_hash: &str,
    ) -> Result<(), StoreError> {
        let _writing = self.write().await;
        self.execute_bound("DELETE FROM partners WHERE name = $1", &[name])
            .await?;
        sqlx::query(
            &self.sql(
                "INSERT INTO partners (name, org, key_hash, created_at) VALUES ($1, $2, $3, $4)",
            ),
        )
        .bind(name)
        .bind(org)
        .bind(key_hash)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The partner (name, org) whose key hashes to `key_hash`.
    pub async fn partner_by_key(
        &self,
        key_hash: &str,
    ) -> Result<Option<(String, String)>, StoreError> {
        let row = sqlx::query(&self.sql("SELECT name, org FROM partners WHERE key_hash = $1"))
            .bind(key_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((r.try_get("name")?, r.try_get("org")?)))
            .transpose()
    }

    /// Create a job.
    pub async fn create_job(&self, id: &str, source: &str) -> Result<(), StoreError> {
        let _writing = self.write().await;
        let now = now_ms();
        sqlx::query(&self.sql("INSERT INTO jobs (id, source, status, created_at, updated_at, report) VALUES ($1, $2, 'running', $3, $3, '{}')"))
            .bind(id)
            .bind(source)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Update a job's status and report.
    pub async fn update_job(
        &self,
        id: &str,
        status: &str,
        report: &Value,
    ) -> Result<(), StoreError> {
        let _writing = self.write().await;
        sqlx::query(
            &self.sql("UPDATE jobs SET status = $1, report = $2, updated_at = $3 WHERE id = $4"),
        )
        .bind(status)
        .bind(report.to_string())
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every repeat-incident sighting recorded.
    pub async fn incident_sightings(&self) -> Result<Vec<Sighting>, StoreError> {
        let rows = sqlx::query("SELECT key, incident, occurred, seq FROM incident_sightings")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let occurred: String = r.try_get("occurred")?;
                Ok(Sighting {
                    key: r.try_get("key")?,
                    incident: r.try_get("incident")?,
                    date: occurred.parse().map_err(|_| {
                        StoreError::Corrupt(format!("incident_sightings.occurred '{occurred}'"))
                    })?,
                    seq: r.try_get::<i64, _>("seq")? as u64,
                })
            })
            .collect()
    }

    /// Record a run's history changes in one transaction: forgotten incidents removed, new sightings added.
    pub async fn save_incident_history(
        &self,
        forgotten: &[String],
        added: &[Sighting],
    ) -> Result<(), StoreError> {
        let _writing = self.write().await;
        let mut tx = self.pool.begin().await?;
        for incident in forgotten {
            sqlx::query(&self.sql("DELETE FROM incident_sightings WHERE incident = $1"))
                .bind(incident)
                .execute(&mut *tx)
                .await?;
        }
        for sighting in added {
            sqlx::query(&self.sql(
                "INSERT INTO incident_sightings (key, incident, occurred, seq) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (key, incident) DO NOTHING",
            ))
            .bind(&sighting.key)
            .bind(&sighting.incident)
            .bind(sighting.date.to_string())
            .bind(sighting.seq as i64)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A job as JSON.
    pub async fn job(&self, id: &str) -> Result<Option<Value>, StoreError> {
        let row =
            sqlx::query(&self.sql("SELECT id, source, status, report FROM jobs WHERE id = $1"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| -> Result<Value, StoreError> {
            Ok(serde_json::json!({
                "id": r.try_get::<String, _>("id")?,
                "source": r.try_get::<String, _>("source")?,
                "status": r.try_get::<String, _>("status")?,
                "report": serde_json::from_str::<Value>(&r.try_get::<String, _>("report")?)?,
            }))
        })
        .transpose()
    }

    async fn execute_bound(&self, query: &str, values: &[&str]) -> Result<(), StoreError> {
        let sql = self.sql(query);
        let mut q = sqlx::query(&sql);
        for value in values {
            q = q.bind(value.to_string());
        }
        q.execute(&self.pool).await?;
        Ok(())
    }
}

async fn insert_outbox(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    store: &Store,
    message_id: &str,
    kind: &str,
    destination: &str,
    status: &str,
    now: i64,
) -> Result<(), StoreError> {
    let id = uuid::Uuid::new_v4().to_string();
    sqlx::query(&store.sql(
        "INSERT INTO outbox (id, message_id, kind, destination, status, attempts, next_attempt_at, claimed_until, idempotency_key, created_at) \
         VALUES ($1, $2, $3, $4, $5, 0, $6, 0, $7, $6)",
    ))
    .bind(&id)
    .bind(message_id)
    .bind(kind)
    .bind(destination)
    .bind(status)
    .bind(now)
    .bind(format!("{message_id}:{destination}:{kind}:{id}"))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn upsert_resource(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    store: &Store,
    resource: &Value,
    index: &ResourceIndex,
) -> Result<i64, StoreError> {
    let kind = resource["resourceType"].as_str().unwrap_or_default();
    let id = resource["id"].as_str().unwrap_or_default();
    let current = sqlx::query(
        &store.sql("SELECT version FROM resources WHERE resource_type = $1 AND id = $2"),
    )
    .bind(kind)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    let version = match &current {
        Some(row) => row.try_get::<i64, _>("version")? + 1,
        None => 1,
    };
    let mut body = resource.clone();
    body["meta"]["versionId"] = Value::String(version.to_string());
    body["meta"]["lastUpdated"] =
        Value::String(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    let query = if current.is_some() {
        "UPDATE resources SET version = $3, body = $4, patient = $5, sender_org = $6, receiver_org = $7, status = $8, focus = $9, updated_at = $10 WHERE resource_type = $1 AND id = $2"
    } else {
        "INSERT INTO resources (resource_type, id, version, body, patient, sender_org, receiver_org, status, focus, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    };
    sqlx::query(&store.sql(query))
        .bind(kind)
        .bind(id)
        .bind(version)
        .bind(body.to_string())
        .bind(index.patient.clone())
        .bind(index.sender_org.clone())
        .bind(index.receiver_org.clone())
        .bind(index.status.clone())
        .bind(index.focus.clone())
        .bind(now_ms())
        .execute(&mut **tx)
        .await?;
    Ok(version)
}

fn outbox_item(row: &AnyRow) -> Result<OutboxItem, StoreError> {
    Ok(OutboxItem {
        id: row.try_get("id")?,
        message_id: row.try_get("message_id")?,
        kind: row.try_get("kind")?,
        destination: row.try_get("destination")?,
        attempts: row.try_get("attempts")?,
        idempotency_key: row.try_get("idempotency_key")?,
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

fn stored_resource(row: &AnyRow) -> Result<StoredResource, StoreError> {
    Ok(StoredResource {
        resource_type: row.try_get("resource_type")?,
        id: row.try_get("id")?,
        version: row.try_get("version")?,
        body: serde_json::from_str(&row.try_get::<String, _>("body")?)?,
        sender_org: row.try_get("sender_org")?,
        receiver_org: row.try_get("receiver_org")?,
    })
}
