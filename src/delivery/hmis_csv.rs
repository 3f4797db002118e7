//! The HMIS CSV destination: released referrals written into an HMIS CSV folder an HMIS imports. A released
//! record that carries an obligation (the 42 CFR Part 2 redisclosure notice) also gets a line in the
//! folder's side file, [`HMIS_SIDE_FILE`], written before its rows.

use super::Destination;
use super::obligations::{self, HMIS_SIDE_FILE};
use crate::adapters::hmis::HmisCsvEncoder;
use crate::consent::Released;
use serde_json::Value;

/// Writes each released referral as HMIS CSV rows.
pub struct HmisCsvDestination {
    encoder: HmisCsvEncoder,
    side_file: std::path::PathBuf,
}

impl HmisCsvDestination {
    /// Write into `dir`, enrolling referrals in `project_id`.
    pub fn create(dir: &std::path::Path, project_id: &str) -> std::io::Result<Self> {
        Ok(Self {
            encoder: HmisCsvEncoder::create(dir, project_id)?,
            side_file: dir.join(HMIS_SIDE_FILE),
        })
    }

    /// Referrals written without a HUD event code.
    pub fn without_event_code(&self) -> u64 {
        self.encoder.without_event_code
    }
}

impl Destination for HmisCsvDestination {
    fn deliver(&mut self, released: &Released<Value>) -> std::io::Result<()> {
        obligations::append(&self.side_file, released)?;
        self.encoder.encode(released)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
