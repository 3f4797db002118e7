//! Every input row is accounted for: per file, rows read = converted + nothing to map + rejected + skipped
//! (+ rows read by other records, for join tables), on every conformance input and real sample of the CSV
//! adapters, including the exports that hold structural CSV errors, duplicates, deletions and broken links.

use onedoor::mapping::EngineOptions;
use onedoor::pipeline::{self, NdjsonSink, OutputFormat, Summary};
use std::path::{Path, PathBuf};

fn convert(mapping: &str, input: &Path, roster: Option<&Path>) -> Summary {
    let request = pipeline::request(
        Path::new("mappings"),
        mapping,
        input,
        roster,
        EngineOptions {
            now: "2026-09-01T00:00:00Z".into(),
            source_system: None,
        },
    );
    let mut sink = NdjsonSink::new(Vec::new(), OutputFormat::Ndjson);
    pipeline::convert(&request, &mut sink).unwrap()
}

fn assert_reconciled(summary: &Summary, what: &str) {
    assert!(!summary.files.is_empty(), "{what}: no file tallies");
    for file in &summary.files {
        assert_eq!(
            file.unaccounted, 0,
            "{what}: {} has rows that are neither converted, rejected nor skipped: {file:?}",
            file.file
        );
        assert_eq!(
            file.rows,
            file.converted + file.without_output + file.rejected + file.skipped + file.joined,
            "{what}: {file:?}"
        );
    }
    let skipped: u64 = summary.files.iter().map(|f| f.skipped).sum();
    assert_eq!(
        skipped,
        summary.skipped.len() as u64,
        "{what}: every skipped row is listed"
    );
}

fn cases(dir: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("case.toml").exists())
        .collect();
    found.sort();
    found
}

#[test]
fn every_oneroster_and_hmis_case_reconciles() {
    for (dir, mapping) in [
        ("conformance/oneroster/oneroster", "oneroster"),
        ("conformance/hmis/hmis-fy2024", "hmis-fy2024"),
    ] {
        for case in cases(dir) {
            let input = case.join("input");
            // Cases whose whole input is refused (no record is read).
            if !input.is_dir()
                || case.ends_with("missing-required-column")
                || case.ends_with("mixed-sources")
            {
                continue;
            }
            let summary = convert(mapping, &input, None);
            assert_reconciled(&summary, &case.display().to_string());
        }
    }
}

#[test]
fn every_referral_case_reconciles() {
    let dir = "conformance/referral-csv/student-referrals";
    for case in cases(dir) {
        let input = case.join("referrals.csv");
        if !input.exists() || case.ends_with("missing-required-column") {
            continue;
        }
        let summary = convert(
            "student-referrals",
            &input,
            Some(&Path::new(dir).join("roster")),
        );
        assert_reconciled(&summary, &case.display().to_string());
        let referrals = summary
            .files
            .iter()
            .find(|f| f.file == "referrals.csv")
            .unwrap();
        assert_eq!(referrals.joined, 0, "{}: {referrals:?}", case.display());
    }
}

#[test]
fn an_unterminated_quote_loses_no_row() {
    let summary = convert(
        "oneroster",
        Path::new("conformance/oneroster/oneroster/unterminated-quote/input"),
        None,
    );
    let users = summary
        .files
        .iter()
        .find(|f| f.file == "users.csv")
        .unwrap();
    assert_eq!(
        (users.rows, users.converted, users.rejected, users.skipped),
        // st-1 rejected (its quote never closes), st-2 converted, its guardian pa-2's row converted (a
        // RelatedPerson), pa-1 skipped (not a student, and the guardian of no readable student).
        (4, 2, 1, 1),
        "{users:?}"
    );
    assert!(
        summary
            .skipped
            .iter()
            .all(|s| s.file == "users.csv" && s.reason.starts_with("not a student")),
        "{:?}",
        summary.skipped
    );
}

#[test]
fn deletions_and_what_hangs_off_them_are_listed_with_their_reason() {
    let summary = convert(
        "hmis-fy2024",
        Path::new("conformance/hmis/hmis-fy2024/links-and-deletions/input"),
        None,
    );
    let listed: Vec<(String, u64, String)> = summary
        .skipped
        .iter()
        .map(|s| (s.file.clone(), s.line, s.reason.clone()))
        .collect();
    for expected in [
        ("Client.csv", 4, "deleted (DateDeleted)"),
        ("Enrollment.csv", 4, "its client is deleted"),
        ("Event.csv", 4, "its client is deleted"),
        ("Event.csv", 5, "deleted (DateDeleted)"),
        ("Exit.csv", 2, "deleted (DateDeleted)"),
        ("Exit.csv", 3, "its client is deleted"),
    ] {
        assert!(
            listed
                .iter()
                .any(|(f, l, r)| f == expected.0 && *l == expected.1 && r == expected.2),
            "{expected:?} not in {listed:?}"
        );
    }
    assert_eq!(summary.records_skipped, 6);
}

#[test]
fn the_real_samples_reconcile() {
    let data = Path::new("../shared/data");
    if !data.exists() {
        return;
    }
    for (mapping, input) in [
        ("oneroster", "sis/oneroster/v1p2-full"),
        ("oneroster", "sis/oneroster/v1p1-test"),
        ("hmis-fy2024", "agency/hmis/fy2024"),
        ("edfi-5", "sis/edfi/samples"),
        ("sif-au-3.4", "sis/sif-au"),
        ("nibrs-2019", "agency/niem-nibrs"),
        ("hsds-3.0", "directory/hsds/examples/csv"),
        ("hsds-3.0", "directory/hsds/examples"),
        ("fhir-r4", "fhir/sdoh-examples"),
    ] {
        let input = data.join(input);
        if input.exists() {
            let summary = convert(mapping, &input, None);
            assert_reconciled(&summary, &input.display().to_string());
        }
    }
}

/// The resources a conversion writes, with its summary.
fn convert_output(
    mapping: &str,
    input: &Path,
    source_system: Option<&str>,
) -> Result<(Summary, Vec<serde_json::Value>), String> {
    let request = pipeline::request(
        Path::new("mappings"),
        mapping,
        input,
        None,
        EngineOptions {
            now: "2026-09-01T00:00:00Z".into(),
            source_system: source_system.map(str::to_owned),
        },
    );
    let mut sink = NdjsonSink::new(Vec::new(), OutputFormat::Ndjson);
    let summary = pipeline::convert(&request, &mut sink).map_err(|e| e.to_string())?;
    let text = String::from_utf8(sink.into_inner()).unwrap();
    let lines = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    Ok((summary, lines))
}

fn patient(resources: &[serde_json::Value]) -> (String, String) {
    let patient = resources
        .iter()
        .find(|r| r["resourceType"] == "Patient")
        .expect("a Patient");
    (
        patient["id"].as_str().unwrap().to_owned(),
        patient["identifier"][0]["system"]
            .as_str()
            .unwrap()
            .to_owned(),
    )
}

#[test]
fn one_personal_id_in_two_hmis_sources_is_two_patients() {
    let dir = Path::new("conformance/hmis/hmis-fy2024");
    let (_, river) =
        convert_output("hmis-fy2024", &dir.join("source-id-in-ids/input"), None).unwrap();
    let (_, odd) = convert_output(
        "hmis-fy2024",
        &dir.join("source-id-needs-encoding/input"),
        None,
    )
    .unwrap();
    let (river, odd) = (patient(&river), patient(&odd));
    assert_ne!(
        river.0, odd.0,
        "PersonalID 101 of OR-501 and of another source"
    );
    assert_ne!(river.1, odd.1);
    // Two sources in one Export.csv: refused, unless the operator names the source system.
    let mixed = dir.join("mixed-sources/input");
    let refused = convert_output("hmis-fy2024", &mixed, None).unwrap_err();
    assert!(refused.contains("pass --source-system"), "{refused}");
    let (_, named) = convert_output("hmis-fy2024", &mixed, Some("urn:example:coc")).unwrap();
    assert_eq!(patient(&named).1, "urn:example:coc/clients");
}

/// Every case of an adapter's conformance folder, with its mapping (the folder above the case) and input.
fn adapter_cases(adapter: &str) -> Vec<(String, PathBuf)> {
    let mut found = Vec::new();
    for mapping in std::fs::read_dir(Path::new("conformance").join(adapter)).unwrap() {
        let mapping = mapping.unwrap().path();
        if !mapping.is_dir() {
            continue;
        }
        let name = mapping.file_name().unwrap().to_string_lossy().into_owned();
        for case in cases(mapping.to_str().unwrap()) {
            let text = std::fs::read_to_string(case.join("case.toml")).unwrap();
            let input = text
                .lines()
                .find_map(|l| {
                    l.strip_prefix("input = ")
                        .map(|v| v.trim_matches('"').to_owned())
                })
                .unwrap_or_else(|| "input".to_owned());
            found.push((name.clone(), case.join(input)));
        }
    }
    found.sort();
    found
}

#[test]
fn every_element_adapter_case_reconciles() {
    let mut checked = 0;
    for adapter in ["edfi", "sif", "niem", "hsds", "fhir"] {
        for (mapping, input) in adapter_cases(adapter) {
            let request = pipeline::request(
                Path::new("mappings"),
                &mapping,
                &input,
                None,
                EngineOptions {
                    now: "2026-09-01T00:00:00Z".into(),
                    source_system: None,
                },
            );
            let mut sink = NdjsonSink::new(Vec::new(), OutputFormat::Ndjson);
            // A case whose whole input is refused reads no record.
            let Ok(summary) = pipeline::convert(&request, &mut sink) else {
                continue;
            };
            // An input refused as a whole file (a DOCTYPE, unreadable XML) holds no element to account for.
            let whole_files = summary.files.is_empty()
                && summary.rejected.iter().all(|r| r.position.unit().is_none());
            if summary.records_in == 0 || whole_files {
                continue;
            }
            assert_reconciled(&summary, &input.display().to_string());
            checked += 1;
        }
    }
    assert!(checked > 30, "{checked} cases checked");
}

#[test]
fn a_quirk_counts_once_per_row_however_often_the_row_is_read() {
    // Client 101's placeholder name is read as a client and again with its enrollment and exit.
    let summary = convert(
        "hmis-fy2024",
        Path::new("conformance/hmis/hmis-fy2024/data-quality/input"),
        None,
    );
    let placeholder = summary
        .quirks
        .iter()
        .find(|q| q.message.contains("NameDataQuality"))
        .expect("the placeholder-name quirk");
    assert_eq!((placeholder.count, placeholder.first_line), (1, Some(2)));
}

#[test]
fn a_related_row_problem_is_rejected_at_its_own_line_once() {
    let dir = Path::new("conformance/referral-csv/student-referrals/bad-demographics-row");
    let summary = convert(
        "student-referrals",
        &dir.join("referrals.csv"),
        Some(&dir.join("roster")),
    );
    let mut at: Vec<String> = summary
        .rejected
        .iter()
        .map(|r| r.position.to_string())
        .collect();
    at.sort();
    assert_eq!(
        at,
        [
            "demographics.csv line 3, field demographics.birthDate",
            "demographics.csv line 3, field demographics.sex",
        ],
    );
    assert_eq!(summary.records_converted, 2, "both referrals convert");
    let demographics = summary
        .files
        .iter()
        .find(|f| f.file == "demographics.csv")
        .unwrap();
    assert_eq!(demographics.rejected, 1, "{demographics:?}");
}
