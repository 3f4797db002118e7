//! The audit log and the disclosure log: their entries, the hash chain, and how a chain is checked.
//!
//! Every decision (permit, deny, redact) is an [`AuditEntry`]; each carries the hash of the previous one
//! (SHA-256 over the previous hash and the entry), and the store keeps the head of the chain (its length
//! and last hash) apart from the entries, so [`verify_chain`] finds an entry that was changed, removed,
//! reordered or cut off the end. A delivery the receiver acknowledged is a [`Disclosure`] (who received
//! what about a person, when, under which basis) and an entry of kind `disclosed`; a delivery that
//! dead-lettered is an entry of kind `not-disclosed`. Entries export as FHIR AuditEvent. Entries hold
//! references and identifiers, never names or other content of the record.
//!
//! Where entries are kept is the store's business (`store::audit`); the gate writes through the
//! [`AuditTrail`] trait. Audit folders of earlier versions (`audit.jsonl`, `disclosures.jsonl`) are read
//! once by [`read_folder`] to be migrated into the store.

use super::decision::{Basis, Decision, Outcome};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

/// The audit file name in an audit folder of earlier versions.
pub const AUDIT_FILE: &str = "audit.jsonl";
/// The disclosure file name in an audit folder of earlier versions.
pub const DISCLOSURE_FILE: &str = "disclosures.jsonl";
/// The hash before the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What an entry records besides a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntryKind {
    /// The receiver acknowledged a delivery: a disclosure happened.
    Disclosed,
    /// A delivery dead-lettered: nothing was disclosed.
    NotDisclosed,
}

/// One audited event.
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
    /// A delivery's outcome; absent for a decision (entries written before it existed hash unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<EntryKind>,
    /// The delivery it concerns (outbox row id), for `disclosed` and `not-disclosed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<String>,
    /// Hash of the previous entry.
    pub prev: String,
    /// Hash of this entry.
    pub hash: String,
}

/// One disclosure: a record released to someone and acknowledged by them.
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

impl Disclosure {
    /// The keys a person is found by: `Patient/id`, `system|value`, and the bare values.
    pub fn person_keys(&self) -> Vec<String> {
        let mut keys = vec![self.patient.clone()];
        for identifier in &self.patient_identifiers {
            keys.push(identifier.clone());
            if let Some((_, value)) = identifier.rsplit_once('|') {
                keys.push(value.to_owned());
            }
        }
        keys.sort();
        keys.dedup();
        keys
    }
}

/// Why the audit log could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Reading or writing a file failed.
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
    /// The store could not record it.
    #[error("audit store: {0}")]
    Store(String),
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

/// Where the gate writes its entries and disclosures (`Sync`: a gate is shared by the tasks deciding with it).
pub trait AuditTrail: Send + Sync {
    /// Append an entry (its `seq`, `prev` and `hash` are set by the trail).
    fn record(&mut self, entry: AuditEntry) -> Result<(), AuditError>;
    /// Record a disclosure (the receiver has the record).
    fn disclose(&mut self, disclosure: &Disclosure) -> Result<(), AuditError>;
}

/// A trail in memory (tests, conformance cases): the chain is built as the store builds it.
#[derive(Debug, Default, Clone)]
pub struct MemoryTrail {
    /// The entries, in order.
    pub entries: Vec<AuditEntry>,
    /// The disclosures, in order.
    pub disclosures: Vec<Disclosure>,
}

impl AuditTrail for MemoryTrail {
    fn record(&mut self, entry: AuditEntry) -> Result<(), AuditError> {
        let (seq, prev) = self
            .entries
            .last()
            .map(|e| (e.seq + 1, e.hash.clone()))
            .unwrap_or((1, GENESIS.to_owned()));
        self.entries.push(entry.sealed(seq, &prev));
        Ok(())
    }

    fn disclose(&mut self, disclosure: &Disclosure) -> Result<(), AuditError> {
        self.disclosures.push(disclosure.clone());
        Ok(())
    }
}

impl AuditEntry {
    /// An unsealed entry for a decision (no `seq`, `prev` or `hash` yet).
    pub fn draft(audited: &Audited<'_>) -> Self {
        let decision = audited.decision;
        Self {
            seq: 0,
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
            // The withheld classes and labels, then every withheld resource (references only).
            redacted: decision
                .redact_classes
                .iter()
                .chain(decision.redact_labels.iter())
                .chain(decision.withheld_resources.iter())
                .cloned()
                .collect(),
            event: None,
            delivery: None,
            prev: String::new(),
            hash: String::new(),
        }
    }

    /// The same entry for a delivery's outcome.
    pub fn for_delivery(mut self, kind: EntryKind, delivery: &str) -> Self {
        self.event = Some(kind);
        self.delivery = Some(delivery.to_owned());
        self.recorded = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        self
    }

    /// The entry placed at `seq` after the entry whose hash is `prev`.
    pub fn sealed(mut self, seq: u64, prev: &str) -> Self {
        self.seq = seq;
        self.prev = prev.to_owned();
        self.hash = entry_hash(&self);
        self
    }
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

/// The head of a chain, kept apart from its entries: how many there are and the last one's hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    /// The number of entries.
    pub length: u64,
    /// The hash of the last entry ([`GENESIS`] when empty).
    pub hash: String,
}

/// Check a chain: every entry's hash, its link to the previous one, the sequence, and that it ends where
/// its head says (so entries cut off the end are found). Returns the number of entries, or every break
/// found (entry and what is wrong).
pub fn verify_chain(entries: &[AuditEntry], head: &ChainHead) -> Result<u64, Vec<String>> {
    let mut problems = Vec::new();
    let mut prev = GENESIS.to_owned();
    for (index, entry) in entries.iter().enumerate() {
        let expected = index as u64 + 1;
        if entry.seq != expected {
            problems.push(format!("entry {expected}: sequence {} where {expected} was expected (an entry was removed or reordered)", entry.seq));
        }
        if entry.prev != prev {
            problems.push(format!("entry {expected}: does not link to the entry before it (an entry was removed, inserted or reordered)"));
        }
        if entry_hash(entry) != entry.hash {
            problems.push(format!(
                "entry {expected}: content does not match its hash (the entry was changed)"
            ));
        }
        prev = entry.hash.clone();
    }
    let length = entries.len() as u64;
    if head.length != length {
        problems.push(format!(
            "the chain holds {length} entries but its head records {} (entries were {} the end)",
            head.length,
            if head.length > length {
                "cut off"
            } else {
                "added after"
            }
        ));
    } else if head.hash != prev {
        problems.push("the last entry's hash is not the one the head records (the end of the chain was replaced)".into());
    }
    if problems.is_empty() {
        Ok(length)
    } else {
        Err(problems)
    }
}

/// An audit folder of an earlier version: its entries and disclosures (empty when the files are absent).
pub fn read_folder(dir: &Path) -> Result<(Vec<AuditEntry>, Vec<Disclosure>), AuditError> {
    Ok((
        read_lines(&dir.join(AUDIT_FILE))?,
        read_lines(&dir.join(DISCLOSURE_FILE))?,
    ))
}

fn read_lines<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>, AuditError> {
    let io = |source| AuditError::Io {
        path: path.display().to_string(),
        source,
    };
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(e)),
    };
    let mut out = Vec::new();
    for (index, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(io)?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(serde_json::from_str(&line).map_err(|e| AuditError::Format {
            path: path.display().to_string(),
            line: index + 1,
            message: e.to_string(),
        })?);
    }
    Ok(out)
}

/// An entry as a FHIR AuditEvent.
pub fn audit_event(entry: &AuditEntry) -> Value {
    let permitted =
        entry.outcome == Outcome::Permit && entry.event != Some(EntryKind::NotDisclosed);
    let what = match entry.event {
        None => "decision",
        Some(EntryKind::Disclosed) => "disclosed (receiver acknowledged)",
        Some(EntryKind::NotDisclosed) => "not disclosed (delivery dead-lettered)",
    };
    let mut event = json!({
        "resourceType": "AuditEvent",
        "id": format!("audit-{}", entry.seq),
        "type": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110106", "display": "Export"},
        "subtype": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IDSCL", "display": "information disclosure"}],
        "action": "R",
        "recorded": entry.recorded,
        "outcome": if permitted { "0" } else { "4" },
        "outcomeDesc": format!("{what}: {:?} ({:?}){}", entry.outcome, entry.basis, entry.authority.as_ref().map(|a| format!(" under {a}")).unwrap_or_default()),
        "purposeOfEvent": [{"coding": [{"system": super::codes::V3_ACT_REASON, "code": entry.purpose}]}],
        "agent": [{"who": {"identifier": {"value": entry.recipient}}, "requestor": false}],
        "source": {"observer": {"display": "onedoor consent gate"}},
        "entity": [{"what": {"reference": entry.patient}, "description": format!("chain seq {} hash {}", entry.seq, entry.hash)}],
    });
    if let (Some(source), Some(agents)) = (
        &entry.source,
        event.get_mut("agent").and_then(Value::as_array_mut),
    ) {
        agents.push(json!({"who": {"identifier": {"value": source}}, "requestor": true}));
    }
    event
}
