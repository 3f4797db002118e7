//! `niem`: NIEM XML from police records systems, starting with FBI NIBRS 2019 incident submissions (the
//! police side of a police/social-work partnership). Each victim of a Group A incident becomes a record with
//! their person, the offenses and location linked to them, their relationships to the offenders, the
//! triggers a follow-up table matches (domestic relationship, circumstance, child victim), and how many
//! earlier incidents the gateway has seen for the same person or address ([`history`]).

mod decode;
pub mod history;
mod report;

pub use decode::{CONTEXT, NIBRS_2019, NiemOptions, NiemSource, RECORD_KINDS};
pub use history::IncidentHistory;
