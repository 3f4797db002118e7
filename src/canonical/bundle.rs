//! The referral bundle: the resources of one referral (or one roster entry) as a FHIR transaction Bundle
//! whose entries `PUT` each resource at its derived id, so posting the same bundle twice is idempotent.

use serde_json::{Value, json};

/// A resource's `resourceType` and `id` (empty when absent or not text).
pub fn type_and_id(resource: &Value) -> (&str, &str) {
    let text = |key: &str| {
        resource
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    (text("resourceType"), text("id"))
}

/// Wrap resources into a transaction Bundle. Each resource must have `resourceType` and `id`.
pub fn transaction(resources: &[Value]) -> Value {
    let entries: Vec<Value> = resources
        .iter()
        .map(|resource| {
            let (kind, id) = type_and_id(resource);
            json!({
                "fullUrl": format!("urn:uuid:{id}"),
                "resource": resource,
                "request": { "method": "PUT", "url": format!("{kind}/{id}") },
            })
        })
        .collect();
    json!({ "resourceType": "Bundle", "type": "transaction", "entry": entries })
}

/// The record a pipeline group becomes: FHIR input passed through stays as it came (one resource or Bundle);
/// anything mapped becomes a transaction Bundle.
pub fn group_record(resources: Vec<Value>, passthrough: bool) -> Value {
    if passthrough && resources.len() == 1 {
        resources.into_iter().next().unwrap_or_default()
    } else {
        transaction(&resources)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_put_each_resource_at_its_id() {
        let bundle = transaction(&[json!({"resourceType": "Patient", "id": "abc"})]);
        assert_eq!(bundle["type"], "transaction");
        assert_eq!(bundle["entry"][0]["request"]["url"], "Patient/abc");
        assert_eq!(bundle["entry"][0]["fullUrl"], "urn:uuid:abc");
    }
}
