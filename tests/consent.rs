//! The consent gate end to end: revocation of what was prepared, the audit chain under tampering,
//! AuditEvent export, the disclosure log, and `onedoor consent check` as a user runs it.

use onedoor::consent::audit::{self, AuditLog};
use onedoor::consent::model::Status;
use onedoor::consent::{ConsentGate, Disclosing, Registry, Withheld};
use onedoor::validation::Validator;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn case_file(case: &str, file: &str) -> PathBuf {
    root().join("conformance/consent").join(case).join(file)
}

fn bundle(case: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(case_file(case, "bundle.json")).unwrap()).unwrap()
}

fn food_bank() -> Disclosing {
    Disclosing {
        recipient: "urn:onedoor:agencies|county-food-bank".into(),
        purpose: "TREAT".into(),
        source: None,
    }
}

fn at(time: &str) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(time).unwrap()
}

fn gate_for(case: &str, audit_dir: &Path) -> ConsentGate {
    let record = bundle(case);
    let registry =
        onedoor::consent::registry::load_for_record(&case_file(case, "consents"), &record).unwrap();
    assert!(registry.problems().is_empty(), "{:?}", registry.problems());
    ConsentGate::new(
        registry,
        Vec::new(),
        Some(AuditLog::open(audit_dir).unwrap()),
    )
}

#[test]
fn revocation_stops_a_record_prepared_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut gate = gate_for("permit-by-actor", dir.path());
    let record = bundle("permit-by-actor");
    let released = gate
        .release(record.clone(), food_bank(), at("2026-03-02T10:00:00Z"))
        .expect("permitted before revocation");
    assert!(gate.registry_mut().set_status("c-1", Status::Inactive));
    match gate.recheck(record, released, at("2026-03-02T10:05:00Z")) {
        Err(Withheld::Denied(decision)) => assert!(
            decision
                .explanation
                .iter()
                .any(|l| l.contains("is not active"))
        ),
        other => panic!("a revoked consent must stop the queued record, got {other:?}"),
    }
    let disclosures = audit::disclosures(dir.path(), "st-1").unwrap();
    assert_eq!(
        disclosures.len(),
        1,
        "only the release before the revocation is a disclosure"
    );
    assert_eq!(
        audit::verify(dir.path()),
        Ok(2),
        "both decisions are audited"
    );
}

#[test]
fn audit_verify_finds_changed_removed_and_reordered_entries() {
    let dir = tempfile::tempdir().unwrap();
    let mut gate = gate_for("permit-by-actor", dir.path());
    for minute in 0..4 {
        let _ = gate
            .decide(
                &bundle("permit-by-actor"),
                &food_bank(),
                at(&format!("2026-03-02T10:0{minute}:00Z")),
            )
            .unwrap();
    }
    let file = dir.path().join(audit::AUDIT_FILE);
    let original = std::fs::read_to_string(&file).unwrap();
    assert_eq!(audit::verify(dir.path()), Ok(4));
    let lines: Vec<&str> = original.lines().collect();

    std::fs::write(
        &file,
        original.replace("\"purpose\":\"TREAT\"", "\"purpose\":\"HOPERAT\""),
    )
    .unwrap();
    let changed = audit::verify(dir.path()).unwrap_err();
    assert!(
        changed
            .iter()
            .any(|p| p.contains("line 1: content does not match its hash")),
        "{changed:?}"
    );

    std::fs::write(&file, [lines[0], lines[2], lines[3]].join("\n") + "\n").unwrap();
    let removed = audit::verify(dir.path()).unwrap_err();
    assert!(
        removed
            .iter()
            .any(|p| p.contains("line 2: sequence 3 where 2 was expected")),
        "{removed:?}"
    );

    std::fs::write(
        &file,
        [lines[0], lines[2], lines[1], lines[3]].join("\n") + "\n",
    )
    .unwrap();
    let reordered = audit::verify(dir.path()).unwrap_err();
    assert!(
        reordered
            .iter()
            .any(|p| p.contains("does not link to the entry before it")),
        "{reordered:?}"
    );
}

#[test]
fn audit_entries_export_as_valid_audit_events_without_personal_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut gate = gate_for("permit-by-actor", dir.path());
    gate.release(
        bundle("permit-by-actor"),
        food_bank(),
        at("2026-03-02T10:00:00Z"),
    )
    .unwrap();
    let events = audit::audit_events(dir.path()).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        Validator::new().validate(&events[0]),
        vec![],
        "{}",
        events[0]
    );
    assert_eq!(events[0]["entity"][0]["what"]["reference"], "Patient/pat-1");
    let log = std::fs::read_to_string(dir.path().join(audit::AUDIT_FILE)).unwrap();
    for personal in ["Osei", "Amara", "2014-05-05"] {
        assert!(!log.contains(personal), "the audit log holds '{personal}'");
    }
}

#[test]
fn no_consent_means_no_release() {
    let mut gate = ConsentGate::new(Registry::new(), Vec::new(), None);
    let withheld = gate.release(
        bundle("no-consent-at-all"),
        food_bank(),
        at("2026-03-02T10:00:00Z"),
    );
    assert!(matches!(withheld, Err(Withheld::Denied(_))));
}

fn onedoor(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_onedoor"))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap()
}

#[test]
fn consent_check_answers_explains_and_writes_the_released_record() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("released.json");
    let case = root().join("conformance/consent/nested-deny-data-class");
    let run = onedoor(&[
        "consent",
        "check",
        "--bundle",
        case.join("bundle.json").to_str().unwrap(),
        "--consents",
        case.join("consents").to_str().unwrap(),
        "--recipient",
        "urn:onedoor:agencies|county-food-bank",
        "--purpose",
        "TREAT",
        "--time",
        "2026-03-02T10:00:00Z",
        "--audit-dir",
        dir.path().to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{stdout}");
    assert!(
        stdout.contains("decision: PERMIT (redacted)")
            && stdout.contains("obligations: withhold Condition"),
        "{stdout}"
    );
    assert!(
        stdout.contains("decided by Consent/c-1 provision: permit"),
        "{stdout}"
    );
    let released: Value = serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap();
    assert!(!released.to_string().contains("\"Condition\""));
    assert!(
        released["meta"]["security"]
            .to_string()
            .contains("REDACTED")
    );

    let denied = onedoor(&[
        "consent",
        "check",
        "--bundle",
        case.join("bundle.json").to_str().unwrap(),
        "--recipient",
        "urn:onedoor:agencies|county-food-bank",
        "--time",
        "2026-03-02T10:00:00Z",
        "--audit-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(denied.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&denied.stdout)
            .contains("decision: NO CONSENT (denied by default)")
    );
    let verify = onedoor(&[
        "audit",
        "verify",
        "--audit-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&verify.stdout).contains("2 entries, chain intact"));
}

#[test]
fn convert_with_a_recipient_releases_only_what_consent_permits() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("to-food-bank.ndjson");
    let run = onedoor(&[
        "convert",
        "--source",
        "riverside-referrals",
        "--recipient",
        "urn:onedoor:agencies|county-food-bank",
        "--consents",
        "examples/consents",
        "--now",
        "2026-09-15T12:00:00Z",
        "--audit-dir",
        dir.path().to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(stderr.contains("consent gate: 1 released"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 1);
    let shown = onedoor(&[
        "consent",
        "disclosures",
        "--patient",
        "stu-1001",
        "--audit-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&shown.stdout).contains(
        "to urn:onedoor:agencies|county-food-bank  for TREAT  under Consent riverside-consent-88"
    ));
}
