//! The HMIS CSV destination: released referrals written into an HMIS CSV folder an HMIS imports.

use super::Destination;
use crate::adapters::hmis::HmisCsvEncoder;
use crate::consent::Released;
use serde_json::Value;

/// Writes each released referral as HMIS CSV rows.
pub struct HmisCsvDestination {
    encoder: HmisCsvEncoder,
}

impl HmisCsvDestination {
    /// Write into `dir`, enrolling referrals in `project_id`.
    pub fn create(dir: &std::path::Path, project_id: &str) -> std::io::Result<Self> {
        Ok(Self {
            encoder: HmisCsvEncoder::create(dir, project_id)?,
        })
    }

    /// Referrals written without a HUD event code.
    pub fn without_event_code(&self) -> u64 {
        self.encoder.without_event_code
    }
}

impl Destination for HmisCsvDestination {
    fn deliver(&mut self, released: &Released<Value>) -> std::io::Result<()> {
        self.encoder.encode(released)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
