//! `hmis`: HUD HMIS CSV FY2024 and FY2026 exports (a folder or a zip of Client.csv, Enrollment.csv, Exit.csv,
//! Services.csv, Event.csv, Project.csv, Organization.csv, Export.csv) → client, enrollment, exit, service,
//! referral-event and organization records. Rows with a `DateDeleted` are deletions: they are skipped and
//! counted. `Export.csv`'s `HashStatus` travels with every record (`export.HashStatus`), so a mapping leaves
//! hashed names out.

mod decode;
pub mod encode;
pub mod tables;

pub use decode::{HmisError, HmisSource};
pub use encode::HmisCsvEncoder;
