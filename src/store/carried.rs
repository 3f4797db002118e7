//! A message's body as the store keeps it. A referral's message carries resources that its own transaction
//! stores as versions: the message keeps the versions it names, not a second copy of every resource, and
//! reading the message puts the versions back. Other messages (notifications) are kept whole.
//!
//! A bundle as the gateway writes it ([`crate::canonical::bundle::transaction`]: each entry `PUT`s its
//! resource at `urn:uuid:{id}`) is kept as the list of its entries' versions, `["Type/id/version", ...]`
//! (a message of a referral export's eight resources: ~0.5 KB where its bundle naming them took 2 KB, a
//! page of its own). Any other bundle keeps its own entries, each resource replaced by the version it names
//! (`{"resourceType", "id", "meta": {"versionId"}}`); a single resource is that alone.
//!
//! A version, once stored, stays readable: the update that supersedes it first copies it into the history
//! (`resources::keep_superseded`). The version put back is the resource as accepted: the store's own
//! `meta.versionId` and `meta.lastUpdated` are set aside again (a `meta.versionId` or `meta.lastUpdated`
//! that the sender set is not kept: the store's replaced it when the version was written).

use super::StoreError;
use crate::consent::subject;
use crate::json_text;
use serde_json::{Map, Value};

/// A resource version a message names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Named {
    pub(crate) kind: String,
    pub(crate) id: String,
    pub(crate) version: i64,
}

/// The text stored for `body`, whose carried resources (as [`subject::resources`] lists them) are stored
/// at `versions`: the bundle naming them; `None` when `versions` does not name one version for each (the
/// body is then kept whole).
pub(crate) fn naming_versions(body: &Value, versions: &[i64]) -> Option<String> {
    let carried = subject::resources(body);
    if versions.is_empty() || carried.len() != versions.len() {
        return None;
    }
    if let Some(listed) = listing(body, versions) {
        return Some(listed);
    }
    let mut versions = versions.iter().copied();
    let mut out = Vec::with_capacity(128 + 96 * carried.len());
    match body.as_object().filter(|_| is_bundle(body)) {
        Some(bundle) => write_object(bundle, &mut out, |name, value, out| {
            match value.as_array() {
                Some(entries) if name == "entry" => write_entries(entries, &mut versions, out),
                _ => json_text::write(value, out),
            }
        }),
        None => write_named(body, versions.next()?, &mut out),
    }
    Some(json_text::into_string(out))
}

/// A bundle as [`crate::canonical::bundle::transaction`] writes it, as the list of its entries' versions
/// (`["Type/id/version", ...]`); `None` for any other body.
fn listing(body: &Value, versions: &[i64]) -> Option<String> {
    let envelope = body.as_object()?;
    let members: Vec<&str> = envelope.keys().map(String::as_str).collect();
    let canonical = members == ["resourceType", "type", "entry"]
        && is_bundle(body)
        && body.get("type").and_then(Value::as_str) == Some("transaction");
    let entries = (body.get("entry").and_then(Value::as_array))
        .filter(|entries| canonical && entries.len() == versions.len())?;
    let mut out = vec![b'['];
    for (at, (entry, version)) in entries.iter().zip(versions).enumerate() {
        let (kind, id) = canonical_entry(entry)?;
        if at > 0 {
            out.push(b',');
        }
        json_text::write_str(&format!("{kind}/{id}/{version}"), &mut out);
    }
    out.push(b']');
    Some(json_text::into_string(out))
}

/// The type and id of an entry as [`crate::canonical::bundle::entry`] writes it: `fullUrl`, `resource`
/// and a `PUT` `request`, in that order, naming the resource's id (which holds no `/`).
fn canonical_entry(entry: &Value) -> Option<(&str, &str)> {
    let members: Vec<&str> = entry.as_object()?.keys().map(String::as_str).collect();
    let resource = entry
        .get("resource")
        .filter(|_| members == ["fullUrl", "resource", "request"])?;
    let (kind, id) = crate::canonical::bundle::type_and_id(resource);
    if kind.is_empty() || id.is_empty() || kind.contains('/') || id.contains('/') {
        return None;
    }
    let request = entry.get("request")?.as_object()?;
    let request_members: Vec<&str> = request.keys().map(String::as_str).collect();
    let url = request.get("url").and_then(Value::as_str)?;
    let put = request_members == ["method", "url"]
        && request.get("method").and_then(Value::as_str) == Some("PUT")
        && url.split_once('/') == Some((kind, id));
    let full_url = entry.get("fullUrl").and_then(Value::as_str)?;
    (put && full_url.strip_prefix("urn:uuid:") == Some(id)).then_some((kind, id))
}

/// A bundle's entries, each entry's resource named at the next of `versions`.
fn write_entries(entries: &[Value], versions: &mut impl Iterator<Item = i64>, out: &mut Vec<u8>) {
    out.push(b'[');
    for (at, entry) in entries.iter().enumerate() {
        if at > 0 {
            out.push(b',');
        }
        match entry.as_object() {
            Some(members) => write_object(members, out, |name, value, out| {
                // As many versions as resources: checked by the caller.
                match (name == "resource").then(|| versions.next()).flatten() {
                    Some(version) => write_named(value, version, out),
                    None => json_text::write(value, out),
                }
            }),
            None => json_text::write(entry, out),
        }
    }
    out.push(b']');
}

/// An object's members, each value written by `value`.
fn write_object(
    members: &Map<String, Value>,
    out: &mut Vec<u8>,
    mut value: impl FnMut(&str, &Value, &mut Vec<u8>),
) {
    out.push(b'{');
    for (at, (name, member)) in members.iter().enumerate() {
        if at > 0 {
            out.push(b',');
        }
        json_text::write_str(name, out);
        out.push(b':');
        value(name, member, out);
    }
    out.push(b'}');
}

/// What stands for `resource` stored at `version`: `{"resourceType", "id", "meta": {"versionId"}}`.
fn write_named(resource: &Value, version: i64, out: &mut Vec<u8>) {
    let (kind, id) = crate::canonical::bundle::type_and_id(resource);
    out.extend_from_slice(br#"{"resourceType":"#);
    json_text::write_str(kind, out);
    out.extend_from_slice(br#","id":"#);
    json_text::write_str(id, out);
    out.extend_from_slice(br#","meta":{"versionId":""#);
    out.extend_from_slice(version.to_string().as_bytes());
    out.extend_from_slice(br#""}}"#);
}

fn is_bundle(body: &Value) -> bool {
    body.get("resourceType").and_then(Value::as_str) == Some("Bundle")
}

/// The versions a stored body names, in order; an error naming the message when one cannot be read.
pub(crate) fn names(message: &str, body: &Value) -> Result<Vec<Named>, StoreError> {
    if let Some(listed) = body.as_array() {
        return listed
            .iter()
            .map(|item| listed_name(message, item))
            .collect();
    }
    subject::resources(body)
        .into_iter()
        .map(|resource| {
            let (kind, id) = crate::canonical::bundle::type_and_id(resource);
            let version = (resource.get("meta"))
                .and_then(|meta| meta.get("versionId"))
                .and_then(Value::as_str)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "message {message}: the resource {kind}/{id} it carries names no version"
                    ))
                })?;
            Ok(Named {
                kind: kind.to_owned(),
                id: id.to_owned(),
                version,
            })
        })
        .collect()
}

/// One item of a listed bundle, `"Type/id/version"`.
fn listed_name(message: &str, item: &Value) -> Result<Named, StoreError> {
    let parsed = item.as_str().and_then(|text| {
        let (kind, rest) = text.split_once('/')?;
        let (id, version) = rest.split_once('/')?;
        Some((kind, id, version.parse().ok()?))
    });
    let (kind, id, version) = parsed.ok_or_else(|| {
        StoreError::Corrupt(format!(
            "message {message}: {item} does not name a version (expected \"Type/id/version\")"
        ))
    })?;
    Ok(Named {
        kind: kind.to_owned(),
        id: id.to_owned(),
        version,
    })
}

/// Put the versions back into a stored body: `versions` holds each named version's body as stored.
pub(crate) fn put_back(
    message: &str,
    mut body: Value,
    versions: &std::collections::HashMap<Named, Value>,
) -> Result<(Value, Vec<i64>), StoreError> {
    let named = names(message, &body)?;
    let mut bodies = Vec::with_capacity(named.len());
    for name in &named {
        let found = versions.get(name).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "message {message} names {}/{} version {}, which the store does not hold",
                name.kind, name.id, name.version
            ))
        })?;
        bodies.push(super::store_meta::without_store_meta(found.clone()));
    }
    let versions_named = named.iter().map(|n| n.version).collect();
    if body.is_array() {
        return Ok((
            crate::canonical::bundle::transaction(bodies),
            versions_named,
        ));
    }
    let mut bodies = bodies.into_iter();
    if is_bundle(&body) {
        let entries = (body.get_mut("entry").and_then(Value::as_array_mut)).into_iter();
        for resource in entries.flatten().filter_map(|e| e.get_mut("resource")) {
            if let Some(found) = bodies.next() {
                *resource = found;
            }
        }
    } else if let Some(found) = bodies.next() {
        body = found;
    }
    Ok((body, versions_named))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bundle() -> Value {
        json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"fullUrl": "urn:uuid:s1", "resource": {"resourceType": "ServiceRequest", "id": "s1", "status": "active"},
             "request": {"method": "PUT", "url": "ServiceRequest/s1"}},
            {"fullUrl": "urn:uuid:t1", "resource": {"resourceType": "Task", "id": "t1", "meta": {"security": [{"code": "R"}]}, "status": "requested"},
             "request": {"method": "PUT", "url": "Task/t1"}},
            {"fullUrl": "urn:uuid:nothing"}
        ]})
    }

    /// The versions as the store keeps them: each resource with the store's meta.
    fn stored(body: &Value, versions: &[i64]) -> std::collections::HashMap<Named, Value> {
        (subject::resources(body).into_iter().zip(versions))
            .map(|(resource, version)| {
                let (kind, id) = crate::canonical::bundle::type_and_id(resource);
                let text =
                    super::super::store_meta::stored_text(resource, *version, 1_764_000_000_000);
                let name = Named {
                    kind: kind.into(),
                    id: id.into(),
                    version: *version,
                };
                (name, serde_json::from_str(&text).unwrap())
            })
            .collect()
    }

    #[test]
    fn a_bundle_named_and_put_back_is_the_bundle() {
        let body = bundle();
        let text = naming_versions(&body, &[3, 1]).expect("named");
        assert!(
            !text.contains("active") && !text.contains("requested"),
            "{text}"
        );
        let skeleton: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(skeleton["entry"][1]["resource"]["meta"]["versionId"], "1");
        assert_eq!(skeleton["entry"][2], json!({"fullUrl": "urn:uuid:nothing"}));
        let (back, versions) = put_back("m1", skeleton, &stored(&body, &[3, 1])).unwrap();
        assert_eq!(back, body);
        assert_eq!(versions, [3, 1]);
    }

    #[test]
    fn a_bundle_as_the_gateway_writes_it_is_kept_as_a_list_and_put_back_byte_for_byte() {
        let resources = vec![
            json!({"resourceType": "ServiceRequest", "id": "s1", "status": "active"}),
            json!({"resourceType": "Task", "id": "t1", "meta": {"security": [{"code": "R"}]}, "status": "requested"}),
        ];
        let body = crate::canonical::bundle::transaction(resources);
        let text = naming_versions(&body, &[3, 1]).expect("named");
        assert_eq!(text, r#"["ServiceRequest/s1/3","Task/t1/1"]"#);
        let listed: Value = serde_json::from_str(&text).unwrap();
        let (back, versions) = put_back("m1", listed, &stored(&body, &[3, 1])).unwrap();
        assert_eq!(json_text::to_string(&back), json_text::to_string(&body));
        assert_eq!(versions, [3, 1]);
        // Anything else about the bundle: its own entries kept.
        let mut posted = body.clone();
        posted["entry"][0]["request"]["method"] = json!("POST");
        assert!(naming_versions(&posted, &[3, 1]).unwrap().starts_with('{'));
        let mut other_url = body.clone();
        other_url["entry"][1]["fullUrl"] = json!("http://example.org/Task/t1");
        assert!(
            naming_versions(&other_url, &[3, 1])
                .unwrap()
                .starts_with('{')
        );
    }

    #[test]
    fn a_listed_item_that_names_no_version_is_an_error_naming_the_message() {
        let error = names("m7", &json!(["Task/t1"])).unwrap_err();
        assert!(error.to_string().contains("m7"), "{error}");
    }

    #[test]
    fn a_single_resource_named_and_put_back_is_the_resource() {
        let body = json!({"resourceType": "Patient", "id": "p1", "active": true});
        let skeleton: Value = serde_json::from_str(&naming_versions(&body, &[2]).unwrap()).unwrap();
        assert_eq!(
            skeleton,
            json!({"resourceType": "Patient", "id": "p1", "meta": {"versionId": "2"}})
        );
        assert_eq!(
            put_back("m1", skeleton, &stored(&body, &[2])).unwrap().0,
            body
        );
    }

    #[test]
    fn without_one_version_for_each_resource_the_body_is_kept_whole() {
        assert_eq!(naming_versions(&bundle(), &[]), None);
        assert_eq!(naming_versions(&bundle(), &[1]), None);
        assert_eq!(naming_versions(&bundle(), &[1, 2, 3]), None);
    }

    #[test]
    fn a_version_the_store_does_not_hold_is_an_error_naming_it() {
        let body = bundle();
        let skeleton: Value =
            serde_json::from_str(&naming_versions(&body, &[3, 1]).unwrap()).unwrap();
        let error = put_back("m1", skeleton, &stored(&body, &[3, 2])).unwrap_err();
        assert!(error.to_string().contains("Task/t1 version 1"), "{error}");
    }
}
