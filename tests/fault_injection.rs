//! A reconciliation test that cannot be fooled (issue 12, item 7): OneRoster, referral-CSV and HMIS exports
//! are generated from a seed with faults injected at random rows (`support/faults.rs` lists them), converted
//! with the library (Bundle output), and each export is checked for
//!
//! - (a) the per-file reconciliation: rows read = the rows the generator wrote = converted + nothing to map +
//!   rejected + skipped (+ read by other records), nothing unaccounted, every skipped row listed;
//! - (b) every injected fault reported at its file and line: rejected or skipped there, or a quirk counted
//!   once per injected occurrence at least whose first line is one of theirs (a quirk keeps only its first
//!   line, so later occurrences are checked by count); and no rejected or skipped row the faults do not
//!   explain; the first export of each format also through `onedoor convert --report` (exit status 1 when
//!   something was rejected, the report's tallies the library's);
//! - (c) no output resource mixing two people: every Patient, RelatedPerson and Practitioner holds one
//!   person's marker, the person the source key belongs to (the first row of a duplicated key), of the right
//!   kind (a RelatedPerson is a guardian of its Patient, a Practitioner is staff); every Encounter,
//!   Procedure, ServiceRequest and Task names one Patient, the one its source record belongs to, and its
//!   encounter and focus the same one; no resource id holding two contents; every reference resolving; what
//!   must be left out (deleted, rejected, placeholder names) nowhere, and every clean record somewhere;
//! - (d) every output Bundle valid: schema, model, profile and invariants (`onedoor::validation::Validator`,
//!   what `onedoor validate` runs), birth dates plausible, approximate ones kept as a year.
//!
//! Faults the current adapters do not handle are listed in `KNOWN_GAPS` (a failure attributed to one of them
//! does not fail the main test); `known_gaps_are_still_gaps` fails when one of them is fixed, so the list stays
//! honest. `ONEDOOR_FAULT_SEED` sets the first seed (each export's seed is printed on failure, and
//! `ONEDOOR_FAULT_SEED=<seed> ONEDOOR_FAULT_EXPORTS=1` regenerates that export), `ONEDOOR_FAULT_EXPORTS` how
//! many exports per format (default 30). A failing export is kept on disk and its path printed
//! (`ONEDOOR_FAULT_KEEP=1` keeps every export).

#[path = "support/faults.rs"]
mod faults;

use faults::{Expect, Fault, Format, Generated};
use onedoor::mapping::EngineOptions;
use onedoor::pipeline::{self, NdjsonSink, OutputFormat, Summary};
use onedoor::validation::Validator;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Faults the current code does not report or handle as issue 12 asks, per format. A failure attributed to
/// one of these is counted, not failed; `known_gaps_are_still_gaps` checks each still fails somewhere.
/// Empty: a2e4a27 closed two unterminated quotes in one file, OneRoster birth dates in the future or before
/// 1900, a teacher as agent and an HMIS Event outside 4.20; df4b749 the rejected HMIS exits; the Practitioner
/// whose name text followed a contradicting referring_staff_name was closed last. Add
/// `(Format::..., Fault::...)` here when a new fault is not handled yet.
const KNOWN_GAPS: &[(Format, Fault)] = &[];

const DEFAULT_SEED: u64 = 12_007_000;
const DEFAULT_EXPORTS: usize = 30;

/// One problem found in one export, with the injected faults it can be put down to (empty: none).
#[derive(Debug, Clone)]
struct Failure {
    /// Every fault it may come from: on the record, on what the record names, an unterminated quote above
    /// it (a failure is a known gap's when one of these is in `KNOWN_GAPS`).
    faults: BTreeSet<Fault>,
    /// The faults injected on the record itself (a known gap is still a gap when one of its failures has
    /// it here).
    direct: BTreeSet<Fault>,
    message: String,
}

struct Outcome {
    format: Format,
    seed: u64,
    dir: PathBuf,
    kinds: BTreeSet<Fault>,
    ledger: String,
    failures: Vec<Failure>,
}

impl Outcome {
    fn is_known(&self, failure: &Failure) -> bool {
        failure
            .faults
            .iter()
            .any(|f| KNOWN_GAPS.contains(&(self.format, *f)))
    }
    fn unexpected(&self) -> Vec<&Failure> {
        self.failures.iter().filter(|f| !self.is_known(f)).collect()
    }
}

struct Run {
    outcomes: Vec<Outcome>,
    elapsed: Duration,
    exports: usize,
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {v:?}"))
    })
}

/// Generate, convert and check every export once (both tests read the result).
fn run() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| {
        let seed = env_number("ONEDOOR_FAULT_SEED").unwrap_or(DEFAULT_SEED);
        let exports =
            env_number("ONEDOOR_FAULT_EXPORTS").unwrap_or(DEFAULT_EXPORTS as u64) as usize;
        let root = std::env::temp_dir().join(format!(
            "onedoor-fault-injection-{}-{seed}",
            std::process::id()
        ));
        let started = Instant::now();
        let mut outcomes = Vec::new();
        for format in [Format::OneRoster, Format::Referral, Format::Hmis] {
            for i in 0..exports {
                let seed = seed + i as u64;
                let dir = root.join(format!("{format:?}-{seed}").to_lowercase());
                // A panic in the generator or the checks names the seed that reproduces it.
                let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    let generated = match format {
                        Format::OneRoster => faults::oneroster(seed, seed as usize, &dir),
                        Format::Referral => faults::referral(seed, seed as usize, &dir),
                        Format::Hmis => faults::hmis(seed, seed as usize, &dir),
                    };
                    // The first export of each format is converted by `onedoor convert` too.
                    let failures = check(&generated, i == 0);
                    (generated, failures)
                }));
                let Ok((generated, failures)) = attempt else {
                    panic!(
                        "{format:?} export, seed {seed}: panicked (rerun: ONEDOOR_FAULT_SEED={seed} ONEDOOR_FAULT_EXPORTS=1; export at {})",
                        dir.display()
                    );
                };
                let outcome = Outcome {
                    format,
                    seed,
                    dir: dir.clone(),
                    kinds: generated.kinds(),
                    ledger: faults::describe(&generated),
                    failures,
                };
                if outcome.unexpected().is_empty()
                    && std::env::var_os("ONEDOOR_FAULT_KEEP").is_none()
                {
                    let _ = std::fs::remove_dir_all(&dir);
                }
                outcomes.push(outcome);
            }
        }
        let _ = std::fs::remove_dir(&root);
        Run {
            outcomes,
            elapsed: started.elapsed(),
            exports,
        }
    })
}

fn inputs(g: &Generated) -> (&'static str, PathBuf, Option<PathBuf>) {
    match g.format {
        Format::OneRoster => ("oneroster", g.dir.clone(), None),
        Format::Referral => (
            "student-referrals",
            g.dir.join("referrals.csv"),
            Some(g.dir.join("roster")),
        ),
        Format::Hmis => ("hmis-fy2024", g.dir.clone(), None),
    }
}

fn convert(g: &Generated) -> (Summary, Vec<Value>) {
    let (mapping, input, roster) = inputs(g);
    let mappings = Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings");
    let request = pipeline::request(
        &mappings,
        mapping,
        &input,
        roster.as_deref(),
        EngineOptions {
            now: "2026-09-01T00:00:00Z".into(),
            source_system: None,
        },
    );
    let mut sink = NdjsonSink::new(Vec::new(), OutputFormat::Bundle);
    let summary = pipeline::convert(&request, &mut sink).unwrap_or_else(|e| {
        panic!(
            "seed {} ({:?}, {}): the conversion did not run: {e}",
            g.seed,
            g.format,
            g.dir.display()
        )
    });
    let text = String::from_utf8(sink.into_inner()).expect("UTF-8 output");
    let bundles = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("output line is JSON"))
        .collect();
    (summary, bundles)
}

/// `onedoor convert --report` on the export: exit status 1 exactly when something was rejected, and the
/// report's per-file tallies, rejections and skipped rows are the library's.
fn cli_agrees(g: &Generated, summary: &Summary, failures: &mut Vec<Failure>) {
    let (mapping, input, roster) = inputs(g);
    let (output, report) = (
        g.dir.join("cli-output.ndjson"),
        g.dir.join("cli-report.json"),
    );
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_onedoor"));
    command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "convert",
            "--mapping",
            mapping,
            "--format",
            "bundle",
            "--input",
        ])
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .arg("--report")
        .arg(&report);
    if let Some(roster) = roster {
        command.arg("--roster").arg(roster);
    }
    let run = command.output().expect("run onedoor convert");
    let _ = std::fs::remove_file(&output);
    let mut fail = |message: String| {
        failures.push(Failure {
            faults: BTreeSet::new(),
            direct: BTreeSet::new(),
            message,
        })
    };
    let expected = i32::from(summary.records_rejected > 0);
    if run.status.code() != Some(expected) {
        fail(format!(
            "(a) onedoor convert exited {:?} with {} rejected (expected {expected}): {}",
            run.status.code(),
            summary.records_rejected,
            String::from_utf8_lossy(&run.stderr)
        ));
    }
    let Ok(text) = std::fs::read_to_string(&report) else {
        fail("(a) onedoor convert --report wrote no report".into());
        return;
    };
    let _ = std::fs::remove_file(&report);
    let cli: Value = serde_json::from_str(&text).expect("the report is JSON");
    let library = serde_json::to_value(summary).expect("summary");
    for part in [
        "files",
        "rejected",
        "skipped",
        "records_skipped",
        "records_rejected",
    ] {
        if cli[part] != library[part] {
            fail(format!(
                "(a) the report's {part} differs from the library's: {} / {}",
                cli[part], library[part]
            ));
        }
    }
}

/// Every check of one export.
fn check(g: &Generated, with_cli: bool) -> Vec<Failure> {
    let (summary, bundles) = convert(g);
    let mut failures = Vec::new();
    if with_cli {
        cli_agrees(g, &summary, &mut failures);
    }
    reconciliation(g, &summary, &mut failures);
    reported(g, &summary, &mut failures);
    explained(g, &summary, &mut failures);
    output(g, &bundles, &mut failures);
    failures
}

/// The faults injected in a file.
fn faults_in_file(g: &Generated, file: &str) -> BTreeSet<Fault> {
    g.ledger
        .iter()
        .filter(|i| i.file.eq_ignore_ascii_case(file))
        .map(|i| i.fault)
        .collect()
}

/// The faults injected on these markers or keys, and an unterminated quote above their row in its file
/// (its quoted value may swallow the rows after it).
fn faults_on<'a>(g: &Generated, names: impl IntoIterator<Item = &'a String>) -> BTreeSet<Fault> {
    let direct = |name: &String, out: &mut BTreeSet<Fault>| {
        out.extend(g.truth.faults_on.get(name).into_iter().flatten().copied());
        for (file, line) in g.truth.locations.get(name).into_iter().flatten() {
            out.extend(below_a_quote(g, file, *line));
        }
    };
    let mut out = BTreeSet::new();
    for name in names {
        direct(name, &mut out);
        // And the faults on what its row names (the client of an enrollment...).
        if let Some(at) = g.truth.located.get(name) {
            for other in g.truth.row_names.get(at).into_iter().flatten() {
                direct(other, &mut out);
            }
        }
    }
    out
}

/// The faults injected on these markers or keys themselves.
fn faults_direct<'a>(
    g: &Generated,
    names: impl IntoIterator<Item = &'a String>,
) -> BTreeSet<Fault> {
    names
        .into_iter()
        .filter_map(|n| g.truth.faults_on.get(n))
        .flatten()
        .copied()
        .collect()
}

/// The faults injected on the markers and keys the row at (file, line) holds.
fn direct_of_row(g: &Generated, file: &str, line: u64) -> BTreeSet<Fault> {
    faults_direct(
        g,
        g.truth
            .row_names
            .iter()
            .filter(|((f, l), _)| f.eq_ignore_ascii_case(file) && *l == line)
            .flat_map(|(_, names)| names),
    )
}

/// The faults on what the row at (file, line) holds and names.
fn faults_of_row(g: &Generated, file: &str, line: u64) -> BTreeSet<Fault> {
    let names = g
        .truth
        .row_names
        .iter()
        .filter(|((f, l), _)| f.eq_ignore_ascii_case(file) && *l == line)
        .flat_map(|(_, names)| names);
    let mut out = faults_on(g, names);
    out.extend(below_a_quote(g, file, line));
    out
}

/// The unterminated quote injected in `file` above `line`, if one was.
fn below_a_quote(g: &Generated, file: &str, line: u64) -> Option<Fault> {
    g.ledger
        .iter()
        .find(|i| {
            matches!(
                i.fault,
                Fault::UnterminatedQuote | Fault::UnterminatedQuoteTwiceInAFile
            ) && i.file.eq_ignore_ascii_case(file)
                && i.lines[0] < line
        })
        .map(|i| i.fault)
}

// (a) ---------------------------------------------------------------------------------------------------

fn record_tables(format: Format) -> &'static [&'static str] {
    match format {
        Format::OneRoster => &["users.csv", "orgs.csv"],
        Format::Referral => &["referrals.csv"],
        Format::Hmis => &[
            "Client.csv",
            "Enrollment.csv",
            "Exit.csv",
            "Services.csv",
            "Event.csv",
            "Organization.csv",
        ],
    }
}

fn reconciliation(g: &Generated, summary: &Summary, failures: &mut Vec<Failure>) {
    let mut fail = |file: &str, message: String| {
        failures.push(Failure {
            faults: faults_in_file(g, file),
            direct: BTreeSet::new(),
            message,
        })
    };
    for file in &summary.files {
        let sum = file.converted + file.without_output + file.rejected + file.skipped + file.joined;
        if file.unaccounted != 0 || file.rows != sum {
            fail(
                &file.file,
                format!("(a) {} does not reconcile: {file:?}", file.file),
            );
        }
        if let Some((_, written)) = g
            .rows
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(&file.file))
            && file.rows != *written
        {
            fail(
                &file.file,
                format!(
                    "(a) {}: {} rows read, the generator wrote {written}",
                    file.file, file.rows
                ),
            );
        }
    }
    for table in record_tables(g.format) {
        let written = g.rows.get(*table).copied().unwrap_or_default();
        let tally = summary
            .files
            .iter()
            .find(|f| f.file.eq_ignore_ascii_case(table));
        if written > 0 && tally.is_none() {
            fail(
                table,
                format!("(a) {table}: {written} rows written, no tally in the summary"),
            );
        }
        if let Some(tally) = tally
            && tally.joined != 0
        {
            fail(
                table,
                format!(
                    "(a) {table} is a record table but has rows 'read by other records': {tally:?}"
                ),
            );
        }
    }
    let skipped: u64 = summary.files.iter().map(|f| f.skipped).sum();
    if skipped != summary.skipped.len() as u64 {
        failures.push(Failure {
            faults: BTreeSet::new(),
            direct: BTreeSet::new(),
            message: format!(
                "(a) {skipped} rows counted skipped, {} listed",
                summary.skipped.len()
            ),
        });
    }
}

// (b) ---------------------------------------------------------------------------------------------------

fn at_line(summary: &Summary, file: &str, lines: &[u64]) -> String {
    let mut out = Vec::new();
    for r in &summary.rejected {
        if r.position.line.is_some_and(|l| lines.contains(&l)) {
            out.push(format!("rejected: {r}"));
        }
    }
    for s in &summary.skipped {
        if lines.contains(&s.line) {
            out.push(format!("skipped: {} line {}: {}", s.file, s.line, s.reason));
        }
    }
    for q in &summary.quirks {
        if q.first_line.is_some_and(|l| lines.contains(&l)) && q.message.contains(file) {
            out.push(format!(
                "quirk: {} ({}x, first line {:?})",
                q.message, q.count, q.first_line
            ));
        }
    }
    if out.is_empty() {
        "nothing is reported at those lines".into()
    } else {
        out.join("; ")
    }
}

fn reported(g: &Generated, summary: &Summary, failures: &mut Vec<Failure>) {
    // Quirks are kept once per message with their first line: faults expecting the same quirk are checked
    // together (counted once each at least, the first line one of theirs).
    // (fault, file, the expected words joined) -> (the faults' lines, how many faults, the expected words)
    type QuirkGroups<'w> = BTreeMap<(Fault, String, String), (Vec<u64>, u64, &'w [&'w str])>;
    let mut quirk_groups: QuirkGroups = BTreeMap::new();
    for injected in &g.ledger {
        let same_file = |f: &str| f.eq_ignore_ascii_case(&injected.file);
        let located = |line: Option<u64>| line.is_some_and(|l| injected.lines.contains(&l));
        let found = match &injected.expect {
            Expect::Rejected(words) => summary.rejected.iter().any(|r| {
                same_file(&r.position.file)
                    && located(r.position.line)
                    && words.iter().any(|w| r.message.contains(w))
            }),
            Expect::Skipped(reasons) => summary.skipped.iter().any(|s| {
                same_file(&s.file)
                    && located(Some(s.line))
                    && reasons.iter().any(|r| s.reason.contains(r))
            }),
            Expect::QuirkNamingLine(text, file) => summary.quirks.iter().any(|q| {
                q.message.contains(text)
                    && injected
                        .lines
                        .iter()
                        .any(|l| q.message.contains(&format!("{file} line {l},")))
            }),
            Expect::RejectedOrQuirk(words) => {
                // Rejected at its line; or else one of a group of quirks (checked below).
                let rejected = summary
                    .rejected
                    .iter()
                    .any(|r| same_file(&r.position.file) && located(r.position.line));
                if !rejected {
                    let entry = quirk_groups
                        .entry((injected.fault, injected.file.clone(), words.join("|")))
                        .or_insert((Vec::new(), 0, words));
                    entry.0.extend(&injected.lines);
                    entry.1 += 1;
                }
                true
            }
            Expect::Quirk(words) => {
                // A rejection at its line reports it too (what the row links is then left out: the output
                // checks say whether anything else was lost).
                let rejected = summary.rejected.iter().any(|r| {
                    same_file(&r.position.file)
                        && located(r.position.line)
                        && r.position.line != Some(1)
                });
                if !rejected {
                    let entry = quirk_groups
                        .entry((injected.fault, injected.file.clone(), words.join("|")))
                        .or_insert((Vec::new(), 0, words));
                    entry.0.extend(&injected.lines);
                    entry.1 += 1;
                }
                true
            }
            Expect::FileQuirk(words) => summary.quirks.iter().any(|q| {
                q.message.contains(&injected.file) && words.iter().any(|w| q.message.contains(w))
            }),
            Expect::Output => true,
        };
        if !found {
            let mut faults = BTreeSet::from([injected.fault]);
            faults.extend(faults_of_row(g, &injected.file, injected.lines[0]));
            failures.push(Failure {
                faults,
                direct: BTreeSet::from([injected.fault]),
                message: format!(
                    "(b) {:?} not reported as {:?} at {} line(s) {:?} ({}): {}",
                    injected.fault,
                    injected.expect,
                    injected.file,
                    injected.lines,
                    injected.what,
                    at_line(summary, &injected.file, &injected.lines)
                ),
            });
        }
    }
    for ((fault, file, _), (lines, count, words)) in quirk_groups {
        let matching: Vec<_> = summary
            .quirks
            .iter()
            .filter(|q| q.message.contains(&file) && words.iter().any(|w| q.message.contains(w)))
            .collect();
        // Its first line is one of the faults', or a row the faults explain (an event dated after an exit
        // that is itself a fault).
        let explained = |l: u64| {
            lines.contains(&l)
                || g.tolerated
                    .iter()
                    .any(|(f, t)| f.eq_ignore_ascii_case(&file) && *t == l)
        };
        let ok = matching
            .iter()
            .any(|q| q.count >= count && q.first_line.is_some_and(explained));
        if !ok {
            let mut faults = BTreeSet::from([fault]);
            for line in &lines {
                faults.extend(faults_of_row(g, &file, *line));
            }
            failures.push(Failure {
                faults,
                direct: BTreeSet::from([fault]),
                message: format!(
                    "(b) {fault:?} ({count}x at {file} lines {lines:?}) not reported as a quirk {words:?} counted {count}x first on one of those lines: {}",
                    if matching.is_empty() {
                        at_line(summary, &file, &lines)
                    } else {
                        format!("{matching:?}")
                    }
                ),
            });
        }
    }
}

/// Every rejected or skipped row is a fault's, or one the faults (or what it is) explain.
fn explained(g: &Generated, summary: &Summary, failures: &mut Vec<Failure>) {
    let explains = |file: &str, line: u64| {
        g.ledger
            .iter()
            .any(|i| i.file.eq_ignore_ascii_case(file) && i.lines.contains(&line))
            || g.tolerated
                .iter()
                .any(|(f, l)| f.eq_ignore_ascii_case(file) && *l == line)
    };
    for r in &summary.rejected {
        let Some(line) = r.position.line else {
            failures.push(Failure {
                faults: faults_in_file(g, &r.position.file),
                direct: BTreeSet::new(),
                message: format!("(b) a rejection without a line: {r}"),
            });
            continue;
        };
        if !explains(&r.position.file, line) {
            failures.push(Failure {
                faults: faults_of_row(g, &r.position.file, line),
                direct: direct_of_row(g, &r.position.file, line),
                message: format!("(b) a clean row rejected: {r}"),
            });
        }
    }
    for s in &summary.skipped {
        let skippable = g
            .skippable
            .iter()
            .any(|(f, l)| f.eq_ignore_ascii_case(&s.file) && *l == s.line);
        if !explains(&s.file, s.line) && !skippable {
            failures.push(Failure {
                faults: faults_of_row(g, &s.file, s.line),
                direct: direct_of_row(g, &s.file, s.line),
                message: format!(
                    "(b) a clean row skipped: {} line {}: {}",
                    s.file, s.line, s.reason
                ),
            });
        }
    }
}

// (c) and (d) -------------------------------------------------------------------------------------------

fn markers(value: &Value, skip: &[&str]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    fn walk(value: &Value, skip: &[&str], out: &mut BTreeSet<String>) {
        match value {
            Value::String(s) => faults::markers_in(s, out),
            Value::Array(items) => items.iter().for_each(|v| walk(v, skip, out)),
            Value::Object(map) => {
                for (k, v) in map {
                    if !skip.contains(&k.as_str()) {
                        walk(v, skip, out);
                    }
                }
            }
            _ => {}
        }
    }
    walk(value, skip, &mut out);
    out
}

fn people(markers: &BTreeSet<String>) -> BTreeSet<String> {
    markers
        .iter()
        .filter(|m| m.starts_with("zq"))
        .cloned()
        .collect()
}

/// Every identifier value in a resource, those of its references included (the Encounter a Procedure names
/// carries the EnrollmentID).
fn deep_identifiers(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Array(items) => items.iter().for_each(|v| deep_identifiers(v, out)),
        Value::Object(map) => {
            for (k, v) in map {
                if k == "identifier" {
                    let list = match v {
                        Value::Array(items) => items.iter().collect(),
                        other => vec![other],
                    };
                    out.extend(
                        list.into_iter()
                            .filter_map(|i| i["value"].as_str().map(str::to_owned)),
                    );
                } else {
                    deep_identifiers(v, out);
                }
            }
        }
        _ => {}
    }
}

fn identifiers(resource: &Value) -> Vec<String> {
    resource["identifier"]
        .as_array()
        .map(|ids| {
            ids.iter()
                .filter_map(|i| i["value"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn references(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Array(items) => items.iter().for_each(|v| references(v, out)),
        Value::Object(map) => {
            for (k, v) in map {
                if k == "reference"
                    && let Some(r) = v.as_str()
                {
                    out.push(r.to_owned());
                } else {
                    references(v, out);
                }
            }
        }
        _ => {}
    }
}

fn reference_of(value: &Value) -> Option<String> {
    value["reference"].as_str().map(str::to_owned)
}

fn output(g: &Generated, bundles: &[Value], failures: &mut Vec<Failure>) {
    let truth = &g.truth;
    let validator = Validator::new();
    let mut resources: BTreeMap<String, Value> = BTreeMap::new();
    let mut all_markers = BTreeSet::new();
    let mut all_keys = BTreeSet::new();
    for (n, bundle) in bundles.iter().enumerate() {
        let bundle_markers = markers(bundle, &[]);
        let mut bundle_keys = Vec::new();
        for entry in bundle["entry"].as_array().into_iter().flatten() {
            let resource = &entry["resource"];
            let key = format!(
                "{}/{}",
                resource["resourceType"].as_str().unwrap_or("?"),
                resource["id"].as_str().unwrap_or("?")
            );
            bundle_keys.extend(identifiers(resource));
            if let Some(before) = resources.get(&key)
                && before != resource
            {
                let both: BTreeSet<String> = markers(before, &[])
                    .union(&markers(resource, &[]))
                    .cloned()
                    .collect();
                let ids = identifiers(resource);
                failures.push(Failure {
                    faults: faults_on(g, &both)
                        .union(&faults_on(g, &ids))
                        .copied()
                        .collect(),
                    direct: faults_direct(g, both.iter().chain(&ids)),
                    message: format!(
                        "(c) {key} is output twice with different content (markers {both:?})"
                    ),
                });
            }
            resources.insert(key, resource.clone());
        }
        let issues = validator.validate(bundle);
        if !issues.is_empty() {
            let list: Vec<String> = issues.iter().map(ToString::to_string).collect();
            failures.push(Failure {
                faults: faults_on(g, &bundle_markers)
                    .union(&faults_on(g, &bundle_keys))
                    .copied()
                    .collect(),
                direct: faults_direct(g, bundle_markers.iter().chain(&bundle_keys)),
                message: format!("(d) output Bundle {n} is not valid: {}", list.join("; ")),
            });
        }
        all_markers.extend(bundle_markers);
        all_keys.extend(bundle_keys);
    }
    // The person a Patient is: its name's marker, else its key's owner.
    let patient_marker = |reference: &str| -> Option<String> {
        let patient = resources.get(reference)?;
        people(&markers(&patient["name"], &[]))
            .into_iter()
            .next()
            .or_else(|| {
                identifiers(patient)
                    .iter()
                    .find_map(|k| truth.owners.get(k).cloned())
            })
    };
    for (key, resource) in &resources {
        let kind = resource["resourceType"].as_str().unwrap_or_default();
        let ids = identifiers(resource);
        let mut everything: Vec<String> = markers(resource, &[]).into_iter().collect();
        deep_identifiers(resource, &mut everything);
        let mut fail = |names: &BTreeSet<String>, message: String| {
            failures.push(Failure {
                faults: faults_on(g, names)
                    .into_iter()
                    .chain(faults_on(g, &ids))
                    .chain(faults_on(g, &everything))
                    .collect(),
                direct: faults_direct(g, names.iter().chain(&ids).chain(&everything)),
                message: format!("(c) {key}: {message}"),
            })
        };
        let mut refs = Vec::new();
        references(resource, &mut refs);
        for r in &refs {
            if r.starts_with("urn:") || r.starts_with('#') {
                continue;
            }
            if !resources.contains_key(r) {
                fail(
                    &markers(resource, &[]),
                    format!("references {r}, which is not in the output"),
                );
            }
        }
        if kind == "Encounter"
            && let Some(end) = ids.iter().find_map(|k| truth.encounter_end.get(k))
            && !resource["period"]["end"]
                .as_str()
                .is_some_and(|e| e.starts_with(end.as_str()))
        {
            fail(
                &BTreeSet::new(),
                format!(
                    "its exit is dated {end}, its period is {} (status {})",
                    resource["period"], resource["status"]
                ),
            );
        }
        if kind == "Encounter"
            && ids.iter().any(|k| truth.open_encounters.contains(k))
            && (resource["status"] == "finished" || !resource["period"]["end"].is_null())
        {
            fail(
                &BTreeSet::new(),
                format!(
                    "its exit is deleted, yet it is {} with period {}",
                    resource["status"], resource["period"]
                ),
            );
        }
        match kind {
            "Patient" | "RelatedPerson" | "Practitioner" => {
                let own = people(&markers(resource, &["patient"]));
                if own.len() > 1 {
                    fail(&own, format!("holds the data of several people {own:?}"));
                    continue;
                }
                let expected = match kind {
                    "Patient" => &["student", "client"][..],
                    "RelatedPerson" => &["guardian"][..],
                    _ => &["staff"][..],
                };
                if let Some(m) = own.iter().next() {
                    let role = truth.roles.get(m).copied().unwrap_or("unknown");
                    if !expected.contains(&role) {
                        fail(
                            &own,
                            format!("made from a {role} ({m}), expected a {expected:?}"),
                        );
                    }
                    for k in &ids {
                        if let Some(owner) = truth.owners.get(k)
                            && owner != m
                            && truth.roles.get(owner).is_some_and(|r| expected.contains(r))
                        {
                            let both = BTreeSet::from([m.clone(), owner.clone()]);
                            fail(
                                &both,
                                format!("identifier '{k}' belongs to {owner}, the data to {m}"),
                            );
                        }
                    }
                }
                if kind == "RelatedPerson" {
                    let patient = reference_of(&resource["patient"]).unwrap_or_default();
                    if let (Some(m), Some(p)) = (own.iter().next(), patient_marker(&patient))
                        && !truth.guardian_of.contains(&(m.clone(), p.clone()))
                    {
                        let both = BTreeSet::from([m.clone(), p.clone()]);
                        fail(&both, format!("{m} is not a guardian of {p} in the roster"));
                    }
                }
                if kind == "Patient"
                    && let Some(birth) = resource["birthDate"].as_str()
                {
                    if birth < "1900" || birth > truth.birth_not_after.as_str() {
                        fail(&own, format!("implausible birthDate {birth}"));
                    }
                    if ids.iter().any(|k| truth.year_only_birth.contains(k)) && birth.len() != 4 {
                        fail(
                            &own,
                            format!("approximate DOB output as an exact birthDate {birth}"),
                        );
                    }
                }
            }
            "Encounter" | "Procedure" | "ServiceRequest" | "Task" | "EpisodeOfCare" => {
                let subjects: BTreeSet<String> = ["subject", "patient", "for", "beneficiary"]
                    .iter()
                    .filter_map(|f| reference_of(&resource[*f]))
                    .collect();
                let all = people(&markers(resource, &[]));
                if subjects.len() > 1 {
                    fail(&all, format!("names several patients {subjects:?}"));
                    continue;
                }
                let Some(subject) = subjects.into_iter().next() else {
                    continue;
                };
                let Some(pm) = patient_marker(&subject) else {
                    continue;
                };
                for k in &ids {
                    if let Some(owner) = truth.owners.get(k)
                        && *owner != pm
                    {
                        let both = BTreeSet::from([pm.clone(), owner.clone()]);
                        fail(
                            &both,
                            format!("record '{k}' belongs to {owner}, its patient is {pm}"),
                        );
                    }
                }
                let own = people(&markers(
                    resource,
                    &["requester", "performer", "owner", "participant"],
                ));
                if own.iter().any(|m| *m != pm) {
                    fail(&own, format!("holds data of {own:?}, its patient is {pm}"));
                }
                for link in ["encounter", "context", "focus", "basedOn"] {
                    let targets: Vec<String> = match &resource[link] {
                        Value::Array(items) => items.iter().filter_map(reference_of).collect(),
                        other => reference_of(other).into_iter().collect(),
                    };
                    for target in targets {
                        let Some(other) = resources.get(&target) else {
                            continue;
                        };
                        let theirs = ["subject", "patient", "for"]
                            .iter()
                            .find_map(|f| reference_of(&other[*f]));
                        if theirs.as_ref().is_some_and(|t| *t != subject) {
                            let mut both = all.clone();
                            both.extend(people(&markers(other, &[])));
                            fail(
                                &both,
                                format!("its {link} {target} is of {theirs:?}, it is of {subject}"),
                            );
                        }
                    }
                }
            }
            "Organization" | "Location" | "HealthcareService" => {
                let own = people(&markers(resource, &[]));
                if !own.is_empty() {
                    fail(&own, format!("an {kind} holding a person's data {own:?}"));
                }
            }
            _ => {}
        }
    }
    // One organization is one resource: no two Organization ids share an identifier (in any case).
    let mut organizations: BTreeMap<(String, String), BTreeSet<&String>> = BTreeMap::new();
    for (key, resource) in &resources {
        if resource["resourceType"] == "Organization" {
            for i in resource["identifier"].as_array().into_iter().flatten() {
                let system = i["system"].as_str().unwrap_or_default().to_owned();
                let value = i["value"].as_str().unwrap_or_default().to_lowercase();
                organizations
                    .entry((system, value))
                    .or_default()
                    .insert(key);
            }
        }
    }
    for ((system, value), ids) in organizations {
        if ids.len() > 1 {
            let all: BTreeSet<String> = ids
                .iter()
                .flat_map(|k| markers(&resources[*k], &[]))
                .collect();
            failures.push(Failure {
                faults: faults_on(g, &all),
                direct: faults_direct(g, &all),
                message: format!(
                    "(c) the organization {system}|{value} is several Organizations: {ids:?}"
                ),
            });
        }
    }
    for m in &truth.must_appear {
        if !all_markers.contains(m) {
            failures.push(Failure {
                faults: faults_on(g, [m]),
                direct: faults_direct(g, [m]),
                message: format!("(c) {m} (a clean record) is not in the output"),
            });
        }
    }
    for m in &truth.must_not_appear {
        if all_markers.contains(m) {
            failures.push(Failure {
                faults: faults_on(g, [m]),
                direct: faults_direct(g, [m]),
                message: format!("(c) {m} is in the output (it must be left out)"),
            });
        }
    }
    for k in &truth.keys_present {
        if !all_keys.contains(k) {
            failures.push(Failure {
                faults: faults_on(g, [k]),
                direct: faults_direct(g, [k]),
                message: format!(
                    "(c) no output resource has the identifier '{k}' (a clean record)"
                ),
            });
        }
    }
    for k in &truth.keys_absent {
        if all_keys.contains(k) {
            failures.push(Failure {
                faults: faults_on(g, [k]),
                direct: faults_direct(g, [k]),
                message: format!(
                    "(c) an output resource has the identifier '{k}' (it must be left out)"
                ),
            });
        }
    }
    for (guardian, student) in &truth.links_present {
        let found = resources.values().any(|r| {
            r["resourceType"] == "RelatedPerson"
                && identifiers(r).contains(guardian)
                && reference_of(&r["patient"])
                    .and_then(|p| resources.get(&p))
                    .is_some_and(|p| identifiers(p).contains(student))
        });
        if !found {
            failures.push(Failure {
                faults: BTreeSet::from([Fault::PipeInSourcedId]),
                direct: BTreeSet::from([Fault::PipeInSourcedId]),
                message: format!(
                    "(c) no RelatedPerson links guardian '{guardian}' to student '{student}'"
                ),
            });
        }
    }
}

// Tests -------------------------------------------------------------------------------------------------

fn report(outcome: &Outcome, failures: &[&Failure]) -> String {
    let mut out = format!(
        "{:?} export, seed {} (rerun: ONEDOOR_FAULT_SEED={} ONEDOOR_FAULT_EXPORTS=1), kept at {}\n injected:\n{}",
        outcome.format,
        outcome.seed,
        outcome.seed,
        outcome.dir.display(),
        outcome.ledger
    );
    for f in failures {
        out.push_str(&format!("  FAILED [{:?}] {}\n", f.faults, f.message));
    }
    out
}

#[test]
fn every_generated_export_reconciles_reports_its_faults_and_outputs_valid_unmixed_fhir() {
    let run = run();
    let mut per_format: BTreeMap<String, (usize, BTreeSet<Fault>)> = BTreeMap::new();
    let mut known = 0;
    let mut broken = Vec::new();
    for outcome in &run.outcomes {
        let entry = per_format
            .entry(format!("{:?}", outcome.format))
            .or_default();
        entry.0 += 1;
        entry.1.extend(outcome.kinds.iter().copied());
        known += outcome.failures.len() - outcome.unexpected().len();
        let unexpected = outcome.unexpected();
        if !unexpected.is_empty() {
            broken.push(report(outcome, &unexpected));
        }
    }
    eprintln!(
        "fault injection: {} exports per format ({} in all) in {:.1?}; {known} failures put down to KNOWN_GAPS",
        run.exports,
        run.outcomes.len(),
        run.elapsed
    );
    for (format, (count, kinds)) in &per_format {
        eprintln!("  {format}: {count} exports, faults injected: {kinds:?}");
    }
    // What each known gap still does (run with --nocapture to read it).
    for &(format, fault) in KNOWN_GAPS {
        let hits: Vec<(&Outcome, &Failure)> = run
            .outcomes
            .iter()
            .filter(|o| o.format == format)
            .flat_map(|o| o.failures.iter().map(move |f| (o, f)))
            .filter(|(_, f)| f.direct.contains(&fault))
            .collect();
        let exports: BTreeSet<u64> = hits.iter().map(|(o, _)| o.seed).collect();
        eprintln!(
            "  known gap {format:?} {fault:?}: {} failures in {} exports",
            hits.len(),
            exports.len()
        );
        for (o, f) in hits.iter().take(3) {
            eprintln!("    seed {}: {}", o.seed, f.message);
        }
    }
    assert_eq!(run.outcomes.len(), run.exports * 3);
    // Every fault of each format's list was injected somewhere, when there are enough exports.
    for (format, list) in [
        (Format::OneRoster, faults::ONEROSTER_FAULTS),
        (Format::Referral, faults::REFERRAL_FAULTS),
        (Format::Hmis, faults::HMIS_FAULTS),
    ] {
        if run.exports >= list.len() {
            let kinds = &per_format[&format!("{format:?}")].1;
            for fault in list {
                assert!(
                    kinds.contains(fault),
                    "{format:?}: {fault:?} was never injected in {} exports",
                    run.exports
                );
            }
        }
    }
    assert!(
        broken.is_empty(),
        "{} of {} generated exports fail:\n{}",
        broken.len(),
        run.outcomes.len(),
        broken.join("\n")
    );
}

#[test]
fn known_gaps_are_still_gaps() {
    let run = run();
    assert!(!run.outcomes.is_empty(), "no export was generated");
    for &(format, fault) in KNOWN_GAPS {
        let list = match format {
            Format::OneRoster => faults::ONEROSTER_FAULTS,
            Format::Referral => faults::REFERRAL_FAULTS,
            Format::Hmis => faults::HMIS_FAULTS,
        };
        let relabelled = fault == Fault::UnterminatedQuoteTwiceInAFile
            && list.contains(&Fault::UnterminatedQuote);
        assert!(
            list.contains(&fault) || relabelled,
            "{format:?} never injects {fault:?}"
        );
        let injected = run
            .outcomes
            .iter()
            .any(|o| o.format == format && o.kinds.contains(&fault));
        let still = run
            .outcomes
            .iter()
            .any(|o| o.format == format && o.failures.iter().any(|f| f.direct.contains(&fault)));
        assert!(
            !injected || still,
            "{format:?} {fault:?} is in KNOWN_GAPS but no export fails on it any more: remove it from the list"
        );
    }
}

#[test]
fn the_generator_is_deterministic_and_its_ledger_locates_each_fault() {
    let root =
        std::env::temp_dir().join(format!("onedoor-fault-determinism-{}", std::process::id()));
    for (n, make) in [
        faults::oneroster as fn(u64, usize, &Path) -> Generated,
        faults::referral,
        faults::hmis,
    ]
    .into_iter()
    .enumerate()
    {
        let (a, b) = (root.join(format!("{n}-a")), root.join(format!("{n}-b")));
        let (ga, gb) = (make(7, 7, &a), make(7, 7, &b));
        assert!(!ga.ledger.is_empty(), "export {n}: no fault injected");
        assert_eq!(ga.rows, gb.rows);
        assert_eq!(faults::describe(&ga), faults::describe(&gb));
        for file in ga.rows.keys() {
            let at = |dir: &Path| {
                let direct = dir.join(file);
                std::fs::read(if direct.exists() {
                    direct
                } else {
                    dir.join("roster").join(file)
                })
                .unwrap_or_else(|e| panic!("{file}: {e}"))
            };
            assert!(
                at(&a) == at(&b),
                "export {n}: {file} differs between two runs of seed 7"
            );
        }
        let other = root.join(format!("{n}-c"));
        let gc = make(8, 8, &other);
        assert_ne!(
            faults::describe(&ga),
            faults::describe(&gc),
            "export {n}: seeds 7 and 8 inject the same faults"
        );
        for injected in &ga.ledger {
            assert!(
                !injected.lines.is_empty() && injected.lines.iter().all(|l| *l >= 1),
                "{injected:?}"
            );
            let rows = ga
                .rows
                .iter()
                .find(|(f, _)| f.eq_ignore_ascii_case(&injected.file))
                .map(|(_, r)| *r)
                .unwrap_or_else(|| panic!("{injected:?}: no such file"));
            assert!(
                injected.lines.iter().all(|l| *l <= rows + 1),
                "{injected:?} beyond the {rows} rows of its file"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&root);
}
