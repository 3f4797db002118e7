//! The connections the store reads on outside a transaction.
//!
//! sqlx gives a connection back to its pool with a ping (`PoolConnection::return_to_pool`), and on SQLite a
//! ping is a hand-off to the connection's thread and back. A referral posted to the server makes two reads
//! (its partner's key, its subject): two pings, 6% of the server's CPU a referral (BENCHMARKS.md, issue 13
//! twentieth round). On SQLite a connection is taken from the pool once, detached from it, and kept here
//! between reads; a read that failed or was dropped half-way (a client gone) closes its connection instead,
//! and the next read opens another through the pool (which gives it the store's pragmas). At most as many
//! reads run at once as the pool has connections, so no more connections than that are ever open for reads.
//! On PostgreSQL every read takes and returns a pool connection as sqlx does (its pool checks a
//! connection before handing it out, so one the server dropped is replaced).

use futures_util::future::BoxFuture;
use futures_util::stream::{self, BoxStream};
use futures_util::{FutureExt, StreamExt, TryFutureExt, TryStreamExt};
use sqlx::any::{AnyQueryResult, AnyRow, AnyStatement, AnyTypeInfo};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Describe, Either, Execute, Executor};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{Semaphore, SemaphorePermit};

/// The store's read pool, with the connections finished reads gave back (SQLite).
#[derive(Clone, Debug)]
pub struct Reads {
    pool: AnyPool,
    kept: Option<Arc<Kept>>,
}

/// Connections given back after a finished read (detached from the pool), and the turns that bound how
/// many reads run at once.
#[derive(Debug)]
struct Kept {
    idle: Mutex<Vec<AnyConnection>>,
    turns: Semaphore,
}

/// A connection taken for one read; [`ReadConnection::give_back`] once the read finished. Dropped
/// without, a detached connection is closed, a pool connection goes back to the pool.
pub struct ReadConnection<'r> {
    conn: Taken,
    kept: Option<&'r Kept>,
    _turn: Option<SemaphorePermit<'r>>,
}

/// A connection as a read took it.
enum Taken {
    /// Detached from the pool (SQLite): kept here between reads.
    Detached(AnyConnection),
    /// The pool's, given back to it (PostgreSQL).
    Pooled(PoolConnection<Any>),
}

impl Reads {
    /// Reads on `pool` of `connections` connections; `keep` (SQLite): connections of finished reads are
    /// kept here rather than given back to the pool.
    pub fn new(pool: AnyPool, connections: u32, keep: bool) -> Self {
        let kept = keep.then(|| {
            Arc::new(Kept {
                idle: Mutex::new(Vec::new()),
                turns: Semaphore::new(connections as usize),
            })
        });
        Self { pool, kept }
    }

    /// A connection for one read: one a finished read gave back, else one from the pool.
    pub async fn connection(&self) -> Result<ReadConnection<'_>, sqlx::Error> {
        let Some(kept) = self.kept.as_deref() else {
            let conn = self.pool.acquire().await?;
            return Ok(ReadConnection {
                conn: Taken::Pooled(conn),
                kept: None,
                _turn: None,
            });
        };
        // As long as the pool waits for a connection (its acquire timeout), then the same error.
        let turn = tokio::time::timeout(super::ACQUIRE_TIMEOUT, kept.turns.acquire())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let idle = kept
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self.pool.acquire().await?.detach(),
        };
        Ok(ReadConnection {
            conn: Taken::Detached(conn),
            kept: Some(kept),
            _turn: Some(turn),
        })
    }
}

impl ReadConnection<'_> {
    /// The read finished: the connection is kept for the next one (SQLite), or given back to the pool.
    pub fn give_back(self) {
        if let (Taken::Detached(conn), Some(kept)) = (self.conn, self.kept) {
            kept.idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(conn);
        }
    }

    /// The connection.
    pub fn conn(&mut self) -> &mut AnyConnection {
        match &mut self.conn {
            Taken::Detached(conn) => conn,
            Taken::Pooled(conn) => conn,
        }
    }
}

/// Run `read` on a connection of `reads`, giving it back when the read succeeded.
async fn on_connection<T>(
    reads: &Reads,
    read: impl AsyncFnOnce(&mut AnyConnection) -> Result<T, sqlx::Error>,
) -> Result<T, sqlx::Error> {
    let mut conn = reads.connection().await?;
    let done = read(conn.conn()).await?;
    conn.give_back();
    Ok(done)
}

impl<'p> Executor<'p> for &'p Reads {
    type Database = Any;

    /// The statement's results, all read before the first is handed on (the store reads whole results).
    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<AnyQueryResult, AnyRow>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, Any>,
    {
        let steps = on_connection(self, async move |conn| {
            conn.fetch_many(query).try_collect::<Vec<_>>().await
        });
        steps
            .map_ok(|steps| stream::iter(steps.into_iter().map(Ok)))
            .try_flatten_stream()
            .boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<AnyRow>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, Any>,
    {
        on_connection(self, async move |conn| conn.fetch_optional(query).await).boxed()
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [AnyTypeInfo],
    ) -> BoxFuture<'e, Result<AnyStatement<'q>, sqlx::Error>>
    where
        'p: 'e,
    {
        on_connection(self, async move |conn| {
            conn.prepare_with(sql, parameters).await
        })
        .boxed()
    }

    fn describe<'e, 'q: 'e>(self, sql: &'q str) -> BoxFuture<'e, Result<Describe<Any>, sqlx::Error>>
    where
        'p: 'e,
    {
        on_connection(self, async move |conn| conn.describe(sql).await).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Reads over a new SQLite file, with `connections` connections.
    async fn reads(dir: &tempfile::TempDir, connections: u32) -> Reads {
        sqlx::any::install_default_drivers();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("r.db").display());
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(connections)
            .acquire_timeout(Duration::from_secs(30))
            .connect(&url)
            .await
            .unwrap();
        Reads::new(pool, connections, true)
    }

    fn kept(reads: &Reads) -> usize {
        let kept = reads.kept.as_deref().unwrap();
        kept.idle.lock().unwrap().len()
    }

    /// A query that runs for a while (a recursive count to three million: a fraction of a second; the
    /// connection answers again once it has run to its end).
    const SLOW: &str = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000000) \
                        SELECT count(*) FROM n";

    #[tokio::test]
    async fn more_reads_than_connections_all_finish_and_keep_at_most_the_connections() {
        let dir = tempfile::tempdir().unwrap();
        let reads = reads(&dir, 2).await;
        let all = (0..16).map(|i| {
            let reads = &reads;
            async move {
                let row = sqlx::query("SELECT $1 + 1")
                    .bind(i as i64)
                    .fetch_one(reads)
                    .await
                    .unwrap();
                sqlx::Row::get::<i64, _>(&row, 0)
            }
        });
        let answers =
            tokio::time::timeout(Duration::from_secs(10), futures_util::future::join_all(all))
                .await
                .expect("16 reads on 2 connections finish");
        assert_eq!(answers, (1..=16).collect::<Vec<i64>>());
        assert!((1..=2).contains(&kept(&reads)), "kept {}", kept(&reads));
    }

    #[tokio::test]
    async fn a_read_that_failed_or_was_dropped_closes_its_connection_and_the_next_opens_another() {
        let dir = tempfile::tempdir().unwrap();
        let reads = reads(&dir, 1).await;
        sqlx::query("SELECT 1").execute(&reads).await.unwrap();
        assert_eq!(kept(&reads), 1);
        // Refused by SQLite: not kept.
        assert!(
            sqlx::query("SELECT nothing FROM nowhere")
                .fetch_all(&reads)
                .await
                .is_err()
        );
        assert_eq!(kept(&reads), 0);
        // Dropped half-way (its client gone): not kept either.
        let slow = sqlx::query(SLOW).fetch_one(&reads);
        assert!(
            tokio::time::timeout(Duration::from_millis(20), slow)
                .await
                .is_err()
        );
        assert_eq!(kept(&reads), 0);
        // A new connection answers (not waiting for the dropped read's statement), and is kept.
        let row = sqlx::query("SELECT 41 + 1")
            .fetch_one(&reads)
            .await
            .unwrap();
        assert_eq!(sqlx::Row::get::<i64, _>(&row, 0), 42);
        assert_eq!(kept(&reads), 1);
    }

    #[tokio::test]
    async fn a_kept_connection_sees_what_was_committed_since() {
        let dir = tempfile::tempdir().unwrap();
        let reads = reads(&dir, 1).await;
        sqlx::query("CREATE TABLE t (v INTEGER)")
            .execute(&reads)
            .await
            .unwrap();
        for v in 1..=3_i64 {
            sqlx::query("INSERT INTO t VALUES ($1)")
                .bind(v)
                .execute(&reads)
                .await
                .unwrap();
            let row = sqlx::query("SELECT count(*) FROM t")
                .fetch_one(&reads)
                .await
                .unwrap();
            assert_eq!(sqlx::Row::get::<i64, _>(&row, 0), v);
        }
    }
}
