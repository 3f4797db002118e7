//! The durable store (DESIGN.md sections 9 and 13): the one source of truth for every node. SQLite (WAL)
//! embedded by default, PostgreSQL for more than one gateway node; both sit behind [`Store`], one set of
//! queries over sqlx's `Any` driver. Where the dialects differ (claiming work: `FOR UPDATE SKIP LOCKED` on
//! PostgreSQL, one atomic `UPDATE ... RETURNING` on SQLite) the table's file says so.
//!
//! One file per table or aggregate, each with its queries and row types:
//! [`messages`] (referral messages and their deliveries, the outbox), [`resources`] (FHIR resources and
//! their version history), [`consents`] (consents, legal bases in force, and the version counters that
//! tell a node another changed them), [`audit`] (the hash-chained audit log, its anchored head and the
//! disclosure log), [`partners`] (partners and their credentials), [`jobs`] (ingest jobs and their
//! uploads), [`incidents`] (repeat-incident history); beside them, how a message keeps the versions it
//! carries (`carried`) and the store's own meta on a version (`store_meta`). Migrations are SQL files under `migrations/`, the
//! same for both databases, applied at start-up; a store migrated by a newer onedoor is refused.
//!
//! Everything a partner sends is committed here before it is acknowledged.

pub mod audit;
mod carried;
pub mod consents;
pub mod incidents;
mod inserts;
pub mod jobs;
pub mod messages;
mod migrations;
pub mod partners;
mod reads;
pub mod resources;
pub mod settings;
mod store_meta;
pub mod subscriptions;

pub(crate) use inserts::{Insert, ROWS_PER_STATEMENT, RowsInsert};
pub use messages::{DeliveryKind, DeliveryStatus, Message, OutboxItem};
pub use resources::{HeldResources, ResourceIndex, StoredNow, StoredResource};
pub use subscriptions::{StoredSubscription, SubscriptionStatus};

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
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
    /// The database was migrated by a newer onedoor.
    #[error(
        "store: the database is at schema version {found}, newer than this onedoor knows ({known}); \
         run the onedoor version that migrated it, or restore a backup"
    )]
    NewerSchema {
        /// The highest version recorded in the database.
        found: i64,
        /// The highest version this build knows.
        known: i64,
    },
    /// An update was based on a version that is no longer current (another node changed it meanwhile).
    #[error("version conflict: {0}")]
    VersionConflict(String),
    /// A group commit failed (every submission in it was answered with this).
    #[error("store: {0}")]
    Batch(String),
    /// A claim (job, delivery) was taken over by another node after its lease ran out.
    #[error("claim lost: {0}")]
    ClaimLost(String),
}

/// Who checkpoints SQLite's write-ahead log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checkpoints {
    /// SQLite, in the commit that fills the log past 1,000 pages (that commit waits for it): the CLI.
    InCommit,
    /// A background task ([`Store::checkpoint_wal`]) copies the log into the database file beside the
    /// writer: the server, whose commits should not stall. The writer's own connection checkpoints as well
    /// once the log holds [`WRITER_CHECKPOINT_PAGES`], in the commit that fills it, so that under
    /// sustained load the log starts again from its beginning instead of growing: a checkpoint on another
    /// connection never catches up with a writer that commits every few milliseconds, and SQLite restarts
    /// the log only when a write begins with every frame copied (BENCHMARKS.md, issue 13 fourteenth round:
    /// the log grew by 160 MB a second under `benches/server_load.sh`, 2.4 GB in 15 s).
    Background,
}

/// How long a read or a transaction waits for a connection before it fails.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// Pages (4 KiB) of write-ahead log after which the server's writer checkpoints in its commit (8 MiB).
pub const WRITER_CHECKPOINT_PAGES: u32 = 2048;

/// Bytes SQLite truncates the write-ahead log file to when it restarts or checkpoints it, so that one
/// large transaction does not leave a large file behind.
const WAL_SIZE_LIMIT: u64 = 64 * 1024 * 1024;

/// Which of a store's pools connections are for: on SQLite the writer has one connection of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PoolRole {
    Reads,
    Writes,
}

/// The store.
#[derive(Clone)]
pub struct Store {
    /// Reads outside a transaction (`reads`).
    pool: reads::Reads,
    /// Where write transactions run: on SQLite one connection of its own, on PostgreSQL `pool`.
    writes: AnyPool,
    backend: Backend,
    /// SQLite has one writer at a time, and a deferred transaction that read first fails at once when it
    /// must wait to write; this process's writers queue here instead. Across processes (the CLI beside a
    /// server) SQLite's own lock serialises them: transactions that must not interleave start with a write.
    writer: std::sync::Arc<tokio::sync::Mutex<()>>,
}

/// A write transaction (holding, on SQLite, this process's writer turn).
pub struct WriteTx<'a> {
    /// The transaction.
    pub tx: sqlx::Transaction<'static, sqlx::Any>,
    _turn: Option<tokio::sync::MutexGuard<'a, ()>>,
    /// Set once the transaction holds the audit chain's head ([`Store::lock_chain`]).
    holds_chain: bool,
    /// The consent state's counters as read in this transaction, kept while it holds the chain's head:
    /// every consent write takes the head first, so none can change them until this one commits.
    state_versions: Option<consents::StateVersions>,
}

impl WriteTx<'_> {
    /// Commit.
    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await?;
        Ok(())
    }

    /// The connection, for queries.
    pub fn conn(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.tx
    }
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Store {
    /// Connect (`sqlite://path` — created if missing — or `postgres://...`) and migrate. SQLite checkpoints
    /// its write-ahead log itself, in the commit that fills it.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, Checkpoints::InCommit).await
    }

    /// Connect with the checkpointing `checkpoints` says (SQLite; PostgreSQL ignores it).
    pub async fn connect_with(url: &str, checkpoints: Checkpoints) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = backend_of(url)?;
        let url = match backend {
            Backend::Sqlite if !url.contains('?') => format!("{url}?mode=rwc"),
            _ => url.to_owned(),
        };
        let sqlite = backend == Backend::Sqlite;
        let max = if sqlite { 4 } else { 10 };
        let read_pool = open_pool(&url, max, sqlite, checkpoints, PoolRole::Reads).await?;
        // SQLite: this process's write transactions take turns on one connection of their own. A
        // connection drops its page cache whenever another one wrote since its last transaction, so with
        // writers spread over the pool every group commit read its tables' pages back from the file; the
        // one connection that writes keeps them (BENCHMARKS.md, tenth round). PostgreSQL: the one pool.
        let writes = if sqlite {
            open_pool(&url, 1, sqlite, checkpoints, PoolRole::Writes).await?
        } else {
            read_pool.clone()
        };
        let store = Self {
            pool: reads::Reads::new(read_pool, max, sqlite),
            writes,
            backend,
            writer: Default::default(),
        };
        migrations::run(&store).await?;
        Ok(store)
    }

    /// Copy what the SQLite write-ahead log holds into the database file, without blocking the writer
    /// (a passive checkpoint), every `every` until `stop` turns true: with [`Checkpoints::Background`] the
    /// commits pay only for what this has not copied when the log reaches [`WRITER_CHECKPOINT_PAGES`], and
    /// an idle server's log is copied. PostgreSQL: returns at once.
    pub async fn checkpoint_wal(
        &self,
        every: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        if self.backend != Backend::Sqlite {
            return;
        }
        loop {
            if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&self.pool)
                .await
            {
                tracing::warn!(%error, "write-ahead log checkpoint failed; retried");
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// Which database.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Rewrite `$1` placeholders for SQLite (`?1`).
    pub(crate) fn sql(&self, query: &str) -> String {
        match self.backend {
            Backend::Postgres => query.to_owned(),
            Backend::Sqlite => query.replace('$', "?"),
        }
    }

    /// Begin a write transaction.
    pub async fn begin(&self) -> Result<WriteTx<'_>, StoreError> {
        let turn = match self.backend {
            Backend::Sqlite => Some(self.writer.lock().await),
            Backend::Postgres => None,
        };
        Ok(WriteTx {
            tx: self.writes.begin().await?,
            _turn: turn,
            holds_chain: false,
            state_versions: None,
        })
    }

    pub(crate) fn pool(&self) -> &reads::Reads {
        &self.pool
    }

    /// Whether the database answers.
    pub async fn ready(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }
}

/// A pool of at most `max` connections to `url`; SQLite connections made durable (WAL, full sync) with
/// the checkpointing `checkpoints` says for connections of `role`.
async fn open_pool(
    url: &str,
    max: u32,
    sqlite: bool,
    checkpoints: Checkpoints,
    role: PoolRole,
) -> Result<AnyPool, StoreError> {
    // Pages of log after which a commit on the connection checkpoints; `None`: SQLite's default.
    let autocheckpoint_pages = match (checkpoints, role) {
        (Checkpoints::InCommit, _) => None,
        (Checkpoints::Background, PoolRole::Reads) => Some(0),
        (Checkpoints::Background, PoolRole::Writes) => Some(WRITER_CHECKPOINT_PAGES),
    };
    let pool = AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        // An embedded SQLite connection does not go stale: no ping (a round trip to its thread) on
        // every acquire. A PostgreSQL connection is checked, so a dropped one is replaced.
        .test_before_acquire(!sqlite)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if sqlite {
                    // Durable commits (a referral acknowledged is on disk), readers beside the writer.
                    for pragma in [
                        "PRAGMA journal_mode=WAL",
                        "PRAGMA synchronous=FULL",
                        "PRAGMA busy_timeout=30000",
                        // Statement journals (a multi-row insert inside a transaction) in memory,
                        // not in a temporary file; and a page cache that holds the hot indexes.
                        "PRAGMA temp_store=MEMORY",
                        "PRAGMA cache_size=-16384",
                    ] {
                        sqlx::query(pragma).execute(&mut *conn).await?;
                    }
                    let size_limit = format!("PRAGMA journal_size_limit={WAL_SIZE_LIMIT}");
                    sqlx::query(&size_limit).execute(&mut *conn).await?;
                    if let Some(pages) = autocheckpoint_pages {
                        // Readers never checkpoint (`checkpoint_wal` does it beside the writer); the
                        // writer does once the log is long (see `Checkpoints::Background`).
                        let autocheckpoint = format!("PRAGMA wal_autocheckpoint={pages}");
                        sqlx::query(&autocheckpoint).execute(&mut *conn).await?;
                    }
                }
                Ok(())
            })
        })
        .connect(url)
        .await?;
    Ok(pool)
}

fn backend_of(url: &str) -> Result<Backend, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Backend::Sqlite)
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Backend::Postgres)
    } else {
        Err(StoreError::UnsupportedUrl(url.to_owned()))
    }
}

/// `Type/id` of a resource, read with checked accessors.
pub(crate) fn reference_of(resource: &serde_json::Value) -> String {
    format!(
        "{}/{}",
        resource
            .get("resourceType")
            .and_then(|v| v.as_str())
            .unwrap_or_default(),
        resource
            .get("id")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
    )
}

/// A query on the store's connection, as built with `sqlx::query` and its binds.
pub(crate) type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;
