//! The referral bundle: the resources of one referral (or one roster entry) as a FHIR transaction Bundle
//! whose entries `PUT` each resource at its derived id, so posting the same bundle twice is idempotent.

use serde_json::{Value, json};
use std::io::Write;

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

/// Wrap resources into a transaction Bundle. Each resource must have `resourceType` and `id`. The resources
/// move into their entries: nothing is copied (serde_json's `json!` would serialize each one into a new value).
pub fn transaction(resources: Vec<Value>) -> Value {
    let entries: Vec<Value> = resources.into_iter().map(entry).collect();
    let mut bundle = serde_json::Map::with_capacity(3);
    bundle.insert("resourceType".into(), "Bundle".into());
    bundle.insert("type".into(), "transaction".into());
    bundle.insert("entry".into(), Value::Array(entries));
    Value::Object(bundle)
}

/// A transaction Bundle's entry that `PUT`s `resource` at its id, the resource moved into it.
pub fn entry(resource: Value) -> Value {
    let (kind, id) = type_and_id(&resource);
    let request = json!({ "method": "PUT", "url": format!("{kind}/{id}") });
    let full_url = Value::String(format!("urn:uuid:{id}"));
    let mut entry = serde_json::Map::with_capacity(3);
    entry.insert("fullUrl".into(), full_url);
    entry.insert("resource".into(), resource);
    entry.insert("request".into(), request);
    Value::Object(entry)
}

/// Write [`transaction`]`(resources)` as one line of JSON, byte for byte what serializing it gives, without
/// building it: each resource is serialized where it is, never copied into a Bundle value first.
pub fn write_transaction(out: &mut impl Write, resources: &[Value]) -> std::io::Result<()> {
    write_entries(out, resources, type_and_id, |out, resource| {
        serde_json::to_writer(out, resource).map_err(Into::into)
    })
}

/// Write a transaction Bundle of `items` as one line of JSON: `parts` gives each item's resource type and id,
/// `resource` writes its JSON (an already serialized resource is written as it is).
pub fn write_entries<W: Write, T>(
    out: &mut W,
    items: &[T],
    parts: impl Fn(&T) -> (&str, &str),
    resource: impl Fn(&mut W, &T) -> std::io::Result<()>,
) -> std::io::Result<()> {
    out.write_all(br#"{"resourceType":"Bundle","type":"transaction","entry":["#)?;
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            out.write_all(b",")?;
        }
        let (kind, id) = parts(item);
        out.write_all(br#"{"fullUrl":"#)?;
        crate::json_text::write_joined(out, &["urn:uuid:", id])?;
        out.write_all(br#","resource":"#)?;
        resource(out, item)?;
        out.write_all(br#","request":{"method":"PUT","url":"#)?;
        crate::json_text::write_joined(out, &[kind, "/", id])?;
        out.write_all(b"}}")?;
    }
    out.write_all(b"]}")
}

/// The record a pipeline group becomes: FHIR input passed through stays as it came (one resource or Bundle);
/// anything mapped becomes a transaction Bundle.
pub fn group_record(resources: Vec<Value>, passthrough: bool) -> Value {
    if passthrough && resources.len() == 1 {
        resources.into_iter().next().unwrap_or_default()
    } else {
        transaction(resources)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_put_each_resource_at_its_id() {
        let bundle = transaction(vec![json!({"resourceType": "Patient", "id": "abc"})]);
        assert_eq!(bundle["type"], "transaction");
        assert_eq!(bundle["entry"][0]["request"]["url"], "Patient/abc");
        assert_eq!(bundle["entry"][0]["fullUrl"], "urn:uuid:abc");
    }

    #[test]
    fn a_written_transaction_is_the_serialized_bundle() {
        let resources = [
            json!({"resourceType": "Patient", "id": "a\"b", "name": [{"family": "Ng"}], "n": 1.50}),
            json!({"resourceType": "Task", "id": "t1", "status": "requested"}),
            json!({"status": "no type or id"}),
        ];
        for count in 0..=resources.len() {
            let mut written = Vec::new();
            write_transaction(&mut written, &resources[..count]).unwrap();
            let expected = serde_json::to_vec(&transaction(resources[..count].to_vec())).unwrap();
            assert_eq!(String::from_utf8(written), String::from_utf8(expected));
        }
    }
}
