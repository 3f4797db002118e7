//! Source adapters: decode what a system exports into typed [`SourceRecord`]s that carry their position.
//!
//! One folder per format (DESIGN.md section 4). The folder name is the adapter name used in mapping files
//! (`adapter = "oneroster"`). Every adapter yields records one at a time, so a large export is processed in
//! bounded memory, and every error names the file, the row and the field.

pub mod csv_table;
pub mod edfi;
pub mod fhir;
pub mod hmis;
pub mod hsds;
pub mod niem;
pub mod oneroster;
pub mod quirks;
pub mod referral_csv;
pub mod sif;
pub mod values;
pub mod xml;

use serde::Serialize;
use std::fmt;

pub use quirks::{Quirk, QuirkLog};

/// The adapters this build knows, by the name mapping files use.
pub const ADAPTERS: &[&str] = &[
    "oneroster",
    "referral-csv",
    "fhir",
    "hmis",
    "hsds",
    "edfi",
    "sif",
    "niem",
];

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

/// The variables a mapping over this adapter's records may read.
pub fn context_tables(adapter: &str) -> &'static [ContextTable] {
    match adapter {
        "oneroster" => oneroster::tables::CONTEXT,
        "referral-csv" => referral_csv::CONTEXT,
        "fhir" => FHIR_CONTEXT,
        "hmis" => hmis::tables::CONTEXT,
        "hsds" => hsds::CONTEXT,
        "edfi" => edfi::CONTEXT,
        "sif" => sif::CONTEXT,
        "niem" => niem::CONTEXT,
        _ => &[],
    }
}

/// The record kinds an adapter yields.
pub fn record_kinds(adapter: &str) -> &'static [&'static str] {
    match adapter {
        "oneroster" => oneroster::tables::RECORD_KINDS,
        "referral-csv" => referral_csv::RECORD_KINDS,
        "fhir" => fhir::RECORD_KINDS,
        "hmis" => hmis::tables::RECORD_KINDS,
        "hsds" => hsds::RECORD_KINDS,
        "edfi" => edfi::RECORD_KINDS,
        "sif" => sif::RECORD_KINDS,
        "niem" => niem::RECORD_KINDS,
        _ => &[],
    }
}

const FHIR_CONTEXT: &[ContextTable] = &[ContextTable {
    variable: "resource",
    table: "resource",
    columns: &[],
}];
