//! Properties of the consent gate over generated referral bundles (issue 11): several people, resources at
//! the top level, contained in the ServiceRequest and inside a nested Bundle, security labels, references
//! between data, free text that mentions other data, and consents with nested provisions.
//!
//! For every generated bundle and request:
//! - no string found only in withheld data (each data resource carries a unique token) appears in the
//!   released bytes;
//! - every reference in the release resolves inside it;
//! - the decision (outcome, basis, withheld resources and labels) is the same under any permutation of the
//!   consents and of the Bundle's entries;
//! - releasing never adds data: every released resource was in the record, and every string in the release
//!   was in the record or is one of the gate's own markings (REDACTED, the Part 2 obligation and notice).

use onedoor::consent::codes::{self, PART2_NOTICE};
use onedoor::consent::subject::Record;
use onedoor::consent::{ConsentGate, Disclosing, Registry, Withheld, model};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};

const FOOD_BANK: &str = "urn:onedoor:agencies|county-food-bank";
const V3: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
const CONF: &str = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality";
const LABELS: &[(&str, &str)] = &[
    (V3, "PSY"),
    (V3, "ETH"),
    (V3, "OPIOIDUD"),
    (V3, "HIV"),
    (CONF, "R"),
    (CONF, "V"),
];
const CLASSES: &[&str] = &["Condition", "Observation"];

/// One data resource: its type, whom it is about (a person index, or 9: someone not in the record), its
/// labels (indexes into LABELS), where it sits (0 top level, 1 contained in the ServiceRequest, 2 in the
/// nested Bundle), which earlier resource it refers to, and whether the ServiceRequest mentions it.
#[derive(Debug, Clone)]
struct Data {
    kind: usize,
    about: usize,
    labels: Vec<usize>,
    place: usize,
    refers: Option<usize>,
    mentioned: bool,
}

/// A provision: permit or deny, an optional class, label, named instance, and nested provisions.
#[derive(Debug, Clone)]
struct Prov {
    deny: bool,
    class: Option<usize>,
    label: Option<usize>,
    instance: Option<usize>,
    nested: Vec<Prov>,
}

#[derive(Debug, Clone)]
struct Spec {
    people: usize,
    adults: Vec<bool>,
    data: Vec<Data>,
    /// (person, Part 2 policy, root provision)
    consents: Vec<(usize, bool, Prov)>,
    entry_order: Vec<usize>,
    consent_order: Vec<usize>,
}

fn prov(depth: u32) -> impl Strategy<Value = Prov> {
    let leaf = (
        any::<bool>(),
        proptest::option::of(0..CLASSES.len()),
        proptest::option::of(0..LABELS.len()),
        proptest::option::weighted(0.2, 0..6usize),
    )
        .prop_map(|(deny, class, label, instance)| Prov {
            deny,
            class,
            label,
            instance,
            nested: Vec::new(),
        });
    leaf.prop_recursive(depth, 8, 3, |inner| {
        (
            any::<bool>(),
            proptest::option::of(0..CLASSES.len()),
            proptest::option::of(0..LABELS.len()),
            proptest::collection::vec(inner, 0..3),
        )
            .prop_map(|(deny, class, label, nested)| Prov {
                deny,
                class,
                label,
                instance: None,
                nested,
            })
    })
}

fn spec() -> impl Strategy<Value = Spec> {
    let data = proptest::collection::vec(
        (
            0..CLASSES.len(),
            prop_oneof![4 => 0..3usize, 1 => Just(9usize)],
            proptest::collection::vec(0..LABELS.len(), 0..2),
            0..3usize,
            proptest::option::of(0..6usize),
            any::<bool>(),
        )
            .prop_map(|(kind, about, labels, place, refers, mentioned)| Data {
                kind,
                about,
                labels,
                place,
                refers,
                mentioned,
            }),
        0..6,
    );
    let consents = proptest::collection::vec(
        (
            0..3usize,
            proptest::bool::weighted(0.3),
            prov(3).prop_map(|mut p| {
                // A root that permits the referral most of the time, so the nested provisions matter.
                p.class = None;
                p.label = None;
                p.instance = None;
                p
            }),
        ),
        1..5,
    )
    .prop_map(|mut consents| {
        // The first consent permits the referral's child something; the others are anything.
        consents[0].0 = 0;
        consents[0].2.deny = false;
        consents
    });
    (
        1..=3usize,
        proptest::collection::vec(proptest::bool::weighted(0.15), 3),
        data,
        consents,
    )
        .prop_flat_map(|(people, adults, data, consents)| {
            let entries = 5 + people * 2 + data.len() + 1;
            let n = consents.len();
            (
                Just((people, adults, data, consents)),
                Just((0..entries).collect::<Vec<_>>()).prop_shuffle(),
                Just((0..n).collect::<Vec<_>>()).prop_shuffle(),
            )
        })
        .prop_map(
            |((people, adults, mut data, consents), entry_order, consent_order)| {
                for d in &mut data {
                    if d.about != 9 && d.about >= people {
                        d.about = 0;
                    }
                }
                Spec {
                    people,
                    adults,
                    data,
                    consents,
                    entry_order,
                    consent_order,
                }
            },
        )
}

fn token(i: usize) -> String {
    format!("tokq{i}zx")
}

fn data_id(i: usize) -> String {
    format!("d{i}")
}

fn entry(resource: Value) -> Value {
    let url = format!(
        "{}/{}",
        resource["resourceType"].as_str().unwrap(),
        resource["id"].as_str().unwrap()
    );
    json!({"fullUrl": format!("urn:onedoor:test:{url}"), "resource": resource, "request": {"method": "PUT", "url": url}})
}

fn labels_json(labels: &[usize]) -> Value {
    Value::Array(
        labels
            .iter()
            .map(|&l| json!({"system": LABELS[l].0, "code": LABELS[l].1}))
            .collect(),
    )
}

/// The reference to data resource `j` as seen from a place (contained data is `#id`).
fn data_reference(spec: &Spec, j: usize) -> String {
    let d = &spec.data[j];
    if d.place == 1 {
        format!("#{}", data_id(j))
    } else {
        format!("{}/{}", CLASSES[d.kind], data_id(j))
    }
}

fn data_resource(spec: &Spec, i: usize) -> Value {
    let d = &spec.data[i];
    let subject = if d.about == 9 {
        json!({"identifier": {"system": "urn:other:people", "value": format!("stranger{i}")}})
    } else {
        json!({"reference": format!("Patient/pat-{}", d.about)})
    };
    let mut resource = match d.kind {
        0 => json!({
            "resourceType": "Condition", "id": data_id(i),
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
            "code": {"text": format!("condition {}", token(i))},
            "subject": subject,
            "note": [{"text": format!("noted {}", token(i))}],
        }),
        _ => json!({
            "resourceType": "Observation", "id": data_id(i), "status": "final",
            "code": {"text": format!("observation {}", token(i))},
            "subject": subject,
        }),
    };
    // A contained resource carries no security label of its own (dom-5): its container's labels are its.
    if !d.labels.is_empty() && d.place != 1 {
        resource["meta"] = json!({"security": labels_json(&d.labels)});
    }
    // A reference to an earlier data resource in the same place (so it can resolve there).
    if let Some(j) = d.refers.filter(|&j| j < i && spec.data[j].place == d.place) {
        let target =
            json!({"reference": data_reference(spec, j), "display": format!("about {}", token(j))});
        match d.kind {
            0 => resource["evidence"] = json!([{"detail": [target]}]),
            _ => resource["focus"] = json!([target]),
        }
    }
    resource
}

fn build(spec: &Spec) -> (Value, Vec<Value>) {
    let mut entries = Vec::new();
    let mut contained = Vec::new();
    let mut nested = Vec::new();
    let mut reasons = Vec::new();
    let mut notes = Vec::new();
    for i in 0..spec.data.len() {
        let resource = data_resource(spec, i);
        let d = &spec.data[i];
        match d.place {
            0 => entries.push(entry(resource)),
            1 => contained.push(resource),
            _ => {
                // A collection's entries carry no request (bdl-3).
                let mut e = entry(resource);
                if let Some(map) = e.as_object_mut() {
                    map.remove("request");
                }
                nested.push(e);
            }
        }
        // Contained data is referred to from its container (dom-3), so it is always a reason.
        if (d.mentioned || d.place == 1) && d.place != 2 {
            reasons.push(json!({"reference": data_reference(spec, i), "display": format!("for {}", token(i))}));
            notes.push(json!({"text": format!("see {}", token(i))}));
        }
    }
    let mut request = json!({
        "resourceType": "ServiceRequest", "id": "sr-1", "status": "active", "intent": "order",
        "code": {"text": "Weekend food backpacks"},
        "subject": {"reference": "Patient/pat-0"},
        "authoredOn": "2026-02-01",
        "requester": {"reference": "Organization/org-school"},
        "performer": [{"reference": "Organization/org-food"}],
    });
    if !contained.is_empty() {
        request["contained"] = Value::Array(contained);
    }
    if !reasons.is_empty() {
        request["reasonReference"] = Value::Array(reasons);
        request["note"] = Value::Array(notes);
    }
    entries.push(entry(request));
    entries.push(entry(json!({
        "resourceType": "Task", "id": "task-1", "status": "requested", "intent": "order",
        "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]},
        "focus": {"reference": "ServiceRequest/sr-1"}, "for": {"reference": "Patient/pat-0"},
        "authoredOn": "2026-02-01",
        "requester": {"reference": "Organization/org-school"}, "owner": {"reference": "Organization/org-food"},
    })));
    for (id, system, value, name) in [
        (
            "org-food",
            "urn:onedoor:agencies",
            "county-food-bank",
            "County Food Bank",
        ),
        (
            "org-school",
            "urn:onedoor:source:lakeview/orgs",
            "s-1",
            "Lakeview Elementary",
        ),
        (
            "org-welfare",
            "urn:onedoor:agencies",
            "family-services",
            "Family Services",
        ),
    ] {
        entries.push(entry(json!({"resourceType": "Organization", "id": id, "identifier": [{"system": system, "value": value}], "name": name})));
    }
    for p in 0..spec.people {
        let birth = if spec.adults[p] { "1990" } else { "2014-05-05" };
        entries.push(entry(json!({
            "resourceType": "Patient", "id": format!("pat-{p}"),
            "identifier": [{"system": "urn:onedoor:source:lakeview/users", "value": format!("st-{p}")}],
            "name": [{"family": "Osei", "given": [format!("Given{p}qq")]}], "birthDate": birth,
        })));
        entries.push(entry(json!({
            "resourceType": "RelatedPerson", "id": format!("rp-{p}"),
            "patient": {"reference": format!("Patient/pat-{p}")},
            "relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "PRN"}]}],
        })));
    }
    entries.push(entry(json!({
        "resourceType": "Bundle", "id": "history", "type": "collection", "entry": nested,
    })));
    let ordered: Vec<Value> = spec
        .entry_order
        .iter()
        .filter_map(|&i| entries.get(i).cloned())
        .collect();
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": ordered});
    let consents = spec
        .consent_order
        .iter()
        .map(|&c| {
            let (person, part2, root) = &spec.consents[c];
            consent(spec, c, *person, *part2, root)
        })
        .collect();
    (bundle, consents)
}

fn provision_json(spec: &Spec, p: &Prov) -> Value {
    let mut value = json!({"type": if p.deny { "deny" } else { "permit" }});
    if let Some(c) = p.class {
        value["class"] =
            json!([{"system": "http://hl7.org/fhir/resource-types", "code": CLASSES[c]}]);
    }
    if let Some(l) = p.label {
        value["securityLabel"] = json!([{"system": LABELS[l].0, "code": LABELS[l].1}]);
    }
    if let Some(i) = p.instance.filter(|&i| i < spec.data.len()) {
        value["data"] = json!([{"meaning": "instance", "reference": {"reference": format!("{}/{}", CLASSES[spec.data[i].kind], data_id(i))}}]);
    }
    if !p.nested.is_empty() {
        value["provision"] =
            Value::Array(p.nested.iter().map(|n| provision_json(spec, n)).collect());
    }
    value
}

fn consent(spec: &Spec, index: usize, person: usize, part2: bool, root: &Prov) -> Value {
    let person = person.min(spec.people - 1);
    let mut provision = provision_json(spec, root);
    provision["actor"] = json!([{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]}, "reference": {"identifier": {"system": "urn:onedoor:agencies", "value": "county-food-bank"}}}]);
    let performer = if spec.adults[person] {
        format!("Patient/pat-{person}")
    } else {
        format!("RelatedPerson/rp-{person}")
    };
    let policy = if part2 { "42CFRPart2" } else { "FERPA" };
    let system = if part2 { V3 } else { "urn:onedoor:codes" };
    json!({
        "resourceType": "Consent", "id": format!("c-{index}"), "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": V3, "code": "IDSCL"}]}],
        "patient": {"reference": format!("Patient/pat-{person}")},
        "dateTime": "2026-01-01",
        "performer": [{"reference": performer}],
        "policyRule": {"coding": [{"system": system, "code": policy}]},
        "provision": provision,
    })
}

struct Outcome {
    summary: String,
    released: Option<Value>,
    withheld: BTreeSet<String>,
}

fn run(bundle: &Value, consents: &[Value]) -> Outcome {
    let mut registry = Registry::new();
    for c in consents {
        registry.upsert(model::parse(c).expect("generated consents are valid"));
    }
    let gate = ConsentGate::new(registry, Vec::new(), None);
    let time = chrono::DateTime::parse_from_rfc3339("2026-03-02T10:00:00Z").unwrap();
    let request = Disclosing {
        recipient: FOOD_BANK.to_owned(),
        purpose: "TREAT".to_owned(),
        source: Some("Organization/org-school".to_owned()),
    };
    let decision = gate.decision(bundle, &request, time);
    let withheld: BTreeSet<String> = decision.withheld_resources.iter().cloned().collect();
    let summary = format!(
        "{:?} {:?} {:?} {:?} {:?} {withheld:?} {:?}",
        decision.outcome,
        decision.basis,
        decision.authority,
        decision.redact_classes,
        decision.redact_labels,
        decision.notices.len()
    );
    let released = match gate.release_for_delivery(bundle, request, time) {
        Ok(released) => Some(released.record().clone()),
        Err(Withheld::Denied(_)) => None,
        Err(other) => panic!("the gate failed: {other}"),
    };
    Outcome {
        summary,
        released,
        withheld,
    }
}

fn leaf_strings(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::String(s) => {
            out.insert(s.clone());
        }
        Value::Array(list) => list.iter().for_each(|v| leaf_strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| leaf_strings(v, out)),
        _ => {}
    }
}

/// Bundles tried, released, released with something withheld, denied (printed with `--nocapture`).
static TRIED: [AtomicUsize; 4] = [const { AtomicUsize::new(0) }; 4];

fn check(spec: &Spec) -> Result<(), TestCaseError> {
    let (bundle, consents) = build(spec);
    let outcome = run(&bundle, &consents);
    let counter = match (&outcome.released, outcome.withheld.is_empty()) {
        (Some(_), true) => 1,
        (Some(_), false) => 2,
        (None, _) => 3,
    };
    TRIED[0].fetch_add(1, Ordering::Relaxed);
    TRIED[counter].fetch_add(1, Ordering::Relaxed);

    // Permutations: the consents reversed, the entries reversed.
    let mut reversed = consents.clone();
    reversed.reverse();
    let other = run(&bundle, &reversed);
    prop_assert_eq!(
        &outcome.summary,
        &other.summary,
        "consent order changed the decision"
    );
    let mut shuffled = bundle.clone();
    if let Some(entries) = shuffled["entry"].as_array_mut() {
        entries.reverse();
    }
    let other = run(&shuffled, &consents);
    prop_assert_eq!(
        &outcome.summary,
        &other.summary,
        "entry order changed the decision"
    );

    let Some(released) = outcome.released else {
        return Ok(());
    };
    let bytes = released.to_string();
    // No token of withheld data.
    for (i, d) in spec.data.iter().enumerate() {
        let reference = format!("{}/{}", CLASSES[d.kind], data_id(i));
        if outcome.withheld.contains(&reference) {
            prop_assert!(
                !bytes.contains(&token(i)),
                "the token of withheld {} leaked: {}",
                reference,
                bytes
            );
            let quoted = format!("\"{reference}\"");
            prop_assert!(
                !bytes.contains(&quoted),
                "{} is still referenced",
                reference
            );
        }
    }
    for p in 0..spec.people {
        if outcome.withheld.contains(&format!("Patient/pat-{p}")) {
            prop_assert!(
                !bytes.contains(&format!("Given{p}qq")),
                "a withheld person's name leaked"
            );
        }
    }
    // Every reference resolves inside the release.
    let read = Record::read(&released);
    prop_assert!(
        read.dangling.is_empty(),
        "dangling references {:?} in {}",
        read.dangling,
        bytes
    );
    // Nothing added.
    let before: BTreeSet<String> = Record::read(&bundle)
        .items
        .iter()
        .map(|i| i.reference.clone())
        .collect();
    for item in &read.items {
        if item.pointer.is_empty() {
            continue;
        }
        prop_assert!(
            before.contains(&item.reference),
            "{} was added",
            item.reference
        );
    }
    let mut original = BTreeSet::new();
    leaf_strings(&bundle, &mut original);
    let mut now = BTreeSet::new();
    leaf_strings(&released, &mut now);
    let markings = [
        "REDACTED",
        "redacted",
        codes::V3_OBSERVATION_VALUE,
        codes::REDISCLOSURE_OBLIGATION,
        "no redisclosure without consent directive",
        codes::NOTICE_EXTENSION,
        PART2_NOTICE,
        "ETH",
        "substance abuse information sensitivity",
        V3,
    ];
    for s in now {
        prop_assert!(
            original.contains(&s) || markings.contains(&s.as_str()),
            "'{}' was added",
            s
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn the_gate_never_leaks_and_ignores_order(spec in spec()) {
        check(&spec)?;
    }
}

#[test]
fn zz_report_what_was_tried() {
    // Runs after the property in the default (alphabetical, one thread) order only; informational.
    println!(
        "bundles tried: {}, released in full: {}, released redacted: {}, withheld: {}",
        TRIED[0].load(Ordering::Relaxed),
        TRIED[1].load(Ordering::Relaxed),
        TRIED[2].load(Ordering::Relaxed),
        TRIED[3].load(Ordering::Relaxed)
    );
}
