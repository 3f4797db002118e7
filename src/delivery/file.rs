//! The file destination: released records appended to an NDJSON file (a file drop a receiving agency
//! picks up).

use super::Destination;
use super::encode::fhir_json_line;
use crate::consent::Released;
use serde_json::Value;
use std::io::Write;

/// Writes each released record as one NDJSON line.
pub struct NdjsonFileDestination<W: Write> {
    out: W,
}

impl<W: Write> NdjsonFileDestination<W> {
    /// Write to `out`.
    pub fn new(out: W) -> Self {
        Self { out }
    }
}

impl<W: Write> Destination for NdjsonFileDestination<W> {
    fn deliver(&mut self, released: &Released<Value>) -> std::io::Result<()> {
        self.out.write_all(&fhir_json_line(released))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}
