//! decode → map → validate → emit: the one path every source takes (used by `convert`, `conformance` and,
//! later, ingest). Records stream through one at a time; a record that cannot be decoded, mapped or
//! validated is rejected with its position and reason and never stops the others.

use crate::adapters::niem::IncidentHistory;
use crate::adapters::registry;
use crate::adapters::source::{
    self, OpenSource, Records, Source, SourceError, SourceRequest, Tables,
};
use crate::mapping::{
    self, CompiledMapping, EngineOptions, LoadedMapping, MappingEngine, MappingError,
    reuse::{Product, ReuseMemo},
};
use crate::record::quirks::{QuirkEvent, Skipped};
use crate::record::{self, Decoded, Quirk, QuirkLog, RecordError, SourceRecord};
use crate::validation::Validator;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

mod built;
mod line_outcomes;
mod parallel;

use built::Built;
pub use built::ResourceText;
use line_outcomes::{LineOutcome, LineOutcomes};

pub use crate::adapters::niem::DEFAULT_HISTORY_SALT;
pub use crate::record::OutputFormat;

/// How many rejections a summary keeps in full (all are counted).
const KEPT_REJECTIONS: usize = 1000;

/// What to convert.
#[derive(Debug, Clone)]
pub struct ConvertRequest {
    /// The folder holding `<adapter>/<mapping>.toml`.
    pub mappings_dir: PathBuf,
    /// The mapping's name.
    pub mapping: String,
    /// The export (file or folder).
    pub input: PathBuf,
    /// The roster export, for referral mappings.
    pub roster: Option<PathBuf>,
    /// Time and source-system settings.
    pub engine: EngineOptions,
    /// Keep a per-record outcome list in the summary (corpus runs).
    pub keep_outcomes: bool,
    /// The incident history repeat counts come from (`niem`); `None`: only this run's incidents count.
    pub incident_history: Option<std::sync::Arc<std::sync::Mutex<IncidentHistory>>>,
}

/// Why a conversion could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The mapping is missing or broken.
    #[error(transparent)]
    Mapping(#[from] MappingError),
    /// The input cannot be opened.
    #[error("{0}")]
    Source(String),
    /// Writing the output failed (the message holds the cause, so it is not also given as the error's
    /// source: a chain printed with `{:#}` would say it twice).
    #[error("writing output: {0}")]
    Output(std::io::Error),
}

impl From<std::io::Error> for PipelineError {
    fn from(err: std::io::Error) -> Self {
        Self::Output(err)
    }
}

/// Columns of one source table, read or not by the mapping.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TableCoverage {
    /// The file.
    pub file: String,
    /// Columns the mapping or the adapter reads.
    pub read: Vec<String>,
    /// Columns present in the export that nothing reads.
    pub unread: Vec<String>,
}

/// The outcome of a conversion.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// The mapping used.
    pub mapping: String,
    /// Its adapter.
    pub adapter: String,
    /// Records read (including unreadable rows).
    pub records_in: u64,
    /// Records that produced resources.
    pub records_converted: u64,
    /// Records the mapping builds nothing from (for example staff in a roster).
    pub records_without_output: u64,
    /// Records rejected.
    pub records_rejected: u64,
    /// Source rows read and deliberately not converted (deletions, users who are not students...).
    pub records_skipped: u64,
    /// Resources written.
    pub resources_out: u64,
    /// Lines written (resources, or Bundles).
    pub lines_out: u64,
    /// The first rejections, with position and reason.
    pub rejected: Vec<RecordError>,
    /// The skipped rows with their reason (the first 10,000; all are counted).
    pub skipped: Vec<Skipped>,
    /// Per source file: rows read = converted + nothing to map + rejected + skipped (+ joined, for tables
    /// whose rows are read by other records).
    pub files: Vec<FileTally>,
    /// What was tolerated.
    pub quirks: Vec<Quirk>,
    /// Which source columns are read.
    pub coverage: Vec<TableCoverage>,
    /// Per-record outcomes, when asked for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub outcomes: Vec<RecordOutcome>,
    #[serde(skip)]
    keep_outcomes: bool,
    #[serde(skip)]
    /// Per file (its name in lower case), what became of each line.
    lines: BTreeMap<String, LineOutcomes>,
}

/// How the rows of one source file were accounted for.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct FileTally {
    /// The file.
    pub file: String,
    /// Data rows read (every row the CSV reader returned, readable or not).
    pub rows: u64,
    /// Rows that produced resources.
    pub converted: u64,
    /// Rows the mapping builds nothing from.
    pub without_output: u64,
    /// Rows rejected (with file, line and reason in `rejected`).
    pub rejected: u64,
    /// Rows skipped on purpose (listed with their reason in `skipped`).
    pub skipped: u64,
    /// Rows of a table whose rows are not records themselves but read by others (roles, demographics).
    pub joined: u64,
    /// Rows of a record table that are none of the above: always 0 unless something was lost.
    pub unaccounted: u64,
}

/// What happened to one record (kept for corpus runs).
#[derive(Debug, Clone, Serialize)]
pub struct RecordOutcome {
    /// Where the record is.
    pub position: String,
    /// `converted`, `nothing to map` or `rejected`.
    pub outcome: &'static str,
    /// Resources built, or the rejection reason.
    pub detail: String,
}

impl Summary {
    /// What became of the record at `position` (its line, or its element in a JSON array).
    fn tally(&mut self, position: &record::Position, outcome: LineOutcome) {
        let file = &position.file;
        let Some(line) = position.unit() else {
            return;
        };
        // Most names are lower case already: no new key for every line.
        let lines = if file.bytes().any(|b| b.is_ascii_uppercase()) {
            self.lines.entry(file.to_ascii_lowercase()).or_default()
        } else {
            match self.lines.get_mut(file.as_str()) {
                Some(lines) => lines,
                None => self.lines.entry(file.clone()).or_default(),
            }
        };
        lines.record(line, outcome);
    }

    /// Reconcile, per file, the rows read with what became of them.
    fn reconcile(&mut self, quirks: &QuirkLog, is_record_table: impl Fn(&str) -> bool) {
        let ledger = quirks.ledger();
        for problem in ledger.joined_problems {
            self.reject(problem);
        }
        let (skipped_lines, rows_read) = (ledger.skipped_lines, ledger.rows_read);
        // A row skipped by one pass and converted or rejected by another (a guardian's users.csv row is not
        // a student, and becomes a RelatedPerson) counts as what became of it, not as skipped.
        let decided = |file: &str, line: u64| {
            self.lines
                .get(&file.to_ascii_lowercase())
                .is_some_and(|d| d.contains(line))
        };
        self.records_skipped = skipped_lines
            .iter()
            .map(|(file, lines)| lines.iter().filter(|l| !decided(file, **l)).count() as u64)
            .sum();
        self.skipped = ledger
            .skipped
            .into_iter()
            .filter(|s| !decided(&s.file, s.unit))
            .collect();
        let mut files: BTreeMap<String, FileTally> = BTreeMap::new();
        for (file, rows) in &rows_read {
            let tally = files.entry(file.to_ascii_lowercase()).or_default();
            tally.file = file.clone();
            tally.rows = *rows;
        }
        for (file, lines) in &self.lines {
            let tally = files.entry(file.clone()).or_insert_with(|| FileTally {
                file: file.clone(),
                ..FileTally::default()
            });
            let (without_output, converted, rejected) = lines.counts();
            tally.without_output += without_output;
            tally.converted += converted;
            tally.rejected += rejected;
        }
        for (file, lines) in &skipped_lines {
            let key = file.to_ascii_lowercase();
            let decided = self.lines.get(&key);
            let tally = files.entry(key.clone()).or_insert_with(|| FileTally {
                file: file.clone(),
                ..FileTally::default()
            });
            tally.skipped += lines
                .iter()
                .filter(|l| decided.is_none_or(|d| !d.contains(**l)))
                .count() as u64;
        }
        for (key, tally) in files.iter_mut() {
            let accounted = tally.converted + tally.without_output + tally.rejected + tally.skipped;
            let rest = tally.rows.saturating_sub(accounted);
            if is_record_table(key) {
                tally.unaccounted = rest;
            } else {
                tally.joined = rest;
            }
        }
        self.files = files
            .into_values()
            .filter(|t| t.rows > 0 || t.converted + t.rejected + t.skipped > 0)
            .collect();
    }

    fn reject(&mut self, error: RecordError) {
        self.tally(&error.position, LineOutcome::Rejected);
        self.records_rejected += 1;
        if self.keep_outcomes {
            self.outcomes.push(RecordOutcome {
                position: error.position.to_string(),
                outcome: "rejected",
                detail: error.message.clone(),
            });
        }
        tracing::debug!(file = %error.position.file, line = ?error.position.line, "record rejected");
        if self.rejected.len() < KEPT_REJECTIONS {
            self.rejected.push(error);
        }
    }

    fn outcome(&mut self, record: &SourceRecord, outcome: &'static str, detail: String) {
        if self.keep_outcomes {
            self.outcomes.push(RecordOutcome {
                position: record.position.to_string(),
                outcome,
                detail,
            });
        }
    }
}

/// Where converted resources go: each group (a referral, a student with their guardians) at once.
pub trait Sink {
    /// Take one group's resources, each validated by the pipeline (a record with an invalid one is
    /// rejected, never handed over) (`passthrough`: FHIR input, written as it came).
    fn accept(&mut self, resources: Vec<Value>, passthrough: bool) -> std::io::Result<()>;
    /// Whether the sink writes JSON text: then each record's resources are serialized where they were
    /// mapped (on the thread that mapped them) and handed over with [`Sink::accept_text`].
    fn takes_text(&self) -> bool {
        false
    }
    /// Take one group's resources as JSON text (parsed back into values by default).
    fn accept_text(
        &mut self,
        resources: Vec<ResourceText>,
        passthrough: bool,
    ) -> std::io::Result<()> {
        let values = resources
            .iter()
            .map(ResourceText::value)
            .collect::<serde_json::Result<Vec<Value>>>()?;
        self.accept(values, passthrough)
    }
    /// Lines and resources written so far.
    fn written(&self) -> (u64, u64);
    /// Flush what is buffered.
    fn finish(&mut self) -> std::io::Result<()>;
}

/// Writes NDJSON: one resource per line (each once), or one transaction Bundle per group.
pub struct NdjsonSink<W: Write> {
    out: W,
    format: OutputFormat,
    /// 128-bit hashes of the `Type/id` written (never the ids), past a number on disk.
    seen: record::id_table::IdTable,
    lines: u64,
    resources: u64,
}

impl<W: Write> NdjsonSink<W> {
    /// Write to `out` in `format`.
    pub fn new(out: W, format: OutputFormat) -> Self {
        Self {
            out,
            format,
            seen: record::id_table::IdTable::default(),
            lines: 0,
            resources: 0,
        }
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write> Sink for NdjsonSink<W> {
    fn written(&self) -> (u64, u64) {
        (self.lines, self.resources)
    }

    fn finish(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    fn accept(&mut self, resources: Vec<Value>, passthrough: bool) -> std::io::Result<()> {
        let texts = resources.iter().map(ResourceText::of).collect();
        self.accept_text(texts, passthrough)
    }

    fn takes_text(&self) -> bool {
        true
    }

    fn accept_text(
        &mut self,
        resources: Vec<ResourceText>,
        passthrough: bool,
    ) -> std::io::Result<()> {
        if self.format == OutputFormat::Bundle && !passthrough {
            self.resources += resources.len() as u64;
            built::write_transaction(&mut self.out, &resources)?;
            self.out.write_all(b"\n")?;
            self.lines += 1;
            return Ok(());
        }
        for resource in resources {
            let key = resource.key();
            if let Some(key) = key
                && self.seen.insert(&key, [0; 3])?.is_some()
            {
                continue;
            }
            self.resources += 1;
            self.out.write_all(resource.json())?;
            self.out.write_all(b"\n")?;
            self.lines += 1;
        }
        Ok(())
    }
}

fn resource_key(resource: &Value) -> Option<String> {
    let kind = resource.get("resourceType")?.as_str()?;
    let id = resource.get("id")?.as_str()?;
    Some(format!("{kind}/{id}"))
}

/// Convert an export with a mapping, writing to `sink`.
pub fn convert(request: &ConvertRequest, sink: &mut dyn Sink) -> Result<Summary, PipelineError> {
    let loaded = mapping::catalog::find(&request.mappings_dir, &request.mapping)?;
    let roster_loaded = match &loaded.file.mapping.roster_mapping {
        Some(name) => Some(mapping::catalog::find(
            &request.mappings_dir,
            name.get_ref(),
        )?),
        None => None,
    };
    let quirks = QuirkLog::default();
    let adapter = loaded.file.mapping.adapter.get_ref().clone();
    let source = find_source(&adapter)?;
    if parallel::threads() > 1 {
        prepare_validation(&loaded, roster_loaded.as_ref());
    }
    let opened = source
        .open(SourceRequest {
            input: &request.input,
            roster: request.roster.as_deref(),
            encoding: loaded.file.source.encoding,
            repeat_window_days: loaded.file.source.repeat_window_days,
            incident_history: request.incident_history.as_ref(),
            quirks: &quirks,
        })
        .map_err(source_error)?;
    let mut options = request.engine.clone();
    if let Some(system) = opened
        .source_system(
            &loaded.file.mapping.source_system,
            request.engine.source_system.as_deref(),
        )
        .map_err(source_error)?
    {
        options.source_system = Some(system);
    }
    let engine = MappingEngine::new(&loaded.file, loaded.codes.clone(), &options, &quirks);
    let compiled = compile(&engine, &loaded)?;
    let roster_engine = roster_loaded
        .as_ref()
        .map(|r| MappingEngine::new(&r.file, r.codes.clone(), &options, &quirks));
    let roster_compiled = match (&roster_engine, &roster_loaded) {
        (Some(e), Some(l)) => Some(compile(e, l)?),
        _ => None,
    };
    let passthrough = loaded.file.mapping.passthrough;
    let stage = Stage {
        mapper: Mapper::new(&compiled, roster_compiled.as_ref(), passthrough, &quirks),
        passthrough,
        quirks: quirks.clone(),
        built: Default::default(),
        plan: Plan {
            loaded: &loaded,
            roster: roster_loaded.as_ref(),
            options: &options,
            threads: parallel::threads(),
            as_text: sink.takes_text(),
        },
    };
    let mut summary = Summary {
        mapping: loaded.name().to_owned(),
        adapter: adapter.clone(),
        keep_outcomes: request.keep_outcomes,
        ..Summary::default()
    };
    let tables = read_source(opened, &stage, sink, &mut summary)?;
    let roster_fields =
        roster_loaded
            .as_ref()
            .zip(roster_compiled.as_ref())
            .map(|(loaded, compiled)| {
                (
                    loaded.file.mapping.adapter.get_ref(),
                    compiled.fields_read(),
                )
            });
    summary.coverage = coverage(
        source,
        tables,
        &compiled.fields_read(),
        roster_fields
            .as_ref()
            .map(|(adapter, fields)| (adapter.as_str(), fields)),
    );
    summary.reconcile(&quirks, |file| source.is_record_table(file));
    summary.quirks = quirks.snapshot();
    // Finished first: a sink that stores in batches (an ingest job) writes its last batch here.
    sink.finish()?;
    (summary.lines_out, summary.resources_out) = sink.written();
    tracing::info!(
        mapping = %summary.mapping,
        records_in = summary.records_in,
        converted = summary.records_converted,
        rejected = summary.records_rejected,
        resources_out = summary.resources_out,
        "conversion finished"
    );
    Ok(summary)
}

fn compile<'e>(
    engine: &'e MappingEngine,
    loaded: &'e LoadedMapping,
) -> Result<CompiledMapping<'e>, MappingError> {
    engine
        .compile(&loaded.file, &loaded.text, &loaded.display_path())
        .map_err(MappingError::Problems)
}

/// The source mapping files call `adapter`, from the registry.
fn find_source(adapter: &str) -> Result<&'static dyn Source, PipelineError> {
    registry::find(adapter).ok_or_else(|| {
        PipelineError::Source(format!(
            "unknown adapter '{adapter}' (expected one of: {})",
            registry::names()
        ))
    })
}

fn source_error(err: SourceError) -> PipelineError {
    PipelineError::Source(err.to_string())
}

/// Stream the opened source's records through the stage; returns the tables it read.
fn read_source(
    opened: Box<dyn OpenSource + '_>,
    stage: &Stage<'_>,
    sink: &mut dyn Sink,
    summary: &mut Summary,
) -> Result<Tables, PipelineError> {
    let mut failure = None;
    let read = opened.read(&mut |records| {
        stage.run(records, sink, summary).map_err(|err| {
            failure = Some(err);
            SourceError::Stopped
        })
    });
    match (read, failure) {
        (_, Some(err)) => Err(err),
        (result, None) => result.map_err(source_error),
    }
}

/// The records of a run, in order: grouping, the id collision check, the summary and the output, with the
/// mapping and validation of each record done here or, for a long run, on several threads (`parallel`).
struct Stage<'m> {
    mapper: Mapper<'m>,
    passthrough: bool,
    quirks: QuirkLog,
    /// The id of each record's lead resource, with a digest of its content and where it was built.
    built: std::cell::RefCell<BuiltIds>,
    /// How the mapping threads build their own mapping, and how many there are.
    plan: Plan<'m>,
}

/// The mapping and validation applied to each record (one per thread).
struct Mapper<'m> {
    compiled: &'m CompiledMapping<'m>,
    roster: Option<&'m CompiledMapping<'m>>,
    passthrough: bool,
    validator: Validator,
    /// Resources this thread already found valid (the same school on every referral).
    memo: std::cell::RefCell<crate::validation::ValidMemo>,
    /// Resources this thread built, kept to be taken again by records that read the same values.
    reuse: std::cell::RefCell<Reuse>,
    /// Where mapping problems of joined rows are reported.
    quirks: QuirkLog,
}

/// What a mapping thread builds its own mapping engines from (each thread has its own: the date filters note
/// their quirks at the position of the record being mapped).
struct Plan<'m> {
    loaded: &'m LoadedMapping,
    roster: Option<&'m LoadedMapping>,
    options: &'m EngineOptions,
    /// Threads, the calling thread among them (1: every record is read and mapped on the calling thread;
    /// N: N - 1 workers beside it).
    threads: usize,
    /// Whether the sink takes resources as JSON text (serialized where they are mapped).
    as_text: bool,
}

/// A record mapped by a mapping thread of `parallel`: the resources (or why not) and the quirk log calls
/// made meanwhile.
struct Mapped {
    processed: Result<Built, RecordError>,
    /// The quirk log calls finishing the record made ([`source::Completion`]): applied whatever becomes of
    /// it, as the reading's are.
    completion_events: Vec<QuirkEvent>,
    /// The quirk log calls mapping it made.
    events: Vec<QuirkEvent>,
    /// [`Built::lead_digest`], for the collision check.
    digest: Option<u64>,
}

/// Compile the validation of the resource types the mappings build on a thread of its own, while the
/// calling thread opens the source (a roster's index): otherwise the first record compiles it (about 20 ms
/// of a 20,000-row run on one core with the other idle). The compiled parts are shared (the first to ask
/// compiles; anyone else asking meanwhile waits for it), so nothing is compiled twice.
fn prepare_validation(
    loaded: &mapping::catalog::LoadedMapping,
    roster: Option<&mapping::catalog::LoadedMapping>,
) {
    let resource_types: Vec<String> = std::iter::once(loaded)
        .chain(roster)
        .flat_map(|mapping| &mapping.file.resources)
        .map(|resource| resource.resource_type.get_ref().clone())
        .collect();
    let preparing = std::thread::Builder::new().name("onedoor-prepare".to_owned());
    // Without the thread, the first record compiles it as before.
    let _ = preparing.spawn(move || crate::validation::prepare(&resource_types));
}

/// Records read and mapped on the calling thread before the worker threads are started (a short run never
/// starts them).
const SEQUENTIAL_FIRST: usize = 64;

impl Stage<'_> {
    fn run(
        &self,
        records: Records<'_>,
        sink: &mut dyn Sink,
        summary: &mut Summary,
    ) -> Result<(), PipelineError> {
        let mut group = Group::new(String::new(), self.plan.as_text);
        let completion = records.completion;
        let mut read = records.read.peekable();
        let first = if self.plan.threads > 1 {
            SEQUENTIAL_FIRST
        } else {
            usize::MAX
        };
        for decoded in read.by_ref().take(first) {
            let decoded = source::complete(completion, decoded);
            self.settle(decoded, None, &mut group, sink, summary)?;
        }
        if self.plan.threads > 1 && read.peek().is_some() {
            parallel::run(self, (read, completion), &mut group, sink, summary)?;
        }
        group.flush(sink, self.passthrough)?;
        Ok(())
    }

    /// One record, in order: mapped here, or `mapped` already by a mapping thread of `parallel`, with the
    /// quirk log calls finishing and mapping it made, applied now (those of mapping it dropped with the
    /// mapping when the record follows a rejected lead record).
    fn settle(
        &self,
        decoded: Decoded,
        mut mapped: Option<Mapped>,
        group: &mut Group,
        sink: &mut dyn Sink,
        summary: &mut Summary,
    ) -> Result<(), PipelineError> {
        summary.records_in += 1;
        if let Some(mapped) = &mut mapped {
            self.quirks
                .replay(std::mem::take(&mut mapped.completion_events));
        }
        let record = match decoded {
            Ok(record) => record,
            Err(error) => {
                summary.reject(error);
                return Ok(());
            }
        };
        if record.group != group.id {
            group.flush(sink, self.passthrough)?;
            *group = Group::new(record.group.clone(), self.plan.as_text);
        }
        if self.follows_rejected(&record, group, summary) {
            return Ok(());
        }
        let (processed, digest) = match mapped {
            Some(Mapped {
                processed,
                events,
                digest,
                ..
            }) => {
                self.quirks.replay(events);
                (processed, digest)
            }
            None => (self.mapper.build(&record, self.plan.as_text), None),
        };
        self.add(&record, processed, digest, group, summary)?;
        Ok(())
    }

    /// Whether the record goes with a lead record that was rejected (then it is rejected too, unmapped).
    fn follows_rejected(
        &self,
        record: &SourceRecord,
        group: &Group,
        summary: &mut Summary,
    ) -> bool {
        let Some(failed) = &group.failed_lead else {
            return false;
        };
        summary.reject(RecordError::new(
            record.position.clone(),
            format!("not converted: it belongs with {failed}, which was rejected"),
        ));
        true
    }

    fn add(
        &self,
        record: &SourceRecord,
        processed: Result<Built, RecordError>,
        digest: Option<u64>,
        group: &mut Group,
        summary: &mut Summary,
    ) -> std::io::Result<()> {
        let processed = match processed {
            Ok(resources) => self
                .check_collision(record, &resources, digest)?
                .map(|()| resources),
            Err(error) => Err(error),
        };
        match processed {
            Ok(resources) if resources.is_empty() => {
                summary.tally(&record.position, LineOutcome::WithoutOutput);
                summary.records_without_output += 1;
                summary.outcome(record, "nothing to map", String::new());
            }
            Ok(resources) => {
                summary.tally(&record.position, LineOutcome::Converted);
                summary.records_converted += 1;
                summary.outcome(record, "converted", resources.kinds().join(", "));
                group.resources.extend(resources)?;
            }
            Err(error) => {
                if group.resources.is_empty() && !group.had_output {
                    group.failed_lead =
                        Some(format!("the {} record at {}", record.kind, record.position));
                }
                summary.reject(error);
            }
        }
        group.had_output |= !group.resources.is_empty();
        Ok(())
    }

    /// The resource a record stands for (the first it builds) must not take the id of another record's
    /// resource with different content: two source rows that derive the same id are a collision, rejected
    /// at the later row naming the first, never one silently dropped or overwriting the other.
    fn check_collision(
        &self,
        record: &SourceRecord,
        resources: &Built,
        digest: Option<u64>,
    ) -> std::io::Result<Result<(), RecordError>> {
        let Some(key) = resources.lead_key().filter(|_| !self.passthrough) else {
            return Ok(Ok(()));
        };
        let Some(digest) = digest.or_else(|| resources.lead_digest()) else {
            return Ok(Ok(()));
        };
        let mut built = self.built.borrow_mut();
        Ok(match built.check(&key, digest, &record.position)? {
            Check::Collides(at) => Err(RecordError::new(
                record.position.clone(),
                format!(
                    "{key} was already built from {at} with other content: two source records derive the same id (expected each source key once)"
                ),
            )),
            Check::Seen => Ok(()),
            Check::New { untracked } => {
                if untracked {
                    self.quirks.note(
                        format!("id collisions were checked for the first {MAX_TRACKED_IDS} records only (the rest are not compared)"),
                        None,
                    );
                }
                Ok(())
            }
        })
    }
}

impl<'m> Mapper<'m> {
    /// A thread's mapper: its own validator and memos.
    fn new(
        compiled: &'m CompiledMapping<'m>,
        roster: Option<&'m CompiledMapping<'m>>,
        passthrough: bool,
        quirks: &QuirkLog,
    ) -> Self {
        Self {
            compiled,
            roster,
            passthrough,
            validator: Validator::new(),
            memo: Default::default(),
            reuse: std::cell::RefCell::new(Reuse::new()),
            quirks: quirks.clone(),
        }
    }

    /// The record's resources, each validated, in the form the sink takes: serialized once when `as_text`
    /// (and then asked of the memo by that text).
    fn build(&self, record: &SourceRecord, as_text: bool) -> Result<Built, RecordError> {
        if as_text {
            return self.build_text(record).map(Built::Text);
        }
        let resources = self.map(record, |mapping, record, _| mapping.map(record), |v| v)?;
        for resource in &resources {
            let issues = self.memo.borrow_mut().validate(&self.validator, resource);
            verdict(issues, resource, record)?;
        }
        Ok(Built::Values(resources))
    }

    /// The record's resources as JSON text, each validated; a resource an earlier record built from the
    /// same values is taken from it ([`crate::mapping::reuse`]), and one built is kept for the next once
    /// found valid.
    fn build_text(&self, record: &SourceRecord) -> Result<Vec<ResourceText>, RecordError> {
        let mut reuse = self.reuse.borrow_mut();
        let products = self.map(
            record,
            |mapping, record, role| {
                let products = mapping.map_reusing(record, reuse.of(role))?;
                Ok(products
                    .into_iter()
                    .map(|product| (role, product))
                    .collect())
            },
            |resource| (MappingRole::Main, Product::Built(resource, None)),
        )?;
        products
            .into_iter()
            .map(|(role, product)| match product {
                Product::Again(text) => Ok(text),
                Product::Built(resource, key) => {
                    let text = ResourceText::of(&resource);
                    let issues = self.memo.borrow_mut().validate_serialized(
                        &self.validator,
                        &resource,
                        text.json(),
                    );
                    verdict(issues, &resource, record)?;
                    if let Some(key) = key {
                        reuse.of(role).keep(key, text.footprint(), || text.clone());
                    }
                    Ok(text)
                }
            })
            .collect()
    }

    /// The resources the record and the records it carries map to (each mapped by `each`), not yet
    /// validated; a passthrough record's resource made one by `passed`.
    fn map<P>(
        &self,
        record: &SourceRecord,
        mut each: impl FnMut(
            &CompiledMapping<'_>,
            &SourceRecord,
            MappingRole,
        ) -> Result<Vec<P>, RecordError>,
        passed: impl FnOnce(Value) -> P,
    ) -> Result<Vec<P>, RecordError> {
        let mut resources = if self.passthrough {
            vec![passed(
                record.context.get("resource").cloned().unwrap_or_default(),
            )]
        } else {
            each(self.compiled, record, MappingRole::Main)?
        };
        // Related records (the student of a referral, the client of an HMIS event) travel with a record that
        // builds something; a record that builds nothing brings nothing with it.
        // A problem in a guardian link is a problem of the guardian's row: rejected at that row's line and
        // the link left out; it never rejects the record it travels with.
        if let Some(roster) = self.roster.filter(|_| !resources.is_empty()) {
            for related in &record.related {
                match each(roster, related, MappingRole::Roster) {
                    Ok(mapped) => resources.extend(mapped),
                    Err(err) if related.kind == "guardian_link" => {
                        self.quirks.reject_joined(RecordError::new(
                            err.position,
                            format!(
                                "{} (a guardian link that cannot be mapped is left out of the {} at {}, which converts without it)",
                                err.message, record.kind, record.position
                            ),
                        ))
                    }
                    Err(err) => {
                        return Err(RecordError::new(
                            record.position.clone(),
                            format!(
                                "the {} record it needs ({}) cannot be mapped: {}",
                                related.kind, err.position, err.message
                            ),
                        ));
                    }
                }
            }
        }
        Ok(resources)
    }
}

/// Which of a run's mappings built a resource: the source's own, or the roster's (the related records).
#[derive(Debug, Clone, Copy)]
enum MappingRole {
    Main,
    Roster,
}

/// The resources kept for reuse by one thread, one memo per mapping (their resource numbers differ).
struct Reuse {
    main: ReuseMemo<ResourceText>,
    roster: ReuseMemo<ResourceText>,
}

impl Reuse {
    /// Empty memos, reusing unless the run's environment says not to.
    fn new() -> Self {
        let enabled = mapping::reuse::enabled_by_environment();
        Self {
            main: ReuseMemo::new(enabled),
            roster: ReuseMemo::new(enabled),
        }
    }

    fn of(&mut self, role: MappingRole) -> &mut ReuseMemo<ResourceText> {
        match role {
            MappingRole::Main => &mut self.main,
            MappingRole::Roster => &mut self.roster,
        }
    }
}

/// The record's rejection when its resource has `issues` (the first five listed).
fn verdict(
    issues: Vec<crate::validation::Issue>,
    resource: &Value,
    record: &SourceRecord,
) -> Result<(), RecordError> {
    if issues.is_empty() {
        return Ok(());
    }
    let label = resource_key(resource)
        .or_else(|| {
            resource
                .get("resourceType")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let listed: Vec<String> = issues.iter().take(5).map(ToString::to_string).collect();
    let more = if issues.len() > 5 {
        format!(" (and {} more)", issues.len() - 5)
    } else {
        String::new()
    };
    Err(RecordError::new(
        record.position.clone(),
        format!("{label} is not valid FHIR R4: {}{more}", listed.join("; ")),
    ))
}

/// How many lead-resource ids the collision check remembers (40 bytes each, past
/// [`record::id_table::IN_MEMORY_IDS`] in a temporary file: at most ~230 MB of disk).
const MAX_TRACKED_IDS: usize = 4_000_000;

/// The ids of the resources built so far, for the collision check: never the ids or the content, only a
/// 128-bit hash of the id, a 64-bit digest of the content and where it was built (an index into the few
/// file names, and the line), the first [`record::id_table::IN_MEMORY_IDS`] in memory and the rest on disk
/// ([`record::id_table`]). At most [`MAX_TRACKED_IDS`] ids are remembered; past that, new ids are not
/// compared (noted once as a quirk).
#[derive(Default)]
struct BuiltIds {
    ids: record::id_table::IdTable,
    files: Vec<String>,
    full: bool,
}

/// What the collision check found.
enum Check {
    /// The id was built before with other content, at this position.
    Collides(String),
    /// The id was built before with the same content.
    Seen,
    /// A new id (`untracked`: the first not remembered, the map being full).
    New { untracked: bool },
}

impl BuiltIds {
    fn check(&mut self, key: &str, digest: u64, at: &record::Position) -> std::io::Result<Check> {
        if self.ids.len() >= MAX_TRACKED_IDS {
            if let Some(first) = self.ids.get(key)? {
                return Ok(self.compare(first, digest));
            }
            let untracked = !self.full;
            self.full = true;
            return Ok(Check::New { untracked });
        }
        let file = match self.files.iter().position(|f| *f == at.file) {
            Some(index) => index,
            None => {
                self.files.push(at.file.clone());
                self.files.len() - 1
            }
        };
        let here = [digest, file as u64, at.unit().unwrap_or_default()];
        Ok(match self.ids.insert(key, here)? {
            Some(first) => self.compare(first, digest),
            None => Check::New { untracked: false },
        })
    }

    /// The id was built before as `first` (digest, file, unit): the same content, or a collision.
    fn compare(&self, [first, file, unit]: record::id_table::Values, digest: u64) -> Check {
        if first == digest {
            return Check::Seen;
        }
        let file = usize::try_from(file)
            .ok()
            .and_then(|index| self.files.get(index))
            .cloned()
            .unwrap_or_default();
        Check::Collides(describe_unit(&file, unit))
    }
}

/// Where a record was, from its file and reconciliation unit (a line, or an element of a JSON array).
fn describe_unit(file: &str, unit: u64) -> String {
    use crate::record::ELEMENT_UNIT;
    match unit {
        0 => file.to_owned(),
        u if u & ELEMENT_UNIT != 0 => format!("{file} element {}", u & !ELEMENT_UNIT),
        line => format!("{file} line {line}"),
    }
}

struct Group {
    id: String,
    resources: Built,
    had_output: bool,
    failed_lead: Option<String>,
}

impl Group {
    /// The group `id`, empty, gathering resources in the form the sink takes (`as_text`).
    fn new(id: String, as_text: bool) -> Self {
        Self {
            id,
            resources: Built::empty(as_text),
            had_output: false,
            failed_lead: None,
        }
    }

    fn flush(&mut self, sink: &mut dyn Sink, passthrough: bool) -> std::io::Result<()> {
        if self.resources.is_empty() {
            return Ok(());
        }
        let as_text = matches!(self.resources, Built::Text(_));
        std::mem::replace(&mut self.resources, Built::empty(as_text)).send(sink, passthrough)
    }
}

fn coverage(
    source: &dyn Source,
    tables: Tables,
    fields: &BTreeSet<String>,
    roster_fields: Option<(&str, &BTreeSet<String>)>,
) -> Vec<TableCoverage> {
    let mut read: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut mark = |context: &[record::ContextTable], field: &str| {
        let mut parts = field.split('.');
        let (Some(variable), Some(column)) = (parts.next(), parts.next()) else {
            return;
        };
        if let Some(table) = context.iter().find(|c| c.variable == variable) {
            read.entry(table.table)
                .or_default()
                .insert(column.to_owned());
        }
    };
    fields
        .iter()
        .for_each(|f| mark(source.description().context, f));
    if let Some((adapter, roster_fields)) = roster_fields {
        let context = registry::find(adapter).map_or(&[][..], |s| s.description().context);
        roster_fields.iter().for_each(|f| mark(context, f));
    }
    let by_adapter = registry::SOURCES.iter().flat_map(|s| s.read_by_adapter());
    for (table, column) in by_adapter {
        read.entry(table).or_default().insert((*column).to_owned());
    }
    tables
        .into_iter()
        .map(|(file, columns)| {
            let key = file.to_ascii_lowercase();
            let used = read
                .iter()
                .find(|(t, _)| t.eq_ignore_ascii_case(&key))
                .map(|(_, c)| c.clone())
                .unwrap_or_default();
            let (read_cols, unread): (Vec<String>, Vec<String>) =
                columns.into_iter().partition(|c| used.contains(c));
            TableCoverage {
                file,
                read: read_cols,
                unread,
            }
        })
        .collect()
}

/// Convenience for callers holding paths.
pub fn request(
    mappings_dir: &Path,
    mapping: &str,
    input: &Path,
    roster: Option<&Path>,
    engine: EngineOptions,
) -> ConvertRequest {
    ConvertRequest {
        mappings_dir: mappings_dir.to_owned(),
        mapping: mapping.to_owned(),
        input: input.to_owned(),
        roster: roster.map(Path::to_owned),
        engine,
        keep_outcomes: false,
        incident_history: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_collision_check_keeps_hashes_only_and_names_the_first_row() {
        let mut built = BuiltIds::default();
        let at = |line| record::Position::line("users.csv", line);
        assert!(matches!(
            built.check("Patient/a", 1, &at(2)).unwrap(),
            Check::New { untracked: false }
        ));
        assert!(matches!(
            built.check("Patient/a", 1, &at(3)).unwrap(),
            Check::Seen
        ));
        match built.check("Patient/a", 2, &at(4)).unwrap() {
            Check::Collides(first) => assert_eq!(first, "users.csv line 2"),
            _ => panic!("a collision"),
        }
        assert_eq!(built.files, vec!["users.csv".to_owned()]);
        let element = record::Position::file("students.json").with_field("[3].studentUniqueId");
        built.check("Patient/b", 1, &element).unwrap();
        match built.check("Patient/b", 2, &at(5)).unwrap() {
            Check::Collides(first) => assert_eq!(first, "students.json element 3"),
            _ => panic!("a collision"),
        }
    }

    /// Past the ids kept in memory, a collision is found (and named) as before.
    #[test]
    fn a_collision_past_the_ids_kept_in_memory_names_the_first_row() {
        let mut built = BuiltIds::default();
        let at = |line| record::Position::line("referrals.csv", line);
        let rows = record::id_table::IN_MEMORY_IDS as u64 + 5_000;
        for line in 2..rows {
            let check = built.check(&format!("ServiceRequest/{line}"), line, &at(line));
            assert!(matches!(check.unwrap(), Check::New { untracked: false }));
        }
        assert_eq!(built.ids.len() as u64, rows - 2);
        let late = rows - 10;
        match built
            .check(&format!("ServiceRequest/{late}"), 1, &at(rows))
            .unwrap()
        {
            Check::Collides(first) => assert_eq!(first, format!("referrals.csv line {late}")),
            _ => panic!("a collision"),
        }
        let same = built.check(&format!("ServiceRequest/{late}"), late, &at(rows + 1));
        assert!(matches!(same.unwrap(), Check::Seen));
    }
}
