//! The one place where onedoor instantiates serde for the typed FHIR resources of `fhir-sdk`.
//!
//! Deserializing any `fhir-sdk` resource compiles its whole `Resource` enum (every resource has
//! `contained` resources of any type), which costs minutes of build time for each serde (de)serializer it
//! is compiled for. Everything typed therefore lives behind one non-generic function of this crate,
//! [`check_value`], so the cost is paid once per clean build and never by the crates edited every day
//! (DESIGN.md section 3); and it is paid for one deserializer only ([`quiet`]: over a `serde_json::Value`,
//! quiet when a resource fits, with message and path when it does not), not for parsing from bytes or
//! serializing, which onedoor never does with the typed model. (The tests also instantiate serde_json's own
//! deserializer, as the reference the quiet one is compared with.)
//!
//! The types use FHIR R4B. For the resources a referral is made of (ServiceRequest, Task, Consent, Patient,
//! RelatedPerson, Organization, Practitioner, PractitionerRole, HealthcareService, Bundle, AuditEvent) the
//! R4B JSON is the R4 JSON; [`TYPED_RESOURCE_TYPES`] lists them, and callers should only treat a typed
//! failure as an error for those.

mod quiet;

use fhir_sdk::r4b::resources::Resource;
use quiet::{Quiet, Refused};

/// Resource types whose R4B JSON equals the R4 JSON, so a typed parse failure is a real R4 error.
pub const TYPED_RESOURCE_TYPES: &[&str] = &[
    "ServiceRequest",
    "Task",
    "Consent",
    "Patient",
    "RelatedPerson",
    "Organization",
    "Practitioner",
    "PractitionerRole",
    "HealthcareService",
    "AuditEvent",
    "Location",
];

/// Why a resource does not deserialize into the typed FHIR model.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct TypedError {
    /// Dotted path of the element that failed (for example `status` or `name[0].given`), `.` for the root.
    pub path: String,
    /// What serde reported: a missing required element, an unknown code, a wrong type.
    pub message: String,
}

/// Check that a JSON value deserializes into the typed model (required elements present, codes known).
pub fn check_value(value: &serde_json::Value) -> Result<(), TypedError> {
    // Most records are valid and pay for no message; a refused one is read again with messages and path.
    if fits(value).is_ok() {
        return Ok(());
    }
    let failure = quiet::with_messages(|| fits(value))
        .err()
        .and_then(Refused::failure);
    Err(match failure {
        Some(failure) => TypedError {
            path: failure.path(),
            message: failure.message,
        },
        // Not reached: the same deserializer refuses the same value again, now with a message.
        None => TypedError {
            path: ".".to_owned(),
            message: "does not fit the typed FHIR model".to_owned(),
        },
    })
}

/// Whether `value` deserializes into the typed model. The types onedoor emits and reads most are
/// deserialized as their own type, chosen by `resourceType`: through the tagged `Resource` enum, serde
/// would first copy the whole value into its generic buffered content and deserialize that. Both accept
/// the same documents (the own type reads `resourceType` as its resource type; the enum removes it).
/// The deserializer is [`Quiet`]: the same visits as serde_json's, without formatting the errors serde
/// makes and drops on the way (unless run [`quiet::with_messages`]).
fn fits(value: &serde_json::Value) -> Result<(), Refused> {
    use fhir_sdk::r4b::resources as r;
    use serde::Deserialize;
    fn own<'de, T: Deserialize<'de>>(value: &'de serde_json::Value) -> Result<(), Refused> {
        T::deserialize(Quiet(value)).map(|_| ())
    }
    match value
        .get("resourceType")
        .and_then(serde_json::Value::as_str)
    {
        Some("ServiceRequest") => own::<r::ServiceRequest>(value),
        Some("Task") => own::<r::Task>(value),
        Some("Patient") => own::<r::Patient>(value),
        Some("Organization") => own::<r::Organization>(value),
        Some("Practitioner") => own::<r::Practitioner>(value),
        Some("RelatedPerson") => own::<r::RelatedPerson>(value),
        Some("Consent") => own::<r::Consent>(value),
        Some("PractitionerRole") => own::<r::PractitionerRole>(value),
        Some("HealthcareService") => own::<r::HealthcareService>(value),
        Some("Location") => own::<r::Location>(value),
        _ => own::<Resource>(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    const TASK: &str = r#"{"resourceType":"Task","status":"requested","intent":"order",
        "code":{"coding":[{"system":"http://hl7.org/fhir/CodeSystem/task-code","code":"fulfill"}]}}"#;

    #[test]
    fn accepts_a_valid_task() {
        let value: serde_json::Value = serde_json::from_str(TASK).unwrap();
        assert!(check_value(&value).is_ok());
    }

    /// The fast path (own types, the quiet deserializer) and serde_json's deserializer of the tagged enum
    /// (the one `check_value` reports with) agree, on valid documents and on each kind of invalid one.
    #[test]
    fn quiet_and_serde_json_agree() {
        let documents = [
            TASK.to_owned(),
            TASK.replace("requested", "sleeping"),
            TASK.replace(r#""intent":"order","#, ""),
            TASK.replace(r#""status":"requested""#, r#""status":3"#),
            r#"{"resourceType":"ServiceRequest","status":"active","intent":"order","subject":{"reference":"Patient/1"},"authoredOn":"2026-01-01T08:30:00Z","quantityQuantity":{"value":1.50}}"#.to_owned(),
            r#"{"resourceType":"ServiceRequest","status":"bogus","intent":"order","subject":{"reference":"Patient/1"}}"#.to_owned(),
            r#"{"resourceType":"ServiceRequest","status":"active","intent":"order"}"#.to_owned(),
            r#"{"resourceType":"ServiceRequest","status":"active","intent":"order","subject":{"reference":"Patient/1"},"authoredOn":"yesterday"}"#.to_owned(),
            r#"{"resourceType":"Patient","birthDate":"2010-02-30","multipleBirthInteger":2}"#.to_owned(),
            r#"{"resourceType":"Patient","gender":"robot"}"#.to_owned(),
            r#"{"resourceType":"Patient","contained":[{"resourceType":"Organization","active":"yes"}]}"#.to_owned(),
            r#"{"resourceType":"Organization","name":"A","unknownElement":1}"#.to_owned(),
            r#"{"resourceType":"Location","position":{"longitude":1.5,"latitude":-2.25}}"#.to_owned(),
            r#"{"resourceType":"Location","position":{"longitude":"east"}}"#.to_owned(),
            r#"{"resourceType":"Consent","status":"active"}"#.to_owned(),
            r#"{"resourceType":"Practitioner","name":[{"family":1}]}"#.to_owned(),
            r#"{"resourceType":"RelatedPerson","patient":{"reference":"Patient/1"}}"#.to_owned(),
            r#"{"resourceType":"HealthcareService","active":true}"#.to_owned(),
            r#"{"resourceType":"PractitionerRole","active":"no"}"#.to_owned(),
            // Choice elements present, their primitive extensions, and both at once.
            r#"{"resourceType":"ServiceRequest","status":"active","intent":"order","subject":{"reference":"Patient/1"},"occurrenceDateTime":"2026-01-01","_occurrenceDateTime":{"extension":[{"url":"http://x","valueString":"y"}]}}"#.to_owned(),
            r#"{"resourceType":"ServiceRequest","status":"active","intent":"order","subject":{"reference":"Patient/1"},"occurrencePeriod":{"start":"2026-01-01"},"occurrenceDateTime":"2026-01-02"}"#.to_owned(),
            r#"{"resourceType":"ServiceRequest","status":"active","intent":"order","subject":{"reference":"Patient/1"},"asNeededBoolean":"yes"}"#.to_owned(),
            r#"{"resourceType":"ServiceRequest","status":"active","intent":"order","subject":{"reference":"Patient/1"},"_status":{"id":"s1"}}"#.to_owned(),
            // Numbers: exact decimals, integers where a decimal goes, a decimal where an integer goes, huge.
            r#"{"resourceType":"ServiceRequest","status":"active","intent":"order","subject":{"reference":"Patient/1"},"quantityQuantity":{"value":3}}"#.to_owned(),
            r#"{"resourceType":"ServiceRequest","status":"active","intent":"order","subject":{"reference":"Patient/1"},"quantityQuantity":{"value":0.1000000000000000000001}}"#.to_owned(),
            r#"{"resourceType":"ServiceRequest","status":"active","intent":"order","subject":{"reference":"Patient/1"},"quantityQuantity":{"value":1e400}}"#.to_owned(),
            r#"{"resourceType":"ServiceRequest","status":"active","intent":"order","subject":{"reference":"Patient/1"},"quantityQuantity":{"value":"3"}}"#.to_owned(),
            r#"{"resourceType":"Patient","multipleBirthInteger":2.5}"#.to_owned(),
            r#"{"resourceType":"Patient","multipleBirthInteger":-3}"#.to_owned(),
            r#"{"resourceType":"Patient","multipleBirthInteger":99999999999999999999}"#.to_owned(),
            // Codes: a map where a code goes, null, a list where one value goes, one value where a list goes.
            r#"{"resourceType":"Patient","gender":{"male":null}}"#.to_owned(),
            r#"{"resourceType":"Patient","gender":null}"#.to_owned(),
            r#"{"resourceType":"Patient","gender":["male"]}"#.to_owned(),
            r#"{"resourceType":"Patient","name":{"family":"Rivera"}}"#.to_owned(),
            r#"{"resourceType":"Patient","name":[{"given":["A",null]}]}"#.to_owned(),
            r#"{"resourceType":"Patient","name":[]}"#.to_owned(),
            r#"{"resourceType":"Patient","active":null,"id":"p1"}"#.to_owned(),
            // Types read through the tagged enum, nested resources, and no type at all.
            r#"{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1.5}}"#.to_owned(),
            r#"{"resourceType":"Observation","status":"final"}"#.to_owned(),
            r#"{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","gender":"female"}}]}"#.to_owned(),
            r#"{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","gender":"robot"}}]}"#.to_owned(),
            r##"{"resourceType":"Task","status":"requested","intent":"order","contained":[{"resourceType":"Patient","id":"p"}],"for":{"reference":"#p"}}"##.to_owned(),
            r#"{"resourceType":"Unknown"}"#.to_owned(),
            r#"{"status":"active"}"#.to_owned(),
            r#"[]"#.to_owned(),
        ];
        for text in documents {
            let value: serde_json::Value = serde_json::from_str(&text).unwrap();
            let tagged = Resource::deserialize(&value).is_ok();
            assert_eq!(fits(&value).is_ok(), tagged, "{text}");
            assert_eq!(check_value(&value).is_ok(), tagged, "{text}");
        }
    }

    /// The same agreement on every resource in the project's own fixtures (conformance cases, test data),
    /// Bundle entries and contained resources included, and on each with its elements taken out one by one
    /// (missing required elements, a choice element left without its value).
    #[test]
    fn quiet_and_serde_json_agree_on_every_fixture() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut resources = Vec::new();
        for folder in ["conformance", "tests", "examples"] {
            collect_files(&root.join(folder), &mut resources);
        }
        let mut compared = 0;
        for resource in &resources {
            for variant in std::iter::once(resource.clone()).chain(without_each_element(resource)) {
                let tagged = Resource::deserialize(&variant).is_ok();
                assert_eq!(fits(&variant).is_ok(), tagged, "{variant}");
                compared += 1;
            }
        }
        assert!(compared > 1_000, "only {compared} documents compared");
    }

    fn collect_files(folder: &std::path::Path, out: &mut Vec<serde_json::Value>) {
        let Ok(entries) = std::fs::read_dir(folder) else {
            return;
        };
        for path in entries.filter_map(Result::ok).map(|e| e.path()) {
            if path.is_dir() {
                collect_files(&path, out);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let documents: Vec<&str> = match path.extension().and_then(|e| e.to_str()) {
                Some("json") => vec![text.as_str()],
                Some("ndjson") => text.lines().collect(),
                _ => continue,
            };
            for document in documents {
                if let Ok(value) = serde_json::from_str::<serde_json::Value>(document) {
                    collect_resources(&value, out);
                }
            }
        }
    }

    fn collect_resources(value: &serde_json::Value, out: &mut Vec<serde_json::Value>) {
        match value {
            serde_json::Value::Object(map) => {
                if map.get("resourceType").is_some_and(|t| t.is_string()) {
                    out.push(value.clone());
                }
                map.values().for_each(|v| collect_resources(v, out));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| collect_resources(v, out)),
            _ => {}
        }
    }

    fn without_each_element(resource: &serde_json::Value) -> Vec<serde_json::Value> {
        let Some(map) = resource.as_object() else {
            return Vec::new();
        };
        map.keys()
            .filter(|key| *key != "resourceType")
            .map(|key| {
                let mut variant = map.clone();
                variant.remove(key);
                serde_json::Value::Object(variant)
            })
            .collect()
    }

    #[test]
    fn a_refusal_names_the_element_and_says_what_was_expected() {
        let cases = [
            (
                r#"{"resourceType":"Patient","name":[{"family":1}]}"#,
                "name[0].family",
                "invalid type: integer `1`, expected a string",
            ),
            (
                r#"{"resourceType":"Patient","name":[{"given":["A",2]}]}"#,
                "name[0].given[1]",
                "invalid type: integer `2`",
            ),
            (
                r#"{"resourceType":"Patient","gender":"robot"}"#,
                "gender",
                "robot",
            ),
            (
                r#"{"resourceType":"Patient","active":"yes"}"#,
                "active",
                "expected a boolean",
            ),
            (
                r#"{"resourceType":"ServiceRequest","status":"active","intent":"order"}"#,
                ".",
                "missing field `subject`",
            ),
        ];
        for (text, path, message) in cases {
            let value: serde_json::Value = serde_json::from_str(text).unwrap();
            let err = check_value(&value).unwrap_err();
            assert_eq!(err.path, path, "{text}: {err}");
            assert!(err.message.contains(message), "{text}: {err}");
            assert!(!err.message.is_empty(), "{text}");
        }
        // A type read through the tagged enum is buffered by serde first, so the path stops at the resource
        // (onedoor checks each Bundle entry as a resource of its own); the message still says what is wrong.
        let bundle: serde_json::Value = serde_json::from_str(
            r#"{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","gender":"robot"}}]}"#,
        )
        .unwrap();
        let err = check_value(&bundle).unwrap_err();
        assert_eq!(err.path, ".", "{err}");
        assert!(err.message.contains("robot"), "{err}");
        // Messages are for the run that reports: the next check of a valid resource is quiet again.
        let valid: serde_json::Value = serde_json::from_str(TASK).unwrap();
        assert!(check_value(&valid).is_ok());
        assert!(fits(&valid).is_ok());
    }

    #[test]
    fn rejects_an_unknown_status_code_with_its_path() {
        let value: serde_json::Value =
            serde_json::from_str(&TASK.replace("requested", "sleeping")).unwrap();
        let err = check_value(&value).unwrap_err();
        assert!(err.message.contains("sleeping"), "{err}");
    }
}
