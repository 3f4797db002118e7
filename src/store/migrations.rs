//! Migrations: SQL files under `src/store/migrations/`, the same for SQLite and PostgreSQL (the dialect
//! differences are placeholders: `{blob}`, the binary column type, and `{without_rowid}`, which makes a
//! table keyed by its primary key alone on SQLite and is nothing on PostgreSQL), embedded in the binary and
//! applied in order at start-up, each in one transaction and recorded in `schema_migrations` so it runs
//! once. A database that records a version this build does not know was migrated by a newer onedoor and
//! is refused rather than used.

use super::{Backend, Store, StoreError};
use sqlx::Row;

/// (version, file name, SQL).
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "0001_core.sql", include_str!("migrations/0001_core.sql")),
    (
        2,
        "0002_incident_sightings.sql",
        include_str!("migrations/0002_incident_sightings.sql"),
    ),
    (
        3,
        "0003_one_source_of_truth.sql",
        include_str!("migrations/0003_one_source_of_truth.sql"),
    ),
    (
        4,
        "0004_credentials.sql",
        include_str!("migrations/0004_credentials.sql"),
    ),
    (
        5,
        "0005_settings.sql",
        include_str!("migrations/0005_settings.sql"),
    ),
    (
        6,
        "0006_reads_and_rights.sql",
        include_str!("migrations/0006_reads_and_rights.sql"),
    ),
    (
        7,
        "0007_subscriptions.sql",
        include_str!("migrations/0007_subscriptions.sql"),
    ),
    (
        8,
        "0008_one_copy_of_each_version.sql",
        include_str!("migrations/0008_one_copy_of_each_version.sql"),
    ),
    (
        9,
        "0009_messages_name_versions.sql",
        include_str!("migrations/0009_messages_name_versions.sql"),
    ),
];

/// The newest schema version this build knows.
pub fn known_version() -> i64 {
    MIGRATIONS.iter().map(|m| m.0).max().unwrap_or(0)
}

/// Apply the migrations not yet applied; refuse a database a newer onedoor migrated.
pub async fn run(store: &Store) -> Result<(), StoreError> {
    sqlx::query("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL)")
        .execute(store.pool())
        .await?;
    let newest: Option<i64> = sqlx::query("SELECT MAX(version) AS v FROM schema_migrations")
        .fetch_one(store.pool())
        .await?
        .try_get("v")?;
    if let Some(found) = newest.filter(|v| *v > known_version()) {
        return Err(StoreError::NewerSchema {
            found,
            known: known_version(),
        });
    }
    let applied: Vec<i64> = sqlx::query("SELECT version FROM schema_migrations")
        .fetch_all(store.pool())
        .await?
        .iter()
        .map(|row| row.try_get::<i64, _>("version"))
        .collect::<Result<_, _>>()?;
    for (version, name, sql) in MIGRATIONS {
        if !applied.contains(version) {
            apply(store, *version, name, sql).await?;
        }
    }
    Ok(())
}

async fn apply(store: &Store, version: i64, name: &str, sql: &str) -> Result<(), StoreError> {
    let (blob, without_rowid) = match store.backend() {
        Backend::Sqlite => ("BLOB", " WITHOUT ROWID"),
        Backend::Postgres => ("BYTEA", ""),
    };
    let mut tx = store.begin().await?;
    // Another node may be migrating at the same moment: the first to record the version wins, the other's
    // transaction fails on the primary key and rolls back, and it finds the version applied.
    for statement in statements(sql) {
        let statement = statement
            .replace("{blob}", blob)
            .replace("{without_rowid}", without_rowid);
        sqlx::query(&statement).execute(tx.conn()).await?;
    }
    sqlx::query(&store.sql("INSERT INTO schema_migrations (version, description) VALUES ($1, $2)"))
        .bind(version)
        .bind(name)
        .execute(tx.conn())
        .await?;
    tx.commit().await?;
    tracing::info!(version, name, "migration applied");
    Ok(())
}

/// The statements of a migration file: `;`-separated, `--` comment lines left out.
fn statements(sql: &str) -> Vec<String> {
    let text: String = sql
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    text.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_migration_splits_into_statements() {
        for (_, name, sql) in super::MIGRATIONS {
            let statements = super::statements(sql);
            assert!(!statements.is_empty(), "{name}");
            assert!(statements.iter().all(|s| !s.contains("--")), "{name}");
        }
    }
}
