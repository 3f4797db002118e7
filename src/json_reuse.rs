//! Parsing JSON text into a `serde_json::Value` that is already there, reusing its objects, arrays and
//! strings.
//!
//! `validate` reads NDJSON whose lines mostly have one shape. Building each line's value anew cost more than
//! checking it: every object member's name hashed (SipHash) and inserted, every map, array and string
//! allocated and freed again (BENCHMARKS.md, issue 13 fourteenth round). Here an object's members are
//! matched to the old value's by position: while the names are the same, each value is parsed into the old
//! one in place (a string copied into the old string's buffer); from the first name that differs, the rest
//! of that object is built by insert, as `serde_json` builds it, and members left over are removed.
//!
//! The text is read by serde_json's own parser, so what is accepted, escapes, numbers and depth are its own.
//! Numbers come as serde_json's parser hands them to any visitor: integers as integers, any other (with
//! `arbitrary_precision`) as a one-member object holding the number's text, read as its own visitor
//! reads it. The result is the value
//! `serde_json::from_str` gives, member order included; on any error (and for serde_json's private raw-value
//! key) the text is parsed again by `serde_json::from_str`, so errors and that value are its own too. `tests` holds the two to each other on
//! generated sequences of texts, malformed ones included.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::fmt;

/// The prefix of the member names `serde_json` reads specially when first in an object (its
/// `arbitrary_precision` number and its raw value).
const PRIVATE_KEY_PREFIX: &str = "$serde_json::private::";

/// The one member of the object `serde_json`'s parser hands a number to a visitor as, with the
/// `arbitrary_precision` feature: the number's text as its value.
const NUMBER_KEY: &str = "$serde_json::private::Number";

/// Parse `text` into `place`, reusing the allocations `place` holds. Afterwards `place` is what
/// `serde_json::from_str(text)` returns; on error, that function's error is returned and `place` holds some
/// value (to be parsed into again).
pub fn parse_into(text: &str, place: &mut Value) -> serde_json::Result<()> {
    let mut parser = serde_json::Deserializer::from_str(text);
    let reused = Reuse(place)
        .deserialize(&mut parser)
        .and_then(|()| parser.end());
    if reused.is_err() {
        *place = serde_json::from_str(text)?;
    }
    Ok(())
}

/// Parses one value into the value it holds.
struct Reuse<'p>(&'p mut Value);

impl<'de> DeserializeSeed<'de> for Reuse<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Reuse<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any valid JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<(), E> {
        *self.0 = Value::Bool(value);
        Ok(())
    }

    fn visit_i64<E>(self, value: i64) -> Result<(), E> {
        *self.0 = Value::from(value);
        Ok(())
    }

    fn visit_u64<E>(self, value: u64) -> Result<(), E> {
        *self.0 = Value::from(value);
        Ok(())
    }

    fn visit_f64<E>(self, value: f64) -> Result<(), E> {
        *self.0 = Number::from_f64(value).map_or(Value::Null, Value::Number);
        Ok(())
    }

    fn visit_str<E>(self, value: &str) -> Result<(), E> {
        match self.0 {
            Value::String(text) => {
                text.clear();
                text.push_str(value);
            }
            other => *other = Value::String(value.to_owned()),
        }
        Ok(())
    }

    fn visit_string<E>(self, value: String) -> Result<(), E> {
        *self.0 = Value::String(value);
        Ok(())
    }

    fn visit_none<E>(self) -> Result<(), E> {
        *self.0 = Value::Null;
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        *self.0 = Value::Null;
        Ok(())
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        Reuse(self.0).deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut items = match std::mem::take(self.0) {
            Value::Array(items) => items,
            _ => Vec::new(),
        };
        let mut count = 0;
        let mut ended = false;
        while let Some(item) = items.get_mut(count) {
            if seq.next_element_seed(Reuse(item))?.is_none() {
                ended = true;
                break;
            }
            count += 1;
        }
        if ended {
            items.truncate(count);
        } else {
            while let Some(item) = seq.next_element::<Value>()? {
                items.push(item);
            }
        }
        *self.0 = Value::Array(items);
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut members = match std::mem::take(self.0) {
            Value::Object(members) => members,
            _ => Map::new(),
        };
        let (matched, first_new) = match reuse_members(&mut members, &mut map)? {
            Reused::Number => {
                // A number, as `serde_json`'s own visitor reads it: the text parsed as a `Number`.
                let text: String = map.next_value()?;
                *self.0 = Value::Number(text.parse().map_err(de::Error::custom)?);
                return Ok(());
            }
            Reused::Members(matched, first_new) => (matched, first_new),
        };
        keep_first(&mut members, matched);
        if let Some(name) = first_new {
            members.insert(name, map.next_value()?);
            while let Some((name, value)) = map.next_entry::<String, Value>()? {
                members.insert(name, value);
            }
        }
        *self.0 = Value::Object(members);
        Ok(())
    }
}

/// What [`reuse_members`] found.
enum Reused {
    /// How many members had the old names, in order, and were parsed into the old values; the name of the
    /// first member that did not (its value not yet read), if any.
    Members(usize, Option<String>),
    /// Not an object but a number, handed over as serde_json's private one-member object.
    Number,
}

/// Parses the members whose names are the old ones, in order, into the old values.
fn reuse_members<'de, A: MapAccess<'de>>(
    members: &mut Map<String, Value>,
    map: &mut A,
) -> Result<Reused, A::Error> {
    let mut slots = members.iter_mut();
    let mut matched = 0;
    loop {
        let slot = slots.next();
        let seed = NameSeed {
            expected: slot.as_ref().map(|(name, _)| name.as_str()),
            first: matched == 0,
        };
        match (map.next_key_seed(seed)?, slot) {
            (None, _) => return Ok(Reused::Members(matched, None)),
            (Some(Name::Expected), Some((_, value))) => {
                map.next_value_seed(Reuse(value))?;
                matched += 1;
            }
            (Some(Name::Other(name)), _) => return Ok(Reused::Members(matched, Some(name))),
            (Some(Name::Number), _) => return Ok(Reused::Number),
            (Some(Name::Private | Name::Expected), _) => {
                return Err(de::Error::custom("a member name serde_json reads itself"));
            }
        }
    }
}

/// Keeps the first `count` members of `members`, in their order.
fn keep_first(members: &mut Map<String, Value>, count: usize) {
    if count == 0 {
        members.clear();
    } else if count < members.len() {
        let mut kept = 0;
        members.retain(|_, _| {
            kept += 1;
            kept <= count
        });
    }
}

/// A member name as read: the one expected at its position, another, serde_json's number, or another of
/// serde_json's own (read again by `serde_json::from_str`).
enum Name {
    Expected,
    Other(String),
    Number,
    Private,
}

/// Reads a member name, comparing it with the old member's at the same position without copying it.
struct NameSeed<'k> {
    expected: Option<&'k str>,
    first: bool,
}

impl<'de> DeserializeSeed<'de> for NameSeed<'_> {
    type Value = Name;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Name, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for NameSeed<'_> {
    type Value = Name;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a member name")
    }

    fn visit_str<E>(self, name: &str) -> Result<Name, E> {
        Ok(if self.first && name == NUMBER_KEY {
            Name::Number
        } else if self.first && name.starts_with(PRIVATE_KEY_PREFIX) {
            Name::Private
        } else if self.expected == Some(name) {
            Name::Expected
        } else {
            Name::Other(name.to_owned())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A JSON text's tree as written, duplicate member names allowed.
    #[derive(Debug, Clone)]
    enum Text {
        Literal(&'static str),
        String(String),
        Array(Vec<Text>),
        Object(Vec<(String, Text)>),
    }

    impl Text {
        fn write(&self, out: &mut String) {
            match self {
                Text::Literal(literal) => out.push_str(literal),
                Text::String(text) => out.push_str(&serde_json::to_string(text).unwrap()),
                Text::Array(items) => {
                    out.push('[');
                    for (index, item) in items.iter().enumerate() {
                        if index > 0 {
                            out.push_str(", ");
                        }
                        item.write(out);
                    }
                    out.push(']');
                }
                Text::Object(members) => {
                    out.push('{');
                    for (index, (name, value)) in members.iter().enumerate() {
                        if index > 0 {
                            out.push(',');
                        }
                        out.push_str(&serde_json::to_string(name).unwrap());
                        out.push(':');
                        value.write(out);
                    }
                    out.push('}');
                }
            }
        }
    }

    /// Texts built from few names and values, so that one often has the shape, or part of the shape, of
    /// the one before.
    fn any_text() -> impl Strategy<Value = Text> {
        let name = prop_oneof![
            Just("a".to_owned()),
            Just("b".to_owned()),
            Just("resourceType".to_owned()),
            Just("coding".to_owned()),
            Just("$serde_json::private::Number".to_owned()),
            Just("$serde_json::private::RawValue".to_owned()),
            "\\PC{0,6}",
        ];
        let leaf = prop_oneof![
            Just(Text::Literal("null")),
            Just(Text::Literal("true")),
            Just(Text::Literal("false")),
            Just(Text::Literal("0")),
            Just(Text::Literal("-1.50e3")),
            Just(Text::Literal("12345678901234567890123")),
            Just(Text::Literal("\"esc\\u00e9\\n\\\"\"")),
            Just(Text::String("1.5".to_owned())),
            Just(Text::String("[1, {\"x\": 2}]".to_owned())),
            "\\PC{0,12}".prop_map(Text::String),
        ];
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Text::Array),
                proptest::collection::vec((name.clone(), inner), 0..6).prop_map(Text::Object),
            ]
        })
    }

    /// `text`, written, and with a part cut off at `cut` (per mille of its length) when `cut` says so.
    fn written(text: &Text, cut: Option<u16>) -> String {
        let mut out = String::new();
        text.write(&mut out);
        if let Some(cut) = cut {
            let mut at = out.len() * usize::from(cut) / 1000;
            while !out.is_char_boundary(at) {
                at -= 1;
            }
            out.truncate(at);
        }
        out
    }

    /// Parsing each text into the value the texts before left gives what `serde_json::from_str` gives:
    /// the same value with the same member order, or the same error.
    fn same_as_serde_json(texts: &[String]) -> Result<(), TestCaseError> {
        let mut place = Value::Null;
        for text in texts {
            let expected = serde_json::from_str::<Value>(text);
            match (parse_into(text, &mut place), expected) {
                (Ok(()), Ok(value)) => {
                    prop_assert_eq!(place.to_string(), value.to_string(), "text {}", text)
                }
                (Err(ours), Err(theirs)) => prop_assert_eq!(ours.to_string(), theirs.to_string()),
                (ours, theirs) => prop_assert!(false, "{text}: {ours:?} against {theirs:?}"),
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn a_value_parsed_in_place_is_serde_jsons(
            texts in proptest::collection::vec(
                (any_text(), proptest::option::weighted(0.1, 0u16..1000)),
                1..5,
            ),
        ) {
            let texts: Vec<String> = texts.iter().map(|(text, cut)| written(text, *cut)).collect();
            same_as_serde_json(&texts)?;
        }
    }

    #[test]
    fn members_that_change_name_order_or_count_are_rebuilt_in_the_texts_order() {
        let texts = [
            r#"{"a":1,"b":{"c":[1,2,3]},"d":"x"}"#,
            r#"{"a":2,"b":{"c":[4]},"d":"longer text than before"}"#,
            r#"{"a":2,"d":"y","b":{"c":[]}}"#,
            r#"{"a":{"z":1},"a":3}"#,
            r#"{"a":1,"b":2,"a":{"again":true}}"#,
            r#"{}"#,
            r#"[{"a":1},{"a":2,"b":3}]"#,
            r#"[{"a":1,"b":3}]"#,
            r#"{"$serde_json::private::Number":"1.0"}"#,
            r#"{"$serde_json::private::RawValue":"[1,2]"}"#,
            r#"{"a":"$serde_json::private::Number","$serde_json::private::Number":"7"}"#,
            r#"{"a":1"#,
            r#"{"a":1} x"#,
            r#"{"a":1,"b":2,"d":3}"#,
        ];
        let texts: Vec<String> = texts.iter().map(|text| (*text).to_owned()).collect();
        same_as_serde_json(&texts).unwrap();
    }

    #[test]
    fn strings_keep_their_buffer_when_the_shape_repeats() {
        let mut place = Value::Null;
        parse_into(
            r#"{"id":"a much longer first identifier","value":{"n":1.5}}"#,
            &mut place,
        )
        .unwrap();
        let before = place["id"].as_str().unwrap().as_ptr();
        // Numbers too are read in place (had they made the text be parsed again, the string would be new).
        parse_into(r#"{"id":"short","value":{"n":-2.25}}"#, &mut place).unwrap();
        assert_eq!(place.to_string(), r#"{"id":"short","value":{"n":-2.25}}"#);
        assert_eq!(place["id"].as_str().unwrap().as_ptr(), before);
    }

    #[test]
    fn numbers_are_read_as_serde_json_reads_them() {
        let texts = [
            r#"{"value":1.50,"n":[0,-0,1e400,-3.25E-10,12345678901234567890123]}"#,
            r#"{"value":"1.50","n":[7,{"a":1}]}"#,
            r#"{"value":2.5e-3,"n":[8,9,10,11,12,13]}"#,
            r#"{"value":{"$serde_json::private::Number":"4.0"},"n":-1}"#,
            r#"{"value":{"$serde_json::private::Number":"x"}}"#,
            r#"{"value":{"$serde_json::private::Number":"4","a":1}}"#,
        ];
        let texts: Vec<String> = texts.iter().map(|text| (*text).to_owned()).collect();
        same_as_serde_json(&texts).unwrap();
    }

    #[test]
    fn nesting_deeper_than_serde_json_allows_is_its_error() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let mut place = serde_json::json!([[[1]]]);
        let ours = parse_into(&deep, &mut place).unwrap_err();
        let theirs = serde_json::from_str::<Value>(&deep).unwrap_err();
        assert_eq!(ours.to_string(), theirs.to_string());
    }
}
