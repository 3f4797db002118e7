//! FHIR target paths: `name[0].given[+]`, `identifier[+]`, `identifier[=].value`, `gender`.
//!
//! `[n]` addresses the n-th element of a list, `[+]` appends a new element, `[=]` addresses the element the
//! last `[+]` at that place appended (the FHIR Shorthand conventions). A list element written without an
//! index appends the value (or takes a whole list value as is). Paths are checked against the FHIR R4
//! schema when a mapping is compiled, so a typo is a `file:line` error, not a surprise in production.

use crate::validation::FhirSchema;
use rustc_hash::FxHashMap;
use serde_json::{Map, Value};

/// How a path segment picks a list element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Index {
    /// `[n]`
    At(usize),
    /// `[+]`
    Append,
    /// `[=]`
    Last,
}

/// One segment: an element name, whether it is a list, and the index used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The JSON property name.
    pub name: String,
    /// The schema says the element repeats.
    pub is_array: bool,
    /// The index written in the path, if any.
    pub index: Option<Index>,
    /// The path up to this segment (`.name.given`), built once: where `[=]` finds its `[+]`, and what
    /// an error names.
    pub prefix: String,
}

/// A compiled target path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetPath {
    text: String,
    segments: Vec<Segment>,
}

/// Remembers which element each `[+]` appended, for later `[=]` (keyed by the mapping's own path text,
/// so a fast hash).
#[derive(Debug, Default)]
pub struct Cursor {
    last: FxHashMap<String, usize>,
}

impl TargetPath {
    /// Parse and check a path for a resource type.
    pub fn compile(text: &str, resource_type: &str, schema: &FhirSchema) -> Result<Self, String> {
        let mut segments = Vec::new();
        let mut names: Vec<&str> = Vec::new();
        for raw in text.split('.') {
            let (name, index) =
                split_index(raw).map_err(|why| format!("target '{text}': {why}"))?;
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("target '{text}': '{raw}' is not an element name"));
            }
            names.push(name);
            let info = schema
                .element(resource_type, &names)
                .map_err(|why| format!("target '{text}': {why}"))?;
            if index.is_some() && !info.is_array {
                return Err(format!(
                    "target '{text}': {resource_type}.{} is not a list, so it takes no index",
                    names.join(".")
                ));
            }
            segments.push(Segment {
                name: name.to_owned(),
                is_array: info.is_array,
                index,
                prefix: names.iter().map(|name| format!(".{name}")).collect(),
            });
        }
        if segments.is_empty() || text.is_empty() {
            return Err("empty target".to_owned());
        }
        Ok(Self {
            text: text.to_owned(),
            segments,
        })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Write `value` at this path into `resource`.
    pub fn set(
        &self,
        resource: &mut Value,
        value: Value,
        cursor: &mut Cursor,
    ) -> Result<(), String> {
        let mut node = resource;
        let last = self.segments.len() - 1;
        for (i, segment) in self.segments.iter().enumerate() {
            let prefix = &segment.prefix;
            let object = node
                .as_object_mut()
                .ok_or_else(|| format!("{}: '{}' is not an object", self.text, prefix))?;
            if i == last {
                return assign(object, segment, value, cursor, prefix);
            }
            node = child(object, segment, cursor, prefix)?;
        }
        Ok(())
    }
}

/// The largest list index a target may name (`name[99]`): a mapping that writes `name[100000000]` would
/// otherwise fill the list with that many empty elements for every record and exhaust memory.
pub const MAX_TARGET_INDEX: usize = 99;

fn split_index(raw: &str) -> Result<(&str, Option<Index>), String> {
    let Some(open) = raw.find('[') else {
        return Ok((raw, None));
    };
    let inner = raw[open + 1..]
        .strip_suffix(']')
        .ok_or_else(|| format!("'{raw}' has an unclosed ["))?;
    let index = match inner {
        "+" => Index::Append,
        "=" => Index::Last,
        n => {
            let at: usize = n
                .parse()
                .map_err(|_| format!("'{raw}': index must be a number, + or =",))?;
            if at > MAX_TARGET_INDEX {
                return Err(format!(
                    "'{raw}': index {at} is larger than {MAX_TARGET_INDEX} (expected a small position in the list; use [+] to append)"
                ));
            }
            Index::At(at)
        }
    };
    Ok((&raw[..open], Some(index)))
}

/// The member `name` of `object`, added as `make()` when absent. A small object's names are compared in
/// order first: most members a path passes through exist already (`meta` for the second `meta.security`),
/// and found that way the name is neither copied nor hashed.
fn member_or_insert<'a>(
    object: &'a mut Map<String, Value>,
    name: &str,
    make: impl FnOnce() -> Value,
) -> Result<&'a mut Value, String> {
    match crate::members::position_in_small(object, name) {
        Some(at) => object
            .values_mut()
            .nth(at)
            .ok_or_else(|| format!("'{name}' is missing from its object")),
        None => Ok(object.entry(name.to_owned()).or_insert_with(make)),
    }
}

fn list_slot<'a>(
    object: &'a mut Map<String, Value>,
    name: &str,
) -> Result<&'a mut Vec<Value>, String> {
    let slot = member_or_insert(object, name, || Value::Array(Vec::new()))?;
    slot.as_array_mut()
        .ok_or_else(|| format!("'{name}' already holds a single value"))
}

fn position(list: &mut Vec<Value>, index: Index, cursor: &mut Cursor, prefix: &str) -> usize {
    match index {
        Index::At(n) => {
            while list.len() <= n {
                list.push(Value::Object(Map::new()));
            }
            n
        }
        Index::Append => {
            list.push(Value::Object(Map::new()));
            let at = list.len() - 1;
            match cursor.last.get_mut(prefix) {
                Some(slot) => *slot = at,
                None => {
                    cursor.last.insert(prefix.to_owned(), at);
                }
            }
            at
        }
        Index::Last => {
            let at = cursor
                .last
                .get(prefix)
                .copied()
                .unwrap_or(list.len().saturating_sub(1));
            if list.is_empty() {
                list.push(Value::Object(Map::new()));
            }
            at.min(list.len() - 1)
        }
    }
}

fn child<'a>(
    object: &'a mut Map<String, Value>,
    segment: &Segment,
    cursor: &mut Cursor,
    prefix: &str,
) -> Result<&'a mut Value, String> {
    if !segment.is_array {
        return member_or_insert(object, &segment.name, || Value::Object(Map::new()));
    }
    let list = list_slot(object, &segment.name)?;
    let at = position(list, segment.index.unwrap_or(Index::Last), cursor, prefix);
    Ok(&mut list[at])
}

fn assign(
    object: &mut Map<String, Value>,
    segment: &Segment,
    value: Value,
    cursor: &mut Cursor,
    prefix: &str,
) -> Result<(), String> {
    if !segment.is_array {
        object.insert(segment.name.clone(), value);
        return Ok(());
    }
    match (segment.index, value) {
        (None, Value::Array(items)) => {
            list_slot(object, &segment.name)?.extend(items);
        }
        (None, single) => list_slot(object, &segment.name)?.push(single),
        (Some(index), single) => {
            let list = list_slot(object, &segment.name)?;
            let at = position(list, index, cursor, prefix);
            list[at] = single;
        }
    }
    Ok(())
}

/// Remove what FHIR forbids: `null`, empty strings, empty lists and empty objects, recursively. Returns
/// `None` when nothing is left.
pub fn prune(mut value: Value) -> Option<Value> {
    keeps(&mut value).then_some(value)
}

/// Prune in place; whether anything is left.
fn keeps(value: &mut Value) -> bool {
    match value {
        Value::Null => false,
        Value::String(s) => !crate::text::is_blank(s),
        Value::Array(items) => {
            items.retain_mut(keeps);
            !items.is_empty()
        }
        Value::Object(map) => {
            map.retain(|_, v| keeps(v));
            !map.is_empty()
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(text: &str) -> TargetPath {
        TargetPath::compile(text, "Patient", FhirSchema::global()).unwrap()
    }

    #[test]
    fn a_huge_index_is_refused_when_the_mapping_compiles() {
        let schema = FhirSchema::global();
        let error = TargetPath::compile("name[100000000].family", "Patient", schema).unwrap_err();
        assert!(
            error.contains("index 100000000 is larger than 99"),
            "{error}"
        );
        let error =
            TargetPath::compile("name[99999999999999999999999]", "Patient", schema).unwrap_err();
        assert!(error.contains("index must be a number"), "{error}");
        assert!(TargetPath::compile("name[99].family", "Patient", schema).is_ok());
    }

    #[test]
    fn builds_lists_and_objects() {
        let mut patient = json!({"resourceType": "Patient"});
        let mut cursor = Cursor::default();
        path("name[0].family")
            .set(&mut patient, json!("Doe"), &mut cursor)
            .unwrap();
        path("name[0].given[+]")
            .set(&mut patient, json!("John"), &mut cursor)
            .unwrap();
        path("name[0].given[+]")
            .set(&mut patient, json!("Michael"), &mut cursor)
            .unwrap();
        path("identifier[+].system")
            .set(&mut patient, json!("urn:a"), &mut cursor)
            .unwrap();
        path("identifier[=].value")
            .set(&mut patient, json!("1"), &mut cursor)
            .unwrap();
        path("gender")
            .set(&mut patient, json!("male"), &mut cursor)
            .unwrap();
        assert_eq!(
            patient,
            json!({"resourceType": "Patient", "name": [{"family": "Doe", "given": ["John", "Michael"]}],
                   "identifier": [{"system": "urn:a", "value": "1"}], "gender": "male"})
        );
    }

    #[test]
    fn rejects_paths_that_are_not_elements() {
        let schema = FhirSchema::global();
        assert!(
            TargetPath::compile("name[0].gvien", "Patient", schema)
                .unwrap_err()
                .contains("no element 'gvien'")
        );
        assert!(
            TargetPath::compile("gender[0]", "Patient", schema)
                .unwrap_err()
                .contains("not a list")
        );
        assert!(
            TargetPath::compile("name[x]", "Patient", schema)
                .unwrap_err()
                .contains("index must be")
        );
    }

    #[test]
    fn prune_removes_empty_values() {
        assert_eq!(
            prune(json!({"a": "", "b": [null, ""], "c": {"d": null}, "e": "x"})),
            Some(json!({"e": "x"}))
        );
        assert_eq!(
            prune(json!({"system": "urn:a", "value": ""})),
            Some(json!({"system": "urn:a"}))
        );
        assert_eq!(prune(json!("  ")), None);
    }
}
