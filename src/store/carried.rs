//! A message's body as the store keeps it. A referral's message carries resources that its own transaction
//! stores as versions: the message keeps its bundle with each carried resource replaced by the version it
//! names (`{"resourceType", "id", "meta": {"versionId"}}`), not a second copy of every resource, and
//! reading the message puts the versions back. Other messages (notifications) are kept whole.
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
    Ok((body, named.iter().map(|n| n.version).collect()))
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
