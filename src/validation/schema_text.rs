//! The vendored FHIR R4 JSON schema read into values without its `description` annotations.
//!
//! Of the schema's 42,455 members, 11,499 are `description`s that are text: 2.0 MB of its 2.7 MB of compact
//! text, read for nothing (an annotation; no check or message of onedoor's uses one). A member named
//! `description` whose value is not text is kept: it is an element's definition (103 resources and types
//! have a `description` element among their `properties`: `Location`, `Task`, `Goal`...). Every run that validates reads
//! the schema once, first thing, so reading it is part of every command's start-up; a description's value
//! is skipped here as the text is read, without a string or a map entry made for it (BENCHMARKS.md, issue
//! 13, nineteenth round). Everything else is read as `serde_json::Value` reads it.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// The member left out, at every depth, when its value is text.
const SKIPPED: &str = "description";

/// How `serde_json` (with its `arbitrary_precision` feature, which onedoor uses) hands a visitor a number
/// that is not an integer fitting 64 bits (a fraction, an exponent, `-0`, a larger integer): a map of one
/// member, this name and the number's text. Integers that fit come through `visit_u64` / `visit_i64`.
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

/// The `definitions` of a schema document's text, each without its descriptions.
pub fn definitions(text: &str) -> serde_json::Result<Map<String, Value>> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let document = WithoutDescriptions.deserialize(&mut deserializer)?;
    deserializer.end()?;
    match document {
        Value::Object(mut members) => match members.remove("definitions") {
            Some(Value::Object(definitions)) => Ok(definitions),
            _ => Err(de::Error::custom("the schema has no `definitions` object")),
        },
        _ => Err(de::Error::custom("the schema is not a JSON object")),
    }
}

/// Reads one JSON value, leaving out every object's `description`.
struct WithoutDescriptions;

impl<'de> DeserializeSeed<'de> for WithoutDescriptions {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for WithoutDescriptions {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Value, A::Error> {
        let mut values = Vec::with_capacity(items.size_hint().unwrap_or(0));
        while let Some(value) = items.next_element_seed(WithoutDescriptions)? {
            values.push(value);
        }
        Ok(Value::Array(values))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut members: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(name) = members.next_key::<String>()? {
            if name == NUMBER_TOKEN && object.is_empty() {
                let text = members.next_value::<String>()?;
                return (text.parse::<serde_json::Number>())
                    .map(Value::Number)
                    .map_err(de::Error::custom);
            }
            let value = if name == SKIPPED {
                members.next_value_seed(UnlessText)?
            } else {
                Some(members.next_value_seed(WithoutDescriptions)?)
            };
            if let Some(value) = value {
                object.insert(name, value);
            }
        }
        Ok(Value::Object(object))
    }
}

/// Reads a `description` member's value: `None` for text (read, not kept), else the value.
struct UnlessText;

impl<'de> DeserializeSeed<'de> for UnlessText {
    type Value = Option<Value>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for UnlessText {
    type Value = Option<Value>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Self::Value, E> {
        WithoutDescriptions.visit_bool(value).map(Some)
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
        WithoutDescriptions.visit_u64(value).map(Some)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
        WithoutDescriptions.visit_i64(value).map(Some)
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Self::Value, E> {
        WithoutDescriptions.visit_f64(value).map(Some)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        WithoutDescriptions.visit_unit().map(Some)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, items: A) -> Result<Self::Value, A::Error> {
        WithoutDescriptions.visit_seq(items).map(Some)
    }

    fn visit_map<A: MapAccess<'de>>(self, members: A) -> Result<Self::Value, A::Error> {
        WithoutDescriptions.visit_map(members).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `value` with every object's text `description` removed, at every depth.
    fn without_descriptions(value: &Value) -> Value {
        match value {
            Value::Object(members) => Value::Object(
                (members.iter())
                    .filter(|(name, value)| name.as_str() != SKIPPED || !value.is_string())
                    .map(|(name, value)| (name.clone(), without_descriptions(value)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(without_descriptions).collect()),
            other => other.clone(),
        }
    }

    #[test]
    fn the_vendored_schema_reads_as_json_does_but_for_its_descriptions() {
        let text = include_str!("../../schemas/fhir.schema.v4.json");
        let read = definitions(text).unwrap();
        let full: Value = serde_json::from_str(text).unwrap();
        let expected = without_descriptions(&full["definitions"]);
        assert!(read.len() > 600, "{} definitions", read.len());
        assert_ne!(
            expected, full["definitions"],
            "the schema has descriptions to leave out"
        );
        assert_eq!(
            read["Location"]["properties"]["description"]["$ref"],
            "#/definitions/string"
        );
        assert_eq!(Value::Object(read), expected);
    }

    #[test]
    fn descriptions_go_at_every_depth_and_nothing_else_does() {
        let text = r##"{"definitions": {"A": {"description": "a", "properties":
            {"description": {"description": "the element", "$ref": "#/definitions/string"},
            "b": {"description": "b", "items": [{"description": "i", "$ref": "#/x"}], "const": null,
            "enum": [true, "x"], "maxLength": 12, "minimum": -1.5e3}}}}}"##;
        let read = Value::Object(definitions(text).unwrap());
        let full: Value = serde_json::from_str(text).unwrap();
        assert_eq!(read, without_descriptions(&full["definitions"]));
        assert_eq!(read["A"].as_object().map(Map::len), Some(1), "{read}");
        assert_eq!(
            read["A"]["properties"]["description"],
            serde_json::json!({"$ref": "#/definitions/string"}),
            "an element named description is kept, without its own description"
        );
        assert_eq!(
            read["A"]["properties"]["b"]["items"][0]
                .as_object()
                .map(Map::len),
            Some(1)
        );
        assert_eq!(
            read["A"]["properties"]["b"]["minimum"],
            full["definitions"]["A"]["properties"]["b"]["minimum"]
        );
        assert_eq!(read["A"]["properties"]["b"]["maxLength"].as_u64(), Some(12));
    }

    #[test]
    fn a_description_that_is_not_text_is_kept_as_it_is() {
        let text = r#"{"definitions": {"A": {"description": null}, "B": {"description": 7},
            "C": {"description": true}, "D": {"description": ["x", {"description": "y"}]},
            "E": {"description": -7}, "F": {"description": 0.5}}}"#;
        assert_eq!(
            Value::Object(definitions(text).unwrap()),
            serde_json::json!({"A": {"description": null}, "B": {"description": 7},
                "C": {"description": true}, "D": {"description": ["x", {}]},
                "E": {"description": -7}, "F": {"description": 0.5}})
        );
    }

    #[test]
    fn a_document_without_definitions_or_not_json_is_an_error() {
        assert!(definitions(r#"{"properties": {}}"#).is_err());
        assert!(definitions(r#"{"definitions": 5}"#).is_err());
        assert!(definitions("[1").is_err());
        assert!(definitions(r#"{"definitions": {}} trailing"#).is_err());
    }
}
