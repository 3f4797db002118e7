//! Legal bases other than consent, configured per recipient, always time-limited and audited:
//! the FERPA health-or-safety emergency (34 CFR 99.36), the Uninterrupted Scholars Act disclosure to the
//! child-welfare agency responsible for a student (20 U.S.C. 1232g(b)(1)(L)), a court order (which may also
//! authorise 42 CFR Part 2 data under 42 CFR 2.64), and a statute or interagency agreement (a police/social-work
//! partnership's referrals of victims to advocates). None is ever implied.
//!
//! ```toml
//! [[basis]]
//! kind = "ferpa-health-safety-emergency"
//! recipient = "urn:onedoor:agencies|family-services"
//! from = "2026-03-01T08:00:00Z"
//! until = "2026-03-03T08:00:00Z"
//! reference = "incident 2026-114, approved by the principal"
//! ```

use super::time::instant;
use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The kinds of legal basis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BasisKind {
    /// FERPA health or safety emergency, 34 CFR 99.36.
    FerpaHealthSafetyEmergency,
    /// Uninterrupted Scholars Act: the child-welfare agency responsible for the student.
    UninterruptedScholarsAct,
    /// A court order or subpoena.
    CourtOrder,
    /// A statute or interagency agreement that authorises the disclosure (a police/social-work partnership
    /// referring victims to advocates under state law or a memorandum of understanding).
    StatuteOrAgreement,
}

impl BasisKind {
    /// A readable name.
    pub fn label(self) -> &'static str {
        match self {
            Self::FerpaHealthSafetyEmergency => "FERPA health or safety emergency (34 CFR 99.36)",
            Self::UninterruptedScholarsAct => {
                "Uninterrupted Scholars Act disclosure to the responsible child-welfare agency"
            }
            Self::CourtOrder => "court order",
            Self::StatuteOrAgreement => "statute or interagency agreement",
        }
    }
}

/// One configured basis.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LegalBasis {
    /// Which basis.
    pub kind: BasisKind,
    /// The recipient organization (`system|value` or `Organization/id`).
    pub recipient: String,
    /// Start of the window.
    pub from: String,
    /// End of the window (required: every basis is time-limited).
    pub until: String,
    /// What authorises it (incident number, court order number, the responsible agency's case).
    pub reference: String,
    /// Purposes it covers (empty: any).
    #[serde(default)]
    pub purposes: Vec<String>,
    /// The people it covers (`Patient/id` or `system|value`; empty: anyone). Required for the Uninterrupted
    /// Scholars Act, which covers only the students the agency is responsible for.
    #[serde(default)]
    pub patients: Vec<String>,
    /// A court order that also authorises 42 CFR Part 2 data (42 CFR 2.64).
    #[serde(default)]
    pub part2: bool,
}

impl LegalBasis {
    /// The window, parsed.
    pub fn window(&self) -> Option<(DateTime<FixedOffset>, DateTime<FixedOffset>)> {
        Some((instant(&self.from, false)?, instant(&self.until, true)?))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BasisFile {
    #[serde(default)]
    basis: Vec<LegalBasis>,
}

/// Read and check a legal-bases file; every problem names the file and the entry.
pub fn load(path: &Path) -> Result<Vec<LegalBasis>, Vec<String>> {
    let shown = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|e| vec![format!("{shown}: cannot read: {e}")])?;
    let file: BasisFile = toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|s| crate::mapping::model::line_of(&text, s.start))
            .unwrap_or(1);
        vec![format!("{shown}:{line}: {}", e.message())]
    })?;
    let mut problems = Vec::new();
    for (index, basis) in file.basis.iter().enumerate() {
        let at = format!("{shown}: basis[{index}]");
        match basis.window() {
            None => problems.push(format!("{at}: from/until must be FHIR dateTimes")),
            Some((from, until)) if from > until => {
                problems.push(format!("{at}: impossible window, from is after until"))
            }
            Some(_) => {}
        }
        if basis.reference.trim().is_empty() {
            problems.push(format!(
                "{at}: reference is required (what authorises the disclosure)"
            ));
        }
        if basis.kind == BasisKind::UninterruptedScholarsAct && basis.patients.is_empty() {
            problems.push(format!("{at}: an Uninterrupted Scholars Act basis must list the students the agency is responsible for (patients)"));
        }
        if basis.part2 && basis.kind != BasisKind::CourtOrder {
            problems.push(format!(
                "{at}: only a court order can authorise 42 CFR Part 2 data (part2 = true)"
            ));
        }
    }
    if problems.is_empty() {
        Ok(file.basis)
    } else {
        Err(problems)
    }
}
