//! `json_contains`: does the actual JSON contain the expected JSON? Objects must have every expected key
//! with a containing value; every element of an expected array must be contained by some element of the
//! actual array (order does not matter); scalars must be equal. Failures name the JSON path.

use serde_json::Value;

/// `Ok` when `actual` contains `expected`, else the path and reason of the first difference.
pub fn contains(actual: &Value, expected: &Value) -> Result<(), String> {
    contains_at(actual, expected, "")
}

fn contains_at(actual: &Value, expected: &Value, path: &str) -> Result<(), String> {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => {
            for (key, want) in e {
                let here = format!("{path}/{key}");
                let got = a.get(key).ok_or_else(|| format!("{here}: missing"))?;
                contains_at(got, want, &here)?;
            }
            Ok(())
        }
        (Value::Array(a), Value::Array(e)) => {
            for (index, want) in e.iter().enumerate() {
                if !a.iter().any(|got| contains_at(got, want, "").is_ok()) {
                    let closest = a
                        .iter()
                        .map(|got| contains_at(got, want, &format!("{path}/*")))
                        .find_map(Result::err);
                    return Err(format!(
                        "{path}/{index}: no element contains the expected {}{}",
                        short(want),
                        closest.map(|c| format!(" (e.g. {c})")).unwrap_or_default()
                    ));
                }
            }
            Ok(())
        }
        (a, e) if a == e => Ok(()),
        (a, e) => Err(format!("{path}: expected {}, found {}", short(e), short(a))),
    }
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.len() > 120 {
        format!(
            "{}…",
            &text[..text
                .char_indices()
                .nth(120)
                .map(|(i, _)| i)
                .unwrap_or(text.len())]
        )
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subsets_match_in_any_order() {
        let actual = json!([{"a": 1, "b": [1, 2, 3]}, {"c": "x"}]);
        assert!(contains(&actual, &json!([{"c": "x"}, {"b": [3, 1]}])).is_ok());
    }

    #[test]
    fn differences_name_the_path() {
        let err = contains(&json!({"a": {"b": 1}}), &json!({"a": {"b": 2}})).unwrap_err();
        assert!(err.starts_with("/a/b: expected 2"), "{err}");
        assert!(
            contains(&json!({"a": 1}), &json!({"z": 1}))
                .unwrap_err()
                .contains("/z: missing")
        );
    }
}
