//! Redaction: the resources a decision withholds are removed from the Bundle (not blanked), and the Bundle
//! is labelled as redacted (`meta.security` REDACTED), so the receiver knows something was withheld.

use super::codes::{PART2_LABELS, V3_OBSERVATION_VALUE};
use super::decision::Decision;
use super::subject::labels;
use serde_json::{Value, json};

/// Apply a decision's obligations to a record, returning what may be released.
pub fn apply(record: &Value, decision: &Decision) -> Value {
    let mut released = record.clone();
    if decision.redacts() {
        if let Some(entries) = released.get_mut("entry").and_then(Value::as_array_mut) {
            entries
                .retain(|entry| !withheld(entry.get("resource").unwrap_or(&Value::Null), decision));
        }
        add_label(
            &mut released,
            json!({"system": V3_OBSERVATION_VALUE, "code": "REDACTED", "display": "redacted"}),
        );
    }
    if !decision.notices.is_empty() && has_part2(&released) {
        add_label(
            &mut released,
            json!({"system": super::codes::V3_ACT_CODE, "code": "ETH", "display": "substance abuse information sensitivity"}),
        );
    }
    released
}

fn withheld(resource: &Value, decision: &Decision) -> bool {
    let kind = resource
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or_default();
    decision.redact_classes.iter().any(|c| c == kind)
        || labels(resource)
            .iter()
            .any(|l| decision.redact_labels.contains(l))
}

fn has_part2(record: &Value) -> bool {
    super::subject::resources(record)
        .into_iter()
        .any(|r| labels(r).iter().any(|l| PART2_LABELS.contains(&l.as_str())))
}

fn add_label(record: &mut Value, coding: Value) {
    let Some(object) = record.as_object_mut() else {
        return;
    };
    let meta = object.entry("meta").or_insert_with(|| json!({}));
    if let Some(meta) = meta.as_object_mut() {
        let security = meta.entry("security").or_insert_with(|| json!([]));
        if let Some(list) = security.as_array_mut()
            && !list.iter().any(|c| c.get("code") == coding.get("code"))
        {
            list.push(coding);
        }
    }
}
