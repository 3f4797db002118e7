//! One failing and one passing resource per FHIR invariant that onedoor checks (the FHIRPath table of
//! `validation::invariants`), and every invariant of the table has its pair. The failing resource must
//! raise that invariant; the passing one must not.

use onedoor::validation::Validator;
use onedoor::validation::invariants::{self, INVARIANTS};
use serde_json::{Value, json};

const TEMP: &str =
    "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes";
const SDC: &str = "http://hl7.org/fhir/uv/sdc/CodeSystem/temp";
const TASK_FOR_PATIENT: &str =
    "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-TaskForPatient";

fn coding(system: &str, code: &str) -> Value {
    json!({"coding": [{"system": system, "code": code}]})
}

fn patient_task(code: &str, extra: Value) -> Value {
    // complete-questionnaire is an SDC code; the others are SDOHCC temporary codes.
    let system = if code == "complete-questionnaire" {
        SDC
    } else {
        TEMP
    };
    let mut task = json!({"resourceType": "Task", "meta": {"profile": [TASK_FOR_PATIENT]},
        "status": "requested", "intent": "order", "code": coding(system, code)});
    if let (Some(task), Value::Object(extra)) = (task.as_object_mut(), extra) {
        task.extend(extra);
    }
    task
}

fn input(system: &str, code: &str) -> Value {
    json!({"type": coding(system, code), "valueString": "x"})
}

fn bundle(kind: &str, entries: Value) -> Value {
    json!({"resourceType": "Bundle", "type": kind, "entry": entries})
}

/// (key, failing, passing).
fn cases() -> Vec<(&'static str, Value, Value)> {
    let patient = json!({"resourceType": "Patient", "id": "p"});
    let put = |url: &str| json!({"fullUrl": url, "resource": {"resourceType": "Patient", "id": "p"}, "request": {"method": "PUT", "url": "Patient/p"}});
    vec![
        (
            "ele-1",
            json!({"resourceType": "Patient", "name": [{}]}),
            json!({"resourceType": "Patient", "name": [{"family": "A"}]}),
        ),
        (
            "ext-1",
            json!({"resourceType": "Patient", "extension": [{"url": "u", "valueString": "x", "extension": [{"url": "v", "valueString": "y"}]}]}),
            json!({"resourceType": "Patient", "extension": [{"url": "u", "valueString": "x"}]}),
        ),
        (
            "per-1",
            json!({"resourceType": "Encounter", "period": {"start": "2024-03-01", "end": "2024-02-01"}}),
            json!({"resourceType": "Encounter", "period": {"start": "2024-02-01", "end": "2024-03-01"}}),
        ),
        (
            "ref-1",
            json!({"resourceType": "Task", "focus": {"reference": "#missing"}}),
            json!({"resourceType": "Task", "focus": {"reference": "#sr"}, "contained": [{"resourceType": "ServiceRequest", "id": "sr"}]}),
        ),
        (
            "cpt-2",
            json!({"resourceType": "Patient", "telecom": [{"value": "555-0100"}]}),
            json!({"resourceType": "Patient", "telecom": [{"system": "phone", "value": "555-0100"}]}),
        ),
        (
            "dom-2",
            json!({"resourceType": "Task", "focus": {"reference": "#a"}, "contained": [{"resourceType": "ServiceRequest", "id": "a", "contained": [{"resourceType": "Patient", "id": "b"}]}]}),
            json!({"resourceType": "Task", "focus": {"reference": "#a"}, "contained": [{"resourceType": "ServiceRequest", "id": "a"}]}),
        ),
        (
            "dom-3",
            json!({"resourceType": "Task", "contained": [{"resourceType": "ServiceRequest", "id": "a"}]}),
            json!({"resourceType": "Task", "focus": {"reference": "#a"}, "contained": [{"resourceType": "ServiceRequest", "id": "a"}]}),
        ),
        (
            "dom-4",
            json!({"resourceType": "Task", "focus": {"reference": "#a"}, "contained": [{"resourceType": "ServiceRequest", "id": "a", "meta": {"versionId": "1"}}]}),
            json!({"resourceType": "Task", "focus": {"reference": "#a"}, "contained": [{"resourceType": "ServiceRequest", "id": "a", "meta": {"source": "x"}}]}),
        ),
        (
            "dom-5",
            json!({"resourceType": "Task", "focus": {"reference": "#a"}, "contained": [{"resourceType": "ServiceRequest", "id": "a", "meta": {"security": [{"code": "R"}]}}]}),
            json!({"resourceType": "Task", "focus": {"reference": "#a"}, "meta": {"security": [{"code": "R"}]}, "contained": [{"resourceType": "ServiceRequest", "id": "a"}]}),
        ),
        (
            "bdl-1",
            json!({"resourceType": "Bundle", "type": "collection", "total": 1}),
            json!({"resourceType": "Bundle", "type": "searchset", "total": 1}),
        ),
        (
            "bdl-2",
            bundle(
                "collection",
                json!([{"resource": patient, "search": {"mode": "match"}}]),
            ),
            bundle(
                "searchset",
                json!([{"resource": patient, "search": {"mode": "match"}}]),
            ),
        ),
        (
            "bdl-3",
            bundle("collection", json!([put("urn:a")])),
            bundle("transaction", json!([put("urn:a")])),
        ),
        (
            "bdl-4",
            bundle(
                "transaction",
                json!([{"resource": patient, "request": {"method": "PUT", "url": "Patient/p"}, "response": {"status": "200"}}]),
            ),
            bundle(
                "transaction-response",
                json!([{"resource": patient, "response": {"status": "200"}}]),
            ),
        ),
        (
            "bdl-5",
            bundle("collection", json!([{"fullUrl": "urn:a"}])),
            bundle(
                "collection",
                json!([{"fullUrl": "urn:a", "resource": patient}]),
            ),
        ),
        (
            "bdl-7",
            bundle("transaction", json!([put("urn:a"), put("urn:a")])),
            bundle("transaction", json!([put("urn:a"), put("urn:b")])),
        ),
        (
            "bdl-8",
            bundle(
                "collection",
                json!([{"fullUrl": "http://x/Patient/p/_history/1", "resource": patient}]),
            ),
            bundle(
                "collection",
                json!([{"fullUrl": "http://x/Patient/p", "resource": patient}]),
            ),
        ),
        (
            "bdl-9",
            json!({"resourceType": "Bundle", "type": "document", "timestamp": "2024-01-01T00:00:00Z", "identifier": {"value": "1"}}),
            json!({"resourceType": "Bundle", "type": "document", "timestamp": "2024-01-01T00:00:00Z", "identifier": {"system": "urn:x", "value": "1"}}),
        ),
        (
            "bdl-10",
            json!({"resourceType": "Bundle", "type": "document", "identifier": {"system": "urn:x", "value": "1"}}),
            json!({"resourceType": "Bundle", "type": "document", "timestamp": "2024-01-01T00:00:00Z", "identifier": {"system": "urn:x", "value": "1"}}),
        ),
        (
            "bdl-11",
            bundle(
                "document",
                json!([{"fullUrl": "urn:a", "resource": patient}]),
            ),
            bundle(
                "document",
                json!([{"fullUrl": "urn:a", "resource": {"resourceType": "Composition", "id": "c"}}]),
            ),
        ),
        (
            "bdl-12",
            bundle(
                "message",
                json!([{"fullUrl": "urn:a", "resource": patient}]),
            ),
            bundle(
                "message",
                json!([{"fullUrl": "urn:a", "resource": {"resourceType": "MessageHeader", "id": "m"}}]),
            ),
        ),
        (
            "pat-1",
            json!({"resourceType": "Patient", "contact": [{"gender": "female"}]}),
            json!({"resourceType": "Patient", "contact": [{"name": {"family": "A"}}]}),
        ),
        (
            "org-1",
            json!({"resourceType": "Organization", "active": true}),
            json!({"resourceType": "Organization", "name": "Food bank"}),
        ),
        (
            "org-2",
            json!({"resourceType": "Organization", "name": "X", "address": [{"use": "home", "city": "Y"}]}),
            json!({"resourceType": "Organization", "name": "X", "address": [{"use": "work", "city": "Y"}]}),
        ),
        (
            "org-3",
            json!({"resourceType": "Organization", "name": "X", "telecom": [{"system": "phone", "value": "1", "use": "home"}]}),
            json!({"resourceType": "Organization", "name": "X", "telecom": [{"system": "phone", "value": "1", "use": "work"}]}),
        ),
        (
            "prr-1",
            json!({"resourceType": "ServiceRequest", "orderDetail": [{"text": "x"}]}),
            json!({"resourceType": "ServiceRequest", "code": {"text": "y"}, "orderDetail": [{"text": "x"}]}),
        ),
        (
            "inv-1",
            json!({"resourceType": "Task", "authoredOn": "2024-02-01T10:00:00Z", "lastModified": "2024-01-01T10:00:00Z"}),
            json!({"resourceType": "Task", "authoredOn": "2024-01-01T10:00:00Z", "lastModified": "2024-02-01T10:00:00Z"}),
        ),
        (
            "ppc-1",
            json!({"resourceType": "Consent", "status": "active"}),
            json!({"resourceType": "Consent", "status": "active", "policyRule": {"text": "HIPAA"}}),
        ),
        (
            "ppc-2",
            json!({"resourceType": "Consent", "policyRule": {"text": "x"}, "scope": coding("something", "patient-privacy")}),
            json!({"resourceType": "Consent", "policyRule": {"text": "x"}, "scope": coding("something", "patient-privacy"), "patient": {"reference": "Patient/p"}}),
        ),
        (
            "ppc-3",
            json!({"resourceType": "Consent", "policyRule": {"text": "x"}, "scope": coding("something", "research")}),
            json!({"resourceType": "Consent", "policyRule": {"text": "x"}, "scope": coding("something", "research"), "patient": {"reference": "Patient/p"}}),
        ),
        (
            "ppc-4",
            json!({"resourceType": "Consent", "policyRule": {"text": "x"}, "scope": coding("something", "adr")}),
            json!({"resourceType": "Consent", "policyRule": {"text": "x"}, "scope": coding("something", "adr"), "patient": {"reference": "Patient/p"}}),
        ),
        (
            "ppc-5",
            json!({"resourceType": "Consent", "policyRule": {"text": "x"}, "scope": coding("something", "treatment")}),
            json!({"resourceType": "Consent", "policyRule": {"text": "x"}, "scope": coding("something", "treatment"), "patient": {"reference": "Patient/p"}}),
        ),
        (
            "con-1",
            json!({"resourceType": "Condition", "stage": [{"type": {"text": "x"}}]}),
            json!({"resourceType": "Condition", "stage": [{"summary": {"text": "x"}}]}),
        ),
        (
            "con-2",
            json!({"resourceType": "Condition", "evidence": [{"id": "e", "extension": [{"url": "u", "valueString": "x"}]}]}),
            json!({"resourceType": "Condition", "evidence": [{"code": [{"text": "x"}]}]}),
        ),
        (
            "con-4",
            json!({"resourceType": "Condition", "abatementDateTime": "2024-01-01", "clinicalStatus": coding("http://terminology.hl7.org/CodeSystem/condition-clinical", "active")}),
            json!({"resourceType": "Condition", "abatementDateTime": "2024-01-01", "clinicalStatus": coding("http://terminology.hl7.org/CodeSystem/condition-clinical", "resolved")}),
        ),
        (
            "con-5",
            json!({"resourceType": "Condition", "verificationStatus": coding("http://terminology.hl7.org/CodeSystem/condition-ver-status", "entered-in-error"), "clinicalStatus": coding("http://terminology.hl7.org/CodeSystem/condition-clinical", "active")}),
            json!({"resourceType": "Condition", "verificationStatus": coding("http://terminology.hl7.org/CodeSystem/condition-ver-status", "entered-in-error")}),
        ),
        (
            "obs-3",
            json!({"resourceType": "Observation", "referenceRange": [{"type": {"text": "normal"}}]}),
            json!({"resourceType": "Observation", "referenceRange": [{"text": "normal"}]}),
        ),
        (
            "obs-6",
            json!({"resourceType": "Observation", "valueString": "x", "dataAbsentReason": {"text": "unknown"}}),
            json!({"resourceType": "Observation", "dataAbsentReason": {"text": "unknown"}}),
        ),
        (
            "obs-7",
            json!({"resourceType": "Observation", "code": coding("http://loinc.org", "1-1"), "valueString": "x", "component": [{"code": coding("http://loinc.org", "1-1"), "valueString": "y"}]}),
            json!({"resourceType": "Observation", "code": coding("http://loinc.org", "1-1"), "valueString": "x", "component": [{"code": coding("http://loinc.org", "2-2"), "valueString": "y"}]}),
        ),
        (
            "cpl-3",
            json!({"resourceType": "CarePlan", "activity": [{"reference": {"reference": "ServiceRequest/1"}, "detail": {"status": "scheduled"}}]}),
            json!({"resourceType": "CarePlan", "activity": [{"reference": {"reference": "ServiceRequest/1"}}]}),
        ),
        (
            "gol-1",
            json!({"resourceType": "Goal", "target": [{"detailString": "more food"}]}),
            json!({"resourceType": "Goal", "target": [{"measure": {"text": "food"}, "detailString": "more food"}]}),
        ),
        (
            "sev-1",
            json!({"resourceType": "AuditEvent", "entity": [{"name": "x", "query": "eA=="}]}),
            json!({"resourceType": "AuditEvent", "entity": [{"name": "x"}]}),
        ),
        (
            "SDOH-Task-1",
            patient_task(
                "complete-questionnaire",
                json!({"input": [input(SDC, "questionnaire")]}),
            ),
            patient_task(
                "complete-questionnaire",
                json!({"input": [input(SDC, "questionnaire"), input(TEMP, "questionnaire-category")]}),
            ),
        ),
        (
            "SDOH-Task-2",
            patient_task("general-information", json!({})),
            patient_task("general-information", json!({"description": "Read this"})),
        ),
        (
            "SDOH-Task-3",
            patient_task(
                "review-material",
                json!({"focus": {"reference": "#q"}, "contained": [{"resourceType": "Questionnaire", "id": "q", "status": "active"}]}),
            ),
            patient_task(
                "review-material",
                json!({"focus": {"reference": "#d"}, "contained": [{"resourceType": "DocumentReference", "id": "d", "status": "current"}]}),
            ),
        ),
        (
            "SDOH-Task-4",
            patient_task("make-contact", json!({"description": "Call them"})),
            patient_task(
                "make-contact",
                json!({"description": "Call them", "input": [input(TEMP, "contact-entity")]}),
            ),
        ),
        (
            "SDOH-Task-5",
            patient_task(
                "x",
                json!({"input": [input(SDC, "questionnaire")], "output": [input(SDC, "other")]}),
            ),
            patient_task(
                "x",
                json!({"input": [input(SDC, "questionnaire")], "output": [input(SDC, "questionnaire-response")]}),
            ),
        ),
        (
            "SDOH-Task-6",
            patient_task(
                "x",
                json!({"input": [input(SDC, "questionnaire-pdf")], "output": [input(SDC, "other")]}),
            ),
            patient_task(
                "x",
                json!({"input": [input(SDC, "questionnaire-pdf")], "output": [input(SDC, "questionnaire-pdf-completed")]}),
            ),
        ),
        (
            "SDOH-Task-7",
            patient_task(
                "make-contact",
                json!({"input": [input(TEMP, "contact-entity")]}),
            ),
            patient_task(
                "make-contact",
                json!({"description": "Call them", "input": [input(TEMP, "contact-entity")]}),
            ),
        ),
        (
            "SDOH-Con-1",
            json!({"resourceType": "Condition", "meta": {"profile": ["http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-Condition"]},
                "asserter": {"reference": "Practitioner/a"},
                "extension": [{"url": "http://hl7.org/fhir/us/sdoh-clinicalcare/extension-Condition.asserter", "valueReference": {"reference": "Organization/b"}}]}),
            json!({"resourceType": "Condition", "meta": {"profile": ["http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-Condition"]},
                "asserter": {"reference": "Practitioner/a"}}),
        ),
        (
            "SDOH-HCS-1",
            json!({"resourceType": "HealthcareService", "meta": {"profile": ["http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-HealthcareService"]},
                "category": [{"text": "food"}]}),
            json!({"resourceType": "HealthcareService", "meta": {"profile": ["http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-HealthcareService"]},
                "category": [coding("http://hl7.org/fhir/us/core/CodeSystem/us-core-category", "sdoh")]}),
        ),
        (
            "SDOH-HCS-2",
            json!({"resourceType": "HealthcareService", "meta": {"profile": ["http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-HealthcareService"]},
                "category": [coding("http://hl7.org/fhir/us/core/CodeSystem/us-core-category", "sdoh")], "code": coding(TEMP, "program-support")}),
            json!({"resourceType": "HealthcareService", "meta": {"profile": ["http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-HealthcareService"]},
                "category": [coding("http://hl7.org/fhir/us/core/CodeSystem/us-core-category", "sdoh")], "code": coding(TEMP, "program-support"), "program": [{"text": "SNAP"}]}),
        ),
    ]
}

fn keys_raised(resource: &Value) -> Vec<String> {
    invariants::check(resource, "")
        .into_iter()
        .map(|issue| {
            issue
                .message
                .split(':')
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[test]
fn every_invariant_fails_its_failing_resource_and_passes_its_passing_one() {
    let mut problems = Vec::new();
    for (key, failing, passing) in cases() {
        let raised = keys_raised(&failing);
        if !raised.iter().any(|k| k == key) {
            problems.push(format!(
                "{key}: the failing resource raised only {raised:?}"
            ));
        }
        let raised = keys_raised(&passing);
        if raised.iter().any(|k| k == key) {
            problems.push(format!(
                "{key}: the passing resource raised it ({raised:?})"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_invariant_of_the_table_has_a_case() {
    let covered: Vec<&str> = cases().iter().map(|(key, _, _)| *key).collect();
    let missing: Vec<&str> = INVARIANTS
        .iter()
        .map(|i| i.key)
        .filter(|key| !covered.contains(key))
        .collect();
    assert!(
        missing.is_empty(),
        "invariants without a test case: {missing:?}"
    );
}

#[test]
fn the_validator_reports_invariants_with_their_paths() {
    let bundle = json!({"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Organization", "id": "o", "active": true}}]});
    let issues = Validator::new().validate(&bundle);
    assert!(
        issues
            .iter()
            .any(|i| i.path == "/entry/0/resource" && i.message.starts_with("org-1:")),
        "{issues:?}"
    );
}

/// The invariant keys among `issues`, each with where it was raised.
fn raised_at(issues: &[onedoor::validation::Issue]) -> Vec<(String, String)> {
    issues
        .iter()
        .filter(|issue| issue.source == onedoor::validation::IssueSource::Invariant)
        .map(|issue| {
            let key = issue.message.split(':').next().unwrap_or_default();
            (key.to_owned(), issue.path.clone())
        })
        .collect()
}

/// A job's record is a transaction Bundle the gateway assembles around resources the pipeline validated;
/// the gateway checks what assembling added (`Validator::validate_assembled`): the rules that see the
/// whole Bundle — a fullUrl twice (bdl-7), a Task's focus resolved to another entry (SDOH-Task-3) — are
/// raised where validating the Bundle in full raises them, and a Bundle of valid resources gives what
/// that gives: nothing.
#[test]
fn an_assembled_bundle_raises_what_assembling_added() {
    let validator = Validator::new();
    let task = patient_task(
        "review-material",
        json!({"id": "t", "for": {"reference": "Patient/p"}, "focus": {"reference": "Questionnaire/q"}}),
    );
    let questionnaire = json!({"resourceType": "Questionnaire", "id": "q", "status": "active"});
    let entry = |resource: &Value, url: &str| json!({"fullUrl": url, "resource": resource, "request": {"method": "PUT", "url": "x"}});
    let alone = raised_at(&validator.validate(&task));
    assert!(
        !alone.iter().any(|(key, _)| key == "SDOH-Task-3"),
        "the Task alone resolves no focus: {alone:?}"
    );
    let focus_is_an_entry = bundle(
        "transaction",
        json!([
            entry(&task, "urn:uuid:t"),
            entry(&questionnaire, "urn:uuid:q")
        ]),
    );
    let twice = bundle(
        "transaction",
        json!([
            entry(&questionnaire, "urn:uuid:q"),
            entry(&questionnaire, "urn:uuid:q")
        ]),
    );
    for record in [&focus_is_an_entry, &twice] {
        let assembled = raised_at(&validator.validate_assembled(record));
        let full = raised_at(&validator.validate(record));
        assert!(!assembled.is_empty(), "{record}");
        assert_eq!(assembled, full, "{record}");
    }
    let expected = ("SDOH-Task-3".to_owned(), "/entry/0/resource".to_owned());
    let raised = raised_at(&validator.validate_assembled(&focus_is_an_entry));
    assert!(raised.contains(&expected), "{raised:?}");
    let raised = raised_at(&validator.validate_assembled(&twice));
    assert!(raised.iter().any(|(key, _)| key == "bdl-7"), "{raised:?}");

    let valid = bundle(
        "transaction",
        json!([
            entry(&questionnaire, "urn:uuid:q"),
            entry(
                &json!({"resourceType": "Organization", "id": "o", "name": "Food bank"}),
                "urn:uuid:o"
            )
        ]),
    );
    assert_eq!(validator.validate(&valid), Vec::new());
    assert_eq!(validator.validate_assembled(&valid), Vec::new());
}

/// The cost of the invariant walk per resource, on the NDJSON file named by `ONEDOOR_INVARIANTS_BENCH`
/// (run with `cargo test --release --test invariants -- --ignored --nocapture`).
#[test]
#[ignore = "a measurement, not a test"]
fn invariant_walk_cost_per_resource() {
    let Ok(path) = std::env::var("ONEDOOR_INVARIANTS_BENCH") else {
        return;
    };
    let text = std::fs::read_to_string(path).expect("read the NDJSON file");
    let resources: Vec<Value> = text
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let _ = invariants::check(&resources[0], "");
    let start = std::time::Instant::now();
    let issues: usize = resources
        .iter()
        .map(|r| invariants::check(r, "").len())
        .sum();
    let elapsed = start.elapsed();
    println!(
        "{} resources, {issues} issues, {:.3} µs per resource",
        resources.len(),
        elapsed.as_secs_f64() * 1e6 / resources.len() as f64
    );
}
