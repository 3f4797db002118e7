//! Mapping and validating the records of a long run on worker threads, with the same output, summary and
//! quirk log as on one thread.
//!
//! The reading thread keeps everything that depends on order: it reads the records, hands them out in
//! numbered batches, and settles the mapped batches strictly in their order (grouping, the id collision
//! check, the summary, the output). Each worker compiles its own copy of the mapping, with its own date
//! filters' position and a quirk log that records its calls; the calls of each record are applied to the
//! run's log when the record is settled, and dropped with the record's mapping when it follows a rejected
//! lead record (which one thread would not have mapped at all). At most [`IN_FLIGHT`] batches are out at
//! once, so memory stays bounded whatever the size of the export.

use super::{Built, Group, Mapped, Mapper, PipelineError, Plan, Sink, Stage, Summary};
use crate::mapping::{MappingEngine, MappingError};
use crate::record::{Decoded, QuirkLog, SourceRecord};
use crate::validation::Validator;
use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

/// Records per batch handed to a worker.
const BATCH: usize = 32;

/// Batches handed out and not yet settled, at most.
const IN_FLIGHT: u64 = 16;

/// A numbered batch of records.
type Job = (u64, Vec<Decoded>);

/// A numbered batch of records with what mapping each gave.
type Done = (u64, Vec<(Decoded, Mapped)>);

/// Worker threads for a run: `ONEDOOR_THREADS` when set, else the cores this process may run on.
pub(super) fn threads() -> usize {
    std::env::var("ONEDOOR_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
        .clamp(1, 64)
}

/// Map `records` on the plan's worker threads, settling them in order into `group`, `sink` and `summary`.
pub(super) fn run(
    stage: &Stage<'_>,
    records: impl Iterator<Item = Decoded>,
    group: &mut Group,
    sink: &mut dyn Sink,
    summary: &mut Summary,
) -> Result<(), PipelineError> {
    let (plan, passthrough) = (&stage.plan, stage.passthrough);
    std::thread::scope(|scope| {
        let (jobs, queue) = channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let (done, results) = channel::<Done>();
        for _ in 0..plan.threads {
            let (queue, done) = (queue.clone(), done.clone());
            scope.spawn(move || work(plan, passthrough, &queue, &done));
        }
        drop(done);
        let mut order = InOrder {
            stage,
            group,
            sink,
            summary,
            next: 0,
            waiting: BTreeMap::new(),
        };
        // Dropping `jobs` on the way out (an error included) lets the workers finish.
        order.feed(records, jobs, &results)
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
    fn feed(
        &mut self,
        mut records: impl Iterator<Item = Decoded>,
        jobs: Sender<Job>,
        results: &Receiver<Done>,
    ) -> Result<(), PipelineError> {
        let mut sent = 0u64;
        loop {
            let batch: Vec<Decoded> = records.by_ref().take(BATCH).collect();
            if batch.is_empty() {
                break;
            }
            while sent - self.next >= IN_FLIGHT {
                self.receive(results)?;
            }
            jobs.send((sent, batch)).map_err(|_| stopped())?;
            sent += 1;
            while let Ok(done) = results.try_recv() {
                self.settle(done)?;
            }
        }
        drop(jobs);
        while self.next < sent {
            self.receive(results)?;
        }
        Ok(())
    }

    /// Wait for one mapped batch and settle what is ready.
    fn receive(&mut self, results: &Receiver<Done>) -> Result<(), PipelineError> {
        let done = results.recv().map_err(|_| stopped())?;
        self.settle(done)
    }

    fn settle(&mut self, (number, mapped): Done) -> Result<(), PipelineError> {
        self.waiting.insert(number, mapped);
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
/// mapped from are dropped here, on the worker, not on the reading thread that has everything else to do.
fn forget_values(record: &mut SourceRecord) {
    record.context = serde_json::Value::Null;
    record.related = Vec::new();
}

fn stopped() -> PipelineError {
    PipelineError::Source("the mapping threads stopped before every record was mapped".to_owned())
}

/// A worker: its own mapping engines and validator; batches in, mapped batches out, until the queue closes.
fn work(
    plan: &Plan<'_>,
    passthrough: bool,
    queue: &Mutex<Receiver<Job>>,
    done: &Sender<Done>,
) -> Result<(), MappingError> {
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
    let mapper = Mapper {
        compiled: &compiled,
        roster: roster.as_ref(),
        passthrough,
        validator: Validator::new(),
        memo: Default::default(),
        quirks: quirks.clone(),
    };
    loop {
        let job = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
        let Ok((number, batch)) = job else {
            return Ok(());
        };
        let mapped = batch
            .into_iter()
            .map(|mut decoded| {
                let processed = match &decoded {
                    Ok(record) => mapper
                        .process(record)
                        .map(|resources| Built::new(resources, plan.as_text)),
                    Err(error) => Err(error.clone()),
                };
                if let Ok(record) = &mut decoded {
                    forget_values(record);
                }
                let events = quirks.take_recorded();
                let digest = processed.as_ref().ok().and_then(Built::lead_digest);
                let mapped = Mapped {
                    processed,
                    events,
                    digest,
                };
                (decoded, mapped)
            })
            .collect();
        if done.send((number, mapped)).is_err() {
            return Ok(());
        }
    }
}
