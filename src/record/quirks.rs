//! Tolerated quirks: things a real export does that the standard does not allow but onedoor reads anyway
//! (a BOM, a misspelt header, a non-ISO date, Windows-1252 text). Each is reported, never hidden.

use super::RecordError;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// The element, in a format without lines (`[3]` of a JSON array).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub element: Option<String>,
    /// Why it was skipped.
    pub reason: String,
    /// The reconciliation unit (the line, or the element).
    #[serde(skip)]
    pub unit: u64,
}

/// The lines (or elements, see [`super::Position::unit`]) skipped, per file.
pub type SkippedLines = BTreeMap<String, std::collections::BTreeSet<u64>>;

/// How many skipped rows are kept in full (all are counted).
const KEPT_SKIPS: usize = 10_000;

#[derive(Debug, Default)]
struct Ledger {
    skipped: Vec<Skipped>,
    skipped_lines: SkippedLines,
    rows_read: BTreeMap<String, u64>,
    joined_problems: Vec<RecordError>,
    joined_lines: std::collections::BTreeSet<(String, u64, Option<String>)>,
}

/// What the ledger holds at the end of a run.
#[derive(Debug, Clone, Default)]
pub struct LedgerSnapshot {
    /// The skipped rows kept in full.
    pub skipped: Vec<Skipped>,
    /// Every skipped line, per file.
    pub skipped_lines: SkippedLines,
    /// The rows each fully read table holds.
    pub rows_read: BTreeMap<String, u64>,
    /// Rows read by other records that could not be used (a guardian's row, a demographics value), once
    /// per row: each is a rejection of that row, at its line, and never of the record that reads it.
    pub joined_problems: Vec<RecordError>,
}

/// How many (quirk, line) occurrences are remembered to count each once; past this, every note counts.
const KEPT_OCCURRENCES: usize = 1_000_000;

/// The occurrences already counted: a hash of each (message, line), so a row read twice (an index pass
/// and a streaming pass, a client joined to each of its events, a student named by two referrals) counts
/// its quirk once. Hashes only (8 bytes each, at most [`KEPT_OCCURRENCES`]), never the messages.
#[derive(Debug, Default)]
struct Occurrences(std::collections::HashSet<u64>);

impl Occurrences {
    /// Whether this (message, line) is new; notes without a line are always new.
    fn first(&mut self, message: &str, line: Option<u64>) -> bool {
        use std::hash::{Hash, Hasher};
        let Some(line) = line else { return true };
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (message, line).hash(&mut hasher);
        let hash = hasher.finish();
        if self.0.contains(&hash) {
            return false;
        }
        if self.0.len() < KEPT_OCCURRENCES {
            self.0.insert(hash);
        }
        true
    }
}

thread_local! {
    /// Where this thread's calls on every log go while [`QuirkLog::recording_into`] runs.
    static RECORDING_INTO: std::cell::RefCell<Option<Arc<Mutex<Vec<QuirkEvent>>>>> =
        const { std::cell::RefCell::new(None) };
}

/// A shared, thread-safe collection of quirks, deduplicated by message and counted once per occurrence
/// (per line); also the ledger of skipped rows and of how many rows each table holds, for the summary's
/// reconciliation.
#[derive(Debug, Clone, Default)]
pub struct QuirkLog {
    inner: Arc<Mutex<(BTreeMap<String, Quirk>, Occurrences)>>,
    ledger: Arc<Mutex<Ledger>>,
    /// A recorder keeps the calls instead, to be replayed into the run's log in record order (records
    /// mapped on several threads leave the same log as one after the other).
    recorded: Option<Arc<Mutex<Vec<QuirkEvent>>>>,
    /// Calls made on this log (and its clones) so far: whether something was noted meanwhile.
    calls: Arc<AtomicU64>,
}

/// One call made on a recording [`QuirkLog`].
#[derive(Debug, Clone)]
pub enum QuirkEvent {
    /// [`QuirkLog::note`].
    Note(String, Option<u64>),
    /// [`QuirkLog::skip_at`].
    Skip(super::Position, String),
    /// [`QuirkLog::reject_joined`].
    RejectJoined(RecordError),
    /// [`QuirkLog::rows_read`].
    RowsRead(String, u64),
}

impl QuirkLog {
    /// Record a quirk (messages must not contain personal data: name the file, column and kind of quirk).
    /// The same quirk at the same line is one occurrence, however often the row is read.
    pub fn note(&self, message: impl Into<String>, line: Option<u64>) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let Some(message) = self.record(message.into(), |m| QuirkEvent::Note(m, line)) else {
            return;
        };
        let mut guard = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (map, seen) = &mut *guard;
        if !seen.first(&message, line) {
            return;
        }
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
        self.skip_at(&super::Position::line(file, line), reason);
    }

    /// An element read and not converted, on purpose, where it is (a line, or an element of a JSON array).
    pub fn skip_at(&self, position: &super::Position, reason: impl Into<String>) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let Some(reason) = self.record(reason.into(), |r| QuirkEvent::Skip(position.clone(), r))
        else {
            return;
        };
        let Some(unit) = position.unit() else { return };
        let file = &position.file;
        let mut ledger = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
        if !ledger
            .skipped_lines
            .entry(file.to_owned())
            .or_default()
            .insert(unit)
        {
            return;
        }
        if ledger.skipped.len() < KEPT_SKIPS {
            ledger.skipped.push(Skipped {
                file: file.to_owned(),
                line: position.line.unwrap_or_default(),
                element: position
                    .line
                    .is_none()
                    .then(|| position.field.clone())
                    .flatten(),
                reason,
                unit,
            });
        }
    }

    /// A row read by another record that cannot be used (a guardian's row that does not map, a demographics
    /// value that is not valid): rejected at its own line and left out of the record that reads it, which
    /// still converts. Reported once per row and field, however many records read it.
    pub fn reject_joined(&self, error: RecordError) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let Some(error) = self.record(error, QuirkEvent::RejectJoined) else {
            return;
        };
        let mut ledger = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
        let Some(line) = error.position.line else {
            return ledger.joined_problems.push(error);
        };
        let key = (
            error.position.file.to_ascii_lowercase(),
            line,
            error.position.field.clone(),
        );
        if ledger.joined_lines.insert(key) && ledger.joined_problems.len() < KEPT_SKIPS {
            ledger.joined_problems.push(error);
        }
    }

    /// A complete pass over a table read `rows` data rows (every pass reads the same rows).
    pub fn rows_read(&self, file: &str, rows: u64) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if (self.record((), |()| QuirkEvent::RowsRead(file.to_owned(), rows))).is_none() {
            return;
        }
        let mut ledger = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
        ledger.rows_read.insert(file.to_owned(), rows);
    }

    /// How many calls were made on this log and its clones so far (a record's mapping compares it before
    /// and after, to know whether it noted anything).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// A log that records every call instead of applying it (see [`QuirkLog::take_recorded`]).
    pub fn recorder() -> Self {
        Self {
            recorded: Some(Arc::default()),
            ..Self::default()
        }
    }

    /// The calls recorded since the last take (none for a log that is not a recorder).
    pub fn take_recorded(&self) -> Vec<QuirkEvent> {
        self.recorded
            .as_ref()
            .map(|r| std::mem::take(&mut *r.lock().unwrap_or_else(|p| p.into_inner())))
            .unwrap_or_default()
    }

    /// Apply recorded calls, in their order, as if they had been made on this log.
    pub fn replay(&self, events: Vec<QuirkEvent>) {
        for event in events {
            match event {
                QuirkEvent::Note(message, line) => self.note(message, line),
                QuirkEvent::Skip(position, reason) => self.skip_at(&position, reason),
                QuirkEvent::RejectJoined(error) => self.reject_joined(error),
                QuirkEvent::RowsRead(file, rows) => self.rows_read(&file, rows),
            }
        }
    }

    /// Run `work` with every call this thread makes on any log meanwhile recorded by `recorder` (a
    /// [`QuirkLog::recorder`]) instead of applied: a source's
    /// [`Completion`](crate::adapters::source::Completion) notes in the log the source was opened with,
    /// and on a thread mapping for a long run those notes must wait for their record's turn like the
    /// mapping's. Calls on other threads are not affected.
    pub fn recording_into<R>(recorder: &QuirkLog, work: impl FnOnce() -> R) -> R {
        debug_assert!(
            recorder.recorded.is_some(),
            "recording into a log that applies"
        );
        /// Ends the recording when `work` returns or unwinds.
        struct Restore(Option<Arc<Mutex<Vec<QuirkEvent>>>>);
        impl Drop for Restore {
            fn drop(&mut self) {
                RECORDING_INTO.with(|slot| *slot.borrow_mut() = self.0.take());
            }
        }
        let earlier =
            RECORDING_INTO.with(|slot| slot.replace(recorder.recorded.as_ref().map(Arc::clone)));
        let _restore = Restore(earlier);
        work()
    }

    /// Record the call (`event` of its `value`) when this log is a recorder, or this thread records every
    /// log's calls ([`QuirkLog::recording_into`]): `None`. Otherwise `value` back, to be applied.
    fn record<T>(&self, value: T, event: impl FnOnce(T) -> QuirkEvent) -> Option<T> {
        let push = |recorded: &Mutex<Vec<QuirkEvent>>, event: QuirkEvent| {
            recorded
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(event);
        };
        if let Some(recorded) = &self.recorded {
            push(recorded, event(value));
            return None;
        }
        RECORDING_INTO.with(|slot| match &*slot.borrow() {
            Some(recorded) => {
                push(recorded, event(value));
                None
            }
            None => Some(value),
        })
    }

    /// The skipped rows kept, the lines skipped per file, the rows each fully read table holds, and the
    /// rows read by other records that were rejected.
    pub fn ledger(&self) -> LedgerSnapshot {
        let ledger = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
        LedgerSnapshot {
            skipped: ledger.skipped.clone(),
            skipped_lines: ledger.skipped_lines.clone(),
            rows_read: ledger.rows_read.clone(),
            joined_problems: ledger.joined_problems.clone(),
        }
    }

    /// Every quirk seen so far, sorted by message.
    pub fn snapshot(&self) -> Vec<Quirk> {
        let guard = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        guard.0.values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quirk_is_counted_once_per_line_however_often_its_row_is_read() {
        let log = QuirkLog::default();
        for _ in 0..3 {
            log.note("Client.csv: placeholder names", Some(2));
        }
        log.note("Client.csv: placeholder names", Some(5));
        log.note("enrollments.csv: conflicting roles", None);
        log.note("enrollments.csv: conflicting roles", None);
        let counts: Vec<(String, u64, Option<u64>)> = log
            .snapshot()
            .into_iter()
            .map(|q| (q.message, q.count, q.first_line))
            .collect();
        assert_eq!(
            counts,
            vec![
                ("Client.csv: placeholder names".to_owned(), 2, Some(2)),
                ("enrollments.csv: conflicting roles".to_owned(), 2, None),
            ]
        );
    }

    #[test]
    fn recorded_calls_replayed_leave_the_same_log() {
        let calls = |log: &QuirkLog| {
            log.note("dates read as month/day/year", Some(4));
            log.note("dates read as month/day/year", Some(4));
            log.skip("users.csv", 3, "not a student");
            log.reject_joined(RecordError::new(
                super::super::Position::line("demographics.csv", 7),
                "bad date",
            ));
            log.rows_read("users.csv", 9);
        };
        let direct = QuirkLog::default();
        calls(&direct);
        let recorder = QuirkLog::recorder();
        calls(&recorder);
        assert!(recorder.snapshot().is_empty());
        let replayed = QuirkLog::default();
        replayed.replay(recorder.take_recorded());
        assert!(recorder.take_recorded().is_empty());
        assert_eq!(replayed.snapshot(), direct.snapshot());
        let (a, b) = (replayed.ledger(), direct.ledger());
        assert_eq!(a.skipped, b.skipped);
        assert_eq!(a.rows_read, b.rows_read);
        assert_eq!(a.joined_problems, b.joined_problems);
        assert_eq!(a.joined_problems.len(), 1);
    }

    #[test]
    fn calls_on_any_log_are_recorded_while_this_thread_records_into_a_recorder() {
        let source_log = QuirkLog::default();
        let recorder = QuirkLog::recorder();
        let answer = QuirkLog::recording_into(&recorder, || {
            source_log.note("users.csv: short rows", Some(12));
            source_log.skip("users.csv", 13, "not a student");
            source_log.reject_joined(RecordError::new(
                super::super::Position::line("demographics.csv", 14),
                "birthDate before 1900",
            ));
            // Another thread's calls meanwhile are applied as usual.
            std::thread::scope(|scope| {
                scope.spawn(|| source_log.note("orgs.csv: blank header cells", Some(1)));
            });
            7
        });
        assert_eq!(answer, 7);
        let noted: Vec<_> = (source_log.snapshot().into_iter())
            .map(|q| q.message)
            .collect();
        assert_eq!(noted, ["orgs.csv: blank header cells"]);
        assert!(source_log.ledger().skipped.is_empty());
        assert!(source_log.ledger().joined_problems.is_empty());
        let recorded = recorder.take_recorded();
        assert!(
            matches!(&recorded[..], [QuirkEvent::Note(m, Some(12)), QuirkEvent::Skip(_, _), QuirkEvent::RejectJoined(_)] if m == "users.csv: short rows"),
            "{recorded:?}"
        );
        // After it (and after a panic inside it), calls are applied again.
        source_log.note("users.csv: after", Some(20));
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            QuirkLog::recording_into(&recorder, || panic!("a completion that panics"))
        }));
        assert!(unwound.is_err());
        source_log.note("users.csv: after the panic", Some(21));
        assert_eq!(source_log.snapshot().len(), 3);
        assert!(recorder.take_recorded().is_empty());
    }
}
