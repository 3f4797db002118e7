//! `oneroster`: OneRoster 1.1 and 1.2 CSV exports (a folder or a zip) → student, guardian-link and org
//! records for the roster mapping.

mod decode;
mod export;
pub mod tables;

pub use decode::{OneRosterError, OneRosterSource, StaffLookup};
pub use export::{Export, ExportError};
