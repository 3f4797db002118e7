//! Resources already found valid in a run, remembered so that an identical one is not validated again.
//!
//! A referral export repeats resources: the same school, agency and staff member stand in thousands of
//! referral bundles, identical to the byte. Validation is a pure function of the resource, so an identical
//! resource gets the verdict it got before: nothing is checked less. A resource is remembered (a copy, to
//! compare with in full: a digest alone could collide) the second time it is seen valid, so resources that
//! occur once (each referral's ServiceRequest and Task) cost only a digest; both tables are bounded, the
//! copies by the memory they take (so a long run's memory stops growing once the memo is full).
//!
//! A run that writes JSON text serializes each resource anyway; it asks with the text
//! ([`ValidMemo::validate_serialized`]), which is digested and compared as bytes: cheaper than walking the
//! value, and the same verdicts, since two values serialize to the same text exactly when [`same`] holds.

use super::{Issue, Validator};
use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::Value;
use std::hash::{Hash, Hasher};

/// Digests of resources seen valid once, at most (then forgotten, and counting starts again): a resource
/// that repeats within a few thousand resources (an Organization, a staff member's Practitioner) is
/// remembered; the set's table stays under 0.3 MB (65,536 took 2.4 MB).
const MAX_SEEN: usize = 16_384;

/// Memory the copies of resources seen valid twice or more may take, at most (then no more are
/// remembered): 1 MiB per mapping thread, several hundred Organizations and Practitioners (which repeat
/// from the first rows, so they are the ones remembered); a long run's memory stops growing once it is full.
const MAX_REMEMBERED_BYTES: usize = 1 << 20;

/// The memo of one mapping thread.
#[derive(Default)]
pub struct ValidMemo {
    seen_once: FxHashSet<u64>,
    remembered: FxHashMap<u64, Vec<Value>>,
    /// Texts of resources seen valid twice or more, by the digest of the text.
    remembered_texts: FxHashMap<u64, Vec<Box<[u8]>>>,
    /// What the copies take, as [`footprint`] counts it (a text: its length and a few words).
    remembered_bytes: usize,
}

impl ValidMemo {
    /// Every issue of a resource, as [`Validator::validate`] gives them; none when an identical resource
    /// was found valid before.
    pub fn validate(&mut self, validator: &Validator, resource: &Value) -> Vec<Issue> {
        let digest = digest(resource);
        if self
            .remembered
            .get(&digest)
            .is_some_and(|copies| copies.iter().any(|copy| same(copy, resource)))
        {
            return Vec::new();
        }
        let issues = validator.validate(resource);
        if issues.is_empty() && self.seen_before(digest) {
            let bytes = footprint(resource);
            keep(
                &mut self.remembered,
                &mut self.remembered_bytes,
                digest,
                bytes,
                || resource.clone(),
            );
        }
        issues
    }

    /// Every issue of `resource`, serialized as `json` (`serde_json::to_vec`), as [`Validator::validate`]
    /// gives them; none when a resource of the same text was found valid before.
    pub fn validate_serialized(
        &mut self,
        validator: &Validator,
        resource: &Value,
        json: &[u8],
    ) -> Vec<Issue> {
        let digest = text_digest(json);
        if self
            .remembered_texts
            .get(&digest)
            .is_some_and(|copies| copies.iter().any(|copy| **copy == *json))
        {
            return Vec::new();
        }
        let issues = validator.validate(resource);
        if issues.is_empty() && self.seen_before(digest) {
            let bytes = TEXT_OVERHEAD + json.len();
            keep(
                &mut self.remembered_texts,
                &mut self.remembered_bytes,
                digest,
                bytes,
                || json.into(),
            );
        }
        issues
    }

    /// Whether `digest` was seen valid before; noted as seen when not.
    fn seen_before(&mut self, digest: u64) -> bool {
        if self.seen_once.contains(&digest) {
            return true;
        }
        if self.seen_once.len() >= MAX_SEEN {
            self.seen_once.clear();
        }
        self.seen_once.insert(digest);
        false
    }
}

/// A copy made by `copy`, taking `bytes`, kept under `digest` in `table` while the copies' budget allows.
fn keep<T>(
    table: &mut FxHashMap<u64, Vec<T>>,
    remembered_bytes: &mut usize,
    digest: u64,
    bytes: usize,
    copy: impl FnOnce() -> T,
) {
    if *remembered_bytes + bytes <= MAX_REMEMBERED_BYTES {
        table.entry(digest).or_default().push(copy());
        *remembered_bytes += bytes;
    }
}

/// What a remembered text takes beside its bytes (its box, its place in the table's list).
const TEXT_OVERHEAD: usize = 32;

/// A 64-bit digest of a resource's JSON text. A fast hash: a match is confirmed by comparing the texts.
fn text_digest(json: &[u8]) -> u64 {
    let mut hasher = rustc_hash::FxHasher::default();
    hasher.write(json);
    hasher.finish()
}

/// Whether two values are the same, keys in the same order: what the digest tells apart (it feeds keys in
/// their order), compared in order without looking keys up (`==` on a map hashes every key of one to find
/// it in the other).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same(a, b))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|((key_a, a), (key_b, b))| key_a == key_b && same(a, b))
        }
        _ => a == b,
    }
}

/// About the heap memory a copy of `value` takes: its text, and a few words for each value, member and
/// item (what `serde_json::Value` and its ordered maps hold beside the text).
fn footprint(value: &Value) -> usize {
    const NODE: usize = 80;
    match value {
        Value::String(text) => NODE + text.len(),
        Value::Number(number) => NODE + number.as_str().len(),
        Value::Array(items) => NODE + items.iter().map(footprint).sum::<usize>(),
        Value::Object(map) => {
            NODE + map
                .iter()
                .map(|(key, item)| NODE + key.len() + footprint(item))
                .sum::<usize>()
        }
        Value::Null | Value::Bool(_) => NODE,
    }
}

/// A 64-bit digest of a JSON value's structure and content (keys in their order). A fast hash: a match is
/// confirmed by comparing the whole resource.
fn digest(value: &Value) -> u64 {
    let mut hasher = rustc_hash::FxHasher::default();
    feed(value, &mut hasher);
    hasher.finish()
}

fn feed(value: &Value, hasher: &mut impl Hasher) {
    match value {
        Value::Null => hasher.write_u8(0),
        Value::Bool(b) => {
            hasher.write_u8(1);
            b.hash(hasher);
        }
        Value::Number(number) => {
            hasher.write_u8(2);
            number.hash(hasher);
        }
        Value::String(text) => {
            hasher.write_u8(3);
            text.hash(hasher);
        }
        Value::Array(items) => {
            hasher.write_u8(4);
            hasher.write_usize(items.len());
            items.iter().for_each(|item| feed(item, hasher));
        }
        Value::Object(map) => {
            hasher.write_u8(5);
            hasher.write_usize(map.len());
            for (key, item) in map {
                key.hash(hasher);
                feed(item, hasher);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_repeated_valid_resource_is_not_validated_again_and_an_invalid_one_always_is() {
        let validator = Validator::new();
        let mut memo = ValidMemo::default();
        let valid = json!({"resourceType": "Organization", "id": "o1", "name": "Food bank"});
        for _ in 0..3 {
            assert!(memo.validate(&validator, &valid).is_empty());
        }
        assert_eq!(
            memo.remembered.values().map(Vec::len).sum::<usize>(),
            1,
            "remembered once, the second time it was valid"
        );
        assert_eq!(memo.remembered_bytes, footprint(&valid));
        let invalid =
            json!({"resourceType": "Organization", "id": "o1", "name": "Food bank", "bogus": 1});
        for _ in 0..3 {
            assert!(!memo.validate(&validator, &invalid).is_empty());
        }
        let reordered = json!({"id": "o1", "resourceType": "Organization", "name": "Food bank"});
        assert!(
            !same(&reordered, &valid),
            "keys in another order are compared as another value"
        );
        assert!(memo.validate(&validator, &reordered).is_empty());
        let other = json!({"resourceType": "Organization", "id": "o1", "name": "Food bank 2"});
        assert_ne!(digest(&other), digest(&valid));
        assert!(memo.validate(&validator, &other).is_empty());
    }

    /// Asked with the text, the memo gives the verdicts it gives asked with the value, for the same values.
    #[test]
    fn a_resource_asked_by_its_text_gets_the_verdict_of_its_value() {
        let validator = Validator::new();
        let (mut by_value, mut by_text) = (ValidMemo::default(), ValidMemo::default());
        let resources = [
            json!({"resourceType": "Organization", "id": "o1", "name": "Food bank"}),
            json!({"resourceType": "Organization", "id": "o1", "name": "Food bank", "bogus": 1}),
            json!({"id": "o1", "resourceType": "Organization", "name": "Food bank"}),
            json!({"resourceType": "Organization", "id": "o1", "name": "Food bank 2"}),
            json!({"resourceType": "Patient", "id": "p", "gender": "robot"}),
            json!({"resourceType": "Patient", "id": "p", "multipleBirthInteger": 2}),
            json!({"resourceType": "Patient", "id": "p", "multipleBirthInteger": 2.0}),
        ];
        for round in 0..3 {
            for resource in &resources {
                let json = serde_json::to_vec(resource).unwrap();
                assert_eq!(
                    by_text.validate_serialized(&validator, resource, &json),
                    by_value.validate(&validator, resource),
                    "round {round}: {resource}"
                );
            }
        }
        let texts: usize = by_text.remembered_texts.values().map(Vec::len).sum();
        assert_eq!(texts, 4, "the valid ones, each remembered once");
        assert!(by_text.remembered_bytes <= by_value.remembered_bytes);
    }

    #[test]
    fn the_copies_stop_at_their_memory_budget() {
        let validator = Validator::new();
        let mut memo = ValidMemo::default();
        let note = "x".repeat(4096);
        for n in 0..2_000 {
            let org = json!({"resourceType": "Organization", "id": format!("o{n}"), "name": note});
            memo.validate(&validator, &org);
            memo.validate(&validator, &org);
        }
        assert!(memo.remembered_bytes <= MAX_REMEMBERED_BYTES);
        assert!(
            memo.remembered_bytes > MAX_REMEMBERED_BYTES - 8192,
            "filled to its budget"
        );
        let copies: usize = memo.remembered.values().map(Vec::len).sum();
        // Each copy takes its 4 KiB note and at most 1 KiB more.
        let most = MAX_REMEMBERED_BYTES / 4096;
        let least = MAX_REMEMBERED_BYTES / (4096 + 1024);
        assert!((least..most).contains(&copies), "{copies} copies");
    }
}
