//! Where a typed-model error is, found without a path-tracking deserializer (which would compile the whole
//! `Resource` deserializer a second time): serde stops at the first element it cannot read, so taking out
//! an element that comes before it, or beside it, leaves the same error, while taking out the element at
//! fault changes it (to another error or none). The element whose removal changes the error is followed
//! down until no child of it does; a missing required element is reported at its parent, as serde's path
//! tracking reports it (taking out a required sibling then only reports that sibling missing instead).

use serde_json::Value;

/// Removals tried at most: each costs a copy and a deserialization of the resource.
const MAX_TRIALS: usize = 256;

/// Elements copied at most over all trials, so a huge resource gets fewer trials (and a less precise
/// path) rather than a search that takes minutes.
const MAX_ELEMENTS_COPIED: usize = 4_000_000;

/// A step down from an element: a member of an object, or an item of a list.
#[derive(Debug, Clone)]
enum Step {
    Member(String),
    Item(usize),
}

/// The dotted path (`name[1].family`, `.` for the resource itself) of the element of `resource` at fault
/// for `error`, as `error_of` (the typed model's first error, `None` when it deserializes) tells them.
pub(crate) fn element_at_fault(
    resource: &Value,
    error: &str,
    error_of: impl Fn(&Value) -> Option<String>,
) -> String {
    let mut path: Vec<Step> = Vec::new();
    let max_trials = MAX_TRIALS.min(MAX_ELEMENTS_COPIED / elements(resource).max(1));
    let mut trials = 0;
    'descend: while trials < max_trials {
        let Some(node) = walk(resource, &path) else {
            break;
        };
        for step in steps(node) {
            if trials == max_trials {
                break 'descend;
            }
            trials += 1;
            let mut trial = resource.clone();
            remove(&mut trial, &path, &step);
            if at_fault(&step, error, error_of(&trial)) {
                path.push(step);
                continue 'descend;
            }
        }
        break;
    }
    dotted(&path)
}

/// Whether taking out the element `step` shows it at fault for `error`: the resource then deserializes, or
/// fails differently — except when a required element is only missing now while the error was already
/// a missing element (the one at fault is its parent's, not this one).
fn at_fault(step: &Step, error: &str, without: Option<String>) -> bool {
    match without {
        None => true,
        Some(other) if other == error => false,
        Some(other) => {
            let now_missing =
                matches!(step, Step::Member(key) if other == format!("missing field `{key}`"));
            !(now_missing && error.starts_with("missing field `"))
        }
    }
}

/// How many elements (objects, lists and values) `value` holds, itself included.
fn elements(value: &Value) -> usize {
    1 + match value {
        Value::Object(members) => members.values().map(elements).sum(),
        Value::Array(items) => items.iter().map(elements).sum(),
        _ => 0,
    }
}

/// The steps into `node`'s children, `resourceType` left out (taking it out changes any error).
fn steps(node: &Value) -> Vec<Step> {
    match node {
        Value::Object(members) => members
            .keys()
            .filter(|key| *key != "resourceType")
            .map(|key| Step::Member(key.clone()))
            .collect(),
        Value::Array(items) => (0..items.len()).map(Step::Item).collect(),
        _ => Vec::new(),
    }
}

fn walk<'v>(mut node: &'v Value, path: &[Step]) -> Option<&'v Value> {
    for step in path {
        node = match step {
            Step::Member(key) => node.get(key)?,
            Step::Item(index) => node.get(index)?,
        };
    }
    Some(node)
}

/// Take the child `step` out of the element at `path` in `resource`.
fn remove(resource: &mut Value, path: &[Step], step: &Step) {
    let mut node = resource;
    for down in path {
        let next = match down {
            Step::Member(key) => node.get_mut(key),
            Step::Item(index) => node.get_mut(*index),
        };
        let Some(next) = next else { return };
        node = next;
    }
    match (node, step) {
        (Value::Object(members), Step::Member(key)) => {
            members.shift_remove(key);
        }
        (Value::Array(items), Step::Item(index)) if *index < items.len() => {
            items.remove(*index);
        }
        _ => {}
    }
}

fn dotted(path: &[Step]) -> String {
    if path.is_empty() {
        return ".".to_owned();
    }
    let mut text = String::new();
    for step in path {
        match step {
            Step::Member(key) => {
                if !text.is_empty() {
                    text.push('.');
                }
                text.push_str(key);
            }
            Step::Item(index) => text.push_str(&format!("[{index}]")),
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A failure deep in a long list is found, and a huge resource is searched within the bound.
    #[test]
    fn the_search_is_bounded() {
        let error_of = |value: &Value| {
            value
                .pointer("/list")
                .and_then(Value::as_array)
                .and_then(|items| items.iter().position(|item| item.is_string()))
                .map(|_| "bad item".to_owned())
        };
        let mut items: Vec<Value> = (0..100).map(Value::from).collect();
        items[70] = Value::from("bad");
        let resource = serde_json::json!({"resourceType": "X", "list": items});
        assert_eq!(
            element_at_fault(&resource, "bad item", error_of),
            "list[70]"
        );
        let mut huge: Vec<Value> = (0..1_000_000).map(Value::from).collect();
        huge[999_999] = Value::from("bad");
        let resource = serde_json::json!({"resourceType": "X", "list": huge});
        // 4 trials for a million elements: the list, then its first three items.
        assert_eq!(element_at_fault(&resource, "bad item", error_of), "list");
    }
}
