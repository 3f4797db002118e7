//! Encoders: a released record in the receiver's format. Only FHIR JSON for now (HMIS CSV and others come
//! with their adapters).

use crate::consent::Released;
use serde_json::Value;

/// The released record as one line of FHIR JSON (for NDJSON files and webhooks).
pub fn fhir_json_line(released: &Released<Value>) -> Vec<u8> {
    let mut line = serde_json::to_vec(released.record()).unwrap_or_default();
    line.push(b'\n');
    line
}
