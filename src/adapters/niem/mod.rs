//! `niem`: NIEM XML from police records systems, starting with FBI NIBRS 2019 incident submissions (the
//! police side of a police/social-work partnership). Each victim of a Group A incident becomes a record with
//! their person, the offenses and location linked to them, their relationships to the offenders, the
//! triggers a follow-up table matches (domestic relationship, circumstance, child victim), and how many
//! earlier incidents the gateway has seen for the same person or address ([`history`]).

mod decode;
pub mod history;
mod report;

pub use decode::{CONTEXT, NIBRS_2019, NiemOptions, NiemSource, RECORD_KINDS};
pub use history::IncidentHistory;

use super::source::{Deferred, OpenSource, Records, Source, SourceError, SourceRequest};
use crate::record::SourceDescription;
use std::sync::{Arc, Mutex};

/// The salt of repeat-incident keys counted within one run only (nothing is kept). It is public, so it
/// never salts a kept history: `serve` uses `[gateway] history_salt` or a salt generated per deployment
/// (kept in the store), and `convert --incident-history` requires `--history-salt`.
pub const DEFAULT_HISTORY_SALT: &str = "onedoor-repeat-incidents";

/// The `niem` source.
pub struct Niem;

static DESCRIPTION: SourceDescription = SourceDescription {
    name: "niem",
    reads: "NIEM XML: FBI NIBRS 2019 incident submissions (a file, a folder or a zip)",
    record_kinds: RECORD_KINDS,
    context: CONTEXT,
};

impl Source for Niem {
    fn description(&self) -> &'static SourceDescription {
        &DESCRIPTION
    }

    fn open<'a>(
        &self,
        request: SourceRequest<'a>,
    ) -> Result<Box<dyn OpenSource + 'a>, SourceError> {
        Ok(Deferred::boxed(request, |request, consume| {
            let history = request.incident_history.cloned().unwrap_or_else(|| {
                Arc::new(Mutex::new(IncidentHistory::new(DEFAULT_HISTORY_SALT)))
            });
            let mut history = history.lock().unwrap_or_else(|p| p.into_inner());
            let options = NiemOptions {
                history: &mut history,
                window_days: request.repeat_window_days,
            };
            let source = NiemSource::open(request.input, request.quirks, options)
                .map_err(SourceError::Open)?;
            consume(Records::finished(&mut source.records()))?;
            Ok(Vec::new())
        }))
    }

    fn keeps_incident_history(&self) -> bool {
        true
    }
}
