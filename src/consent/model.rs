//! A FHIR R4 Consent read into the shape decisions need (SDOHCC Consent / IHE PCF semantics): patient,
//! status, who consented, the custodian organizations, policies, and a tree of provisions (permit/deny,
//! period, actors, actions, purposes, data classes, security labels, nested provisions).
//!
//! Reading is strict: an unknown policy, purpose, label or action code, an impossible period, a provision
//! without a type: each is an error naming the consent and the JSON path, and the consent is not used.

use super::codes;
use super::time::instant;
use chrono::{DateTime, FixedOffset};
use serde_json::Value;
use std::collections::HashSet;

/// A party named by reference (`Organization/abc`) or by identifier (`system|value`), or both.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Party {
    /// `Type/id`.
    pub reference: Option<String>,
    /// `system|value`.
    pub identifier: Option<String>,
}

impl Party {
    /// Read a FHIR Reference.
    pub fn from_reference(value: &Value) -> Self {
        let reference = value
            .get("reference")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let identifier = value.get("identifier").and_then(identifier_key);
        Self {
            reference,
            identifier,
        }
    }

    /// Whether the party is one of `aliases` (references and `system|value` identifiers of one entity).
    pub fn is_any_of(&self, aliases: &HashSet<String>) -> bool {
        self.reference.as_ref().is_some_and(|r| aliases.contains(r))
            || self
                .identifier
                .as_ref()
                .is_some_and(|i| aliases.contains(i))
    }

    /// How it reads in an explanation.
    pub fn describe(&self) -> String {
        self.reference
            .clone()
            .or_else(|| self.identifier.clone())
            .unwrap_or_else(|| "(unnamed)".to_owned())
    }
}

/// The custodian a Consent names: its first `organization` given by identifier (`system|value`).
pub fn custodian(consent: &Value) -> Option<String> {
    consent
        .get("organization")?
        .as_array()?
        .iter()
        .find_map(|o| o.get("identifier").and_then(identifier_key))
}

/// `system|value` of a FHIR Identifier.
pub fn identifier_key(identifier: &Value) -> Option<String> {
    let system = identifier
        .get("system")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let value = identifier.get("value").and_then(Value::as_str)?;
    Some(format!("{system}|{value}"))
}

/// Consent status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// In force.
    Active,
    /// Withdrawn or lapsed (revocation sets this).
    Inactive,
    /// Refused by the person.
    Rejected,
    /// Recorded by mistake.
    EnteredInError,
    /// Not yet in force.
    Draft,
    /// Offered, not agreed.
    Proposed,
}

impl Status {
    fn parse(code: &str) -> Option<Self> {
        Some(match code {
            "active" => Self::Active,
            "inactive" => Self::Inactive,
            "rejected" => Self::Rejected,
            "entered-in-error" => Self::EnteredInError,
            "draft" => Self::Draft,
            "proposed" => Self::Proposed,
            _ => return None,
        })
    }
}

/// Permit or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The provision allows.
    Permit,
    /// The provision forbids.
    Deny,
}

/// One provision of a consent.
#[derive(Debug, Clone)]
pub struct Provision {
    /// JSON path in the consent (`provision.provision[1]`), for explanations.
    pub path: String,
    /// Permit or deny.
    pub rule: Rule,
    /// When it applies.
    pub start: Option<DateTime<FixedOffset>>,
    /// Until when it applies.
    pub end: Option<DateTime<FixedOffset>>,
    /// Recipients it is about (actors in a recipient role: IRCP, PRCP, REFT, TRC; empty: everyone).
    pub actors: Vec<Party>,
    /// Sources it is about (actors in a custodian or author role: CST, AUT, INF, REFB; empty: any source).
    pub sources: Vec<Party>,
    /// Actions (empty: all).
    pub actions: Vec<String>,
    /// Purposes of use (empty: all).
    pub purposes: Vec<String>,
    /// Resource types it is about (empty: all data); a class given as a profile URL is in `profiles`.
    pub classes: Vec<String>,
    /// Profiles it is about (`class` codes that are StructureDefinition URLs): resources claiming one.
    pub profiles: Vec<String>,
    /// Codes it is about (`system|code`), matched against a resource's `code`, `category` and `type`.
    pub codes: Vec<String>,
    /// Security labels it is about (empty: all data).
    pub labels: Vec<String>,
    /// Named data (`provision.data`): the meaning and the resource.
    pub data: Vec<(DataMeaning, Party)>,
    /// `dataPeriod.start`: only data from this time on.
    pub data_start: Option<DateTime<FixedOffset>>,
    /// `dataPeriod.end`: only data up to this time.
    pub data_end: Option<DateTime<FixedOffset>>,
    /// Exceptions to it.
    pub nested: Vec<Provision>,
}

/// `provision.data.meaning` (consent-data-meaning).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataMeaning {
    /// The named resource itself.
    Instance,
    /// The named resource and the resources it refers to.
    Related,
    /// The named resource and the resources that refer to it.
    Dependents,
    /// Resources authored by the named party.
    AuthoredBy,
}

impl Provision {
    /// Whether the provision is about some data only (classes, codes, labels, named data, a data
    /// period), not the whole record.
    pub fn is_data_scoped(&self) -> bool {
        !self.classes.is_empty()
            || !self.profiles.is_empty()
            || !self.codes.is_empty()
            || !self.labels.is_empty()
            || !self.data.is_empty()
            || self.data_start.is_some()
            || self.data_end.is_some()
    }
}

/// A consent ready for decisions.
#[derive(Debug, Clone)]
pub struct Consent {
    /// The consent's id (or file:line when it has none).
    pub id: String,
    /// Status.
    pub status: Status,
    /// The person it is about.
    pub patient: Party,
    /// Who gave it (the person, or a guardian as RelatedPerson).
    pub performers: Vec<Party>,
    /// The custodians it applies to (the organizations that hold the data); empty: any.
    pub organizations: Vec<Party>,
    /// Policy codes (`42CFRPart2`, `FERPA`...).
    pub policies: Vec<String>,
    /// `Consent.dateTime`: when it was agreed; a consent dated after the decision time is not yet in force.
    pub date_time: Option<DateTime<FixedOffset>>,
    /// The root provision; `None` when the terms are only in an attached document (`sourceAttachment`):
    /// such a consent is kept on record but cannot permit anything automatically.
    pub provision: Option<Provision>,
}

impl Consent {
    /// Whether the consent is a 42 CFR Part 2 consent.
    pub fn is_part2(&self) -> bool {
        self.policies.iter().any(|p| p == "42CFRPart2")
    }
}

/// Read a Consent resource; errors are `path: message`.
pub fn parse(resource: &Value) -> Result<Consent, Vec<String>> {
    let mut errors = Vec::new();
    let id = resource
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let status = match resource.get("status").and_then(Value::as_str) {
        Some(code) => Status::parse(code).unwrap_or_else(|| {
            errors.push(format!("status: unknown status '{code}'"));
            Status::Inactive
        }),
        None => {
            errors.push("status: required".into());
            Status::Inactive
        }
    };
    let patient = resource
        .get("patient")
        .map(Party::from_reference)
        .unwrap_or_default();
    if patient.reference.is_none() && patient.identifier.is_none() {
        errors.push("patient: required (a reference or an identifier of the person)".into());
    }
    let parties = |key: &str| -> Vec<Party> {
        array(resource, key)
            .iter()
            .map(Party::from_reference)
            .collect()
    };
    let policies = read_policies(resource, &mut errors);
    let scopes: Vec<String> = resource.get("scope").map(codes_of).unwrap_or_default();
    if scopes.is_empty() {
        errors.push(format!(
            "scope: required ({}: only a privacy consent decides disclosures)",
            codes::PRIVACY_SCOPE
        ));
    } else if !scopes.iter().any(|s| s == codes::PRIVACY_SCOPE) {
        errors.push(format!(
            "scope: '{}' is not {}: a {} consent does not decide disclosures",
            scopes.join("/"),
            codes::PRIVACY_SCOPE,
            scopes.join("/")
        ));
    }
    let date_time = match resource.get("dateTime").and_then(Value::as_str) {
        Some(text) => {
            let parsed = instant(text, false);
            if parsed.is_none() {
                errors.push(format!("dateTime: '{text}' is not a FHIR dateTime"));
            }
            parsed
        }
        None => None,
    };
    // A consent without a provision keeps its terms in its source document: on record, permits nothing.
    let provision = match resource.get("provision") {
        Some(p) => match read_provision(p, "provision", &mut errors) {
            Some(provision) => Some(provision),
            None => return Err(errors),
        },
        None => None,
    };
    match errors.is_empty() {
        true => Ok(Consent {
            id,
            status,
            patient,
            performers: parties("performer"),
            organizations: parties("organization"),
            policies,
            date_time,
            provision,
        }),
        false => Err(errors),
    }
}

fn array<'v>(value: &'v Value, key: &str) -> &'v [Value] {
    value
        .get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn codes_of(concept: &Value) -> Vec<String> {
    array(concept, "coding")
        .iter()
        .filter_map(|c| c.get("code").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

fn read_policies(resource: &Value, errors: &mut Vec<String>) -> Vec<String> {
    let mut policies: Vec<String> = resource.get("policyRule").map(codes_of).unwrap_or_default();
    for policy in array(resource, "policy") {
        if let Some(uri) = policy.get("uri").and_then(Value::as_str) {
            policies.push(uri.rsplit(['/', '#', ':']).next().unwrap_or(uri).to_owned());
        }
    }
    for code in &policies {
        if !codes::POLICIES.contains(&code.as_str()) {
            errors.push(format!(
                "policyRule: unknown policy code '{code}' (expected one of: {})",
                codes::POLICIES.join(", ")
            ));
        }
    }
    policies
}

fn read_provision(value: &Value, path: &str, errors: &mut Vec<String>) -> Option<Provision> {
    let rule = match value.get("type").and_then(Value::as_str) {
        Some("permit") => Rule::Permit,
        Some("deny") => Rule::Deny,
        Some(other) => {
            errors.push(format!("{path}.type: '{other}' (expected permit or deny)"));
            return None;
        }
        None => {
            errors.push(format!("{path}.type: required (permit or deny)"));
            return None;
        }
    };
    let start = period_bound(value, "start", false, path, errors);
    let end = period_bound(value, "end", true, path, errors);
    if let (Some(s), Some(e)) = (start, end)
        && s > e
    {
        errors.push(format!(
            "{path}.period: impossible period, start {s} is after end {e}"
        ));
    }
    let (actors, sources) = read_actors(value, path, errors);
    let actions = checked_codes(
        array(value, "action").iter().flat_map(codes_of),
        codes::ACTIONS,
        &format!("{path}.action"),
        errors,
    );
    let purposes = checked_codes(
        array(value, "purpose").iter().filter_map(code_of),
        codes::PURPOSES,
        &format!("{path}.purpose"),
        errors,
    );
    let labels = checked_codes(
        array(value, "securityLabel").iter().filter_map(code_of),
        codes::LABELS,
        &format!("{path}.securityLabel"),
        errors,
    );
    for (i, label) in array(value, "securityLabel").iter().enumerate() {
        if let (Some(system), Some(code)) = (
            label.get("system").and_then(Value::as_str),
            label.get("code").and_then(Value::as_str),
        ) && codes::LABELS.contains(&code)
            && system != codes::label_system(code)
        {
            errors.push(format!(
                "{path}.securityLabel[{i}]: '{code}' belongs to {}, not {system}",
                codes::label_system(code)
            ));
        }
    }
    let (classes, profiles) = read_classes(value, path, errors);
    let codes_about = array(value, "code")
        .iter()
        .flat_map(|concept| array(concept, "coding").iter())
        .filter_map(|c| {
            let code = c.get("code").and_then(Value::as_str)?;
            let system = c.get("system").and_then(Value::as_str).unwrap_or_default();
            Some(format!("{system}|{code}"))
        })
        .collect();
    let data = read_data(value, path, errors);
    let data_start = bound_at(value, "/dataPeriod/start", false, path, errors);
    let data_end = bound_at(value, "/dataPeriod/end", true, path, errors);
    if let (Some(s), Some(e)) = (data_start, data_end)
        && s > e
    {
        errors.push(format!(
            "{path}.dataPeriod: impossible period, start {s} is after end {e}"
        ));
    }
    let nested = array(value, "provision")
        .iter()
        .enumerate()
        .filter_map(|(i, p)| read_provision(p, &format!("{path}.provision[{i}]"), errors))
        .collect();
    Some(Provision {
        path: path.to_owned(),
        rule,
        start,
        end,
        actors,
        sources,
        actions,
        purposes,
        classes,
        profiles,
        codes: codes_about,
        labels,
        data,
        data_start,
        data_end,
        nested,
    })
}

/// `provision.actor`: each needs a `reference` (who) and a `role` (v3 ParticipationType, case-sensitive): a
/// recipient role (IRCP, PRCP, REFT, TRC) limits the provision to those recipients, a custodian or author
/// role (CST, AUT, INF, REFB) to data from those sources. An actor without a party, without a role, or in
/// any other role makes the consent unusable: the gate cannot tell whom the provision is about.
fn read_actors(value: &Value, path: &str, errors: &mut Vec<String>) -> (Vec<Party>, Vec<Party>) {
    let mut recipients = Vec::new();
    let mut sources = Vec::new();
    for (i, actor) in array(value, "actor").iter().enumerate() {
        let at = format!("{path}.actor[{i}]");
        let Some(reference) = actor.get("reference").filter(|r| r.is_object()) else {
            errors.push(format!(
                "{at}.reference: required: an actor named only by its role names no one, and the provision cannot be applied"
            ));
            continue;
        };
        let party = Party::from_reference(reference);
        if party.reference.is_none() && party.identifier.is_none() {
            errors.push(format!(
                "{at}.reference: names no one (no reference, no identifier)"
            ));
            continue;
        }
        let roles: Vec<(Option<&str>, &str)> = actor
            .get("role")
            .map(|role| array(role, "coding"))
            .unwrap_or_default()
            .iter()
            .filter_map(|c| {
                let code = c.get("code").and_then(Value::as_str)?;
                Some((c.get("system").and_then(Value::as_str), code))
            })
            .collect();
        let known = |(system, code): &(Option<&str>, &str)| {
            system.is_none_or(|s| s == codes::V3_PARTICIPATION_TYPE)
                && (codes::RECIPIENT_ROLES.contains(code) || codes::SOURCE_ROLES.contains(code))
        };
        match roles.iter().find(|r| known(r)) {
            Some((_, code)) if codes::RECIPIENT_ROLES.contains(code) => recipients.push(party),
            Some(_) => sources.push(party),
            None if roles.is_empty() => errors.push(format!(
                "{at}.role: required (v3 ParticipationType: a recipient role {} or a source role {})",
                codes::RECIPIENT_ROLES.join("/"),
                codes::SOURCE_ROLES.join("/")
            )),
            None => errors.push(format!(
                "{at}.role: '{}' is not a role the gate can apply to a disclosure (v3 ParticipationType, case-sensitive: a recipient role {} or a source role {})",
                roles
                    .iter()
                    .map(|(s, c)| format!("{}|{c}", s.unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join(", "),
                codes::RECIPIENT_ROLES.join("/"),
                codes::SOURCE_ROLES.join("/")
            )),
        }
    }
    (recipients, sources)
}

/// `provision.class`: resource types (resource-types, names case-sensitive) or profiles (StructureDefinition
/// URLs). Any other code or system makes the consent unusable: a class that matched nothing would silently
/// widen a permit or void a deny.
fn read_classes(value: &Value, path: &str, errors: &mut Vec<String>) -> (Vec<String>, Vec<String>) {
    let mut classes = Vec::new();
    let mut profiles = Vec::new();
    for (i, class) in array(value, "class").iter().enumerate() {
        let code = class
            .get("code")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let system = class.get("system").and_then(Value::as_str);
        let at = format!("{path}.class[{i}]");
        if code.starts_with("http://") || code.starts_with("https://") {
            if code.contains("/StructureDefinition/") {
                profiles.push(code.to_owned());
            } else {
                errors.push(format!("{at}: '{code}' is not a StructureDefinition URL"));
            }
        } else if system.is_some_and(|s| s != codes::RESOURCE_TYPES_SYSTEM) {
            errors.push(format!(
                "{at}: unknown class system '{}' (expected {})",
                system.unwrap_or_default(),
                codes::RESOURCE_TYPES_SYSTEM
            ));
        } else if codes::RESOURCE_TYPES.contains(&code) {
            classes.push(code.to_owned());
        } else {
            let hint = codes::RESOURCE_TYPES
                .iter()
                .find(|t| t.eq_ignore_ascii_case(code))
                .map(|t| format!(" (resource types are case-sensitive: did you mean {t}?)"))
                .unwrap_or_default();
            errors.push(format!(
                "{at}: '{code}' is not a FHIR R4 resource type{hint}"
            ));
        }
    }
    (classes, profiles)
}

fn read_data(value: &Value, path: &str, errors: &mut Vec<String>) -> Vec<(DataMeaning, Party)> {
    let mut data = Vec::new();
    for (i, item) in array(value, "data").iter().enumerate() {
        let at = format!("{path}.data[{i}]");
        let meaning = match item.get("meaning").and_then(Value::as_str) {
            Some("instance") => DataMeaning::Instance,
            Some("related") => DataMeaning::Related,
            Some("dependents") => DataMeaning::Dependents,
            Some("authoredby") => DataMeaning::AuthoredBy,
            Some(other) => {
                errors.push(format!(
                    "{at}.meaning: unknown code '{other}' (expected one of: {})",
                    codes::DATA_MEANINGS.join(", ")
                ));
                continue;
            }
            None => {
                errors.push(format!("{at}.meaning: required"));
                continue;
            }
        };
        let party = item
            .get("reference")
            .map(Party::from_reference)
            .unwrap_or_default();
        if party.reference.is_none() && party.identifier.is_none() {
            errors.push(format!("{at}.reference: required (the data it names)"));
            continue;
        }
        data.push((meaning, party));
    }
    data
}

fn bound_at(
    value: &Value,
    pointer: &str,
    end: bool,
    path: &str,
    errors: &mut Vec<String>,
) -> Option<DateTime<FixedOffset>> {
    let text = value.pointer(pointer).and_then(Value::as_str)?;
    let parsed = instant(text, end);
    if parsed.is_none() {
        errors.push(format!(
            "{path}{}: '{text}' is not a FHIR dateTime",
            pointer.replace('/', ".")
        ));
    }
    parsed
}

fn code_of(coding: &Value) -> Option<String> {
    coding
        .get("code")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn checked_codes(
    found: impl Iterator<Item = String>,
    known: &[&str],
    path: &str,
    errors: &mut Vec<String>,
) -> Vec<String> {
    let found: Vec<String> = found.collect();
    for code in &found {
        if !known.contains(&code.as_str()) {
            errors.push(format!(
                "{path}: unknown code '{code}' (expected one of: {})",
                known.join(", ")
            ));
        }
    }
    found
}

fn period_bound(
    value: &Value,
    key: &str,
    end: bool,
    path: &str,
    errors: &mut Vec<String>,
) -> Option<DateTime<FixedOffset>> {
    let text = value
        .pointer(&format!("/period/{key}"))
        .and_then(Value::as_str)?;
    let parsed = instant(text, end);
    if parsed.is_none() {
        errors.push(format!(
            "{path}.period.{key}: '{text}' is not a FHIR dateTime"
        ));
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::parse;
    use serde_json::{Value, json};

    fn with_actor(actor: Value) -> Value {
        json!({
            "resourceType": "Consent", "id": "c-1", "status": "active",
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
            "patient": {"reference": "Patient/p-1"},
            "policyRule": {"coding": [{"system": "urn:onedoor:codes", "code": "FERPA"}]},
            "provision": {"type": "permit", "actor": [actor]}
        })
    }

    fn role(code: &str) -> Value {
        json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": code}]})
    }

    #[test]
    fn actor_roles_name_recipients_or_sources_and_nothing_else() {
        let org = json!({"reference": "Organization/o-1"});
        let recipient =
            parse(&with_actor(json!({"role": role("IRCP"), "reference": org}))).unwrap();
        let provision = recipient.provision.unwrap();
        assert_eq!(provision.actors.len(), 1);
        assert!(provision.sources.is_empty());
        let source = parse(&with_actor(json!({"role": role("CST"), "reference": org}))).unwrap();
        let provision = source.provision.unwrap();
        assert!(provision.actors.is_empty());
        assert_eq!(provision.sources.len(), 1);
        for (actor, wanted) in [
            (
                json!({"role": role("IRCP")}),
                "provision.actor[0].reference: required",
            ),
            (
                json!({"reference": org}),
                "provision.actor[0].role: required",
            ),
            (
                json!({"role": role("ircp"), "reference": org}),
                "is not a role the gate can apply",
            ),
            (
                json!({"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleClass", "code": "IRCP"}]}, "reference": org}),
                "is not a role the gate can apply",
            ),
            (
                json!({"role": role("IRCP"), "reference": {"display": "someone"}}),
                "names no one",
            ),
        ] {
            let errors = parse(&with_actor(actor)).unwrap_err();
            assert!(
                errors.iter().any(|e| e.contains(wanted)),
                "{wanted}: {errors:?}"
            );
        }
    }
}
