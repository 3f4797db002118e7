//! `sif`: SIF AU 3.4 (and SIF US 3.x) XML objects, as a zone or a SIF export gives them: one object per file
//! (`<StudentPersonal RefId=...>`) or a collection (`<StudentPersonals>`), in a folder, a zip or a single file.
//!
//! Records: schools (SchoolInfo), students (StudentPersonal, with their school through
//! StudentSchoolEnrollment), one record per StudentContactRelationship joined to its StudentContactPersonal
//! (kept in the student's group so a student's bundle carries their contacts), and one record per
//! WellbeingEvent or WellbeingAlert, carrying its student and contacts so a referral bundle is complete.
//! A PersonalisedPlan travels in its student's group (and so in their referrals); WellbeingResponse,
//! WellbeingCharacteristic and WellbeingAppeal are read and reported
//! as records the mapping builds nothing from. Both namespace URIs seen in published SIF AU samples are
//! accepted (the non-standard one is reported as a quirk); an object in another namespace is rejected.

mod decode;
mod namespace;

pub use decode::{CONTEXT, RECORD_KINDS, SifSource};

use super::source::{Deferred, OpenSource, Records, Source, SourceError, SourceRequest};
use crate::record::SourceDescription;

/// The `sif` source.
pub struct Sif;

static DESCRIPTION: SourceDescription = SourceDescription {
    name: "sif",
    reads: "SIF AU 3.4 or SIF US 3.x XML objects (a file, a folder or a zip)",
    record_kinds: RECORD_KINDS,
    context: CONTEXT,
};

impl Source for Sif {
    fn description(&self) -> &'static SourceDescription {
        &DESCRIPTION
    }

    fn open<'a>(
        &self,
        request: SourceRequest<'a>,
    ) -> Result<Box<dyn OpenSource + 'a>, SourceError> {
        Ok(Deferred::boxed(request, |request, consume| {
            let source =
                SifSource::open(request.input, request.quirks).map_err(SourceError::Open)?;
            consume(Records::finished(&mut source.records()))?;
            Ok(Vec::new())
        }))
    }
}
