//! Repeat-incident tracking: which incidents the gateway has seen for the same person or the same address.
//!
//! A person is keyed by surname, given name and birth date; an address by street, city and postal code — each
//! normalised (case, spaces) and hashed with SHA-256 under a per-deployment salt, so the history holds no
//! names or addresses. A report that names neither person nor address cannot be matched: its count is
//! unknown, never zero. "Earlier" means an incident dated before this one, or on the same day and seen
//! first, inside the window. Deleting an incident (NIBRS action D) removes its sightings; replacing one
//! (action R) re-records them.

use chrono::NaiveDate;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::Path;

pub use crate::record::Sighting;

/// What the history says about one victim of one incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RepeatCount {
    /// Distinct earlier incidents for the same person or address inside the window; `None` when the report
    /// names neither.
    pub earlier_incidents: Option<u64>,
    /// The window, in days.
    pub window_days: u32,
}

/// The incidents seen so far, by key.
#[derive(Debug, Default)]
pub struct IncidentHistory {
    salt: String,
    by_key: HashMap<String, Vec<Sighting>>,
    next_seq: u64,
    added: Vec<Sighting>,
    forgotten: Vec<String>,
}

impl IncidentHistory {
    /// An empty history; `salt` is the deployment's secret for the key hashes.
    pub fn new(salt: impl Into<String>) -> Self {
        Self {
            salt: salt.into(),
            ..Self::default()
        }
    }

    /// Add sightings recorded earlier (from the store or a history file).
    pub fn load(&mut self, sightings: impl IntoIterator<Item = Sighting>) {
        for sighting in sightings {
            self.next_seq = self.next_seq.max(sighting.seq + 1);
            self.by_key
                .entry(sighting.key.clone())
                .or_default()
                .push(sighting);
        }
    }

    /// The hashed key of a person or address (parts normalised: trimmed, lower case, single spaces).
    pub fn key(&self, kind: &str, parts: &[&str]) -> Option<String> {
        let normalised: Vec<String> = parts
            .iter()
            .map(|p| {
                p.split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .to_lowercase()
            })
            .collect();
        if normalised.iter().any(String::is_empty) {
            return None;
        }
        let mut hash = Sha256::new();
        hash.update(self.salt.as_bytes());
        hash.update([0]);
        hash.update(kind.as_bytes());
        for part in &normalised {
            hash.update([0]);
            hash.update(part.as_bytes());
        }
        Some(format!("{kind}:{:x}", hash.finalize()))
    }

    /// Record an incident for these keys and count the earlier incidents for any of them.
    pub fn sight(
        &mut self,
        keys: &[String],
        incident: &str,
        date: NaiveDate,
        window_days: u32,
    ) -> RepeatCount {
        if keys.is_empty() {
            return RepeatCount {
                earlier_incidents: None,
                window_days,
            };
        }
        let seq = self.record(keys, incident, date);
        let from = date - chrono::Duration::days(i64::from(window_days));
        let mut earlier: Vec<&str> = keys
            .iter()
            .flat_map(|k| self.by_key.get(k).into_iter().flatten())
            .filter(|s| s.incident != incident && s.date >= from && (s.date, s.seq) < (date, seq))
            .map(|s| s.incident.as_str())
            .collect();
        earlier.sort_unstable();
        earlier.dedup();
        RepeatCount {
            earlier_incidents: Some(earlier.len() as u64),
            window_days,
        }
    }

    fn record(&mut self, keys: &[String], incident: &str, date: NaiveDate) -> u64 {
        let existing = keys.iter().find_map(|k| {
            self.by_key
                .get(k)?
                .iter()
                .find(|s| s.incident == incident)
                .map(|s| s.seq)
        });
        let seq = existing.unwrap_or_else(|| {
            self.next_seq += 1;
            self.next_seq
        });
        for key in keys {
            let seen = self.by_key.entry(key.clone()).or_default();
            if !seen.iter().any(|s| s.incident == incident) {
                let sighting = Sighting {
                    key: key.clone(),
                    incident: incident.to_owned(),
                    date,
                    seq,
                };
                seen.push(sighting.clone());
                self.added.push(sighting);
            }
        }
        seq
    }

    /// Forget an incident (a NIBRS delete or the first half of a replace).
    pub fn forget(&mut self, incident: &str) {
        for seen in self.by_key.values_mut() {
            seen.retain(|s| s.incident != incident);
        }
        self.added.retain(|s| s.incident != incident);
        self.forgotten.push(incident.to_owned());
    }

    /// The incidents forgotten since the history was loaded (to be removed where it is kept).
    pub fn forgotten(&self) -> &[String] {
        &self.forgotten
    }

    /// The sightings added since the history was loaded (to be saved).
    pub fn added(&self) -> &[Sighting] {
        &self.added
    }

    /// Read a history file (one JSON sighting per line); a missing file is an empty history.
    pub fn load_file(&mut self, path: &Path) -> std::io::Result<()> {
        let file = match std::fs::File::open(path) {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(err) => return Err(err),
        };
        let mut sightings = Vec::new();
        for (index, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let sighting = serde_json::from_str(&line).map_err(|e| {
                std::io::Error::other(format!("{} line {}: {e}", path.display(), index + 1))
            })?;
            sightings.push(sighting);
        }
        self.load(sightings);
        Ok(())
    }

    /// Every sighting now held (loaded, added, minus forgotten incidents), in arrival order.
    pub fn all(&self) -> Vec<&Sighting> {
        let mut all: Vec<&Sighting> = self.by_key.values().flatten().collect();
        all.sort_by(|a, b| (a.seq, &a.key).cmp(&(b.seq, &b.key)));
        all
    }

    /// Rewrite a history file with every sighting now held (deletions included), atomically: a temporary
    /// file beside it, synced, then renamed over it.
    pub fn save_file(&self, path: &Path) -> std::io::Result<()> {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut file = tempfile::NamedTempFile::new_in(dir)?;
        for sighting in self.all() {
            writeln!(file, "{}", serde_json::to_string(sighting)?)?;
        }
        file.as_file().sync_all()?;
        file.persist(path).map_err(|e| e.error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: &str) -> NaiveDate {
        d.parse().unwrap()
    }

    #[test]
    fn counts_earlier_incidents_for_the_same_person_inside_the_window_only() {
        let mut history = IncidentHistory::new("salt");
        let person = history
            .key("person", &["Rivera ", "ana", "1990-01-01"])
            .unwrap();
        let again = history
            .key("person", &["rivera", "ANA", "1990-01-01"])
            .unwrap();
        assert_eq!(person, again, "normalised before hashing");
        assert!(!person.contains("rivera"), "no names in the history");
        let count = |h: &mut IncidentHistory, id: &str, d: &str| {
            h.sight(std::slice::from_ref(&person), id, day(d), 365)
                .earlier_incidents
        };
        assert_eq!(count(&mut history, "A", "2024-01-10"), Some(0));
        assert_eq!(
            count(&mut history, "B", "2026-01-10"),
            Some(0),
            "A is outside the window"
        );
        assert_eq!(count(&mut history, "C", "2026-03-01"), Some(1));
        assert_eq!(
            count(&mut history, "C", "2026-03-01"),
            Some(1),
            "a resubmission is not a new incident"
        );
        history.forget("B");
        assert_eq!(
            count(&mut history, "D", "2026-04-01"),
            Some(1),
            "B was deleted"
        );
    }

    #[test]
    fn a_report_without_person_or_address_has_an_unknown_count() {
        let mut history = IncidentHistory::new("salt");
        assert_eq!(history.key("person", &["", "x", "y"]), None);
        assert_eq!(
            history
                .sight(&[], "A", day("2026-01-01"), 365)
                .earlier_incidents,
            None
        );
    }
}
