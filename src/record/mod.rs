//! The types every stage shares, below the adapters and the mappings: a decoded [`SourceRecord`] with its
//! [`Position`], the [`RecordError`] a record is rejected with, the [`QuirkLog`] of what an export did
//! unexpectedly, the text encoding a source is read in, the [`ContextTable`]s a mapping may read, the
//! [`OutputFormat`] a conversion writes (also read by the configuration) and the repeat-incident
//! [`Sighting`] the `niem` history keeps and the store persists; [`OrgRef`] and [`ResourceRef`] are
//! organisation and resource references parsed once at the edge. Adapters produce these, mappings, the
//! pipeline, the configuration and the store consume them, and none depends on another through them.

pub mod id_table;
pub mod org_ref;
pub mod quirks;
pub mod resource_ref;

use serde::{Deserialize, Serialize};
use std::fmt;

pub use org_ref::OrgRef;
pub use quirks::{Quirk, QuirkLog};
pub use resource_ref::ResourceRef;

/// The bit marking a reconciliation unit as an element ordinal rather than a line.
pub const ELEMENT_UNIT: u64 = 1 << 63;

/// Where a record or a problem is in the source export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Position {
    /// File name relative to the export (for example `users.csv`).
    pub file: String,
    /// 1-based line of the record in the file (the header is line 1), when the format has lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// The field, column or element concerned, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl Position {
    /// A position in a file, at a line.
    pub fn line(file: impl Into<String>, line: u64) -> Self {
        Self {
            file: file.into(),
            line: Some(line),
            field: None,
        }
    }

    /// A position naming a whole file.
    pub fn file(file: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            line: None,
            field: None,
        }
    }

    /// What identifies the record in its file for the reconciliation: its line, or, in a format without
    /// lines (a JSON array), its element (`[3]`, `object 4`), kept apart from lines by a high bit.
    pub fn unit(&self) -> Option<u64> {
        if let Some(line) = self.line {
            return Some(line);
        }
        let field = self.field.as_deref()?;
        let rest = field
            .strip_prefix('[')
            .or_else(|| field.strip_prefix("object "))?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        Some(ELEMENT_UNIT | digits.parse::<u64>().ok()?)
    }

    /// The same position, narrowed to a field.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, " line {line}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ", field {field}")?;
        }
        Ok(())
    }
}

/// A record that could not be decoded or mapped: where it is and what was expected. It is reported and kept
/// in the conversion report, never silently dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{position}: {message}")]
pub struct RecordError {
    /// Where the record is.
    pub position: Position,
    /// What is wrong and what was expected.
    pub message: String,
}

impl RecordError {
    /// A rejection at a position.
    pub fn new(position: Position, message: impl Into<String>) -> Self {
        Self {
            position,
            message: message.into(),
        }
    }
}

/// One decoded source record, ready for a mapping.
#[derive(Debug, Clone)]
pub struct SourceRecord {
    /// What the record is (`student`, `guardian_link`, `org`, `referral`, `resource`): mapping resources are
    /// selected by it (`from = "student"`).
    pub kind: &'static str,
    /// The record's id in its source (a sourcedId, a referral id).
    pub key: String,
    /// Records with the same group go into one output Bundle (a student with their guardians; a referral).
    pub group: String,
    /// Where the record starts.
    pub position: Position,
    /// The values the mapping expressions see (`user.givenName`, `demographics.birthDate`...).
    pub context: serde_json::Value,
    /// Records that belong with this one and are mapped by a companion mapping (the roster entry of the
    /// student a referral is about).
    pub related: Vec<SourceRecord>,
    /// Rows of other files whose values the context holds (`demographics` from `demographics.csv` line 7):
    /// a rule that reads only such a variable and fails is a problem of that row, reported there; it leaves
    /// the element out instead of rejecting the record, unless the element is required.
    pub joined: Vec<(&'static str, Position)>,
}

/// What an adapter yields: a record or the reason one could not be read.
pub type Decoded = Result<SourceRecord, RecordError>;

/// Which source columns a mapping variable reads: `user` reads `users.csv`, and so on. Used for coverage
/// reports and by `mappings check` to name unknown fields.
#[derive(Debug, Clone)]
pub struct ContextTable {
    /// The variable name in mapping expressions.
    pub variable: &'static str,
    /// The source table it comes from.
    pub table: &'static str,
    /// The columns it may hold.
    pub columns: &'static [&'static str],
}

/// How text fields are decoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TextEncoding {
    /// UTF-8; a field that is not UTF-8 is read as Windows-1252 and reported as a quirk.
    #[default]
    Auto,
    /// UTF-8 only; a field that is not UTF-8 rejects its row.
    Utf8,
    /// Windows-1252 (the encoding Excel on Windows writes).
    Windows1252,
}

/// What a mapping may expect of a source: its name in mapping files, what it reads, the record kinds it
/// yields and the variables those records carry. Each adapter has one; the adapter registry lists them.
#[derive(Debug)]
pub struct SourceDescription {
    /// The name mapping files use (`adapter = "oneroster"`), also the adapter's folder under `mappings/`.
    pub name: &'static str,
    /// The files or formats it reads, for people (`a OneRoster 1.1/1.2 CSV folder`).
    pub reads: &'static str,
    /// The record kinds it yields (`from = "student"`).
    pub record_kinds: &'static [&'static str],
    /// The variables a mapping over its records may read.
    pub context: &'static [ContextTable],
}

impl SourceDescription {
    /// The source named `name` among `sources`.
    pub fn find<'s>(
        sources: &[&'s SourceDescription],
        name: &str,
    ) -> Option<&'s SourceDescription> {
        sources.iter().copied().find(|s| s.name == name)
    }

    /// The names of `sources`, comma-separated, for messages.
    pub fn names(sources: &[&SourceDescription]) -> String {
        sources
            .iter()
            .map(|s| s.name)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// How output is written (also as written in configuration and case files: `ndjson`, `bundle`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// One resource per line (each resource once).
    #[default]
    Ndjson,
    /// One transaction Bundle per referral (or per roster entry) per line.
    Bundle,
}

/// One incident seen for one hashed person or address key: what the repeat-incident history (`niem`) keeps
/// and the store persists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sighting {
    /// The hashed person or address key.
    pub key: String,
    /// The incident (`ORI/incident number`).
    pub incident: String,
    /// When it happened.
    pub date: chrono::NaiveDate,
    /// Order of arrival, for incidents on the same day.
    pub seq: u64,
}
