//! Tolerant date reading for the `date` and `datetime` filters: ISO dates and date-times as FHIR wants
//! them, and the slash dates real SIS exports write (`1/05/2023`, `15/06/2023`). A slash date is read day
//! first when the first number cannot be a month, month first when the second cannot be, and by the
//! mapping's `ambiguous_dates` otherwise. Anything else is an error saying what was expected.

use super::model::DateOrder;
use chrono::{NaiveDate, NaiveDateTime};

/// What was tolerated while reading a date, to report as a quirk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateQuirk {
    /// A slash date read day first.
    DayFirst,
    /// A slash date read month first.
    MonthFirst,
    /// A slash date that could be either, read by the configured order.
    Ambiguous(DateOrder),
    /// A date-time without a UTC offset and no offset given: kept to its date (FHIR needs the offset).
    NoOffset,
}

const EXPECTED: &str = "expected YYYY-MM-DD, an ISO date-time, M/D/YYYY or D/M/YYYY";

/// Read a date; return the FHIR `date` (`YYYY-MM-DD`) and what was tolerated.
pub fn parse_date(text: &str, order: DateOrder) -> Result<(String, Option<DateQuirk>), String> {
    let text = text.trim();
    if let Some(date) = iso_date(text) {
        return Ok((fhir_date(date), None));
    }
    let (date, quirk) = slash_date(text, order)?;
    Ok((fhir_date(date), Some(quirk)))
}

/// `date.format("%Y-%m-%d")`, written out for the years FHIR can hold (four digits); chrono's formatting
/// (its format string parsed for every date) for any other year.
fn fhir_date(date: NaiveDate) -> String {
    use chrono::Datelike;
    if let Ok(year) = u32::try_from(date.year())
        && year <= 9999
    {
        let digit = |value: u32, place: u32| char::from(b'0' + ((value / place) % 10) as u8);
        let mut text = String::with_capacity(10);
        text.extend([
            digit(year, 1000),
            digit(year, 100),
            digit(year, 10),
            digit(year, 1),
            '-',
        ]);
        text.extend([digit(date.month(), 10), digit(date.month(), 1), '-']);
        text.extend([digit(date.day(), 10), digit(date.day(), 1)]);
        return text;
    }
    date.format("%Y-%m-%d").to_string()
}

/// Read a date with an explicit chrono format (`%m/%d/%Y`).
pub fn parse_date_with(text: &str, format: &str) -> Result<String, String> {
    NaiveDate::parse_from_str(text.trim(), format)
        .map(fhir_date)
        .map_err(|_| {
            format!(
                "invalid date '{}' (expected the format {format})",
                text.trim()
            )
        })
}

/// Read a date or date-time; return a FHIR `dateTime` (a date stays a date).
///
/// A local date-time (no offset) takes `offset` (`+10:00`) when one is given; otherwise it is kept to its
/// date, since a FHIR dateTime with a time must carry its offset.
pub fn parse_datetime(
    text: &str,
    order: DateOrder,
    offset: Option<&str>,
) -> Result<(String, Option<DateQuirk>), String> {
    let text = text.trim();
    if let Some(date) = plain_iso_date(text) {
        return Ok((fhir_date(date), None));
    }
    if chrono::DateTime::parse_from_rfc3339(text).is_ok() {
        return Ok((text.to_owned(), None));
    }
    if let Ok(local) = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S") {
        return match offset {
            Some(offset) => {
                let with = format!("{}{offset}", local.format("%Y-%m-%dT%H:%M:%S"));
                chrono::DateTime::parse_from_rfc3339(&with)
                    .map(|_| (with, None))
                    .map_err(|_| {
                        format!("invalid UTC offset '{offset}' (expected +HH:MM or -HH:MM)")
                    })
            }
            None => Ok((
                local.format("%Y-%m-%d").to_string(),
                Some(DateQuirk::NoOffset),
            )),
        };
    }
    parse_date(text, order)
}

fn iso_date(text: &str) -> Option<NaiveDate> {
    if let Some(date) = plain_iso_date(text) {
        return Some(date);
    }
    let date_part = text.split('T').next()?;
    if date_part.len() != 10 {
        return None;
    }
    let date = NaiveDate::parse_from_str(date_part, "%Y-%m-%d").ok()?;
    let rest = &text[date_part.len()..];
    (rest.is_empty() || chrono::DateTime::parse_from_rfc3339(text).is_ok()).then_some(date)
}

/// `YYYY-MM-DD` and nothing else, read without chrono's format parser (most dates of an export are
/// written so): the date `NaiveDate::parse_from_str(text, "%Y-%m-%d")` gives for such a text; `None` for
/// anything else, and for a day that does not exist (the callers then read the text as before).
fn plain_iso_date(text: &str) -> Option<NaiveDate> {
    let bytes: &[u8; 10] = text.as_bytes().try_into().ok()?;
    let digits = |range: std::ops::Range<usize>| {
        bytes.get(range)?.iter().try_fold(0u32, |number, &byte| {
            byte.is_ascii_digit()
                .then(|| number * 10 + u32::from(byte - b'0'))
        })
    };
    if bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let year = i32::try_from(digits(0..4)?).ok()?;
    NaiveDate::from_ymd_opt(year, digits(5..7)?, digits(8..10)?)
}

fn slash_date(text: &str, order: DateOrder) -> Result<(NaiveDate, DateQuirk), String> {
    let parts: Vec<&str> = text.split(['/', '.']).collect();
    let numbers: Vec<u32> = parts.iter().filter_map(|p| p.trim().parse().ok()).collect();
    if parts.len() != 3 || numbers.len() != 3 || parts[2].trim().len() != 4 {
        return Err(format!("invalid date '{text}' ({EXPECTED})"));
    }
    let (a, b, year) = (numbers[0], numbers[1], numbers[2] as i32);
    let (month, day, quirk) = match (a > 12, b > 12) {
        (true, false) => (b, a, DateQuirk::DayFirst),
        (false, true) => (a, b, DateQuirk::MonthFirst),
        (false, false) if order == DateOrder::Dmy => (b, a, DateQuirk::Ambiguous(order)),
        (false, false) => (a, b, DateQuirk::Ambiguous(order)),
        (true, true) => {
            return Err(format!(
                "invalid date '{text}': neither number can be a month ({EXPECTED})"
            ));
        }
    };
    NaiveDate::from_ymd_opt(year, month, day)
        .map(|d| (d, quirk))
        .ok_or_else(|| format!("invalid date '{text}': no such day ({EXPECTED})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_date_is_written_as_chrono_writes_it() {
        let mut checked = 0;
        for year in [
            -10_000, -1, 0, 1, 99, 999, 1000, 1969, 2024, 9999, 10_000, 262_000,
        ] {
            for (month, day) in [(1, 1), (2, 29), (6, 15), (12, 31)] {
                if let Some(date) = NaiveDate::from_ymd_opt(year, month, day) {
                    assert_eq!(fhir_date(date), date.format("%Y-%m-%d").to_string());
                    checked += 1;
                }
            }
        }
        assert!(checked > 40, "{checked}");
    }

    /// The plain ISO date read by hand is chrono's, and whatever chrono does not read as one is left to
    /// the callers' chrono path.
    #[test]
    fn a_plain_iso_date_is_chronos() {
        let mut texts: Vec<String> = Vec::new();
        for year in [
            "0000", "0001", "1999", "2024", "9999", "20 4", "+202", "-001",
        ] {
            for month in ["00", "01", "02", "09", "12", "13", "1 ", "+1"] {
                for day in ["00", "01", "28", "29", "30", "31", "32", "-1"] {
                    texts.push(format!("{year}-{month}-{day}"));
                }
            }
        }
        texts.extend(
            [
                "2024/01/01",
                "2024-01-0a",
                "2024-01-011",
                "2024-1-01",
                "é024-01-0",
            ]
            .map(String::from),
        );
        let mut read = 0;
        for text in &texts {
            let chrono = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok();
            if let Some(date) = plain_iso_date(text) {
                read += 1;
                assert_eq!(Some(date), chrono, "{text}");
            }
            // Before, a ten-character text that is no date-time reached `iso_date`, whose chrono date this is.
            let before = (text.trim().len() == 10)
                .then(|| NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").ok())
                .flatten();
            for order in [DateOrder::Mdy, DateOrder::Dmy] {
                for offset in [None, Some("+02:00")] {
                    let now = parse_datetime(text, order, offset);
                    match before {
                        Some(date) => assert_eq!(now, Ok((fhir_date(date), None)), "{text}"),
                        None => assert!(plain_iso_date(text.trim()).is_none(), "{text}"),
                    }
                }
            }
        }
        assert!(read > 60, "{read}");
    }

    #[test]
    fn reads_iso_and_slash_dates() {
        assert_eq!(
            parse_date("2010-04-17", DateOrder::Mdy).unwrap(),
            ("2010-04-17".into(), None)
        );
        assert_eq!(
            parse_date("2023-05-01T18:25:43.511Z", DateOrder::Mdy)
                .unwrap()
                .0,
            "2023-05-01"
        );
        assert_eq!(
            parse_date("15/06/2023", DateOrder::Mdy).unwrap(),
            ("2023-06-15".into(), Some(DateQuirk::DayFirst))
        );
        assert_eq!(
            parse_date("6/15/2023", DateOrder::Dmy).unwrap(),
            ("2023-06-15".into(), Some(DateQuirk::MonthFirst))
        );
        assert_eq!(
            parse_date("1/05/2023", DateOrder::Mdy).unwrap().0,
            "2023-01-05"
        );
        assert_eq!(
            parse_date("1/05/2023", DateOrder::Dmy).unwrap().0,
            "2023-05-01"
        );
    }

    #[test]
    fn rejects_impossible_dates_saying_what_was_expected() {
        for bad in [
            "2010-13-45",
            "31/31/2020",
            "yesterday",
            "1/5/23",
            "2/30/2020",
        ] {
            let err = parse_date(bad, DateOrder::Mdy).unwrap_err();
            assert!(err.contains("expected"), "{bad}: {err}");
        }
    }
}
