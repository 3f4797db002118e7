//! Ingest jobs and their uploads. An upload is answered 202 only once it and its job are committed here
//! (the bytes in `job_uploads`, in chunks), so any node can run it. A job is claimed with a lease like
//! outbox work; each record it hands to the gateway advances `records_done` in the transaction that
//! stores the record, so a job interrupted by a crash resumes after its last committed record, on
//! whichever node claims it next, and says it was resumed.

use super::messages::text_enum;
use super::{Backend, Store, StoreError, WriteTx, now_ms};
use serde_json::{Value, json};
use sqlx::Row;
use sqlx::any::AnyRow;

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    /// Stored, not yet started.
    Queued,
    /// Claimed by a node (or interrupted, until another claims it).
    Running,
    /// Finished: the report says what happened to each record.
    Done,
    /// Stopped by an error that concerns the whole upload (unreadable format, unknown mapping).
    Failed,
}

text_enum!(JobStatus { Queued => "queued", Running => "running", Done => "done", Failed => "failed" });

/// A new job and its upload.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Job id.
    pub id: String,
    /// The configured source.
    pub source: String,
    /// The organization the records come from.
    pub org: String,
    /// The upload's name as the caller gave it.
    pub upload_name: String,
    /// The partner that posted it (only it and the admin see the job).
    pub partner: String,
}

/// A job a node claimed.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    /// Job id.
    pub id: String,
    /// The configured source.
    pub source: String,
    /// The organization the records come from.
    pub org: String,
    /// The upload's name as the caller gave it.
    pub upload_name: String,
    /// Records already committed (skipped on resume).
    pub records_done: i64,
    /// Counts so far.
    pub counts: JobCounts,
    /// Records refused so far (why, where).
    pub refused: Vec<Value>,
    /// Times it was resumed after an interruption (this claim included).
    pub resumed: i64,
}

/// What became of a job's records so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobCounts {
    /// New referrals (or other records) stored.
    pub accepted: i64,
    /// Changed copies of stored ones, stored as new revisions.
    pub updated: i64,
    /// Identical copies of stored ones.
    pub duplicates: i64,
}

/// Upload chunk size in the store.
const CHUNK: usize = 1 << 20;

impl Store {
    /// Store a job and its upload (read from `upload`) in one transaction.
    pub async fn create_job(
        &self,
        job: &NewJob,
        upload: &std::path::Path,
    ) -> Result<i64, StoreError> {
        let bytes = tokio::fs::read(upload)
            .await
            .map_err(|e| StoreError::Corrupt(format!("the upload could not be read back: {e}")))?;
        let now = now_ms();
        let mut tx = self.begin().await?;
        sqlx::query(&self.sql(
            "INSERT INTO jobs (id, source, status, created_at, updated_at, report, upload_name, upload_bytes, org, partner) \
             VALUES ($1, $2, 'queued', $3, $3, '{}', $4, $5, $6, $7)",
        ))
        .bind(&job.id)
        .bind(&job.source)
        .bind(now)
        .bind(&job.upload_name)
        .bind(bytes.len() as i64)
        .bind(&job.org)
        .bind(&job.partner)
        .execute(tx.conn())
        .await?;
        for (index, chunk) in bytes.chunks(CHUNK).enumerate() {
            sqlx::query(
                &self.sql("INSERT INTO job_uploads (job_id, chunk, data) VALUES ($1, $2, $3)"),
            )
            .bind(&job.id)
            .bind(index as i64)
            .bind(chunk.to_vec())
            .execute(tx.conn())
            .await?;
        }
        tx.commit().await?;
        Ok(bytes.len() as i64)
    }

    /// Claim the oldest job that is queued, or running with its lease run out (interrupted).
    pub async fn claim_job(
        &self,
        node: &str,
        lease_ms: i64,
    ) -> Result<Option<ClaimedJob>, StoreError> {
        let now = now_ms();
        let query = match self.backend {
            Backend::Postgres => {
                "WITH next AS (SELECT id FROM jobs WHERE status IN ('queued', 'running') AND claimed_until <= $3 \
                 ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED) \
                 UPDATE jobs SET claimed_until = $1, claimed_by = $2, \
                 resumed = jobs.resumed + (CASE WHEN jobs.status = 'running' THEN 1 ELSE 0 END), status = 'running', updated_at = $3 \
                 FROM next WHERE jobs.id = next.id AND jobs.claimed_until <= $3 \
                 RETURNING jobs.id, jobs.source, jobs.org, jobs.upload_name, jobs.records_done, jobs.accepted, jobs.updated, \
                 jobs.duplicates, jobs.refused, jobs.resumed"
            }
            Backend::Sqlite => {
                "UPDATE jobs SET claimed_until = $1, claimed_by = $2, \
                 resumed = resumed + (CASE WHEN status = 'running' THEN 1 ELSE 0 END), status = 'running', updated_at = $3 \
                 WHERE id IN (SELECT id FROM jobs WHERE status IN ('queued', 'running') AND claimed_until <= $3 \
                 ORDER BY created_at LIMIT 1) \
                 RETURNING id, source, org, upload_name, records_done, accepted, updated, duplicates, refused, resumed"
            }
        };
        let mut tx = self.begin().await?;
        let row = sqlx::query(&self.sql(query))
            .bind(now + lease_ms)
            .bind(node)
            .bind(now)
            .fetch_optional(tx.conn())
            .await?;
        tx.commit().await?;
        row.as_ref().map(claimed_job).transpose()
    }

    /// Write a job's upload to `path`.
    pub async fn job_upload(&self, id: &str, path: &std::path::Path) -> Result<(), StoreError> {
        let rows =
            sqlx::query(&self.sql("SELECT data FROM job_uploads WHERE job_id = $1 ORDER BY chunk"))
                .bind(id)
                .fetch_all(self.pool())
                .await?;
        let mut bytes = Vec::new();
        for row in rows {
            bytes.extend_from_slice(&row.try_get::<Vec<u8>, _>("data")?);
        }
        tokio::fs::write(path, bytes)
            .await
            .map_err(|e| StoreError::Corrupt(format!("the upload could not be written out: {e}")))
    }

    /// Advance a job inside `tx` (the transaction that stored its record), extending its lease. Fails
    /// with [`StoreError::ClaimLost`] when another node claimed it meanwhile: the caller rolls back.
    pub async fn job_progress(
        &self,
        tx: &mut WriteTx<'_>,
        job: &ClaimedJob,
        node: &str,
        lease_ms: i64,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(&self.sql(
            "UPDATE jobs SET records_done = $1, accepted = $2, updated = $3, duplicates = $4, refused = $5, \
             claimed_until = $6, updated_at = $7 WHERE id = $8 AND claimed_by = $9 AND status = 'running'",
        ))
        .bind(job.records_done)
        .bind(job.counts.accepted)
        .bind(job.counts.updated)
        .bind(job.counts.duplicates)
        .bind(Value::Array(job.refused.clone()).to_string())
        .bind(now_ms() + lease_ms)
        .bind(now_ms())
        .bind(&job.id)
        .bind(node)
        .execute(tx.conn())
        .await?;
        if done.rows_affected() == 1 {
            Ok(())
        } else {
            Err(StoreError::ClaimLost(format!(
                "job {} was claimed by another node",
                job.id
            )))
        }
    }

    /// Advance a job in a transaction of its own (a refused record, which stores nothing).
    pub async fn job_step(
        &self,
        job: &ClaimedJob,
        node: &str,
        lease_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        self.job_progress(&mut tx, job, node, lease_ms).await?;
        tx.commit().await
    }

    /// Finish a job: its status and report; the upload is no longer needed and is dropped.
    pub async fn finish_job(
        &self,
        id: &str,
        node: &str,
        status: JobStatus,
        report: &Value,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(&self.sql(
            "UPDATE jobs SET status = $1, report = $2, updated_at = $3, claimed_until = 0 WHERE id = $4 AND claimed_by = $5 AND status = 'running'",
        ))
        .bind(status.as_str())
        .bind(report.to_string())
        .bind(now_ms())
        .bind(id)
        .bind(node)
        .execute(tx.conn())
        .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::ClaimLost(format!(
                "job {id} was claimed by another node"
            )));
        }
        sqlx::query(&self.sql("DELETE FROM job_uploads WHERE job_id = $1"))
            .bind(id)
            .execute(tx.conn())
            .await?;
        tx.commit().await
    }

    /// A job as JSON, for `GET /jobs/{id}`; with the partner that posted it.
    pub async fn job(&self, id: &str) -> Result<Option<(Value, String)>, StoreError> {
        let row = sqlx::query(&self.sql("SELECT * FROM jobs WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| -> Result<(Value, String), StoreError> {
            let status: JobStatus = r.try_get::<String, _>("status")?.parse()?;
            Ok((
                json!({
                    "id": r.try_get::<String, _>("id")?,
                    "source": r.try_get::<String, _>("source")?,
                    "status": status.as_str(),
                    "upload": {"name": r.try_get::<String, _>("upload_name")?, "bytes": r.try_get::<i64, _>("upload_bytes")?},
                    "records_done": r.try_get::<i64, _>("records_done")?,
                    "accepted": r.try_get::<i64, _>("accepted")?,
                    "updated": r.try_get::<i64, _>("updated")?,
                    "duplicates": r.try_get::<i64, _>("duplicates")?,
                    "refused": serde_json::from_str::<Value>(&r.try_get::<String, _>("refused")?)?,
                    "resumed": r.try_get::<i64, _>("resumed")?,
                    "report": serde_json::from_str::<Value>(&r.try_get::<String, _>("report")?)?,
                }),
                r.try_get("partner")?,
            ))
        })
        .transpose()
    }
}

fn claimed_job(row: &AnyRow) -> Result<ClaimedJob, StoreError> {
    let refused: Value = serde_json::from_str(&row.try_get::<String, _>("refused")?)?;
    Ok(ClaimedJob {
        id: row.try_get("id")?,
        source: row.try_get("source")?,
        org: row.try_get("org")?,
        upload_name: row.try_get("upload_name")?,
        records_done: row.try_get("records_done")?,
        counts: JobCounts {
            accepted: row.try_get("accepted")?,
            updated: row.try_get("updated")?,
            duplicates: row.try_get("duplicates")?,
        },
        refused: refused.as_array().cloned().unwrap_or_default(),
        resumed: row.try_get("resumed")?,
    })
}
