//! The `case.toml` model.
//!
//! ```toml
//! name = "student with two guardians"
//! expect = "success"            # success | rejected
//! input = "input"               # file or folder in the case folder (default: input)
//! roster = "roster"             # for referral mappings
//! format = "ndjson"             # ndjson | bundle
//! json_equals = "expected.json" # the whole output, as a JSON array of lines
//! json_contains = "contains.json"
//! error_contains = ["line 3", "student_id"]
//! quirk_contains = ["Windows-1252"]
//! rejected = 1                  # exact number of rejected records
//! converted = 2                 # exact number of converted records
//! ```

use crate::pipeline::OutputFormat;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// What a case expects overall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    /// Every record converts and every output is valid.
    Success,
    /// At least one record (or the whole input) is rejected.
    Rejected,
    /// The consent gate denies release (cases for the consent gate).
    ConsentDenied,
    /// The consent gate releases a redacted record (cases for the consent gate).
    Redacted,
}

/// Text or a list of texts.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One text.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl OneOrMany {
    /// The texts.
    pub fn items(&self) -> Vec<&str> {
        match self {
            Self::One(s) => vec![s.as_str()],
            Self::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

/// A parsed `case.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    /// A readable name.
    pub name: String,
    /// The overall expectation.
    pub expect: Expect,
    /// The mapping to run (default: the name of the folder above the case).
    #[serde(default)]
    pub mapping: Option<String>,
    /// The input, relative to the case folder.
    #[serde(default = "default_input")]
    pub input: PathBuf,
    /// The roster, relative to the case folder.
    #[serde(default)]
    pub roster: Option<PathBuf>,
    /// Output format.
    #[serde(default)]
    pub format: OutputFormat,
    /// Conversion time stamped into outputs.
    #[serde(default = "default_now")]
    pub now: String,
    /// File holding the exact expected output.
    #[serde(default)]
    pub json_equals: Option<PathBuf>,
    /// File holding JSON the output must contain.
    #[serde(default)]
    pub json_contains: Option<PathBuf>,
    /// Texts a rejection (or the fatal error) must contain.
    #[serde(default)]
    pub error_contains: Option<OneOrMany>,
    /// Texts a tolerated quirk must contain.
    #[serde(default)]
    pub quirk_contains: Option<OneOrMany>,
    /// Exact number of rejected records.
    #[serde(default)]
    pub rejected: Option<u64>,
    /// Exact number of converted records.
    #[serde(default)]
    pub converted: Option<u64>,
    /// A consent case: a record, consents and a request instead of a mapping run.
    #[serde(default)]
    pub consent: Option<ConsentCase>,
}

/// The `[consent]` table of a consent case: record + consents + recipient + purpose → expected decision,
/// obligations and released output.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentCase {
    /// The record (a referral Bundle).
    pub bundle: PathBuf,
    /// Consent resources (file or folder).
    #[serde(default)]
    pub consents: Option<PathBuf>,
    /// Legal bases (TOML).
    #[serde(default)]
    pub bases: Option<PathBuf>,
    /// The recipient.
    pub recipient: String,
    /// The purpose of use.
    pub purpose: String,
    /// The source organization.
    #[serde(default)]
    pub source: Option<String>,
    /// The decision time.
    pub time: String,
    /// Expected outcome: permit, deny, no-consent.
    pub decision: String,
    /// Expected basis: consent, ferpa-health-safety-emergency, uninterrupted-scholars-act, court-order, none.
    #[serde(default)]
    pub basis: Option<String>,
    /// Expected withheld classes and labels (exactly).
    #[serde(default)]
    pub withheld: Option<Vec<String>>,
    /// Whether the Part 2 redisclosure notice must be attached.
    #[serde(default)]
    pub notice: Option<bool>,
    /// Texts the explanation must contain.
    #[serde(default)]
    pub explanation_contains: Option<OneOrMany>,
    /// Texts a registry problem (a consent not admitted) must contain.
    #[serde(default)]
    pub registry_problems_contain: Option<OneOrMany>,
    /// The released record must contain this JSON (as a one-element array).
    #[serde(default)]
    pub json_contains: Option<PathBuf>,
    /// Texts that must not appear anywhere in the released record (withheld data must not leak).
    #[serde(default)]
    pub released_excludes: Option<OneOrMany>,
    /// The released record must equal this JSON (as a one-element array).
    #[serde(default)]
    pub json_equals: Option<PathBuf>,
    /// The decision policy, as `[consent]` of the configuration file gives it (default: the defaults).
    #[serde(default)]
    pub policy: Option<CasePolicy>,
    /// Where the released record is written as a delivery destination would (`hmis-csv`, `file`): the
    /// obligation side file must then exist and contain these texts.
    #[serde(default)]
    pub side_file_contains: Option<OneOrMany>,
}

/// `[consent.policy]` of a consent case: custodial roles and ages of consent.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CasePolicy {
    /// v3 RoleCode relationships whose holder may consent for a minor.
    #[serde(default)]
    pub custodial_roles: Option<Vec<String>>,
    /// The age from which a person must consent themselves.
    #[serde(default)]
    pub age_of_majority: Option<u32>,
    /// Ages of consent per regime (policy code).
    #[serde(default)]
    pub age_of_consent: std::collections::BTreeMap<String, u32>,
    /// Organizations a source organization holds records for (`[partners.X] custodian_for`).
    #[serde(default)]
    pub custodian_for: std::collections::BTreeMap<String, Vec<String>>,
}

fn default_input() -> PathBuf {
    PathBuf::from("input")
}

fn default_now() -> String {
    "2026-01-15T09:00:00Z".to_owned()
}

/// Read a case file; errors name the file and line.
pub fn load(path: &Path) -> Result<CaseFile, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|s| crate::mapping::model::line_of(&text, s.start))
            .unwrap_or(1);
        format!("{}:{line}: {}", path.display(), e.message())
    })
}
