//! Query parameters read with bounds: a value out of range or not a number is refused with 400 and an
//! OperationOutcome naming the parameter, never clamped silently or ignored.

use super::error::ApiError;

/// Search results per page when `_count` is absent.
pub const DEFAULT_COUNT: i64 = 100;
/// The largest `_count` accepted.
pub const MAX_COUNT: i64 = 1000;

/// `_count`: absent → [`DEFAULT_COUNT`]; otherwise an integer in `1..=MAX_COUNT`.
pub fn count(raw: Option<&str>) -> Result<i64, ApiError> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_COUNT);
    };
    match raw.trim().parse::<i64>() {
        Ok(n) if (1..=MAX_COUNT).contains(&n) => Ok(n),
        _ => Err(ApiError::BadRequest(format!(
            "_count: expected a whole number from 1 to {MAX_COUNT}, got '{}'",
            shown(raw)
        ))),
    }
}

/// A query value as quoted in an error: at most 40 characters.
fn shown(raw: &str) -> String {
    let mut out: String = raw.chars().take(40).collect();
    if raw.chars().count() > 40 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_is_bounded_and_numeric() {
        assert_eq!(count(None).unwrap(), DEFAULT_COUNT);
        assert_eq!(count(Some("1")).unwrap(), 1);
        assert_eq!(count(Some("1000")).unwrap(), 1000);
        for bad in ["0", "-1", "1001", "ten", "", "1e3", "99999999999999999999"] {
            let err = count(Some(bad)).unwrap_err();
            assert!(
                matches!(&err, ApiError::BadRequest(m) if m.starts_with("_count")),
                "{bad}: {err:?}"
            );
        }
    }
}
