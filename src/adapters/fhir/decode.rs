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

/// A resource lent by [`FhirSource::for_each_resource`]: where it is and the value.
pub struct LentResource<'a> {
    /// The file's name, as positions name it.
    pub file: &'a str,
    /// Its line (1 for a JSON file).
    pub line: u64,
    /// The resource or Bundle.
    pub resource: &'a Value,
}

impl LentResource<'_> {
    /// Where it is.
    pub fn position(&self) -> Position {
        Position::line(self.file, self.line)
    }

    /// Its key as [`FhirSource::records`] gives it: its id, or its file and line.
    pub fn key(&self) -> String {
        record_key(self.resource, self.file, self.line)
    }
}

impl FhirSource {
    /// Every resource of every file, in order, as [`FhirSource::records`] gives them (the same resources,
    /// the same errors), each lent to `visit`. NDJSON lines are parsed into one value reused from line to
    /// line ([`crate::json_reuse`]), so a long file of resources of one shape costs no map built by insert
    /// and no allocation a line; `validate` reads this way.
    pub fn for_each_resource(&self, mut visit: impl FnMut(Result<LentResource<'_>, RecordError>)) {
        let mut reused = Value::Null;
        for path in &self.files {
            match open_file(path) {
                Opened::Ndjson(mut lines) => {
                    while let Some(line) = lines.next_line() {
                        visit(line.and_then(|line| lend(line, &mut reused)));
                    }
                }
                opened => {
                    for decoded in opened.records() {
                        match decoded {
                            Ok(record) => visit(Ok(LentResource {
                                file: &record.position.file,
                                line: record.position.line.unwrap_or(1),
                                resource: record.context.get("resource").unwrap_or(&Value::Null),
                            })),
                            Err(error) => visit(Err(error)),
                        }
                    }
                }
            }
        }
    }
}

/// An NDJSON line parsed into `reused` and lent.
fn lend<'a>(line: Line<'a>, reused: &'a mut Value) -> Result<LentResource<'a>, RecordError> {
    crate::json_reuse::parse_into(line.text, reused)
        .map_err(|err| ndjson_error(line.file, line.number, &err))?;
    let resource = &*reused;
    resource_kind(resource, line.file, line.number)?;
    Ok(LentResource {
        file: line.file,
        line: line.number,
        resource,
    })
}

/// A file opened for reading: NDJSON line by line, JSON whole, or why it cannot be read.
enum Opened {
    Ndjson(NdjsonLines),
    Json(String, File),
    Failed(RecordError),
}

impl Opened {
    fn records(self) -> Box<dyn Iterator<Item = Decoded> + Send> {
        match self {
            Opened::Ndjson(mut lines) => Box::new(std::iter::from_fn(move || {
                let line = lines.next_line()?;
                Some(line.and_then(|line| ndjson_record(line.file, line.number, line.text)))
            })),
            Opened::Json(name, file) => Box::new(std::iter::once(json_record(name, file))),
            Opened::Failed(error) => Box::new(std::iter::once(Err(error))),
        }
    }
}

fn open_file(path: &Path) -> Opened {
    let name = display_name(path);
    let file = match File::open(path) {
        Ok(f) => f,
        Err(err) => {
            return Opened::Failed(RecordError::new(
                Position::file(&name),
                format!("cannot read: {err}"),
            ));
        }
    };
    if let Some(why) = crate::adapters::csv_table::utf16_file(path) {
        return Opened::Failed(RecordError::new(Position::line(&name, 1), why));
    }
    if path.extension().is_some_and(|e| e == "ndjson") {
        return Opened::Ndjson(NdjsonLines::new(name, file));
    }
    Opened::Json(name, file)
}

fn file_records(path: &Path) -> Box<dyn Iterator<Item = Decoded> + Send> {
    open_file(path).records()
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

/// One non-blank line of an NDJSON file.
struct Line<'a> {
    file: &'a str,
    number: u64,
    text: &'a str,
}

/// The non-blank lines of an NDJSON file, read into one buffer.
struct NdjsonLines {
    name: String,
    reader: BufReader<File>,
    line: String,
    /// The number of the line last read.
    number: u64,
    ended: bool,
}

impl NdjsonLines {
    fn new(name: String, file: File) -> Self {
        Self {
            name,
            reader: BufReader::with_capacity(256 * 1024, file),
            // One line buffer for the whole file, not a new String per line.
            line: String::new(),
            number: 0,
            ended: false,
        }
    }

    /// The next non-blank line, or why it could not be read.
    fn next_line(&mut self) -> Option<Result<Line<'_>, RecordError>> {
        while !self.ended {
            self.line.clear();
            self.number += 1;
            match self.reader.read_line(&mut self.line) {
                Ok(0) => return None,
                Ok(_) if crate::text::is_blank(&self.line) => continue,
                Ok(_) => {
                    return Some(Ok(Line {
                        file: &self.name,
                        number: self.number,
                        text: &self.line,
                    }));
                }
                Err(err) => {
                    // A line that is not UTF-8 is reported and passed over; any other read error is
                    // reported once and ends the file.
                    self.ended = err.kind() != std::io::ErrorKind::InvalidData;
                    return Some(Err(RecordError::new(
                        Position::line(&self.name, self.number),
                        format!("cannot read line: {err}"),
                    )));
                }
            }
        }
        None
    }
}

fn ndjson_error(name: &str, number: u64, err: &serde_json::Error) -> RecordError {
    RecordError::new(
        Position::line(name, number),
        format!(
            "invalid JSON at column {}: {err} (expected one resource per line)",
            err.column()
        ),
    )
}

fn ndjson_record(name: &str, number: u64, line: &str) -> Decoded {
    let value =
        serde_json::from_str::<Value>(line).map_err(|err| ndjson_error(name, number, &err))?;
    record(name.to_owned(), number, value)
}

/// The resource's type, or the error of a record without one.
fn resource_kind<'v>(value: &'v Value, name: &str, line: u64) -> Result<&'v str, RecordError> {
    value
        .get("resourceType")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            RecordError::new(
                Position::line(name, line).with_field("resourceType"),
                "no resourceType (expected a FHIR resource)",
            )
        })
}

/// A resource's key: its id, or its file and line.
fn record_key(value: &Value, name: &str, line: u64) -> String {
    value
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{name}:{line}"))
}

fn record(name: String, line: u64, value: Value) -> Decoded {
    let kind = resource_kind(&value, &name, line)?;
    let key = record_key(&value, &name, line);
    let group = format!("{kind}/{key}");
    Ok(SourceRecord {
        kind: "resource",
        key,
        group,
        position: Position::line(&name, line),
        // Moved in, never copied (`json!` would serialize the whole resource into a new value).
        context: object([("resource", value)]),
        related: Vec::new(),
        joined: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `records` gives, as text: position, key and resource, or the error.
    fn read(source: &FhirSource) -> Vec<String> {
        source
            .records()
            .map(|record| match record {
                Ok(record) => format!(
                    "{} {} {}",
                    record.position, record.key, record.context["resource"]
                ),
                Err(error) => format!("error {error}"),
            })
            .collect()
    }

    /// What `for_each_resource` lends, in the same form.
    fn lent(source: &FhirSource) -> Vec<String> {
        let mut lent = Vec::new();
        source.for_each_resource(|resource| {
            lent.push(match resource {
                Ok(resource) => format!(
                    "{} {} {}",
                    resource.position(),
                    resource.key(),
                    resource.resource
                ),
                Err(error) => format!("error {error}"),
            });
        });
        lent
    }

    #[test]
    fn resources_lent_line_by_line_are_the_records_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut ndjson = concat!(
            r#"{"resourceType":"Patient","id":"p1","name":[{"family":"Ng","given":["Ana"]}]}"#,
            "\n",
            r#"{"resourceType":"Patient","id":"p2","name":[{"family":"Li"}],"active":true}"#,
            "\n   \n",
            r#"{"resourceType":"Patient","name":[{"given":["Bo","Cy"],"family":"Ek"}]}"#,
            "\n",
            r#"{"resourceType":"Patient","id":"p4""#,
            "\n",
            r#"{"id":"no-type"}"#,
            "\n",
            r#"{"resourceType":"Observation","id":"o1","valueQuantity":{"value":1.50}}"#,
            "\n",
            r#"{"resourceType":"Patient","id":"p5","id":"p6"}"#,
            "\n",
        )
        .as_bytes()
        .to_vec();
        ndjson.extend_from_slice(b"{\"resourceType\":\"Patient\",\"id\":\"\xff\"}\n");
        ndjson.extend_from_slice(br#"{"resourceType":"Patient","id":"p7"}"#);
        std::fs::write(dir.path().join("a.ndjson"), ndjson).unwrap();
        std::fs::write(
            dir.path().join("b.json"),
            r#"{"resourceType":"Bundle","type":"collection","entry":[]}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("c.json"), "{").unwrap();
        let source = FhirSource::open(dir.path()).unwrap();
        let expected = read(&source);
        assert_eq!(expected.len(), 11, "{expected:#?}");
        assert_eq!(lent(&source), expected);
    }
}
