//! Tolerated quirks: things a real export does that the standard does not allow but onedoor reads anyway
//! (a BOM, a misspelt header, a non-ISO date, Windows-1252 text). Each is reported, never hidden.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// One kind of tolerated quirk, with how often it was seen and where first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Quirk {
    /// What was tolerated, without personal data (for example `users.csv: header 'prefferedGivenName' read as
    /// 'preferredGivenName'`).
    pub message: String,
    /// How many times.
    pub count: u64,
    /// The first line where it was seen, when it concerns rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_line: Option<u64>,
}

/// A source row that was read and deliberately not converted, with the reason (a deletion, a user who is
/// not a student, a row hanging off a deleted record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// The file.
    pub file: String,
    /// The row's line.
    pub line: u64,
    /// Why it was skipped.
    pub reason: String,
}

/// The lines skipped, per file.
pub type SkippedLines = BTreeMap<String, std::collections::BTreeSet<u64>>;

/// How many skipped rows are kept in full (all are counted).
const KEPT_SKIPS: usize = 10_000;

#[derive(Debug, Default)]
struct Ledger {
    skipped: Vec<Skipped>,
    skipped_lines: SkippedLines,
    rows_read: BTreeMap<String, u64>,
}

/// A shared, thread-safe collection of quirks, deduplicated by message; also the ledger of skipped rows
/// and of how many rows each table holds, for the summary's reconciliation.
#[derive(Debug, Clone, Default)]
pub struct QuirkLog {
    inner: Arc<Mutex<BTreeMap<String, Quirk>>>,
    ledger: Arc<Mutex<Ledger>>,
}

impl QuirkLog {
    /// Record a quirk (messages must not contain personal data: name the file, column and kind of quirk).
    pub fn note(&self, message: impl Into<String>, line: Option<u64>) {
        let message = message.into();
        let mut map = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        map.entry(message.clone())
            .and_modify(|q| q.count += 1)
            .or_insert(Quirk {
                message,
                count: 1,
                first_line: line,
            });
    }

    /// A row read and not converted, on purpose: counted in its file's reconciliation and listed in the
    /// report (the reason must not contain personal data).
    pub fn skip(&self, file: &str, line: u64, reason: impl Into<String>) {
        let mut ledger = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
        if !ledger
            .skipped_lines
            .entry(file.to_owned())
            .or_default()
            .insert(line)
        {
            return;
        }
        if ledger.skipped.len() < KEPT_SKIPS {
            ledger.skipped.push(Skipped {
                file: file.to_owned(),
                line,
                reason: reason.into(),
            });
        }
    }

    /// A complete pass over a table read `rows` data rows (every pass reads the same rows).
    pub fn rows_read(&self, file: &str, rows: u64) {
        let mut ledger = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
        ledger.rows_read.insert(file.to_owned(), rows);
    }

    /// The skipped rows kept, the lines skipped per file, and the rows each fully read table holds.
    pub fn ledger(&self) -> (Vec<Skipped>, SkippedLines, BTreeMap<String, u64>) {
        let ledger = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
        (
            ledger.skipped.clone(),
            ledger.skipped_lines.clone(),
            ledger.rows_read.clone(),
        )
    }

    /// Every quirk seen so far, sorted by message.
    pub fn snapshot(&self) -> Vec<Quirk> {
        let map = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        map.values().cloned().collect()
    }
}
