//! HMIS → canonical FHIR → consent gate → HMIS CSV keeps every field the canonical model carries: the
//! client's id, names, birth date and gender fields; each enrollment's id, client, entry date and referral
//! source; each exit's id, enrollment, client, date and destination; each service's id, enrollment, client,
//! date, record type, type and amount; the event's id, enrollment, client, date, HUD code, result and result
//! date. Run on the shipped fixtures, and on the published FY2024 sample when ../shared is present.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const CLIENT_FIELDS: &[&str] = &[
    "PersonalID",
    "FirstName",
    "MiddleName",
    "LastName",
    "DOB",
    "Woman",
    "Man",
];
const ENROLLMENT_FIELDS: &[&str] = &["PersonalID", "EntryDate", "ReferralSource"];
const EXIT_FIELDS: &[&str] = &["EnrollmentID", "PersonalID", "ExitDate", "Destination"];
const SERVICES_FIELDS: &[&str] = &[
    "EnrollmentID",
    "PersonalID",
    "DateProvided",
    "RecordType",
    "TypeProvided",
    "FAAmount",
];
const EVENT_FIELDS: &[&str] = &[
    "EventID",
    "EnrollmentID",
    "PersonalID",
    "EventDate",
    "Event",
    "ReferralResult",
    "ResultDate",
];

/// The rows of a CSV file by `key`, with the values of `fields`; none when the file is absent.
fn rows(path: &Path, key: &str, fields: &[&str]) -> HashMap<String, Vec<String>> {
    if !path.exists() {
        return HashMap::new();
    }
    let mut reader = csv::Reader::from_path(path).unwrap();
    let headers = reader.headers().unwrap().clone();
    let index = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("{} has no {name}", path.display()))
    };
    let deleted = headers.iter().position(|h| h == "DateDeleted");
    reader
        .records()
        .map(Result::unwrap)
        .filter(|r| deleted.is_none_or(|d| r.get(d).unwrap_or_default().is_empty()))
        .map(|r| {
            (
                r[index(key)].to_owned(),
                fields.iter().map(|f| r[index(f)].to_owned()).collect(),
            )
        })
        .collect()
}

fn round_trip(input: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hmis");
    write_hmis(input, dir.path(), &out);
    assert_eq!(
        rows(&out.join("Client.csv"), "PersonalID", CLIENT_FIELDS),
        rows(&input.join("Client.csv"), "PersonalID", CLIENT_FIELDS)
    );
    let original = rows(&input.join("Event.csv"), "EventID", EVENT_FIELDS);
    let referral_events: HashMap<_, _> =
        original.into_iter().filter(|(_, v)| v[4] != "2").collect();
    assert_eq!(
        rows(&out.join("Event.csv"), "EventID", EVENT_FIELDS),
        referral_events
    );
    for (file, key, fields) in [
        ("Enrollment.csv", "EnrollmentID", ENROLLMENT_FIELDS),
        ("Exit.csv", "ExitID", EXIT_FIELDS),
        ("Services.csv", "ServicesID", SERVICES_FIELDS),
    ] {
        let original = rows(&input.join(file), key, fields);
        assert_eq!(rows(&out.join(file), key, fields), original, "{file}");
    }
    let export = std::fs::read_to_string(out.join("Export.csv")).unwrap();
    assert!(
        export.starts_with("ExportID,SourceType") && export.contains(",2024 v1.4,"),
        "{export}"
    );
}

/// Convert an HMIS export to FHIR and release it, under a court order, as HMIS CSV into `out`.
fn write_hmis(input: &Path, work: &Path, out: &Path) {
    let run = run_hmis(input, work, out, &[]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

/// The `convert --to hmis-csv` run of [`write_hmis`] with `extra` arguments, whatever its outcome.
fn run_hmis(input: &Path, work: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let bases = work.join("bases.toml");
    std::fs::write(&bases, "[[basis]]\nkind = \"court-order\"\nrecipient = \"urn:onedoor:hmis|import\"\nfrom = \"2020-01-01\"\nuntil = \"2099-12-31\"\nreference = \"round trip\"\n").unwrap();
    let store = format!("sqlite://{}", work.join("store/onedoor.db").display());
    Command::new(env!("CARGO_BIN_EXE_onedoor"))
        .args([
            "convert",
            "--mapping",
            "hmis-fy2024",
            "--input",
            input.to_str().unwrap(),
            "--format",
            "bundle",
        ])
        .args([
            "--recipient",
            "urn:onedoor:hmis|import",
            "--bases",
            bases.to_str().unwrap(),
            "--to",
            "hmis-csv",
        ])
        .args([
            "--database-url",
            store.as_str(),
            "--output",
            out.to_str().unwrap(),
        ])
        .args(extra)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

fn data_rows(path: &Path) -> usize {
    std::fs::read_to_string(path).unwrap().lines().count() - 1
}

#[test]
fn delivering_the_same_referrals_again_adds_no_duplicate_rows() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hmis");
    let input = fixture("referral-pending-and-accepted");
    write_hmis(&input, dir.path(), &out);
    let files = ["Client.csv", "Enrollment.csv", "Event.csv"];
    let first = files.map(|f| data_rows(&out.join(f)));
    write_hmis(&input, dir.path(), &out);
    let second = files.map(|f| data_rows(&out.join(f)));
    assert_eq!(first, second, "one row per client, enrollment and event");
    assert_eq!(first[0], data_rows(&input.join("Client.csv")));
}

fn fixture(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("conformance/hmis/hmis-fy2024")
        .join(case)
        .join("input")
}

#[test]
fn shipped_exports_survive_the_round_trip() {
    round_trip(&fixture("referral-rejected-by-provider"));
    round_trip(&fixture("referral-pending-and-accepted"));
    round_trip(&fixture("enrollment-exit-and-services"));
}

#[test]
fn published_fy2024_sample_survives_the_round_trip() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/agency/hmis/fy2024");
    if !data.is_dir() {
        eprintln!("../shared/data is absent: skipped");
        return;
    }
    round_trip(&data);
}

/// The names in a folder and, for files, their text.
fn contents(dir: &Path) -> Vec<(String, String)> {
    let mut entries: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(e.path()).unwrap_or_default())
        })
        .collect();
    entries.sort();
    entries
}

#[test]
fn a_failed_run_leaves_the_hmis_folder_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hmis");
    write_hmis(&fixture("referral-pending-and-accepted"), dir.path(), &out);
    let earlier = contents(&out);
    let names = |dir: &Path| {
        contents(dir)
            .into_iter()
            .map(|(n, _)| n)
            .collect::<Vec<_>>()
    };
    let around = names(dir.path());
    let blocked = dir.path().join("blocked");
    std::fs::create_dir(&blocked).unwrap();
    let report = ["--report", blocked.to_str().unwrap()];
    // Another export: unreadable (fails before converting), then readable with a report that cannot be
    // written (fails after every row was encoded). Neither touches the folder or leaves a temporary one.
    let failures = [
        run_hmis(&dir.path().join("missing"), dir.path(), &out, &[]),
        run_hmis(
            &fixture("enrollment-exit-and-services"),
            dir.path(),
            &out,
            &report,
        ),
    ];
    for failed in failures {
        let stderr = String::from_utf8_lossy(&failed.stderr);
        assert_eq!(failed.status.code(), Some(2), "{stderr}");
        assert_eq!(contents(&out), earlier, "the folder is untouched");
        let mut left = names(dir.path());
        left.retain(|n| n != "blocked");
        assert_eq!(left, around, "no temporary folder is left");
    }
}
