//! Redaction: the resources a decision withholds are removed from the record wherever they are (Bundle
//! entries, contained resources, entries of nested Bundles), and nothing released still points to or
//! describes them:
//!
//! - every Reference to withheld data (by `Type/id`, absolute URL, fullUrl, `#contained` id or identifier)
//!   is removed with what holds it (a `supportingInfo` or `reasonReference` entry, an extension whose value
//!   it is), its `display` with it;
//! - narratives (`text`) are dropped from every resource of a redacted record (they may describe anything);
//! - free text (notes, displays, descriptions, comments, extension strings) that repeats a string found
//!   only in withheld data is removed;
//! - the record is labelled `REDACTED` (`meta.security`);
//! - a literal reference that resolves to nothing in the record is removed with what holds it, or, when it
//!   also carries an identifier, keeps only that logical identifier (its `reference` and `display` go).
//!
//! Obligations travel with what is released: when 42 CFR Part 2 data leaves, the Bundle's `meta.security`
//! carries ETH and the obligation code NORDSCLCD (no redisclosure without consent), and the redisclosure
//! notice is in `meta.extension` (url [`NOTICE_EXTENSION`], `valueString`) of the Bundle and of every
//! released Part 2 resource.

use super::codes::{
    NOTICE_EXTENSION, PART2_NOTICE, REDISCLOSURE_OBLIGATION, V3_ACT_CODE, V3_OBSERVATION_VALUE,
};
use super::decision::Decision;
use super::subject::Record;
use crate::members::Members;
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashSet};

/// Keys whose string values are structure, not content: never scrubbed as free text.
const STRUCTURAL: &[&str] = &[
    "resourceType",
    "id",
    "reference",
    "fullUrl",
    "system",
    "url",
    "status",
    "intent",
    "code",
    "version",
    "profile",
    "use",
    "gender",
    "method",
];

/// Apply a decision's obligations to a record, returning what may be released.
pub fn apply(record: &Value, decision: &Decision) -> Value {
    let mut released = record.clone();
    for (pointer, target) in &decision.unresolved_references {
        if let Some(resource) = released.pointer_mut(pointer) {
            unlink(resource, target, true);
        }
    }
    if decision.redacts() {
        let read = Record::read(record);
        let withheld_pointers: HashSet<&str> = decision
            .withheld_pointers
            .iter()
            .map(String::as_str)
            .collect();
        let withheld: Vec<usize> = (0..read.items.len())
            .filter(|&i| withheld_pointers.contains(read.items[i].pointer.as_str()))
            .collect();
        // Every name a withheld resource goes by.
        let mut names: HashSet<String> = HashSet::new();
        let mut local: HashSet<(String, String)> = HashSet::new();
        for &i in &withheld {
            let item = &read.items[i];
            names.extend(item.aliases.iter().cloned());
            if let (Some(container), Some(id)) = (
                item.container,
                item.resource.get("id").and_then(Value::as_str),
            ) {
                local.insert((read.items[container].pointer.clone(), id.to_owned()));
            }
        }
        clean(
            &mut released,
            "",
            "",
            &Withheld {
                pointers: &withheld_pointers,
                names: &names,
                local: &local,
            },
        );
        // Words found only in withheld data: every word of withheld data that released data does not
        // hold outside its free text.
        drop_narratives(&mut released);
        let mut secret = BTreeSet::new();
        for &i in &withheld {
            words_of(read.items[i].resource, None, false, &mut secret);
        }
        let mut kept = BTreeSet::new();
        words_of(&released, None, true, &mut kept);
        let secret: BTreeSet<String> = secret.difference(&kept).cloned().collect();
        scrub_text(&mut released, &secret);
        prune_empty(&mut released);
        add_label(
            &mut released,
            json!({"system": V3_OBSERVATION_VALUE, "code": "REDACTED", "display": "redacted"}),
        );
    }
    if !decision.notices.is_empty() {
        attach_notice(&mut released);
    }
    released
}

/// Remove every literal reference to `target` from a resource (not looking into contained or nested
/// resources, which are items of their own): a reference that also carries an identifier keeps it (a
/// logical reference) and loses its `reference` and `display`; any other goes with what holds it.
fn unlink(value: &mut Value, target: &str, top: bool) {
    let Value::Object(map) = value else {
        if let Value::Array(list) = value {
            list.retain(|e| !unlinked(e, target));
            list.iter_mut().for_each(|e| unlink(e, target, false));
        }
        return;
    };
    if !top && map.contains_key("resourceType") {
        return;
    }
    if map.get("reference").and_then(Value::as_str) == Some(target) {
        map.remove("reference");
        map.remove("display");
    }
    let keys: Vec<String> = map.keys().cloned().collect();
    for key in keys {
        if top && key == "contained" {
            continue;
        }
        let gone = map.get(&key).is_some_and(|child| unlinked(child, target));
        if gone {
            map.remove(&key);
        } else if let Some(child) = map.get_mut(&key) {
            unlink(child, target, false);
        }
    }
}

/// Whether a value is a reference to `target` with nothing else naming what it points to (no identifier).
fn unlinked(value: &Value, target: &str) -> bool {
    value.as_object().is_some_and(|map| {
        !map.contains_key("resourceType")
            && map.get("reference").and_then(Value::as_str) == Some(target)
            && !map.get("identifier").is_some_and(Value::is_object)
    })
}

/// What names withheld data: aliases (`Type/id`, fullUrl, identifiers) and contained ids per container.
struct Withheld<'w> {
    pointers: &'w HashSet<&'w str>,
    names: &'w HashSet<String>,
    local: &'w HashSet<(String, String)>,
}

impl Withheld<'_> {
    fn named(&self, reference: &Value, container: &str) -> bool {
        let Some(map) = reference.as_object() else {
            return false;
        };
        if let Some(text) = map.get("reference").and_then(Value::as_str) {
            if let Some(id) = text.strip_prefix('#') {
                return self.local.contains(&(container.to_owned(), id.to_owned()));
            }
            let trimmed = text.split("/_history/").next().unwrap_or(text);
            if self.names.contains(trimmed) {
                return true;
            }
            let parts: Vec<&str> = trimmed.rsplitn(3, '/').collect();
            if parts.len() >= 2 && self.names.contains(&format!("{}/{}", parts[1], parts[0])) {
                return true;
            }
        }
        map.get("identifier")
            .and_then(super::model::identifier_key)
            .is_some_and(|key| self.names.contains(&key))
    }

    /// Whether an element (not a resource, not a Bundle entry) refers to withheld data anywhere inside it.
    fn refers(&self, value: &Value, container: &str) -> bool {
        match value {
            Value::Object(map) => {
                if map.contains_key("resourceType") || map.contains_key("resource") {
                    return false;
                }
                self.named(value, container) || map.values().any(|v| self.refers(v, container))
            }
            Value::Array(list) => list.iter().any(|v| self.refers(v, container)),
            _ => false,
        }
    }
}

/// Remove the withheld resources (by their pointers in the original record) and every element that refers
/// to one, walking the copy with the original pointers.
fn clean(value: &mut Value, pointer: &str, container: &str, withheld: &Withheld<'_>) {
    let Value::Object(map) = value else {
        return;
    };
    let container = if map.contains_key("resourceType") && !pointer.contains("/contained/") {
        pointer.to_owned()
    } else if map.contains_key("resourceType") {
        // A contained resource: `#id` references inside it name its container's other contained resources.
        pointer
            .rsplit_once("/contained/")
            .map(|(c, _)| c.to_owned())
            .unwrap_or_default()
    } else {
        container.to_owned()
    };
    let keys: Vec<String> = map.keys().cloned().collect();
    for key in keys {
        let at = format!("{pointer}/{key}");
        let Some(child) = map.get_mut(&key) else {
            continue;
        };
        match child {
            Value::Array(list) => {
                let old = std::mem::take(list);
                for (i, mut element) in old.into_iter().enumerate() {
                    let here = format!("{at}/{i}");
                    let gone = (key == "contained" && withheld.pointers.contains(here.as_str()))
                        || (key == "entry"
                            && element.get("resource").is_some()
                            && withheld
                                .pointers
                                .contains(format!("{here}/resource").as_str()))
                        || withheld.refers(&element, &container);
                    if !gone {
                        clean(&mut element, &here, &container, withheld);
                        list.push(element);
                    }
                }
            }
            Value::Object(_) if withheld.named(child, &container) => {
                map.remove(&key);
            }
            Value::Object(_) => clean(child, &at, &container, withheld),
            _ => {}
        }
    }
}

/// Elements that are free text about something (notes, displays, descriptions, comments, extensions):
/// removed from released data when they repeat a word found only in withheld data.
const FREE_TEXT: &[&str] = &[
    "note",
    "display",
    "description",
    "comment",
    "extension",
    "modifierExtension",
    "valueString",
    "valueMarkdown",
    "patientInstruction",
];

/// The words of a string: runs of letters and digits, at least four long, with a letter, lowercased.
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 4 && w.chars().any(char::is_alphabetic))
        .map(str::to_lowercase)
}

/// Words of the strings of a value, structure excluded (and free text too when `skip_free_text`).
fn words_of(value: &Value, key: Option<&str>, skip_free_text: bool, out: &mut BTreeSet<String>) {
    match value {
        Value::String(s) if key.is_none_or(|k| !STRUCTURAL.contains(&k)) => out.extend(words(s)),
        Value::Array(list) => list
            .iter()
            .for_each(|v| words_of(v, key, skip_free_text, out)),
        Value::Object(map) => {
            for (k, v) in map {
                if skip_free_text && FREE_TEXT.contains(&k.as_str()) {
                    continue;
                }
                words_of(v, Some(k), skip_free_text, out);
            }
        }
        _ => {}
    }
}

fn drop_narratives(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.contains_key("resourceType") && map.get("text").is_some_and(Value::is_object) {
                map.remove("text");
            }
            map.values_mut().for_each(drop_narratives);
        }
        Value::Array(list) => list.iter_mut().for_each(drop_narratives),
        _ => {}
    }
}

fn mentions(value: &Value, secret: &BTreeSet<String>) -> bool {
    match value {
        Value::String(s) => words(s).any(|w| secret.contains(&w)),
        Value::Array(list) => list.iter().any(|v| mentions(v, secret)),
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| !STRUCTURAL.contains(&k.as_str()) && mentions(v, secret)),
        _ => false,
    }
}

/// Remove free text that repeats what only withheld data says: a note, an extension, a display, a
/// description (the whole element).
fn scrub_text(value: &mut Value, secret: &BTreeSet<String>) {
    if secret.is_empty() {
        return;
    }
    match value {
        Value::Object(map) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                let Some(child) = map.get_mut(&key) else {
                    continue;
                };
                if FREE_TEXT.contains(&key.as_str()) {
                    match child {
                        Value::Array(list) => list.retain(|v| !mentions(v, secret)),
                        other if mentions(other, secret) => {
                            map.remove(&key);
                            continue;
                        }
                        _ => {}
                    }
                }
                if let Some(child) = map.get_mut(&key) {
                    scrub_text(child, secret);
                }
            }
        }
        Value::Array(list) => list.iter_mut().for_each(|v| scrub_text(v, secret)),
        _ => {}
    }
}

/// Remove empty objects and arrays, and extensions left without a value.
fn prune_empty(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.values_mut().for_each(prune_empty);
            map.retain(|_, v| !is_empty(v));
        }
        Value::Array(list) => {
            list.iter_mut().for_each(prune_empty);
            list.retain(|v| !is_empty(v) && !hollow_extension(v));
        }
        _ => {}
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.is_empty(),
        Value::Array(list) => list.is_empty(),
        _ => false,
    }
}

fn hollow_extension(value: &Value) -> bool {
    value.as_object().is_some_and(|map| {
        map.contains_key("url") && map.len() == 1 && !map.contains_key("resourceType")
    })
}

fn attach_notice(record: &mut Value) {
    add_label(
        record,
        json!({"system": V3_ACT_CODE, "code": "ETH", "display": "substance abuse information sensitivity"}),
    );
    add_label(
        record,
        json!({"system": V3_ACT_CODE, "code": REDISCLOSURE_OBLIGATION, "display": "no redisclosure without consent directive"}),
    );
    add_notice(record);
    let part2 = |resource: &Value| {
        resource
            .at(&["meta", "security"])
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|l| {
                super::codes::is_part2(
                    l.get("system").and_then(Value::as_str),
                    l.get("code").and_then(Value::as_str).unwrap_or_default(),
                )
            })
    };
    if let Some(entries) = record.get_mut("entry").and_then(Value::as_array_mut) {
        for entry in entries {
            if let Some(resource) = entry.get_mut("resource")
                && part2(resource)
            {
                add_label(
                    resource,
                    json!({"system": V3_ACT_CODE, "code": REDISCLOSURE_OBLIGATION, "display": "no redisclosure without consent directive"}),
                );
                add_notice(resource);
            }
        }
    }
}

fn add_notice(resource: &mut Value) {
    let Some(object) = resource.as_object_mut() else {
        return;
    };
    let meta = object.entry("meta").or_insert_with(|| json!({}));
    if let Some(meta) = meta.as_object_mut() {
        let extensions = meta.entry("extension").or_insert_with(|| json!([]));
        if let Some(list) = extensions.as_array_mut()
            && !list
                .iter()
                .any(|e| e.get("url").and_then(Value::as_str) == Some(NOTICE_EXTENSION))
        {
            list.push(json!({"url": NOTICE_EXTENSION, "valueString": PART2_NOTICE}));
        }
    }
}

fn add_label(record: &mut Value, coding: Value) {
    let Some(object) = record.as_object_mut() else {
        return;
    };
    let meta = object.entry("meta").or_insert_with(|| json!({}));
    if let Some(meta) = meta.as_object_mut() {
        let security = meta.entry("security").or_insert_with(|| json!([]));
        if let Some(list) = security.as_array_mut()
            && !list.iter().any(|c| c.get("code") == coding.get("code"))
        {
            list.push(coding);
        }
    }
}
