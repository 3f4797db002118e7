//! Reading the JSON values the XML and JSON adapters build: the trimmed text at a pointer, and one element or
//! several as a list (XML gives one repeated element as a value, two as a list).

use serde_json::{Map, Value};

/// The text at a JSON pointer, trimmed (`None` when absent or empty).
pub fn text_at<'v>(value: &'v Value, pointer: &str) -> Option<&'v str> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// One element or several, as a list (none when absent).
pub fn each(value: Option<&Value>) -> Vec<&Value> {
    match value {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(item) => vec![item],
        None => Vec::new(),
    }
}

/// A JSON object of these members, in this order, the values moved in (`json!` with a variable would
/// serialize it into a copy).
pub fn object<const N: usize>(members: [(&str, Value); N]) -> Value {
    Value::Object(Map::from_iter(
        members.map(|(name, value)| (name.to_owned(), value)),
    ))
}

/// A row's values as a JSON object, or null when there is no row.
pub fn values_or_null(values: Option<Map<String, Value>>) -> Value {
    values.map_or(Value::Null, Value::Object)
}
