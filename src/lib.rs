//! onedoor: an interoperability gateway for social-services referrals.
//!
//! School, agency and police systems export their data in their own formats; onedoor decodes those exports
//! (`adapters`), maps them with declarative mapping files (`mapping`) into one canonical referral model,
//! HL7 FHIR R4 after the Gravity SDOH Clinical Care profiles (`canonical`), validates every resource
//! (`validation`), and proves mappings with a conformance suite (`conformance`). `pipeline` is the one path
//! every source takes; `gateway` stores, routes (by performer, need, or a service chosen from the HSDS
//! `directory`), checks consent and delivers. See DESIGN.md for the architecture.

pub mod access;
pub mod adapters;
pub mod allocator;
pub mod canonical;
pub mod checked;
pub mod cli;
pub mod config;
pub mod conformance;
pub mod consent;
pub mod delivery;
pub mod directory;
pub mod example_receiver;
pub mod gateway;
pub mod http;
pub mod jobs;
pub mod json_reuse;
pub mod json_text;
pub mod mapping;
pub mod members;
pub mod pipeline;
pub mod record;
pub mod store;
pub mod text;
pub mod validation;

#[cfg(test)]
mod architecture_tests;
