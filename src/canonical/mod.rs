//! The canonical referral model: FHIR R4 resources shaped after the HL7 Gravity SDOH Clinical Care
//! profiles (DESIGN.md section 3). Resources travel as `serde_json::Value`; the typed model of `fhir-sdk`
//! and the schema check them in `validation`.

pub mod bundle;
pub mod ids;
pub mod profile;
pub mod subscription;
pub mod task_status;

/// SDOHCC ServiceRequest profile.
pub const SDOHCC_SERVICE_REQUEST: &str =
    "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-ServiceRequest";
/// SDOHCC Task for referral management profile.
pub const SDOHCC_TASK_REFERRAL: &str =
    "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-TaskForReferralManagement";
/// Code system of the SDOH categories (food-insecurity, housing-instability...).
pub const SDOHCC_TEMPORARY_CODES: &str =
    "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes";
