//! Tolerant CSV tables: the reading every CSV adapter shares.
//!
//! Real SIS exports are messy. A table is read as bytes (`csv::ByteRecord`) and each field decoded on its
//! own, so one Windows-1252 name does not take the file down. What is tolerated is reported as a quirk:
//! a UTF-8 BOM, CRLF line ends (handled by `csv`), header case and surrounding spaces, known header
//! misspellings, blank trailing header cells, rows shorter than the header, Windows-1252 text.
//! What cannot be read (a row longer than the header, text that is not in the declared encoding, a missing
//! required column) is an error that names the file, the line and the field.

use super::{Position, QuirkLog, RecordError};
use serde::Deserialize;
use std::cell::RefCell;
use std::fs::File;
use std::path::{Path, PathBuf};

/// What a table is expected to hold.
#[derive(Debug, Clone, Copy)]
pub struct TableSpec {
    /// The file name as the standard spells it (`users.csv`).
    pub file: &'static str,
    /// The columns the standard defines, spelt as the standard spells them.
    pub columns: &'static [&'static str],
    /// Columns without which no row can be read.
    pub required: &'static [&'static str],
    /// Known misspellings seen in real exports, and the column they mean.
    pub aliases: &'static [(&'static str, &'static str)],
}

/// How text fields are decoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TextEncoding {
    /// UTF-8; a field that is not UTF-8 is read as Windows-1252 and reported as a quirk.
    #[default]
    Auto,
    /// UTF-8 only; a field that is not UTF-8 rejects its row.
    Utf8,
    /// Windows-1252 (the encoding Excel on Windows writes).
    Windows1252,
}

/// Why a table cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// The file cannot be opened or read.
    #[error("{file}: cannot read: {source}")]
    Io {
        /// The file.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The header row is unreadable.
    #[error("{file} line 1: cannot read the header row: {message}")]
    Header {
        /// The file.
        file: String,
        /// What went wrong.
        message: String,
    },
    /// Required columns are absent.
    #[error(
        "{file} line 1: missing required column(s) {missing}; expected a header with {expected} (found: {found})"
    )]
    MissingColumns {
        /// The file.
        file: String,
        /// The missing columns.
        missing: String,
        /// The required columns.
        expected: String,
        /// What the header holds.
        found: String,
    },
}

/// One row: its line and its non-empty fields by column name.
#[derive(Debug, Clone)]
pub struct Row {
    /// 1-based line where the row starts (the header is line 1).
    pub line: u64,
    /// Non-empty values by the standard's column name; unknown columns keep their header text.
    pub values: serde_json::Map<String, serde_json::Value>,
}

impl Row {
    /// A field's text, if present and not empty.
    pub fn get(&self, column: &str) -> Option<&str> {
        self.values.get(column).and_then(|v| v.as_str())
    }
}

/// Where a row starts, to read it again later without keeping it in memory.
#[derive(Debug, Clone, Copy)]
pub struct RowOffset {
    byte: u64,
    line: u64,
    record: u64,
}

impl RowOffset {
    /// The line the row starts on.
    pub fn line(&self) -> u64 {
        self.line
    }
}

/// An opened CSV table with its header resolved.
pub struct CsvTable {
    file: String,
    path: PathBuf,
    columns: Vec<String>,
    encoding: TextEncoding,
    quirks: QuirkLog,
    line_fix: u64,
    random_access: RefCell<Option<csv::Reader<File>>>,
}

impl CsvTable {
    /// Open a table, resolve its header against the spec, and report header quirks.
    pub fn open(
        path: &Path,
        spec: &TableSpec,
        encoding: TextEncoding,
        quirks: &QuirkLog,
    ) -> Result<Self, TableError> {
        let file = display_name(path);
        note_bom(path, &file, quirks);
        let mut reader = reader_for(path, &file)?;
        let header = reader.byte_headers().map_err(|err| TableError::Header {
            file: file.clone(),
            message: err.to_string(),
        })?;
        let columns = resolve_header(header, spec, &file, quirks);
        check_required(&columns, spec, &file)?;
        Ok(Self {
            file,
            path: path.to_owned(),
            columns,
            encoding,
            quirks: quirks.clone(),
            line_fix: u64::from(uses_crlf(path)),
            random_access: RefCell::new(None),
        })
    }

    /// Another handle on the same table (its own readers), for reading it while its owner changes.
    pub fn reopen(&self) -> Self {
        Self {
            file: self.file.clone(),
            path: self.path.clone(),
            columns: self.columns.clone(),
            encoding: self.encoding,
            quirks: self.quirks.clone(),
            line_fix: self.line_fix,
            random_access: RefCell::new(None),
        }
    }

    /// The file name used in messages.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The resolved column names, in file order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Stream every row with its offset. A row that cannot be read is an `Err` naming its line.
    pub fn rows(
        &self,
    ) -> Result<impl Iterator<Item = Result<(RowOffset, Row), RecordError>> + '_, TableError> {
        let mut reader = reader_for(&self.path, &self.file)?;
        reader.byte_headers().map_err(|err| TableError::Header {
            file: self.file.clone(),
            message: err.to_string(),
        })?;
        let mut record = csv::ByteRecord::new();
        Ok(std::iter::from_fn(move || {
            let start = reader.position().clone();
            match reader.read_byte_record(&mut record) {
                Ok(false) => None,
                Ok(true) => {
                    let pos = record.position().cloned().unwrap_or(start);
                    let line = pos.line() + self.line_fix;
                    let offset = RowOffset {
                        byte: pos.byte(),
                        line,
                        record: pos.record(),
                    };
                    Some(self.decode(&record, line).map(|row| (offset, row)))
                }
                Err(err) => Some(Err(self.csv_error(err, start.line() + self.line_fix))),
            }
        }))
    }

    /// Read the row that starts at `offset` again.
    pub fn read_at(&self, offset: RowOffset) -> Result<Row, RecordError> {
        let mut slot = self.random_access.borrow_mut();
        if slot.is_none() {
            let reader = csv::ReaderBuilder::new()
                .flexible(true)
                .has_headers(false)
                .from_path(&self.path)
                .map_err(|err| self.csv_error(err, offset.line))?;
            *slot = Some(reader);
        }
        let reader = slot.as_mut().expect("reader was just set");
        let mut pos = csv::Position::new();
        pos.set_byte(offset.byte)
            .set_line(offset.line)
            .set_record(offset.record);
        reader
            .seek(pos)
            .map_err(|err| self.csv_error(err, offset.line))?;
        let mut record = csv::ByteRecord::new();
        match reader.read_byte_record(&mut record) {
            Ok(true) => self.decode(&record, offset.line),
            Ok(false) => Err(RecordError::new(
                Position::line(&self.file, offset.line),
                "row vanished while reading",
            )),
            Err(err) => Err(self.csv_error(err, offset.line)),
        }
    }

    fn csv_error(&self, err: csv::Error, line: u64) -> RecordError {
        let line = err
            .position()
            .map(|p| p.line() + self.line_fix)
            .unwrap_or(line);
        RecordError::new(
            Position::line(&self.file, line),
            format!("malformed CSV: {err}"),
        )
    }

    fn decode(&self, record: &csv::ByteRecord, line: u64) -> Result<Row, RecordError> {
        if record.len() > self.columns.len() {
            return Err(RecordError::new(
                Position::line(&self.file, line),
                format!(
                    "{} fields but the header has {} columns (expected one field per column; is a value with a comma missing its quotes?)",
                    record.len(),
                    self.columns.len()
                ),
            ));
        }
        if record.len() < self.columns.len() {
            self.quirks.note(format!("{}: rows with fewer fields than the header (missing trailing fields read as empty)", self.file), Some(line));
        }
        let mut values = serde_json::Map::new();
        for (column, raw) in self.columns.iter().zip(record.iter()) {
            if column.is_empty() {
                continue;
            }
            let text = self.decode_text(raw, line, column)?;
            let trimmed = text.trim();
            if !trimmed.is_empty() {
                values.insert(
                    column.clone(),
                    serde_json::Value::String(trimmed.to_owned()),
                );
            }
        }
        Ok(Row { line, values })
    }

    fn decode_text(&self, raw: &[u8], line: u64, column: &str) -> Result<String, RecordError> {
        if self.encoding == TextEncoding::Windows1252 {
            return Ok(encoding_rs::WINDOWS_1252
                .decode_without_bom_handling(raw)
                .0
                .into_owned());
        }
        match std::str::from_utf8(raw) {
            Ok(text) => Ok(text.to_owned()),
            Err(err) if self.encoding == TextEncoding::Utf8 => Err(RecordError::new(
                Position::line(&self.file, line).with_field(column),
                format!(
                    "invalid UTF-8 at byte {} of the field (expected UTF-8 text; if the file was saved as Windows-1252, set encoding = \"windows-1252\" in the mapping's [source])",
                    err.valid_up_to()
                ),
            )),
            Err(_) => {
                let (text, _, had_errors) = encoding_rs::WINDOWS_1252.decode(raw);
                if had_errors || text.chars().any(|c| ('\u{80}'..='\u{9f}').contains(&c)) {
                    return Err(RecordError::new(
                        Position::line(&self.file, line).with_field(column),
                        "text is neither UTF-8 nor Windows-1252 (expected UTF-8 text)",
                    ));
                }
                self.quirks.note(
                    format!(
                        "{}: text that is not UTF-8, read as Windows-1252 (column {column})",
                        self.file
                    ),
                    Some(line),
                );
                Ok(text.into_owned())
            }
        }
    }
}

/// The file name shown in messages: the last path component.
pub fn display_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

fn reader_for(path: &Path, file: &str) -> Result<csv::Reader<File>, TableError> {
    let handle = File::open(path).map_err(|source| TableError::Io {
        file: file.to_owned(),
        source,
    })?;
    Ok(csv::ReaderBuilder::new().flexible(true).from_reader(handle))
}

/// Whether the file ends its lines with CRLF. `csv` then reports each record as starting on the line
/// before (its start is the `\n` of the previous CRLF), so displayed lines are shifted back by one.
fn uses_crlf(path: &Path) -> bool {
    use std::io::Read;
    let mut head = Vec::with_capacity(64 * 1024);
    let read = File::open(path).and_then(|f| f.take(64 * 1024).read_to_end(&mut head));
    read.is_ok()
        && head
            .iter()
            .position(|&b| b == b'\n')
            .is_some_and(|at| at > 0 && head[at - 1] == b'\r')
}

/// `csv` drops a UTF-8 byte order mark by itself; look for it so it can be reported.
fn note_bom(path: &Path, file: &str, quirks: &QuirkLog) {
    use std::io::Read;
    let mut first = [0u8; 3];
    let has_bom = File::open(path)
        .and_then(|mut f| f.read_exact(&mut first))
        .is_ok()
        && first == *b"\xEF\xBB\xBF";
    if has_bom {
        quirks.note(
            format!("{file}: UTF-8 byte order mark at the start of the file"),
            Some(1),
        );
    }
}

fn resolve_header(
    header: &csv::ByteRecord,
    spec: &TableSpec,
    file: &str,
    quirks: &QuirkLog,
) -> Vec<String> {
    let mut columns = Vec::with_capacity(header.len());
    for (index, raw) in header.iter().enumerate() {
        let raw = if index == 0 {
            raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw)
        } else {
            raw
        };
        let text = String::from_utf8_lossy(raw);
        columns.push(resolve_column(text.trim(), spec, file, quirks));
    }
    columns
}

fn resolve_column(text: &str, spec: &TableSpec, file: &str, quirks: &QuirkLog) -> String {
    if text.is_empty() {
        quirks.note(format!("{file}: blank header cells ignored"), Some(1));
        return String::new();
    }
    if let Some(exact) = spec.columns.iter().find(|c| **c == text) {
        return (*exact).to_owned();
    }
    if let Some(cased) = spec.columns.iter().find(|c| c.eq_ignore_ascii_case(text)) {
        quirks.note(
            format!("{file}: header '{text}' read as '{cased}' (case differs)"),
            Some(1),
        );
        return (*cased).to_owned();
    }
    if let Some((_, meant)) = spec
        .aliases
        .iter()
        .find(|(alias, _)| alias.eq_ignore_ascii_case(text))
    {
        quirks.note(
            format!("{file}: header '{text}' read as '{meant}' (known misspelling)"),
            Some(1),
        );
        return (*meant).to_owned();
    }
    text.to_owned()
}

fn check_required(columns: &[String], spec: &TableSpec, file: &str) -> Result<(), TableError> {
    let missing: Vec<&str> = spec
        .required
        .iter()
        .copied()
        .filter(|r| !columns.iter().any(|c| c == r))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(TableError::MissingColumns {
        file: file.to_owned(),
        missing: missing.join(", "),
        expected: spec.required.join(", "),
        found: columns
            .iter()
            .filter(|c| !c.is_empty())
            .cloned()
            .collect::<Vec<_>>()
            .join(", "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: TableSpec = TableSpec {
        file: "users.csv",
        columns: &["sourcedId", "givenName"],
        required: &["sourcedId"],
        aliases: &[],
    };

    fn table(bytes: &[u8], encoding: TextEncoding) -> (tempfile::TempDir, CsvTable, QuirkLog) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.csv");
        std::fs::write(&path, bytes).unwrap();
        let quirks = QuirkLog::default();
        let table = CsvTable::open(&path, &SPEC, encoding, &quirks).unwrap();
        (dir, table, quirks)
    }

    #[test]
    fn strict_utf8_rejects_the_row_naming_line_and_field() {
        let (_dir, table, _) = table(
            b"sourcedId,givenName\n1,Ana\n2,Jos\xe9\n",
            TextEncoding::Utf8,
        );
        let rows: Vec<_> = table.rows().unwrap().collect();
        assert!(rows[0].is_ok());
        let err = rows[1].as_ref().unwrap_err();
        assert_eq!(
            err.position,
            Position::line("users.csv", 3).with_field("givenName")
        );
        assert!(
            err.message.contains("invalid UTF-8") && err.message.contains("windows-1252"),
            "{err}"
        );
    }

    #[test]
    fn auto_reads_windows_1252_and_reports_it() {
        let (_dir, table, quirks) = table(b"sourcedId,givenName\n2,Jos\xe9\n", TextEncoding::Auto);
        let (_, row) = table.rows().unwrap().next().unwrap().unwrap();
        assert_eq!(row.get("givenName"), Some("José"));
        assert!(
            quirks.snapshot()[0]
                .message
                .contains("read as Windows-1252")
        );
    }

    #[test]
    fn rows_read_back_by_offset_are_the_same_rows() {
        let (_dir, table, _) = table(
            b"sourcedId,givenName\r\n1,Ana\r\n2,Ben\r\n",
            TextEncoding::Auto,
        );
        let rows: Vec<_> = table.rows().unwrap().map(Result::unwrap).collect();
        assert_eq!(
            rows[1].1.line, 3,
            "CRLF files report the line the row is on"
        );
        let again = table.read_at(rows[1].0).unwrap();
        assert_eq!(again.get("givenName"), Some("Ben"));
    }
}
