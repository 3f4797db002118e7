//! `hmis`: HUD HMIS CSV FY2024 and FY2026 exports (a folder or a zip of Client.csv, Enrollment.csv, Exit.csv,
//! Services.csv, Event.csv, Project.csv, Organization.csv, Export.csv) → client, enrollment, exit, service,
//! referral-event and organization records. Rows with a `DateDeleted` are deletions: they are skipped and
//! counted. `Export.csv`'s `HashStatus` travels with every record (`export.HashStatus`), so a mapping leaves
//! hashed names out.

mod decode;
pub mod encode;
pub mod tables;

pub use decode::{HmisError, HmisSource};
pub use encode::HmisCsvEncoder;

use super::source::{Consumer, Records, Tables};
use super::source::{OpenSource, Source, SourceError, SourceRequest};
use crate::record::SourceDescription;

/// The `hmis` source.
pub struct Hmis;

static DESCRIPTION: SourceDescription = SourceDescription {
    name: "hmis",
    reads: "a HUD HMIS CSV FY2024 or FY2026 export (a folder or a zip)",
    record_kinds: tables::RECORD_KINDS,
    context: tables::CONTEXT,
};

impl Source for Hmis {
    fn description(&self) -> &'static SourceDescription {
        &DESCRIPTION
    }

    /// Opened at once: its `Export.csv` SourceID is part of the source system its ids derive in.
    fn open<'a>(
        &self,
        request: SourceRequest<'a>,
    ) -> Result<Box<dyn OpenSource + 'a>, SourceError> {
        let source = HmisSource::open(request.input, request.encoding, request.quirks)
            .map_err(SourceError::open)?;
        Ok(Box::new(source))
    }

    fn is_record_table(&self, file: &str) -> bool {
        let records = [
            "client.csv",
            "enrollment.csv",
            "exit.csv",
            "services.csv",
            "event.csv",
            "organization.csv",
        ];
        super::source::table_in(file, &records)
    }

    fn read_by_adapter(&self) -> &'static [(&'static str, &'static str)] {
        tables::READ_BY_ADAPTER
    }
}

impl OpenSource for HmisSource {
    fn source_system(
        &self,
        declared: &str,
        configured: Option<&str>,
    ) -> Result<Option<String>, SourceError> {
        let system = HmisSource::source_system(self, declared, configured);
        system.map(Some).map_err(SourceError::open)
    }

    fn read(self: Box<Self>, consume: &mut Consumer<'_>) -> Result<Tables, SourceError> {
        consume(Records::finished(
            &mut self.records().map_err(SourceError::open)?,
        ))?;
        Ok(self.tables().to_vec())
    }
}
