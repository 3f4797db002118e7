//! Trimming text and asking whether it is blank, as `str::trim` answers, without decoding characters at
//! either end when they are printable ASCII (nearly every field and element value).
//!
//! `str::trim` decodes a character at each end and looks it up in Unicode's whitespace table; a `convert`
//! trims every CSV field and checks every output string for blankness, about 1.3% of its instructions
//! (BENCHMARKS.md, issue 13 thirteenth round). A printable ASCII byte (`!` to `~`) is no whitespace, so
//! text that starts and ends with one is its own trim.

/// `text.trim()`.
pub fn trim(text: &str) -> &str {
    match (text.as_bytes().first(), text.as_bytes().last()) {
        (Some(first), Some(last)) if first.is_ascii_graphic() && last.is_ascii_graphic() => text,
        _ => text.trim(),
    }
}

/// `text.trim().is_empty()`: empty, or whitespace only.
pub fn is_blank(text: &str) -> bool {
    match text.as_bytes().first() {
        None => true,
        Some(first) if first.is_ascii_graphic() => false,
        Some(_) => text.trim().is_empty(),
    }
}

/// Eight ones, one in each byte of a word: `ONES * n` puts `n` in every byte.
pub(crate) const ONES: u64 = 0x0101_0101_0101_0101;
/// The high bit of every byte of a word.
pub(crate) const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// Whether every byte of `text` is printable ASCII or space (0x20 to 0x7E: no control character, DEL
/// included), eight bytes at a time.
pub fn is_printable_ascii(text: &str) -> bool {
    // DEL, 0x7F, is the one byte from 0x20 up that is not printable: added one, it alone reaches 0x80.
    let printable = |word: u64| {
        let below_space = word.wrapping_sub(ONES * 0x20);
        (below_space | word | (word & !HIGH_BITS).wrapping_add(ONES)) & HIGH_BITS == 0
    };
    every_word(text, printable, |byte| (0x20..0x7F).contains(&byte))
}

/// Whether every byte of `text` is ASCII and at least `lowest` (`0x21`: no whitespace, no control
/// character), eight bytes at a time. A quick yes for the checks of FHIR's primitive types, which look at
/// the characters when it says no.
pub fn is_ascii_from(text: &str, lowest: u8) -> bool {
    // A byte below `lowest` borrows into its high bit; a byte of 0x80 or more has it already.
    let in_range =
        |word: u64| (word.wrapping_sub(ONES * u64::from(lowest)) | word) & HIGH_BITS == 0;
    every_word(text, in_range, |byte| (lowest..0x80).contains(&byte))
}

/// Whether `word_ok` holds for each eight bytes of `text` (read as a little-endian word) and `byte_ok`
/// for each of the last bytes that make no whole word.
fn every_word(text: &str, word_ok: impl Fn(u64) -> bool, byte_ok: impl Fn(u8) -> bool) -> bool {
    let chunks = text.as_bytes().chunks_exact(8);
    let rest = chunks.remainder();
    chunks
        .map(|chunk| u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8])))
        .all(word_ok)
        && rest.iter().all(|&byte| byte_ok(byte))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EDGES: [&str; 16] = [
        "",
        " ",
        "a",
        " a ",
        "a ",
        " a",
        "\u{b}x\u{b}",
        "\u{a0}x",
        "x\u{3000}",
        "\u{85}",
        "\t\n\r",
        "é",
        " é ",
        "a b",
        "~",
        "\u{b}",
    ];

    #[test]
    fn edges_trim_as_str_trims() {
        for text in EDGES {
            assert_eq!(trim(text), text.trim(), "{text:?}");
            assert_eq!(is_blank(text), text.trim().is_empty(), "{text:?}");
        }
    }

    #[test]
    fn ascii_from_a_lowest_byte_is_each_byte_in_range() {
        let texts = [
            "",
            "a",
            "abcdefgh",
            "abcdefghi",
            "abc defghij",
            "abcdefg\u{7f}",
            "é",
            "abcdefgé",
        ];
        for text in texts {
            for lowest in [0x00, 0x20, 0x21, 0x61, 0x80] {
                let expected = text.bytes().all(|b| (lowest..0x80).contains(&b));
                assert_eq!(
                    is_ascii_from(text, lowest),
                    expected,
                    "{text:?} from {lowest:#x}"
                );
            }
        }
    }

    #[test]
    fn printable_ascii_is_each_byte_from_space_to_tilde() {
        for byte in 0u8..=0xFF {
            for at in [0, 3, 7, 8, 12] {
                let mut bytes = b"abcdefghijklmno".to_vec();
                if let Some(slot) = bytes.get_mut(at) {
                    *slot = byte;
                }
                let Ok(text) = String::from_utf8(bytes.clone()) else {
                    continue;
                };
                let expected = bytes.iter().all(|b| (0x20..0x7F).contains(b));
                assert_eq!(is_printable_ascii(&text), expected, "{byte:#x} at {at}");
            }
        }
    }

    proptest! {
        #[test]
        fn any_text_is_printable_ascii_as_its_bytes_say(text in any::<String>()) {
            let expected = text.bytes().all(|b| (0x20..0x7F).contains(&b));
            prop_assert_eq!(is_printable_ascii(&text), expected);
        }

        #[test]
        fn any_text_is_ascii_from_as_its_bytes_say(text in any::<String>(), lowest in 0u8..=0x80) {
            let expected = text.bytes().all(|b| (lowest..0x80).contains(&b));
            prop_assert_eq!(is_ascii_from(&text, lowest), expected);
        }

        #[test]
        fn any_text_trims_as_str_trims(text in any::<String>()) {
            prop_assert_eq!(trim(&text), text.trim());
            prop_assert_eq!(is_blank(&text), text.trim().is_empty());
        }
    }
}
