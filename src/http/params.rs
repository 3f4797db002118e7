//! Query parameters read with bounds: a value out of range or not a number is refused with 400 and an
//! OperationOutcome naming the parameter, never clamped silently or ignored.

use super::error::ApiError;

/// Search results per page when `_count` is absent.
pub const DEFAULT_COUNT: i64 = 50;
/// The largest `_count` accepted.
pub const MAX_COUNT: i64 = 500;
/// The largest `_offset` accepted.
pub const MAX_OFFSET: i64 = 1_000_000;

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

/// `_offset` (the page cursor of `next`/`previous` links): absent → 0; otherwise an integer in
/// `0..=MAX_OFFSET`.
pub fn offset(raw: Option<&str>) -> Result<i64, ApiError> {
    let Some(raw) = raw else {
        return Ok(0);
    };
    match raw.trim().parse::<i64>() {
        Ok(n) if (0..=MAX_OFFSET).contains(&n) => Ok(n),
        _ => Err(ApiError::BadRequest(format!(
            "_offset: expected a whole number from 0 to {MAX_OFFSET}, got '{}'",
            shown(raw)
        ))),
    }
}

/// One `_lastUpdated` value as SQL comparisons on milliseconds since the epoch: a prefix (`ge`, `le`,
/// `gt`, `lt`, `eq` or none) and a date or dateTime whose precision makes a range (`2026-12` is the
/// whole month; a dateTime without a time zone is refused).
pub fn last_updated(raw: &str) -> Result<Vec<(&'static str, i64)>, ApiError> {
    let text = raw.trim();
    let (prefix, value) = match text.get(..2) {
        Some(p @ ("ge" | "le" | "gt" | "lt" | "eq")) => (p, &text[2..]),
        _ => ("eq", text),
    };
    let Some((start, end)) = instant_range(value) else {
        return Err(ApiError::BadRequest(format!(
            "_lastUpdated: expected [ge|le|gt|lt|eq]YYYY[-MM[-DD[Thh:mm:ss[.sss](Z|+hh:mm)]]], got '{}'",
            shown(raw)
        )));
    };
    Ok(match prefix {
        "ge" => vec![(">=", start)],
        "gt" => vec![(">=", end)],
        "le" => vec![("<", end)],
        "lt" => vec![("<", start)],
        _ => vec![(">=", start), ("<", end)],
    })
}

/// The milliseconds `[start, end)` a FHIR date or dateTime covers at its precision.
fn instant_range(value: &str) -> Option<(i64, i64)> {
    use chrono::{Datelike, NaiveDate};
    let day = |y: i32, m: u32, d: u32| {
        NaiveDate::from_ymd_opt(y, m, d)?
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp_millis())
    };
    let parts: Vec<&str> = value.split('-').collect();
    let number = |s: &str, len: usize| {
        (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u32>().ok())
            .flatten()
    };
    if value.contains('T') {
        let at = chrono::DateTime::parse_from_rfc3339(value).ok()?;
        let ms = at.timestamp_millis();
        let exact = value.contains('.');
        return Some((ms, ms + if exact { 1 } else { 1000 }));
    }
    match parts.as_slice() {
        [y] => {
            let y = number(y, 4)? as i32;
            Some((day(y, 1, 1)?, day(y + 1, 1, 1)?))
        }
        [y, m] => {
            let (y, m) = (number(y, 4)? as i32, number(m, 2)?);
            let next =
                NaiveDate::from_ymd_opt(y, m, 1)?.checked_add_months(chrono::Months::new(1))?;
            Some((day(y, m, 1)?, day(next.year(), next.month(), 1)?))
        }
        [y, m, d] => {
            let start = day(number(y, 4)? as i32, number(m, 2)?, number(d, 2)?)?;
            Some((start, start + 86_400_000))
        }
        _ => None,
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
        assert_eq!(count(Some("500")).unwrap(), 500);
        for bad in ["0", "-1", "501", "ten", "", "1e3", "99999999999999999999"] {
            let err = count(Some(bad)).unwrap_err();
            assert!(
                matches!(&err, ApiError::BadRequest(m) if m.starts_with("_count")),
                "{bad}: {err:?}"
            );
        }
    }

    #[test]
    fn offset_is_bounded_and_numeric() {
        assert_eq!(offset(None).unwrap(), 0);
        assert_eq!(offset(Some("50")).unwrap(), 50);
        for bad in ["-1", "x", "1000001"] {
            assert!(offset(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn last_updated_takes_prefixes_and_precision() {
        let day = 1_796_169_600_000; // 2026-12-02T00:00:00Z
        assert_eq!(last_updated("ge2026-12-02").unwrap(), vec![(">=", day)]);
        assert_eq!(last_updated("lt2026-12-02").unwrap(), vec![("<", day)]);
        assert_eq!(
            last_updated("gt2026-12-02").unwrap(),
            vec![(">=", day + 86_400_000)]
        );
        assert_eq!(
            last_updated("2026-12-02").unwrap(),
            vec![(">=", day), ("<", day + 86_400_000)]
        );
        assert_eq!(
            last_updated("le2026-12-02T00:00:00Z").unwrap(),
            vec![("<", day + 1000)]
        );
        assert_eq!(last_updated("ge2026").unwrap()[0].1, 1_767_225_600_000);
        for bad in [
            "",
            "ge",
            "ne2026",
            "2026-13",
            "2026-12-02T10:00",
            "soon",
            "ge2026-1-1",
        ] {
            assert!(last_updated(bad).is_err(), "{bad}");
        }
    }
}
