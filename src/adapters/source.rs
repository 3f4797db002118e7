//! The [`Source`] trait every adapter implements: what it is ([`SourceDescription`]), how it is opened
//! ([`SourceRequest`]) and how its positioned records reach the next stage ([`OpenSource::read`]), with the
//! quirks it meets noted in the request's [`QuirkLog`]. The pipeline, the CLI, the conformance runner and
//! ingest reach every adapter through this trait and the [`registry`](super::registry).

use super::niem::IncidentHistory;
use crate::record::{Decoded, QuirkLog, SourceDescription, SourceRecord, TextEncoding};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The tables a source read, each with the columns its header holds (for the coverage report).
pub type Tables = Vec<(String, Vec<String>)>;

/// What a source is opened with.
#[derive(Clone, Copy)]
pub struct SourceRequest<'a> {
    /// The export: a file, a folder or a zip.
    pub input: &'a Path,
    /// The roster export the records are joined to (`referral-csv`).
    pub roster: Option<&'a Path>,
    /// How text fields are decoded.
    pub encoding: TextEncoding,
    /// How far back an earlier incident counts as a repeat (`niem`).
    pub repeat_window_days: u32,
    /// The incident history repeat counts come from (`niem`); `None`: only this run's incidents count.
    pub incident_history: Option<&'a Arc<Mutex<IncidentHistory>>>,
    /// Where the quirks met while reading are noted.
    pub quirks: &'a QuirkLog,
}

/// Why a source could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The export cannot be opened or is not what the source reads.
    #[error("{0}")]
    Open(String),
    /// The consumer of the records stopped (it keeps its own reason).
    #[error("the records' consumer stopped")]
    Stopped,
}

impl SourceError {
    /// An export that cannot be opened, with the adapter's message.
    pub fn open(err: impl std::fmt::Display) -> Self {
        Self::Open(err.to_string())
    }
}

/// The consumer a source hands its records to: the rest of the pipeline. It returns
/// [`SourceError::Stopped`] when it cannot go on.
pub type Consumer<'c> = dyn FnMut(Records<'_>) -> Result<(), SourceError> + 'c;

/// The records a source hands on, in its order. A source may leave the part of decoding that reads other
/// tables (the roster rows a referral joins) to a [`Completion`], which the pipeline runs on whichever
/// thread maps the record: on a long run the threads take the records from `read` in turn, under a lock,
/// and only that reading is done one record after another.
pub struct Records<'r> {
    /// The records as read, in order (`Send`: a long run's threads take them in turn).
    pub read: &'r mut (dyn Iterator<Item = Decoded> + Send),
    /// What finishes each record read; `None`: they are read finished.
    pub completion: Option<&'r dyn Completion>,
}

impl<'r> Records<'r> {
    /// Records read finished.
    pub fn finished(read: &'r mut (dyn Iterator<Item = Decoded> + Send)) -> Self {
        Self {
            read,
            completion: None,
        }
    }

    /// Records each finished by `completion` before it is mapped.
    pub fn completed_by(
        read: &'r mut (dyn Iterator<Item = Decoded> + Send),
        completion: &'r dyn Completion,
    ) -> Self {
        Self {
            read,
            completion: Some(completion),
        }
    }
}

/// The second half of a source's decoding, done for each record read before it is mapped, on the thread
/// that maps it. It notes its quirks in the source's [`QuirkLog`] as the reading does; a thread mapping for
/// a long run records them and they are applied in the records' order
/// ([`QuirkLog::recording_into`]), so the log is the same on any number of threads.
pub trait Completion: Sync {
    /// The record `read` finished (its joins made), or why it cannot be used.
    fn complete(&self, read: SourceRecord) -> Decoded;
}

/// `decoded` finished by `completion`, if there is one (a record that could not be read stays as it is).
pub fn complete(completion: Option<&dyn Completion>, decoded: Decoded) -> Decoded {
    match (completion, decoded) {
        (Some(completion), Ok(read)) => completion.complete(read),
        (_, decoded) => decoded,
    }
}

/// One adapter: a format onedoor reads.
pub trait Source: Sync {
    /// Its name, what it reads, its record kinds and the variables a mapping may read.
    fn description(&self) -> &'static SourceDescription;

    /// Prepare to read `request`. Most sources open the export when read; one that must tell something
    /// before the mapping is built (HMIS: the source system from `Export.csv`) opens it here.
    fn open<'a>(&self, request: SourceRequest<'a>)
    -> Result<Box<dyn OpenSource + 'a>, SourceError>;

    /// Whether the rows of `file` are records each of which must end converted, rejected or skipped (the
    /// reconciliation); other tables' rows are only read by records. Every file, unless the source says.
    fn is_record_table(&self, _file: &str) -> bool {
        true
    }

    /// Columns the adapter itself reads (joins, deletions), counted as read in the coverage report.
    fn read_by_adapter(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }

    /// Whether it counts repeat incidents in a kept history (ingest then loads and saves one).
    fn keeps_incident_history(&self) -> bool {
        false
    }
}

/// A source prepared for one export.
pub trait OpenSource {
    /// The source system ids derive in, when the export names it (HMIS); `None` keeps the mapping's.
    fn source_system(
        &self,
        _declared: &str,
        _configured: Option<&str>,
    ) -> Result<Option<String>, SourceError> {
        Ok(None)
    }

    /// Hand every record to `consume` and return the tables read.
    fn read(self: Box<Self>, consume: &mut Consumer<'_>) -> Result<Tables, SourceError>;
}

/// A source opened when read: the request, kept until then.
pub struct Deferred<'a, F> {
    request: SourceRequest<'a>,
    read: F,
}

impl<'a, F> Deferred<'a, F>
where
    F: FnOnce(SourceRequest<'a>, &mut Consumer<'_>) -> Result<Tables, SourceError> + 'a,
{
    /// A source that runs `read` on `request` when read.
    pub fn boxed(request: SourceRequest<'a>, read: F) -> Box<dyn OpenSource + 'a> {
        Box::new(Self { request, read })
    }
}

impl<'a, F> OpenSource for Deferred<'a, F>
where
    F: FnOnce(SourceRequest<'a>, &mut Consumer<'_>) -> Result<Tables, SourceError> + 'a,
{
    fn read(self: Box<Self>, consume: &mut Consumer<'_>) -> Result<Tables, SourceError> {
        (self.read)(self.request, consume)
    }
}

/// Whether `file` is one of `tables` (names compared without regard to case).
pub fn table_in(file: &str, tables: &[&str]) -> bool {
    tables.iter().any(|t| t.eq_ignore_ascii_case(file))
}
