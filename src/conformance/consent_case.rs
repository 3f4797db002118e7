//! Running a consent case: load the record, the consents and the legal bases, ask the gate, and compare
//! the decision, its basis, obligations and explanation, and the released record, with what the case
//! expects.

use super::case::{CaseFile, ConsentCase, Expect};
use crate::consent::{self, ConsentGate, Decision, Disclosing, Outcome, Registry, Withheld};
use serde_json::Value;
use std::path::Path;

/// Every way the case's expectations are not met.
pub fn check(dir: &Path, case: &CaseFile, spec: &ConsentCase) -> Vec<String> {
    let mut failures = Vec::new();
    let record: Value = match std::fs::read_to_string(dir.join(&spec.bundle))
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
    {
        Ok(record) => record,
        Err(why) => return vec![format!("{}: {why}", spec.bundle.display())],
    };
    let registry = match &spec.consents {
        Some(path) => match consent::registry::load_for_record(&dir.join(path), &record) {
            Ok(registry) => registry,
            Err(why) => return vec![format!("{}: {why}", path.display())],
        },
        None => Registry::new(),
    };
    let bases = match &spec.bases {
        Some(path) => match consent::bases::load(&dir.join(path)) {
            Ok(bases) => bases,
            Err(problems) => return problems,
        },
        None => Vec::new(),
    };
    let Ok(time) = chrono::DateTime::parse_from_rfc3339(&spec.time) else {
        return vec![format!("time '{}' is not an RFC 3339 date-time", spec.time)];
    };
    check_registry(&registry, spec, &mut failures);
    let policy = match case_policy(spec) {
        Ok(policy) => policy,
        Err(problems) => return problems,
    };
    let mut gate = ConsentGate::new(registry, bases, None).with_policy(policy);
    let request = Disclosing {
        recipient: spec.recipient.clone(),
        purpose: spec.purpose.clone(),
        source: spec.source.clone(),
    };
    let (decision, released) = match gate.release(record, request, time) {
        Ok(released) => {
            check_side_file(spec, &released, &mut failures);
            (released.decision().clone(), Some(released.record().clone()))
        }
        Err(Withheld::Denied(decision)) => (*decision, None),
        Err(other) => return vec![other.to_string()],
    };
    check_decision(case, spec, &decision, &mut failures);
    check_released(dir, spec, released, &mut failures);
    failures
}

/// The case's decision policy (`[consent.policy]`), checked as `onedoor config check` checks `[consent]`.
fn case_policy(spec: &ConsentCase) -> Result<consent::decision::Policy, Vec<String>> {
    let mut policy = consent::decision::Policy::default();
    if let Some(given) = &spec.policy {
        if let Some(roles) = &given.custodial_roles {
            policy.custodial_roles = roles.clone();
        }
        if let Some(age) = given.age_of_majority {
            policy.age_of_majority = age;
        }
        policy.age_by_policy = given.age_of_consent.clone();
        policy.custodian_for = given.custodian_for.clone();
    }
    let problems = consent::decision::check_policy(&policy);
    if problems.is_empty() {
        Ok(policy)
    } else {
        Err(problems
            .into_iter()
            .map(|p| format!("policy.{p}"))
            .collect())
    }
}

/// The side-file line an HMIS CSV or file destination would write for the released record.
fn check_side_file(
    spec: &ConsentCase,
    released: &consent::Released<Value>,
    failures: &mut Vec<String>,
) {
    let Some(wanted) = &spec.side_file_contains else {
        return;
    };
    let line = crate::delivery::obligations::line(released)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
    let Some(line) = line else {
        failures
            .push("no obligation side-file line: the released record carries no obligation".into());
        return;
    };
    for text in wanted.items() {
        if !line.contains(text) {
            failures.push(format!(
                "the side-file line does not contain '{text}': {line}"
            ));
        }
    }
}

fn check_registry(registry: &Registry, spec: &ConsentCase, failures: &mut Vec<String>) {
    let problems: Vec<String> = registry
        .problems()
        .iter()
        .map(ToString::to_string)
        .collect();
    for wanted in spec
        .registry_problems_contain
        .iter()
        .flat_map(|w| w.items())
    {
        if !problems.iter().any(|p| p.contains(wanted)) {
            failures.push(format!(
                "no consent problem contains '{wanted}' (problems: {})",
                problems.join(" | ")
            ));
        }
    }
}

fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Permit => "permit",
        Outcome::Deny => "deny",
        Outcome::NoConsent => "no-consent",
    }
}

fn check_decision(
    case: &CaseFile,
    spec: &ConsentCase,
    decision: &Decision,
    failures: &mut Vec<String>,
) {
    let explanation = decision.explanation.join("\n");
    let mut fail = |message: String| {
        failures.push(format!(
            "{message}\n       explanation:\n         {}",
            explanation.replace('\n', "\n         ")
        ))
    };
    if outcome_name(decision.outcome) != spec.decision {
        fail(format!(
            "expected decision {}, got {}",
            spec.decision,
            outcome_name(decision.outcome)
        ));
    }
    let expect_ok = match case.expect {
        Expect::Success => decision.permits() && !decision.redacts(),
        Expect::Redacted => decision.permits() && decision.redacts(),
        Expect::ConsentDenied => !decision.permits(),
        Expect::Rejected => false,
    };
    if !expect_ok {
        fail(format!(
            "expected {:?}, the decision was {:?} with withheld {:?}",
            case.expect, decision.outcome, decision.redact_classes
        ));
    }
    if let Some(basis) = &spec.basis {
        let actual = serde_json::to_value(decision.basis).ok().map(|v| match v {
            Value::String(s) => s,
            Value::Object(o) => o
                .values()
                .next()
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            _ => String::new(),
        });
        if actual.as_deref() != Some(basis.as_str()) {
            fail(format!("expected basis {basis}, got {:?}", decision.basis));
        }
    }
    if let Some(withheld) = &spec.withheld {
        let actual: Vec<String> = decision
            .redact_classes
            .iter()
            .chain(decision.redact_labels.iter())
            .cloned()
            .collect();
        if &actual != withheld {
            fail(format!("expected withheld {withheld:?}, got {actual:?}"));
        }
    }
    if let Some(notice) = spec.notice
        && notice == decision.notices.is_empty()
    {
        fail(format!("expected the Part 2 notice: {notice}"));
    }
    for wanted in spec.explanation_contains.iter().flat_map(|w| w.items()) {
        if !explanation.contains(wanted) {
            fail(format!("the explanation does not contain '{wanted}'"));
        }
    }
}

fn check_released(
    dir: &Path,
    spec: &ConsentCase,
    released: Option<Value>,
    failures: &mut Vec<String>,
) {
    if let Some(released) = &released {
        let bytes = released.to_string();
        for unwanted in spec.released_excludes.iter().flat_map(|w| w.items()) {
            if bytes.contains(unwanted) {
                failures.push(format!("the released record contains '{unwanted}'"));
            }
        }
    }
    let actual = Value::Array(released.into_iter().collect());
    for (file, exact) in [(&spec.json_contains, false), (&spec.json_equals, true)] {
        let Some(file) = file else { continue };
        let expected: Value = match std::fs::read_to_string(dir.join(file))
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
        {
            Ok(v) => v,
            Err(why) => {
                failures.push(format!("{}: {why}", file.display()));
                continue;
            }
        };
        let result = if exact {
            if actual == expected {
                Ok(())
            } else {
                Err("differs".to_owned())
            }
        } else {
            super::compare::contains(&actual, &expected)
        };
        if let Err(diff) = result {
            failures.push(format!("released record vs {}: {diff}", file.display()));
        }
    }
}
