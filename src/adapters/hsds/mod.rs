//! `hsds`: the Open Referral HSDS 3.0 service directory, as the JSON its API returns (single objects or list
//! pages with `contents`, one or many files in a folder) or as HSDS CSV (a folder or zip of tables) →
//! organization, service, location and service-area records, so the directory agencies publish becomes FHIR
//! Organization, HealthcareService and Location. Services carry their organization, the locations they are
//! delivered at (`service_at_locations`), their service areas and taxonomy terms; locations and service areas
//! also become records of their own.

mod csv;
mod decode;

pub use decode::{CONTEXT, HsdsSource, RECORD_KINDS};
