//! The conformance suite (DESIGN.md section 6): each mapping has cases under
//! `conformance/<adapter>/<mapping>/<case>/`, each a folder with its input, a `case.toml` saying what to
//! expect, and the expected output. A mapping without cases fails the suite. `onedoor conformance` and
//! `cargo test` run the same cases.

pub mod case;
pub mod compare;
pub mod consent_case;
pub mod corpus;
pub mod report;
pub mod runner;

pub use case::{CaseFile, Expect};
pub use runner::{CaseResult, SuiteResult, run_suite};
