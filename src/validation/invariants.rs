//! FHIR invariants the JSON schema cannot express, checked in code (a compact evaluation of what each
//! FHIRPath constraint says, not a FHIRPath engine):
//!
//! - **bdl-7**: FullUrl must be unique in a bundle, or else entries with the same fullUrl must have different
//!   meta.versionId (except in history bundles);
//! - **bdl-3**: entry.request mandatory for batch/transaction/history, otherwise prohibited;
//! - **bdl-4**: entry.response mandatory for batch-response/transaction-response/history, otherwise prohibited;
//! - **bdl-5**: an entry must contain a resource unless there is a request or response;
//! - **bdl-1** / **bdl-2**: total only in a search or history; entry.search only in a search set;
//! - **per-1**: a Period's end, if present, is not before its start (compared at the precision both have;
//!   date-times with offsets compared as instants).

use super::{Issue, IssueSource};
use serde_json::Value;
use std::collections::HashMap;

/// Every invariant violation in `resource` (a Bundle's entries included), with JSON paths under `prefix`.
pub fn check(resource: &Value, prefix: &str) -> Vec<Issue> {
    let mut issues = Vec::new();
    periods(resource, prefix, &mut issues);
    if resource.get("resourceType").and_then(Value::as_str) == Some("Bundle") {
        bundle(resource, prefix, &mut issues);
    }
    issues
}

/// The Bundle rules only (for a Bundle inside another document, whose periods were already walked).
pub fn check_bundle(resource: &Value, prefix: &str) -> Vec<Issue> {
    let mut issues = Vec::new();
    bundle(resource, prefix, &mut issues);
    issues
}

fn issue(path: String, message: String) -> Issue {
    Issue {
        path,
        message,
        source: IssueSource::Invariant,
    }
}

fn bundle(bundle: &Value, prefix: &str, issues: &mut Vec<Issue>) {
    let kind = bundle
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if bundle.get("total").is_some() && !matches!(kind, "searchset" | "history") {
        issues.push(issue(
            format!("{prefix}/total"),
            format!("bdl-1: total only when a search or history (this Bundle is a {kind})"),
        ));
    }
    let entries = bundle
        .get("entry")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut seen: HashMap<(&str, Option<&str>), usize> = HashMap::new();
    for (index, entry) in entries.iter().enumerate() {
        let at = format!("{prefix}/entry/{index}");
        if entry.get("search").is_some() && kind != "searchset" {
            issues.push(issue(
                format!("{at}/search"),
                format!("bdl-2: entry.search only when a search (this Bundle is a {kind})"),
            ));
        }
        let needs_request = matches!(kind, "batch" | "transaction" | "history");
        if entry.get("request").is_some() != needs_request {
            issues.push(issue(
                format!("{at}/request"),
                format!(
                    "bdl-3: entry.request mandatory for batch/transaction/history, otherwise prohibited (this Bundle is a {kind})"
                ),
            ));
        }
        let needs_response = matches!(kind, "batch-response" | "transaction-response" | "history");
        if entry.get("response").is_some() != needs_response {
            issues.push(issue(
                format!("{at}/response"),
                format!(
                    "bdl-4: entry.response mandatory for batch-response/transaction-response/history, otherwise prohibited (this Bundle is a {kind})"
                ),
            ));
        }
        if entry.get("resource").is_none()
            && entry.get("request").is_none()
            && entry.get("response").is_none()
        {
            issues.push(issue(
                at.clone(),
                "bdl-5: an entry must contain a resource unless there is a request or response"
                    .into(),
            ));
        }
        if kind == "history" {
            continue;
        }
        if let Some(full_url) = entry.get("fullUrl").and_then(Value::as_str) {
            let version = entry
                .pointer("/resource/meta/versionId")
                .and_then(Value::as_str);
            if let Some(first) = seen.insert((full_url, version), index) {
                issues.push(issue(
                    format!("{at}/fullUrl"),
                    format!(
                        "bdl-7: fullUrl '{full_url}' is also the fullUrl of entry {first} (expected each fullUrl once in a Bundle, unless the versions differ)"
                    ),
                ));
            }
        }
    }
}

/// per-1 on every Period: any object holding `start` and `end` strings.
fn periods(value: &Value, path: &str, issues: &mut Vec<Issue>) {
    match value {
        Value::Object(map) => {
            if let (Some(Value::String(start)), Some(Value::String(end))) =
                (map.get("start"), map.get("end"))
                && end_before_start(start, end)
            {
                issues.push(issue(
                    format!("{path}/end"),
                    format!("per-1: impossible period: it ends ({end}) before it starts ({start}) (expected end ≥ start)"),
                ));
            }
            for (key, inner) in map {
                periods(inner, &format!("{path}/{key}"), issues);
            }
        }
        Value::Array(items) => {
            for (index, inner) in items.iter().enumerate() {
                periods(inner, &format!("{path}/{index}"), issues);
            }
        }
        _ => {}
    }
}

fn end_before_start(start: &str, end: &str) -> bool {
    if let (Ok(start), Ok(end)) = (
        chrono::DateTime::parse_from_rfc3339(start),
        chrono::DateTime::parse_from_rfc3339(end),
    ) {
        return end < start;
    }
    // Partial dates (2024, 2024-05, 2024-05-01) or a date against a date-time: compare the date part at the
    // precision both have; an uncertain comparison (same prefix) is not a violation.
    let (start, end) = (
        start.get(..10).unwrap_or(start),
        end.get(..10).unwrap_or(end),
    );
    let common = start.len().min(end.len());
    end[..common] < start[..common]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_period_ending_before_it_starts_breaks_per_1() {
        let encounter = json!({"resourceType": "Encounter", "period": {"start": "2024-02-01", "end": "2024-01-15"}});
        let issues = check(&encounter, "");
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(issues[0].path, "/period/end");
        assert!(issues[0].message.starts_with("per-1"));
        for (start, end) in [
            ("2024-02-01", "2024-02-01"),
            ("2024-02", "2024-02-15"),
            ("2024-02-01T10:00:00+02:00", "2024-02-01T09:00:00Z"),
            ("2024-02-01", "2024-02-01T00:00:00Z"),
        ] {
            let ok = json!({"resourceType": "Encounter", "period": {"start": start, "end": end}});
            assert!(check(&ok, "").is_empty(), "{start} .. {end}");
        }
        let instants = json!({"resourceType": "Encounter", "period": {"start": "2024-02-01T10:00:00Z", "end": "2024-02-01T11:00:00+02:00"}});
        assert_eq!(check(&instants, "").len(), 1);
    }

    #[test]
    fn the_same_full_url_twice_breaks_bdl_7() {
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient"}, "request": {"method": "PUT", "url": "Patient/1"}},
            {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient"}, "request": {"method": "PUT", "url": "Patient/1"}},
            {"fullUrl": "urn:uuid:2", "resource": {"resourceType": "Patient"}}
        ]});
        let issues = check(&bundle, "");
        let messages: Vec<&str> = issues.iter().map(|i| i.message.as_str()).collect();
        assert!(
            issues
                .iter()
                .any(|i| i.path == "/entry/1/fullUrl" && i.message.starts_with("bdl-7")),
            "{messages:?}"
        );
        assert!(
            issues
                .iter()
                .any(|i| i.path == "/entry/2/request" && i.message.starts_with("bdl-3")),
            "{messages:?}"
        );
        assert_eq!(issues.len(), 2, "{messages:?}");
    }
}
