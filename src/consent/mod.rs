//! Consent (DESIGN.md section 7): no record leaves its source without a recorded, explainable decision.
//!
//! - `model` and `registry`: FHIR R4 Consent resources, checked and indexed by patient;
//! - `bases`: legal bases other than consent (FERPA emergency, Uninterrupted Scholars Act, court order);
//! - `decision`: Permit, Deny or NoConsent with obligations, basis and explanation; default deny;
//! - `redact`: withheld data removed, the record labelled REDACTED;
//! - `gate`: the only producer of [`Released`], the only type encoders and destinations accept;
//! - `audit`: the hash-chained audit log, AuditEvent export, and the per-person disclosure log.

pub mod audit;
pub mod bases;
pub mod codes;
pub mod decision;
pub mod gate;
pub mod model;
pub mod redact;
pub mod registry;
pub mod subject;
pub mod time;

pub use decision::{Basis, Decision, Outcome};
pub use gate::{ConsentGate, Disclosing, Released, Withheld};
pub use registry::Registry;
