//! A long conversion mapped on worker threads gives, byte for byte, the output, the report and the messages
//! of the same conversion on one thread: rejected rows, rows that follow nothing, tolerated date quirks
//! (counted once per line, with the first line) and problems of joined rows included.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Rows: enough that most of them go through the worker threads (the first 64 records are mapped on the
/// reading thread).
const ROWS: usize = 1500;

const USERS: &str = "sourcedId,status,dateLastModified,enabledUser,username,userIds,givenName,familyName,\
middleName,identifier,email,sms,phone,agentSourcedIds,grades,password,userMasterIdentifier,preferredGivenName,\
preferredMiddleName,preferredFamilyName,primaryOrgSourcedId,pronouns\n";
const ROLES: &str = "sourcedId,status,dateLastModified,userSourcedId,roleType,role,beginDate,endDate,\
orgSourcedId,userProfileSourcedId\n";
const DEMOGRAPHICS: &str = "sourcedId,status,dateLastModified,birthDate,sex,americanIndianOrAlaskaNative,\
asian,blackOrAfricanAmerican,nativeHawaiianOrOtherPacificIslander,white,demographicRaceTwoOrMoreRaces,\
hispanicOrLatinoEthnicity,countryOfBirthCode,stateOfBirthAbbreviation,cityOfBirth,publicSchoolResidenceStatus\n";
const REFERRALS: &str = "referral_id,student_id,need_category,urgency,referred_on,referring_staff_id,\
referring_staff_name,target_agency,target_service,reason,notes,consent_reference\n";
const STAMP: &str = "2026-01-15T10:00:00Z";

/// The roster and referral CSV, with a problem or a quirk every few rows.
fn write_export(dir: &Path) -> (PathBuf, PathBuf) {
    let roster = dir.join("roster");
    std::fs::create_dir_all(&roster).unwrap();
    let mut orgs =
        String::from("sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId\n");
    writeln!(orgs, "dist-0,active,{STAMP},District,district,0600000,").unwrap();
    for k in 0..5 {
        writeln!(
            orgs,
            "sch-{k},active,{STAMP},School {k},school,0600000{k:04},dist-0"
        )
        .unwrap();
    }
    let (mut users, mut roles, mut demographics) = (
        String::from(USERS),
        String::from(ROLES),
        String::from(DEMOGRAPHICS),
    );
    let mut referrals = String::from(REFERRALS);
    for i in 0..ROWS {
        let school = format!("sch-{}", i % 5);
        if i % 97 != 13 {
            writeln!(
                users,
                "stu-{i},active,{STAMP},true,stu-{i},,Ana{i},Nguyen,,stu-{i},,,,,,,,,,,{school},"
            )
            .unwrap();
            writeln!(
                roles,
                "rol-{i},active,{STAMP},stu-{i},primary,student,2025-08-20,2026-06-10,{school},"
            )
            .unwrap();
            // A birth date nobody can read is a problem of the demographics row, not of the referral;
            // one before 1900 is rejected at that row while the referral is joined to the roster (on the
            // thread that maps it: its rejection must still come in the rows' order).
            let birth = match i % 41 {
                7 => "31/31/2010".to_owned(),
                9 => format!("03/0{}/2010", 1 + i % 9),
                11 => "1850-01-01".to_owned(),
                _ => "2010-01-01".to_owned(),
            };
            writeln!(
                demographics,
                "stu-{i},active,{STAMP},{birth},female,,,,,,,,,,,"
            )
            .unwrap();
        }
        let agency = if i % 89 == 5 {
            "nowhere"
        } else {
            "family-services"
        };
        let date = match i % 7 {
            3 => format!("0{}/0{}/2026", 1 + i % 9, 1 + (i / 9) % 9),
            4 => "2026-02-30".to_owned(),
            _ => "2026-02-02".to_owned(),
        };
        writeln!(
            referrals,
            "ref-{i},stu-{i},other,,{date},staff-{s},Staff {s},{agency},Counselling,,Note {i},",
            s = i % 3
        )
        .unwrap();
    }
    for (name, text) in [
        ("orgs.csv", orgs),
        ("users.csv", users),
        ("roles.csv", roles),
        ("demographics.csv", demographics),
        (
            "manifest.csv",
            "propertyName,value\nmanifest.version,1.0\noneroster.version,1.2\n".to_owned(),
        ),
    ] {
        std::fs::write(roster.join(name), text).unwrap();
    }
    let input = dir.join("referrals.csv");
    std::fs::write(&input, referrals).unwrap();
    (input, roster)
}

/// `convert` of the export to bundles on `threads` threads (`threads` - 1 workers beside the calling
/// thread), its output and report left to add.
fn convert_command(input: &Path, roster: &Path, threads: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_onedoor"));
    command
        .args([
            "convert",
            "--mapping",
            "student-referrals",
            "--format",
            "bundle",
        ])
        .arg("--input")
        .arg(input)
        .arg("--roster")
        .arg(roster)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("ONEDOOR_MAPPINGS")
        .env_remove("ONEDOOR_LOG")
        .env_remove("ONEDOOR_NO_REUSE")
        .env("ONEDOOR_THREADS", threads);
    command
}

/// A run's process output, NDJSON and report.
type Run = (Output, Vec<u8>, Vec<u8>);

/// `convert` on `threads` threads: (process output, the NDJSON, the report).
fn convert(dir: &Path, input: &Path, roster: &Path, threads: &str) -> Run {
    convert_named(convert_command(input, roster, threads), dir, threads)
}

/// Run `command` with an output and report named after `name` in `dir`.
fn convert_named(mut command: Command, dir: &Path, name: &str) -> Run {
    let out = dir.join(format!("out-{name}.ndjson"));
    let report = dir.join(format!("report-{name}.json"));
    let run = command
        .arg("--output")
        .arg(&out)
        .arg("--report")
        .arg(&report)
        .output()
        .expect("onedoor runs");
    let read = |path: &Path| std::fs::read(path).unwrap_or_default();
    (run, read(&out), read(&report))
}

/// Two runs gave the same exit, messages, output and report (`what` says how they differ).
fn assert_same_runs((a, a_out, a_report): &Run, (b, b_out, b_report): &Run, what: &str) {
    assert_eq!(a.status.code(), b.status.code(), "{what}");
    assert_eq!(
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr),
        "{what}"
    );
    assert_eq!(a.stdout, b.stdout, "{what}");
    assert!(a_out == b_out, "the NDJSON differs: {what}");
    assert_eq!(
        String::from_utf8_lossy(a_report),
        String::from_utf8_lossy(b_report),
        "{what}"
    );
}

#[test]
fn worker_threads_give_the_output_and_report_of_one_thread() {
    let dir = tempfile::tempdir().unwrap();
    let (input, roster) = write_export(dir.path());
    let (one, one_out, one_report) = convert(dir.path(), &input, &roster, "1");
    let report: serde_json::Value = serde_json::from_slice(&one_report).expect("a JSON report");
    assert!(
        report["records_rejected"].as_u64().unwrap_or_default() > 10,
        "{report}"
    );
    assert!(
        report["records_converted"].as_u64().unwrap_or_default() > 1000,
        "{report}"
    );
    let text = report.to_string();
    assert!(text.contains("non-ISO dates read as"), "{report}");
    assert!(text.contains("demographics.csv"), "{report}");
    assert!(text.contains("not a plausible birth date"), "{report}");
    assert!(text.contains("nowhere"), "{report}");
    assert!(one_out.len() > 1_000_000);
    let one = (one, one_out, one_report);
    for threads in ["2", "3"] {
        let many = convert(dir.path(), &input, &roster, threads);
        assert_same_runs(&many, &one, &format!("{threads} threads against one"));
    }
}

/// The schools, agencies and staff members repeated across the referrals are built once and taken again
/// (src/mapping/reuse.rs): the output, report and messages are those of a run that builds every resource of
/// every record, on one thread and on several.
#[test]
fn reused_resources_give_the_output_and_report_of_building_each() {
    let dir = tempfile::tempdir().unwrap();
    let (input, roster) = write_export(dir.path());
    for threads in ["1", "2"] {
        let mut building = convert_command(&input, &roster, threads);
        building.env("ONEDOOR_NO_REUSE", "1");
        let built = convert_named(building, dir.path(), &format!("{threads}-built"));
        assert!(built.1.len() > 1_000_000, "{:?}", built.0);
        let reusing = convert_command(&input, &roster, threads);
        let reused = convert_named(reusing, dir.path(), &format!("{threads}-reused"));
        assert_same_runs(&reused, &built, &format!("reuse on {threads} threads"));
    }
}

/// An output that cannot be written stops a run on worker threads with the error, at once: the workers,
/// waiting for room to take more records, are let go (they neither hang the process nor read the rest).
#[test]
fn an_output_that_fails_stops_the_workers_with_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let (input, roster) = write_export(dir.path());
    let mut run = convert_command(&input, &roster, "2")
        .args(["--output", "/dev/full"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("onedoor runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while run.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            run.kill().unwrap();
            panic!("convert with an unwritable output did not end within 60 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let output = run.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
}
