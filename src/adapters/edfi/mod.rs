//! `edfi`: Ed-Fi Data Standard 5.x interchange XML: `Student.xml` (InterchangeStudent) → student records,
//! `Contact.xml` (InterchangeContact: Contact and StudentContactAssociation) → one record per
//! student–contact link, joined to its contact; `EducationOrganization.xml` → education organizations,
//! `StudentProgram.xml` → program associations, `StudentHealth.xml` → health records; and the ODS/API JSON
//! resources (students, contacts, studentContactAssociations, studentSchoolAssociations) → the same student
//! and contact-link records. Elements become nested values named as in the XML
//! (`student.Name.FirstName`, `link.Relation`), so mappings read the standard's own names; descriptors
//! (`uri://ed-fi.org/SexDescriptor#Female`) go through code tables.

mod api;
mod decode;

pub use decode::{CONTEXT, EdfiSource, RECORD_KINDS};

use super::source::{Deferred, OpenSource, Records, Source, SourceError, SourceRequest};
use crate::record::SourceDescription;

/// The `edfi` source.
pub struct EdFi;

static DESCRIPTION: SourceDescription = SourceDescription {
    name: "edfi",
    reads: "Ed-Fi Data Standard 5.x interchange XML or ODS/API JSON",
    record_kinds: RECORD_KINDS,
    context: CONTEXT,
};

impl Source for EdFi {
    fn description(&self) -> &'static SourceDescription {
        &DESCRIPTION
    }

    fn open<'a>(
        &self,
        request: SourceRequest<'a>,
    ) -> Result<Box<dyn OpenSource + 'a>, SourceError> {
        Ok(Deferred::boxed(request, |request, consume| {
            let source =
                EdfiSource::open(request.input, request.quirks).map_err(SourceError::Open)?;
            consume(Records::finished(&mut source.records()))?;
            Ok(Vec::new())
        }))
    }
}
