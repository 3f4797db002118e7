//! The consent gate end to end: revocation of what was prepared, the audit chain in the store under
//! tampering (changed, removed, reordered, cut off the end, rewritten behind a signed checkpoint),
//! AuditEvent export, the disclosure log, and `onedoor consent check` as a user runs it.

use onedoor::consent::audit;
use onedoor::consent::model::Status;
use onedoor::consent::{ConsentGate, Disclosing, Registry, Withheld};
use onedoor::store::Store;
use onedoor::store::audit::StoreTrail;
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
        source: Some("Organization/org-school".into()),
    }
}

fn at(time: &str) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(time).unwrap()
}

/// A store in a temporary folder, with the runtime its calls run on.
struct TestStore {
    runtime: tokio::runtime::Runtime,
    store: Store,
    url: String,
}

fn test_store(dir: &Path) -> TestStore {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let url = format!("sqlite://{}", dir.join("onedoor.db").display());
    let store = runtime.block_on(Store::connect(&url)).unwrap();
    TestStore {
        runtime,
        store,
        url,
    }
}

impl TestStore {
    fn verify(&self) -> Result<u64, Vec<String>> {
        let (entries, head) = self.runtime.block_on(self.store.audit_chain()).unwrap();
        audit::verify_chain(&entries, &head)
    }

    fn execute(&self, sql: &str) {
        use sqlx::Connection;
        self.runtime.block_on(async {
            let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
            sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
        });
    }
}

fn gate_for(case: &str, store: &TestStore) -> ConsentGate {
    let record = bundle(case);
    let registry =
        onedoor::consent::registry::load_for_record(&case_file(case, "consents"), &record).unwrap();
    assert!(registry.problems().is_empty(), "{:?}", registry.problems());
    let trail = StoreTrail::new(store.store.clone(), store.runtime.handle().clone());
    ConsentGate::new(registry, Vec::new(), Some(Box::new(trail)))
}

#[test]
fn revocation_stops_a_record_prepared_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = test_store(dir.path());
    let mut gate = gate_for("permit-by-actor", &store);
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
    let disclosures = store
        .runtime
        .block_on(store.store.disclosures("st-1"))
        .unwrap();
    assert_eq!(
        disclosures.len(),
        1,
        "only the release before the revocation is a disclosure"
    );
    assert_eq!(store.verify(), Ok(2), "both decisions are audited");
}

#[test]
fn audit_verify_finds_changed_removed_reordered_and_cut_off_entries() {
    let dir = tempfile::tempdir().unwrap();
    let store = test_store(dir.path());
    let mut gate = gate_for("permit-by-actor", &store);
    for minute in 0..4 {
        let _ = gate
            .decide(
                &bundle("permit-by-actor"),
                &food_bank(),
                at(&format!("2026-03-02T10:0{minute}:00Z")),
            )
            .unwrap();
    }
    assert_eq!(store.verify(), Ok(4));
    let broken = |sql: &str| {
        let copy = tempfile::tempdir().unwrap();
        for file in ["onedoor.db", "onedoor.db-wal", "onedoor.db-shm"] {
            let from = dir.path().join(file);
            if from.exists() {
                std::fs::copy(from, copy.path().join(file)).unwrap();
            }
        }
        let tampered = test_store(copy.path());
        tampered.execute(sql);
        tampered.verify().unwrap_err()
    };
    let changed = broken(
        "UPDATE audit_entries SET entry = replace(entry, '\"purpose\":\"TREAT\"', '\"purpose\":\"HOPERAT\"') WHERE seq = 1",
    );
    assert!(
        changed
            .iter()
            .any(|p| p.contains("entry 1: content does not match its hash")),
        "{changed:?}"
    );
    let removed = broken("DELETE FROM audit_entries WHERE seq = 2");
    assert!(
        removed
            .iter()
            .any(|p| p.contains("entry 2: sequence 3 where 2 was expected")),
        "{removed:?}"
    );
    let reordered = broken(
        "UPDATE audit_entries SET seq = -1 WHERE seq = 2; UPDATE audit_entries SET seq = 2 WHERE seq = 3; \
         UPDATE audit_entries SET seq = 3 WHERE seq = -1",
    );
    assert!(
        reordered
            .iter()
            .any(|p| p.contains("does not link to the entry before it")),
        "{reordered:?}"
    );
    let cut = broken("DELETE FROM audit_entries WHERE seq = 4");
    assert!(
        cut.iter()
            .any(|p| p.contains("holds 3 entries but its head records 4")),
        "{cut:?}"
    );
}

#[test]
fn a_signed_checkpoint_catches_a_chain_rewritten_behind_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = test_store(dir.path());
    let mut gate = gate_for("permit-by-actor", &store);
    for minute in 0..3 {
        gate.decide(
            &bundle("permit-by-actor"),
            &food_bank(),
            at(&format!("2026-03-02T10:0{minute}:00Z")),
        )
        .unwrap();
    }
    let url = store.url.clone();
    let key = dir.path().join("audit.key");
    let signed = onedoor(&[
        "audit",
        "checkpoint",
        "--database-url",
        &url,
        "--key",
        key.to_str().unwrap(),
    ]);
    assert!(
        signed.status.success(),
        "{}",
        String::from_utf8_lossy(&signed.stderr)
    );
    let checkpoint = dir.path().join("checkpoint.json");
    std::fs::write(&checkpoint, &signed.stdout).unwrap();
    let verify = |url: &str| {
        onedoor(&[
            "audit",
            "verify",
            "--database-url",
            url,
            "--checkpoint",
            checkpoint.to_str().unwrap(),
        ])
    };
    let intact = verify(&url);
    assert!(
        String::from_utf8_lossy(&intact.stdout).contains("3 entries, chain intact"),
        "{}",
        String::from_utf8_lossy(&intact.stdout)
    );
    // Cutting the last entry AND moving the head to match is not caught by the chain alone...
    store.execute("DELETE FROM audit_entries WHERE seq = 3");
    store.execute(
        "UPDATE audit_head SET seq = 2, hash = (SELECT hash FROM audit_entries WHERE seq = 2)",
    );
    assert_eq!(store.verify(), Ok(2));
    // ...but the checkpoint the auditor kept catches it.
    let cut = verify(&url);
    assert_eq!(cut.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&cut.stdout).contains("fewer than the 3 the checkpoint"),
        "{}",
        String::from_utf8_lossy(&cut.stdout)
    );
}

#[test]
fn audit_entries_export_as_valid_audit_events_without_personal_data() {
    let dir = tempfile::tempdir().unwrap();
    let store = test_store(dir.path());
    let mut gate = gate_for("permit-by-actor", &store);
    gate.release(
        bundle("permit-by-actor"),
        food_bank(),
        at("2026-03-02T10:00:00Z"),
    )
    .unwrap();
    let (entries, _) = store.runtime.block_on(store.store.audit_chain()).unwrap();
    let events: Vec<Value> = entries.iter().map(audit::audit_event).collect();
    assert_eq!(events.len(), 1);
    assert_eq!(
        Validator::new().validate(&events[0]),
        vec![],
        "{}",
        events[0]
    );
    assert_eq!(events[0]["entity"][0]["what"]["reference"], "Patient/pat-1");
    let log = serde_json::to_string(&entries).unwrap();
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
    let url = format!("sqlite://{}", dir.path().join("onedoor.db").display());
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
        "--source",
        "Organization/org-school",
        "--time",
        "2026-03-02T10:00:00Z",
        "--database-url",
        &url,
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
        "--source",
        "Organization/org-school",
        "--time",
        "2026-03-02T10:00:00Z",
        "--database-url",
        &url,
    ]);
    assert_eq!(denied.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&denied.stdout)
            .contains("decision: NO CONSENT (denied by default)")
    );
    // Without --source the consent that permits above cannot be checked against its custodian: denied.
    let no_source = onedoor(&[
        "consent",
        "check",
        "--bundle",
        case.join("bundle.json").to_str().unwrap(),
        "--consents",
        case.join("consents").to_str().unwrap(),
        "--recipient",
        "urn:onedoor:agencies|county-food-bank",
        "--time",
        "2026-03-02T10:00:00Z",
        "--database-url",
        &url,
    ]);
    let stdout = String::from_utf8_lossy(&no_source.stdout);
    assert_eq!(no_source.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("decision: DENY") && stdout.contains("names no source organization"),
        "{stdout}"
    );
    let verify = onedoor(&["audit", "verify", "--database-url", &url]);
    assert!(String::from_utf8_lossy(&verify.stdout).contains("3 entries, chain intact"));
}

#[test]
fn convert_with_a_recipient_releases_only_what_consent_permits() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("to-food-bank.ndjson");
    let url = format!("sqlite://{}", dir.path().join("onedoor.db").display());
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
        "--database-url",
        &url,
        "--output",
        out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(stderr.contains("consent gate: 1 released"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 1);
    // No released record carried an obligation: no side file, and no staged file left behind.
    // (The store may leave its SQLite `-wal` and `-shm` files beside it.)
    let others: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with("onedoor.db"))
        .collect();
    assert_eq!(
        others,
        ["to-food-bank.ndjson"],
        "only the output and the store"
    );
    let shown = onedoor(&[
        "consent",
        "disclosures",
        "--patient",
        "stu-1001",
        "--database-url",
        &url,
    ]);
    assert!(String::from_utf8_lossy(&shown.stdout).contains(
        "to urn:onedoor:agencies|county-food-bank  for TREAT  under Consent riverside-consent-88"
    ));
}

fn consents_of(case: &str) -> Vec<Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(case_file(case, "consents"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap())
        .collect()
}

fn registry_of(consents: &[Value]) -> Registry {
    let mut registry = Registry::new();
    for c in consents {
        registry.upsert(onedoor::consent::model::parse(c).unwrap());
    }
    registry
}

/// The same inputs give the same decision on every run and in every load order (no hash order, no "first
/// permit wins"): a Part 2 record with a Part 2 consent and a FERPA consent, decided 20 times each way.
#[test]
fn decisions_do_not_depend_on_load_or_hash_order() {
    let record = bundle("combine-two-consents");
    let consents = consents_of("combine-two-consents");
    let time = at("2026-03-02T10:00:00Z");
    let mut seen = std::collections::BTreeSet::new();
    for run in 0..20 {
        let mut ordered = consents.clone();
        if run % 2 == 1 {
            ordered.reverse();
        }
        let gate = ConsentGate::new(registry_of(&ordered), Vec::new(), None);
        let decision = gate.decision(&record, &food_bank(), time);
        seen.insert(format!(
            "{:?} {:?} {:?} {:?} {:?}",
            decision.outcome,
            decision.authority,
            decision.redact_classes,
            decision.withheld_resources,
            decision.contributing
        ));
    }
    assert_eq!(seen.len(), 1, "decisions differ: {seen:#?}");
}

/// Consent ids are unique per patient: the same id for another patient is a consent of its own, and a
/// revocation can name the patient.
#[test]
fn the_same_consent_id_for_another_patient_is_its_own_consent() {
    let consents = consents_of("combine-same-id-other-patient");
    let mut registry = registry_of(&consents);
    assert_eq!(
        registry.len(),
        2,
        "the second c-1 did not overwrite the first"
    );
    assert!(registry.set_status_for("c-1", "Patient/pat-2", Status::Inactive));
    let record = bundle("combine-same-id-other-patient");
    let gate = ConsentGate::new(registry, Vec::new(), None);
    let decision = gate.decision(&record, &food_bank(), at("2026-03-02T10:00:00Z"));
    assert!(decision.permits(), "{:#?}", decision.explanation);
    assert!(
        decision
            .withheld_resources
            .contains(&"Patient/pat-2".to_owned())
    );
}

/// What the recipient receives of Part 2 data carries the obligation and the notice, in the Bundle's meta
/// and in the Part 2 resource's meta.
#[test]
fn the_part2_notice_travels_with_the_released_data() {
    let case = "leak-part2-notice-travels";
    let gate = ConsentGate::new(registry_of(&consents_of(case)), Vec::new(), None);
    let released = gate
        .release_for_delivery(&bundle(case), food_bank(), at("2026-03-02T10:00:00Z"))
        .unwrap();
    let record = released.record();
    let notice = |meta: &Value| {
        meta["extension"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["valueString"] == onedoor::consent::codes::PART2_NOTICE)
    };
    assert!(notice(&record["meta"]));
    let condition = record["entry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["resource"]["resourceType"] == "Condition")
        .unwrap();
    assert!(notice(&condition["resource"]["meta"]));
    assert!(
        Validator::new().validate(record).is_empty(),
        "the release is valid FHIR"
    );
}

/// Formats that cannot carry the obligation get it in a side file: an HMIS CSV folder holds
/// `onedoor-obligations.ndjson` with the notice and NORDSCLCD for the released Part 2 record (written
/// before its rows), a file drop `<file>.obligations.ndjson`; a record without an obligation writes none.
#[test]
fn the_part2_notice_travels_beside_hmis_csv_and_file_drops() {
    use onedoor::delivery::hmis_csv::HmisCsvDestination;
    use onedoor::delivery::obligations;
    let case = "leak-part2-notice-travels";
    let gate = ConsentGate::new(registry_of(&consents_of(case)), Vec::new(), None);
    let released = gate
        .release_for_delivery(&bundle(case), food_bank(), at("2026-03-02T10:00:00Z"))
        .unwrap();
    assert!(!released.decision().notices.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let hmis = dir.path().join("hmis");
    let mut destination = HmisCsvDestination::create(&hmis, "onedoor").unwrap();
    destination.deliver(&released).unwrap();
    destination.flush().unwrap();
    let side = std::fs::read_to_string(hmis.join(obligations::HMIS_SIDE_FILE)).unwrap();
    let entry: Value = serde_json::from_str(side.lines().next().unwrap()).unwrap();
    assert_eq!(entry["notice"], onedoor::consent::codes::PART2_NOTICE);
    assert_eq!(entry["obligations"][0]["code"], "NORDSCLCD");
    assert_eq!(entry["recipient"], "urn:onedoor:agencies|county-food-bank");
    assert!(
        entry["resources"].as_array().is_some_and(|r| r
            .iter()
            .any(|r| r.as_str().unwrap_or_default().starts_with("Condition/"))),
        "{entry}"
    );

    let drop = dir.path().join("drop.ndjson");
    let file_side = obligations::side_file_for(&drop);
    assert_eq!(
        file_side.file_name().unwrap().to_str().unwrap(),
        "drop.ndjson.obligations.ndjson"
    );
    assert!(obligations::append(&file_side, &released).unwrap());
    assert!(obligations::append(&file_side, &released).unwrap());
    assert_eq!(
        std::fs::read_to_string(&file_side).unwrap().lines().count(),
        2
    );

    // `convert --recipient --output FILE` writes FHIR NDJSON and its side file together.
    let side_path = dir.path().join("convert.obligations.ndjson");
    let mut ndjson = onedoor::delivery::NdjsonFileDestination::with_side_file(
        Vec::new(),
        Box::new(std::fs::File::create(&side_path).unwrap()),
    );
    ndjson.deliver(&released).unwrap();
    ndjson.flush().unwrap();
    assert_eq!(ndjson.obligation_lines, 1);
    assert!(
        std::fs::read_to_string(&side_path)
            .unwrap()
            .contains("NORDSCLCD")
    );

    // No Part 2 data, no obligation: nothing written.
    let plain = "permit-by-actor";
    let gate = ConsentGate::new(registry_of(&consents_of(plain)), Vec::new(), None);
    let released = gate
        .release_for_delivery(&bundle(plain), food_bank(), at("2026-03-02T10:00:00Z"))
        .unwrap();
    let quiet = dir.path().join("quiet.ndjson.obligations.ndjson");
    assert!(!obligations::append(&quiet, &released).unwrap());
    assert!(!quiet.exists());
    let hmis = dir.path().join("hmis-plain");
    let mut destination = HmisCsvDestination::create(&hmis, "onedoor").unwrap();
    destination.deliver(&released).unwrap();
    assert!(!hmis.join(obligations::HMIS_SIDE_FILE).exists());
}

/// A gateway over a fresh store in `dir` holding `case`'s consents: one destination (a file) for the county
/// food bank, and the partner `sender` of the organization `org` (`custodian_for`: more of its TOML).
async fn gateway_for(
    case: &str,
    dir: &Path,
    org: &str,
    custodian_for: &str,
) -> std::sync::Arc<onedoor::gateway::Gateway> {
    let config_path = dir.join("onedoor.toml");
    std::fs::write(
        &config_path,
        format!(
            "[gateway]\nmappings = {:?}\n[destinations.food]\nkind = \"file\"\nendpoint = {:?}\norg = \"urn:onedoor:agencies|county-food-bank\"\n[[routes]]\nperformer = \"urn:onedoor:agencies|county-food-bank\"\ndestination = \"food\"\n[partners.sender]\norg = {org:?}\n{custodian_for}\n",
            root().join("mappings").display().to_string(),
            dir.join("food.ndjson").display().to_string(),
        ),
    )
    .unwrap();
    let config = onedoor::config::load(&config_path).unwrap();
    let url = format!("sqlite://{}", dir.join("onedoor.db").display());
    let store = Store::connect(&url).await.unwrap();
    store.sync_consents(&consents_of(case)).await.unwrap();
    onedoor::gateway::Gateway::new(store, config)
}

/// The gateway decides with the sending partner's organization as the source: the school's own key, and a
/// district key that is custodian for the school (`custodian_for`), release what the school's consent
/// permits; another organization sending the same record does not (the consent covers the school's data).
#[tokio::test]
async fn the_gateway_takes_the_source_from_the_sending_partner() {
    let case = "permit-by-actor";
    let school = "urn:onedoor:source:lakeview/orgs|s-1";
    for (sender, custodian_for, wanted) in [
        (school, "", "pending"),
        (
            "urn:onedoor:source:lakeview/orgs|d-1",
            "custodian_for = [\"urn:onedoor:source:lakeview/orgs|s-1\"]",
            "pending",
        ),
        ("urn:onedoor:source:lakeview/orgs|d-1", "", "withheld"),
        ("urn:onedoor:agencies|family-services", "", "withheld"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let gateway = gateway_for(case, dir.path(), sender, custodian_for).await;
        let accepted = gateway
            .accept("partner:sender", sender, bundle(case))
            .await
            .unwrap();
        assert_eq!(
            accepted.routed,
            [("food".to_owned(), wanted.to_owned())],
            "sent by {sender} ({custodian_for})"
        );
    }
}

/// A referral is decided on the consent state its own transaction reads. The gateway decided the first
/// referral on the school's consent; the consent is then revoked (in the store, as another node or the
/// CLI would); the next referral for the same student is withheld when it is accepted. Decisions made
/// before the transaction, on the consent state the node had loaded, are kept only if the store's counters
/// still say that state: here they do not, and keeping them would route the referral as pending.
#[tokio::test]
async fn a_referral_accepted_after_a_revocation_is_withheld_at_once() {
    let case = "permit-by-actor";
    let school = "urn:onedoor:source:lakeview/orgs|s-1";
    let dir = tempfile::tempdir().unwrap();
    let gateway = gateway_for(case, dir.path(), school, "").await;
    let routed = |status: &str| vec![("food".to_owned(), status.to_owned())];

    let first = gateway
        .accept("partner:sender", school, bundle(case))
        .await
        .unwrap();
    assert_eq!(first.routed, routed("pending"), "permitted by the consent");

    let mut revoked = consents_of(case);
    for consent in &mut revoked {
        consent["status"] = serde_json::json!("inactive");
    }
    gateway.store.sync_consents(&revoked).await.unwrap();
    // The next referral: its own ServiceRequest and Task, for the same student.
    let mut next = bundle(case);
    for entry in next["entry"].as_array_mut().unwrap() {
        let resource = &mut entry["resource"];
        match resource["resourceType"].as_str() {
            Some("ServiceRequest") => resource["id"] = serde_json::json!("sr-2"),
            Some("Task") => {
                resource["id"] = serde_json::json!("task-2");
                resource["focus"] = serde_json::json!({"reference": "ServiceRequest/sr-2"});
            }
            _ => {}
        }
    }
    let second = gateway
        .accept("partner:sender", school, next)
        .await
        .unwrap();
    assert_eq!(second.revision, 1, "a new referral, not a revision");
    assert_eq!(second.routed, routed("withheld"), "the consent was revoked");
}
