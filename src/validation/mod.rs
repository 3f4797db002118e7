//! Validation of every FHIR output: the FHIR R4 JSON schema, the typed model of `fhir-sdk` (required
//! elements, known codes), and the SDOHCC profile rules checked in code (`canonical::profile`).
//! FHIR invariants the schema cannot express (ele-1, dom-2..5, ref-1, per-1, the Bundle rules, the
//! resource rules and the SDOHCC profile invariants) are evaluated as FHIRPath (`invariants`, `fhirpath`).
//! Each issue names the JSON path of the element concerned (`/entry/2/resource/status`).

pub mod fhirpath;
pub mod invariants;
mod memo;
pub mod numbers;
mod primitives;
mod schema;
mod schema_text;

pub use memo::ValidMemo;
pub use schema::{ElementInfo, FhirSchema};

use crate::canonical::profile;
use crate::members::Members;
use serde::Serialize;
use serde_json::Value;
use std::fmt;

/// Compile ahead what validating resources of these types needs: the schema (parsed once), its validator
/// for each type, the invariants. `convert` on more than one core calls this on a thread of its own while
/// the source is opened, instead of the first record paying for it on the thread every other waits for.
pub fn prepare(resource_types: &[String]) {
    let schema = schema::FhirSchema::global();
    for resource_type in resource_types {
        schema.prepare(resource_type);
    }
    invariants::prepare();
}

/// Which check found an issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum IssueSource {
    /// The FHIR R4 JSON schema.
    Schema,
    /// The typed FHIR model (fhir-sdk).
    Model,
    /// An SDOHCC profile rule.
    Profile,
    /// A FHIR invariant (bdl-7, per-1...).
    Invariant,
}

/// One validation problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Issue {
    /// JSON pointer of the element (`/status`, `/entry/0/resource/code`); empty for the whole document.
    pub path: String,
    /// What is wrong and what was expected.
    pub message: String,
    /// Which check found it.
    pub source: IssueSource,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "/"
        } else {
            &self.path
        };
        let source = match self.source {
            IssueSource::Schema => "schema",
            IssueSource::Model => "model",
            IssueSource::Profile => "profile",
            IssueSource::Invariant => "invariant",
        };
        write!(f, "{path}: {} [{source}]", self.message)
    }
}

/// Validates FHIR resources and Bundles; cheap to share, compiled schemas are cached per resource type.
pub struct Validator {
    schema: &'static FhirSchema,
}

impl Default for Validator {
    fn default() -> Self {
        Self::new()
    }
}

impl Validator {
    /// A validator over the vendored FHIR R4 schema.
    pub fn new() -> Self {
        Self {
            schema: FhirSchema::global(),
        }
    }

    /// Every issue of a resource or Bundle (empty when valid).
    pub fn validate(&self, resource: &Value) -> Vec<Issue> {
        let mut issues = Vec::new();
        self.validate_at(resource, "", &mut issues);
        issues
    }

    /// The resources of `bundle`'s entries from the `first`, each validated on its own as
    /// [`Validator::validate`] validates a resource (issues at `/entry/N/resource/...`); the Bundle itself
    /// and the entries before `first` are not: for a bundle the gateway assembled around a resource it has
    /// just validated.
    pub fn validate_entries_from(&self, bundle: &Value, first: usize) -> Vec<Issue> {
        let entries = (bundle.member("entry").and_then(Value::as_array))
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut issues = Vec::new();
        for (index, entry) in entries.iter().enumerate().skip(first) {
            let Some(resource) = entry.member("resource") else {
                continue;
            };
            let prefix = format!("/entry/{index}/resource");
            issues.extend(self.validate(resource).into_iter().map(|issue| Issue {
                path: format!("{prefix}{}", issue.path),
                ..issue
            }));
        }
        issues
    }

    /// Every issue of a Bundle assembled around resources each already validated as
    /// [`Validator::validate`] validates a resource, the same values (a job's records: the pipeline
    /// validated every resource it built before the job's sink wrapped them in a transaction Bundle).
    /// What validating the Bundle adds to that is checked: its own schema and profile checks and the
    /// invariants of the whole document, evaluated in the Bundle (where a reference resolves to another
    /// entry, as `SDOH-Task` rules ask). Each entry's schema, typed-model and profile checks are not
    /// repeated: they are functions of the resource alone and found nothing in it already, so the issues
    /// are those [`Validator::validate`] would give. A record that is not a Bundle is checked whole (its
    /// own checks are all there are).
    pub fn validate_assembled(&self, record: &Value) -> Vec<Issue> {
        let mut issues = Vec::new();
        self.validate_own(record, "", &mut issues);
        issues
    }

    fn validate_at(&self, resource: &Value, prefix: &str, issues: &mut Vec<Issue>) {
        if self.validate_own(resource, prefix, issues) != Some("Bundle") {
            return;
        }
        let entry_prefix = format!("{prefix}/entry/");
        let entries = resource
            .member("entry")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for (index, entry) in entries.iter().enumerate() {
            if let Some(inner) = entry.member("resource") {
                self.validate_at(inner, &format!("{entry_prefix}{index}/resource"), issues);
            }
        }
    }

    /// The checks of `resource` itself, not of the resources in a Bundle's entries (the invariants of the
    /// whole document when it is the root); its type (`None`: it has none, which is the issue).
    fn validate_own<'r>(
        &self,
        resource: &'r Value,
        prefix: &str,
        issues: &mut Vec<Issue>,
    ) -> Option<&'r str> {
        let Some(kind) = resource.member("resourceType").and_then(Value::as_str) else {
            issues.push(Issue {
                path: prefix.to_owned(),
                message: "no resourceType (expected a FHIR resource)".into(),
                source: IssueSource::Schema,
            });
            return None;
        };
        for issue in self.schema.validate(kind, resource) {
            // Errors inside a Bundle entry's resource are opaque there (a oneOf over every resource type);
            // each entry is validated against its own type below instead.
            let inside_entry = kind == "Bundle"
                && issue
                    .path
                    .strip_prefix("/entry/")
                    .is_some_and(|rest| rest.contains("/resource"));
            if !inside_entry {
                issues.push(Issue {
                    path: format!("{prefix}{}", issue.path),
                    ..issue
                });
            }
        }
        if onedoor_fhir::TYPED_RESOURCE_TYPES.contains(&kind)
            && let Err(err) = onedoor_fhir::check_value(resource)
        {
            issues.push(Issue {
                path: format!("{prefix}{}", dotted_to_pointer(&err.path)),
                message: err.message,
                source: IssueSource::Model,
            });
        }
        if prefix.is_empty() {
            // Walks the whole document: contained resources and Bundle entries (nested Bundles too).
            issues.extend(invariants::check(resource, prefix));
        }
        for violation in profile::check(resource) {
            issues.push(Issue {
                path: format!("{prefix}{}", violation.path),
                message: violation.message,
                source: IssueSource::Profile,
            });
        }
        Some(kind)
    }
}

/// `name[0].given` (the typed check's dotted path) → `/name/0/given`.
fn dotted_to_pointer(path: &str) -> String {
    if path == "." || path.is_empty() {
        return String::new();
    }
    let mut out = String::new();
    for part in path.split('.') {
        let mut rest = part;
        if let Some(open) = rest.find('[') {
            out.push('/');
            out.push_str(&rest[..open]);
            rest = &rest[open..];
            for index in rest.split(['[', ']']).filter(|s| !s.is_empty()) {
                out.push('/');
                out.push_str(index);
            }
        } else {
            out.push('/');
            out.push_str(rest);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_paths_become_pointers() {
        assert_eq!(dotted_to_pointer("name[0].given[1]"), "/name/0/given/1");
        assert_eq!(dotted_to_pointer("."), "");
        assert_eq!(dotted_to_pointer("status"), "/status");
    }
}
