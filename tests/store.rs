//! The store as an operator meets it: a database a newer onedoor migrated is refused with a clear
//! message, a database of an earlier schema is migrated with its history intact, and an audit folder of an
//! earlier version is migrated into the store's chain once.

use onedoor::consent::audit::{self, AuditTrail, MemoryTrail};
use onedoor::consent::{ConsentGate, Disclosing, Registry};
use std::process::Command;

mod support;

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

/// On SQLite this process's write transactions run on one connection of their own, which keeps its page
/// cache between them (another connection's write would drop it): a TEMP table, which only the connection
/// that made it sees, is there in every later write transaction, however many reads ran on the store
/// between them.
#[test]
fn write_transactions_share_one_sqlite_connection() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("onedoor.db").display());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = onedoor::store::Store::connect(&url).await.unwrap();
        let mut tx = store.begin().await.unwrap();
        sqlx::query("CREATE TEMP TABLE this_connection (n INTEGER)")
            .execute(tx.conn())
            .await
            .unwrap();
        tx.commit().await.unwrap();
        for round in 0..6 {
            // Reads beside the writes, so the read pool's connections are all opened and in use.
            let reads = tokio::join!(store.ready(), store.ready(), store.ready(), store.ready());
            assert!(reads.0 && reads.1 && reads.2 && reads.3);
            let mut tx = store.begin().await.unwrap();
            let seen = sqlx::query("SELECT count(*) FROM temp.this_connection")
                .execute(tx.conn())
                .await;
            assert!(seen.is_ok(), "round {round}: another connection: {seen:?}");
            tx.commit().await.unwrap();
        }
    });
}

/// The server's write-ahead log stays bounded under sustained writes: its writer checkpoints once the log
/// is long, so SQLite starts the log again from its beginning. With the checkpoints beside the writer only,
/// the log grew as long as the load lasted (2.4 GB in 15 s of `benches/server_load.sh`): a checkpoint on
/// another connection never catches up with a writer that commits every few milliseconds.
#[test]
fn the_servers_write_ahead_log_stays_bounded_under_sustained_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("onedoor.db");
    let url = format!("sqlite://{}", path.display());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store =
            onedoor::store::Store::connect_with(&url, onedoor::store::Checkpoints::Background)
                .await
                .unwrap();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let checkpoints = tokio::spawn({
            let store = store.clone();
            async move {
                store
                    .checkpoint_wal(std::time::Duration::from_millis(500), stopped)
                    .await
            }
        });
        let value = "x".repeat(64 * 1024);
        let mut longest = 0;
        for n in 0..1_200 {
            // Reads beside the writes, as the server's requests make them.
            assert!(store.ready().await);
            let mut tx = store.begin().await.unwrap();
            sqlx::query("INSERT INTO settings (name, value, created_at) VALUES (?1, ?2, 0)")
                .bind(format!("load-{n}"))
                .bind(&value)
                .execute(tx.conn())
                .await
                .unwrap();
            tx.commit().await.unwrap();
            let wal = std::fs::metadata(dir.path().join("onedoor.db-wal")).map_or(0, |m| m.len());
            longest = longest.max(wal);
        }
        stop.send(true).unwrap();
        checkpoints.await.unwrap();
        // About 75 MB went through the log; the writer checkpoints at 2,048 pages (8 MiB).
        let limit = 4 * u64::from(onedoor::store::WRITER_CHECKPOINT_PAGES) * 4096;
        assert!(
            longest > 0 && longest <= limit,
            "the write-ahead log reached {longest} bytes (at most {limit} expected)"
        );
    });
}

/// A write transaction dropped before its commit (an error, a cancelled request) leaves nothing of what it
/// wrote, and the next one on the same writer begins, sees the store as it was, and commits — on SQLite's
/// one writer connection, and on PostgreSQL when `ONEDOOR_TEST_POSTGRES_URL` is set.
#[test]
fn a_write_transaction_dropped_uncommitted_leaves_nothing_and_the_next_commits() {
    on_a_fresh_store(|store| async move {
        let insert = match store.backend() {
            onedoor::store::Backend::Postgres => {
                "INSERT INTO settings (name, value, created_at) VALUES ($1, 'v', 0)"
            }
            onedoor::store::Backend::Sqlite => {
                "INSERT INTO settings (name, value, created_at) VALUES (?1, 'v', 0)"
            }
        };
        let mut dropped = store.begin().await.unwrap();
        sqlx::query(insert)
            .bind("dropped")
            .execute(dropped.conn())
            .await
            .unwrap();
        drop(dropped);
        for name in ["first", "second"] {
            let mut tx = store.begin().await.unwrap();
            sqlx::query(insert)
                .bind(name)
                .execute(tx.conn())
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
        // `setting_or_init` answers the stored value, or stores and answers the candidate.
        for (name, expected) in [("first", "v"), ("second", "v"), ("dropped", "absent")] {
            let value = store.setting_or_init(name, "absent").await.unwrap();
            assert_eq!(value, expected, "{name}");
        }
    });
}

/// An acceptance's resources written together (one read, multi-row inserts) end as the same rows and
/// versions as written one by one: a new one at 1, an unchanged one kept, a changed one at the next
/// version, a resource listed twice as two successive writes, and a stale read refused as a conflict.
#[test]
fn resources_written_together_end_as_written_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let connect = |name: &str| {
            let url = format!("sqlite://{}", dir.path().join(name).display());
            async move { onedoor::store::Store::connect(&url).await.unwrap() }
        };
        let (together, one_by_one) = (connect("together.db").await, connect("single.db").await);
        let index = onedoor::store::ResourceIndex {
            sender_org: Some("urn:onedoor:schools|riverside".into()),
            ..Default::default()
        };
        let resource = |kind: &str, id: &str, n: i64| {
            serde_json::json!({"resourceType": kind, "id": id, "text": {"status": "generated", "div": format!("<div>{n}</div>")}})
        };
        let first = vec![
            (resource("Patient", "p1", 1), index.clone()),
            (resource("Organization", "o1", 1), index.clone()),
        ];
        let second = vec![
            (resource("Patient", "p1", 1), index.clone()), // unchanged
            (resource("Organization", "o1", 2), index.clone()), // changed
            (resource("Task", "t1", 1), index.clone()), // new
        ];
        let twice = vec![
            (resource("Task", "t1", 2), index.clone()),
            (resource("Task", "t1", 3), index.clone()),
        ];
        for batch in [&first, &second, &twice] {
            let keys: Vec<(&str, &str)> = batch
                .iter()
                .map(|(r, _)| onedoor::canonical::bundle::type_and_id(r))
                .collect();
            let mut tx = together.begin().await.unwrap();
            let held = together.held_resources(&mut tx, &keys).await.unwrap();
            together.upsert_resources(&mut tx, batch, &held).await.unwrap();
            tx.commit().await.unwrap();
            for (resource, index) in batch {
                one_by_one.put_resource(resource, index).await.unwrap();
            }
        }
        for (kind, id, versions) in [("Patient", "p1", 1), ("Organization", "o1", 2), ("Task", "t1", 3)] {
            let (a, b) = (
                together.history(kind, id).await.unwrap(),
                one_by_one.history(kind, id).await.unwrap(),
            );
            assert_eq!(a.len(), versions, "{kind}/{id}");
            let strip = |mut v: serde_json::Value| {
                v["meta"]["lastUpdated"] = serde_json::Value::Null;
                v
            };
            let (a, b): (Vec<_>, Vec<_>) = (a.into_iter().map(strip).collect(), b.into_iter().map(strip).collect());
            assert_eq!(a, b, "{kind}/{id}");
            let held = together.resource(kind, id).await.unwrap().unwrap();
            assert_eq!(held.version, versions as i64);
            assert_eq!(held.sender_org, index.sender_org);
        }
        // A read that another writer overtook: the conditional update finds the version changed.
        let keys = [("Organization", "o1")];
        let mut tx = together.begin().await.unwrap();
        let stale = together.held_resources(&mut tx, &keys).await.unwrap();
        tx.commit().await.unwrap();
        together
            .put_resource(&resource("Organization", "o1", 3), &index)
            .await
            .unwrap();
        let mut tx = together.begin().await.unwrap();
        let refused = together
            .upsert_resources(&mut tx, &[(resource("Organization", "o1", 4), index.clone())], &stale)
            .await;
        assert!(
            matches!(refused, Err(onedoor::store::StoreError::VersionConflict(_))),
            "{refused:?}"
        );
    });
}

/// A group commit's inserts sent together ([`onedoor::store::Store::write_gathered`]) keep every row, with
/// more rows than one statement takes (several statements in one text) and with more parameters than
/// are sent together (each insert on its own); on PostgreSQL when `ONEDOOR_TEST_POSTGRES_URL` is set.
#[test]
fn a_gathered_write_keeps_every_row_however_many() {
    on_a_fresh_store(|store| async move {
        let index = onedoor::store::ResourceIndex {
            sender_org: Some("urn:onedoor:schools|riverside".into()),
            ..Default::default()
        };
        for (batch, count) in [("few", 3), ("several-statements", 150), ("many", 1_000)] {
            let resources: Vec<_> = (0..count)
                .map(|n| {
                    let body = serde_json::json!({"resourceType": "Patient", "id": format!("{batch}-{n}"),
                        "name": [{"family": format!("F{n}")}]});
                    (body, index.clone())
                })
                .collect();
            let keys: Vec<(&str, &str)> = (resources.iter())
                .map(|(r, _)| onedoor::canonical::bundle::type_and_id(r))
                .collect();
            let mut tx = store.begin().await.unwrap();
            let held = store.held_resources(&mut tx, &keys).await.unwrap();
            let writes = held.plan_writes(&resources);
            store
                .write_gathered(&mut tx, &[], &writes, &[])
                .await
                .unwrap();
            tx.commit().await.unwrap();
            for n in 0..count {
                let id = format!("{batch}-{n}");
                let held = store.resource("Patient", &id).await.unwrap();
                let held = held.unwrap_or_else(|| panic!("Patient/{id} missing"));
                assert_eq!(held.version, 1, "{id}");
                assert_eq!(held.body["name"][0]["family"], format!("F{n}"), "{id}");
                if n % 50 == 0 {
                    assert_eq!(
                        store.history("Patient", &id).await.unwrap().len(),
                        1,
                        "{id}"
                    );
                }
            }
        }
    });
}

/// A gathered write that fails on its last row (a resource another writer stored after this transaction
/// read it as absent) is an error, the rows written before it in the same statement and in the statement
/// before are gone with the transaction, and the store's writer goes on: the next transaction writes and
/// commits (SQLite's inserts are `INSERT OR FAIL`, `src/store/inserts.rs`). On PostgreSQL too when
/// `ONEDOOR_TEST_POSTGRES_URL` is set.
#[test]
fn a_failed_gathered_write_leaves_nothing_and_the_store_goes_on() {
    on_a_fresh_store(|store| async move {
        let index = onedoor::store::ResourceIndex::default();
        let patient =
            |n: usize| serde_json::json!({"resourceType": "Patient", "id": format!("p{n}")});
        // 70 rows: a statement of 64 and one of 6 (the last the row that fails), sent together.
        let mut resources: Vec<_> = (0..69).map(|n| (patient(n), index.clone())).collect();
        let taken = serde_json::json!({"resourceType": "Organization", "id": "taken"});
        resources.push((taken.clone(), index.clone()));
        let keys: Vec<(&str, &str)> = (resources.iter())
            .map(|(r, _)| onedoor::canonical::bundle::type_and_id(r))
            .collect();
        let mut tx = store.begin().await.unwrap();
        let absent = store.held_resources(&mut tx, &keys).await.unwrap();
        tx.commit().await.unwrap();
        store.put_resource(&taken, &index).await.unwrap();

        let mut tx = store.begin().await.unwrap();
        let writes = absent.plan_writes(&resources);
        let failed = store.write_gathered(&mut tx, &[], &writes, &[]).await;
        assert!(
            matches!(failed, Err(onedoor::store::StoreError::Database(_))),
            "{failed:?}"
        );
        drop(tx);
        for n in [0, 63, 64, 68] {
            let id = format!("p{n}");
            assert!(
                store.resource("Patient", &id).await.unwrap().is_none(),
                "{id}"
            );
        }
        assert_eq!(
            store.history("Organization", "taken").await.unwrap().len(),
            1
        );

        store.put_resource(&patient(0), &index).await.unwrap();
        let held = store.resource("Patient", "p0").await.unwrap().expect("p0");
        assert_eq!(held.version, 1);
    });
}

/// A referral's subject and their guardians are read together: the person if held, and the RelatedPersons
/// whose patient is the reference given, newest first and at most the limit, none of another person's;
/// the guardians are found when the person is not held. On PostgreSQL too when
/// `ONEDOOR_TEST_POSTGRES_URL` is set.
#[test]
fn a_person_and_their_guardians_are_read_together() {
    on_a_fresh_store(|store| async move {
        let of = |patient: &str| onedoor::store::ResourceIndex {
            patient: Some(patient.to_owned()),
            sender_org: Some("urn:onedoor:schools|riverside".into()),
            ..Default::default()
        };
        let patient = serde_json::json!({"resourceType": "Patient", "id": "p1"});
        store
            .put_resource(&patient, &of("Patient/p1"))
            .await
            .unwrap();
        for (id, person) in [("g1", "p1"), ("g2", "p1"), ("g3", "p1"), ("other", "p2")] {
            let guardian = serde_json::json!({"resourceType": "RelatedPerson", "id": id,
                "patient": {"reference": format!("Patient/{person}")}});
            store
                .put_resource(&guardian, &of(&format!("Patient/{person}")))
                .await
                .unwrap();
            // Distinct update times, so "newest first" is an order to check.
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let ids = |found: &[onedoor::store::StoredResource]| -> Vec<String> {
            found.iter().map(|r| r.id.clone()).collect()
        };
        let (person, related) = store
            .person_and_related(("Patient", "p1"), "Patient/p1", 20)
            .await
            .unwrap();
        assert_eq!(
            person.map(|p| (p.resource_type, p.id)),
            Some(("Patient".into(), "p1".into()))
        );
        assert_eq!(ids(&related), ["g3", "g2", "g1"]);
        assert!(related.iter().all(|r| r.resource_type == "RelatedPerson"));
        let (_, limited) = store
            .person_and_related(("Patient", "p1"), "Patient/p1", 2)
            .await
            .unwrap();
        assert_eq!(ids(&limited), ["g3", "g2"]);
        let (nobody, others) = store
            .person_and_related(("Patient", "p2"), "Patient/p2", 20)
            .await
            .unwrap();
        assert!(nobody.is_none());
        assert_eq!(ids(&others), ["other"]);
    });
}

/// Run `test` on a fresh store: a SQLite file in a temporary folder, or a fresh PostgreSQL database when
/// `ONEDOOR_TEST_POSTGRES_URL` is set.
fn on_a_fresh_store<F: std::future::Future<Output = ()>>(
    test: impl FnOnce(onedoor::store::Store) -> F,
) {
    on_a_fresh_database(|url| async move {
        let store = onedoor::store::Store::connect(&url).await.unwrap();
        test(store).await;
    });
}

/// Run `test` with the URL of a fresh database, not yet migrated: a SQLite file in a temporary folder, or
/// a PostgreSQL database of its own when `ONEDOOR_TEST_POSTGRES_URL` is set (dropped afterwards).
fn on_a_fresh_database<F: std::future::Future<Output = ()>>(test: impl FnOnce(String) -> F) {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let url = runtime.block_on(support::database_url(dir.path()));
    runtime.block_on(test(url.clone()));
    drop(runtime);
    support::drop_test_database(&url);
}

/// A database as onedoor left it before migration 8 (every version of a resource in `resource_versions`,
/// the current one included; `message_resources` keyed by message): once migrated, a resource's history,
/// each of its versions and what was delivered with a message read as before, and what is written after
/// reads the same way. On SQLite, and on PostgreSQL when `ONEDOOR_TEST_POSTGRES_URL` names one (CI).
#[test]
fn a_store_of_schema_seven_keeps_its_history_and_deliveries_when_migrated() {
    // SQLite, or a database of its own on the PostgreSQL `ONEDOOR_TEST_POSTGRES_URL` names (CI runs both).
    on_a_fresh_database(|url| async move {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let (connect, blob) = match url.strip_prefix("sqlite://") {
            Some(path) => (format!("sqlite://{path}?mode=rwc"), "BLOB"),
            None => (url.clone(), "BYTEA"),
        };
        let mut conn = sqlx::AnyConnection::connect(&connect).await.unwrap();
        schema_seven(&mut conn, blob).await;
        let body = |version: i64| {
            format!(
                r#"{{"resourceType":"Task","id":"t1","status":"requested","meta":{{"versionId":"{version}"}}}}"#
            )
        };
        let statements = [
            format!("INSERT INTO resources (resource_type, id, version, body, updated_at) VALUES ('Task', 't1', 2, '{}', 2)", body(2)),
            format!("INSERT INTO resource_versions VALUES ('Task', 't1', 1, '{}', 1)", body(1)),
            format!("INSERT INTO resource_versions VALUES ('Task', 't1', 2, '{}', 2)", body(2)),
            "INSERT INTO messages (id, source, referral_key, revision, content_hash, received_at, body) VALUES ('m1', 'sis', 'ServiceRequest/s1', 1, 'h', 1, '{}')".to_owned(),
            "INSERT INTO outbox (id, message_id, kind, destination, status, attempts, next_attempt_at, claimed_until, idempotency_key, created_at, delivered_at) VALUES ('o1', 'm1', 'referral', 'food-bank', 'delivered', 1, 0, 0, 'k', 1, 2)".to_owned(),
            "INSERT INTO message_resources VALUES ('m1', 'Task', 't1')".to_owned(),
        ];
        for statement in statements {
            sqlx::query(&statement).execute(&mut conn).await.unwrap();
        }
        conn.close().await.unwrap();

        let store = onedoor::store::Store::connect(&url).await.unwrap();
        let versions = |history: Vec<serde_json::Value>| -> Vec<String> {
            (history.iter())
                .map(|v| {
                    v["meta"]["versionId"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned()
                })
                .collect()
        };
        assert_eq!(
            versions(store.history("Task", "t1").await.unwrap()),
            ["2", "1"]
        );
        for version in [1, 2] {
            let read = store
                .resource_at("Task", "t1", version)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(read["meta"]["versionId"], version.to_string());
        }
        assert!(store.resource_at("Task", "t1", 3).await.unwrap().is_none());
        let delivered = store
            .delivered_with("Task", "t1", &["food-bank".to_owned()])
            .await
            .unwrap();
        assert_eq!(delivered, Some(("m1".to_owned(), "food-bank".to_owned())));
        let whole = store
            .message("m1")
            .await
            .unwrap()
            .expect("the message of before");
        assert_eq!(
            (whole.body, whole.versions),
            (serde_json::json!({}), vec![])
        );

        // An update after the migration keeps the version it supersedes, once.
        let updated = serde_json::json!({"resourceType": "Task", "id": "t1", "status": "accepted"});
        let index = onedoor::store::ResourceIndex::default();
        assert_eq!(store.put_resource(&updated, &index).await.unwrap(), 3);
        let history = store.history("Task", "t1").await.unwrap();
        assert_eq!(versions(history.clone()), ["3", "2", "1"]);
        assert_eq!(history[0]["status"], "accepted");
        assert_eq!(history[1]["status"], "requested");
    });
}

/// A referral's message keeps its bundle naming the versions its transaction stored, not a second copy of
/// each: the stored text holds none of the resources' content, and reading the message gives the bundle as
/// accepted, each resource at the version it carried, after later versions of them (and with a resource
/// it carried unchanged naming the version held). On SQLite, and on PostgreSQL when
/// `ONEDOOR_TEST_POSTGRES_URL` is set.
#[test]
fn a_message_names_the_versions_it_carries_and_reads_them_back_after_they_change() {
    use onedoor::store::messages::{Message, NewDelivery};
    use onedoor::store::{DeliveryKind, DeliveryStatus};
    use serde_json::{Value, json};
    on_a_fresh_database(|url| async move {
        let store = onedoor::store::Store::connect(&url).await.unwrap();
        let index = onedoor::store::ResourceIndex::default();
        let patient = json!({"resourceType": "Patient", "id": "p1", "meta": {"security": [{"code": "R"}]}, "name": [{"family": "Rivera"}]});
        let task = |status: &str| json!({"resourceType": "Task", "id": "t1", "status": status, "intent": "order"});
        let bundle =
            |task: Value| onedoor::canonical::bundle::transaction(vec![patient.clone(), task]);
        let accept = |id: &'static str, body: Value| {
            let (store, index) = (&store, index.clone());
            async move {
                let resources: Vec<(&Value, _)> = (onedoor::consent::subject::resources(&body))
                    .into_iter()
                    .map(|r| (r, index.clone()))
                    .collect();
                let keys: Vec<(&str, &str)> = (resources.iter())
                    .map(|(r, _)| onedoor::canonical::bundle::type_and_id(r))
                    .collect();
                let mut tx = store.begin().await.unwrap();
                let held = store.held_resources(&mut tx, &keys).await.unwrap();
                let (writes, versions) = held.plan_versions(&resources);
                store.write_resources(&mut tx, &writes).await.unwrap();
                let message = Message {
                    id: id.into(),
                    source: "source:sis".into(),
                    referral_key: format!("ServiceRequest/{id}"),
                    revision: 1,
                    content_hash: id.into(),
                    body: body.clone(),
                    versions: versions.clone(),
                };
                let delivery = NewDelivery {
                    kind: DeliveryKind::Referral,
                    destination: "food-bank".into(),
                    status: DeliveryStatus::Pending,
                };
                store
                    .insert_message(&mut tx, &message, &[delivery])
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
                versions
            }
        };
        let (first, second) = (bundle(task("requested")), bundle(task("accepted")));
        assert_eq!(accept("m1", first.clone()).await, [1, 1]);
        // The Patient unchanged names the version held; the Task changed names its new one.
        assert_eq!(accept("m2", second.clone()).await, [1, 2]);
        let later = task("completed");
        assert_eq!(store.put_resource(&later, &index).await.unwrap(), 3);

        for (id, body, versions) in [("m1", &first, [1, 1]), ("m2", &second, [1, 2])] {
            let read = store.message(id).await.unwrap().expect("stored");
            assert_eq!(&read.body, body, "{id} reads as accepted");
            assert_eq!(read.versions, versions);
        }
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT body, names_versions FROM messages ORDER BY id")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        for (text, names) in &rows {
            assert_eq!(*names, 1, "{text}");
            for content in ["Rivera", "requested", "accepted", "security"] {
                assert!(
                    !text.contains(content),
                    "no second copy of {content}: {text}"
                );
            }
        }
        assert_eq!(rows.len(), 2);
        conn.close().await.unwrap();
    });
}

/// The schema migrations 1 to 7 made, applied to `conn` as onedoor applied them (`blob`: the backend's
/// binary column type).
async fn schema_seven(conn: &mut sqlx::AnyConnection, blob: &str) {
    let files = [
        include_str!("../src/store/migrations/0001_core.sql"),
        include_str!("../src/store/migrations/0002_incident_sightings.sql"),
        include_str!("../src/store/migrations/0003_one_source_of_truth.sql"),
        include_str!("../src/store/migrations/0004_credentials.sql"),
        include_str!("../src/store/migrations/0005_settings.sql"),
        include_str!("../src/store/migrations/0006_reads_and_rights.sql"),
        include_str!("../src/store/migrations/0007_subscriptions.sql"),
    ];
    sqlx::query(
        "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL)",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    for (number, text) in files.iter().enumerate() {
        let code: String = (text.lines())
            .filter(|line| !line.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n");
        for statement in code.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            sqlx::query(&statement.replace("{blob}", blob))
                .execute(&mut *conn)
                .await
                .unwrap();
        }
        sqlx::query("INSERT INTO schema_migrations (version, description) VALUES ($1, 'earlier')")
            .bind(number as i64 + 1)
            .execute(&mut *conn)
            .await
            .unwrap();
    }
}
