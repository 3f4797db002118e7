//! The mapping file format (TOML), as a district IT person writes it. Expressions and targets keep their
//! position in the file so every problem can be reported as `file:line`.

use crate::record::TextEncoding;
use serde::Deserialize;
use toml::Spanned;

/// A whole mapping file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingFile {
    /// What the mapping is and what it reads.
    pub mapping: Header,
    /// How the adapter reads the source.
    #[serde(default)]
    pub source: SourceOptions,
    /// The FHIR resources built from each record.
    #[serde(default)]
    pub resources: Vec<ResourceMap>,
}

/// The `[mapping]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// The name used on the command line (`--mapping NAME`) and in conformance folders.
    pub name: String,
    /// The adapter that decodes the source (`oneroster`, `referral-csv`, `fhir`).
    pub adapter: Spanned<String>,
    /// A one-line title for the crosswalk.
    #[serde(default)]
    pub title: Option<String>,
    /// A longer description for the crosswalk.
    #[serde(default)]
    pub description: Option<String>,
    /// The `Identifier.system` naming the source system; available to expressions as `source_system`.
    pub source_system: String,
    /// For referrals: the mapping that turns the referred student's roster entry into Patient and
    /// RelatedPerson resources carried in the same bundle.
    #[serde(default)]
    pub roster_mapping: Option<Spanned<String>>,
    /// Pass FHIR input through unchanged (validated), instead of building resources.
    #[serde(default)]
    pub passthrough: bool,
}

/// The `[source]` table: how the adapter reads text and dates.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceOptions {
    /// Text encoding of CSV files.
    #[serde(default)]
    pub encoding: TextEncoding,
    /// How to read a slash date whose day and month could be either (`1/05/2023`).
    #[serde(default)]
    pub ambiguous_dates: DateOrder,
    /// Repeat-incident window (`niem`): earlier incidents older than this many days are not counted.
    #[serde(default = "default_repeat_window_days")]
    pub repeat_window_days: u32,
}

fn default_repeat_window_days() -> u32 {
    365
}

impl Default for SourceOptions {
    fn default() -> Self {
        Self {
            encoding: TextEncoding::default(),
            ambiguous_dates: DateOrder::default(),
            repeat_window_days: default_repeat_window_days(),
        }
    }
}

/// Day/month order for ambiguous slash dates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DateOrder {
    /// Month first (US): `1/05/2023` is January 5.
    #[default]
    Mdy,
    /// Day first: `1/05/2023` is May 1.
    Dmy,
}

/// One `[[resources]]` table: a FHIR resource built from each record of a kind.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceMap {
    /// A label for the crosswalk (`student`, `guardian`).
    pub name: String,
    /// The record kind it is built from (`student`, `guardian_link`, `org`, `referral`).
    pub from: Spanned<String>,
    /// The FHIR resource type.
    #[serde(rename = "type")]
    pub resource_type: Spanned<String>,
    /// Expression giving the record's source id; the FHIR id is derived from it and `source_system`.
    pub id: Spanned<String>,
    /// Expression: build the resource only when it is true.
    #[serde(default)]
    pub when: Option<Spanned<String>>,
    /// A profile URL to claim in `meta.profile`.
    #[serde(default)]
    pub profile: Option<String>,
    /// The element rules, applied in order.
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// One `[[resources.rules]]` table: source expression → FHIR element.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The FHIR element path (`name[0].given[+]`, `identifier[+]`).
    pub target: Spanned<String>,
    /// A MiniJinja expression over the record (`user.givenName`, `demographics.sex | code('sex')`).
    pub value: Spanned<String>,
    /// Expression: apply the rule only when it is true.
    #[serde(default)]
    pub when: Option<Spanned<String>>,
    /// An empty value rejects the record instead of leaving the element out.
    #[serde(default)]
    pub required: bool,
    /// A note for the crosswalk.
    #[serde(default)]
    pub note: Option<String>,
}

/// The 1-based line of a byte offset in a text.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}
