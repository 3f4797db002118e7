//! The vendored FHIR R4 JSON schema: validation per resource type (compiled once, on first use) and
//! element lookup for `mappings check` (does `Patient.name.given` exist, is it a list?).

use super::{Issue, IssueSource};
use jsonschema::Registry;
use rustc_hash::FxHashMap;
use serde_json::{Value, json};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

const SCHEMA_TEXT: &str = include_str!("../../schemas/fhir.schema.v4.json");
const MAX_MESSAGE: usize = 300;

/// What the schema says of an element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElementInfo {
    /// The element repeats (a JSON array).
    pub is_array: bool,
    /// The definition name of its type (`HumanName`, `string`, `Task_Input`).
    pub type_name: String,
}

/// The parsed schema and the compiled validators.
///
/// Every resource definition reaches `ResourceList` (a oneOf over all resource types) through `contained`,
/// so a validator compiled from it would hold the whole schema (hundreds of MB per resource type). The
/// schema is kept with `ResourceList` reduced to "an object with a resourceType"; the resources inside
/// (`contained`, Bundle entries) are validated against their own types by `Validator`, with precise paths.
pub struct FhirSchema {
    /// `{"$schema": draft-06, "definitions": {...}}`: the one document every resource type's validator
    /// refers into.
    document: Value,
    /// The document, indexed once and shared by the validators of every resource type (each compiles only
    /// the definitions its type reaches, each definition once).
    registry: OnceLock<Option<Registry<'static>>>,
    /// Each resource type's validator, compiled once and kept for the life of the process (the schema is
    /// the process's): borrowed for `'static`, so looking one up changes no shared count.
    validators: Mutex<HashMap<String, &'static jsonschema::Validator>>,
}

thread_local! {
    /// The validators this thread has looked up: a long run's threads each validate ~120,000 resources,
    /// and a lookup behind the shared lock made the two threads of a run wait on each other (and bounced
    /// the lock's cache line between their cores).
    static LOOKED_UP: RefCell<FxHashMap<String, &'static jsonschema::Validator>> =
        RefCell::default();
}

/// The URI the shared schema document is registered under.
const DOCUMENT_URI: &str = "urn:onedoor:fhir-r4-schema";

impl FhirSchema {
    /// The process-wide schema (parsed on first use).
    pub fn global() -> &'static FhirSchema {
        static SCHEMA: OnceLock<FhirSchema> = OnceLock::new();
        SCHEMA.get_or_init(|| {
            let mut definitions = vendored_definitions();
            require_objects(&mut definitions);
            super::primitives::prepare_patterns(&mut definitions);
            definitions.insert(
                "ResourceList".to_owned(),
                json!({"type": "object", "required": ["resourceType"]}),
            );
            // Built by hand, not with `json!`: that macro would serialize the definitions into a copy.
            let mut document = serde_json::Map::new();
            document.insert(
                "$schema".to_owned(),
                Value::String("http://json-schema.org/draft-06/schema#".to_owned()),
            );
            document.insert("definitions".to_owned(), Value::Object(definitions));
            FhirSchema {
                document: Value::Object(document),
                registry: OnceLock::new(),
                validators: Mutex::new(HashMap::new()),
            }
        })
    }

    /// Whether the schema defines this resource type.
    pub fn is_resource_type(&self, name: &str) -> bool {
        self.definitions()
            .get(name)
            .and_then(|d| d.get("properties")?.get("resourceType")?.get("const"))
            .is_some_and(|c| c == name)
    }

    /// Validate a resource against its type's definition. Issue paths are JSON pointers.
    pub fn validate(&'static self, resource_type: &str, resource: &Value) -> Vec<Issue> {
        let Some(validator) = self.validator(resource_type) else {
            return vec![Issue {
                path: "/resourceType".into(),
                message: format!(
                    "unknown resource type '{resource_type}' (expected a FHIR R4 resource type)"
                ),
                source: IssueSource::Schema,
            }];
        };
        if validator.is_valid(resource) {
            return Vec::new();
        }
        validator
            .iter_errors(resource)
            .map(|err| Issue {
                path: err.instance_path().to_string(),
                message: shorten(err.to_string()),
                source: IssueSource::Schema,
            })
            .collect()
    }

    /// Look up an element by its path from a resource type (`["name", "given"]` on `Patient`).
    pub fn element(&self, resource_type: &str, path: &[&str]) -> Result<ElementInfo, String> {
        let mut type_name = resource_type.to_owned();
        let mut info = ElementInfo {
            is_array: false,
            type_name: type_name.clone(),
        };
        let mut walked = resource_type.to_owned();
        for name in path {
            let definition = self
                .definitions()
                .get(&type_name)
                .ok_or_else(|| format!("{walked} has no definition"))?;
            let property = definition
                .pointer(&format!("/properties/{name}"))
                .ok_or_else(|| format!("{walked} has no element '{name}'"))?;
            info = element_info(property)
                .ok_or_else(|| format!("{walked}.{name} has no usable type in the schema"))?;
            walked = format!("{walked}.{name}");
            type_name = info.type_name.clone();
        }
        Ok(info)
    }

    fn definitions(&self) -> &Value {
        &self.document["definitions"]
    }

    /// The shared registry over the schema document (indexed on first use).
    fn registry(&'static self) -> Option<&'static Registry<'static>> {
        self.registry
            .get_or_init(|| {
                let resource = jsonschema::Draft::Draft6.create_resource_ref(&self.document);
                Registry::new()
                    .draft(jsonschema::Draft::Draft6)
                    .add(DOCUMENT_URI, resource)
                    .and_then(|builder| builder.prepare())
                    .ok()
            })
            .as_ref()
    }

    /// Compile the validator of a resource type now, if it is one (see [`super::prepare`]).
    pub fn prepare(&'static self, resource_type: &str) {
        self.validator(resource_type);
    }

    fn validator(&'static self, resource_type: &str) -> Option<&'static jsonschema::Validator> {
        let known = LOOKED_UP.with(|cache| cache.borrow().get(resource_type).copied());
        if known.is_some() {
            return known;
        }
        let found = self.shared_validator(resource_type)?;
        LOOKED_UP.with(|cache| cache.borrow_mut().insert(resource_type.to_owned(), found));
        Some(found)
    }

    /// The validator every thread shares, compiled by the first to ask.
    fn shared_validator(
        &'static self,
        resource_type: &str,
    ) -> Option<&'static jsonschema::Validator> {
        let mut cache = self.validators.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = cache.get(resource_type) {
            return Some(found);
        }
        if !self.is_resource_type(resource_type) {
            return None;
        }
        let registry = self.registry()?;
        let schema = json!({
            "$schema": "http://json-schema.org/draft-06/schema#",
            "$ref": format!("{DOCUMENT_URI}#/definitions/{resource_type}"),
        });
        let compiled = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft6)
            .with_registry(registry)
            // The R4 patterns use no look-around or back-references: the plain `regex` engine runs them all.
            .with_pattern_options(jsonschema::PatternOptions::regex())
            // The primitive types' patterns, written out (`primitives`).
            .with_keyword(super::primitives::KEYWORD, super::primitives::keyword)
            .build(&schema)
            .ok()?;
        // At most one per resource type, for the life of the process.
        let compiled: &'static jsonschema::Validator = Box::leak(Box::new(compiled));
        cache.insert(resource_type.to_owned(), compiled);
        Some(compiled)
    }
}

/// The vendored schema's definitions, parsed once and moved out of the document (nothing else of it is
/// kept: its top-level `oneOf` over every resource type is `ResourceList` again).
fn vendored_definitions() -> serde_json::Map<String, Value> {
    super::schema_text::definitions(SCHEMA_TEXT)
        .expect("the vendored FHIR schema is JSON with definitions")
}

/// The R4 schema gives its complex types (`Meta`, `HumanName`, every resource) properties but no
/// `"type": "object"`, so `"meta": "x"` would pass: every definition with properties is made to require an
/// object, and a complex element of another JSON type is refused with its path.
fn require_objects(definitions: &mut serde_json::Map<String, Value>) {
    for definition in definitions.values_mut() {
        if let Some(definition) = definition.as_object_mut()
            && definition.contains_key("properties")
            && !definition.contains_key("type")
        {
            definition.insert("type".to_owned(), json!("object"));
        }
    }
}

fn element_info(property: &Value) -> Option<ElementInfo> {
    let (is_array, target) = match property.get("items") {
        Some(items) => (true, items),
        None => (false, property),
    };
    let type_name = match target.get("$ref").and_then(Value::as_str) {
        Some(reference) => reference.rsplit('/').next()?.to_owned(),
        None if target.get("enum").is_some() => "code".to_owned(),
        None => target
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("string")
            .to_owned(),
    };
    Some(ElementInfo {
        is_array,
        type_name,
    })
}

fn shorten(mut message: String) -> String {
    if message.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push('…');
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_elements_and_lists() {
        let schema = FhirSchema::global();
        let given = schema.element("Patient", &["name", "given"]).unwrap();
        assert!(given.is_array);
        assert_eq!(
            schema.element("Patient", &["name"]).unwrap().type_name,
            "HumanName"
        );
        assert!(
            schema
                .element("Patient", &["nmae"])
                .unwrap_err()
                .contains("no element 'nmae'")
        );
    }

    #[test]
    fn complex_elements_must_be_objects() {
        let schema = FhirSchema::global();
        let issues = schema.validate(
            "Observation",
            &json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "meta": "x"}),
        );
        assert!(issues.iter().any(|i| i.path == "/meta"), "{issues:?}");
        let issues = schema.validate(
            "Patient",
            &json!({"resourceType": "Patient", "name": ["Rivera"]}),
        );
        assert!(issues.iter().any(|i| i.path == "/name/0"), "{issues:?}");
    }

    #[test]
    fn rejects_unknown_elements_with_their_path() {
        let issues = FhirSchema::global().validate(
            "Patient",
            &json!({"resourceType": "Patient", "gender": "robot"}),
        );
        assert!(issues.iter().any(|i| i.path == "/gender"), "{issues:?}");
    }
}
