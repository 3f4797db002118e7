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

/// A shared, thread-safe collection of quirks, deduplicated by message.
#[derive(Debug, Clone, Default)]
pub struct QuirkLog {
    inner: Arc<Mutex<BTreeMap<String, Quirk>>>,
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

    /// Every quirk seen so far, sorted by message.
    pub fn snapshot(&self) -> Vec<Quirk> {
        let map = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        map.values().cloned().collect()
    }
}
