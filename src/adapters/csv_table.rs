//! Tolerant CSV tables: the reading every CSV adapter shares.
//!
//! Real SIS exports are messy. A table is read as bytes (`csv::ByteRecord`) and each field decoded on its
//! own, so one Windows-1252 name does not take the file down. What is tolerated is reported as a quirk:
//! a UTF-8 BOM, CRLF line ends (handled by `csv`), header case and surrounding spaces, known header
//! misspellings, blank trailing header cells, rows shorter than the header, Windows-1252 text.
//! What cannot be read (a row longer than the header, text that is not in the declared encoding, a missing
//! required column) is an error that names the file, the line and the field.

use super::{Position, QuirkLog, RecordError};
use rustc_hash::{FxHashMap, FxHashSet};
use std::borrow::Cow;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

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

pub use crate::record::TextEncoding;

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
        use crate::members::Members;
        self.values.member(column).and_then(|v| v.as_str())
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

/// Bytes read at a time when one row is read at its offset (rows are longer than that are read in pieces).
const RANDOM_ACCESS_BUFFER: usize = 1024;

/// An opened CSV table with its header resolved.
pub struct CsvTable {
    file: String,
    path: PathBuf,
    columns: Vec<String>,
    encoding: TextEncoding,
    quirks: QuirkLog,
    line_fix: u64,
    /// Later header cells that repeat an earlier column (`givenName`, `GivenName`): (index, index of the first).
    duplicates: Vec<(usize, usize)>,
    /// When no column repeats another: every named column in order, each holding null, the start of a row.
    shape: Option<serde_json::Map<String, serde_json::Value>>,
    /// What reading rows at their offset keeps, one slot per reading thread (a thread's slot is
    /// [`thread_slot`] of [`SLOTS`]): a long run's threads read a referral's roster rows at once (the
    /// source's completion), and each locks a slot, on a cache line, of its own.
    slots: Box<[Slot]>,
}

/// Slots of a table's random access: more than the threads a run maps on, at most a few threads share one.
const SLOTS: usize = 8;

/// One thread's readers and recent rows, alone on its cache lines (the lock taken each read is not moved
/// between the cores' caches by the other threads' reads).
#[repr(align(128))]
#[derive(Default)]
struct Slot {
    /// Readers for rows read at their offset, each taken for one read.
    readers: Mutex<Vec<csv::Reader<File>>>,
    /// Rows read more than once (held for a lookup or an insert only). Which thread reads a row first
    /// changes nothing noted: the row's quirks were noted when it was indexed.
    recent: Mutex<RecentRows>,
}

/// This thread's number, handed out in the order threads first read a table at an offset (its slot is the
/// number modulo the slots).
fn thread_slot() -> usize {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    thread_local! {
        static SLOT: usize = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    SLOT.with(|slot| *slot)
}

fn new_slots() -> Box<[Slot]> {
    (0..SLOTS).map(|_| Slot::default()).collect()
}

/// Rows read at their offset more than once, kept decoded: a referral export names the same school and staff
/// member in many rows, and each read at an offset is a seek, a read and a decode. A row is kept the second
/// time it is read (rows read once, each student's, cost only their offset); both tables are bounded. A
/// row's quirks were noted at its first read (the quirk log counts a line once anyway).
#[derive(Default)]
struct RecentRows {
    seen_once: FxHashSet<u64>,
    rows: FxHashMap<u64, Row>,
}

/// Offsets of rows read once, at most (then forgotten, and counting starts again).
const MAX_SEEN_OFFSETS: usize = 16_384;

/// Rows kept decoded, at most (then no more are kept): the staff members and schools a referral export
/// names again and again are among the first rows read twice. A slot keeps them until it is full, so a run
/// whose students come back (a second referral) filled it with students' rows: 1,024 a slot took 5 MB more
/// in a two-thread run of 100,000 referrals on a roster of 20,000 than in one of 20,000 (BENCHMARKS.md,
/// issue 13, twenty-fourth round).
const MAX_RECENT_ROWS: usize = 256;

impl RecentRows {
    fn get(&self, byte: u64) -> Option<Row> {
        self.rows.get(&byte).cloned()
    }

    fn read(&mut self, byte: u64, row: &Row) {
        if !self.seen_once.contains(&byte) {
            if self.seen_once.len() >= MAX_SEEN_OFFSETS {
                self.seen_once.clear();
            }
            self.seen_once.insert(byte);
        } else if self.rows.len() < MAX_RECENT_ROWS {
            self.rows.insert(byte, row.clone());
        }
    }
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
        refuse_utf16(path, &file)?;
        note_bom(path, &file, quirks);
        let mut reader = reader_for(path, &file)?;
        let header = reader.byte_headers().map_err(|err| TableError::Header {
            file: file.clone(),
            message: err.to_string(),
        })?;
        let mut columns = resolve_header(header, spec, &file, quirks);
        let duplicates = duplicate_columns(&mut columns, header, &file, quirks);
        check_required(&columns, spec, &file)?;
        let shape = duplicates.is_empty().then(|| {
            columns
                .iter()
                .filter(|column| !column.is_empty())
                .map(|column| (column.clone(), serde_json::Value::Null))
                .collect()
        });
        Ok(Self {
            file,
            path: path.to_owned(),
            columns,
            encoding,
            quirks: quirks.clone(),
            line_fix: u64::from(uses_crlf(path)),
            duplicates,
            shape,
            slots: new_slots(),
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
            duplicates: self.duplicates.clone(),
            shape: self.shape.clone(),
            slots: new_slots(),
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
    ///
    /// A structural error never swallows the rest of the file: a row whose quote is never closed (the
    /// quoted field would run to the end of the file), or a row spanning several lines that ends up with
    /// more fields than the header (a stray quote paired with a later row's), is rejected at the line it
    /// starts on and reading resumes on the next line.
    pub fn rows(
        &self,
    ) -> Result<impl Iterator<Item = Result<(RowOffset, Row), RecordError>> + '_, TableError> {
        self.rows_keeping(None)
    }

    /// The rows as [`rows`](Self::rows) reads them (every field checked: encoding, control characters,
    /// duplicate columns, and the same quirks noted), each holding only the columns in `keep`: an index
    /// pass that needs a user's id and role does not copy the rest of the row.
    pub fn rows_keeping(
        &self,
        keep: Option<&'static [&'static str]>,
    ) -> Result<impl Iterator<Item = Result<(RowOffset, Row), RecordError>> + '_, TableError> {
        let mut reader = reader_for(&self.path, &self.file)?;
        reader.byte_headers().map_err(|err| TableError::Header {
            file: self.file.clone(),
            message: err.to_string(),
        })?;
        let mut record = csv::ByteRecord::new();
        let mut raw = RawReader::default();
        let mut count = 0u64;
        // Which columns are kept, by position: asked once, not for every field of every row.
        let kept: Option<Vec<bool>> = keep.map(|keep| {
            let positions = 0..self.columns.len();
            positions
                .map(|at| keep.contains(&self.column_name(at)))
                .collect()
        });
        Ok(std::iter::from_fn(move || {
            let start = reader.position().clone();
            let read = reader.read_byte_record(&mut record);
            if !matches!(read, Ok(false)) {
                count += 1;
            }
            match read {
                Ok(false) => {
                    self.quirks.rows_read(&self.file, count);
                    None
                }
                Ok(true) => {
                    let pos = record.position().cloned().unwrap_or(start);
                    let line = pos.line() + self.line_fix;
                    if record.iter().any(|field| field.contains(&b'\n')) {
                        let end = reader.position().byte();
                        if let Some((why, resume)) = raw.structural_error(
                            &self.path,
                            (pos.byte(), end),
                            record.len() > self.columns.len(),
                            self.columns.len(),
                        ) {
                            // A CRLF file's records start at the `\n` before them (see `uses_crlf`).
                            let resume = resume + 1 - self.line_fix;
                            let mut next = csv::Position::new();
                            next.set_byte(resume)
                                .set_line(pos.line() + 1)
                                .set_record(pos.record() + 1);
                            if let Err(err) = reader.seek(next) {
                                return Some(Err(self.csv_error(err, line)));
                            }
                            return Some(Err(RecordError::new(
                                Position::line(&self.file, line),
                                format!(
                                    "malformed CSV: {why}; the row is rejected and reading resumes on line {} (expected a closing quote before the end of the row)",
                                    line + 1
                                ),
                            )));
                        }
                    }
                    let offset = RowOffset {
                        byte: pos.byte(),
                        line,
                        record: pos.record(),
                    };
                    Some(
                        self.decode(&record, line, kept.as_deref())
                            .map(|row| (offset, row)),
                    )
                }
                Err(err) => Some(Err(self.csv_error(err, start.line() + self.line_fix))),
            }
        }))
    }

    /// Read the row that starts at `offset` again.
    pub fn read_at(&self, offset: RowOffset) -> Result<Row, RecordError> {
        let slot = self.slot();
        if let Some(row) = locked(&slot.recent).get(offset.byte) {
            return Ok(row);
        }
        let row = self.read_from_file(slot, offset)?;
        locked(&slot.recent).read(offset.byte, &row);
        Ok(row)
    }

    /// This thread's slot.
    fn slot(&self) -> &Slot {
        &self.slots[thread_slot() % self.slots.len()]
    }

    fn read_from_file(&self, slot: &Slot, offset: RowOffset) -> Result<Row, RecordError> {
        let pooled = locked(&slot.readers).pop();
        let mut reader = match pooled {
            Some(reader) => reader,
            // Each read seeks first, which empties the buffer: a buffer of a few rows (not csv's 8 KiB)
            // is refilled for each row read.
            None => csv::ReaderBuilder::new()
                .flexible(true)
                .has_headers(false)
                .buffer_capacity(RANDOM_ACCESS_BUFFER)
                .from_path(&self.path)
                .map_err(|err| self.csv_error(err, offset.line))?,
        };
        let mut pos = csv::Position::new();
        pos.set_byte(offset.byte)
            .set_line(offset.line)
            .set_record(offset.record);
        let mut record = csv::ByteRecord::new();
        let read = (reader.seek(pos)).and_then(|()| reader.read_byte_record(&mut record));
        // A reader that failed is dropped: the next read opens the file again.
        if read.is_ok() {
            locked(&slot.readers).push(reader);
        }
        match read {
            Ok(true) => self.decode(&record, offset.line, None),
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

    /// A row's fields by column name; with `kept` (by column position), only the kept columns' (every
    /// field is checked either way).
    fn decode(
        &self,
        record: &csv::ByteRecord,
        line: u64,
        kept: Option<&[bool]>,
    ) -> Result<Row, RecordError> {
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
        for &(later, first) in &self.duplicates {
            let (a, b) = (
                record
                    .get(first)
                    .map(<[u8]>::trim_ascii)
                    .unwrap_or_default(),
                record
                    .get(later)
                    .map(<[u8]>::trim_ascii)
                    .unwrap_or_default(),
            );
            if !a.is_empty() && !b.is_empty() && a != b {
                return Err(RecordError::new(
                    Position::line(&self.file, line).with_field(&self.columns[first]),
                    format!(
                        "the header gives column '{}' twice (columns {} and {}) and this row holds two different values in them (expected one value per column)",
                        self.columns[first],
                        first + 1,
                        later + 1
                    ),
                ));
            }
        }
        if let (Some(shape), None) = (&self.shape, kept) {
            return self.decode_into_shape(shape, record, line);
        }
        let mut values = serde_json::Map::new();
        for (index, raw) in record.iter().enumerate().take(self.columns.len()) {
            let column = self.column_name(index);
            // An empty field adds nothing; a blank one does not hide the first of two same-named columns.
            if column.is_empty()
                || raw.is_empty()
                || (raw.trim_ascii().is_empty() && values.contains_key(column))
            {
                continue;
            }
            let text = self.field_text(raw, line, column)?;
            let trimmed = crate::text::trim(&text);
            let is_kept = |kept: &[bool]| kept.get(index).copied().unwrap_or(false);
            if !trimmed.is_empty() && kept.is_none_or(is_kept) {
                values.insert(column.to_owned(), trimmed.into());
            }
        }
        Ok(Row { line, values })
    }

    /// The name a column's fields are read under: its own, or for a column that repeats an earlier one,
    /// the earlier one's (empty for a column without a name).
    fn column_name(&self, at: usize) -> &str {
        let at = match self.duplicates.iter().find(|(later, _)| *later == at) {
            Some(&(_, first)) => first,
            None => at,
        };
        self.columns.get(at).map_or("", String::as_str)
    }

    /// A row of a table whose columns all have names of their own, every column kept: the table's
    /// [`shape`](CsvTable::shape) copied and filled in place, its empty fields then taken out (a copy and a
    /// removal keep each name's hash; inserting computes it, for every field of every row).
    fn decode_into_shape(
        &self,
        shape: &serde_json::Map<String, serde_json::Value>,
        record: &csv::ByteRecord,
        line: u64,
    ) -> Result<Row, RecordError> {
        let mut values = shape.clone();
        let mut slots = values.values_mut();
        for (column, raw) in self.columns.iter().zip(record.iter()) {
            if column.is_empty() {
                continue;
            }
            let Some(slot) = slots.next() else {
                break;
            };
            if raw.is_empty() {
                continue;
            }
            let text = self.field_text(raw, line, column)?;
            let trimmed = crate::text::trim(&text);
            if !trimmed.is_empty() {
                *slot = trimmed.into();
            }
        }
        values.retain(|_, value| !value.is_null());
        Ok(Row { line, values })
    }

    /// A field's text as decoded; an error for bytes that are not text.
    fn field_text<'r>(
        &self,
        raw: &'r [u8],
        line: u64,
        column: &str,
    ) -> Result<Cow<'r, str>, RecordError> {
        let text = self.decode_text(raw, line, column)?;
        if let Some(at) = control_character(&text) {
            return Err(RecordError::new(
                Position::line(&self.file, line).with_field(column),
                format!(
                    "control character U+{:04X} at character {} of the field (expected text; a NUL or other control character cannot be carried in FHIR)",
                    u32::from(text.chars().nth(at).unwrap_or_default()),
                    at + 1
                ),
            ));
        }
        Ok(text)
    }

    fn decode_text<'r>(
        &self,
        raw: &'r [u8],
        line: u64,
        column: &str,
    ) -> Result<Cow<'r, str>, RecordError> {
        if self.encoding == TextEncoding::Windows1252 {
            return Ok(encoding_rs::WINDOWS_1252.decode_without_bom_handling(raw).0);
        }
        match std::str::from_utf8(raw) {
            Ok(text) => Ok(Cow::Borrowed(text)),
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
                Ok(text)
            }
        }
    }
}

/// The character position of the first control character other than tab, LF and CR (all-ASCII text,
/// nearly every field, checked as bytes).
fn control_character(text: &str) -> Option<usize> {
    let refused = |c: char| c.is_control() && !matches!(c, '\t' | '\n' | '\r');
    if crate::text::is_printable_ascii(text) {
        return None;
    }
    if text.is_ascii() {
        return text.bytes().position(|b| refused(char::from(b)));
    }
    text.chars().position(refused)
}

/// Reads raw bytes of a table to tell a multi-line quoted value from a quote that is never closed.
#[derive(Default)]
struct RawReader {
    file: Option<File>,
    len: u64,
}

impl RawReader {
    /// Why the record spanning `start..end` is structurally broken, and the byte of the `\n` ending its
    /// first line; `None` when it is a well-formed multi-line value.
    fn structural_error(
        &mut self,
        path: &Path,
        (start, end): (u64, u64),
        too_long: bool,
        columns: usize,
    ) -> Option<(&'static str, u64)> {
        use std::io::{Read, Seek, SeekFrom};
        if self.file.is_none() {
            let file = File::open(path).ok()?;
            self.len = file.metadata().ok()?.len();
            self.file = Some(file);
        }
        let file = self.file.as_mut()?;
        file.seek(SeekFrom::Start(start)).ok()?;
        let mut span = Vec::new();
        file.take(end.saturating_sub(start))
            .read_to_end(&mut span)
            .ok()?;
        let quotes = span.iter().filter(|&&b| b == b'"').count();
        let why = if end >= self.len && quotes % 2 == 1 {
            "a quote opened on this line is never closed (the value would run to the end of the file)"
        } else if too_long {
            "a quoted value runs over several lines and the row then has more fields than the header (is a quote missing or doubled?)"
        } else if swallows_rows(&span, columns) {
            "a quote opened on this line is closed only on a later line, and the lines between hold rows of their own (the value would swallow them)"
        } else {
            return None;
        };
        // With CRLF line ends `csv` starts a record at the `\n` ending the line before it.
        let lead = span
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        let newline = lead + span[lead..].iter().position(|&b| b == b'\n')?;
        Some((why, start + newline as u64))
    }
}

/// The fewest columns for which a line is told to be a row by its commas (fewer would mistake text).
const ROW_SHAPE_COLUMNS: usize = 5;

/// Whether a quoted value spanning `span` runs over lines that are rows of their own: a line after the first
/// that holds as many commas as a row has separators. (A legitimate multi-line value's lines are text; its last
/// line holds only the fields after it, so the value would have to be in the first column to look like a row.)
fn swallows_rows(span: &[u8], columns: usize) -> bool {
    if columns < ROW_SHAPE_COLUMNS {
        return false;
    }
    span.split(|&b| b == b'\n')
        .skip(1)
        .any(|line| line.iter().filter(|&&b| b == b',').count() + 1 >= columns)
}

/// Header cells that name a column already given (in any case or spelling): the later one is not a column of
/// its own; rows whose two cells disagree are rejected. Reported as a quirk.
fn duplicate_columns(
    columns: &mut [String],
    header: &csv::ByteRecord,
    file: &str,
    quirks: &QuirkLog,
) -> Vec<(usize, usize)> {
    let mut duplicates = Vec::new();
    for later in 0..columns.len() {
        if columns[later].is_empty() {
            continue;
        }
        if let Some(first) = (0..later).find(|&i| columns[i] == columns[later]) {
            quirks.note(
                format!(
                    "{file}: header '{}' (column {}) repeats column '{}' (column {}); rows must hold the same value in both",
                    String::from_utf8_lossy(header.get(later).unwrap_or_default()).trim(),
                    later + 1,
                    columns[first],
                    first + 1
                ),
                Some(1),
            );
            duplicates.push((later, first));
        }
    }
    for &(later, _) in &duplicates {
        columns[later].clear();
    }
    duplicates
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

/// A UTF-16 file (Excel's "Unicode text") is refused by name, not read as a header that lacks every column.
fn refuse_utf16(path: &Path, file: &str) -> Result<(), TableError> {
    use std::io::Read;
    let mut first = [0u8; 2];
    let read = File::open(path).and_then(|mut f| f.read_exact(&mut first));
    if read.is_ok() && utf16_bom(&first).is_some() {
        return Err(TableError::Header {
            file: file.to_owned(),
            message: format!(
                "the file is UTF-16 text (byte order mark {:02X} {:02X}); expected UTF-8 or Windows-1252: save it as \"CSV UTF-8\"",
                first[0], first[1]
            ),
        });
    }
    Ok(())
}

/// When text starts with a UTF-16 byte order mark: why it is refused, by name (a JSON or XML reader would
/// otherwise report a confusing syntax error at its first character).
pub fn utf16_bom(start: &[u8]) -> Option<String> {
    match start.get(..2) {
        Some([a @ 0xFF, b @ 0xFE]) | Some([a @ 0xFE, b @ 0xFF]) => Some(format!(
            "the file is UTF-16 text (byte order mark {a:02X} {b:02X}); expected UTF-8: save it as UTF-8"
        )),
        _ => None,
    }
}

/// [`utf16_bom`] for the start of a file on disk.
pub fn utf16_file(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut first = [0u8; 2];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut first))
        .ok()?;
    utf16_bom(&first)
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

/// A table's cache or reader, locked (a panic while it was held leaves nothing half-written that matters:
/// the cache holds whole rows, the reader is positioned again before each read).
fn locked<T>(slot: &Mutex<T>) -> MutexGuard<'_, T> {
    slot.lock().unwrap_or_else(PoisonError::into_inner)
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

    /// A row made from the table's shape (every column kept) is the row made by inserting its fields, in
    /// the same order: empty, blank, missing and extra-spaced fields, text to decode, unnamed columns.
    #[test]
    fn a_row_from_the_shape_is_the_row_from_inserts() {
        let bytes: &[u8] = b"sourcedId,givenName,,familyName,email\n\
            1,Ana,x,Ng,a@x\n2,,y, ,\n 3 ,Jos\xe9\n4\n,,,,\n5,\t Eve\t,,Li,\n";
        let (_dir, table, _quirks) = table(bytes, TextEncoding::Auto);
        assert!(table.shape.is_some());
        const ALL: &[&str] = &["sourcedId", "givenName", "familyName", "email"];
        let read = |keep| -> Vec<(u64, Vec<(String, String)>)> {
            table
                .rows_keeping(keep)
                .unwrap()
                .map(|row| {
                    let (_, row) = row.unwrap();
                    let values = row.values.iter().map(|(k, v)| (k.clone(), v.to_string()));
                    (row.line, values.collect())
                })
                .collect()
        };
        let shaped = read(None);
        assert_eq!(shaped, read(Some(ALL)));
        assert_eq!(shaped.len(), 6);
        let third: Vec<(&str, &str)> = shaped[2]
            .1
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            third,
            [("sourcedId", "\"3\""), ("givenName", "\"Jos\u{e9}\"")]
        );
    }

    #[test]
    fn a_row_read_again_at_its_offset_is_the_same_row_kept_or_not() {
        let (_dir, table, quirks) = table(
            b"sourcedId,givenName\n1,Ana\n2,Jos\xe9\n3\n",
            TextEncoding::Auto,
        );
        let rows: Vec<(RowOffset, Row)> = table.rows().unwrap().map(Result::unwrap).collect();
        let notes_after_reading = quirks.snapshot();
        // Read each row again four times: the first two from the file, then kept.
        for _ in 0..4 {
            for (offset, row) in &rows {
                let again = table.read_at(*offset).unwrap();
                assert_eq!((again.line, &again.values), (row.line, &row.values));
            }
        }
        assert_eq!(locked(&table.slot().recent).rows.len(), rows.len());
        let notes = quirks.snapshot();
        assert_eq!(notes.len(), notes_after_reading.len());
        assert!(
            notes
                .iter()
                .zip(&notes_after_reading)
                .all(|(a, b)| a.message == b.message
                    && a.count == b.count
                    && a.first_line == b.first_line)
        );
    }

    #[test]
    fn rows_keeping_some_columns_check_every_field_as_rows_do() {
        let bytes: &[u8] =
            b"sourcedId,givenName\n1,Ana\n2,Jos\xe9\n3,Bad\x01\n,Nobody\n4\n5,Eve,extra\n";
        let read = |keep| {
            let (_dir, table, quirks) = table(bytes, TextEncoding::Auto);
            type Row = (u64, serde_json::Map<String, serde_json::Value>);
            let rows: Vec<Result<Row, String>> = table
                .rows_keeping(keep)
                .unwrap()
                .map(|r| {
                    r.map(|(_, row)| (row.line, row.values))
                        .map_err(|e| e.to_string())
                })
                .collect();
            let notes: Vec<(String, u64, Option<u64>)> = quirks
                .snapshot()
                .into_iter()
                .map(|n| (n.message, n.count, n.first_line))
                .collect();
            (rows, notes)
        };
        let (all, all_notes) = read(None);
        let (kept, kept_notes) = read(Some(&["sourcedId"]));
        assert_eq!(all_notes, kept_notes, "the same quirks noted");
        assert!(
            all_notes.iter().any(|n| n.0.contains("Windows-1252")),
            "{all_notes:?}"
        );
        assert_eq!(all.len(), kept.len());
        for (whole, some) in all.iter().zip(&kept) {
            match (whole, some) {
                (Ok((line, values)), Ok((kept_line, kept_values))) => {
                    assert_eq!(line, kept_line);
                    let mut expected = values.clone();
                    expected.retain(|column, _| column == "sourcedId");
                    assert_eq!(&expected, kept_values, "line {line}");
                }
                (Err(error), Err(kept_error)) => assert_eq!(error, kept_error),
                other => panic!("rows and rows_keeping disagree: {other:?}"),
            }
        }
        assert!(
            all.iter().any(Result::is_err),
            "a control character rejects its row either way"
        );
        assert!(
            kept.iter().flatten().any(|(_, values)| values.is_empty()),
            "a row without sourcedId"
        );
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

    fn lines(table: &CsvTable) -> Vec<Result<(u64, Option<String>), String>> {
        table
            .rows()
            .unwrap()
            .map(|r| {
                r.map(|(_, row)| (row.line, row.get("givenName").map(str::to_owned)))
                    .map_err(|e| e.to_string())
            })
            .collect()
    }

    #[test]
    fn an_unterminated_quote_rejects_its_row_and_reading_resumes_on_the_next_line() {
        for (eol, last, why) in [
            ("\n", "3,Cy", "a quote opened on this line is never closed"),
            (
                "\r\n",
                "3,Cy",
                "a quote opened on this line is never closed",
            ),
            (
                "\n",
                "3,\"Cy\"",
                "a quote opened on this line is never closed",
            ),
            (
                "\r\n",
                "3,\"Cy\",x",
                "the row then has more fields than the header",
            ),
        ] {
            let text = ["sourcedId,givenName", "1,\"Ana", "2,Ben", last, ""].join(eol);
            let (_dir, table, _) = table(text.as_bytes(), TextEncoding::Auto);
            let rows = lines(&table);
            assert_eq!(rows.len(), 3, "{rows:?}");
            let err = rows[0].as_ref().unwrap_err();
            assert!(
                err.starts_with("users.csv line 2: malformed CSV: ") && err.contains(why),
                "{err}"
            );
            assert_eq!(rows[1], Ok((3, Some("Ben".into()))));
            if last.ends_with(",x") {
                assert!(rows[2].as_ref().unwrap_err().contains("line 4"));
            } else {
                assert_eq!(rows[2], Ok((4, Some("Cy".into()))));
            }
        }
    }

    #[test]
    fn a_stray_quote_paired_with_a_later_row_rejects_only_its_row() {
        let text = b"sourcedId,givenName\n1,\"Ana\n2,\"Ben\",x,y\n3,Cy\n";
        let (_dir, table, _) = table(text, TextEncoding::Auto);
        let rows = lines(&table);
        assert!(rows[0].as_ref().unwrap_err().contains("line 2"), "{rows:?}");
        assert!(rows[1].as_ref().unwrap_err().contains("line 3"), "{rows:?}");
        assert_eq!(rows[2], Ok((4, Some("Cy".into()))));
        assert_eq!(rows.len(), 3);
    }

    #[test]
    fn two_unterminated_quotes_never_swallow_the_rows_between() {
        let header = "sourcedId,status,givenName,familyName,email";
        let text = [
            header,
            "1,active,\"Ana,Ortiz,a@x",
            "2,active,Ben,Cole,b@x",
            "3,active,Cy,\"Dorn,c@x",
            "4,active,Di,Eng,d@x",
            "",
        ]
        .join("\n");
        let (_dir, swallowing, _) = table(text.as_bytes(), TextEncoding::Auto);
        let rows = lines(&swallowing);
        assert!(
            rows[0].as_ref().unwrap_err().contains("line 2")
                && rows[0].as_ref().unwrap_err().contains("swallow"),
            "{rows:?}"
        );
        assert_eq!(rows[1], Ok((3, Some("Ben".into()))));
        assert!(rows[2].as_ref().unwrap_err().contains("line 4"), "{rows:?}");
        assert_eq!(rows[3], Ok((5, Some("Di".into()))));
        assert_eq!(rows.len(), 4);
        // A value over several lines that are text, not rows, is one row.
        let text = format!(
            "{header}\n1,active,\"Ana\nMaria, called Mia\",Ortiz,a@x\n2,active,Ben,Cole,b@x\n"
        );
        let (_dir2, multi_line, _) = table(text.as_bytes(), TextEncoding::Auto);
        let rows = lines(&multi_line);
        assert_eq!(rows[0], Ok((2, Some("Ana\nMaria, called Mia".into()))));
        assert_eq!(rows.len(), 2);
    }

    #[test]
    fn a_quoted_value_over_several_lines_is_one_row() {
        let text = b"sourcedId,givenName\n1,\"Ana\nMaria\"\n2,Ben\n";
        let (_dir, table, _) = table(text, TextEncoding::Auto);
        let rows = lines(&table);
        assert_eq!(
            rows,
            vec![
                Ok((2, Some("Ana\nMaria".into()))),
                Ok((4, Some("Ben".into())))
            ]
        );
    }

    #[test]
    fn control_characters_reject_the_row_with_its_field() {
        let (_dir, table, _) = table(
            b"sourcedId,givenName\n1,A\x00na\n2,Ben\n",
            TextEncoding::Auto,
        );
        let rows = lines(&table);
        let err = rows[0].as_ref().unwrap_err();
        assert!(
            err.contains("line 2, field givenName") && err.contains("U+0000"),
            "{err}"
        );
        assert!(rows[1].is_ok());
    }

    #[test]
    fn a_column_given_twice_is_reported_and_conflicting_rows_rejected() {
        let (_dir, table, quirks) = table(
            b"sourcedId,givenName,GivenName\n1,Ana,\n2,,Ben\n3,Cy,Cy\n4,Di,Do\n",
            TextEncoding::Auto,
        );
        let rows = lines(&table);
        assert_eq!(rows[0], Ok((2, Some("Ana".into()))));
        assert_eq!(rows[1], Ok((3, Some("Ben".into()))));
        assert_eq!(rows[2], Ok((4, Some("Cy".into()))));
        let err = rows[3].as_ref().unwrap_err();
        assert!(
            err.contains("line 5, field givenName") && err.contains("twice"),
            "{err}"
        );
        assert!(
            quirks.snapshot().iter().any(|q| q
                .message
                .contains("header 'GivenName' (column 3) repeats column 'givenName' (column 2)")),
            "{:?}",
            quirks.snapshot()
        );
    }

    #[test]
    fn a_utf16_file_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.csv");
        let mut bytes = vec![0xFF, 0xFE];
        for unit in "sourcedId,givenName\n1,Ana\n".encode_utf16() {
            bytes.extend(unit.to_le_bytes());
        }
        std::fs::write(&path, bytes).unwrap();
        let err = CsvTable::open(&path, &SPEC, TextEncoding::Auto, &QuirkLog::default())
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.starts_with(
                "users.csv line 1: cannot read the header row: the file is UTF-16 text"
            ),
            "{err}"
        );
    }
}
