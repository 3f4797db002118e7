//! Fuzz entry points: one function per target, shared by the cargo-fuzz targets (`fuzz_targets/*.rs`) and the
//! regression test (`tests/fuzz_regressions.rs`, which includes this file as a module), so a crash input is
//! replayed through exactly the code that found it.
//!
//! Decoders that read paths get the input written to a temporary folder first. Inputs that stand for several
//! files (a OneRoster or HMIS export) are split on the ASCII file-separator byte `0x1C`: the n-th piece becomes
//! the n-th file of the target's list. An input starting with `PK\x03\x04` is written as a zip instead.
//! Each function returns normally for any input; a panic is a finding.

use onedoor::canonical::task_status::{Actor, TaskStatus};
use onedoor::consent::decision::{self, Decision, Request};
use onedoor::consent::registry::Registry;
use onedoor::consent::{model, redact, subject};
use onedoor::mapping::EngineOptions;
use onedoor::pipeline::{self, NdjsonSink, OutputFormat};
use onedoor::validation::Validator;
use onedoor::validation::fhirpath::{Env, Expression};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The byte that separates the files of a multi-file input.
pub const FILE_SEPARATOR: u8 = 0x1C;

/// The OneRoster tables, in input order.
pub const ONEROSTER_FILES: &[&str] = &[
    "users.csv",
    "demographics.csv",
    "orgs.csv",
    "roles.csv",
    "enrollments.csv",
    "manifest.csv",
];

/// The HMIS tables, in input order.
pub const HMIS_FILES: &[&str] = &[
    "Client.csv",
    "Enrollment.csv",
    "Exit.csv",
    "Services.csv",
    "Event.csv",
    "Project.csv",
    "Organization.csv",
    "Export.csv",
];

/// The HSDS CSV tables, in input order.
pub const HSDS_FILES: &[&str] = &[
    "organizations.csv",
    "services.csv",
    "locations.csv",
    "service_at_location.csv",
    "service_areas.csv",
    "addresses.csv",
    "phones.csv",
    "attributes.csv",
    "taxonomy_terms.csv",
    "taxonomies.csv",
];

/// The Ed-Fi interchange files, in input order.
pub const EDFI_FILES: &[&str] = &[
    "Student.xml",
    "Contact.xml",
    "EducationOrganization.xml",
    "StudentProgram.xml",
    "StudentHealth.xml",
];

/// The repository root (this file is compiled from `fuzz/` and from the main crate's tests).
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    if manifest.join("mappings").is_dir() {
        manifest.to_owned()
    } else {
        manifest.parent().unwrap_or(manifest).to_owned()
    }
}

fn engine() -> EngineOptions {
    EngineOptions {
        now: "2025-01-15T12:00:00Z".into(),
        source_system: None,
    }
}

fn is_zip(data: &[u8]) -> bool {
    data.starts_with(b"PK\x03\x04")
}

/// Write `data` as the export folder (split on [`FILE_SEPARATOR`] into `names`) or as `export.zip`.
fn write_export(dir: &Path, data: &[u8], names: &[&str]) -> PathBuf {
    if is_zip(data) {
        let path = dir.join("export.zip");
        std::fs::write(&path, data).expect("write zip");
        return path;
    }
    let folder = dir.join("export");
    std::fs::create_dir_all(&folder).expect("create export folder");
    for (name, piece) in names.iter().zip(data.split(|&b| b == FILE_SEPARATOR)) {
        std::fs::write(folder.join(name), piece).expect("write table");
    }
    folder
}

/// Convert `input` with the shipped mapping `mapping`, as `onedoor convert` does, output discarded.
fn convert(mapping: &str, input: &Path, roster: Option<&Path>) {
    convert_in(&repo_root().join("mappings"), mapping, input, roster);
}

fn convert_in(mappings: &Path, mapping: &str, input: &Path, roster: Option<&Path>) {
    let request = pipeline::request(mappings, mapping, input, roster, engine());
    let mut sink = NdjsonSink::new(std::io::sink(), OutputFormat::Bundle);
    let _ = pipeline::convert(&request, &mut sink);
}

fn temp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temporary folder")
}

/// OneRoster CSV export (users, demographics, orgs, roles, enrollments, manifest).
pub fn oneroster_csv(data: &[u8]) {
    let dir = temp();
    let input = write_export(dir.path(), data, ONEROSTER_FILES);
    convert("oneroster", &input, None);
}

/// HUD HMIS CSV export.
pub fn hmis_csv(data: &[u8]) {
    let dir = temp();
    let input = write_export(dir.path(), data, HMIS_FILES);
    convert("hmis-fy2024", &input, None);
}

/// HSDS CSV tables.
pub fn hsds_csv(data: &[u8]) {
    let dir = temp();
    let input = write_export(dir.path(), data, HSDS_FILES);
    convert("hsds-3.0", &input, None);
}

/// HSDS JSON (one object or a list page).
pub fn hsds_json(data: &[u8]) {
    let dir = temp();
    let input = dir.path().join("directory.json");
    std::fs::write(&input, data).expect("write json");
    convert("hsds-3.0", &input, None);
}

/// Student-support referral CSV, joined to the shipped roster (`examples/district-export`).
pub fn referral_csv(data: &[u8]) {
    let dir = temp();
    let input = dir.path().join("referrals.csv");
    std::fs::write(&input, data).expect("write csv");
    let roster = repo_root().join("examples/district-export");
    convert("student-referrals", &input, Some(&roster));
}

/// Ed-Fi interchange XML (Student, Contact, EducationOrganization, StudentProgram, StudentHealth).
pub fn edfi_xml(data: &[u8]) {
    let dir = temp();
    let input = write_export(dir.path(), data, EDFI_FILES);
    convert("edfi-5", &input, None);
}

/// SIF AU 3.4 / SIF US XML objects or collections (each piece one `.xml` file).
pub fn sif_xml(data: &[u8]) {
    let dir = temp();
    let names: Vec<String> = (0..8).map(|n| format!("object-{n}.xml")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let input = write_export(dir.path(), data, &names);
    convert("sif-au-3.4", &input, None);
}

/// NIBRS 2019 submission XML (each piece one submission file).
pub fn nibrs_xml(data: &[u8]) {
    let dir = temp();
    let names: Vec<String> = (0..4).map(|n| format!("submission-{n}.xml")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let input = write_export(dir.path(), data, &names);
    convert("nibrs-2019", &input, None);
}

/// FHIR R4 JSON: the fhir adapter (a `.json` file, or `.ndjson` when the input has several lines), the
/// validator, and the consent reader and decision on what parses.
pub fn fhir_json(data: &[u8]) {
    let dir = temp();
    let ndjson = data.trim_ascii().contains(&b'\n');
    let input = dir
        .path()
        .join(if ndjson { "input.ndjson" } else { "input.json" });
    std::fs::write(&input, data).expect("write json");
    convert("fhir-r4", &input, None);
    same_resources_lent_as_read(&input);
    if let Ok(value) = serde_json::from_slice::<Value>(data) {
        received_json(&value);
    }
}

/// `validate`'s reading (each NDJSON line parsed into the value the line before left,
/// `FhirSource::for_each_resource`) gives what `FhirSource::records` gives: the same resources at the same
/// positions with the same keys, the same errors. A difference is a finding (panic).
fn same_resources_lent_as_read(input: &Path) {
    let source = onedoor::adapters::fhir::FhirSource::open(input).expect("open the input");
    let mut read = source.records();
    source.for_each_resource(|lent| {
        let Some(record) = read.next() else {
            panic!("a resource lent that was not read");
        };
        match (lent, record) {
            (Ok(lent), Ok(record)) => {
                assert_eq!(lent.position(), record.position);
                assert_eq!(lent.key(), record.key);
                let resource = record
                    .context
                    .get("resource")
                    .expect("the record's resource");
                assert_eq!(lent.resource.to_string(), resource.to_string());
            }
            (Err(lent), Err(record)) => assert_eq!(lent, record),
            (lent, record) => panic!(
                "lent {:?}, read {:?}",
                lent.map(|l| l.key()),
                record.map(|r| r.key)
            ),
        }
    });
    assert!(read.next().is_none(), "a resource read that was not lent");
}

/// A FHIRPath expression (the invariants' engine): compiled, and when it compiles, evaluated on a small
/// Bundle holding a resource with a contained resource, as a boolean constraint too. A parse or evaluation
/// error is an answer; a panic, a stack overflow or a run that does not end is a finding.
pub fn fhirpath(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(expression) = Expression::compile(text) else {
        return;
    };
    let bundle = fhirpath_document();
    let task = &bundle["entry"][0]["resource"];
    let env = Env {
        bundle: Some(&bundle),
        ..Env::of(task)
    };
    let _ = expression.evaluate(task, env);
    let _ = expression.check(&bundle, Env::of(&bundle));
}

fn fhirpath_document() -> Value {
    serde_json::json!({"resourceType": "Bundle", "type": "transaction", "total": 2, "entry": [
        {"fullUrl": "urn:uuid:1", "request": {"method": "PUT", "url": "Task/t"}, "resource": {
            "resourceType": "Task", "id": "t", "status": "requested", "intent": "order",
            "authoredOn": "2024-02-01T10:00:00Z", "lastModified": "2024-02",
            "focus": {"reference": "#sr"}, "for": {"reference": "Patient/p", "display": "x"},
            "contained": [{"resourceType": "ServiceRequest", "id": "sr", "status": "active",
                "occurrencePeriod": {"start": "2024-01-01", "end": "2023-12-31T23:00:00+01:00"}}],
            "input": [{"type": {"coding": [{"system": "urn:s", "code": "c"}]}, "valueDecimal": 1.50,
                "extension": [{"url": "u", "valueInteger": -3, "_valueInteger": {"id": "i"}}]}],
            "note": [{"text": "é\u{0}'\\"}, {}], "restriction": {"repetitions": 18446744073709551615_u64}}},
        {"fullUrl": "urn:uuid:2", "resource": {"resourceType": "Patient", "id": "p",
            "name": [{"given": ["A", null, "B"], "_given": [null, {"id": "g"}, null]}]}}
    ]})
}

/// A mapping file: parsed, linted, and (when it compiles) run over the shipped example for its adapter.
pub fn mapping_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let dir = temp();
    let mappings = dir.path().join("mappings");
    let folder = mappings.join("oneroster");
    std::fs::create_dir_all(folder.join("codes")).expect("create mappings folder");
    let shipped = repo_root().join("mappings/oneroster");
    std::fs::copy(
        shipped.join("oneroster.toml"),
        folder.join("oneroster.toml"),
    )
    .expect("copy roster mapping");
    if let Ok(codes) = std::fs::read_dir(shipped.join("codes")) {
        for code in codes.filter_map(Result::ok) {
            let _ = std::fs::copy(code.path(), folder.join("codes").join(code.file_name()));
        }
    }
    // Sorted before `oneroster.toml`, so a fuzzed mapping named `oneroster` is the one found.
    let path = folder.join("aa-fuzz.toml");
    std::fs::write(&path, text).expect("write mapping");
    let Ok(loaded) = onedoor::mapping::catalog::load(&path) else {
        return;
    };
    let others = std::collections::BTreeMap::from([(loaded.name(), &loaded)]);
    let sources = onedoor::adapters::registry::descriptions();
    let problems = onedoor::mapping::lint::check(&loaded, &others, &sources);
    let _ = onedoor::mapping::crosswalk::markdown(&loaded);
    if !problems.is_empty() {
        return;
    }
    let root = repo_root();
    let (input, roster) = match loaded.file.mapping.adapter.get_ref().as_str() {
        "oneroster" => (root.join("examples/district-export"), None),
        "referral-csv" => (
            root.join("examples/referrals.csv"),
            Some(root.join("examples/district-export")),
        ),
        _ => return,
    };
    convert_in(&mappings, loaded.name(), &input, roster.as_deref());
}

/// The configuration file (`config/onedoor.toml`), loaded and checked as `onedoor config check` does.
pub fn config_toml(data: &[u8]) {
    let dir = temp();
    let path = dir.path().join("onedoor.toml");
    std::fs::write(&path, data).expect("write config");
    let _ = onedoor::config::load_with_env(&path, std::iter::empty());
}

/// The pure functions the HTTP JSON entry points call on a received body (`POST /fhir`, `PUT /fhir/Task`,
/// `PUT /fhir/Consent`): validation, the consent reader, the subject, the performer, Task status, the
/// consent decision and redaction.
pub fn http_json(data: &[u8]) {
    if let Ok(value) = serde_json::from_slice::<Value>(data) {
        received_json(&value);
    }
}

fn received_json(value: &Value) {
    let _ = Validator::new().validate(value);
    let consent = model::parse(value).ok();
    let resources = subject::resources(value);
    for resource in &resources {
        if resource.get("resourceType").and_then(Value::as_str) == Some("ServiceRequest") {
            let _ = onedoor::gateway::performer_org(value, resource);
        }
        if let Some(status) = resource.get("status").and_then(Value::as_str)
            && let Ok(status) = status.parse::<TaskStatus>()
        {
            for next in onedoor::canonical::task_status::ALL {
                let _ = status.transition(*next, Actor::Receiver, true);
                let _ = status.transition(*next, Actor::Requester, false);
            }
        }
        let _ = model::parse(resource);
    }
    let mut registry = Registry::new();
    if let Some(consent) = consent {
        registry.upsert(consent);
    }
    let time = chrono::DateTime::parse_from_rfc3339("2025-01-15T12:00:00Z").expect("time");
    for recipient in [
        "Organization/food-bank",
        "urn:ietf:rfc:3986|urn:oid:2.16.840.1.113883",
    ] {
        let request = Request {
            record: value,
            source: Some("Organization/district"),
            recipient,
            purpose: "TREAT",
            time,
        };
        let decided = decision::decide(&registry, &[], &request);
        let _ = redact::apply(value, &decided);
    }
    let _ = redact::apply(value, &redacting());
}

fn redacting() -> Decision {
    let mut decision = decision::decide(
        &Registry::new(),
        &[],
        &Request {
            record: &Value::Null,
            source: None,
            recipient: "Organization/x",
            purpose: "TREAT",
            time: chrono::DateTime::parse_from_rfc3339("2025-01-15T12:00:00Z").expect("time"),
        },
    );
    decision.redact_classes = vec!["Observation".into(), "Condition".into()];
    decision.redact_labels = vec!["ETH".into(), "PSY".into()];
    decision.notices = vec!["42 CFR Part 2 notice".into()];
    decision
}
