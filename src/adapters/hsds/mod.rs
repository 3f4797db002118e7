//! `hsds`: the Open Referral HSDS 3.0 service directory, as the JSON its API returns (single objects or list
//! pages with `contents`, one or many files in a folder) → organization, service and location records, so
//! the directory agencies publish becomes FHIR Organization, HealthcareService and Location. Services carry
//! their organization and the locations they are delivered at (`service_at_locations`), which also become
//! location records.

mod decode;

pub use decode::{CONTEXT, HsdsSource, RECORD_KINDS};
