//! What a decision needs to know about the record: who it is about (the Patient and the aliases they are
//! known by), their age, their guardians, who the recipient and the source are in the bundle's own terms,
//! and which resources carry which security labels.

use super::codes;
use super::model::identifier_key;
use super::time::{age_at, instant};
use chrono::{DateTime, FixedOffset};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// Age of majority: from this age a student's own consent is needed (FERPA rights transfer to the
/// eligible student), and a guardian's no longer covers them.
pub const AGE_OF_MAJORITY: u32 = 18;

/// The person a record is about.
#[derive(Debug, Clone)]
pub struct Subject {
    /// `Patient/id`, its fullUrl and `system|value` identifiers.
    pub aliases: HashSet<String>,
    /// `Patient/id`.
    pub reference: String,
    /// Age at the decision time, when the birth date is known.
    pub age: Option<u32>,
    /// References and identifiers of the people who may consent for them while a minor.
    pub guardians: HashSet<String>,
    /// RelatedPersons of the person who may not consent for them, and why.
    pub not_guardians: Vec<String>,
    /// The age from which their own consent is needed.
    pub age_of_majority: u32,
}

impl Subject {
    /// Whether a guardian must consent (a minor, or age unknown: the cautious reading).
    pub fn needs_guardian(&self) -> bool {
        self.age.is_none_or(|age| age < self.age_of_majority)
    }
}

/// A security label on data: its system (when given) and code.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Label {
    /// The code system.
    pub system: Option<String>,
    /// The code.
    pub code: String,
}

/// Whom a resource is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Person {
    /// A Patient in the record (its item index).
    Known(usize),
    /// Someone the record names but does not hold (a reference or identifier that resolves to no Patient).
    Unknown(String),
}

/// One resource of a record, wherever it is: a Bundle entry, a contained resource, an entry of a nested
/// Bundle.
#[derive(Debug, Clone)]
pub struct Item<'a> {
    /// The resource.
    pub resource: &'a Value,
    /// Its type.
    pub kind: String,
    /// `Type/id` (or `Type` at its JSON pointer when it has no id).
    pub reference: String,
    /// Its JSON pointer in the record.
    pub pointer: String,
    /// The entry's fullUrl.
    pub full_url: Option<String>,
    /// The item it is contained in.
    pub container: Option<usize>,
    /// Every label it carries: its own, its Bundles', its container's, and the sensitivity of clinical data it
    /// refers to.
    pub labels: Vec<Label>,
    /// The people it is about (sorted).
    pub persons: Vec<Person>,
    /// The items it refers to (sorted).
    pub refs: Vec<usize>,
    /// Its aliases: `Type/id`, fullUrl, `system|value` identifiers.
    pub aliases: Vec<String>,
}

/// Resource types that are the referral's frame or administrative data: they keep their own labels and do
/// not take on the sensitivity of clinical data they point to (the pointer is removed instead when that data
/// is withheld).
pub const FRAME_TYPES: &[&str] = &[
    "Patient",
    "RelatedPerson",
    "Person",
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "Location",
    "HealthcareService",
    "Endpoint",
    "ServiceRequest",
    "Task",
    "Consent",
    "Provenance",
    "Bundle",
    "Group",
    "Device",
];

/// From how many resources a record's aliases are indexed rather than scanned.
const INDEX_FROM: usize = 32;

/// The elements that say whom a resource is about.
pub const PERSON_ELEMENTS: &[&str] = &["subject", "patient", "for", "beneficiary"];

/// A record read for decisions: every resource at any depth, whom each is about, what each refers to.
#[derive(Debug, Clone)]
pub struct Record<'a> {
    /// The resources, in document order.
    pub items: Vec<Item<'a>>,
    /// Literal references (`reference` strings) that resolve to nothing in the record (`item -> target`).
    pub dangling: Vec<(usize, String)>,
    /// Alias → items, in document order.
    index: HashMap<String, Vec<usize>>,
}

impl<'a> Record<'a> {
    /// Read a record (a Bundle, possibly with nested Bundles and contained resources, or one resource).
    pub fn read(record: &'a Value) -> Self {
        let mut items = Vec::new();
        walk(record, String::new(), None, None, &[], &mut items);
        // A referral has a handful of resources: scanning them is cheaper than indexing; a large record
        // is indexed.
        let mut index: HashMap<String, Vec<usize>> = HashMap::new();
        if items.len() > INDEX_FROM {
            for (i, item) in items.iter().enumerate() {
                for alias in &item.aliases {
                    index.entry(alias.clone()).or_default().push(i);
                }
            }
        }
        let mut record = Self {
            items,
            dangling: Vec::new(),
            index,
        };
        record.link();
        record
    }

    /// An organization as a request names it (`system|value` or `Organization/id`), with the other names the
    /// record gives it (its `Type/id`, fullUrl and identifiers), from the items already read.
    pub fn organization_aliases(&self, name: &str) -> HashSet<String> {
        let mut aliases = HashSet::from([name.to_owned()]);
        for item in self.items.iter().filter(|i| i.kind == "Organization") {
            if item.aliases.iter().any(|a| a == name) {
                aliases.extend(item.aliases.iter().cloned());
            }
        }
        aliases
    }

    /// The item a reference names, seen from item `from`.
    pub fn resolve(&self, from: usize, reference: &Value) -> Option<usize> {
        if let Some(text) = reference.get("reference").and_then(Value::as_str) {
            if let Some(local) = text.strip_prefix('#') {
                let root = self.items[from].container.unwrap_or(from);
                return self.items.iter().position(|i| {
                    i.container == Some(root)
                        && i.resource.get("id").and_then(Value::as_str) == Some(local)
                });
            }
            let trimmed = text.split("/_history/").next().unwrap_or(text);
            if let Some(i) = self.find_alias(trimmed, None) {
                return Some(i);
            }
            let parts: Vec<&str> = trimmed.rsplitn(3, '/').collect();
            if parts.len() >= 2 {
                let short = format!("{}/{}", parts[1], parts[0]);
                return self.find_alias(&short, None);
            }
            return None;
        }
        let key = reference.get("identifier").and_then(identifier_key)?;
        let wanted = reference.get("type").and_then(Value::as_str);
        self.find_alias(&key, wanted)
    }

    fn find_alias(&self, alias: &str, kind: Option<&str>) -> Option<usize> {
        // Patients first: an identifier shared by a person and something else names the person.
        if self.items.len() <= INDEX_FROM {
            let matching = |i: &usize| {
                let item = &self.items[*i];
                kind.is_none_or(|k| item.kind == k) && item.aliases.iter().any(|a| a == alias)
            };
            let all = 0..self.items.len();
            return all
                .clone()
                .filter(matching)
                .find(|&i| self.items[i].kind == "Patient")
                .or_else(|| all.into_iter().find(matching));
        }
        let candidates = self.index.get(alias)?;
        let matching = |i: &&usize| kind.is_none_or(|k| self.items[**i].kind == k);
        candidates
            .iter()
            .filter(matching)
            .find(|&&i| self.items[i].kind == "Patient")
            .or_else(|| candidates.iter().find(matching))
            .copied()
    }

    fn link(&mut self) {
        let count = self.items.len();
        for index in 0..count {
            let resource = self.items[index].resource;
            let mut references = Vec::new();
            collect_references(resource, true, &mut references);
            let mut refs = BTreeSet::new();
            for reference in &references {
                match self.resolve(index, reference) {
                    Some(target) if target != index => {
                        refs.insert(target);
                    }
                    Some(_) => {}
                    // Only a literal reference dangles: a logical one (by identifier only) names an
                    // entity the record need not hold.
                    None if reference.get("reference").is_some_and(Value::is_string) => {
                        self.dangling.push((index, describe_reference(reference)))
                    }
                    None => {}
                }
            }
            let mut persons = BTreeSet::new();
            if self.items[index].kind == "Patient" {
                persons.insert(Person::Known(index));
            }
            for element in PERSON_ELEMENTS {
                let Some(value) = resource.get(*element) else {
                    continue;
                };
                let targets: Vec<&Value> = match value {
                    Value::Array(list) => list.iter().collect(),
                    other => vec![other],
                };
                for target in targets {
                    if !target.is_object() {
                        continue;
                    }
                    match self.resolve(index, target) {
                        Some(t) if self.items[t].kind == "Patient" => {
                            persons.insert(Person::Known(t));
                        }
                        Some(_) => {}
                        None => {
                            let text = target.get("reference").and_then(Value::as_str);
                            let typed = target.get("type").and_then(Value::as_str);
                            let personal = match (text, typed) {
                                (_, Some(t)) => t == "Patient",
                                (Some(r), None) => {
                                    r.starts_with('#') || r.contains("Patient/") || !r.contains('/')
                                }
                                (None, None) => true,
                            };
                            if personal {
                                persons.insert(Person::Unknown(describe_reference(target)));
                            }
                        }
                    }
                }
            }
            self.items[index].refs = refs.into_iter().collect();
            self.items[index].persons = persons.into_iter().collect();
        }
        // A contained resource that names no one is about whom its container is about.
        for index in 0..count {
            if self.items[index].persons.is_empty()
                && let Some(container) = self.items[index].container
            {
                self.items[index].persons = self.items[container].persons.clone();
            }
        }
        // Clinical data takes on the sensitivity of the clinical data it refers to (to a fixpoint).
        loop {
            let mut changed = false;
            for index in 0..count {
                if FRAME_TYPES.contains(&self.items[index].kind.as_str()) {
                    continue;
                }
                let inherited: Vec<Label> = self.items[index]
                    .refs
                    .iter()
                    .filter(|&&t| !FRAME_TYPES.contains(&self.items[t].kind.as_str()))
                    .flat_map(|&t| {
                        self.items[t]
                            .labels
                            .iter()
                            .filter(|l| inheritable(l))
                            .cloned()
                    })
                    .collect();
                for label in inherited {
                    if !self.items[index].labels.contains(&label) {
                        self.items[index].labels.push(label);
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }
    }

    /// The people the record is about: every Patient in it (item indexes, document order).
    pub fn patients(&self) -> Vec<usize> {
        (0..self.items.len())
            .filter(|&i| self.items[i].kind == "Patient")
            .collect()
    }

    /// The referral's person: the first top-level ServiceRequest's subject, else the only Patient.
    pub fn primary(&self) -> Option<Person> {
        let request = self.items.iter().find(|i| {
            i.kind == "ServiceRequest" && i.container.is_none() && depth(&i.pointer) <= 3
        });
        if let Some(request) = request {
            return request.persons.first().cloned();
        }
        match self.patients().as_slice() {
            [only] => Some(Person::Known(*only)),
            _ => None,
        }
    }

    /// Who a Patient is, their age, and who may consent for them.
    pub fn subject(
        &self,
        patient: usize,
        at: DateTime<FixedOffset>,
        custodial: &[String],
        age_of_majority: u32,
    ) -> Subject {
        let item = &self.items[patient];
        let age = item
            .resource
            .get("birthDate")
            .and_then(Value::as_str)
            .and_then(|b| age_at(b, at));
        let mut guardians = HashSet::new();
        let mut not_guardians = Vec::new();
        for (index, related) in self.items.iter().enumerate() {
            if related.kind != "RelatedPerson" || !related.persons.contains(&Person::Known(patient))
            {
                continue;
            }
            let _ = index;
            match custodial_reason(related.resource, at, custodial) {
                Ok(()) => guardians.extend(related.aliases.iter().cloned()),
                Err(why) => not_guardians.push(format!("{} {why}", related.reference)),
            }
        }
        Subject {
            aliases: item.aliases.iter().cloned().collect(),
            reference: item.reference.clone(),
            age,
            guardians,
            not_guardians,
            age_of_majority,
        }
    }
}

fn depth(pointer: &str) -> usize {
    pointer.matches('/').count()
}

fn inheritable(label: &Label) -> bool {
    let system = label.system.as_deref();
    match codes::confidentiality_rank(&label.code) {
        Some(rank) => {
            system.is_none_or(|s| s == codes::V3_CONFIDENTIALITY)
                && rank >= codes::confidentiality_rank("R").unwrap_or(4)
        }
        None => {
            codes::label_system(&label.code) == codes::V3_ACT_CODE
                && system.is_none_or(|s| s == codes::V3_ACT_CODE)
        }
    }
}

fn describe_reference(reference: &Value) -> String {
    reference
        .get("reference")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| reference.get("identifier").and_then(identifier_key))
        .unwrap_or_else(|| "(unnamed)".to_owned())
}

/// Every Reference in a value (objects with a `reference` string, or an `identifier` object), not looking
/// into contained resources (they are items of their own).
pub fn collect_references<'v>(value: &'v Value, top: bool, found: &mut Vec<&'v Value>) {
    match value {
        // A resource inside this one (an entry of a Bundle) is an item of its own.
        Value::Object(map) if !top && map.contains_key("resourceType") => {}
        Value::Object(map) => {
            let is_reference = map.get("reference").is_some_and(Value::is_string)
                || (!top && map.get("identifier").is_some_and(Value::is_object));
            if is_reference {
                found.push(value);
            }
            for (key, child) in map {
                if top && key == "contained" {
                    continue;
                }
                collect_references(child, false, found);
            }
        }
        Value::Array(list) => list
            .iter()
            .for_each(|v| collect_references(v, false, found)),
        _ => {}
    }
}

/// Why a RelatedPerson may not consent for a minor (Ok when they may): a custodial relationship (v3 RoleCode,
/// `custodial`), active on the date (`active`, `period`), and not under an intervention order however the
/// record says so (the `IO` label or tag, an `IO` relationship code, or the words "intervention order").
pub fn custodial_reason(
    related: &Value,
    at: DateTime<FixedOffset>,
    custodial: &[String],
) -> Result<(), String> {
    if under_intervention_order(related) {
        return Err("is under an intervention order".to_owned());
    }
    if related.get("active").and_then(Value::as_bool) == Some(false) {
        return Err("is not active".to_owned());
    }
    if let Some(start) = field(related, &["period", "start"]).and_then(Value::as_str)
        && instant(start, false).is_none_or(|s| at < s)
    {
        return Err(format!("is related only from {start}"));
    }
    if let Some(end) = field(related, &["period", "end"]).and_then(Value::as_str)
        && instant(end, true).is_none_or(|e| at > e)
    {
        return Err(format!("was related only until {end}"));
    }
    let roles: Vec<String> = related
        .get("relationship")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|c| {
            c.get("coding")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .filter(|c| {
            c.get("system")
                .and_then(Value::as_str)
                .is_none_or(|s| s == codes::V3_ROLE_CODE)
        })
        .filter_map(|c| c.get("code").and_then(Value::as_str).map(str::to_owned))
        .collect();
    if roles.iter().any(|r| custodial.contains(r)) {
        Ok(())
    } else if roles.is_empty() {
        Err("has no v3 RoleCode relationship: not a parent or legal guardian".to_owned())
    } else {
        Err(format!(
            "is related as {}: not a parent or legal guardian",
            roles.join("/")
        ))
    }
}

fn under_intervention_order(value: &Value) -> bool {
    match value {
        Value::Object(map) => {
            map.get("code").and_then(Value::as_str) == Some(INTERVENTION_ORDER)
                || map.values().any(under_intervention_order)
        }
        Value::Array(list) => list.iter().any(under_intervention_order),
        Value::String(text) => {
            let lower = text.to_ascii_lowercase();
            lower.contains("intervention order") || lower.contains("interventionorder")
        }
        _ => false,
    }
}

/// The label of a contact under an intervention order (SIF `ContactFlags/InterventionOrder`): never a
/// guardian, whatever else the record says about them.
pub const INTERVENTION_ORDER: &str = "IO";

fn own_labels(resource: &Value) -> Vec<Label> {
    field(resource, &["meta", "security"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| {
            Some(Label {
                system: c.get("system").and_then(Value::as_str).map(str::to_owned),
                code: c.get("code").and_then(Value::as_str)?.to_owned(),
            })
        })
        .collect()
}

fn walk<'a>(
    resource: &'a Value,
    pointer: String,
    full_url: Option<String>,
    container: Option<usize>,
    inherited: &[Label],
    items: &mut Vec<Item<'a>>,
) {
    let Some(kind) = resource.get("resourceType").and_then(Value::as_str) else {
        return;
    };
    let id = resource.get("id").and_then(Value::as_str);
    let reference = match id {
        Some(id) => format!("{kind}/{id}"),
        None => format!(
            "{kind} at {}",
            if pointer.is_empty() { "/" } else { &pointer }
        ),
    };
    let mut labels: Vec<Label> = inherited.to_vec();
    for label in own_labels(resource) {
        if !labels.contains(&label) {
            labels.push(label);
        }
    }
    let mut aliases: Vec<String> = resource
        .get("identifier")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(identifier_key)
        .collect();
    if id.is_some() && container.is_none() {
        aliases.push(reference.clone());
    }
    aliases.extend(full_url.iter().cloned());
    let index = items.len();
    items.push(Item {
        resource,
        kind: kind.to_owned(),
        reference,
        pointer: pointer.clone(),
        full_url,
        container,
        labels: labels.clone(),
        persons: Vec::new(),
        refs: Vec::new(),
        aliases,
    });
    if let Some(contained) = resource.get("contained").and_then(Value::as_array) {
        for (i, inner) in contained.iter().enumerate() {
            walk(
                inner,
                format!("{pointer}/contained/{i}"),
                None,
                Some(index),
                &labels,
                items,
            );
        }
    }
    if kind == "Bundle"
        && let Some(entries) = resource.get("entry").and_then(Value::as_array)
    {
        // Labels on a Bundle apply to everything in it.
        for (i, entry) in entries.iter().enumerate() {
            if let Some(inner) = entry.get("resource") {
                let url = entry
                    .get("fullUrl")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                walk(
                    inner,
                    format!("{pointer}/entry/{i}/resource"),
                    url,
                    None,
                    &labels,
                    items,
                );
            }
        }
    }
}

/// The value at a path of object keys: `Value::pointer` without parsing and unescaping a pointer string
/// (it allocates a string per token, a measurable part of a decision).
pub fn field<'v>(value: &'v Value, path: &[&str]) -> Option<&'v Value> {
    path.iter().try_fold(value, |v, key| v.get(*key))
}

/// Items keyed by pointer, for redaction.
pub fn by_pointer<'r>(record: &'r Record<'_>) -> BTreeMap<&'r str, usize> {
    record
        .items
        .iter()
        .enumerate()
        .map(|(i, item)| (item.pointer.as_str(), i))
        .collect()
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
    field(resource, &["meta", "security"])
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
