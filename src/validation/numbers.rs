//! FHIR numbers that FHIR cannot hold are refused, never rounded. JSON numbers keep their exact text
//! (serde_json's `arbitrary_precision`), so a decimal is passed on as written: every JSON number matches
//! the R4 decimal pattern `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, which sets no limit on digits
//! or exponent (`1e-999999` is a decimal, kept as it is). The integer types are bounded: `integer` is
//! a 32-bit signed whole number written without fraction or exponent (`-?(0|[1-9][0-9]*)`),
//! `unsignedInt` the same from 0, `positiveInt` from 1, all up to 2,147,483,647.

use super::FhirSchema;
use std::cell::RefCell;
use std::collections::HashMap;

/// How many element paths the per-thread cache of element types keeps (hostile input can name any
/// number of unknown elements; past this they are looked up each time).
const CACHE_LIMIT: usize = 4096;

thread_local! {
    static INTEGER_TYPES: RefCell<HashMap<String, Option<&'static str>>> = RefCell::new(HashMap::new());
}

/// The integer type (`integer`, `unsignedInt`, `positiveInt`) of the element at `path` of a
/// `resource_type`, `None` for any other type; cached per thread (a schema walk per number is costly).
pub fn integer_type(resource_type: &str, path: &[&str]) -> Option<&'static str> {
    let mut key = String::with_capacity(64);
    key.push_str(resource_type);
    for name in path {
        key.push('.');
        key.push_str(name);
    }
    if let Some(found) = INTEGER_TYPES.with(|cache| cache.borrow().get(&key).copied()) {
        return found;
    }
    let found = element_type(resource_type, path).and_then(|kind| {
        ["integer", "unsignedInt", "positiveInt"]
            .into_iter()
            .find(|k| *k == kind)
    });
    INTEGER_TYPES.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.len() < CACHE_LIMIT {
            cache.insert(key, found);
        }
    });
    found
}

/// What is wrong with `number` (its exact JSON text) as a value of the FHIR type `type_name`; `None`
/// when FHIR can hold it (or the type is not numeric: the schema speaks for the others).
pub fn problem(type_name: &str, number: &str) -> Option<String> {
    let (minimum, expected) = match type_name {
        "integer" => (
            i64::from(i32::MIN),
            "a whole number from -2147483648 to 2147483647",
        ),
        "unsignedInt" => (0, "a whole number from 0 to 2147483647"),
        "positiveInt" => (1, "a whole number from 1 to 2147483647"),
        _ => return None,
    };
    let whole = whole_number(number);
    let held = whole.is_some_and(|n| n >= minimum && n <= i64::from(i32::MAX));
    (!held).then(|| {
        format!(
            "{number} cannot be held by a FHIR {type_name} (expected {expected}, written without fraction or exponent); refused, not rounded"
        )
    })
}

/// The value of `-?(0|[1-9][0-9]*)` text, `None` for anything else (or beyond i64).
fn whole_number(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let canonical = digits == "0" || (digits.starts_with(|c: char| ('1'..='9').contains(&c)));
    if !canonical || !digits.bytes().all(|b| b.is_ascii_digit()) || text == "-0" {
        return None;
    }
    text.parse().ok()
}

/// The FHIR type of the element at `path` (element names, no indexes) of a `resource_type`. The schema
/// writes the numeric choices (`valueInteger`) inline as `number`: their type is the name's suffix.
pub fn element_type(resource_type: &str, path: &[&str]) -> Option<String> {
    let info = FhirSchema::global().element(resource_type, path).ok()?;
    if info.type_name != "number" {
        return Some(info.type_name);
    }
    let name = path.last()?;
    let by_suffix = [
        ("PositiveInt", "positiveInt"),
        ("UnsignedInt", "unsignedInt"),
        ("Integer", "integer"),
        ("Decimal", "decimal"),
    ];
    by_suffix
        .iter()
        .find(|(suffix, _)| name.ends_with(suffix))
        .map(|(_, kind)| (*kind).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_bounded_and_decimals_are_not() {
        for (kind, text) in [
            ("integer", "0"),
            ("integer", "-2147483648"),
            ("integer", "2147483647"),
            ("unsignedInt", "0"),
            ("positiveInt", "1"),
            ("decimal", "123456789012345678901234567890.5"),
            ("decimal", "1e-999999"),
        ] {
            assert_eq!(problem(kind, text), None, "{kind} {text}");
        }
        for (kind, text) in [
            ("integer", "2147483648"),
            ("integer", "1.5"),
            ("integer", "1.0"),
            ("integer", "1e3"),
            ("integer", "-0"),
            ("integer", "99999999999999999999999"),
            ("unsignedInt", "-1"),
            ("positiveInt", "0"),
        ] {
            let message = problem(kind, text).unwrap_or_default();
            assert!(message.contains("refused, not rounded"), "{kind} {text}");
        }
    }

    #[test]
    fn integer_types_are_cached_per_path() {
        for _ in 0..2 {
            assert_eq!(integer_type("Bundle", &["total"]), Some("unsignedInt"));
            assert_eq!(
                integer_type("Observation", &["valueQuantity", "value"]),
                None
            );
            assert_eq!(integer_type("Observation", &["no", "such"]), None);
        }
    }

    #[test]
    fn element_types_come_from_the_schema() {
        assert_eq!(
            element_type("Bundle", &["total"]).as_deref(),
            Some("unsignedInt")
        );
        assert_eq!(
            element_type("Patient", &["extension", "valueInteger"]).as_deref(),
            Some("integer")
        );
        assert_eq!(
            element_type("Observation", &["valueQuantity", "value"]).as_deref(),
            Some("decimal")
        );
        assert_eq!(
            element_type("Task", &["input", "valuePositiveInt"]).as_deref(),
            Some("positiveInt")
        );
    }
}
