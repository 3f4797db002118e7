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
