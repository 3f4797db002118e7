//! The store as an operator meets it: a database a newer onedoor migrated is refused with a clear
//! message, and an audit folder of an earlier version is migrated into the store's chain once.

use onedoor::consent::audit::{self, AuditTrail, MemoryTrail};
use onedoor::consent::{ConsentGate, Disclosing, Registry};
use std::process::Command;

fn onedoor(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_onedoor"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

#[test]
fn a_store_migrated_by_a_newer_onedoor_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("onedoor.db").display());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        use sqlx::Connection;
        onedoor::store::Store::connect(&url).await.unwrap();
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query(
            "INSERT INTO schema_migrations (version, description) VALUES (99, 'from the future')",
        )
        .execute(&mut conn)
        .await
        .unwrap();
    });
    let out = onedoor(dir.path(), &["audit", "verify", "--database-url", &url]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("schema version 99, newer than this onedoor knows"),
        "{stderr}"
    );
}

/// An audit folder as versions before the store wrote it: `audit.jsonl` and `disclosures.jsonl`.
fn earlier_audit_folder(dir: &std::path::Path) -> usize {
    let folder = dir.join("var/audit");
    std::fs::create_dir_all(&folder).unwrap();
    let mut trail = MemoryTrail::default();
    let gate = ConsentGate::new(Registry::new(), Vec::new(), None);
    let request = Disclosing {
        recipient: "urn:onedoor:agencies|county-food-bank".into(),
        purpose: "TREAT".into(),
        source: None,
    };
    let record = serde_json::json!({"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "id": "p-1"}}]});
    for _ in 0..3 {
        let time = chrono::Utc::now().fixed_offset();
        let decision = gate.decision(&record, &request, time);
        trail
            .record(onedoor::consent::gate::audit_entry(
                &decision, &request, time,
            ))
            .unwrap();
    }
    let lines: Vec<String> = trail
        .entries
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect();
    std::fs::write(folder.join(audit::AUDIT_FILE), lines.join("\n") + "\n").unwrap();
    lines.len()
}

#[test]
fn an_audit_folder_of_an_earlier_version_is_migrated_into_the_store_once() {
    let dir = tempfile::tempdir().unwrap();
    let written = earlier_audit_folder(dir.path());
    std::fs::create_dir_all(dir.path().join("config")).unwrap();
    std::fs::write(
        dir.path().join("config/onedoor.toml"),
        format!(
            "[gateway]\nmappings = \"{}/mappings\"\n[server]\ndatabase_url = \"sqlite://var/onedoor.db\"\n[consent]\naudit_dir = \"var/audit\"\n",
            env!("CARGO_MANIFEST_DIR")
        ),
    )
    .unwrap();
    let first = onedoor(dir.path(), &["audit", "verify"]);
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        stdout.contains(&format!("{written} entries, chain intact")),
        "{stdout}"
    );
    assert!(dir.path().join("var/audit/audit.jsonl.migrated").exists());
    assert!(!dir.path().join("var/audit/audit.jsonl").exists());
    let again = onedoor(dir.path(), &["audit", "verify"]);
    assert!(
        String::from_utf8_lossy(&again.stdout)
            .contains(&format!("{written} entries, chain intact"))
    );
}

#[test]
fn an_update_that_changes_nothing_keeps_the_version() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("onedoor.db").display());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = onedoor::store::Store::connect(&url).await.unwrap();
        let index = onedoor::store::ResourceIndex {
            sender_org: Some("urn:onedoor:schools|riverside".into()),
            ..Default::default()
        };
        let patient =
            serde_json::json!({"resourceType": "Patient", "id": "p1", "birthDate": "2010-01-01"});
        assert_eq!(store.put_resource(&patient, &index).await.unwrap(), 1);
        // The same again (as a client re-sends it, or with the store's own meta): no new version.
        assert_eq!(store.put_resource(&patient, &index).await.unwrap(), 1);
        let held = store.resource("Patient", "p1").await.unwrap().unwrap().body;
        assert_eq!(store.put_resource(&held, &index).await.unwrap(), 1);
        assert_eq!(store.history("Patient", "p1").await.unwrap().len(), 1);
        // A change, or the same body indexed for another sender, is a new version.
        let mut changed = patient.clone();
        changed["birthDate"] = serde_json::json!("2010-01-02");
        assert_eq!(store.put_resource(&changed, &index).await.unwrap(), 2);
        let other = onedoor::store::ResourceIndex {
            sender_org: Some("urn:onedoor:agencies|county-food-bank".into()),
            ..Default::default()
        };
        assert_eq!(store.put_resource(&changed, &other).await.unwrap(), 3);
        assert_eq!(store.history("Patient", "p1").await.unwrap().len(), 3);
    });
}
