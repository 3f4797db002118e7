//! The `onedoor` command as a user runs it: exit codes, messages that name file, line and field, the
//! reports it writes, and logs without personal data.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn onedoor(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_onedoor"))
        .args(args)
        .current_dir(root())
        .env_remove("ONEDOOR_MAPPINGS")
        .env_remove("ONEDOOR_LOG")
        .output()
        .expect("onedoor runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ndjson(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The quick start's conversion (the example referrals and district export, as Bundles) into `out`.
fn convert_examples(out: &Path) -> Output {
    onedoor(&[
        "convert",
        "--mapping",
        "student-referrals",
        "--input",
        "examples/referrals.csv",
        "--roster",
        "examples/district-export",
        "--format",
        "bundle",
        "--output",
        out.to_str().unwrap(),
    ])
}

#[test]
fn quick_start_converts_the_example_referrals_into_valid_bundles() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("referrals.ndjson");
    let run = convert_examples(&out);
    assert!(run.status.success(), "{}", text(&run.stderr));
    let bundles = ndjson(&out);
    assert_eq!(bundles.len(), 3);
    for bundle in &bundles {
        let kinds: Vec<&str> = bundle["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["resource"]["resourceType"].as_str().unwrap())
            .collect();
        assert!(
            kinds.contains(&"ServiceRequest")
                && kinds.contains(&"Task")
                && kinds.contains(&"Patient"),
            "{kinds:?}"
        );
    }
    let validate = onedoor(&["validate", out.to_str().unwrap()]);
    assert!(validate.status.success(), "{}", text(&validate.stdout));
    assert!(text(&validate.stdout).contains("3 valid, 0 invalid"));
}

#[test]
fn convert_exits_1_and_names_line_and_field_when_a_record_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let referrals = dir.path().join("referrals.csv");
    std::fs::write(
        &referrals,
        "referral_id,student_id,need_category,target_agency\nR1,stu-1001,food,county-food-bank\nR2,stu-0000,food,county-food-bank\n",
    )
    .unwrap();
    let out = dir.path().join("out.ndjson");
    let run = onedoor(&[
        "convert",
        "--mapping",
        "student-referrals",
        "--input",
        referrals.to_str().unwrap(),
        "--roster",
        "examples/district-export",
        "--output",
        out.to_str().unwrap(),
    ]);
    assert_eq!(run.status.code(), Some(1));
    let stderr = text(&run.stderr);
    assert!(
        stderr.contains("referrals.csv line 3, field student_id: no user 'stu-0000'"),
        "{stderr}"
    );
    assert!(stderr.contains("2 records in, 1 converted"), "{stderr}");
    let resources = ndjson(&out);
    assert!(
        resources
            .iter()
            .any(|r| r["resourceType"] == "ServiceRequest"),
        "the good referral still converts"
    );
}

#[test]
fn convert_without_a_roster_for_referrals_says_what_is_needed() {
    let run = onedoor(&[
        "convert",
        "--mapping",
        "student-referrals",
        "--input",
        "examples/referrals.csv",
    ]);
    assert_eq!(run.status.code(), Some(2));
    assert!(text(&run.stderr).contains("needs the roster its students are in: pass --roster PATH"));
}

#[test]
fn unknown_mapping_lists_the_known_ones() {
    let run = onedoor(&[
        "convert",
        "--mapping",
        "nope",
        "--input",
        "examples/district-export",
    ]);
    assert_eq!(run.status.code(), Some(2));
    let stderr = text(&run.stderr);
    assert!(
        stderr.contains("no mapping named 'nope'") && stderr.contains("oneroster"),
        "{stderr}"
    );
}

#[test]
fn logs_carry_no_personal_data_even_at_debug_level() {
    let run = Command::new(env!("CARGO_BIN_EXE_onedoor"))
        .args([
            "-vv",
            "convert",
            "--mapping",
            "student-referrals",
            "--input",
            "examples/referrals.csv",
            "--roster",
            "examples/district-export",
        ])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(run.status.success());
    let stderr = text(&run.stderr);
    assert!(
        stderr.contains("conversion finished"),
        "the info log is there: {stderr}"
    );
    for personal in [
        "Ava",
        "Martinez",
        "2013-03-14",
        "maria.martinez@example.com",
        "5550100101",
        "Elena",
        "eviction",
    ] {
        assert!(
            !stderr.contains(personal),
            "log holds '{personal}': {stderr}"
        );
    }
}

#[test]
fn mappings_check_passes_on_the_shipped_mappings() {
    let run = onedoor(&["mappings", "check"]);
    assert!(run.status.success(), "{}", text(&run.stdout));
    assert!(text(&run.stdout).contains("8 mapping(s) checked, 0 problem(s)"));
}

#[test]
fn mappings_check_reports_every_problem_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("oneroster");
    std::fs::create_dir_all(folder.join("codes")).unwrap();
    std::fs::write(
        folder.join("broken.toml"),
        r#"[mapping]
name = "broken"
adapter = "oneroster"
source_system = "urn:x"

[[resources]]
name = "student"
from = "student"
type = "Patient"
id = "user.sourcedId"

[[resources.rules]]
target = "name[0].gvien"
value = "user.givenName"

[[resources.rules]]
target = "gender"
value = "demographics.sex | code('nosuchtable')"

[[resources.rules]]
target = "birthDate"
value = "user.birthday"

[[resources.rules]]
target = "active"
value = "user.enabledUser |"
"#,
    )
    .unwrap();
    let run = onedoor(&[
        "--mappings",
        dir.path().to_str().unwrap(),
        "mappings",
        "check",
    ]);
    assert_eq!(run.status.code(), Some(1));
    let stdout = text(&run.stdout);
    assert!(
        stdout.contains(
            "broken.toml:13: target 'name[0].gvien': Patient.name has no element 'gvien'"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("broken.toml:18: unknown code table 'nosuchtable'"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "broken.toml:22: unknown field 'user.birthday': users.csv has no column 'birthday'"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("broken.toml:26: expression 'user.enabledUser |' does not compile"),
        "{stdout}"
    );
}

#[test]
fn mappings_show_renders_the_crosswalk() {
    let run = onedoor(&["mappings", "show", "oneroster"]);
    assert!(run.status.success());
    let stdout = text(&run.stdout);
    assert!(
        stdout.contains("| Target element | Source fields | Transformation | Notes |"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "| `Patient.name[0].family` | user.familyName | `user.familyName` | required |"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("## Code table `sex`"));
    let html = onedoor(&["mappings", "show", "student-referrals", "--format", "html"]);
    assert!(text(&html.stdout).contains("<td><code>ServiceRequest.subject</code></td>"));
}

#[test]
fn validate_reports_json_paths_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.json");
    std::fs::write(
        &file,
        r#"{"resourceType":"Patient","gender":"robot","birthDate":"2020-02-30x"}"#,
    )
    .unwrap();
    let run = onedoor(&["validate", file.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(1));
    let stdout = text(&run.stdout);
    assert!(
        stdout.contains("/gender:") && stdout.contains("/birthDate:"),
        "{stdout}"
    );
    assert!(stdout.contains("0 valid, 1 invalid"));
}

#[test]
fn conformance_writes_junit_and_json_and_fails_on_a_broken_case() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("conformance/fhir/fhir-r4");
    let case = suite.join("wrong-expectation");
    std::fs::create_dir_all(&case).unwrap();
    std::fs::write(
        case.join("task.json"),
        r#"{"resourceType":"Patient","id":"p"}"#,
    )
    .unwrap();
    std::fs::write(case.join("case.toml"), "name = \"expects a rejection that never comes\"\nexpect = \"rejected\"\ninput = \"task.json\"\n").unwrap();
    let junit = dir.path().join("junit.xml");
    let json = dir.path().join("report.json");
    let run = onedoor(&[
        "conformance",
        dir.path().join("conformance").to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(run.status.code(), Some(1));
    let stdout = text(&run.stdout);
    assert!(
        stdout.contains("FAIL fhir-r4 / expects a rejection that never comes"),
        "{stdout}"
    );
    assert!(
        stdout.contains("oneroster") && stdout.contains("has no conformance cases"),
        "{stdout}"
    );
    let xml = std::fs::read_to_string(junit).unwrap();
    assert!(
        xml.contains("<testsuite name=\"fhir-r4\"") && xml.contains("<failure"),
        "{xml}"
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    assert_eq!(report["cases"][0]["passed"], false);
}

#[test]
fn corpus_run_reports_records_and_unread_columns() {
    let run = onedoor(&[
        "conformance",
        "--corpus",
        "examples/district-export",
        "--mapping",
        "oneroster",
    ]);
    assert!(run.status.success(), "{}", text(&run.stdout));
    let stdout = text(&run.stdout);
    assert!(
        stdout.contains("converted      users.csv line 2: Patient"),
        "{stdout}"
    );
    assert!(stdout.contains("14 records: 14 converted"), "{stdout}");
    assert!(
        stdout.contains("unread: dateLastModified, username"),
        "{stdout}"
    );
}

#[test]
fn the_incident_history_file_carries_repeat_counts_across_runs_without_names() {
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history.jsonl");
    let folder = root().join("conformance/niem/nibrs-2019/repeat-incidents/input");
    let earlier_incidents = |file: &str| -> Vec<Value> {
        let out = dir.path().join(format!("{file}.ndjson"));
        let run = onedoor(&[
            "convert",
            "--mapping",
            "nibrs-2019",
            "--input",
            folder.join(file).to_str().unwrap(),
            "--incident-history",
            history.to_str().unwrap(),
            "--history-salt",
            "test-deployment-salt",
            "--output",
            out.to_str().unwrap(),
        ]);
        assert!(run.status.success(), "{}", text(&run.stderr));
        ndjson(&out)
            .into_iter()
            .filter(|r| r["resourceType"] == "ServiceRequest")
            .map(|r| r["extension"][0]["valueInteger"].clone())
            .collect()
    };
    // One file per run: each run sees only its own file, the history file remembers the others.
    let counts: Vec<Value> = ["1-old.xml", "2-first.xml", "3-second.xml", "4-third.xml"]
        .into_iter()
        .flat_map(earlier_incidents)
        .collect();
    assert_eq!(counts, [0, 0, 1, 2].map(Value::from));
    let kept = std::fs::read_to_string(&history).unwrap();
    assert!(kept.contains("CA0190000/2026-006020"), "{kept}");
    for personal in ["Rivera", "rivera", "Alder", "alder", "1991-04-12"] {
        assert!(
            !kept.contains(personal),
            "the history holds no '{personal}'"
        );
    }
}

/// The names in a folder, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_failed_convert_leaves_the_earlier_output_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.ndjson");
    let report = dir.path().join("report.json");
    let blocked = dir.path().join("blocked");
    std::fs::create_dir(&blocked).unwrap();
    let convert = |mapping: &str, format: &str, report: &Path| {
        onedoor(&[
            "convert",
            "--mapping",
            mapping,
            "--input",
            "examples/referrals.csv",
            "--roster",
            "examples/district-export",
            "--format",
            format,
            "--output",
            out.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ])
    };
    let good = convert("student-referrals", "ndjson", &report);
    assert!(good.status.success(), "{}", text(&good.stderr));
    let earlier = [
        std::fs::read_to_string(&out).unwrap(),
        std::fs::read_to_string(&report).unwrap(),
    ];
    assert!(!earlier[0].is_empty() && !earlier[1].is_empty());
    // Fails before converting (no such mapping), then after converting everything (the report's path is a
    // folder): neither may touch the earlier output nor leave a temporary file.
    let failures = [
        convert("nope", "bundle", &report),
        convert("student-referrals", "bundle", &blocked),
    ];
    for failed in failures {
        assert_eq!(failed.status.code(), Some(2), "{}", text(&failed.stderr));
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            earlier[0],
            "the output is untouched"
        );
        assert_eq!(
            std::fs::read_to_string(&report).unwrap(),
            earlier[1],
            "the report is untouched"
        );
        assert_eq!(
            listing(dir.path()),
            ["blocked", "out.ndjson", "report.json"],
            "no temporary file is left"
        );
    }
}

#[test]
fn a_successful_convert_replaces_the_output_and_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("nested/out.ndjson");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    std::fs::write(
        &out,
        "an older, longer output that must not survive as a tail\n".repeat(200),
    )
    .unwrap();
    let run = convert_examples(&out);
    assert!(run.status.success(), "{}", text(&run.stderr));
    assert_eq!(ndjson(&out).len(), 3);
    assert_eq!(listing(out.parent().unwrap()), ["out.ndjson"]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode();
        let fresh = dir.path().join("fresh");
        std::fs::File::create(&fresh).unwrap();
        assert_eq!(
            mode(&out),
            mode(&fresh),
            "created as a new file would be, not 0600"
        );
    }
}

/// An output that is no regular file is written where it points: a symbolic link stays a link (its file gets
/// the output), a FIFO is written to (a rename would have replaced both with a file, and a device such as
/// `/dev/full` too), and a device that fails the writes fails the run with the reason.
#[cfg(unix)]
#[test]
fn an_output_that_is_a_link_a_pipe_or_a_device_is_written_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real.ndjson");
    std::fs::write(&real, "older\n".repeat(500)).unwrap();
    let link = dir.path().join("link.ndjson");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let run = convert_examples(&link);
    assert!(run.status.success(), "{}", text(&run.stderr));
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        ndjson(&real).len(),
        3,
        "the linked file holds the output, nothing older"
    );

    let fifo = dir.path().join("fifo");
    let made = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    let run = convert_examples(&fifo);
    assert!(run.status.success(), "{}", text(&run.stderr));
    assert_eq!(reader.join().unwrap().lines().count(), 3);
    use std::os::unix::fs::FileTypeExt;
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo()
    );

    if Path::new("/dev/full").exists() {
        let run = convert_examples(Path::new("/dev/full"));
        assert_eq!(run.status.code(), Some(2), "{}", text(&run.stderr));
        assert!(
            text(&run.stderr).contains("No space left on device"),
            "{}",
            text(&run.stderr)
        );
        let full = std::fs::symlink_metadata("/dev/full").unwrap();
        assert!(!full.is_file(), "/dev/full is still a device");
    }
}

#[test]
fn an_export_read_from_standard_input_converts_as_the_file_does() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let from_file = dir.path().join("file.ndjson");
    let from_stdin = dir.path().join("stdin.ndjson");
    let common = [
        "--mapping",
        "student-referrals",
        "--roster",
        "examples/district-export",
        "--now",
        "2026-01-01T00:00:00Z",
    ];
    let out = onedoor(
        &[
            &["convert", "--input", "examples/referrals.csv", "-o"],
            &[from_file.to_str().unwrap()][..],
            &common[..],
        ]
        .concat(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let mut child = Command::new(env!("CARGO_BIN_EXE_onedoor"))
        .args([
            "convert",
            "--input",
            "-",
            "--input-name",
            "referrals.csv",
            "-o",
        ])
        .arg(&from_stdin)
        .args(common)
        .current_dir(root())
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let csv = std::fs::read(root().join("examples/referrals.csv")).unwrap();
    child.stdin.take().unwrap().write_all(&csv).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let file = ndjson(&from_file);
    assert!(!file.is_empty());
    assert_eq!(file, ndjson(&from_stdin));
    // A stream named as no file is refused by name.
    let out = onedoor(&[
        "convert",
        "--mapping",
        "oneroster",
        "--input",
        "-",
        "--input-name",
        "..",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("not a file name"),
        "{}",
        text(&out.stderr)
    );
}
