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

    proptest! {
        #[test]
        fn any_text_trims_as_str_trims(text in any::<String>()) {
            prop_assert_eq!(trim(&text), text.trim());
            prop_assert_eq!(is_blank(&text), text.trim().is_empty());
        }
    }
}
