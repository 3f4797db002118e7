//! The one list of the sources this build reads. The CLI, the conformance runner, the pipeline, ingest and
//! `mappings check` all find an adapter here by the name its mapping files give. Adding a source is its
//! folder under `src/adapters/` plus one line in [`SOURCES`].

use super::source::Source;
use super::{edfi, fhir, hmis, hsds, niem, oneroster, referral_csv, sif};
use crate::record::SourceDescription;

/// Every source, in the order they are listed to users.
pub static SOURCES: &[&dyn Source] = &[
    &oneroster::OneRoster,
    &referral_csv::ReferralCsv,
    &fhir::Fhir,
    &hmis::Hmis,
    &hsds::Hsds,
    &edfi::EdFi,
    &sif::Sif,
    &niem::Niem,
];

/// The source mapping files call `name`.
pub fn find(name: &str) -> Option<&'static dyn Source> {
    SOURCES
        .iter()
        .copied()
        .find(|s| s.description().name == name)
}

/// What every source is, for checking mappings against.
pub fn descriptions() -> Vec<&'static SourceDescription> {
    SOURCES.iter().map(|s| s.description()).collect()
}

/// The sources' names, comma-separated, for messages.
pub fn names() -> String {
    SourceDescription::names(&descriptions())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_source_has_a_name_of_its_own() {
        let mut names: Vec<_> = SOURCES.iter().map(|s| s.description().name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SOURCES.len());
        assert!(SOURCES.iter().all(|s| find(s.description().name).is_some()));
    }
}
