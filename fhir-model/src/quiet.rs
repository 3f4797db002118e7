//! The deserializer of the typed check: `serde_json::Value` into fhir-sdk's types, quiet when a resource
//! fits and precise when it does not.
//!
//! It visits exactly what `&serde_json::Value`'s own deserializer visits (the same calls for each JSON
//! type, numbers handed to `serde_json::Number` itself), with two differences:
//!
//! - **Quiet by default.** Its error formats nothing and allocates nothing unless the check is run
//!   [`loud`](with_messages). fhir-sdk's choice elements (`occurrence[x]`, `value[x]`) are `#[serde(flatten)]`
//!   options, and serde tries each one absent from a resource and throws the error away; with
//!   `serde_json::Error` every such try formatted a message into a new boxed error.
//! - **Its own path.** A refused resource is deserialized again with messages on, and each member and item
//!   the error passes on its way out adds itself to the error's path (`name[0].given`), as
//!   `serde_path_to_error` did. One deserializer serves both runs, so the typed model's serde code is
//!   compiled once for it (that code is most of this crate's build time).
//!
//! The tests `quiet_and_serde_json_agree*` compare its verdict with serde_json's own deserializer on
//! documents of every kind the typed check meets.

use serde::de::{
    self, DeserializeSeed, EnumAccess, Expected, IntoDeserializer, MapAccess, SeqAccess,
    Unexpected, VariantAccess, Visitor,
    value::{BorrowedStrDeserializer, StrDeserializer},
};
use serde_json::{Map, Value};
use std::cell::Cell;
use std::fmt;

thread_local! {
    /// Whether errors carry their message and path on this thread (only while [`with_messages`] runs).
    static LOUD: Cell<bool> = const { Cell::new(false) };
}

/// Run `check` with messages and paths on; quiet again afterwards, even if it panics.
pub(crate) fn with_messages<T>(check: impl FnOnce() -> T) -> T {
    struct Quieten;
    impl Drop for Quieten {
        fn drop(&mut self) {
            LOUD.set(false);
        }
    }
    LOUD.set(true);
    let _quieten = Quieten;
    check()
}

/// A `serde_json::Value` to deserialize; its error carries nothing unless messages are on.
pub(crate) struct Quiet<'de>(pub(crate) &'de Value);

/// The value does not fit the type; with messages on, why and where.
#[derive(Debug)]
pub(crate) struct Refused(Option<Box<Failure>>);

/// Why a value was refused, and the way to the element at fault.
#[derive(Debug)]
pub(crate) struct Failure {
    /// What serde reported: a missing element, an unknown code, a wrong type.
    pub(crate) message: String,
    /// Innermost segment first.
    path: Vec<Segment>,
}

#[derive(Debug)]
enum Segment {
    Member(String),
    Item(usize),
}

impl Refused {
    /// The failure, when messages were on.
    pub(crate) fn failure(self) -> Option<Failure> {
        self.0.map(|failure| *failure)
    }

    /// The error as seen from the container holding the element it came from.
    fn within(mut self, segment: impl FnOnce() -> Segment) -> Self {
        if let Some(failure) = &mut self.0 {
            failure.path.push(segment());
        }
        self
    }
}

impl Failure {
    /// The dotted path of the element (`name[0].given`; `.` for the resource itself).
    pub(crate) fn path(&self) -> String {
        if self.path.is_empty() {
            return ".".to_owned();
        }
        let mut out = String::new();
        for segment in self.path.iter().rev() {
            match segment {
                Segment::Item(index) => out.push_str(&format!("[{index}]")),
                Segment::Member(name) if out.is_empty() => out.push_str(name),
                Segment::Member(name) => {
                    out.push('.');
                    out.push_str(name);
                }
            }
        }
        out
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(failure) => f.write_str(&failure.message),
            None => f.write_str("does not fit the typed model"),
        }
    }
}

impl std::error::Error for Refused {}

impl de::Error for Refused {
    fn custom<T: fmt::Display>(message: T) -> Self {
        if !LOUD.get() {
            return Refused(None);
        }
        Refused(Some(Box::new(Failure {
            message: message.to_string(),
            path: Vec::new(),
        })))
    }
}

/// What serde_json names a value in its messages (`invalid type: string "x", expected a boolean`).
fn unexpected(value: &Value) -> Unexpected<'_> {
    match value {
        Value::Null => Unexpected::Unit,
        Value::Bool(b) => Unexpected::Bool(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => Unexpected::Unsigned(u),
            (None, Some(i), _) => Unexpected::Signed(i),
            (None, None, Some(f)) => Unexpected::Float(f),
            _ => Unexpected::Other("number"),
        },
        Value::String(text) => Unexpected::Str(text),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

/// The value is not of the JSON type `expected` takes.
fn mismatch(value: &Value, expected: &dyn Expected) -> Refused {
    de::Error::invalid_type(unexpected(value), expected)
}

fn refused<T>(error: serde_json::Error) -> Result<T, Refused> {
    Err(de::Error::custom(error))
}

/// The number methods: a number is deserialized by `serde_json::Number` itself (exact decimals and all),
/// anything else as by `deserialize_any` (what `&Value` does with arbitrary precision on).
macro_rules! number_method {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
            match self.0 {
                Value::Number(number) => number.$method(visitor).or_else(refused),
                _ => self.deserialize_any(visitor),
            }
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Quiet<'de> {
    type Error = Refused;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(value) => visitor.visit_bool(*value),
            Value::Number(number) => number.deserialize_any(visitor).or_else(refused),
            Value::String(text) => visitor.visit_borrowed_str(text),
            Value::Array(items) => visit_array(items, visitor),
            Value::Object(map) => visit_object(map, visitor),
        }
    }

    number_method!(deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
        deserialize_f32 deserialize_f64);

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Refused> {
        match self.0 {
            Value::String(variant) => visitor.visit_enum(Variant {
                name: variant,
                value: None,
            }),
            // An enum in JSON is a map with a single key: the variant.
            Value::Object(map) => match map.iter().next() {
                Some((name, value)) if map.len() == 1 => visitor.visit_enum(Variant {
                    name,
                    value: Some(value),
                }),
                _ => Err(de::Error::invalid_value(
                    Unexpected::Map,
                    &"map with a single key",
                )),
            },
            other => Err(mismatch(other, &"string or map")),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Refused> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        match self.0 {
            Value::Bool(value) => visitor.visit_bool(*value),
            other => Err(mismatch(other, &visitor)),
        }
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        match self.0 {
            Value::String(text) => visitor.visit_borrowed_str(text),
            other => Err(mismatch(other, &visitor)),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        match self.0 {
            Value::String(text) => visitor.visit_borrowed_str(text),
            Value::Array(items) => visit_array(items, visitor),
            other => Err(mismatch(other, &visitor)),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            other => Err(mismatch(other, &visitor)),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Refused> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        match self.0 {
            Value::Array(items) => visit_array(items, visitor),
            other => Err(mismatch(other, &visitor)),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Refused> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Refused> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        match self.0 {
            Value::Object(map) => visit_object(map, visitor),
            other => Err(mismatch(other, &visitor)),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Refused> {
        match self.0 {
            Value::Array(items) => visit_array(items, visitor),
            Value::Object(map) => visit_object(map, visitor),
            other => Err(mismatch(other, &visitor)),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        visitor.visit_unit()
    }
}

/// An array's items in order; every item must be taken.
fn visit_array<'de, V: Visitor<'de>>(items: &'de [Value], visitor: V) -> Result<V::Value, Refused> {
    let mut access = Items {
        items: items.iter(),
        index: 0,
    };
    let value = visitor.visit_seq(&mut access)?;
    match access.items.len() {
        0 => Ok(value),
        _ => Err(de::Error::invalid_length(
            items.len(),
            &"fewer elements in array",
        )),
    }
}

/// An object's members in order; every member must be taken.
fn visit_object<'de, V: Visitor<'de>>(
    map: &'de Map<String, Value>,
    visitor: V,
) -> Result<V::Value, Refused> {
    let mut access = Members {
        members: map.iter(),
        value: None,
    };
    let value = visitor.visit_map(&mut access)?;
    match access.members.len() {
        0 => Ok(value),
        _ => Err(de::Error::invalid_length(
            map.len(),
            &"fewer elements in map",
        )),
    }
}

struct Items<'de> {
    items: std::slice::Iter<'de, Value>,
    /// The index of the next item.
    index: usize,
}

impl<'de> SeqAccess<'de> for Items<'de> {
    type Error = Refused;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Refused> {
        let Some(item) = self.items.next() else {
            return Ok(None);
        };
        let index = self.index;
        self.index += 1;
        seed.deserialize(Quiet(item))
            .map(Some)
            .map_err(|error| error.within(|| Segment::Item(index)))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct Members<'de> {
    members: serde_json::map::Iter<'de>,
    /// The member whose value is next: its name and value.
    value: Option<(&'de str, &'de Value)>,
}

impl<'de> MapAccess<'de> for Members<'de> {
    type Error = Refused;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Refused> {
        let Some((key, value)) = self.members.next() else {
            return Ok(None);
        };
        self.value = Some((key, value));
        seed.deserialize(BorrowedStrDeserializer::<Refused>::new(key))
            .map(Some)
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, Refused> {
        let Some((name, value)) = self.value.take() else {
            return Err(de::Error::custom(
                "a member's value asked for before its name",
            ));
        };
        seed.deserialize(Quiet(value))
            .map_err(|error| error.within(|| Segment::Member(name.to_owned())))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.members.len())
    }
}

/// An enum's variant: its name, and its content when it was written as a single-key map.
struct Variant<'de> {
    name: &'de str,
    value: Option<&'de Value>,
}

impl<'de> EnumAccess<'de> for Variant<'de> {
    type Error = Refused;
    type Variant = Self;

    fn variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<(T::Value, Self), Refused> {
        let name: StrDeserializer<'de, Refused> = self.name.into_deserializer();
        let variant = seed.deserialize(name)?;
        Ok((variant, self))
    }
}

impl<'de> VariantAccess<'de> for Variant<'de> {
    type Error = Refused;

    fn unit_variant(self) -> Result<(), Refused> {
        match self.value {
            None | Some(Value::Null) => Ok(()),
            Some(other) => Err(mismatch(other, &"unit")),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Refused> {
        match self.value {
            Some(value) => seed.deserialize(Quiet(value)),
            None => Err(de::Error::invalid_type(
                Unexpected::UnitVariant,
                &"newtype variant",
            )),
        }
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Refused> {
        match self.value {
            Some(Value::Array(items)) if items.is_empty() => visitor.visit_unit(),
            Some(Value::Array(items)) => visit_array(items, visitor),
            Some(other) => Err(mismatch(other, &"tuple variant")),
            None => Err(de::Error::invalid_type(
                Unexpected::UnitVariant,
                &"tuple variant",
            )),
        }
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Refused> {
        match self.value {
            Some(Value::Object(map)) => visit_object(map, visitor),
            Some(other) => Err(mismatch(other, &"struct variant")),
            None => Err(de::Error::invalid_type(
                Unexpected::UnitVariant,
                &"struct variant",
            )),
        }
    }
}
