//! Consent decisions per second with 100,000 consents in the registry (indexed by patient), against a
//! lookup that does no policy work (the registry index alone), in the same process and run.
//!
//! Each consent names its custodian (`organization`) and each request the source organization, so the
//! source check is part of every decision.
//!
//! Run: `cargo bench --bench consent_decisions` (optional argument: number of consents, default 100000).

use onedoor::consent::Registry;
use onedoor::consent::decision::{Request, decide};
use onedoor::consent::model;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Instant;

const DECISIONS: usize = 200_000;

/// The allocator the `onedoor` binary runs with (`src/main.rs`): the bench measures the product as shipped.
#[global_allocator]
static ALLOCATOR: onedoor::allocator::MiMallocPlain = onedoor::allocator::MiMallocPlain;

fn main() {
    let consents: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    let started = Instant::now();
    let mut registry = Registry::new();
    for i in 0..consents {
        registry.upsert(model::parse(&consent(i)).expect("generated consent is valid"));
    }
    println!(
        "registry: {} consents loaded in {:.2} s",
        registry.len(),
        started.elapsed().as_secs_f64()
    );
    let records: Vec<Value> = (0..1000)
        .map(|i| record(i * (consents / 1000).max(1)))
        .collect();
    let time = chrono::DateTime::parse_from_rfc3339("2026-03-02T10:00:00Z").unwrap();

    let started = Instant::now();
    let mut found = 0usize;
    for n in 0..DECISIONS {
        let record = &records[n % records.len()];
        let patient_id = record["entry"][0]["resource"]["id"]
            .as_str()
            .unwrap_or_default();
        let aliases: HashSet<String> = HashSet::from([format!("Patient/{patient_id}")]);
        found += registry.for_patient(&aliases).len();
    }
    let lookup = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let cpu_started = cpu_seconds();
    let mut permitted = 0usize;
    for n in 0..DECISIONS {
        let request = Request {
            record: &records[n % records.len()],
            source: Some("urn:onedoor:schools|s-1"),
            recipient: "urn:onedoor:agencies|county-food-bank",
            purpose: "TREAT",
            time,
        };
        permitted += usize::from(decide(&registry, &[], &request).permits());
    }
    let decided = started.elapsed().as_secs_f64();
    let cpu = cpu_started.zip(cpu_seconds()).map(|(a, b)| b - a);
    assert_eq!(found, DECISIONS, "each lookup finds the patient's consent");
    assert_eq!(permitted, DECISIONS, "each decision permits");
    println!(
        "lookup only (index, no policy work): {:.0} lookups/s",
        DECISIONS as f64 / lookup
    );
    println!(
        "full decisions (every person and resource, guardians, performer, provisions, labels, Part 2, explanation): {:.0} decisions/s",
        DECISIONS as f64 / decided
    );
    println!("per decision: {:.2} µs", decided / DECISIONS as f64 * 1e6);
    if let Some(cpu) = cpu {
        println!(
            "per decision, CPU time of this thread (what other processes on the machine do not inflate): {:.2} µs",
            cpu / DECISIONS as f64 * 1e6
        );
    }
    println!(
        "ratio: a decision costs {:.1}x an index lookup",
        decided / lookup
    );
}

/// User and system CPU time of this thread so far, in seconds (Linux, `/proc/thread-self/stat`, clock ticks
/// of 1/100 s: over the seconds the decisions take, precise to a fraction of a percent).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // After the command name in parentheses: state is field 3, utime field 14, stime field 15.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    Some((ticks(11)? + ticks(12)?) / 100.0)
}

fn consent(i: usize) -> Value {
    json!({
        "resourceType": "Consent", "id": format!("c-{i}"), "status": "active",
        "scope": {"coding": [{"code": "patient-privacy"}]}, "category": [{"coding": [{"code": "IDSCL"}]}],
        "patient": {"reference": format!("Patient/p-{i}")},
        "performer": [{"reference": format!("RelatedPerson/g-{i}")}],
        "organization": [{"identifier": {"system": "urn:onedoor:schools", "value": "s-1"}}],
        "policyRule": {"coding": [{"code": "FERPA"}]},
        "provision": {
            "type": "permit", "period": {"start": "2026-01-01", "end": "2026-12-31"},
            "actor": [{"role": {"coding": [{"code": "IRCP"}]}, "reference": {"identifier": {"system": "urn:onedoor:agencies", "value": "county-food-bank"}}}],
            "purpose": [{"code": "TREAT"}],
            "provision": [{"type": "deny", "class": [{"code": "Condition"}]}]
        }
    })
}

fn record(i: usize) -> Value {
    let entries = [
        json!({"resourceType": "Patient", "id": format!("p-{i}"), "birthDate": "2014-05-05"}),
        json!({"resourceType": "ServiceRequest", "id": format!("sr-{i}"), "subject": {"reference": format!("Patient/p-{i}")}}),
        json!({"resourceType": "Task", "id": format!("t-{i}")}),
        json!({"resourceType": "RelatedPerson", "id": format!("g-{i}"), "patient": {"reference": format!("Patient/p-{i}")},
            "relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "PRN"}]}]}),
        json!({"resourceType": "Condition", "id": format!("c-{i}"), "subject": {"reference": format!("Patient/p-{i}")},
            "meta": {"security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PSY"}]}}),
        json!({"resourceType": "Organization", "id": "food", "identifier": [{"system": "urn:onedoor:agencies", "value": "county-food-bank"}]}),
    ];
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries.iter().map(|r| json!({"resource": r})).collect::<Vec<_>>()})
}
