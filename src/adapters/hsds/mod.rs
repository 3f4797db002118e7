//! `hsds`: the Open Referral HSDS 3.0 service directory, as the JSON its API returns (single objects or list
//! pages with `contents`, one or many files in a folder) or as HSDS CSV (a folder or zip of tables) →
//! organization, service, location and service-area records, so the directory agencies publish becomes FHIR
//! Organization, HealthcareService and Location. Services carry their organization, the locations they are
//! delivered at (`service_at_locations`), their service areas and taxonomy terms; locations and service areas
//! also become records of their own.

mod csv;
mod decode;
mod records;

pub use decode::{CONTEXT, HsdsSource, RECORD_KINDS};

use super::source::{Deferred, OpenSource, Records, Source, SourceError, SourceRequest};
use crate::record::SourceDescription;

/// The `hsds` source.
pub struct Hsds;

static DESCRIPTION: SourceDescription = SourceDescription {
    name: "hsds",
    reads: "an Open Referral HSDS 3.0 directory: API JSON, or HSDS CSV (a folder or a zip)",
    record_kinds: RECORD_KINDS,
    context: CONTEXT,
};

impl Source for Hsds {
    fn description(&self) -> &'static SourceDescription {
        &DESCRIPTION
    }

    fn open<'a>(
        &self,
        request: SourceRequest<'a>,
    ) -> Result<Box<dyn OpenSource + 'a>, SourceError> {
        Ok(Deferred::boxed(request, |request, consume| {
            let source = HsdsSource::open(request.input, request.encoding, request.quirks)
                .map_err(SourceError::Open)?;
            consume(Records::finished(&mut source.records()))?;
            Ok(Vec::new())
        }))
    }

    /// In HSDS CSV, the organization, service and location tables hold records; the others are links.
    fn is_record_table(&self, file: &str) -> bool {
        !file.to_ascii_lowercase().ends_with(".csv")
            || super::source::table_in(
                file,
                &["organizations.csv", "services.csv", "locations.csv"],
            )
    }
}
