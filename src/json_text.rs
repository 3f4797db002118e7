//! The JSON text of a `serde_json::Value`, byte for byte what `serde_json::to_vec` writes, checking a
//! string's bytes for escapes eight at a time.
//!
//! serde_json looks each byte of a string up in its escape table; a `convert` writes about 4.7 KB of text a
//! row, nearly all of it strings that need no escape, and that lookup was 6.5% of the run's instructions
//! (BENCHMARKS.md, issue 13 thirteenth round). Here a string is copied in runs between the bytes that need
//! an escape, found a machine word at a time. The form is serde_json's compact one: no spaces; `"` and `\`
//! escaped with a backslash; the control characters U+0000–U+001F as `\b \t \n \f \r` or `\u00xx` (lower-case
//! hex); everything else, `/` and non-ASCII included, as it is. Numbers are written as the text
//! `arbitrary_precision` keeps for them (the digits as read), which is what serde_json writes too.
//!
//! `tests::the_text_is_serde_jsons` compares the two on generated values.

use crate::text::{HIGH_BITS, ONES};
use serde_json::Value;
use std::io::Write;

/// `value` as compact JSON text (`serde_json::to_vec`).
pub fn to_vec(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write(value, &mut out);
    out
}

/// `value` as compact JSON text in a `String` (`serde_json::to_string`, `Value`'s `Display`).
pub fn to_string(value: &Value) -> String {
    into_string(to_vec(value))
}

/// Text written by this module as a `String`.
pub fn into_string(text: Vec<u8>) -> String {
    // The text is UTF-8: strings are copied whole or escaped in ASCII, everything else is ASCII.
    String::from_utf8(text)
        .unwrap_or_else(|text| String::from_utf8_lossy(text.as_bytes()).into_owned())
}

/// Append `value` as compact JSON text to `out`.
pub fn write(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(number) => out.extend_from_slice(number.as_str().as_bytes()),
        Value::String(text) => write_str(text, out),
        Value::Array(items) => {
            out.push(b'[');
            for (at, item) in items.iter().enumerate() {
                if at > 0 {
                    out.push(b',');
                }
                write(item, out);
            }
            out.push(b']');
        }
        Value::Object(members) => {
            out.push(b'{');
            for (at, (name, item)) in members.iter().enumerate() {
                if at > 0 {
                    out.push(b',');
                }
                write_str(name, out);
                out.push(b':');
                write(item, out);
            }
            out.push(b'}');
        }
    }
}

/// A JSON string: quoted, with the bytes that need it escaped. Most strings need none (member names,
/// codes, ids, URLs): those are checked a word at a time to their last byte and copied whole.
pub fn write_str(text: &str, out: &mut Vec<u8>) {
    out.reserve(text.len() + 2);
    out.push(b'"');
    if needs_no_escape(text.as_bytes()) {
        out.extend_from_slice(text.as_bytes());
    } else {
        // Writing into a Vec cannot fail.
        let _ = write_escaped(text, out);
    }
    out.push(b'"');
}

/// Whether no byte of `bytes` needs an escape, a word at a time: the last word read overlaps the one
/// before it, and fewer bytes than a word are read padded with a byte that needs none.
fn needs_no_escape(bytes: &[u8]) -> bool {
    let word = |chunk: &[u8]| u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
    let Some(last) = bytes
        .len()
        .checked_sub(8)
        .and_then(|start| bytes.get(start..))
    else {
        let mut padded = [b'a'; 8];
        if let Some(head) = padded.get_mut(..bytes.len()) {
            head.copy_from_slice(bytes);
        }
        return !may_need_escape(u64::from_le_bytes(padded));
    };
    bytes
        .chunks_exact(8)
        .all(|chunk| !may_need_escape(word(chunk)))
        && !may_need_escape(word(last))
}

/// The JSON string of `parts` joined (`"urn:uuid:" + id`) written to `out`, without joining them first.
pub fn write_joined<W: Write>(out: &mut W, parts: &[&str]) -> std::io::Result<()> {
    out.write_all(b"\"")?;
    for part in parts {
        write_escaped(part, out)?;
    }
    out.write_all(b"\"")
}

/// `text` inside a JSON string: runs that need no escape copied as they are, the other bytes escaped.
fn write_escaped<W: Write>(text: &str, out: &mut W) -> std::io::Result<()> {
    let mut rest = text.as_bytes();
    loop {
        let (run, tail) = rest
            .split_at_checked(clean_prefix(rest))
            .unwrap_or((rest, &[]));
        out.write_all(run)?;
        let Some((&byte, after)) = tail.split_first() else {
            return Ok(());
        };
        if let Some(escape) = Escape::of(byte) {
            escape.write(out)?;
        }
        rest = after;
    }
}

/// How many bytes `bytes` starts with that need no escape: eight at a time, then one at a time.
fn clean_prefix(bytes: &[u8]) -> usize {
    let mut clean = 0;
    for chunk in bytes.chunks_exact(8) {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        if may_need_escape(word) {
            break;
        }
        clean += 8;
    }
    let rest = bytes.get(clean..).unwrap_or_default();
    clean
        + rest
            .iter()
            .position(|&byte| NEEDS_ESCAPE[usize::from(byte)])
            .unwrap_or(rest.len())
}

/// The bytes a JSON string escapes: the control characters, `"` and `\`.
static NEEDS_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = true;
        byte += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// Whether one of the eight bytes of `word` is a control character, `"` or `\` (each test below is exact
/// in whether any byte matches; only which bytes it flags can be off, and the caller looks again).
fn may_need_escape(word: u64) -> bool {
    let below = |limit: u8| word.wrapping_sub(ONES * u64::from(limit)) & !word & HIGH_BITS;
    let equal = |byte: u8| {
        let zeroed = word ^ (ONES * u64::from(byte));
        zeroed.wrapping_sub(ONES) & !zeroed & HIGH_BITS
    };
    below(0x20) | equal(b'"') | equal(b'\\') != 0
}

/// How a byte is escaped in a JSON string.
enum Escape {
    /// A backslash and this letter (or the byte itself, for `"` and `\`).
    Short(u8),
    /// `\u00` and the byte in two lower-case hex digits.
    Unicode(u8),
}

impl Escape {
    fn of(byte: u8) -> Option<Escape> {
        Some(match byte {
            b'"' | b'\\' => Escape::Short(byte),
            0x08 => Escape::Short(b'b'),
            b'\t' => Escape::Short(b't'),
            b'\n' => Escape::Short(b'n'),
            0x0C => Escape::Short(b'f'),
            b'\r' => Escape::Short(b'r'),
            0x00..=0x1F => Escape::Unicode(byte),
            _ => return None,
        })
    }

    fn write<W: Write>(self, out: &mut W) -> std::io::Result<()> {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        match self {
            Escape::Short(letter) => out.write_all(&[b'\\', letter]),
            Escape::Unicode(byte) => {
                let digit = |nibble: u8| HEX.get(usize::from(nibble)).copied().unwrap_or(b'0');
                out.write_all(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    digit(byte >> 4),
                    digit(byte & 0x0F),
                ])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn same_as_serde_json(value: &Value) {
        let ours = to_vec(value);
        let theirs = serde_json::to_vec(value).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs)
        );
    }

    /// Every byte that needs an escape, at every position of a word and around word boundaries.
    #[test]
    fn each_escaped_byte_anywhere_in_a_string() {
        let specials: Vec<char> = (0u8..0x20)
            .map(char::from)
            .chain([
                '"', '\\', '/', '\u{7f}', 'é', '€', '😀', ' ', '!', '#', '[', ']',
            ])
            .collect();
        for special in specials {
            for before in 0..18 {
                for after in [0, 1, 7, 8, 9] {
                    let text = format!("{}{special}{}", "a".repeat(before), "b".repeat(after));
                    same_as_serde_json(&Value::String(text));
                }
            }
        }
        same_as_serde_json(&Value::String(String::new()));
        same_as_serde_json(&Value::String("\"\\\n\u{0}\u{1f}".repeat(5)));
    }

    /// The word-at-a-time check against the byte table, for every length up to three words and a byte
    /// that needs an escape (or one that does not) at every position.
    #[test]
    fn a_clean_string_is_told_from_one_that_needs_an_escape_at_any_length() {
        for length in 0..=24 {
            let clean = vec![b'a'; length];
            assert!(needs_no_escape(&clean), "{length} clean bytes");
            for at in 0..length {
                for byte in [0x00, 0x1f, b'"', b'\\', b' ', 0x7f, 0x80, 0xff] {
                    let mut bytes = clean.clone();
                    bytes[at] = byte;
                    let expected = !NEEDS_ESCAPE[usize::from(byte)];
                    assert_eq!(
                        needs_no_escape(&bytes),
                        expected,
                        "{byte:#04x} at {at} of {length}"
                    );
                }
            }
        }
    }

    /// Numbers keep their digits as read (an exponent as serde_json writes it), as serde_json writes them.
    #[test]
    fn numbers_as_read() {
        let text =
            r#"[0,-0,1.50,1e400,-3.25E-10,12345678901234567890123,0.1000000000000000000001,-7]"#;
        let value: Value = serde_json::from_str(text).unwrap();
        same_as_serde_json(&value);
        assert_eq!(
            String::from_utf8(to_vec(&value)).unwrap(),
            text.replace("1e400", "1e+400").replace("E-10", "e-10")
        );
        same_as_serde_json(&serde_json::json!([1.5f64, 2u64, -3i64, f64::MAX]));
    }

    fn any_value() -> impl Strategy<Value = Value> {
        let text = prop_oneof![
            "\\PC*",
            any::<String>(),
            proptest::collection::vec(0u8..0x80, 0..40)
                .prop_map(|bytes| bytes.into_iter().map(char::from).collect()),
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            text.clone().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                proptest::collection::vec((text.clone(), inner), 0..8)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn the_text_is_serde_jsons(value in any_value()) {
            let ours = to_vec(&value);
            prop_assert_eq!(ours, serde_json::to_vec(&value).unwrap());
            prop_assert_eq!(to_string(&value), value.to_string());
        }

        #[test]
        fn joined_parts_are_the_string_of_their_join(parts in proptest::collection::vec(any::<String>(), 0..4)) {
            let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
            let mut ours = Vec::new();
            write_joined(&mut ours, &parts).unwrap();
            prop_assert_eq!(ours, serde_json::to_vec(&parts.concat()).unwrap());
        }
    }

    /// The project's own resources (conformance cases, examples, test data), written both ways.
    #[test]
    fn every_fixture_is_written_as_serde_json_writes_it() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut compared = 0;
        let mut folders = vec![
            root.join("conformance"),
            root.join("examples"),
            root.join("tests"),
        ];
        while let Some(folder) = folders.pop() {
            for path in std::fs::read_dir(&folder)
                .into_iter()
                .flatten()
                .filter_map(Result::ok)
                .map(|entry| entry.path())
            {
                if path.is_dir() {
                    folders.push(path);
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let documents: Vec<&str> = match path.extension().and_then(|e| e.to_str()) {
                    Some("json") => vec![text.as_str()],
                    Some("ndjson") => text.lines().collect(),
                    _ => continue,
                };
                for document in documents {
                    if let Ok(value) = serde_json::from_str::<Value>(document) {
                        same_as_serde_json(&value);
                        compared += 1;
                    }
                }
            }
        }
        assert!(compared > 200, "only {compared} documents compared");
    }
}
