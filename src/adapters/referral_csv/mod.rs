//! `referral-csv`: the student-support referral CSV (one row per referral) that any SIS or spreadsheet can
//! produce. Each row is joined to its student in a OneRoster roster; the roster records travel with the
//! referral so the bundle carries the Patient and their guardians. The format is documented in the README.

mod decode;

pub use decode::{CONTEXT, RECORD_KINDS, REFERRALS, ReferralSource};

use super::oneroster::OneRosterSource;
use super::source::{Deferred, OpenSource, Records, Source, SourceError, SourceRequest};
use crate::record::SourceDescription;

/// The `referral-csv` source.
pub struct ReferralCsv;

static DESCRIPTION: SourceDescription = SourceDescription {
    name: "referral-csv",
    reads: "a referral CSV (one row per referral) with the OneRoster roster its students are in",
    record_kinds: RECORD_KINDS,
    context: CONTEXT,
};

/// Referral CSV columns the adapter itself reads (to join and deduplicate).
const READ_BY_ADAPTER: &[(&str, &str)] = &[
    ("referrals.csv", "referral_id"),
    ("referrals.csv", "student_id"),
    ("referrals.csv", "referring_staff_id"),
];

impl Source for ReferralCsv {
    fn description(&self) -> &'static SourceDescription {
        &DESCRIPTION
    }

    fn open<'a>(
        &self,
        request: SourceRequest<'a>,
    ) -> Result<Box<dyn OpenSource + 'a>, SourceError> {
        Ok(Deferred::boxed(request, |request, consume| {
            let roster_path = request.roster.ok_or_else(|| {
                SourceError::Open("the referral-csv adapter needs the roster its students are in: pass --roster PATH (a OneRoster export)".into())
            })?;
            let (encoding, quirks) = (request.encoding, request.quirks);
            let roster = OneRosterSource::open(roster_path, encoding, quirks)
                .map_err(|e| SourceError::Open(format!("roster: {e}")))?;
            let source = ReferralSource::open(request.input, &roster, encoding, quirks)
                .map_err(SourceError::open)?;
            consume(Records::completed_by(
                &mut source.read_records().map_err(SourceError::open)?,
                &source,
            ))?;
            for problem in roster.problems() {
                quirks.note(
                    format!("roster: a row that cannot be used: {problem}"),
                    problem.position.line,
                );
            }
            // Coverage names the table as the adapter knows it, whatever the file was called (an upload).
            let columns = source.columns().iter().filter(|c| !c.is_empty()).cloned();
            let mut tables = vec![(REFERRALS.file.to_owned(), columns.collect())];
            tables.extend(roster.tables().iter().cloned());
            Ok(tables)
        }))
    }

    fn is_record_table(&self, file: &str) -> bool {
        super::source::table_in(file, &["referrals.csv"])
    }

    fn read_by_adapter(&self) -> &'static [(&'static str, &'static str)] {
        READ_BY_ADAPTER
    }
}
