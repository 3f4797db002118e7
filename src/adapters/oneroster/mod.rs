//! `oneroster`: OneRoster 1.1 and 1.2 CSV exports (a folder or a zip) → student, guardian-link and org
//! records for the roster mapping.

mod decode;
mod export;
pub mod tables;

pub use decode::{OneRosterError, OneRosterSource, StaffLookup};
pub use export::{Export, ExportError};

use super::source::{Deferred, OpenSource, Records, Source, SourceError, SourceRequest};
use crate::record::SourceDescription;

/// The `oneroster` source.
pub struct OneRoster;

static DESCRIPTION: SourceDescription = SourceDescription {
    name: "oneroster",
    reads: "a OneRoster 1.1 or 1.2 CSV export (a folder or a zip)",
    record_kinds: tables::RECORD_KINDS,
    context: tables::CONTEXT,
};

impl Source for OneRoster {
    fn description(&self) -> &'static SourceDescription {
        &DESCRIPTION
    }

    fn open<'a>(
        &self,
        request: SourceRequest<'a>,
    ) -> Result<Box<dyn OpenSource + 'a>, SourceError> {
        Ok(Deferred::boxed(request, |request, consume| {
            let source = OneRosterSource::open(request.input, request.encoding, request.quirks)
                .map_err(SourceError::open)?;
            consume(Records::finished(
                &mut source.records().map_err(SourceError::open)?,
            ))?;
            Ok(source.tables().to_vec())
        }))
    }

    fn is_record_table(&self, file: &str) -> bool {
        super::source::table_in(file, &["users.csv", "orgs.csv"])
    }

    fn read_by_adapter(&self) -> &'static [(&'static str, &'static str)] {
        tables::READ_BY_ADAPTER
    }
}
