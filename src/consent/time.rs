//! FHIR dates and date-times as instants: a date-only start means the start of that day (UTC), a date-only
//! end the end of that day, so a consent "until 2026-06-30" covers all of June 30.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, TimeZone, Utc};

/// Parse a FHIR date or dateTime; `end` picks the end of a date-only day (or month/year).
pub fn instant(text: &str, end: bool) -> Option<DateTime<FixedOffset>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t);
    }
    let date = match text.len() {
        10 => NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?,
        7 => NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d")
            .ok()
            .map(|d| if end { last_of_month(d) } else { d })?,
        4 => NaiveDate::from_ymd_opt(
            text.parse().ok()?,
            if end { 12 } else { 1 },
            if end { 31 } else { 1 },
        )?,
        _ => return None,
    };
    let time = if end {
        NaiveTime::from_hms_milli_opt(23, 59, 59, 999)?
    } else {
        NaiveTime::MIN
    };
    Some(Utc.from_utc_datetime(&date.and_time(time)).fixed_offset())
}

fn last_of_month(first: NaiveDate) -> NaiveDate {
    let next = first
        .checked_add_months(chrono::Months::new(1))
        .unwrap_or(first);
    next.pred_opt().unwrap_or(first)
}

/// Whole years between a birth date of any FHIR precision (`YYYY`, `YYYY-MM`, `YYYY-MM-DD`, or a dateTime)
/// and an instant, taking the earliest possible birthday (January 1 of a year-only date, the first of a
/// month-only date): a year-only date never makes an adult a minor.
pub fn age_at(birth_date: &str, at: DateTime<FixedOffset>) -> Option<u32> {
    let born = match birth_date.len() {
        4 => NaiveDate::from_ymd_opt(birth_date.parse().ok()?, 1, 1)?,
        7 => NaiveDate::parse_from_str(&format!("{birth_date}-01"), "%Y-%m-%d").ok()?,
        _ => NaiveDate::parse_from_str(birth_date.get(..10)?, "%Y-%m-%d").ok()?,
    };
    at.date_naive().years_since(born)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_only_ends_cover_the_whole_day() {
        let end = instant("2026-06-30", true).unwrap();
        assert!(end > instant("2026-06-30T18:00:00Z", false).unwrap());
        assert!(
            instant("2026-02", true)
                .unwrap()
                .to_rfc3339()
                .starts_with("2026-02-28T23:59:59")
        );
        assert_eq!(
            age_at("2008-03-01", instant("2026-02-28", false).unwrap()),
            Some(17)
        );
        assert_eq!(
            age_at("2008-03-01", instant("2026-03-01", false).unwrap()),
            Some(18)
        );
        let now = instant("2026-03-02", false).unwrap();
        assert_eq!(age_at("1990", now), Some(36));
        assert_eq!(age_at("2008", now), Some(18));
        assert_eq!(age_at("2008-03", now), Some(18));
        assert_eq!(age_at("2008-04", now), Some(17));
    }
}
