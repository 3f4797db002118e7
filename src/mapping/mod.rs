//! Declarative mappings (DESIGN.md section 5): TOML files under `mappings/<adapter>/` that a district IT
//! person can read as a crosswalk. Each `[[resources]]` table builds one FHIR resource from each record of
//! a kind; each rule writes a MiniJinja expression's value at a FHIR element path. Code tables are CSV.

pub mod catalog;
pub mod codes;
pub mod crosswalk;
pub mod dates;
mod direct;
pub mod engine;
pub mod lint;
mod member;
pub mod model;
pub mod path;
pub mod reuse;

pub use catalog::{LoadedMapping, MappingError};
pub use engine::{CompiledMapping, EngineOptions, MappingEngine, MappingProblem};
