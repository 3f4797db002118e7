//! The R4 schema's patterns for its string primitive types (`string`, `code`, `id`, `uri` and the others
//! without whitespace, `date`, `dateTime`, `instant`, `time`, `uuid`, `oid`, `base64Binary`), checked by
//! hand instead of by a regular expression.
//!
//! The schema compiler runs each `pattern` through a regex engine (with ECMA-262 meanings for `\s` and
//! `\S`), shared by every thread through a pool: about 7% of `validate` went there. The schema is loaded
//! with those patterns moved to the [`KEYWORD`] keyword, whose check is the same language written out;
//! the refusal reads as the pattern's did (`"x y" does not match "^[^\s]+(\s[^\s]+)*$"`), wherever the
//! schema writes it. A pattern beside a `number` or `boolean` type is dropped (it can never apply); any
//! other pattern stays a pattern. The tests hold each check to the schema compiler's own verdict on the
//! pattern, over every Unicode character and thousands of edited dates.

use jsonschema::paths::Location;
use jsonschema::{Keyword, ValidationError};
use serde_json::{Map, Value};

/// The schema keyword a known pattern is moved to (a definition's, or a property's that repeats it); its
/// value is the pattern's text.
pub const KEYWORD: &str = "x-onedoor-pattern";

/// A primitive type's pattern, known by its exact text in the R4 schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Primitive {
    /// `^[ \r\n\t\S]+$` (`string`, `markdown`): not empty; no whitespace but space, CR, LF and tab.
    Text,
    /// `^[^\s]+(\s[^\s]+)*$` (`code`): words separated by single whitespace characters.
    Code,
    /// `^[A-Za-z0-9\-\.]{1,64}$` (`id`).
    Id,
    /// `^\S*$` (`uri`, `url`, `canonical`, `oid`, `uuid`...): no whitespace at all.
    NoSpace,
    /// `date`: `YYYY`, `YYYY-MM` or `YYYY-MM-DD`.
    Date,
    /// `dateTime`: a date, or a full date with a time and a zone.
    DateTime,
    /// `instant`: a full date with a time and a zone.
    Instant,
    /// `time`: `hh:mm:ss` with optional fractions, no zone.
    Time,
    /// `uuid`: `urn:uuid:` and a lower-case UUID.
    Uuid,
    /// `oid`: `urn:oid:` and dotted numbers, the first 0–2, none with a leading zero.
    Oid,
    /// `base64Binary`: groups of four base64 characters, whitespace between groups only.
    Base64,
}

const TEXT: &str = r"^[ \r\n\t\S]+$";
const CODE: &str = r"^[^\s]+(\s[^\s]+)*$";
const ID: &str = r"^[A-Za-z0-9\-\.]{1,64}$";
const NO_SPACE: &str = r"^\S*$";
const DATE: &str = r"^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1]))?)?$";
const DATE_TIME: &str = r"^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?$";
const INSTANT: &str = r"^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))$";
const TIME: &str = r"^([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?$";
const UUID: &str = r"^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$";
const OID: &str = r"^urn:oid:[0-2](\.(0|[1-9][0-9]*))+$";
const BASE64: &str = r"^(\s*([0-9a-zA-Z\+/=]){4}\s*)+$";

/// Every pattern checked by hand, with its check.
pub const KNOWN: &[(&str, Primitive)] = &[
    (TEXT, Primitive::Text),
    (CODE, Primitive::Code),
    (ID, Primitive::Id),
    (NO_SPACE, Primitive::NoSpace),
    (DATE, Primitive::Date),
    (DATE_TIME, Primitive::DateTime),
    (INSTANT, Primitive::Instant),
    (TIME, Primitive::Time),
    (UUID, Primitive::Uuid),
    (OID, Primitive::Oid),
    (BASE64, Primitive::Base64),
];

impl Primitive {
    /// The check written out for this exact pattern text, if there is one.
    pub fn for_pattern(pattern: &str) -> Option<Self> {
        KNOWN
            .iter()
            .find(|(text, _)| *text == pattern)
            .map(|(_, primitive)| *primitive)
    }

    /// Whether `text` matches the pattern.
    pub fn matches(self, text: &str) -> bool {
        match self {
            Self::Text => is_text(text),
            Self::Code => is_code(text),
            Self::Id => {
                (1..=64).contains(&text.len())
                    && text
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            }
            Self::NoSpace => has_no_space(text),
            Self::Date => whole(text.as_bytes(), date),
            Self::DateTime => whole(text.as_bytes(), date_time),
            Self::Instant => whole(text.as_bytes(), instant),
            Self::Time => whole(text.as_bytes(), time),
            Self::Uuid => text.strip_prefix("urn:uuid:").is_some_and(is_lower_uuid),
            Self::Oid => text.strip_prefix("urn:oid:").is_some_and(is_oid),
            Self::Base64 => is_base64(text),
        }
    }
}

/// Prepare the patterns of the schema's definitions, at every depth (a primitive type's definition, and the
/// same patterns written again on the properties that inline them, such as `Extension.valueCode`): a known
/// pattern moves to [`KEYWORD`], checked by hand; a pattern beside a `type` of `number`, `integer` or
/// `boolean` (the schema's `boolean`, `integer`, `decimal`, `positiveInt` and `unsignedInt`) is removed,
/// as `pattern` applies to strings only and such a `type` refuses every string already. Every
/// instance is valid or not as before, and no regular expression is compiled for either (each resource
/// type's validator compiled its own: 150 at the start of a referral conversion, a quarter of its
/// start-up's instructions; BENCHMARKS.md, issue 13, nineteenth round). Patterns that are neither stay.
pub fn prepare_patterns(definitions: &mut Map<String, Value>) {
    for definition in definitions.values_mut() {
        prepare_patterns_in(definition);
    }
}

/// Keywords whose values are instances, not schemas: a `pattern` inside them is data, left as it is.
const INSTANCE_KEYWORDS: [&str; 4] = ["enum", "const", "default", "examples"];

fn prepare_patterns_in(schema: &mut Value) {
    match schema {
        Value::Object(object) => {
            prepare_pattern(object);
            (object.iter_mut())
                .filter(|(name, _)| !INSTANCE_KEYWORDS.contains(&name.as_str()))
                .for_each(|(_, value)| prepare_patterns_in(value));
        }
        Value::Array(items) => items.iter_mut().for_each(prepare_patterns_in),
        _ => {}
    }
}

/// One schema object's `pattern` (a string; a property named `pattern` holds an object and is left).
fn prepare_pattern(object: &mut Map<String, Value>) {
    let Some(pattern) = object.get("pattern").and_then(Value::as_str) else {
        return;
    };
    let not_for_strings = object
        .get("type")
        .and_then(Value::as_str)
        .is_some_and(|kind| matches!(kind, "number" | "integer" | "boolean"));
    let known = Primitive::for_pattern(pattern).is_some();
    if not_for_strings {
        object.remove("pattern");
    } else if known && let Some(pattern) = object.remove("pattern") {
        object.insert(KEYWORD.to_owned(), pattern);
    }
}

/// The schema compiler's factory for [`KEYWORD`].
pub fn keyword<'a>(
    _parent: &'a Map<String, Value>,
    value: &'a Value,
    _location: Location,
) -> Result<Box<dyn for<'i> Keyword<'i>>, ValidationError<'a>> {
    let pattern = value.as_str().unwrap_or_default();
    match Primitive::for_pattern(pattern) {
        Some(primitive) => Ok(Box::new(PatternCheck {
            primitive,
            pattern: pattern.to_owned(),
        })),
        None => Err(ValidationError::schema(format!(
            "{KEYWORD}: '{pattern}' is not a pattern checked by hand"
        ))),
    }
}

/// One definition's hand-written pattern check.
struct PatternCheck {
    primitive: Primitive,
    pattern: String,
}

impl<'i> Keyword<'i> for PatternCheck {
    fn validate(&self, instance: &'i Value) -> Result<(), ValidationError<'i>> {
        if self.is_valid(instance) {
            return Ok(());
        }
        Err(ValidationError::custom(format!(
            r#"{instance} does not match "{}""#,
            self.pattern
        )))
    }

    /// Like `pattern`, this applies to strings only.
    fn is_valid(&self, instance: &'i Value) -> bool {
        instance
            .as_str()
            .is_none_or(|text| self.primitive.matches(text))
    }
}

/// What `\s` means in the schema's patterns (ECMA-262: its WhiteSpace and LineTerminator characters).
fn is_space(c: char) -> bool {
    jsonschema_regex::is_ecma_whitespace(c)
}

/// ASCII's whitespace by `\s`'s meaning: tab, LF, VT, FF, CR, space.
fn is_ascii_space(byte: u8) -> bool {
    matches!(byte, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ')
}

/// `^[ \r\n\t\S]+$`: not empty, no whitespace but space, CR, LF and tab (all-ASCII text read as bytes).
fn is_text(text: &str) -> bool {
    let allowed = |c: char| !is_space(c) || matches!(c, ' ' | '\r' | '\n' | '\t');
    if !text.is_empty() && crate::text::is_ascii_from(text, 0x20) {
        return true;
    }
    !text.is_empty()
        && if text.is_ascii() {
            !text.bytes().any(|b| matches!(b, 0x0b | 0x0c))
        } else {
            text.chars().all(allowed)
        }
}

/// `[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}` and nothing after it.
fn is_lower_uuid(text: &str) -> bool {
    let hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    text.len() == 36
        && (text.bytes().enumerate()).all(|(at, b)| {
            if [8, 13, 18, 23].contains(&at) {
                b == b'-'
            } else {
                hex(b)
            }
        })
}

/// `[0-2](\.(0|[1-9][0-9]*))+` and nothing after it.
fn is_oid(text: &str) -> bool {
    let mut arcs = text.split('.');
    let first_is_root = arcs
        .next()
        .is_some_and(|root| matches!(root, "0" | "1" | "2"));
    let number = |arc: &str| {
        arc == "0"
            || (arc.starts_with(|c: char| matches!(c, '1'..='9'))
                && arc.bytes().all(|b| b.is_ascii_digit()))
    };
    first_is_root && text.contains('.') && arcs.all(number)
}

/// `^(\s*([0-9a-zA-Z\+/=]){4}\s*)+$`: at least one group; each run of characters between whitespace is
/// base64 characters, a whole number of groups of four (whitespace is `\s`'s, as the schema compiler reads it).
fn is_base64(text: &str) -> bool {
    let base64 = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=');
    let mut runs = text
        .split(is_space)
        .filter(|run| !run.is_empty())
        .peekable();
    runs.peek().is_some() && runs.all(|run| run.len() % 4 == 0 && run.chars().all(base64))
}

/// `^\S*$`: no whitespace (all-ASCII text read as bytes).
fn has_no_space(text: &str) -> bool {
    if crate::text::is_ascii_from(text, 0x21) {
        return true;
    }
    if text.is_ascii() {
        return !text.bytes().any(is_ascii_space);
    }
    !text.chars().any(is_space)
}

/// `^[^\s]+(\s[^\s]+)*$`: not empty, no whitespace at either end, never two in a row.
fn is_code(text: &str) -> bool {
    if !text.is_empty() && crate::text::is_ascii_from(text, 0x21) {
        return true;
    }
    if text.is_ascii() {
        return words(text.bytes().map(is_ascii_space));
    }
    words(text.chars().map(is_space))
}

/// Whether a text whose characters are whitespace or not as `spaces` says is words separated by single
/// whitespace characters.
fn words(spaces: impl Iterator<Item = bool>) -> bool {
    let mut previous_space = true;
    for space in spaces {
        if space && previous_space {
            return false;
        }
        previous_space = space;
    }
    !previous_space
}

/// A grammar step: the rest after it, or `None` when the text does not go on this way.
type Step = fn(&[u8]) -> Option<&[u8]>;

fn whole(text: &[u8], step: Step) -> bool {
    step(text).is_some_and(<[u8]>::is_empty)
}

/// `YYYY(-MM(-DD)?)?`.
fn date(text: &[u8]) -> Option<&[u8]> {
    let rest = year(text)?;
    let Some(rest) = then(rest, b'-', month) else {
        return Some(rest);
    };
    Some(then(rest, b'-', day).unwrap_or(rest))
}

/// `YYYY(-MM(-DD(Thh:mm:ss(.s+)?zone)?)?)?`.
fn date_time(text: &[u8]) -> Option<&[u8]> {
    let rest = year(text)?;
    let Some(rest) = then(rest, b'-', month) else {
        return Some(rest);
    };
    let Some(rest) = then(rest, b'-', day) else {
        return Some(rest);
    };
    Some(then(rest, b'T', time).and_then(zone).unwrap_or(rest))
}

/// `YYYY-MM-DDThh:mm:ss(.s+)?zone`.
fn instant(text: &[u8]) -> Option<&[u8]> {
    let rest = then(year(text)?, b'-', month)?;
    let rest = then(rest, b'-', day)?;
    zone(then(rest, b'T', time)?)
}

/// `hh:mm:ss(.s+)?`.
fn time(text: &[u8]) -> Option<&[u8]> {
    let rest = two_digits(text, 0, 23)?;
    let rest = two_digits(rest.strip_prefix(b":")?, 0, 59)?;
    let rest = two_digits(rest.strip_prefix(b":")?, 0, 60)?;
    let Some(fraction) = rest.strip_prefix(b".") else {
        return Some(rest);
    };
    let digits = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
    (digits > 0).then(|| &fraction[digits..])
}

/// `Z`, or `+hh:mm` / `-hh:mm` from 00:00 to 13:59, or 14:00.
fn zone(text: &[u8]) -> Option<&[u8]> {
    if let Some(rest) = text.strip_prefix(b"Z") {
        return Some(rest);
    }
    let rest = text
        .strip_prefix(b"+")
        .or_else(|| text.strip_prefix(b"-"))?;
    if let Some(rest) = rest.strip_prefix(b"14:00") {
        return Some(rest);
    }
    let rest = two_digits(rest, 0, 13)?;
    two_digits(rest.strip_prefix(b":")?, 0, 59)
}

/// Four digits, not `0000`.
fn year(text: &[u8]) -> Option<&[u8]> {
    let (digits, rest) = text.split_at_checked(4)?;
    (digits.iter().all(u8::is_ascii_digit) && digits != b"0000").then_some(rest)
}

fn month(text: &[u8]) -> Option<&[u8]> {
    two_digits(text, 1, 12)
}

fn day(text: &[u8]) -> Option<&[u8]> {
    two_digits(text, 1, 31)
}

/// `separator` then `step`, or `None` (the optional part is absent or does not parse).
fn then(text: &[u8], separator: u8, step: Step) -> Option<&[u8]> {
    step(text.strip_prefix(&[separator])?)
}

/// Two ASCII digits whose value is between `low` and `high`.
fn two_digits(text: &[u8], low: u8, high: u8) -> Option<&[u8]> {
    let (&[tens, units], rest) = text.split_first_chunk::<2>()?;
    let value = (tens.is_ascii_digit() && units.is_ascii_digit())
        .then(|| (tens - b'0') * 10 + (units - b'0'))?;
    (low..=high).contains(&value).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The schema compiler's own verdict on `pattern` (the reference the checks are held to).
    fn compiled(pattern: &str) -> jsonschema::Validator {
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft6)
            .with_pattern_options(jsonschema::PatternOptions::regex())
            .build(&json!({"type": "string", "pattern": pattern}))
            .expect("the R4 pattern compiles")
    }

    fn assert_agree(pattern: &str, primitive: Primitive, text: &str) {
        let expected = compiled_cache(pattern).is_valid(&json!(text));
        assert_eq!(
            primitive.matches(text),
            expected,
            "{primitive:?} on {text:?} (the compiled pattern says {expected})"
        );
    }

    fn compiled_cache(pattern: &str) -> &'static jsonschema::Validator {
        use std::collections::HashMap;
        use std::sync::{Mutex, OnceLock};
        static CACHE: OnceLock<Mutex<HashMap<String, &'static jsonschema::Validator>>> =
            OnceLock::new();
        let mut cache = CACHE.get_or_init(Default::default).lock().unwrap();
        cache
            .entry(pattern.to_owned())
            .or_insert_with(|| Box::leak(Box::new(compiled(pattern))))
    }

    /// Every pattern of the vendored schema, at any depth, with the `type` beside it.
    fn schema_patterns(value: &Value, found: &mut Vec<(String, Option<String>)>) {
        match value {
            Value::Object(members) => {
                if let Some(pattern) = members.get("pattern").and_then(Value::as_str) {
                    let kind = members.get("type").and_then(Value::as_str);
                    found.push((pattern.to_owned(), kind.map(str::to_owned)));
                }
                members.values().for_each(|v| schema_patterns(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| schema_patterns(v, found)),
            _ => {}
        }
    }

    #[test]
    fn the_known_patterns_are_the_vendored_schemas_and_every_string_pattern_is_known() {
        let schema: Value =
            serde_json::from_str(include_str!("../../schemas/fhir.schema.v4.json")).unwrap();
        let mut found = Vec::new();
        schema_patterns(&schema["definitions"], &mut found);
        assert!(found.len() > 300, "{}", found.len());
        for (pattern, primitive) in KNOWN {
            assert!(
                found.iter().any(|(p, _)| p == pattern),
                "{primitive:?}: {pattern} is not in the schema"
            );
        }
        // With every string pattern checked by hand, no regular expression is compiled at start-up.
        for (pattern, kind) in &found {
            let string = kind.as_deref().is_none_or(|k| k == "string");
            assert!(
                !string || Primitive::for_pattern(pattern).is_some(),
                "{pattern} ({kind:?}) is a string pattern not checked by hand"
            );
        }
    }

    #[test]
    fn every_character_alone_and_between_letters_is_judged_as_the_pattern_judges_it() {
        let text_like = [
            (compiled_cache(TEXT), Primitive::Text),
            (compiled_cache(CODE), Primitive::Code),
            (compiled_cache(ID), Primitive::Id),
            (compiled_cache(NO_SPACE), Primitive::NoSpace),
            (compiled_cache(BASE64), Primitive::Base64),
        ];
        // 17 million checks: the code points are split between two threads (the debug build's
        // unoptimized dependencies make each check slow).
        let judge_range = |range: std::ops::RangeInclusive<u32>| {
            let mut checked = 0_u64;
            for c in range.filter_map(char::from_u32) {
                for (pattern, primitive) in text_like {
                    for text in [
                        c.to_string(),
                        format!("a{c}b"),
                        format!("a {c}"),
                        format!("{c}{c}"),
                    ] {
                        let expected = pattern.is_valid(&Value::String(text.clone()));
                        assert_eq!(
                            primitive.matches(&text),
                            expected,
                            "{primitive:?} on {text:?} (U+{:04X}): the compiled pattern says {expected}",
                            c as u32
                        );
                        checked += 1;
                    }
                }
            }
            checked
        };
        let checked: u64 = std::thread::scope(|scope| {
            let halves = [0..=0x87FFF_u32, 0x88000..=0x10FFFF];
            let workers = halves.map(|half| scope.spawn(move || judge_range(half)));
            workers
                .into_iter()
                .map(|worker| worker.join().unwrap())
                .sum()
        });
        assert!(checked > 17_000_000, "{checked}");
    }

    #[test]
    fn texts_around_the_edges_are_judged_as_the_patterns_judge_them() {
        let long_id = "a".repeat(64);
        let too_long_id = "a".repeat(65);
        let samples = [
            "",
            " ",
            "a",
            " a",
            "a ",
            "a  b",
            "a b c",
            "a\tb",
            "a\t\tb",
            "a\r\nb",
            "\n",
            "ok\u{a0}",
            "x\u{feff}",
            "x\u{85}y",
            "über",
            "a-b.c",
            "a_b",
            &long_id,
            &too_long_id,
            "ABC-123",
            "a/b",
        ];
        for text in samples {
            for (pattern, primitive) in KNOWN {
                assert_agree(pattern, *primitive, text);
            }
        }
    }

    /// Each seed, and each seed with one character removed, one of `alphabet` inserted or put in its
    /// place at every position, and each of its proper prefixes.
    fn edited_every_way(seeds: &[&str], alphabet: &[char]) -> Vec<String> {
        let mut texts = Vec::new();
        for seed in seeds {
            let chars: Vec<char> = seed.chars().collect();
            let edit = |f: &dyn Fn(&mut Vec<char>)| {
                let mut edited = chars.clone();
                f(&mut edited);
                edited.into_iter().collect::<String>()
            };
            texts.push((*seed).to_owned());
            for at in 0..=chars.len() {
                if at < chars.len() {
                    texts.push(edit(&|c| {
                        c.remove(at);
                    }));
                    texts.push(chars[..at].iter().collect());
                }
                for &letter in alphabet {
                    texts.push(edit(&|c| c.insert(at, letter)));
                    if at < chars.len() {
                        texts.push(edit(&|c| c[at] = letter));
                    }
                }
            }
        }
        texts
    }

    /// Every known pattern's check judges each of `texts` as the schema compiler judges the pattern.
    fn assert_every_known_pattern_agrees(texts: &[String]) {
        for (pattern, primitive) in KNOWN {
            for text in texts {
                assert_agree(pattern, *primitive, text);
            }
        }
        assert!(texts.len() > 5_000, "{}", texts.len());
    }

    #[test]
    fn dates_and_times_edited_every_way_are_judged_as_the_patterns_judge_them() {
        let seeds = [
            "2024",
            "0001",
            "1000",
            "2024-01",
            "2024-12-31",
            "2024-02-29T23:59:60Z",
            "2024-06-01T00:00:00.123+14:00",
            "2024-06-01T10:30:00-13:59",
            "1999-09-09T09:09:09.9+05:30",
            "12:00:00",
            "23:59:59.999",
            "00:00:60",
            "2024-06-01T10:30:00",
            "2024-06-01T10:30Z",
        ];
        let alphabet: Vec<char> = "0123456789-:.TZ+ 4x".chars().collect();
        let mut texts = edited_every_way(&seeds, &alphabet);
        for field in 0..100 {
            texts.push(format!("{field:02}:00:00"));
            texts.push(format!("2024-{field:02}"));
            texts.push(format!("2024-01-{field:02}"));
            texts.push(format!("2024-01-01T00:{field:02}:00+{field:02}:00"));
            texts.push(format!("2024-01-01T00:00:{field:02}Z"));
            texts.push(format!("2024-01-01T00:00:00-{field:02}:{field:02}"));
        }
        assert_every_known_pattern_agrees(&texts);
    }

    #[test]
    fn uuids_oids_and_base64_edited_every_way_are_judged_as_the_patterns_judge_them() {
        let seeds = [
            "urn:uuid:0f8fad5b-d9cb-469f-a165-70867728950e",
            "urn:oid:2.16.840.1.113883.4.1",
            "urn:oid:1.0",
            "urn:oid:0.10.0",
            "abcd",
            "ab+/ cd==",
            " QUJD\tREVG\n",
            "abcdefgh",
            "YQ==\u{a0}YWI=\u{2028}YWJj",
        ];
        let alphabet = [
            'a', 'f', 'g', 'A', '0', '1', '9', '-', '.', ':', '+', '/', '=', ' ', '\t', '\n',
            '\u{a0}', '\u{feff}', '\u{2028}', '\u{85}', 'é', '_',
        ];
        let texts = edited_every_way(&seeds, &alphabet);
        assert_every_known_pattern_agrees(&texts);
    }

    #[test]
    fn patterns_are_prepared_at_every_depth_and_the_keyword_refuses_as_the_pattern_did() {
        let mut definitions = Map::new();
        definitions.insert("code".into(), json!({"pattern": CODE, "type": "string"}));
        definitions.insert(
            "oid".into(),
            json!({"pattern": "^[a-z]+$", "type": "string"}),
        );
        definitions.insert(
            "Extension".into(),
            json!({"properties": {
                "valueCode": {"pattern": CODE, "type": "string"},
                "valueBoolean": {"pattern": "^true|false$", "type": "boolean"},
                "valueInteger": {"pattern": "^-?([0]|([1-9][0-9]*))$", "type": "number"},
                "valueOid": {"pattern": "^[a-z]+$", "type": "string"},
                "pattern": {"$ref": "#/definitions/code"},
                "valueData": {"enum": [{"pattern": CODE, "type": "boolean"}], "const": {"pattern": CODE}}
            }}),
        );
        prepare_patterns(&mut definitions);
        assert_eq!(
            definitions["code"],
            json!({"x-onedoor-pattern": CODE, "type": "string"})
        );
        assert_eq!(
            definitions["Extension"]["properties"],
            json!({
                "valueCode": {"x-onedoor-pattern": CODE, "type": "string"},
                "valueBoolean": {"type": "boolean"},
                "valueInteger": {"type": "number"},
                "valueOid": {"pattern": "^[a-z]+$", "type": "string"},
                "pattern": {"$ref": "#/definitions/code"},
                "valueData": {"enum": [{"pattern": CODE, "type": "boolean"}], "const": {"pattern": CODE}}
            }),
            "known patterns moved at any depth, those beside a type that is not string dropped, others kept, \
             a property named pattern and instances under enum and const left"
        );
        assert!(
            definitions["oid"].get("pattern").is_some(),
            "a pattern not written out stays a pattern"
        );
        let validator = jsonschema::options()
            .with_keyword(KEYWORD, keyword)
            .build(&json!({"properties": {"status": {"x-onedoor-pattern": CODE}}}))
            .unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&json!({"status": "two  spaces"}))
            .map(|e| format!("{} {e}", e.instance_path()))
            .collect();
        assert_eq!(
            errors,
            [format!(r#"/status "two  spaces" does not match "{CODE}""#)]
        );
        assert!(validator.is_valid(&json!({"status": 12})));
        assert!(validator.is_valid(&json!({"status": "active"})));
        assert!(
            jsonschema::options()
                .with_keyword(KEYWORD, keyword)
                .build(&json!({"x-onedoor-pattern": "^[a-z]+$"}))
                .is_err(),
            "an unknown pattern text under the keyword is a schema error"
        );
    }
}
