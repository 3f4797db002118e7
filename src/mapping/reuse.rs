//! A resource a record builds exactly as an earlier record of the run built it, taken from that record
//! instead of being built, serialized and validated again.
//!
//! A referral export names the same school, agency and staff member in thousands of rows, and the
//! Organizations and Practitioner built from them are the same to the byte in every bundle. A resource is a
//! function of the record values its expressions read — its `id`, its `when` and its rules' values and
//! `when`s — and of what is fixed for the run (the code tables, `source_system`, `now()`). So the values it
//! reads are the key: their exact JSON text, path by path in a fixed order, not a digest (two keys
//! that differ are never taken for the same). A record whose key was kept gets the kept resource.
//!
//! What keeps the result the same as building every time:
//! - only a resource whose every expression evaluated per record has a direct form (`super::direct`) is
//!   reused: such an expression reads nothing but variables, attribute paths, constant indexes and the
//!   project's filters' arguments, all of which MiniJinja's analysis reports (a slice's value, or
//!   `debug()`'s whole context, it does not, and neither has a direct form);
//! - the values read are every variable and attribute path MiniJinja reports for the expressions
//!   (`school.sourcedId`, or `school` whole when it is indexed or passed on); a path is followed while the
//!   value is an object, and the value where it stops is written whole, so the key holds at least what the
//!   expressions can see;
//! - only a resource whose building noted nothing on the quirk log (a tolerated date, a rejected joined
//!   row) is kept, so every record that would note something builds its resource and notes it;
//! - a resource is kept once the run has found it valid (the caller keeps it after validating), and only
//!   the second time its key is seen, so resources that occur once (each referral's ServiceRequest) are not
//!   copied; a resource whose key rarely repeats stops being looked up after [`TRIED_BEFORE_GIVING_UP`]
//!   records; what is kept is bounded by [`MAX_KEPT_BYTES`].
//!
//! `engine::tests::a_reused_resource_is_the_one_built` compares reused and built resources on every shipped
//! mapping; `tests/parallel.rs` compares a run with reuse and one without (`ONEDOOR_NO_REUSE`): the same
//! output, summary and quirks.

use super::member::Member;
use minijinja::Expression;
use rustc_hash::{FxHashMap, FxHashSet, FxHasher};
use serde_json::Value;
use std::hash::Hasher;

/// Records a resource is looked up for before its share of reuses decides whether to go on.
pub const TRIED_BEFORE_GIVING_UP: u32 = 1024;

/// Below one reuse in this many lookups (after [`TRIED_BEFORE_GIVING_UP`]), a resource is not looked up again.
const WORTH_ONE_IN: u32 = 16;

/// What the kept resources may take, at most, per memo (one per mapping and thread): 1 MiB, room for
/// several hundred of the Organizations and Practitioners a referral export repeats in every row. A memo
/// fills with whatever repeats first, and once a run's students come back (a second referral) that is their
/// Patients: at 4 MiB a memo this was one of the bounded caches that grew a two-thread run's memory past
/// 20,000 rows (BENCHMARKS.md, issue 13, twenty-fourth round).
pub const MAX_KEPT_BYTES: usize = 1 << 20;

/// Keys seen once remembered, at most (then forgotten, and counting starts again); as the validation
/// memo's (`crate::validation::memo`).
const MAX_SEEN: usize = 16_384;

/// Set to any value, no resource is reused (to compare a run with one that builds everything).
pub const NO_REUSE_VARIABLE: &str = "ONEDOOR_NO_REUSE";

/// Whether this run reuses resources: unless [`NO_REUSE_VARIABLE`] is set.
pub fn enabled_by_environment() -> bool {
    std::env::var_os(NO_REUSE_VARIABLE).is_none()
}

/// The record values a resource's expressions read: each a variable and its attribute path.
#[derive(Debug, Default)]
pub(super) struct Inputs {
    paths: Vec<Vec<Member>>,
}

impl Inputs {
    /// Every variable and attribute path the expressions read, each once, in a fixed order.
    pub(super) fn of<'a, 'e: 'a, 's: 'e>(
        expressions: impl Iterator<Item = &'a Expression<'e, 's>>,
    ) -> Self {
        let mut names: Vec<String> = expressions
            .flat_map(|expression| expression.undeclared_variables(true))
            .collect();
        names.sort_unstable();
        names.dedup();
        let paths = names
            .iter()
            .map(|name| name.split('.').map(Member::new).collect())
            .collect();
        Self { paths }
    }

    /// Append the key of these inputs in `context` (the record's variables) to `key`.
    fn write_key(&self, context: &Value, key: &mut Vec<u8>) {
        for path in &self.paths {
            match follow(context, path) {
                Some(value) => crate::json_text::write(value, key),
                // No JSON text starts with 0x01 or holds 0x00: missing, and the end of each value, are
                // told apart from every value.
                None => key.push(1),
            }
            key.push(0);
        }
    }
}

/// The value at `path` in `context`, followed while the value is an object: where it stops being one, the
/// value there (which holds whatever the rest of the path could read); `None` when a member is missing.
fn follow<'v>(context: &'v Value, path: &[Member]) -> Option<&'v Value> {
    let mut value = context;
    for member in path {
        let Value::Object(object) = value else {
            return Some(value);
        };
        value = member.find(object)?;
    }
    Some(value)
}

/// The key a resource was built under: which resource of the mapping, and the values it read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReuseKey(Box<[u8]>);

/// One resource of a record: built now, or kept from an earlier record with the same inputs.
#[derive(Debug)]
pub enum Product<T> {
    /// Built for this record; the key to keep it under once found valid, when it may be kept.
    Built(Value, Option<ReuseKey>),
    /// What was kept for an earlier record with the same inputs.
    Again(T),
}

/// How often one resource of the mapping was looked up and found.
#[derive(Debug, Default, Clone, Copy)]
struct Tries {
    looked_up: u32,
    found: u32,
}

impl Tries {
    fn worth_it(self) -> bool {
        self.looked_up < TRIED_BEFORE_GIVING_UP || self.found >= self.looked_up / WORTH_ONE_IN
    }
}

/// The resources kept for reuse by one thread, for one mapping, in whatever form the caller keeps them
/// (the pipeline keeps their JSON text).
#[derive(Debug)]
pub struct ReuseMemo<T> {
    kept: FxHashMap<Box<[u8]>, T>,
    seen_once: FxHashSet<u64>,
    tries: Vec<Tries>,
    kept_bytes: usize,
    /// The key being looked up (written here, copied only when it is to be kept).
    scratch: Vec<u8>,
    enabled: bool,
}

/// What looking a resource up gave.
pub(super) enum Lookup<'m, T> {
    /// Kept from an earlier record.
    Found(&'m T),
    /// Not kept: build it, and keep it under this key if it may be.
    Missing(ReuseKey),
    /// This resource is not looked up (it rarely repeats, or reuse is off).
    NotTried,
}

impl<T> ReuseMemo<T> {
    /// An empty memo; `enabled: false`, one that never reuses anything.
    pub fn new(enabled: bool) -> Self {
        Self {
            kept: FxHashMap::default(),
            seen_once: FxHashSet::default(),
            tries: Vec::new(),
            kept_bytes: 0,
            scratch: Vec::new(),
            enabled,
        }
    }

    /// Look up resource `index` of the mapping by the values `inputs` reads in `context`.
    pub(super) fn look_up(
        &mut self,
        index: usize,
        inputs: &Inputs,
        context: &Value,
    ) -> Lookup<'_, T> {
        if !self.enabled {
            return Lookup::NotTried;
        }
        if self.tries.len() <= index {
            self.tries.resize(index + 1, Tries::default());
        }
        let Some(tries) = self.tries.get_mut(index).filter(|tries| tries.worth_it()) else {
            return Lookup::NotTried;
        };
        tries.looked_up = tries.looked_up.saturating_add(1);
        self.scratch.clear();
        self.scratch
            .extend_from_slice(&(index as u64).to_le_bytes());
        inputs.write_key(context, &mut self.scratch);
        match self.kept.get(self.scratch.as_slice()) {
            Some(kept) => {
                tries.found = tries.found.saturating_add(1);
                Lookup::Found(kept)
            }
            None => Lookup::Missing(ReuseKey(self.scratch.as_slice().into())),
        }
    }

    /// The resource built under `key` was found valid: kept when its key was seen before and there is room
    /// (`bytes`: what it takes), else noted as seen once.
    pub fn keep(&mut self, key: ReuseKey, bytes: usize, resource: impl FnOnce() -> T) {
        let digest = {
            let mut hasher = FxHasher::default();
            hasher.write(&key.0);
            hasher.finish()
        };
        if self.seen_once.len() >= MAX_SEEN {
            self.seen_once.clear();
        }
        if self.seen_once.insert(digest) {
            return;
        }
        let bytes = bytes + key.0.len();
        if self.kept_bytes + bytes <= MAX_KEPT_BYTES {
            self.kept_bytes += bytes;
            self.kept.insert(key.0, resource());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn inputs(expression: &str) -> Inputs {
        let env = minijinja::Environment::new();
        let compiled = env.compile_expression(expression).unwrap();
        Inputs::of(std::iter::once(&compiled))
    }

    fn key(inputs: &Inputs, context: &Value) -> Vec<u8> {
        let mut key = Vec::new();
        inputs.write_key(context, &mut key);
        key
    }

    #[test]
    fn the_key_holds_every_value_read_and_only_those() {
        let read = inputs("school.name ~ (staff.id | lower) ~ referral['agency']");
        let context = json!({
            "school": {"name": "North", "city": "A"},
            "staff": {"id": "S1"},
            "referral": {"agency": "food", "other": 1}
        });
        let base = key(&read, &context);
        let mut unread = context.clone();
        unread["school"]["city"] = json!("B");
        assert_eq!(
            key(&read, &unread),
            base,
            "a value not read changes nothing"
        );
        // `referral` is indexed, so it is read whole.
        for (path, value) in [
            ("/school/name", json!("South")),
            ("/staff/id", json!("S2")),
            ("/referral/other", json!(2)),
        ] {
            let mut changed = context.clone();
            *changed.pointer_mut(path).unwrap() = value;
            assert_ne!(key(&read, &changed), base, "{path} is read");
        }
    }

    #[test]
    fn missing_null_empty_and_values_that_run_together_differ() {
        let read = inputs("a.x ~ b.y");
        let contexts = [
            json!({"a": {"x": "1"}, "b": {"y": "23"}}),
            json!({"a": {"x": "12"}, "b": {"y": "3"}}),
            json!({"a": {"x": 1}, "b": {"y": 23}}),
            json!({"a": {"x": 12}, "b": {"y": 3}}),
            json!({"a": {}, "b": {"y": "123"}}),
            json!({"a": {"x": null}, "b": {"y": "123"}}),
            json!({"a": {"x": ""}, "b": {"y": "123"}}),
            json!({"a": "x", "b": {"y": "123"}}),
        ];
        let keys: Vec<_> = contexts.iter().map(|c| key(&read, c)).collect();
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
        // `a.x` is undefined both ways: the same key.
        assert_eq!(
            key(&read, &json!({"b": {"y": "123"}})),
            key(&read, &json!({"a": {}, "b": {"y": "123"}}))
        );
    }

    #[test]
    fn a_resource_is_kept_the_second_time_and_then_found() {
        let read = inputs("school.name");
        let context = json!({"school": {"name": "North"}});
        let mut memo = ReuseMemo::<String>::new(true);
        for round in 0..2 {
            let Lookup::Missing(key) = memo.look_up(0, &read, &context) else {
                panic!("found in round {round}");
            };
            memo.keep(key, 5, || "North".to_owned());
        }
        assert!(matches!(memo.look_up(0, &read, &context), Lookup::Found(kept) if kept == "North"));
        assert!(
            matches!(memo.look_up(1, &read, &context), Lookup::Missing(_)),
            "another resource of the mapping reading the same values is another key"
        );
    }

    #[test]
    fn a_resource_that_never_repeats_stops_being_looked_up() {
        let read = inputs("referral.id");
        let mut memo = ReuseMemo::<()>::new(true);
        for n in 0..TRIED_BEFORE_GIVING_UP {
            let context = json!({"referral": {"id": n}});
            let Lookup::Missing(key) = memo.look_up(0, &read, &context) else {
                panic!("record {n} not looked up");
            };
            memo.keep(key, 1, || ());
        }
        let context = json!({"referral": {"id": 0}});
        assert!(matches!(memo.look_up(0, &read, &context), Lookup::NotTried));
        assert!(memo.kept.is_empty());
    }
}
