//! Source adapters: decode what a system exports into typed [`SourceRecord`]s that carry their position.
//!
//! One folder per format (DESIGN.md section 4). The folder name is the adapter name used in mapping files
//! (`adapter = "oneroster"`). Every adapter yields records one at a time, so a large export is processed in
//! bounded memory, and every error names the file, the row and the field.
//!
//! Each adapter implements [`source::Source`] and is listed once in [`registry::SOURCES`], where every
//! caller finds it by name. The record, position and quirk types are [`crate::record`]'s, shared with the
//! mappings; they are re-exported here for the adapters.

pub mod csv_table;
pub mod edfi;
pub mod fhir;
pub mod hmis;
pub mod hsds;
pub mod input;
pub mod niem;
pub mod oneroster;
pub mod referral_csv;
pub mod registry;
pub mod sif;
pub mod source;
pub mod values;
pub mod xml;

pub use crate::record::quirks;
pub use crate::record::{
    ContextTable, Decoded, ELEMENT_UNIT, Position, Quirk, QuirkLog, RecordError, SourceRecord,
};
