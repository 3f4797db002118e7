//! Finding and running conformance cases.
//!
//! Set `ONEDOOR_BLESS=1` to (re)write each case's `json_equals` file from the actual output — then read the
//! diff before committing it, as with any golden file.

use super::case::{self, CaseFile, Expect};
use super::compare;
use crate::adapters::registry;
use crate::mapping::{EngineOptions, catalog};
use crate::pipeline::{self, ConvertRequest, NdjsonSink, PipelineError, Summary};
use crate::record::Quirk;
use crate::validation::Validator;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The outcome of one case.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    /// The case folder.
    pub path: PathBuf,
    /// The case's name.
    pub name: String,
    /// The mapping it ran.
    pub mapping: String,
    /// Whether every check held.
    pub passed: bool,
    /// What did not hold.
    pub failures: Vec<String>,
    /// How long it took.
    #[serde(serialize_with = "as_millis")]
    pub duration: Duration,
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

/// The outcome of a suite run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SuiteResult {
    /// Every case run.
    pub cases: Vec<CaseResult>,
    /// Mappings that have no case (each a failure).
    pub mappings_without_cases: Vec<String>,
}

impl SuiteResult {
    /// Cases that passed.
    pub fn passed(&self) -> usize {
        self.cases.iter().filter(|c| c.passed).count()
    }

    /// Whether the suite failed (a case failed, or a mapping has no case).
    pub fn failed(&self) -> bool {
        self.passed() != self.cases.len() || !self.mappings_without_cases.is_empty()
    }
}

/// Run every case under `path` (the suite root, an adapter or mapping folder, or one case). When
/// `require_cases` is set, every mapping under `mappings_dir` must have at least one case.
pub fn run_suite(path: &Path, mappings_dir: &Path, require_cases: bool) -> SuiteResult {
    let mut result = SuiteResult::default();
    for dir in case_dirs(path) {
        result.cases.push(run_case(&dir, mappings_dir));
    }
    if require_cases {
        let covered: BTreeSet<&str> = result.cases.iter().map(|c| c.mapping.as_str()).collect();
        let mut sources_covered = BTreeSet::new();
        for file in catalog::mapping_files(mappings_dir) {
            let Ok(mapping) = catalog::load(&file) else {
                continue;
            };
            let adapter = mapping.file.mapping.adapter.get_ref();
            if covered.contains(mapping.name()) {
                sources_covered.insert(adapter.clone());
                continue;
            }
            result.mappings_without_cases.push(format!(
                "{} ({}) has no conformance cases (expected conformance/{adapter}/{}/<case>/case.toml)",
                mapping.name(),
                mapping.display_path(),
                mapping.name()
            ));
        }
        result
            .mappings_without_cases
            .extend(sources_without_cases(&sources_covered));
    }
    result
}

/// A line for each registered source no mapping with conformance cases reads.
fn sources_without_cases(covered: &BTreeSet<String>) -> Vec<String> {
    registry::SOURCES
        .iter()
        .map(|source| source.description())
        .filter(|source| !covered.contains(source.name))
        .map(|source| {
            format!(
                "source '{name}' ({}) has no mapping with conformance cases (expected \
                 mappings/{name}/<mapping>.toml and conformance/{name}/<mapping>/<case>/case.toml)",
                source.reads,
                name = source.name
            )
        })
        .collect()
}

/// Case folders (those holding a `case.toml`) under `path`, sorted.
pub fn case_dirs(path: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    collect(path, &mut found);
    found.sort();
    found
}

fn collect(dir: &Path, found: &mut Vec<PathBuf>) {
    if dir.join("case.toml").is_file() {
        found.push(dir.to_owned());
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        if entry.path().is_dir() {
            collect(&entry.path(), found);
        }
    }
}

/// Run one case folder.
pub fn run_case(dir: &Path, mappings_dir: &Path) -> CaseResult {
    let started = Instant::now();
    let folder_mapping = dir
        .parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut result = CaseResult {
        path: dir.to_owned(),
        name: dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        mapping: folder_mapping.clone(),
        passed: false,
        failures: Vec::new(),
        duration: Duration::ZERO,
    };
    match case::load(&dir.join("case.toml")) {
        Err(why) => result.failures.push(why),
        Ok(case) => {
            result.name = case.name.clone();
            result.mapping = case.mapping.clone().unwrap_or(folder_mapping);
            result.failures = check_case(dir, &case, &result.mapping, mappings_dir);
        }
    }
    result.passed = result.failures.is_empty();
    result.duration = started.elapsed();
    result
}

fn check_case(dir: &Path, case: &CaseFile, mapping: &str, mappings_dir: &Path) -> Vec<String> {
    if let Some(spec) = &case.consent {
        return super::consent_case::check(dir, case, spec);
    }
    if matches!(case.expect, Expect::ConsentDenied | Expect::Redacted) {
        return vec!["consent_denied and redacted cases need a [consent] table (record, consents, recipient, purpose)".into()];
    }
    let request = ConvertRequest {
        mappings_dir: mappings_dir.to_owned(),
        mapping: mapping.to_owned(),
        input: dir.join(&case.input),
        roster: case.roster.as_ref().map(|r| dir.join(r)),
        engine: EngineOptions {
            now: case.now.clone(),
            source_system: None,
        },
        keep_outcomes: false,
        incident_history: None,
    };
    let mut sink = NdjsonSink::new(Vec::new(), case.format);
    let outcome = pipeline::convert(&request, &mut sink);
    let lines = parse_lines(&sink.into_inner());
    let mut failures = Vec::new();
    check_outcome(case, &outcome, &mut failures);
    check_outputs(dir, case, &lines, &mut failures);
    failures
}

fn parse_lines(bytes: &[u8]) -> Vec<Value> {
    bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|l| serde_json::from_slice(l).ok())
        .collect()
}

fn check_outcome(
    case: &CaseFile,
    outcome: &Result<Summary, PipelineError>,
    failures: &mut Vec<String>,
) {
    let (errors, quirks): (Vec<String>, Vec<Quirk>) = match outcome {
        Ok(summary) => (
            summary.rejected.iter().map(ToString::to_string).collect(),
            summary.quirks.clone(),
        ),
        Err(err) => (vec![err.to_string()], Vec::new()),
    };
    match (case.expect, outcome) {
        (Expect::Success, Err(err)) => {
            failures.push(format!("expected success, the conversion failed: {err}"))
        }
        (Expect::Success, Ok(s)) if s.records_rejected > 0 => failures.push(format!(
            "expected success, {} record(s) rejected: {}",
            s.records_rejected,
            errors.join(" | ")
        )),
        (Expect::Success, Ok(s)) if s.records_converted == 0 => {
            failures.push("expected success, nothing was converted".into())
        }
        (Expect::Rejected, Ok(s)) if s.records_rejected == 0 => {
            failures.push("expected a rejection, every record converted".into())
        }
        _ => {}
    }
    for wanted in case.error_contains.iter().flat_map(|e| e.items()) {
        if !errors.iter().any(|e| e.contains(wanted)) {
            failures.push(format!(
                "no error contains '{wanted}' (errors: {})",
                if errors.is_empty() {
                    "none".into()
                } else {
                    errors.join(" | ")
                }
            ));
        }
    }
    for wanted in case.quirk_contains.iter().flat_map(|e| e.items()) {
        if !quirks.iter().any(|q| q.message.contains(wanted)) {
            let seen: Vec<&str> = quirks.iter().map(|q| q.message.as_str()).collect();
            failures.push(format!(
                "no tolerated quirk contains '{wanted}' (quirks: {})",
                seen.join(" | ")
            ));
        }
    }
    if let Ok(summary) = outcome {
        count_check(
            "rejected",
            case.rejected,
            summary.records_rejected,
            failures,
        );
        count_check(
            "converted",
            case.converted,
            summary.records_converted,
            failures,
        );
    }
}

fn count_check(what: &str, expected: Option<u64>, actual: u64, failures: &mut Vec<String>) {
    if let Some(expected) = expected.filter(|e| *e != actual) {
        failures.push(format!(
            "expected {expected} {what} record(s), found {actual}"
        ));
    }
}

fn check_outputs(dir: &Path, case: &CaseFile, lines: &[Value], failures: &mut Vec<String>) {
    let validator = Validator::new();
    for (index, line) in lines.iter().enumerate() {
        for issue in validator.validate(line) {
            failures.push(format!("output line {}: invalid FHIR: {issue}", index + 1));
        }
    }
    let actual = Value::Array(lines.to_vec());
    if let Some(file) = &case.json_equals {
        check_equals(&dir.join(file), &actual, failures);
    }
    if let Some(file) = &case.json_contains {
        match read_json(&dir.join(file)) {
            Ok(expected) => {
                if let Err(diff) = compare::contains(&actual, &expected) {
                    failures.push(format!(
                        "output does not contain {}: {diff}",
                        file.display()
                    ));
                }
            }
            Err(why) => failures.push(why),
        }
    }
}

fn check_equals(path: &Path, actual: &Value, failures: &mut Vec<String>) {
    if std::env::var_os("ONEDOOR_BLESS").is_some() {
        let text = serde_json::to_string_pretty(actual).unwrap_or_default() + "\n";
        if let Err(err) = std::fs::write(path, text) {
            failures.push(format!("{}: cannot write: {err}", path.display()));
        }
        return;
    }
    match read_json(path) {
        Ok(expected) if &expected == actual => {}
        Ok(expected) => {
            let diff = compare::contains(actual, &expected).err().or_else(|| {
                compare::contains(&expected, actual)
                    .err()
                    .map(|d| format!("unexpected output: {d}"))
            });
            failures.push(format!(
                "output differs from {}: {}",
                path.display(),
                diff.unwrap_or_else(|| "order or count of lines differs".into())
            ));
        }
        Err(why) => failures.push(why),
    }
}

fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| format!("{}:{}: invalid JSON: {e}", path.display(), e.line()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registered_source_no_mapping_with_cases_reads_is_named() {
        let all: BTreeSet<String> = registry::SOURCES
            .iter()
            .map(|s| s.description().name.to_owned())
            .collect();
        assert!(sources_without_cases(&all).is_empty());
        let mut some = all.clone();
        some.remove("sif");
        let missing = sources_without_cases(&some);
        assert_eq!(missing.len(), 1);
        assert!(missing[0].starts_with("source 'sif'"), "{}", missing[0]);
    }
}
