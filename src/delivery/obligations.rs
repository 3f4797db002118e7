//! Obligations that travel beside what a destination writes when its format cannot carry them.
//!
//! A released FHIR record carries its obligations itself (the redisclosure obligation NORDSCLCD in
//! `meta.security`, the 42 CFR Part 2 notice in a `meta.extension`, see `consent::redact`). An HMIS CSV
//! folder, and a file drop a receiver may read with other tools, get a **side file** as well: one JSON line
//! per released record that carries an obligation, written before the record itself (a notice without its
//! record is harmless; a record without its notice is not), appended with `O_APPEND` and `sync_data` like
//! the file drop:
//!
//! - HMIS CSV folder: `<folder>/onedoor-obligations.ndjson` ([`HMIS_SIDE_FILE`]);
//! - NDJSON file destination: `<file>.obligations.ndjson` beside it ([`side_file_for`]).
//!
//! Each line: `{"notice": "...", "obligations": [{"system", "code", "display"}], "labels": [...],
//! "referral": "ServiceRequest/id", "patient": "Patient/id", "resources": ["Condition/id", ...],
//! "recipient", "purpose", "time"}` — `resources` are the released resources the obligation attaches to
//! (those labelled as 42 CFR Part 2 data). Records without an obligation write nothing.

use super::file::append_line;
use crate::consent::Released;
use crate::consent::codes::{self, REDISCLOSURE_OBLIGATION, V3_ACT_CODE};
use crate::members::Members;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// The side file inside an HMIS CSV folder.
pub const HMIS_SIDE_FILE: &str = "onedoor-obligations.ndjson";

/// What is appended to a file's name for its side file.
pub const SIDE_FILE_SUFFIX: &str = ".obligations.ndjson";

/// The side file of an NDJSON file destination: `<file>.obligations.ndjson`.
pub fn side_file_for(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(SIDE_FILE_SUFFIX);
    PathBuf::from(name)
}

/// The side-file entry of a released record, or `None` when it carries no obligation.
pub fn entry(released: &Released<Value>) -> Option<Value> {
    let decision = released.decision();
    let record = released.record();
    let obligated = carries_obligation(record);
    if decision.notices.is_empty() && !obligated {
        return None;
    }
    let resources = crate::consent::subject::resources(record);
    let reference = |r: &&Value| crate::store::reference_of(r);
    let part2: Vec<String> = resources
        .iter()
        .filter(|r| labelled_part2(r))
        .map(reference)
        .collect();
    let referral = resources
        .iter()
        .find(|r| r.get("resourceType").and_then(Value::as_str) == Some("ServiceRequest"))
        .map(reference);
    let disclosing = released.disclosing();
    Some(json!({
        "notice": decision.notices.join("\n\n"),
        "obligations": [{
            "system": V3_ACT_CODE,
            "code": REDISCLOSURE_OBLIGATION,
            "display": "no redisclosure without consent directive",
        }],
        "labels": part2_labels(record),
        "referral": referral,
        "patient": decision.patient,
        "resources": part2,
        "recipient": disclosing.recipient,
        "purpose": disclosing.purpose,
        "time": released.disclosure().time,
    }))
}

/// The side-file line of a released record (JSON and a newline), or `None` without an obligation.
pub fn line(released: &Released<Value>) -> Option<Vec<u8>> {
    let mut bytes = serde_json::to_vec(&entry(released)?).ok()?;
    bytes.push(b'\n');
    Some(bytes)
}

/// Append the record's side-file line to `side` when it carries an obligation; whether it did.
pub fn append(side: &Path, released: &Released<Value>) -> std::io::Result<bool> {
    match line(released) {
        Some(bytes) => append_line(side, &bytes).map(|()| true),
        None => Ok(false),
    }
}

/// Whether the record's `meta.security` holds the redisclosure obligation.
fn carries_obligation(record: &Value) -> bool {
    security(record).iter().any(|c| {
        c.get("code").and_then(Value::as_str) == Some(REDISCLOSURE_OBLIGATION)
            && c.get("system").and_then(Value::as_str) == Some(V3_ACT_CODE)
    })
}

fn security(resource: &Value) -> &[Value] {
    resource
        .at(&["meta", "security"])
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn labelled_part2(resource: &Value) -> bool {
    security(resource).iter().any(|c| {
        c.get("code")
            .and_then(Value::as_str)
            .is_some_and(|code| codes::is_part2(c.get("system").and_then(Value::as_str), code))
    })
}

/// The Part 2 sensitivity labels anywhere in the record (sorted, once each).
fn part2_labels(record: &Value) -> Vec<String> {
    let mut labels: Vec<String> = std::iter::once(record)
        .chain(crate::consent::subject::resources(record))
        .flat_map(security)
        .filter_map(|c| {
            let code = c.get("code").and_then(Value::as_str)?;
            codes::is_part2(c.get("system").and_then(Value::as_str), code).then(|| code.to_owned())
        })
        .collect();
    labels.sort();
    labels.dedup();
    labels
}
