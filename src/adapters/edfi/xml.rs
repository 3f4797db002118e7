//! Streaming XML → JSON for interchange files: each child element of the root becomes a JSON object
//! (children by name, repeated names as lists, text as strings, attributes as `@name`, the text of an
//! element that also has attributes as `#text`), read one at a time.
//! A root that is itself an object (a SIF `<StudentPersonal>` file) is yielded whole when the caller names
//! it. Namespace declarations are kept aside (the root's namespace is available), not in the JSON.
//! No DTD is read or expanded (a DOCTYPE is refused), depth and element size are bounded. Text is trimmed; a
//! value that had spaces around it (`<EducationOrganizationId>255901 </EducationOrganizationId>`) is noted
//! with its line and element path, so the adapter can report it.

use crate::adapters::oneroster::Export;
use crate::adapters::{Position, RecordError};
use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};
use serde_json::{Map, Value};
use std::io::BufRead;
use std::path::{Path, PathBuf};

const MAX_DEPTH: usize = 32;
const MAX_ELEMENT_BYTES: usize = 1024 * 1024;

/// One top-level element: its name, the line it starts on, and its content.
pub struct Element {
    /// The element's local name (`Student`).
    pub name: String,
    /// 1-based line of its start tag.
    pub line: u64,
    /// Its content as JSON.
    pub value: Value,
}

/// A value read trimmed that had leading or trailing spaces in the file.
#[derive(Debug, Clone)]
pub struct Untrimmed {
    /// 1-based line of the element.
    pub line: u64,
    /// Its path from the top-level element (`ProgramReference/ProgramIdentity/.../EducationOrganizationId`).
    pub path: String,
    /// The text as written, spaces included.
    pub raw: String,
}

/// Reads the children of the root element one by one.
pub struct Interchange<R: BufRead> {
    reader: Reader<R>,
    buf: Vec<u8>,
    depth: usize,
    lines: LineCounter,
    root_objects: &'static [&'static str],
    root: Option<(String, Option<String>)>,
    untrimmed: Vec<Untrimmed>,
}

/// Counts lines up to a byte position (quick-xml reports byte positions).
struct LineCounter {
    text: Vec<u8>,
}

impl LineCounter {
    /// The line of the first non-blank byte at or after `position` (an event starts after the blank text
    /// that trimming skips).
    fn line_at(&self, position: usize) -> u64 {
        let start = position.min(self.text.len());
        let position = self.text[start..]
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .map_or(start, |skip| start + skip);
        self.text[..position]
            .iter()
            .filter(|b| **b == b'\n')
            .count() as u64
            + 1
    }
}

/// Parse interchange text (read within the caller's size limit).
pub fn from_bytes(text: Vec<u8>) -> Interchange<std::io::Cursor<Vec<u8>>> {
    let reader = Reader::from_reader(std::io::Cursor::new(text.clone()));
    Interchange {
        reader,
        buf: Vec::new(),
        depth: 0,
        lines: LineCounter { text },
        root_objects: &[],
        root: None,
        untrimmed: Vec::new(),
    }
}

impl<R: BufRead> Interchange<R> {
    /// Root elements with these names are objects themselves: yielded whole instead of their children.
    pub fn with_root_objects(mut self, names: &'static [&'static str]) -> Self {
        self.root_objects = names;
        self
    }

    /// The values read so far that had spaces around them (taken: each is returned once).
    pub fn take_untrimmed(&mut self) -> Vec<Untrimmed> {
        std::mem::take(&mut self.untrimmed)
    }

    /// The root element's local name and namespace URI, once the root has been read.
    pub fn root(&self) -> Option<(&str, Option<&str>)> {
        self.root
            .as_ref()
            .map(|(name, namespace)| (name.as_str(), namespace.as_deref()))
    }

    /// The next top-level element, or an error naming the line.
    pub fn next_element(&mut self) -> Option<Result<Element, String>> {
        loop {
            self.buf.clear();
            let position = self.reader.buffer_position() as usize;
            let event = match self.reader.read_event_into(&mut self.buf) {
                Ok(event) => event.into_owned(),
                Err(err) => {
                    return Some(Err(format!(
                        "line {}: malformed XML: {err}",
                        self.lines.line_at(position)
                    )));
                }
            };
            match event {
                Event::DocType(_) => {
                    return Some(Err(
                        "a DOCTYPE is not accepted (no DTD is read or expanded)".into(),
                    ));
                }
                Event::Start(start) if self.depth == 0 => {
                    let name = local_name(&start);
                    self.root = Some((name.clone(), namespace_of(&start)));
                    if self.root_objects.contains(&name.as_str()) {
                        let line = self.lines.line_at(position);
                        return Some(
                            self.element(start, 1, "")
                                .map(|value| Element { name, line, value })
                                .map_err(|why| format!("line {line}: {why}")),
                        );
                    }
                    self.depth = 1;
                }
                Event::Empty(start) if self.depth == 0 => {
                    self.root = Some((local_name(&start), namespace_of(&start)));
                }
                Event::Start(start) => {
                    let line = self.lines.line_at(position);
                    let name = local_name(&start);
                    return Some(
                        self.element(start, 2, "")
                            .map(|value| Element { name, line, value })
                            .map_err(|why| format!("line {line}: {why}")),
                    );
                }
                Event::Empty(start) if self.depth == 1 => {
                    let line = self.lines.line_at(position);
                    return Some(Ok(Element {
                        name: local_name(&start),
                        line,
                        value: Value::Object(attributes(&start)),
                    }));
                }
                Event::End(_) => self.depth = 0,
                Event::Eof => return None,
                _ => {}
            }
        }
    }

    fn element(
        &mut self,
        start: BytesStart<'static>,
        depth: usize,
        path: &str,
    ) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err(format!("elements nested deeper than {MAX_DEPTH}"));
        }
        let begin = self.reader.buffer_position() as usize;
        let mut object = attributes(&start);
        let mut text = String::new();
        let mut buf = Vec::new();
        loop {
            buf.clear();
            if self.reader.buffer_position() as usize - begin > MAX_ELEMENT_BYTES {
                return Err(format!("an element larger than {MAX_ELEMENT_BYTES} bytes"));
            }
            match self
                .reader
                .read_event_into(&mut buf)
                .map_err(|e| format!("malformed XML: {e}"))?
                .into_owned()
            {
                Event::Start(child) => {
                    let name = local_name(&child);
                    let child_path = if path.is_empty() {
                        name.clone()
                    } else {
                        format!("{path}/{name}")
                    };
                    let value = self.element(child, depth + 1, &child_path)?;
                    insert(&mut object, name, value);
                }
                Event::Empty(child) => insert(
                    &mut object,
                    local_name(&child),
                    Value::Object(attributes(&child)),
                ),
                Event::Text(t) => {
                    text.push_str(&t.unescape().map_err(|e| format!("bad text: {e}"))?)
                }
                Event::CData(t) => text.push_str(&String::from_utf8_lossy(&t)),
                Event::End(_) => break,
                Event::Eof => {
                    return Err(format!(
                        "malformed XML: element <{}> is not closed",
                        local_name(&start)
                    ));
                }
                _ => {}
            }
        }
        let trimmed = text.trim();
        if !object.is_empty() {
            if !trimmed.is_empty() {
                object.insert("#text".into(), Value::String(trimmed.to_owned()));
            }
            return Ok(Value::Object(object));
        }
        if trimmed.len() != text.len() && !trimmed.is_empty() && !text.contains('\n') {
            self.untrimmed.push(Untrimmed {
                line: self.lines.line_at(begin),
                path: path.to_owned(),
                raw: text.clone(),
            });
        }
        Ok(Value::String(trimmed.to_owned()))
    }
}

fn local_name(start: &BytesStart<'_>) -> String {
    String::from_utf8_lossy(start.local_name().as_ref()).into_owned()
}

/// The namespace URI of an element, from the declarations on the element itself (enough for a root).
fn namespace_of(start: &BytesStart<'_>) -> Option<String> {
    let declaration = match start.name().prefix() {
        Some(prefix) => [b"xmlns:".as_slice(), prefix.as_ref()].concat(),
        None => b"xmlns".to_vec(),
    };
    start
        .attributes()
        .filter_map(Result::ok)
        .find(|a| a.key.as_ref() == declaration.as_slice())
        .map(|a| String::from_utf8_lossy(&a.value).into_owned())
}

fn is_namespace_declaration(key: &[u8]) -> bool {
    key == b"xmlns" || key.starts_with(b"xmlns:")
}

fn attributes(start: &BytesStart<'_>) -> Map<String, Value> {
    start
        .attributes()
        .filter_map(Result::ok)
        .filter(|a| !is_namespace_declaration(a.key.as_ref()))
        .map(|a| {
            (
                format!("@{}", String::from_utf8_lossy(a.key.local_name().as_ref())),
                Value::String(String::from_utf8_lossy(&a.value).into_owned()),
            )
        })
        .collect()
}

fn insert(object: &mut Map<String, Value>, name: String, value: Value) {
    match object.get_mut(&name) {
        Some(Value::Array(list)) => list.push(value),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, value]);
        }
        None => {
            object.insert(name, value);
        }
    }
}

/// The `.xml` files of an export: one file, or every `.xml` file of a folder or zip (sorted by name). The
/// [`Export`] returned keeps an extracted zip alive while the files are read.
pub fn files_of(path: &Path) -> Result<(Vec<PathBuf>, Option<Export>), String> {
    if path.is_file()
        && path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("xml"))
    {
        return Ok((vec![path.to_owned()], None));
    }
    let export = Export::open(path).map_err(|e| e.to_string())?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(export.dir())
        .map_err(|e| format!("{}: {e}", path.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("xml")))
        .collect();
    files.sort();
    Ok((files, Some(export)))
}

/// A reader error as a rejection at its file and, when the message starts with `line N:`, its line.
pub fn record_error(file: &str, why: String) -> RecordError {
    let located = why.strip_prefix("line ").and_then(|rest| {
        let (number, message) = rest.split_once(": ")?;
        Some((number.parse().ok()?, message.to_owned()))
    });
    match located {
        Some((line, message)) => RecordError::new(Position::line(file, line), message),
        None => RecordError::new(Position::file(file), why),
    }
}
