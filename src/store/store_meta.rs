//! The store's own `meta.versionId` and `meta.lastUpdated` on a resource it keeps: written into the stored
//! text without copying the resource first, and set aside when telling whether a resource is what is held.
//!
//! Both run for every resource of every referral inside the group commit, the node's one serial path: a
//! copy of the resource to set its meta on, and two copies to compare without it, were a tenth of the
//! committer's time (BENCHMARKS.md, issue 13, twenty-second round).

use crate::json_text;
use serde_json::{Map, Value};

/// The two members of `meta` the store sets on each version it keeps.
const STORE_META: [&str; 2] = ["versionId", "lastUpdated"];

/// `resource` as the store keeps `version` of it, as JSON text: its `meta.versionId` and `meta.lastUpdated`
/// set (in place where it has them, else after its other `meta` members; a `meta` that is not an object is
/// replaced, one it lacks is added last). Byte for byte the text of the resource copied and the two members
/// inserted into its `meta` (`tests::the_text_is_the_copys`).
pub fn stored_text(resource: &Value, version: i64, now_ms: i64) -> String {
    let Some(members) = resource.as_object() else {
        return json_text::to_string(resource);
    };
    let set = [
        Value::String(version.to_string()),
        Value::String(last_updated(now_ms)),
    ];
    let mut out = Vec::with_capacity(512);
    out.push(b'{');
    for (at, (name, value)) in members.iter().enumerate() {
        if at > 0 {
            out.push(b',');
        }
        json_text::write_str(name, &mut out);
        out.push(b':');
        if name == "meta" {
            write_meta(value.as_object(), &set, &mut out);
        } else {
            json_text::write(value, &mut out);
        }
    }
    if !members.contains_key("meta") {
        if !members.is_empty() {
            out.push(b',');
        }
        json_text::write_str("meta", &mut out);
        out.push(b':');
        write_meta(None, &set, &mut out);
    }
    out.push(b'}');
    json_text::into_string(out)
}

/// `meta` (`None`: none, or not an object) with the store's two members set to `set`.
fn write_meta(meta: Option<&Map<String, Value>>, set: &[Value; 2], out: &mut Vec<u8>) {
    let empty = Map::new();
    let meta = meta.unwrap_or(&empty);
    out.push(b'{');
    let mut first = true;
    let mut member = |name: &str, value: &Value, out: &mut Vec<u8>| {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        json_text::write_str(name, out);
        out.push(b':');
        json_text::write(value, out);
    };
    for (name, value) in meta {
        let value = match STORE_META.iter().position(|m| m == name) {
            Some(at) => &set[at],
            None => value,
        };
        member(name, value, out);
    }
    for (name, value) in STORE_META.iter().zip(set) {
        if !meta.contains_key(*name) {
            member(name, value, out);
        }
    }
    out.push(b'}');
}

/// `meta.lastUpdated` for a version kept at `now_ms`.
fn last_updated(now_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(now_ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Whether `a` and `b` are the same resource, the store's `meta.versionId` and `meta.lastUpdated` aside
/// (and `meta` itself when it holds nothing else): what comparing copies of the two with those members
/// removed gives, without the copies.
pub fn same_but_store_meta(a: &Value, b: &Value) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return a == b;
    };
    let others = |object: &Map<String, Value>| object.keys().filter(|k| *k != "meta").count();
    others(a) == others(b)
        && a.iter()
            .filter(|(name, _)| *name != "meta")
            .all(|(name, value)| b.get(name) == Some(value))
        && same_meta(a.get("meta"), b.get("meta"))
}

/// Whether two `meta` members are the same once the store's own members are set aside.
fn same_meta(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (besides_store_meta(a), besides_store_meta(b)) {
        (None, None) => true,
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let others = |meta: &Map<String, Value>| {
                meta.keys()
                    .filter(|k| !STORE_META.contains(&k.as_str()))
                    .count()
            };
            others(a) == others(b)
                && a.iter()
                    .filter(|(name, _)| !STORE_META.contains(&name.as_str()))
                    .all(|(name, value)| b.get(name) == Some(value))
        }
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// A `meta` that holds something besides the store's own members (or is not an object).
fn besides_store_meta(meta: Option<&Value>) -> Option<&Value> {
    meta.filter(|meta| match meta.as_object() {
        Some(members) => members.keys().any(|k| !STORE_META.contains(&k.as_str())),
        None => true,
    })
}

/// `resource` without the store's `meta.versionId` and `meta.lastUpdated` (and without `meta` when that
/// leaves it empty): a version as it was accepted.
pub fn without_store_meta(mut resource: Value) -> Value {
    if let Some(object) = resource.as_object_mut() {
        let empty = (object.get_mut("meta").and_then(Value::as_object_mut)).map(|meta| {
            STORE_META.iter().for_each(|name| {
                meta.shift_remove(*name);
            });
            meta.is_empty()
        });
        if empty == Some(true) {
            object.shift_remove("meta");
        }
    }
    resource
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The copy it replaces: the resource cloned, `meta` made an object, the two members inserted.
    fn with_meta(resource: &Value, version: i64, now_ms: i64) -> Value {
        let mut body = resource.clone();
        if let Some(object) = body.as_object_mut() {
            let meta = object
                .entry("meta")
                .or_insert_with(|| Value::Object(Map::new()));
            if !meta.is_object() {
                *meta = Value::Object(Map::new());
            }
            if let Some(meta) = meta.as_object_mut() {
                meta.insert("versionId".into(), Value::String(version.to_string()));
                meta.insert("lastUpdated".into(), Value::String(last_updated(now_ms)));
            }
        }
        body
    }

    fn shapes() -> Vec<Value> {
        vec![
            json!({"resourceType": "Task", "id": "t1", "status": "requested"}),
            json!({"resourceType": "Task", "id": "t1", "status": "accepted"}),
            json!({"resourceType": "Task", "id": "t1", "meta": {"versionId": "3"}, "status": "requested"}),
            json!({"resourceType": "Task", "id": "t1", "meta": {"lastUpdated": "2020-01-01T00:00:00Z", "versionId": "9"}, "status": "requested"}),
            json!({"resourceType": "Task", "meta": {"security": [{"code": "R"}], "versionId": "2"}, "id": "t1", "status": "requested"}),
            json!({"resourceType": "Task", "meta": {"security": [{"code": "R"}]}, "id": "t1", "status": "requested"}),
            json!({"resourceType": "Task", "meta": {"security": [{"code": "N"}]}, "id": "t1", "status": "requested"}),
            json!({"resourceType": "Task", "id": "t1", "meta": "not an object", "status": "requested"}),
            json!({"resourceType": "Task", "id": "t1", "meta": {}, "status": "requested"}),
            json!({"resourceType": "Task", "id": "t1", "meta": null, "status": "requested"}),
            json!({"resourceType": "Task", "id": "t1", "status": "requested", "note": [{"text": "é \"quoted\"\n"}]}),
            json!({"resourceType": "Task", "id": "t1", "status": "requested", "extra": 1}),
            json!({}),
            json!({"meta": {"tag": []}}),
            json!(["not", "an", "object"]),
            json!("text"),
        ]
    }

    #[test]
    fn the_text_is_the_copys() {
        for shape in shapes() {
            let copied = json_text::to_string(&with_meta(&shape, 7, 1_764_000_000_123));
            assert_eq!(stored_text(&shape, 7, 1_764_000_000_123), copied, "{shape}");
        }
    }

    #[test]
    fn the_comparison_is_the_copies() {
        let mut shapes = shapes();
        // Each shape also as the store keeps it, so that versions of one resource are compared.
        let kept: Vec<Value> = (shapes.iter())
            .map(|s| serde_json::from_str(&stored_text(s, 4, 1_764_000_000_000)).unwrap())
            .collect();
        shapes.extend(kept);
        let mut same = 0;
        for a in &shapes {
            for b in &shapes {
                let expected = without_store_meta(a.clone()) == without_store_meta(b.clone());
                assert_eq!(same_but_store_meta(a, b), expected, "{a} / {b}");
                same += usize::from(expected);
            }
        }
        // Not only each shape against itself: versions of one resource compare as the same.
        assert!(same > shapes.len() + 10, "{same}");
    }
}
