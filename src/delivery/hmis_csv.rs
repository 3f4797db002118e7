//! The `hmis-csv` destination kind: released referrals written into an HMIS CSV folder an HMIS imports
//! (configured as `kind = "hmis-csv"`, or `kind = "file"` with `format = "hmis-csv"`). A released record
//! that carries an obligation (the 42 CFR Part 2 redisclosure notice) also gets a line in the folder's side
//! file, [`HMIS_SIDE_FILE`], written before its rows.
//!
//! The server opens the folder again for every delivery (another node, or the HMIS's import, may have
//! changed it since); the CLI keeps one encoder for the run.

use super::destination::{BoxFuture, Delivery, Destination, Outcome, Payload};
use super::obligations::{self, HMIS_SIDE_FILE};
use super::registry::{BuildError, Kind, LocalOutput, Spec};
use crate::adapters::hmis::HmisCsvEncoder;
use crate::consent::Released;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Mutex;

/// The registry entry.
pub const KIND: Kind = Kind {
    name: "hmis-csv",
    remote: false,
    build,
};

/// The project the server enrolls referrals in.
const SERVER_PROJECT: &str = "onedoor";

/// The `hmis-csv` kind.
pub struct HmisCsvFolder {
    dir: PathBuf,
    project: String,
    /// The CLI's encoder, kept for the run (`None` on the server: opened for each delivery).
    kept: Option<Mutex<HmisCsvDestination>>,
}

fn build(spec: Spec<'_>) -> Result<Box<dyn Destination>, BuildError> {
    let (dir, project, keep) = match spec.output {
        Some(LocalOutput::Folder { dir, project }) => (dir, project, true),
        Some(LocalOutput::Stream { .. }) => {
            return Err(BuildError::new(
                spec.name,
                "kind",
                "an HMIS CSV destination writes a folder",
            ));
        }
        None => (
            PathBuf::from(&spec.destination.endpoint),
            SERVER_PROJECT.to_owned(),
            false,
        ),
    };
    let kept = keep
        .then(|| HmisCsvDestination::create(&dir, &project))
        .transpose()
        .map_err(|e| BuildError::new(spec.name, "endpoint", format!("{}: {e}", dir.display())))?
        .map(Mutex::new);
    Ok(Box::new(HmisCsvFolder { dir, project, kept }))
}

impl HmisCsvFolder {
    fn write(&self, released: &Released<Value>) -> std::io::Result<()> {
        match &self.kept {
            Some(kept) => kept
                .lock()
                .map_err(|_| std::io::Error::other("the folder failed in an earlier write"))?
                .deliver(released),
            None => HmisCsvDestination::create(&self.dir, &self.project)?.deliver(released),
        }
    }
}

impl Destination for HmisCsvFolder {
    fn send<'a>(&'a self, delivery: Delivery<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            match delivery.payload {
                Payload::Released(released) => Outcome::of_io(self.write(released), &self.dir),
                Payload::Notification(_) => {
                    Outcome::permanent("an HMIS CSV folder takes no notifications")
                }
            }
        })
    }
}

/// Writes each released referral as HMIS CSV rows (its side-file line first).
pub struct HmisCsvDestination {
    encoder: HmisCsvEncoder,
    side_file: PathBuf,
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

    /// Write one released referral.
    pub fn deliver(&mut self, released: &Released<Value>) -> std::io::Result<()> {
        obligations::append(&self.side_file, released)?;
        self.encoder.encode(released)
    }

    /// Nothing is buffered: every row is appended as it is written.
    pub fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
