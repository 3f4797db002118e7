//! `fhir`: FHIR R4 JSON in: single resources, Bundles, and NDJSON (one resource per line), as files or a
//! folder of them. Records pass through validation unchanged.

mod decode;

pub use decode::{FhirSource, RECORD_KINDS};
