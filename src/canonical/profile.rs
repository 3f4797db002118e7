//! SDOHCC profile rules checked in code, for resources that claim the profile in `meta.profile`:
//! ServiceRequest (SDOHCC-ServiceRequest) and Task (SDOHCC-TaskForReferralManagement). The rules are the
//! profiles' differential constraints: required elements, fixed values, the referral Task status set.

use super::task_status::TaskStatus;
use super::{SDOHCC_SERVICE_REQUEST, SDOHCC_TASK_REFERRAL, SDOHCC_TEMPORARY_CODES};
use crate::members::Members;
use serde_json::Value;

/// The SDOH category codes of the SDOHCC category value set.
pub const SDOH_CATEGORIES: &[&str] = &[
    "food-insecurity",
    "housing-instability",
    "homelessness",
    "inadequate-housing",
    "transportation-insecurity",
    "financial-insecurity",
    "material-hardship",
    "educational-attainment",
    "employment-status",
    "veteran-status",
    "stress",
    "social-connection",
    "intimate-partner-violence",
    "elder-abuse",
    "personal-health-literacy",
    "health-insurance-coverage-status",
    "medical-cost-burden",
    "digital-literacy",
    "digital-access",
    "utility-insecurity",
    "sdoh-category-unspecified",
];

/// One profile rule a resource breaks: the JSON pointer of the element concerned (`/status`) and what is
/// wrong. `validation` reports it as an issue of source `profile`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON pointer of the element, relative to the resource.
    pub path: String,
    /// What is wrong and what was expected.
    pub message: String,
}

/// Every profile violation of one resource (not of the resources inside a Bundle).
pub fn check(resource: &Value) -> Vec<Violation> {
    let mut issues = Vec::new();
    let kind = resource
        .member("resourceType")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if kind == "ServiceRequest" && claims(resource, SDOHCC_SERVICE_REQUEST) {
        check_service_request(resource, &mut issues);
    }
    if kind == "Task" && claims(resource, SDOHCC_TASK_REFERRAL) {
        check_referral_task(resource, &mut issues);
    }
    issues
}

fn claims(resource: &Value, profile: &str) -> bool {
    resource
        .member("meta")
        .and_then(|meta| meta.member("profile"))
        .and_then(Value::as_array)
        .is_some_and(|profiles| {
            profiles.iter().any(|p| {
                p.as_str()
                    .is_some_and(|p| p.split('|').next() == Some(profile))
            })
        })
}

fn issue(issues: &mut Vec<Violation>, path: &str, message: impl Into<String>) {
    issues.push(Violation {
        path: path.to_owned(),
        message: message.into(),
    });
}

fn require(resource: &Value, element: &str, why: &str, issues: &mut Vec<Violation>) {
    if resource.member(element).is_none_or(is_empty) {
        issue(
            issues,
            &format!("/{element}"),
            format!("{element} is required ({why})"),
        );
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

fn check_service_request(sr: &Value, issues: &mut Vec<Violation>) {
    let why = "SDOHCC ServiceRequest";
    for element in ["status", "intent", "code", "subject"] {
        require(sr, element, why, issues);
    }
    for forbidden in ["specimen", "bodySite"] {
        if sr.member(forbidden).is_some() {
            issue(
                issues,
                &format!("/{forbidden}"),
                format!("{forbidden} is not allowed by the SDOHCC ServiceRequest profile (max 0)"),
            );
        }
    }
    if let Some(subject) = sr.at(&["subject", "reference"]).and_then(Value::as_str)
        && !["Patient/", "Group/", "Location/"]
            .iter()
            .any(|p| subject.starts_with(p))
    {
        issue(
            issues,
            "/subject/reference",
            format!("subject must reference a Patient, Group or Location (found '{subject}')"),
        );
    }
    let categories = sr
        .member("category")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (i, category) in categories.iter().enumerate() {
        let codings = category
            .member("coding")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for (j, coding) in codings.iter().enumerate() {
            let system = coding.member("system").and_then(Value::as_str);
            let code = coding
                .member("code")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if system == Some(SDOHCC_TEMPORARY_CODES) && !SDOH_CATEGORIES.contains(&code) {
                issue(
                    issues,
                    &format!("/category/{i}/coding/{j}/code"),
                    format!(
                        "'{code}' is not an SDOH category (expected one of the SDOHCC category codes, e.g. food-insecurity)"
                    ),
                );
            }
        }
    }
}

fn check_referral_task(task: &Value, issues: &mut Vec<Violation>) {
    let why = "SDOHCC TaskForReferralManagement";
    for element in ["status", "focus", "for", "authoredOn", "requester", "code"] {
        require(task, element, why, issues);
    }
    match task.member("intent").and_then(Value::as_str) {
        Some("order") => {}
        other => issue(
            issues,
            "/intent",
            format!("intent must be 'order' (found {})", describe(other)),
        ),
    }
    let fulfill = task
        .at(&["code", "coding"])
        .and_then(Value::as_array)
        .is_some_and(|codings| {
            codings.iter().any(|c| {
                c.member("system").and_then(Value::as_str)
                    == Some("http://hl7.org/fhir/CodeSystem/task-code")
                    && c.member("code").and_then(Value::as_str) == Some("fulfill")
            })
        });
    if task.member("code").is_some() && !fulfill {
        issue(
            issues,
            "/code",
            "code must carry http://hl7.org/fhir/CodeSystem/task-code#fulfill",
        );
    }
    if let Some(focus) = task.at(&["focus", "reference"]).and_then(Value::as_str)
        && !focus.starts_with("ServiceRequest/")
        && !focus.starts_with("urn:uuid:")
    {
        issue(
            issues,
            "/focus/reference",
            format!("focus must reference the ServiceRequest (found '{focus}')"),
        );
    }
    if let Some(requester) = task.at(&["requester", "reference"]).and_then(Value::as_str)
        && !requester.starts_with("PractitionerRole/")
        && !requester.starts_with("Organization/")
    {
        issue(
            issues,
            "/requester/reference",
            format!(
                "requester must reference a PractitionerRole or Organization (found '{requester}')"
            ),
        );
    }
    check_task_status(task, issues);
}

fn check_task_status(task: &Value, issues: &mut Vec<Violation>) {
    let Some(code) = task.member("status").and_then(Value::as_str) else {
        return;
    };
    match code.parse::<TaskStatus>() {
        Err(why) => issue(issues, "/status", why),
        Ok(status) => {
            let has_reason = task
                .at(&["statusReason", "text"])
                .and_then(Value::as_str)
                .is_some_and(|t| !t.trim().is_empty());
            if status.needs_reason() && !has_reason {
                issue(
                    issues,
                    "/statusReason/text",
                    format!("statusReason.text is required when status is '{status}'"),
                );
            }
        }
    }
    if task.member("statusReason").is_some() && task.at(&["statusReason", "text"]).is_none() {
        issue(
            issues,
            "/statusReason/text",
            "statusReason.text is required when statusReason is present",
        );
    }
}

fn describe(value: Option<&str>) -> String {
    value
        .map(|v| format!("'{v}'"))
        .unwrap_or_else(|| "nothing".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task(status: &str) -> Value {
        json!({
            "resourceType": "Task", "meta": {"profile": [SDOHCC_TASK_REFERRAL]},
            "status": status, "intent": "order",
            "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]},
            "focus": {"reference": "ServiceRequest/1"}, "for": {"reference": "Patient/1"},
            "authoredOn": "2026-01-01T00:00:00Z", "requester": {"reference": "Organization/1"}
        })
    }

    #[test]
    fn a_complete_referral_task_passes() {
        assert!(check(&task("requested")).is_empty());
    }

    #[test]
    fn flags_status_outside_the_referral_set_and_missing_reason() {
        assert_eq!(check(&task("draft"))[0].path, "/status");
        assert_eq!(check(&task("rejected"))[0].path, "/statusReason/text");
    }

    #[test]
    fn flags_missing_focus_and_wrong_intent() {
        let mut t = task("requested");
        t.as_object_mut().unwrap().remove("focus");
        t["intent"] = json!("plan");
        let paths: Vec<_> = check(&t).into_iter().map(|i| i.path).collect();
        assert!(
            paths.contains(&"/focus".to_owned()) && paths.contains(&"/intent".to_owned()),
            "{paths:?}"
        );
    }

    #[test]
    fn ignores_resources_that_do_not_claim_the_profile() {
        assert!(check(&json!({"resourceType": "Task", "status": "draft"})).is_empty());
    }
}
