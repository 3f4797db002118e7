//! Reading FHIR JSON and NDJSON files, one resource (or Bundle) per record, streaming NDJSON line by line.

use crate::adapters::csv_table::display_name;
use crate::adapters::values::object;
use crate::adapters::{Decoded, Position, QuirkLog, RecordError, SourceRecord};
use serde_json::Value;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// The record kinds this adapter yields.
pub const RECORD_KINDS: &[&str] = &["resource"];

/// Largest single JSON document read whole (NDJSON is streamed and has no total limit).
const MAX_JSON_BYTES: u64 = 256 * 1024 * 1024;

/// FHIR JSON files to read: a file, or every `.json`/`.ndjson` file of a folder in name order.
pub struct FhirSource {
    files: Vec<PathBuf>,
}

impl FhirSource {
    /// Collect the files under `path`.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        if !path.is_dir() {
            std::fs::metadata(path)?;
            return Ok(Self {
                files: vec![path.to_owned()],
            });
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json" || e == "ndjson"))
            .collect();
        files.sort();
        Ok(Self { files })
    }

    /// The files that will be read.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Every resource of every file, in order.
    pub fn records(&self) -> impl Iterator<Item = Decoded> + '_ {
        self.files.iter().flat_map(|path| file_records(path))
    }

    /// Every resource of every file, in order, counting what each file holds for the reconciliation: one
    /// document per JSON file, one resource per non-blank NDJSON line.
    pub fn counted_records<'s>(
        &'s self,
        quirks: &'s QuirkLog,
    ) -> impl Iterator<Item = Decoded> + 's {
        self.files.iter().flat_map(move |path| {
            let name = display_name(path);
            // Shared by the two halves of the chain; atomic so that the records can be read on any thread.
            let count = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
            let counter = count.clone();
            let quirks = quirks.clone();
            file_records(path)
                // A problem with the whole file (it cannot be opened, it is too large) is no record of it.
                .inspect(move |decoded| {
                    if decoded
                        .as_ref()
                        .map_or_else(|e| e.position.unit().is_some(), |_| true)
                    {
                        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                })
                .chain(std::iter::from_fn(move || {
                    quirks.rows_read(&name, count.load(std::sync::atomic::Ordering::Relaxed));
                    None
                }))
        })
    }
}

fn file_records(path: &Path) -> Box<dyn Iterator<Item = Decoded> + Send> {
    let name = display_name(path);
    let file = match File::open(path) {
        Ok(f) => f,
        Err(err) => {
            return Box::new(std::iter::once(Err(RecordError::new(
                Position::file(&name),
                format!("cannot read: {err}"),
            ))));
        }
    };
    if let Some(why) = crate::adapters::csv_table::utf16_file(path) {
        return Box::new(std::iter::once(Err(RecordError::new(
            Position::line(&name, 1),
            why,
        ))));
    }
    if path.extension().is_some_and(|e| e == "ndjson") {
        return Box::new(ndjson_records(name, file));
    }
    Box::new(std::iter::once(json_record(name, file)))
}

fn json_record(name: String, file: File) -> Decoded {
    let mut text = Vec::new();
    file.take(MAX_JSON_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(|err| RecordError::new(Position::file(&name), format!("cannot read: {err}")))?;
    if text.len() as u64 > MAX_JSON_BYTES {
        return Err(RecordError::new(
            Position::file(&name),
            format!("file larger than {MAX_JSON_BYTES} bytes; use NDJSON for bulk data"),
        ));
    }
    let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&text);
    let value: Value = serde_json::from_slice(text).map_err(|err| {
        RecordError::new(
            Position::line(&name, err.line() as u64),
            format!("invalid JSON at column {}: {err}", err.column()),
        )
    })?;
    record(name, 1, value)
}

fn ndjson_records(name: String, file: File) -> impl Iterator<Item = Decoded> {
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    // One line buffer for the whole file, not a new String per line.
    let mut line = String::new();
    let mut number = 0u64;
    let mut ended = false;
    std::iter::from_fn(move || {
        while !ended {
            line.clear();
            number += 1;
            match reader.read_line(&mut line) {
                Ok(0) => return None,
                Ok(_) if line.trim().is_empty() => continue,
                Ok(_) => return Some(ndjson_record(&name, number, &line)),
                Err(err) => {
                    // A line that is not UTF-8 is reported and passed over; any other read error is
                    // reported once and ends the file.
                    ended = err.kind() != std::io::ErrorKind::InvalidData;
                    return Some(Err(RecordError::new(
                        Position::line(&name, number),
                        format!("cannot read line: {err}"),
                    )));
                }
            }
        }
        None
    })
}

fn ndjson_record(name: &str, number: u64, line: &str) -> Decoded {
    let value = serde_json::from_str::<Value>(line).map_err(|err| {
        RecordError::new(
            Position::line(name, number),
            format!(
                "invalid JSON at column {}: {err} (expected one resource per line)",
                err.column()
            ),
        )
    })?;
    record(name.to_owned(), number, value)
}

fn record(name: String, line: u64, value: Value) -> Decoded {
    let position = Position::line(&name, line);
    let Some(kind) = value.get("resourceType").and_then(Value::as_str) else {
        return Err(RecordError::new(
            position.with_field("resourceType"),
            "no resourceType (expected a FHIR resource)",
        ));
    };
    let key = value
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{name}:{line}"));
    let group = format!("{kind}/{key}");
    Ok(SourceRecord {
        kind: "resource",
        key,
        group,
        position,
        // Moved in, never copied (`json!` would serialize the whole resource into a new value).
        context: object([("resource", value)]),
        related: Vec::new(),
        joined: Vec::new(),
    })
}
