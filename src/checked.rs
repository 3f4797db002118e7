//! Checked writes into received JSON. `value["key"] = ...` (serde_json's `IndexMut`) panics when `value`
//! is not an object — a string where a resource was expected — so received data is written only through
//! these helpers, which refuse a non-object with an error naming the element (422 for a request).

use serde_json::{Map, Value};

/// A write into received JSON found something other than an object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: expected a JSON object, got {found}")]
pub struct NotAnObject {
    /// The element (`ServiceRequest`, `/entry/2/resource`).
    pub at: String,
    /// The JSON type found (`a string`).
    pub found: &'static str,
}

/// The JSON type of a value, as shown in errors.
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `value` as a mutable object, or an error naming `at`.
pub fn object_mut<'a>(
    value: &'a mut Value,
    at: &str,
) -> Result<&'a mut Map<String, Value>, NotAnObject> {
    let found = kind(value);
    value.as_object_mut().ok_or_else(|| NotAnObject {
        at: at.to_owned(),
        found,
    })
}

/// Set `key` of the object `value` (named `at` in errors).
pub fn set(value: &mut Value, at: &str, key: &str, new: Value) -> Result<(), NotAnObject> {
    object_mut(value, at)?.insert(key.to_owned(), new);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn writes_into_objects_and_refuses_anything_else() {
        let mut resource = json!({"resourceType": "Consent"});
        set(&mut resource, "Consent", "id", json!("c1")).unwrap();
        assert_eq!(resource["id"], "c1");
        for mut other in [json!("x"), json!([1]), json!(null), json!(3)] {
            let err = set(&mut other, "Consent", "id", json!("c1")).unwrap_err();
            assert!(
                err.to_string()
                    .starts_with("Consent: expected a JSON object")
            );
        }
    }
}
