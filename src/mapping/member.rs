//! An object member looked up by name, remembering where it was found.
//!
//! A mapping reads the same members (`referral.need_category`, `user.givenName`) from every record of a
//! run, and the records of one source hold their members in the same order (a CSV file's columns, an
//! export's element order). So the member is looked for first at the position it had in the previous
//! record: one comparison of names instead of hashing the name into the object's index. When it is not
//! there, the object is searched in order and the new position kept. Large objects are looked up through
//! their index as before, so no lookup costs more than a small object's length.

use serde_json::{Map, Value};
use std::sync::atomic::{AtomicU32, Ordering};

/// Objects with more members than this are looked up by their index (hash), never searched in order.
const MAX_SEARCHED: usize = 32;

/// A member name and the position it was last found at.
#[derive(Debug)]
pub(super) struct Member {
    name: String,
    /// Shared by the threads evaluating one compiled mapping (a hint: any value is correct).
    last_at: AtomicU32,
}

impl Member {
    pub(super) fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            last_at: AtomicU32::new(0),
        }
    }

    pub(super) fn name(&self) -> &str {
        &self.name
    }

    /// The member's value in `object`, as `object.get(name)` gives it.
    pub(super) fn find<'v>(&self, object: &'v Map<String, Value>) -> Option<&'v Value> {
        if object.len() > MAX_SEARCHED {
            return object.get(&self.name);
        }
        let last_at = self.last_at.load(Ordering::Relaxed) as usize;
        if let Some((name, value)) = object.iter().nth(last_at)
            && *name == self.name
        {
            return Some(value);
        }
        let (at, value) = object
            .iter()
            .enumerate()
            .find_map(|(at, (name, value))| (*name == self.name).then_some((at, value)))?;
        // `at` is below MAX_SEARCHED.
        self.last_at.store(at as u32, Ordering::Relaxed);
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn finds_what_get_finds_whatever_order_the_objects_come_in() {
        let member = Member::new("b");
        let objects = [
            object(json!({"a": 1, "b": 2, "c": 3})),
            object(json!({"b": 4, "a": 1})),
            object(json!({"a": 1, "c": 3})),
            object(json!({"c": 3, "a": 1, "b": 5})),
            object(json!({})),
            object(json!({"b": null})),
            object(json!({"bb": 1, "b": 6})),
        ];
        for round in 0..3 {
            for object in &objects {
                assert_eq!(
                    member.find(object),
                    object.get("b"),
                    "round {round}: {object:?}"
                );
            }
        }
    }

    #[test]
    fn a_large_object_is_looked_up_by_its_index() {
        let mut large = Map::new();
        for at in 0..100 {
            large.insert(format!("k{at}"), json!(at));
        }
        let member = Member::new("k70");
        assert_eq!(member.find(&large), Some(&json!(70)));
        assert_eq!(
            member.last_at.load(Ordering::Relaxed),
            0,
            "no position kept"
        );
        assert_eq!(Member::new("missing").find(&large), None);
    }

    #[test]
    fn the_position_is_kept_for_the_next_object() {
        let member = Member::new("c");
        member.find(&object(json!({"a": 1, "b": 2, "c": 3})));
        assert_eq!(member.last_at.load(Ordering::Relaxed), 2);
    }
}
