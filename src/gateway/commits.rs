//! Group commit: submissions that arrive together share one transaction. Every acceptance appends to the
//! one audit chain (its head row is the first write, so acceptances are serialised by the database on
//! SQLite and PostgreSQL alike) and every commit waits for its fsync, so one transaction per referral caps
//! a node at the disk's commit rate; here a single committer per node takes whatever submissions are
//! queued (up to [`MAX_BATCH`]), decides each in turn inside the one transaction (a submission that is
//! refused writes nothing and is answered with its error), writes what the accepted ones write together
//! (`batch`), commits once, and only then answers the others: none is
//! acknowledged before the commit that holds it, and if the commit fails every one of them is answered
//! with the failure. On SQLite the committer has a thread of its own (see `CommitQueue::start`). Several
//! nodes over one PostgreSQL each run a committer; their batches take turns at the chain's head.

use super::accept::{AssembledRecord, Prepared, accepted_now};
use super::batch::{BatchReads, BatchWrites};
use super::{Accepted, Gateway, GatewayError};
use crate::consent::audit::ChainHead;
use crate::store::{Backend, StoreError, WriteTx};
use std::sync::{Arc, Weak};
use tokio::sync::{mpsc, oneshot};

/// At most this many submissions in one transaction.
pub const MAX_BATCH: usize = 128;
/// Submissions waiting for the committer (more wait for room in the queue).
const QUEUE: usize = 4 * MAX_BATCH;

/// The committer's queue.
pub(super) struct CommitQueue {
    sender: mpsc::Sender<Pending>,
}

/// A submission waiting for its transaction, and where its answer goes.
struct Pending {
    prepared: Prepared,
    reply: Reply,
}

impl Gateway {
    /// Accept a prepared submission in the next group commit; answered once that has committed.
    pub(super) async fn commit_grouped(
        self: &Arc<Self>,
        prepared: Prepared,
    ) -> Result<Accepted, GatewayError> {
        let queue = self.commits.get_or_init(|| CommitQueue::start(self));
        let (reply, answer) = oneshot::channel();
        let stopped = || GatewayError::Store(StoreError::Batch("the committer stopped".into()));
        queue
            .sender
            .send(Pending { prepared, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// One transaction for `batch`: each submission decided in turn, their writes gathered and written
    /// together ([`BatchWrites`]); answers after the commit.
    async fn commit_batch(&self, batch: Vec<Pending>) {
        let started = std::time::Instant::now();
        let mut tx = match self.store.begin().await {
            Ok(tx) => tx,
            Err(err) => return fail_all(batch, &err),
        };
        // The chain's head first: the batch's first write, held to its commit.
        let mut head = match self.store.lock_chain(&mut tx).await {
            Ok(head) => head,
            Err(err) => return fail_all(batch, &err),
        };
        let wanted: Vec<_> = batch.iter().map(|p| p.prepared.reads()).collect();
        let reads = match BatchReads::read(&self.store, &mut tx, &wanted).await {
            Ok(reads) => reads,
            Err(err) => return fail_all(batch, &err),
        };
        drop(wanted);
        let mut writes = BatchWrites::default();
        let mut done = Vec::with_capacity(batch.len());
        let mut pending = batch.into_iter();
        while let Some(next) = pending.next() {
            match self
                .accept_into(
                    &mut tx,
                    &mut writes,
                    &mut head,
                    (next.prepared, Some(&reads)),
                    None,
                )
                .await
            {
                Ok(Ok(accepted)) => done.push((next.reply, accepted)),
                Ok(Err(refused)) => {
                    let _ = next.reply.send(Err(refused));
                }
                Err(err) => {
                    let mut replies: Vec<_> = done.into_iter().map(|(reply, _)| reply).collect();
                    replies.push(next.reply);
                    replies.extend(pending.map(|p| p.reply));
                    return fail_replies(replies, &err);
                }
            }
        }
        metrics::histogram!("onedoor_group_commit_size").record(done.len() as f64);
        let decided = started.elapsed();
        let finished = self.finish_batch(tx, writes, &head).await;
        metrics::histogram!("onedoor_group_commit_seconds", "phase" => "decide")
            .record(decided.as_secs_f64());
        metrics::histogram!("onedoor_group_commit_seconds", "phase" => "write_and_commit")
            .record((started.elapsed() - decided).as_secs_f64());
        if let Err(err) = finished {
            let replies = done.into_iter().map(|(reply, _)| reply).collect();
            return fail_replies(replies, &err);
        }
        for (reply, accepted) in done {
            accepted_now(&accepted);
            let _ = reply.send(Ok(accepted));
        }
    }

    /// Write what a batch gathered, move the chain's head once, and commit.
    async fn finish_batch(
        &self,
        mut tx: WriteTx<'_>,
        mut writes: BatchWrites,
        head: &ChainHead,
    ) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        writes.write(&self.store, &mut tx).await?;
        self.store.settle_chain(&mut tx, head).await?;
        metrics::histogram!("onedoor_group_commit_seconds", "phase" => "write")
            .record(started.elapsed().as_secs_f64());
        tx.commit().await
    }
}

impl CommitQueue {
    /// Start the committer for `gateway` (it holds the gateway weakly and ends with it). On SQLite it runs
    /// on a thread of its own: each of a commit's statements is a hand-off to the writer connection's
    /// thread and back, and on the shared workers every return waited behind the HTTP requests being
    /// parsed and validated there (BENCHMARKS.md, eleventh round). PostgreSQL's connections belong to the
    /// runtime that opened them, so there it stays a task of the server's runtime.
    fn start(gateway: &Arc<Gateway>) -> Self {
        let weak = Arc::downgrade(gateway);
        if gateway.store.backend() == Backend::Sqlite
            && let Some(sender) = on_own_thread(weak.clone())
        {
            return Self { sender };
        }
        let (sender, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(run(weak, receiver));
        Self { sender }
    }
}

/// Run a committer on a thread of its own, with a single-threaded runtime for its awaits; its queue, or
/// `None` (logged) when the thread cannot be made. The runtime has timers but no I/O driver (SQLite's
/// connection answers through a channel, not a socket): parked, it waits on a futex, and each statement's
/// answer wakes it without a write to an eventfd and a return from `epoll_wait` (BENCHMARKS.md, issue 13,
/// nineteenth round).
fn on_own_thread(gateway: Weak<Gateway>) -> Option<mpsc::Sender<Pending>> {
    let cannot = |error: std::io::Error| {
        tracing::warn!(%error, "no thread of its own for the committer; it runs among the workers");
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(cannot)
        .ok()?;
    let (sender, receiver) = mpsc::channel(QUEUE);
    std::thread::Builder::new()
        .name("onedoor-commit".into())
        .spawn(move || runtime.block_on(run(gateway, receiver)))
        .map_err(cannot)
        .ok()?;
    Some(sender)
}

/// The committer: wait for a submission, take every other one queued (up to [`MAX_BATCH`]), commit them.
async fn run(gateway: Weak<Gateway>, mut queue: mpsc::Receiver<Pending>) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let Some(gateway) = gateway.upgrade() else {
            return;
        };
        gateway.commit_batch(batch).await;
    }
}

fn fail_all(batch: Vec<Pending>, err: &StoreError) {
    fail_replies(batch.into_iter().map(|p| p.reply).collect(), err);
}

/// Where a submission's answer goes.
type Reply = oneshot::Sender<Result<Accepted, GatewayError>>;

fn fail_replies(replies: Vec<Reply>, err: &StoreError) {
    tracing::error!(error = %err, submissions = replies.len(), "group commit failed; nothing of it was stored");
    for reply in replies {
        let _ = reply.send(Err(GatewayError::Store(StoreError::Batch(err.to_string()))));
    }
}

/// What became of one record of a job's batch.
pub enum JobRecord {
    /// Stored (new, a revision or a duplicate).
    Accepted(Accepted),
    /// Not valid: refused with why (and counted in the job's refusals).
    Refused,
}

/// Records a job commits together: the ingest path's group commit.
pub const JOB_BATCH: usize = 64;

impl Gateway {
    /// Accept a job's records (each with its ordinal in the upload) in one transaction, their writes
    /// gathered as a group commit's are; each is checked for what assembling it added to the resources the
    /// pipeline validated ([`AssembledRecord`]); one that is not valid FHIR is refused alone (writing
    /// nothing) and listed in the job's refusals; the job's
    /// progress is written once, in the same transaction, so after a crash the job resumes after the last
    /// batch committed. Any other failure stops the batch and nothing of it is kept.
    pub async fn accept_job_batch(
        &self,
        source: &str,
        sender_org: &str,
        records: Vec<(i64, AssembledRecord)>,
        cursor: &mut super::JobCursor,
    ) -> Result<Vec<JobRecord>, GatewayError> {
        let mut prepared = Vec::with_capacity(records.len());
        for (ordinal, record) in records {
            let ready = self.prepare_assembled(source, sender_org, record).await;
            prepared.push((ordinal, ready));
        }
        let mut tx = self.store.begin().await?;
        let mut head = self.store.lock_chain(&mut tx).await?;
        let wanted: Vec<_> = (prepared.iter())
            .filter_map(|(_, ready)| ready.as_ref().ok().map(Prepared::reads))
            .collect();
        let reads = BatchReads::read(&self.store, &mut tx, &wanted).await?;
        drop(wanted);
        let mut writes = BatchWrites::default();
        let mut outcomes = Vec::with_capacity(prepared.len());
        for (ordinal, ready) in prepared {
            let outcome = match ready {
                Ok(ready) => {
                    let submission = (ready, Some(&reads));
                    (self.accept_into(&mut tx, &mut writes, &mut head, submission, Some(cursor)))
                        .await?
                }
                Err(refused) => Err(refused),
            };
            outcomes.push(match outcome {
                Ok(accepted) => JobRecord::Accepted(accepted),
                Err(refused) if is_refusal(&refused) => {
                    cursor.refuse(ordinal, refused.to_string());
                    JobRecord::Refused
                }
                Err(other) => return Err(other),
            });
        }
        writes.write(&self.store, &mut tx).await?;
        self.store
            .job_progress(&mut tx, &cursor.job, &cursor.node, cursor.lease_ms)
            .await?;
        self.store.settle_chain(&mut tx, &head).await?;
        tx.commit().await?;
        for outcome in &outcomes {
            if let JobRecord::Accepted(accepted) = outcome {
                accepted_now(accepted);
            }
        }
        Ok(outcomes)
    }
}

/// A record's own fault (not valid FHIR, or something its sender may not write): refused, the job goes on.
fn is_refusal(error: &GatewayError) -> bool {
    matches!(
        error,
        GatewayError::Invalid(_) | GatewayError::Unprocessable(_) | GatewayError::NotAllowed(_)
    )
}
