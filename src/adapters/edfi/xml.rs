//! Streaming XML → JSON for interchange files: each child element of the root becomes a JSON object
//! (children by name, repeated names as lists, text as strings, attributes as `@name`), read one at a time.
//! No DTD is read or expanded (a DOCTYPE is refused), depth and element size are bounded. Text is trimmed; a
//! value that had spaces around it (`<EducationOrganizationId>255901 </EducationOrganizationId>`) is noted
//! with its line and element path, so the adapter can report it.

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};
use serde_json::{Map, Value};
use std::io::BufRead;

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
    untrimmed: Vec<Untrimmed>,
}

/// Counts lines up to a byte position (quick-xml reports byte positions).
struct LineCounter {
    text: Vec<u8>,
}

impl LineCounter {
    fn line_at(&self, position: usize) -> u64 {
        self.text[..position.min(self.text.len())]
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
        untrimmed: Vec::new(),
    }
}

impl<R: BufRead> Interchange<R> {
    /// The values read so far that had spaces around them (taken: each is returned once).
    pub fn take_untrimmed(&mut self) -> Vec<Untrimmed> {
        std::mem::take(&mut self.untrimmed)
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
                Event::Start(_) if self.depth == 0 => self.depth = 1,
                Event::Start(start) => {
                    let line = self.lines.line_at(position);
                    let name = local_name(&start);
                    return Some(self.element(start, 2, "").map(|value| Element {
                        name,
                        line,
                        value,
                    }));
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
                    return Err(format!("element <{}> is not closed", local_name(&start)));
                }
                _ => {}
            }
        }
        if !object.is_empty() {
            return Ok(Value::Object(object));
        }
        let trimmed = text.trim();
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

fn attributes(start: &BytesStart<'_>) -> Map<String, Value> {
    start
        .attributes()
        .filter_map(Result::ok)
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
