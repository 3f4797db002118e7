//! Reading a member of a JSON object by name, without hashing the name when the object is small.
//!
//! `serde_json::Map` (with `preserve_order`) finds a member by hashing its name with SipHash, about 12% of
//! a `convert`'s instructions before this was used on the hot read paths (the invariants walker, the
//! profile checks). FHIR's elements are small objects (a Coding has three members, a Reference one or
//! two), where comparing the names in order is cheaper than one hash; and a resource's `resourceType` and
//! `id` come first. [`Members::member`] answers exactly what `get` answers.

use serde_json::{Map, Value};

/// Objects with at most this many members are searched in order.
const SEARCHED: usize = 8;

/// Members of a larger object compared in order before its index is used (`resourceType`, `id`).
const LEADING: usize = 2;

/// `get(name)` for JSON objects, searching small objects in order.
pub trait Members {
    /// The member named `name`, as `get(name)` gives it.
    fn member(&self, name: &str) -> Option<&Value>;
}

impl Members for Map<String, Value> {
    fn member(&self, name: &str) -> Option<&Value> {
        if self.len() <= SEARCHED {
            return self
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value);
        }
        match self.iter().take(LEADING).find(|(key, _)| *key == name) {
            Some((_, value)) => Some(value),
            None => self.get(name),
        }
    }
}

impl Members for Value {
    fn member(&self, name: &str) -> Option<&Value> {
        self.as_object()?.member(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_member_is_what_get_gives_for_objects_of_every_size_and_other_values() {
        let mut values = vec![json!(null), json!("text"), json!([1, 2]), json!({})];
        for size in [1, 2, 7, 8, 9, 20] {
            let members: Map<String, Value> =
                (0..size).map(|at| (format!("k{at}"), json!(at))).collect();
            values.push(Value::Object(members));
        }
        for value in &values {
            for name in ["k0", "k1", "k7", "k8", "k19", "missing", ""] {
                assert_eq!(value.member(name), value.get(name), "{name} in {value}");
            }
        }
    }
}
