//! `fhir`: FHIR R4 JSON in: single resources, Bundles, and NDJSON (one resource per line), as files or a
//! folder of them. Records pass through validation unchanged.

mod decode;

pub use decode::{FhirSource, LentResource, RECORD_KINDS};

use super::source::{Deferred, OpenSource, Records, Source, SourceError, SourceRequest};
use crate::record::ContextTable;
use crate::record::SourceDescription;

/// The `fhir` source.
pub struct Fhir;

const CONTEXT: &[ContextTable] = &[ContextTable {
    variable: "resource",
    table: "resource",
    columns: &[],
}];

static DESCRIPTION: SourceDescription = SourceDescription {
    name: "fhir",
    reads: "FHIR R4 JSON: resources, Bundles or NDJSON (a file or a folder)",
    record_kinds: RECORD_KINDS,
    context: CONTEXT,
};

impl Source for Fhir {
    fn description(&self) -> &'static SourceDescription {
        &DESCRIPTION
    }

    fn open<'a>(
        &self,
        request: SourceRequest<'a>,
    ) -> Result<Box<dyn OpenSource + 'a>, SourceError> {
        Ok(Deferred::boxed(request, |request, consume| {
            let source = FhirSource::open(request.input).map_err(|e| {
                SourceError::Open(format!("{}: cannot read: {e}", request.input.display()))
            })?;
            consume(Records::finished(
                &mut source.counted_records(request.quirks),
            ))?;
            Ok(Vec::new())
        }))
    }
}
