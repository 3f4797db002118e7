//! Reading a member of a JSON object by name, without hashing the name when the object is small.
//!
//! `serde_json::Map` (with `preserve_order`) finds a member by hashing its name with SipHash, about 12% of
//! a `convert`'s instructions before this was used on the hot read paths (the invariants walker, the
//! profile checks). FHIR's elements are small objects (a Coding has three members, a Reference one or
//! two), where comparing the names in order is cheaper than one hash; and a resource's `resourceType` and
//! `id` come first. [`Members::member`] answers exactly what `get` answers, and [`Members::at`] what
//! `pointer` answers for a path of member names, without `pointer`'s two copies of every token (its `~1` and
//! `~0` unescaping): about 2,400 instructions a profile check before (BENCHMARKS.md, issue 13 twelfth round).

use serde_json::{Map, Value};

/// Objects with at most this many members are searched in order: a resource's top level too (a
/// ServiceRequest of a referral has 10–17 members). Names of another length are passed over at the cost of
/// a comparison; 24 names compared cost less than one SipHash of a name (BENCHMARKS.md, issue 13 thirteenth
/// round: 8 before).
const SEARCHED: usize = 24;

/// Members of a larger object compared in order before its index is used (`resourceType`, `id`).
const LEADING: usize = 2;

/// Where `name` is among the members of a small object (at most [`SEARCHED`] members, compared in order);
/// `None` when the object has no such member or is larger (then ask its index: `get`, `entry`).
pub fn position_in_small(object: &Map<String, Value>, name: &str) -> Option<usize> {
    if object.len() > SEARCHED {
        return None;
    }
    object.keys().position(|key| key == name)
}

/// `get(name)` for JSON objects, searching small objects in order.
pub trait Members {
    /// The member named `name`, as `get(name)` gives it.
    fn member(&self, name: &str) -> Option<&Value>;

    /// The value at a path of member names (`at(&["subject", "reference"])`), as the JSON pointer
    /// `/subject/reference` gives it; `None` when a step is not an object holding the next name.
    fn at(&self, path: &[&str]) -> Option<&Value>;
}

impl Members for Map<String, Value> {
    fn at(&self, path: &[&str]) -> Option<&Value> {
        let (first, rest) = path.split_first()?;
        rest.iter()
            .try_fold(self.member(first)?, |value, name| value.member(name))
    }

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

    fn at(&self, path: &[&str]) -> Option<&Value> {
        path.iter().try_fold(self, |value, name| value.member(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_position_is_found_in_small_objects_only() {
        for size in [0, 1, 8, 24, 25] {
            let members: Map<String, Value> =
                (0..size).map(|at| (format!("k{at}"), json!(at))).collect();
            for at in 0..size {
                let expected = (size <= SEARCHED).then_some(at);
                assert_eq!(position_in_small(&members, &format!("k{at}")), expected);
            }
            assert_eq!(position_in_small(&members, "missing"), None);
        }
    }

    #[test]
    fn a_member_is_what_get_gives_for_objects_of_every_size_and_other_values() {
        let mut values = vec![json!(null), json!("text"), json!([1, 2]), json!({})];
        for size in [1, 2, 7, 8, 9, 20, 24, 25, 40] {
            let members: Map<String, Value> =
                (0..size).map(|at| (format!("k{at}"), json!(at))).collect();
            values.push(Value::Object(members));
        }
        for value in &values {
            for name in [
                "k0", "k1", "k7", "k8", "k19", "k23", "k24", "k39", "missing", "",
            ] {
                assert_eq!(value.member(name), value.get(name), "{name} in {value}");
            }
        }
    }

    #[test]
    fn a_path_is_what_the_json_pointer_gives() {
        let values = [
            json!({"subject": {"reference": "Patient/1", "display": "A"}}),
            json!({"subject": {"display": "A"}}),
            json!({"subject": "Patient/1"}),
            json!({"subject": [{"reference": "Patient/1"}]}),
            json!({"subject": null}),
            json!({"a": {"b": {"c": {"d": 1}}}}),
            json!([1, 2]),
            json!("text"),
            json!({}),
        ];
        let paths: [&[&str]; 6] = [
            &["subject", "reference"],
            &["subject"],
            &["a", "b", "c", "d"],
            &["a", "b", "x"],
            &["missing"],
            &[],
        ];
        for value in &values {
            for path in paths {
                let pointer: String = path.iter().map(|name| format!("/{name}")).collect();
                assert_eq!(
                    value.at(path),
                    value.pointer(&pointer),
                    "{pointer} in {value}"
                );
                if let Value::Object(map) = value
                    && !path.is_empty()
                {
                    assert_eq!(
                        map.at(path),
                        value.pointer(&pointer),
                        "{pointer} in {value}"
                    );
                }
            }
        }
    }
}
