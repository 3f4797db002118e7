//! Reading, finishing, mapping and validating the records of a long run on several threads, with the same
//! output, summary and quirk log as on one thread.
//!
//! Each worker takes the next numbered batch of records from the source itself, under one lock, so the
//! records are read one after the other in the source's order (the source's duplicate checks and quirk
//! notes see them as on one thread). Outside the lock it finishes them (the source's [`Completion`]: a
//! referral's roster joins), maps, validates and serializes them: a record's values are made, read and
//! freed on one core (decoded on a reading thread and mapped on a worker, the two-thread run spent 13–40%
//! more CPU than one thread; BENCHMARKS.md, issue 13 twelfth round).
//!
//! The calling thread keeps everything that depends on order: it settles the mapped batches strictly in
//! their order (grouping, the id collision check, the summary, the output), and while none is ready to
//! settle it takes and maps the next batch itself, as a worker does: a run on N threads is N - 1 workers and
//! the calling thread, so N cores are not shared by N + 1 busy threads.
//!
//! Each mapping thread compiles its own copy of the mapping, with its own date filters' position and a
//! quirk log that records its calls; while it finishes a record, every call it makes on any log (the
//! source's included) is recorded too ([`QuirkLog::recording_into`]). Each record's calls are applied to the
//! run's log when the record is settled: those of finishing it always (one thread reads every record), those
//! of mapping it unless it follows a rejected lead record (which one thread would not have mapped at all).
//! At most [`IN_FLIGHT`] batches are taken and not yet settled, so memory stays bounded whatever the size
//! of the export.

use super::{Built, Group, Mapped, Mapper, PipelineError, Plan, Sink, Stage, Summary};
use crate::adapters::source::{self, Completion};
use crate::mapping::{MappingEngine, MappingError};
use crate::record::quirks::QuirkEvent;
use crate::record::{Decoded, QuirkLog, SourceRecord};
use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// Records per batch a worker takes.
const BATCH: usize = 32;

/// Batches taken and not yet settled, at most.
const IN_FLIGHT: u64 = 16;

/// A numbered batch of records with what mapping each gave.
type Done = (u64, Vec<(Decoded, Mapped)>);

/// Threads for a run (the calling thread among them): `ONEDOOR_THREADS` when set, else the cores this
/// process may run on.
pub(super) fn threads() -> usize {
    std::env::var("ONEDOOR_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
        .clamp(1, 64)
}

/// The source's records and how far the run is, shared by the workers and the calling thread.
struct Reading<I> {
    records: I,
    /// The number the next batch taken gets.
    next: u64,
    /// Batches settled so far (the settling thread's count).
    settled: u64,
    /// The source has no more records.
    exhausted: bool,
    /// The run ended early (an error while settling, a worker that panicked): workers take no more batches.
    stopped: bool,
}

/// [`Reading`] behind its lock, with the condition a worker waits on while [`IN_FLIGHT`] batches are out.
struct Shared<I> {
    reading: Mutex<Reading<I>>,
    settled_more: Condvar,
}

impl<I: Iterator<Item = Decoded>> Shared<I> {
    fn new(records: I) -> Self {
        Self {
            reading: Mutex::new(Reading {
                records,
                next: 0,
                settled: 0,
                exhausted: false,
                stopped: false,
            }),
            settled_more: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Reading<I>> {
        self.reading.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next batch, read in order under the lock; `None` once the source is read or the run stopped.
    fn take(&self) -> Option<(u64, Vec<Decoded>)> {
        let mut reading = self.lock();
        while !reading.stopped && reading.next - reading.settled >= IN_FLIGHT {
            reading = self
                .settled_more
                .wait(reading)
                .unwrap_or_else(PoisonError::into_inner);
        }
        Self::next_batch(&mut reading)
    }

    /// The next batch if one may be taken now (without waiting for room); `None` otherwise.
    fn take_if_room(&self) -> Option<(u64, Vec<Decoded>)> {
        let mut reading = self.lock();
        if reading.next - reading.settled >= IN_FLIGHT {
            return None;
        }
        Self::next_batch(&mut reading)
    }

    /// The next batch (numbered), read under the lock `reading` is; `None` once the source is read or the
    /// run stopped.
    fn next_batch(reading: &mut Reading<I>) -> Option<(u64, Vec<Decoded>)> {
        if reading.stopped || reading.exhausted {
            return None;
        }
        let batch: Vec<Decoded> = reading.records.by_ref().take(BATCH).collect();
        if batch.is_empty() {
            reading.exhausted = true;
            return None;
        }
        let number = reading.next;
        reading.next += 1;
        Some((number, batch))
    }

    /// `settled` batches are settled: workers waiting for room may take more.
    fn settled(&self, settled: u64) {
        self.lock().settled = settled;
        self.settled_more.notify_all();
    }

    fn stop(&self) {
        self.lock().stopped = true;
        self.settled_more.notify_all();
    }

    /// Whether every batch taken was settled and the source has no more records.
    fn finished(&self, settled: u64) -> bool {
        let reading = self.lock();
        reading.exhausted && reading.next == settled
    }
}

/// Stops the run when dropped: the settling side leaving (done or failed), or a worker unwinding from a
/// panic, so that no worker waits for room that will never come.
struct StopOnDrop<'s, I: Iterator<Item = Decoded>> {
    shared: &'s Shared<I>,
    /// Stop only when unwinding (a worker's guard), or always (the settling side's).
    only_on_panic: bool,
}

impl<I: Iterator<Item = Decoded>> Drop for StopOnDrop<'_, I> {
    fn drop(&mut self) {
        if !self.only_on_panic || std::thread::panicking() {
            self.shared.stop();
        }
    }
}

/// Map `records` on the plan's threads (workers and this one), settling them in order into `group`, `sink`
/// and `summary`.
pub(super) fn run(
    stage: &Stage<'_>,
    (records, completion): (
        impl Iterator<Item = Decoded> + Send,
        Option<&dyn Completion>,
    ),
    group: &mut Group,
    sink: &mut dyn Sink,
    summary: &mut Summary,
) -> Result<(), PipelineError> {
    let (plan, passthrough) = (&stage.plan, stage.passthrough);
    let shared = Shared::new(records);
    std::thread::scope(|scope| {
        let (done, results) = channel::<Done>();
        // The calling thread maps too, between settling: one worker fewer than the threads asked for.
        for _ in 1..plan.threads {
            let (shared, done) = (&shared, done.clone());
            scope.spawn(move || {
                let _stop = StopOnDrop {
                    shared,
                    only_on_panic: true,
                };
                if let Err(error) = work((plan, completion), passthrough, shared, &done) {
                    tracing::warn!(%error, "a mapping thread could not start; the others map its share");
                }
            });
        }
        drop(done);
        // Dropped on the way out, an error included, before the scope waits for the workers.
        let _stop = StopOnDrop {
            shared: &shared,
            only_on_panic: false,
        };
        let mut order = InOrder {
            stage,
            group,
            sink,
            summary,
            next: 0,
            waiting: BTreeMap::new(),
        };
        with_own_mapper(plan, passthrough, |mapper, quirks| {
            let map = |batch| map_batch(mapper, (plan, completion), quirks, batch);
            order.settle_all(&shared, &results, map)
        })?
    })
}

/// The settling side: batches come back in any order and are settled in theirs.
struct InOrder<'s, 'm> {
    stage: &'s Stage<'m>,
    group: &'s mut Group,
    sink: &'s mut dyn Sink,
    summary: &'s mut Summary,
    /// The number of the next batch to settle.
    next: u64,
    waiting: BTreeMap<u64, Vec<(Decoded, Mapped)>>,
}

impl InOrder<'_, '_> {
    /// Settle every batch the workers map, until they have all finished; while no mapped batch has
    /// arrived and fewer than [`IN_FLIGHT`] are out, take the next batch and `map` it here (so the threads
    /// asked for are the threads busy).
    fn settle_all<I: Iterator<Item = Decoded>>(
        &mut self,
        shared: &Shared<I>,
        results: &Receiver<Done>,
        map: impl Fn(Vec<Decoded>) -> Vec<(Decoded, Mapped)>,
    ) -> Result<(), PipelineError> {
        // The channel closes when the last worker is done: the source read, or every worker gone.
        while let Some((number, mapped)) = next_done(shared, results, &map) {
            self.waiting.insert(number, mapped);
            let before = self.next;
            self.settle_ready()?;
            if self.next != before {
                shared.settled(self.next);
            }
        }
        if shared.finished(self.next) {
            Ok(())
        } else {
            Err(stopped())
        }
    }

    fn settle_ready(&mut self) -> Result<(), PipelineError> {
        while let Some(batch) = self.waiting.remove(&self.next) {
            for (decoded, mapped) in batch {
                self.stage
                    .settle(decoded, Some(mapped), self.group, self.sink, self.summary)?;
            }
            self.next += 1;
        }
        Ok(())
    }
}

/// Settling a mapped record reads only what identifies it (kind, key, group, position): the values it was
/// decoded into and mapped from are dropped here, on the worker that made them, not on the settling thread.
fn forget_values(record: &mut SourceRecord) {
    record.context = serde_json::Value::Null;
    record.related = Vec::new();
}

fn stopped() -> PipelineError {
    PipelineError::Source("the mapping threads stopped before every record was mapped".to_owned())
}

/// The next mapped batch: one a worker sent, else one taken and mapped here, else (no room to take one,
/// or the source read) the next a worker sends; `None` once every worker is done and nothing is left that
/// this thread may take (workers that could not start leave the source to this thread).
fn next_done<I: Iterator<Item = Decoded>>(
    shared: &Shared<I>,
    results: &Receiver<Done>,
    map: &impl Fn(Vec<Decoded>) -> Vec<(Decoded, Mapped)>,
) -> Option<Done> {
    let workers_done = match results.try_recv() {
        Ok(done) => return Some(done),
        Err(TryRecvError::Empty) => false,
        Err(TryRecvError::Disconnected) => true,
    };
    match shared.take_if_room() {
        Some((number, batch)) => Some((number, map(batch))),
        None if workers_done => None,
        None => results.recv().ok(),
    }
}

/// A worker: it takes batches and maps them until the source is read.
fn work<I: Iterator<Item = Decoded>>(
    (plan, completion): (&Plan<'_>, Option<&dyn Completion>),
    passthrough: bool,
    shared: &Shared<I>,
    done: &Sender<Done>,
) -> Result<(), MappingError> {
    with_own_mapper(plan, passthrough, |mapper, quirks| {
        while let Some((number, batch)) = shared.take() {
            if done
                .send((number, map_batch(mapper, (plan, completion), quirks, batch)))
                .is_err()
            {
                return;
            }
        }
    })
}

/// Run `body` with a mapper of this thread's own (its own mapping engines and validator) and the quirk
/// log that records its calls.
fn with_own_mapper<R>(
    plan: &Plan<'_>,
    passthrough: bool,
    body: impl FnOnce(&Mapper<'_>, &QuirkLog) -> R,
) -> Result<R, MappingError> {
    let quirks = QuirkLog::recorder();
    let engine = MappingEngine::new(
        &plan.loaded.file,
        plan.loaded.codes.clone(),
        plan.options,
        &quirks,
    );
    let compiled = super::compile(&engine, plan.loaded)?;
    let roster_engine = plan
        .roster
        .map(|r| MappingEngine::new(&r.file, r.codes.clone(), plan.options, &quirks));
    let roster = match (&roster_engine, plan.roster) {
        (Some(engine), Some(loaded)) => Some(super::compile(engine, loaded)?),
        _ => None,
    };
    let mapper = Mapper::new(&compiled, roster.as_ref(), passthrough, &quirks);
    Ok(body(&mapper, &quirks))
}

/// A batch's records finished and mapped in order by `mapper`, each with the quirk log calls it made.
fn map_batch(
    mapper: &Mapper<'_>,
    (plan, completion): (&Plan<'_>, Option<&dyn Completion>),
    quirks: &QuirkLog,
    batch: Vec<Decoded>,
) -> Vec<(Decoded, Mapped)> {
    (batch.into_iter())
        .map(|read| {
            // Every call finishing it makes, on the source's log too, is recorded for its turn.
            let decoded = QuirkLog::recording_into(quirks, || source::complete(completion, read));
            let completion_events = quirks.take_recorded();
            map_one(mapper, plan, quirks, decoded, completion_events)
        })
        .collect()
}

/// One record mapped on a worker, with the quirk log calls finishing and mapping it made.
fn map_one(
    mapper: &Mapper<'_>,
    plan: &Plan<'_>,
    quirks: &QuirkLog,
    mut decoded: Decoded,
    completion_events: Vec<QuirkEvent>,
) -> (Decoded, Mapped) {
    let processed = match &decoded {
        Ok(record) => mapper.build(record, plan.as_text),
        Err(error) => Err(error.clone()),
    };
    if let Ok(record) = &mut decoded {
        forget_values(record);
    }
    let events = quirks.take_recorded();
    let digest = processed.as_ref().ok().and_then(Built::lead_digest);
    let mapped = Mapped {
        processed,
        completion_events,
        events,
        digest,
    };
    (decoded, mapped)
}
