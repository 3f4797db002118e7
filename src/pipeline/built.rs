//! A record's resources on their way to the sink: as JSON values, or — for a sink that writes JSON text
//! ([`Sink::takes_text`]) — serialized once, where they were mapped. On a worker thread that matters: the
//! worker frees the values it allocated (hundreds of small allocations per record) and the settling thread
//! only writes bytes, instead of every value being freed across threads.

use super::Sink;
use crate::canonical::bundle;
use crate::members::Members;
use serde_json::Value;
use std::hash::Hasher;
use std::io::Write;

/// One resource serialized as JSON, with its `resourceType` and `id` (`None` when absent or not text).
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceText {
    kind: Option<String>,
    id: Option<String>,
    json: Vec<u8>,
}

impl ResourceText {
    /// `resource` serialized as `serde_json::to_vec` does.
    pub fn of(resource: &Value) -> Self {
        let text = |key: &str| {
            resource
                .member(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        Self {
            kind: text("resourceType"),
            id: text("id"),
            json: crate::json_text::to_vec(resource),
        }
    }

    /// About the memory it takes: the text, the type and id, and a few words.
    pub fn footprint(&self) -> usize {
        let text = |t: &Option<String>| t.as_ref().map_or(0, String::len);
        self.json.len() + text(&self.kind) + text(&self.id) + 96
    }

    /// `Type/id`, when the resource has both.
    pub fn key(&self) -> Option<String> {
        Some(format!("{}/{}", self.kind.as_deref()?, self.id.as_deref()?))
    }

    /// The resource type and id, empty when absent (as [`bundle::type_and_id`]).
    pub fn type_and_id(&self) -> (&str, &str) {
        (
            self.kind.as_deref().unwrap_or_default(),
            self.id.as_deref().unwrap_or_default(),
        )
    }

    /// The JSON text.
    pub fn json(&self) -> &[u8] {
        &self.json
    }

    /// The resource parsed back (for a sink that takes values after all).
    pub fn value(&self) -> serde_json::Result<Value> {
        serde_json::from_slice(&self.json)
    }
}

/// Write a transaction Bundle of already serialized resources: the same bytes as
/// [`bundle::write_transaction`] of the values they were serialized from.
pub fn write_transaction(out: &mut impl Write, resources: &[ResourceText]) -> std::io::Result<()> {
    bundle::write_entries(out, resources, ResourceText::type_and_id, |out, text| {
        out.write_all(text.json())
    })
}

/// The resources a record built (or a group gathered), in the form the run's sink takes.
#[derive(Debug)]
pub(super) enum Built {
    Values(Vec<Value>),
    Text(Vec<ResourceText>),
}

impl Built {
    /// Nothing yet, in the form `as_text` says.
    pub(super) fn empty(as_text: bool) -> Self {
        Self::new(Vec::new(), as_text)
    }

    /// `resources`, serialized when `as_text`.
    pub(super) fn new(resources: Vec<Value>, as_text: bool) -> Self {
        if as_text {
            Self::Text(resources.iter().map(ResourceText::of).collect())
        } else {
            Self::Values(resources)
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        match self {
            Self::Values(values) => values.is_empty(),
            Self::Text(texts) => texts.is_empty(),
        }
    }

    /// The resource types, in order.
    pub(super) fn kinds(&self) -> Vec<&str> {
        match self {
            Self::Values(values) => values
                .iter()
                .filter_map(|r| r.member("resourceType").and_then(Value::as_str))
                .collect(),
            Self::Text(texts) => texts.iter().filter_map(|t| t.kind.as_deref()).collect(),
        }
    }

    /// `Type/id` of the first resource (the one the record stands for).
    pub(super) fn lead_key(&self) -> Option<String> {
        match self {
            Self::Values(values) => super::resource_key(values.first()?),
            Self::Text(texts) => texts.first()?.key(),
        }
    }

    /// A 64-bit digest of the first resource's JSON text (the same for both forms).
    pub(super) fn lead_digest(&self) -> Option<u64> {
        match self {
            Self::Values(values) => values.first().map(content_digest),
            Self::Text(texts) => texts.first().map(|text| {
                let mut hasher = std::collections::hash_map::DefaultHasher::new();
                hasher.write(text.json());
                hasher.finish()
            }),
        }
    }

    /// Add `more` (a mixed form is made this one's).
    pub(super) fn extend(&mut self, more: Built) -> std::io::Result<()> {
        match (self, more) {
            (Self::Values(values), Self::Values(more)) => values.extend(more),
            (Self::Text(texts), Self::Text(more)) => texts.extend(more),
            (Self::Text(texts), Self::Values(more)) => {
                texts.extend(more.iter().map(ResourceText::of));
            }
            (Self::Values(values), Self::Text(more)) => {
                for text in more {
                    values.push(text.value()?);
                }
            }
        }
        Ok(())
    }

    /// Hand the resources to `sink` as one group.
    pub(super) fn send(self, sink: &mut dyn Sink, passthrough: bool) -> std::io::Result<()> {
        match self {
            Self::Values(values) => sink.accept(values, passthrough),
            Self::Text(texts) => sink.accept_text(texts, passthrough),
        }
    }
}

/// A 64-bit digest of a resource's JSON text, serialized straight into the hasher (SipHash reads the
/// bytes as one stream, so this equals the digest of the text written in one piece).
fn content_digest(resource: &Value) -> u64 {
    /// Feeds written bytes to a hasher.
    struct HashWriter(std::collections::hash_map::DefaultHasher);
    impl Write for HashWriter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.write(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut writer = HashWriter(std::collections::hash_map::DefaultHasher::new());
    // Writing into a hasher cannot fail; a value serde cannot write hashes what was written.
    let _ = serde_json::to_writer(&mut writer, resource);
    writer.0.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resources() -> Vec<Value> {
        vec![
            json!({"resourceType": "Patient", "id": "a\"b", "name": [{"family": "Nguyễn"}], "n": 1.50}),
            json!({"resourceType": "Task", "id": "t1", "status": "requested"}),
            json!({"status": "no type or id"}),
        ]
    }

    #[test]
    fn a_transaction_of_texts_is_the_transaction_of_the_values() {
        let values = resources();
        for count in 0..=values.len() {
            let texts: Vec<ResourceText> = values[..count].iter().map(ResourceText::of).collect();
            let (mut from_texts, mut from_values) = (Vec::new(), Vec::new());
            write_transaction(&mut from_texts, &texts).unwrap();
            bundle::write_transaction(&mut from_values, &values[..count]).unwrap();
            assert_eq!(
                String::from_utf8(from_texts),
                String::from_utf8(from_values)
            );
        }
    }

    #[test]
    fn both_forms_give_the_same_kinds_lead_key_and_digest() {
        let (values, texts) = (
            Built::new(resources(), false),
            Built::new(resources(), true),
        );
        assert_eq!(values.kinds(), vec!["Patient", "Task"]);
        assert_eq!(values.kinds(), texts.kinds());
        assert_eq!(values.lead_key().as_deref(), Some("Patient/a\"b"));
        assert_eq!(values.lead_key(), texts.lead_key());
        assert!(values.lead_digest().is_some());
        assert_eq!(values.lead_digest(), texts.lead_digest());
        let other = Built::new(resources()[1..].to_vec(), true);
        assert_ne!(other.lead_digest(), texts.lead_digest());
    }

    #[test]
    fn mixed_forms_are_joined_in_the_group_s_form() {
        let mut group = Built::empty(true);
        group.extend(Built::new(resources(), false)).unwrap();
        group.extend(Built::new(resources(), true)).unwrap();
        let Built::Text(texts) = &group else {
            panic!("the group changed form: {group:?}");
        };
        assert_eq!(texts.len(), 6);
        let mut values = Built::empty(false);
        values.extend(group).unwrap();
        let Built::Values(values) = values else {
            panic!("not values");
        };
        assert_eq!(values[3..], resources()[..]);
    }
}
