//! The consent registry: Consent resources loaded from FHIR JSON (files, NDJSON, folders), checked, and
//! indexed by patient (reference and identifiers) so a decision looks up only that person's consents.
//! A consent that fails a check is reported and kept out: it can never permit anything.

use super::model::{self, Consent, Status};
use crate::adapters::fhir::FhirSource;
use crate::validation::Validator;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// A consent that was not admitted, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegistryProblem {
    /// Where it came from (`file line N`).
    pub source: String,
    /// The consent id, when it has one.
    pub consent: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for RegistryProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (Consent/{}): {}",
            self.source, self.consent, self.message
        )
    }
}

/// The consents in force, indexed by patient.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    consents: Vec<Consent>,
    by_id: HashMap<String, Vec<usize>>,
    by_patient: HashMap<String, Vec<usize>>,
    problems: Vec<RegistryProblem>,
    /// The admitted consents as loaded (FHIR JSON), to be written into the store.
    resources: Vec<serde_json::Value>,
}

impl Registry {
    /// An empty registry (every decision is NoConsent unless a legal basis applies).
    pub fn new() -> Self {
        Self::default()
    }

    /// Load every Consent under `path`. When `known_patients` is given (references and `system|value`
    /// identifiers), a consent for anyone else is a problem and is not admitted.
    pub fn load(path: &Path, known_patients: Option<&HashSet<String>>) -> std::io::Result<Self> {
        let mut registry = Self::new();
        let validator = Validator::new();
        for record in FhirSource::open(path)?.records() {
            let record = match record {
                Ok(record) => record,
                Err(err) => {
                    registry.problem(err.position.to_string(), String::new(), err.message);
                    continue;
                }
            };
            let resource = &record.context["resource"];
            let source = record.position.to_string();
            if resource.get("resourceType").and_then(|t| t.as_str()) != Some("Consent") {
                registry.problem(source, record.key.clone(), "not a Consent resource".into());
                continue;
            }
            let issues = validator.validate(resource);
            if !issues.is_empty() {
                let listed: Vec<String> = issues.iter().take(5).map(ToString::to_string).collect();
                registry.problem(
                    source,
                    record.key.clone(),
                    format!("not valid FHIR R4: {}", listed.join("; ")),
                );
                continue;
            }
            match model::parse(resource) {
                Ok(consent) => {
                    if registry.admit(consent, source, known_patients) {
                        registry.resources.push(resource.clone());
                    }
                }
                Err(errors) => registry.problem(source, record.key.clone(), errors.join("; ")),
            }
        }
        Ok(registry)
    }

    /// Add a consent, or replace the one with the same id for the same patient (an update, such as a
    /// revocation). Ids are unique per patient: a consent with the id of another patient's consent is a
    /// consent of its own, and never replaces the other.
    pub fn upsert(&mut self, consent: Consent) {
        let keys = patient_keys(&consent);
        let same = self.by_id.get(&consent.id).and_then(|indexes| {
            indexes.iter().copied().find(|&i| {
                let existing = patient_keys(&self.consents[i]);
                existing.iter().any(|k| keys.contains(k))
            })
        });
        if let Some(existing) = same.filter(|_| !consent.id.is_empty()) {
            self.consents[existing] = consent;
            return;
        }
        let index = self.consents.len();
        self.by_id
            .entry(consent.id.clone())
            .or_default()
            .push(index);
        for key in patient_keys(&consent) {
            self.by_patient.entry(key).or_default().push(index);
        }
        self.consents.push(consent);
    }

    /// Set the status of every consent with this id (revocation: `Status::Inactive`); with ids unique per
    /// patient, see [`Registry::set_status_for`] to name the patient. Returns false when there is none.
    pub fn set_status(&mut self, id: &str, status: Status) -> bool {
        let indexes = self.by_id.get(id).cloned().unwrap_or_default();
        for &index in &indexes {
            self.consents[index].status = status;
        }
        !indexes.is_empty()
    }

    /// Set the status of the consent with this id for the patient known by `patient` (`Patient/id` or
    /// `system|value`). Returns false when there is none.
    pub fn set_status_for(&mut self, id: &str, patient: &str, status: Status) -> bool {
        let indexes = self.by_id.get(id).cloned().unwrap_or_default();
        let mut found = false;
        for index in indexes {
            if patient_keys(&self.consents[index])
                .iter()
                .any(|k| k == patient)
            {
                self.consents[index].status = status;
                found = true;
            }
        }
        found
    }

    /// The consents about a person known by any of `aliases`, in load order (whatever the order of the
    /// aliases).
    pub fn for_patient(&self, aliases: &HashSet<String>) -> Vec<&Consent> {
        let mut indexes: Vec<usize> = aliases
            .iter()
            .filter_map(|a| self.by_patient.get(a))
            .flatten()
            .copied()
            .collect();
        indexes.sort_unstable();
        indexes.dedup();
        indexes.into_iter().map(|i| &self.consents[i]).collect()
    }

    /// Consents not admitted, with the reason.
    pub fn problems(&self) -> &[RegistryProblem] {
        &self.problems
    }

    /// How many consents are admitted.
    pub fn len(&self) -> usize {
        self.consents.len()
    }

    /// Whether no consent is admitted.
    pub fn is_empty(&self) -> bool {
        self.consents.is_empty()
    }

    fn admit(
        &mut self,
        consent: Consent,
        source: String,
        known_patients: Option<&HashSet<String>>,
    ) -> bool {
        if let Some(known) = known_patients
            && !consent.patient.is_any_of(known)
        {
            let message = format!(
                "patient {} does not exist (no such Patient in the records given)",
                consent.patient.describe()
            );
            self.problem(source, consent.id.clone(), message);
            return false;
        }
        self.upsert(consent);
        true
    }

    /// The admitted consents as loaded (FHIR JSON).
    pub fn resources(&self) -> &[serde_json::Value] {
        &self.resources
    }

    fn problem(&mut self, source: String, consent: String, message: String) {
        tracing::debug!(source = %source, "consent not admitted");
        self.problems.push(RegistryProblem {
            source,
            consent,
            message,
        });
    }
}

/// Load consents for deciding about `record`: its Patients are the known patients, so a consent for anyone
/// else is a problem and is not admitted.
pub fn load_for_record(path: &Path, record: &serde_json::Value) -> std::io::Result<Registry> {
    let read = super::subject::Record::read(record);
    let known: HashSet<String> = read
        .patients()
        .into_iter()
        .flat_map(|p| {
            let item = &read.items[p];
            let mut aliases = item.aliases.clone();
            aliases.push(item.reference.clone());
            aliases
        })
        .collect();
    Registry::load(path, Some(&known))
}

fn patient_keys(consent: &Consent) -> Vec<String> {
    consent
        .patient
        .reference
        .iter()
        .chain(consent.patient.identifier.iter())
        .cloned()
        .collect()
}
