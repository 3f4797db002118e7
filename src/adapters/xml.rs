//! Streaming XML → JSON, shared by the XML adapters (`edfi`, `sif`, `niem`): each child element of the root
//! becomes a JSON object
//! (children by name, repeated names as lists, text as strings, attributes as `@name`, the text of an
//! element that also has attributes as `#text`), read one at a time.
//! A root that is itself an object (a SIF `<StudentPersonal>` file) is yielded whole when the caller names
//! it. Namespace declarations are kept aside (the root's namespace is available), not in the JSON.
//! No DTD is read or expanded (a DOCTYPE is refused), depth and element size are bounded. Text is trimmed; a
//! value that had spaces around it (`<EducationOrganizationId>255901 </EducationOrganizationId>`) is noted
//! with its line and element path, so the adapter can report it. Files are read as streams (only the element
//! being read is held; lines are counted as bytes go by), so memory does not grow with the file.

use crate::adapters::oneroster::Export;
use crate::adapters::{Position, RecordError};
use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};
use serde_json::{Map, Value};
use std::collections::VecDeque;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

const MAX_DEPTH: usize = 32;
const MAX_ELEMENT_BYTES: usize = 1024 * 1024;

/// One top-level element: its name, the line it starts on, and its content.
#[derive(Debug)]
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

/// Reads the children of the root element one by one, from any buffered source, in bounded memory: only the
/// element being read is held.
pub struct Interchange<R: BufRead> {
    reader: Reader<LineTracking<R>>,
    buf: Vec<u8>,
    depth: usize,
    root_objects: &'static [&'static str],
    root: Option<(String, Option<String>)>,
    untrimmed: Vec<Untrimmed>,
    failed: bool,
}

/// A buffered reader that notes where the newlines are as quick-xml consumes bytes, so a byte position can be
/// turned into a line without keeping the text: positions are asked in increasing order, and newlines before
/// the last position asked are only counted.
pub struct LineTracking<R> {
    inner: R,
    consumed: usize,
    newlines: VecDeque<usize>,
    lines_before: u64,
}

impl<R: BufRead> LineTracking<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            consumed: 0,
            newlines: VecDeque::new(),
            lines_before: 0,
        }
    }

    /// The 1-based line of a byte position at or after the last one asked.
    fn line_at(&mut self, position: usize) -> u64 {
        while self.newlines.front().is_some_and(|n| *n < position) {
            self.newlines.pop_front();
            self.lines_before += 1;
        }
        self.lines_before + 1
    }
}

impl<R: BufRead> Read for LineTracking<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(out)?;
        note_newlines(&mut self.newlines, self.consumed, &out[..read]);
        self.consumed += read;
        Ok(read)
    }
}

impl<R: BufRead> BufRead for LineTracking<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        if let Ok(available) = self.inner.fill_buf() {
            let taken = amount.min(available.len());
            note_newlines(&mut self.newlines, self.consumed, &available[..taken]);
        }
        self.consumed += amount;
        self.inner.consume(amount);
    }
}

/// Note the positions of the newlines of `bytes`, which start at byte `at` of the stream.
fn note_newlines(newlines: &mut VecDeque<usize>, at: usize, bytes: &[u8]) {
    let found = bytes.iter().enumerate().filter(|(_, b)| **b == b'\n');
    newlines.extend(found.map(|(i, _)| at + i));
}

/// Read interchange text held in memory.
#[cfg(test)]
pub fn from_bytes(text: Vec<u8>) -> Interchange<std::io::Cursor<Vec<u8>>> {
    interchange(std::io::Cursor::new(text))
}

/// Read an interchange file as a stream, refusing a file larger than `limit` bytes.
pub fn from_file(
    path: &Path,
    limit: u64,
) -> Result<Interchange<std::io::BufReader<std::fs::File>>, String> {
    if let Some(why) = super::csv_table::utf16_file(path) {
        return Err(why);
    }
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let size = file.metadata().map_err(|e| e.to_string())?.len();
    if size > limit {
        return Err(format!("larger than {limit} bytes ({size})"));
    }
    Ok(interchange(std::io::BufReader::new(file)))
}

fn interchange<R: BufRead>(source: R) -> Interchange<R> {
    Interchange {
        reader: Reader::from_reader(LineTracking::new(source)),
        buf: Vec::new(),
        depth: 0,
        root_objects: &[],
        root: None,
        untrimmed: Vec::new(),
        failed: false,
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

    /// The next top-level element, or an error naming the line. After an error the rest of the file is not
    /// read (it cannot be trusted to be the elements it seems to be).
    pub fn next_element(&mut self) -> Option<Result<Element, String>> {
        if self.failed {
            return None;
        }
        let next = self.read_next();
        self.failed = matches!(next, Some(Err(_)));
        next
    }

    fn read_next(&mut self) -> Option<Result<Element, String>> {
        loop {
            self.buf.clear();
            let event = match self.reader.read_event_into(&mut self.buf) {
                Ok(event) => event.into_owned(),
                Err(err) => {
                    let at = self.reader.error_position() as usize;
                    let line = self.reader.get_mut().line_at(at);
                    return Some(Err(format!("line {line}: malformed XML: {err}")));
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
                        let line = self.line_of_tag(start.len() + 2);
                        return Some(
                            self.element(start, 1, &mut String::new())
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
                    let line = self.line_of_tag(start.len() + 2);
                    let name = local_name(&start);
                    return Some(
                        self.element(start, 2, &mut String::new())
                            .map(|value| Element { name, line, value })
                            .map_err(|why| format!("line {line}: {why}")),
                    );
                }
                Event::Empty(start) if self.depth == 1 => {
                    let line = self.line_of_tag(start.len() + 3);
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

    /// The line of the tag just read (`tag_len` bytes, `<` to `>`, ending at the reader's position).
    fn line_of_tag(&mut self, tag_len: usize) -> u64 {
        let end = self.reader.buffer_position() as usize;
        self.reader.get_mut().line_at(end.saturating_sub(tag_len))
    }

    /// The element `start` opened, as a value; `path` is its path below the record's element (`a/b`),
    /// extended for each child while it is read and given back as it came.
    fn element(
        &mut self,
        start: BytesStart<'static>,
        depth: usize,
        path: &mut String,
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
                    let parent = path.len();
                    if parent > 0 {
                        path.push('/');
                    }
                    path.push_str(&name);
                    let value = self.element(child, depth + 1, path);
                    path.truncate(parent);
                    insert(&mut object, name, value?);
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
                line: self.reader.get_mut().line_at(begin),
                path: path.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn all(text: &str) -> Vec<Result<Element, String>> {
        let mut reader = from_bytes(text.as_bytes().to_vec());
        std::iter::from_fn(|| reader.next_element()).collect()
    }

    #[test]
    fn elements_carry_the_line_of_their_start_tag() {
        let text = "<Root>\n  <A id=\"1\">\n    <B>x</B>\n  </A>\n\n  <A id=\"2\"/>\n  <C Type=\"06\">mail@example.org</C>\n</Root>\n";
        let lines: Vec<(String, u64)> = all(text)
            .into_iter()
            .map(|e| e.map(|e| (e.name, e.line)).unwrap())
            .collect();
        assert_eq!(lines, [("A".into(), 2), ("A".into(), 6), ("C".into(), 7)]);
        let c = all(text).pop().unwrap().unwrap();
        assert_eq!(c.value["#text"], "mail@example.org");
        assert_eq!(c.value["@Type"], "06");
    }

    #[test]
    fn malformed_xml_names_its_line_and_stops_the_file() {
        let found = all("<Root>\n<A>\n</B>\n<A/>\n</Root>");
        assert_eq!(found.len(), 1, "nothing after the error is trusted");
        let error = found[0].as_ref().unwrap_err();
        assert!(
            error.starts_with("line 2:") || error.starts_with("line 3:"),
            "{error}"
        );
    }

    #[test]
    fn a_root_object_is_yielded_whole_with_its_namespace() {
        let mut reader =
            from_bytes(b"<Student RefId=\"s\" xmlns=\"urn:x\"><Name>A</Name></Student>".to_vec())
                .with_root_objects(&["Student"]);
        let student = reader.next_element().unwrap().unwrap();
        assert_eq!(student.value["@RefId"], "s");
        assert!(
            student.value.get("@xmlns").is_none(),
            "declarations are not data"
        );
        assert_eq!(reader.root(), Some(("Student", Some("urn:x"))));
    }
}
