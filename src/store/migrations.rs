//! Embedded migrations, applied in order at start-up; each is recorded so it runs once. The SQL is the
//! subset SQLite and PostgreSQL share.

use super::{Store, StoreError};
use sqlx::Row;

const MIGRATIONS: &[(i64, &str, &[&str])] = &[
    (
        1,
        "messages, outbox, resources, jobs, partners",
        &[
            "CREATE TABLE IF NOT EXISTS messages (id TEXT PRIMARY KEY, source TEXT NOT NULL, source_key TEXT NOT NULL, \
         received_at BIGINT NOT NULL, body TEXT NOT NULL, UNIQUE (source, source_key))",
            "CREATE TABLE IF NOT EXISTS outbox (id TEXT PRIMARY KEY, message_id TEXT NOT NULL, kind TEXT NOT NULL, destination TEXT NOT NULL, \
         status TEXT NOT NULL, attempts BIGINT NOT NULL, next_attempt_at BIGINT NOT NULL, claimed_until BIGINT NOT NULL, \
         last_error TEXT, delivered_at BIGINT, idempotency_key TEXT NOT NULL, created_at BIGINT NOT NULL)",
            "CREATE INDEX IF NOT EXISTS outbox_due ON outbox (status, next_attempt_at)",
            "CREATE INDEX IF NOT EXISTS outbox_message ON outbox (message_id)",
            "CREATE TABLE IF NOT EXISTS resources (resource_type TEXT NOT NULL, id TEXT NOT NULL, version BIGINT NOT NULL, body TEXT NOT NULL, \
         patient TEXT, sender_org TEXT, receiver_org TEXT, status TEXT, focus TEXT, updated_at BIGINT NOT NULL, PRIMARY KEY (resource_type, id))",
            "CREATE INDEX IF NOT EXISTS resources_patient ON resources (resource_type, patient)",
            "CREATE INDEX IF NOT EXISTS resources_focus ON resources (resource_type, focus)",
            "CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, source TEXT NOT NULL, status TEXT NOT NULL, created_at BIGINT NOT NULL, \
         updated_at BIGINT NOT NULL, report TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS partners (name TEXT PRIMARY KEY, org TEXT NOT NULL, key_hash TEXT NOT NULL UNIQUE, created_at BIGINT NOT NULL)",
        ],
    ),
    (
        2,
        "repeat-incident sightings (hashed person and address keys)",
        &[
            "CREATE TABLE IF NOT EXISTS incident_sightings (key TEXT NOT NULL, incident TEXT NOT NULL, occurred TEXT NOT NULL, \
             seq BIGINT NOT NULL, PRIMARY KEY (key, incident))",
            "CREATE INDEX IF NOT EXISTS incident_sightings_incident ON incident_sightings (incident)",
        ],
    ),
];

/// Apply the migrations not yet applied.
pub async fn run(store: &Store) -> Result<(), StoreError> {
    store.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL)").await?;
    for (version, description, statements) in MIGRATIONS {
        let done =
            sqlx::query(&store.sql("SELECT version FROM schema_migrations WHERE version = $1"))
                .bind(*version)
                .fetch_optional(&store.pool)
                .await?
                .map(|row| row.try_get::<i64, _>("version"))
                .transpose()?
                .is_some();
        if done {
            continue;
        }
        let mut tx = store.pool.begin().await?;
        for statement in *statements {
            sqlx::query(statement).execute(&mut *tx).await?;
        }
        sqlx::query(
            &store.sql("INSERT INTO schema_migrations (version, description) VALUES ($1, $2)"),
        )
        .bind(*version)
        .bind(*description)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(version, "migration applied");
    }
    Ok(())
}
