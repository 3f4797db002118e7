//! What a decision needs to know about the record: who it is about (the Patient and the aliases they are
//! known by), their age, their guardians, who the recipient and the source are in the bundle's own terms,
//! and which resources carry which security labels.

use super::model::identifier_key;
use super::time::age_at;
use chrono::{DateTime, FixedOffset};
use serde_json::Value;
use std::collections::HashSet;

/// Age of majority: from this age a student's own consent is needed (FERPA rights transfer to the
/// eligible student), and a guardian's no longer covers them.
pub const AGE_OF_MAJORITY: u32 = 18;

/// The person a record is about.
#[derive(Debug, Clone)]
pub struct Subject {
    /// `Patient/id` and `system|value` identifiers.
    pub aliases: HashSet<String>,
    /// `Patient/id`.
    pub reference: String,
    /// Age at the decision time, when the birth date is known.
    pub age: Option<u32>,
    /// References and identifiers of the guardians (RelatedPersons of the patient in the record).
    pub guardians: HashSet<String>,
}

impl Subject {
    /// Whether a guardian must consent (a minor, or age unknown: the cautious reading).
    pub fn needs_guardian(&self) -> bool {
        self.age.is_none_or(|age| age < AGE_OF_MAJORITY)
    }
}

/// The resources of a bundle (or a single resource).
pub fn resources(record: &Value) -> Vec<&Value> {
    if record.get("resourceType").and_then(Value::as_str) == Some("Bundle") {
        record
            .get("entry")
            .and_then(Value::as_array)
            .map(|e| e.iter().filter_map(|x| x.get("resource")).collect())
            .unwrap_or_default()
    } else {
        vec![record]
    }
}

fn kind(resource: &Value) -> &str {
    resource
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn reference_of(resource: &Value) -> String {
    format!(
        "{}/{}",
        kind(resource),
        resource
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
    )
}

fn aliases_of(resource: &Value) -> HashSet<String> {
    let mut aliases: HashSet<String> = resource
        .get("identifier")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(identifier_key)
        .collect();
    aliases.insert(reference_of(resource));
    aliases
}

/// The label of a contact under an intervention order (SIF `ContactFlags/InterventionOrder`): never a
/// guardian, whatever else the record says about them.
pub const INTERVENTION_ORDER: &str = "IO";

/// Find the subject: the ServiceRequest's subject, else the only Patient. Guardians are the patient's
/// RelatedPersons, except those labelled [`INTERVENTION_ORDER`].
pub fn subject(record: &Value, at: DateTime<FixedOffset>) -> Option<Subject> {
    let all = resources(record);
    let wanted = all
        .iter()
        .find(|r| kind(r) == "ServiceRequest")
        .and_then(|sr| sr.pointer("/subject/reference"))
        .and_then(Value::as_str);
    let patient = all
        .iter()
        .copied()
        .find(|r| kind(r) == "Patient" && wanted.is_none_or(|w| reference_of(r) == w))?;
    let reference = reference_of(patient);
    let guardians = all
        .iter()
        .filter(|r| {
            kind(r) == "RelatedPerson"
                && r.pointer("/patient/reference").and_then(Value::as_str)
                    == Some(reference.as_str())
                && !labels(r).iter().any(|code| code == INTERVENTION_ORDER)
        })
        .flat_map(|r| aliases_of(r))
        .collect();
    let age = patient
        .get("birthDate")
        .and_then(Value::as_str)
        .and_then(|b| age_at(b, at));
    Some(Subject {
        aliases: aliases_of(patient),
        reference,
        age,
        guardians,
    })
}

/// An organization as named on the command line (`system|value` or `Organization/id`), with the other
/// names the bundle gives it (its id, its identifiers).
pub fn organization_aliases(record: &Value, name: &str) -> HashSet<String> {
    let mut aliases = HashSet::from([name.to_owned()]);
    for org in resources(record)
        .into_iter()
        .filter(|r| kind(r) == "Organization")
    {
        let names = aliases_of(org);
        if names.contains(name) {
            aliases.extend(names);
        }
    }
    aliases
}

/// Security label codes of a resource (`meta.security[].code`).
pub fn labels(resource: &Value) -> Vec<String> {
    resource
        .pointer("/meta/security")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("code").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

/// The resource types of a record, with their labels.
pub fn inventory(record: &Value) -> Vec<(String, Vec<String>)> {
    resources(record)
        .into_iter()
        .map(|r| (kind(r).to_owned(), labels(r)))
        .collect()
}
