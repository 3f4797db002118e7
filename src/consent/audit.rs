//! The audit log and the disclosure log.
//!
//! Every decision (permit, deny, redact) is appended to `audit.jsonl`: each entry carries the hash of the
//! previous one (SHA-256 over the previous hash and the entry), so `onedoor audit verify` detects an entry
//! that was changed, removed or reordered. Entries export as FHIR AuditEvent. Every release is appended to
//! `disclosures.jsonl`, which answers "who received what about this person, when, under which basis".
//! Entries hold references and identifiers, never names or other content of the record.

use super::decision::{Basis, Decision, Outcome};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// The audit file name in the audit folder.
pub const AUDIT_FILE: &str = "audit.jsonl";
/// The disclosure file name in the audit folder.
pub const DISCLOSURE_FILE: &str = "disclosures.jsonl";
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audited decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// 1, 2, 3... with no gaps.
    pub seq: u64,
    /// When it was recorded.
    pub recorded: String,
    /// The time the decision was made for.
    pub decided_for: String,
    /// permit, deny, no-consent.
    pub outcome: Outcome,
    /// What it rested on.
    pub basis: Basis,
    /// Consent id or legal basis reference.
    pub authority: Option<String>,
    /// The deciding provision.
    pub provision: Option<String>,
    /// `Patient/id`.
    pub patient: String,
    /// The recipient.
    pub recipient: String,
    /// The purpose.
    pub purpose: String,
    /// The source, when known.
    pub source: Option<String>,
    /// Withheld resource types and labels.
    pub redacted: Vec<String>,
    /// Hash of the previous entry.
    pub prev: String,
    /// Hash of this entry.
    pub hash: String,
}

/// One disclosure: a record released to someone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Disclosure {
    /// When.
    pub time: String,
    /// `Patient/id`.
    pub patient: String,
    /// The identifiers the person is known by (`system|value`).
    pub patient_identifiers: Vec<String>,
    /// Who received it.
    pub recipient: String,
    /// For what.
    pub purpose: String,
    /// Under which basis.
    pub basis: Basis,
    /// Consent id or legal basis reference.
    pub authority: Option<String>,
    /// What was released (`Type/id`).
    pub resources: Vec<String>,
    /// What was withheld.
    pub withheld: Vec<String>,
}

/// Why the audit log could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A line is not an audit entry.
    #[error("{path} line {line}: not an audit entry: {message}")]
    Format {
        /// The file.
        path: String,
        /// The line.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// An append-only, hash-chained audit log in a folder.
pub struct AuditLog {
    dir: PathBuf,
    last_hash: String,
    next_seq: u64,
}

/// The context of an audited decision.
pub struct Audited<'a> {
    /// The decision.
    pub decision: &'a Decision,
    /// The recipient.
    pub recipient: &'a str,
    /// The purpose.
    pub purpose: &'a str,
    /// The source.
    pub source: Option<&'a str>,
    /// The time decided for.
    pub time: &'a str,
}

impl AuditLog {
    /// Open (or create) the log in `dir`, continuing its chain.
    pub fn open(dir: &Path) -> Result<Self, AuditError> {
        std::fs::create_dir_all(dir).map_err(|source| io(dir, source))?;
        let entries = read_entries(&dir.join(AUDIT_FILE))?;
        let (last_hash, next_seq) = entries
            .last()
            .map(|e| (e.hash.clone(), e.seq + 1))
            .unwrap_or((GENESIS.to_owned(), 1));
        Ok(Self {
            dir: dir.to_owned(),
            last_hash,
            next_seq,
        })
    }

    /// Append a decision.
    pub fn record(&mut self, audited: &Audited<'_>) -> Result<AuditEntry, AuditError> {
        let decision = audited.decision;
        let mut entry = AuditEntry {
            seq: self.next_seq,
            recorded: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            decided_for: audited.time.to_owned(),
            outcome: decision.outcome,
            basis: decision.basis,
            authority: decision.authority.clone(),
            provision: decision.provision.clone(),
            patient: decision.patient.clone(),
            recipient: audited.recipient.to_owned(),
            purpose: audited.purpose.to_owned(),
            source: audited.source.map(str::to_owned),
            redacted: decision
                .redact_classes
                .iter()
                .chain(decision.redact_labels.iter())
                .cloned()
                .collect(),
            prev: self.last_hash.clone(),
            hash: String::new(),
        };
        entry.hash = entry_hash(&entry);
        append_line(&self.dir.join(AUDIT_FILE), &entry)?;
        self.last_hash = entry.hash.clone();
        self.next_seq += 1;
        Ok(entry)
    }

    /// Append a disclosure.
    pub fn disclose(&self, disclosure: &Disclosure) -> Result<(), AuditError> {
        append_line(&self.dir.join(DISCLOSURE_FILE), disclosure)
    }
}

fn io(path: &Path, source: std::io::Error) -> AuditError {
    AuditError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn append_line<T: Serialize>(path: &Path, value: &T) -> Result<(), AuditError> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| io(path, e))?;
    let mut line = serde_json::to_vec(value).map_err(|e| io(path, e.into()))?;
    line.push(b'\n');
    file.write_all(&line)
        .and_then(|_| file.sync_data())
        .map_err(|e| io(path, e))
}

/// SHA-256 of the previous hash and the entry with an empty `hash`.
pub fn entry_hash(entry: &AuditEntry) -> String {
    let mut unhashed = entry.clone();
    unhashed.hash = String::new();
    let mut hasher = Sha256::new();
    hasher.update(entry.prev.as_bytes());
    hasher.update(serde_json::to_vec(&unhashed).unwrap_or_default());
    format!("{:x}", hasher.finalize())
}

fn read_entries(path: &Path) -> Result<Vec<AuditEntry>, AuditError> {
    read_lines(path)
}

fn read_lines<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>, AuditError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(path, e)),
    };
    let mut out = Vec::new();
    for (index, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let value = serde_json::from_str(&line).map_err(|e| AuditError::Format {
            path: path.display().to_string(),
            line: index + 1,
            message: e.to_string(),
        })?;
        out.push(value);
    }
    Ok(out)
}

/// Check the chain: every entry's hash, its link to the previous one, and the sequence. Returns the
/// number of entries, or every break found (line and what is wrong).
pub fn verify(dir: &Path) -> Result<u64, Vec<String>> {
    let entries = read_entries(&dir.join(AUDIT_FILE)).map_err(|e| vec![e.to_string()])?;
    let mut problems = Vec::new();
    let mut prev = GENESIS.to_owned();
    for (index, entry) in entries.iter().enumerate() {
        let line = index + 1;
        if entry.seq != line as u64 {
            problems.push(format!("line {line}: sequence {} where {line} was expected (an entry was removed or reordered)", entry.seq));
        }
        if entry.prev != prev {
            problems.push(format!("line {line}: does not link to the entry before it (an entry was removed, inserted or reordered)"));
        }
        if entry_hash(entry) != entry.hash {
            problems.push(format!(
                "line {line}: content does not match its hash (the entry was changed)"
            ));
        }
        prev = entry.hash.clone();
    }
    if problems.is_empty() {
        Ok(entries.len() as u64)
    } else {
        Err(problems)
    }
}

/// Every disclosure about a person (by `Patient/id`, an identifier `system|value`, or an identifier value).
pub fn disclosures(dir: &Path, patient: &str) -> Result<Vec<Disclosure>, AuditError> {
    let all: Vec<Disclosure> = read_lines(&dir.join(DISCLOSURE_FILE))?;
    Ok(all
        .into_iter()
        .filter(|d| {
            d.patient == patient
                || d.patient_identifiers
                    .iter()
                    .any(|i| i == patient || i.rsplit('|').next() == Some(patient))
        })
        .collect())
}

/// The audit log as FHIR AuditEvent resources.
pub fn audit_events(dir: &Path) -> Result<Vec<Value>, AuditError> {
    Ok(read_entries(&dir.join(AUDIT_FILE))?
        .iter()
        .map(audit_event)
        .collect())
}

fn audit_event(entry: &AuditEntry) -> Value {
    let permitted = entry.outcome == Outcome::Permit;
    let mut event = json!({
        "resourceType": "AuditEvent",
        "id": format!("audit-{}", entry.seq),
        "type": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110106", "display": "Export"},
        "subtype": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IDSCL", "display": "information disclosure"}],
        "action": "R",
        "recorded": entry.recorded,
        "outcome": if permitted { "0" } else { "4" },
        "outcomeDesc": format!("{:?} ({:?}){}", entry.outcome, entry.basis, entry.authority.as_ref().map(|a| format!(" under {a}")).unwrap_or_default()),
        "purposeOfEvent": [{"coding": [{"system": super::codes::V3_ACT_REASON, "code": entry.purpose}]}],
        "agent": [{"who": {"identifier": {"value": entry.recipient}}, "requestor": false}],
        "source": {"observer": {"display": "onedoor consent gate"}},
        "entity": [{"what": {"reference": entry.patient}, "description": format!("chain seq {} hash {}", entry.seq, entry.hash)}],
    });
    if let (Some(source), Some(agents)) = (&entry.source, event["agent"].as_array_mut()) {
        agents.push(json!({"who": {"identifier": {"value": source}}, "requestor": true}));
    }
    event
}
