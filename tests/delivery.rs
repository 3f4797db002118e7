//! One referral whatever path it comes by, retries across an outage, and what is refused before anything
//! is stored: a real `onedoor serve` (SQLite, or PostgreSQL when `ONEDOOR_TEST_POSTGRES_URL` is set) and
//! the example receiver as the agency.
//!
//! - The district's stored referral Bundle posted to `POST /fhir` after its CSV ingest is a duplicate: no
//!   second delivery, the Task the agency accepted is not reset. A corrected CSV (routine → urgent, a new
//!   note) is an update: delivered again as a new revision, the Task keeps its status and its history
//!   shows the revision; the job report names the upload and its column coverage.
//! - A receiver down past the retry window: its deliveries dead-letter (audited as not disclosed) and are
//!   delivered, once each, when it answers again, without an operator.
//! - A consent update based on an old version is refused (412); an upload cut off mid-body is refused and
//!   nothing is stored.
//! - A slow receiver (answering after 2 s) and a notification endpoint that accepts connections and never
//!   answers leave the other destination's delivery time close to what it is alone: deliveries run
//!   concurrently per destination, bounded, each attempt within its timeout (the silent one is retried
//!   after it).

mod support;

use serde_json::{Value, json};
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use std::time::Instant;
use support::{
    ADMIN_TOKEN, FOOD_BANK_KEY, Gateway, Options, SCHOOL_KEY, client, get, ingest, outbox,
    post_bundle, receiver, referral, referrals_csv, requested_tasks, root, send_json, tally,
    wait_until,
};

const FOOD_BANK: &str = "/food-bank";

/// The district's own copy of REF-2026-0001: `onedoor convert` of the same CSV with the same configuration.
fn stored_bundle_of_the_first_referral(gateway: &Gateway) -> Value {
    let out = gateway.onedoor(&[
        "convert",
        "--source",
        "riverside-referrals",
        "--input",
        "examples/referrals.csv",
        "--format",
        "bundle",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|b| b.to_string().contains("REF-2026-0001"))
        .expect("the converted export holds REF-2026-0001")
}

async fn accept_the_task(gateway: &Gateway) -> String {
    let tasks = requested_tasks(gateway, FOOD_BANK_KEY, 1).await;
    let mut task = tasks[0]["resource"].clone();
    let id = task["id"]
        .as_str()
        .expect("the food bank sees its Task")
        .to_owned();
    task["status"] = json!("accepted");
    let (status, body) = send_json(
        gateway,
        reqwest::Method::PUT,
        FOOD_BANK_KEY,
        &format!("/fhir/Task/{id}"),
        &task,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_referral_whatever_path_a_copy_is_a_duplicate_and_a_correction_a_revision() {
    let (agency, url) = receiver(0, 0).await;
    let gateway = Gateway::start(&url, 50).await;
    let csv = std::fs::read_to_string(root().join("examples/referrals.csv")).unwrap();
    let report = ingest(
        &gateway,
        SCHOOL_KEY,
        "riverside-referrals?filename=district-referrals.csv",
        csv.clone().into_bytes(),
    )
    .await;
    assert_eq!(report["status"], "done", "{report}");
    assert_eq!(
        report["upload"]["name"], "district-referrals.csv",
        "{report}"
    );
    let coverage = report
        .pointer("/report/summary/coverage")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let referrals = coverage
        .iter()
        .find(|t| t["file"] == "referrals.csv")
        .unwrap_or_else(|| panic!("{report}"));
    assert!(
        referrals["read"].as_array().is_some_and(|r| r.len() >= 10),
        "{referrals}"
    );
    wait_until("the food bank's delivery", Duration::from_secs(20), || {
        tally(&agency, FOOD_BANK).accepted.len() == 1
    })
    .await;
    let task = accept_the_task(&gateway).await;

    let again = post_bundle(
        &gateway,
        SCHOOL_KEY,
        &stored_bundle_of_the_first_referral(&gateway),
    )
    .await;
    assert_eq!(again.status().as_u16(), 200);
    let body: Value = again.json().await.unwrap();
    assert!(
        body.to_string().contains("200 OK"),
        "an identical copy is not created again: {body}"
    );

    let corrected = csv
        .replacen("food-insecurity,routine,", "food-insecurity,urgent,", 1)
        .replacen(
            "Family prefers contact in Spanish",
            "Family prefers contact in Spanish; new phone number on file",
            1,
        );
    let report = ingest(
        &gateway,
        SCHOOL_KEY,
        "riverside-referrals?filename=corrected.csv",
        corrected.into_bytes(),
    )
    .await;
    assert_eq!(
        (report["updated"].as_i64(), report["duplicates"].as_i64()),
        (Some(1), Some(2)),
        "{report}"
    );
    wait_until("the revision's delivery", Duration::from_secs(20), || {
        tally(&agency, FOOD_BANK).accepted.len() == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = tally(&agency, FOOD_BANK);
    assert_eq!(
        seen.accepted.len(),
        2,
        "the copy sent nothing; the correction was delivered once"
    );
    let revision = agency.accepted_on(FOOD_BANK).pop().unwrap();
    assert!(
        revision.to_string().contains("\"priority\":\"urgent\""),
        "the agency has the correction"
    );

    let (_, now) = get(&gateway, FOOD_BANK_KEY, &format!("/fhir/Task/{task}")).await;
    assert_eq!(
        now["status"], "accepted",
        "the Task the agency accepted is not reset"
    );
    let (_, history) = get(&gateway, SCHOOL_KEY, &format!("/fhir/Task/{task}/_history")).await;
    assert!(
        history.to_string().contains("revision 2 of this referral"),
        "{history}"
    );
    gateway.assert_audit_chain_intact();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_past_the_retry_window_gets_its_dead_letters_when_it_answers_again() {
    // 12 refusals: the first attempts use up the 1.2 s window, the probes (every 0.4 s) the rest.
    let (agency, url) = receiver(12, 0).await;
    let options = Options {
        retry_base_ms: 100,
        max_attempts: 0,
        server_extra:
            "retry_window_ms = 1200\nretry_max_delay_ms = 400\ndead_letter_probe_ms = 400".into(),
        ..Options::default()
    };
    let gateway = Gateway::start_with(&url, options).await;
    for i in 0..3 {
        assert_eq!(
            post_bundle(&gateway, SCHOOL_KEY, &referral(i))
                .await
                .status()
                .as_u16(),
            200
        );
    }
    let mut dead = Vec::new();
    for _ in 0..100 {
        dead = outbox(&gateway, "dead").await;
        if !dead.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!dead.is_empty(), "the window passed: dead letters");
    wait_until(
        "every dead letter delivered once the receiver answers",
        Duration::from_secs(30),
        || tally(&agency, FOOD_BANK).distinct_requests().len() == 3,
    )
    .await;
    let seen = tally(&agency, FOOD_BANK);
    assert_eq!((seen.accepted.len(), seen.delivered_twice().len()), (3, 0));
    assert!(outbox(&gateway, "dead").await.is_empty());
    let export = gateway.onedoor(&["audit", "export"]);
    let events = String::from_utf8_lossy(&export.stdout);
    assert!(
        events.contains("not disclosed (delivery dead-lettered)"),
        "a dead letter is audited as not disclosed"
    );
    assert!(events.contains("disclosed (receiver acknowledged)"));
    gateway.assert_audit_chain_intact();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consent_update_based_on_an_old_version_is_refused() {
    let (_agency, url) = receiver(0, 0).await;
    let gateway = Gateway::start(&url, 50).await;
    let consent = support::food_bank_consent();
    let (status, created) = send_json(
        &gateway,
        reqwest::Method::POST,
        SCHOOL_KEY,
        "/fhir/Consent",
        &consent,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let put = |version: &str, body: Value| {
        let url = format!("{}/fhir/Consent/{id}", gateway.base);
        let version = version.to_owned();
        async move {
            client()
                .put(url)
                .bearer_auth(SCHOOL_KEY)
                .header("If-Match", version)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let mut revoked = created.clone();
    revoked["status"] = json!("inactive");
    assert_eq!(
        put("W/\"1\"", revoked.clone()).await,
        200,
        "based on the current version"
    );
    assert_eq!(
        put("W/\"1\"", created.clone()).await,
        412,
        "another change came in between"
    );
    let (_, now) = get(&gateway, SCHOOL_KEY, &format!("/fhir/Consent/{id}")).await;
    assert_eq!(now["status"], "inactive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_cut_off_mid_body_is_refused_and_nothing_is_stored() {
    let (agency, url) = receiver(0, 0).await;
    let gateway = Gateway::start(&url, 50).await;
    let address = gateway.base.trim_start_matches("http://").to_owned();
    let csv = std::fs::read(root().join("examples/referrals.csv")).unwrap();
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    let head = format!(
        "POST /ingest/riverside-referrals HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {SCHOOL_KEY}\r\nContent-Length: {}\r\n\r\n",
        csv.len() * 4
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&csv).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(
        !answer.contains(" 202 "),
        "a cut-off upload is not accepted: {answer}"
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (_, all) = get(&gateway, ADMIN_TOKEN, "/admin/messages").await;
    assert_eq!(all["deliveries"].as_array().map(Vec::len), Some(0), "{all}");
    assert!(agency.accepted_on(FOOD_BANK).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_lettered_notification_can_be_replayed() {
    // Once the referral is delivered, the receiver goes down: the referrer's notification dead-letters.
    let (agency, url) = receiver(0, 0).await;
    let options = Options {
        retry_base_ms: 50,
        max_attempts: 2,
        server_extra: "dead_letter_probe_ms = 3600000".into(),
        ..Options::default()
    };
    let gateway = Gateway::start_with(&url, options).await;
    let csv = std::fs::read(root().join("examples/referrals.csv")).unwrap();
    let report = ingest(&gateway, SCHOOL_KEY, "riverside-referrals", csv).await;
    assert_eq!(report["status"], "done", "{report}");
    wait_until("the food bank's delivery", Duration::from_secs(20), || {
        !agency.accepted_on(FOOD_BANK).is_empty()
    })
    .await;
    agency.fail_next(1_000);
    let tasks = requested_tasks(&gateway, FOOD_BANK_KEY, 1).await;
    let mut task = tasks[0]["resource"].clone();
    let id = task["id"]
        .as_str()
        .expect("the food bank sees its Task")
        .to_owned();
    task["status"] = json!("accepted");
    let (status, _) = send_json(
        &gateway,
        reqwest::Method::PUT,
        FOOD_BANK_KEY,
        &format!("/fhir/Task/{id}"),
        &task,
    )
    .await;
    assert_eq!(status, 200);
    let mut dead = Vec::new();
    for _ in 0..200 {
        dead = outbox(&gateway, "dead")
            .await
            .into_iter()
            .filter(|d| d["kind"] == "notification")
            .collect();
        if !dead.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let message = dead
        .first()
        .and_then(|d| d["message"].as_str())
        .expect("a dead notification")
        .to_owned();
    agency.answer_again();
    let (code, replayed) = send_json(
        &gateway,
        reqwest::Method::POST,
        ADMIN_TOKEN,
        &format!("/admin/messages/{message}/replay"),
        &json!({}),
    )
    .await;
    assert_eq!(
        (code, replayed["queued"].as_i64()),
        (200, Some(1)),
        "{replayed}"
    );
    wait_until("the replayed notification", Duration::from_secs(20), || {
        !agency.accepted_on("/riverside/notifications").is_empty()
    })
    .await;
}

/// A notification endpoint that accepts TCP connections, reads, and never answers; counts connections.
async fn silent_endpoint() -> (Arc<AtomicUsize>, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/silent", listener.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                while tokio::io::AsyncReadExt::read(&mut socket, &mut buffer)
                    .await
                    .is_ok_and(|n| n > 0)
                {}
            });
        }
    });
    (connections, url)
}

/// Four Tasks accepted (four notifications to the referrer), then eight new food-bank referrals: how long
/// from their upload until the food bank has all of them.
async fn food_bank_time_behind_notifications(
    gateway: &Gateway,
    agency: &onedoor::example_receiver::Receiver,
) -> Duration {
    let report = ingest(
        gateway,
        SCHOOL_KEY,
        "riverside-referrals",
        referrals_csv("WARM", 4),
    )
    .await;
    assert_eq!(report["status"], "done", "{report}");
    wait_until("the first four deliveries", Duration::from_secs(30), || {
        tally(agency, FOOD_BANK).distinct_requests().len() >= 4
    })
    .await;
    let tasks = requested_tasks(gateway, FOOD_BANK_KEY, 4).await;
    for entry in tasks.iter().take(4) {
        let mut task = entry["resource"].clone();
        let id = task["id"].as_str().unwrap().to_owned();
        task["status"] = json!("accepted");
        let path = format!("/fhir/Task/{id}");
        let (status, body) =
            send_json(gateway, reqwest::Method::PUT, FOOD_BANK_KEY, &path, &task).await;
        assert_eq!(status, 200, "{body}");
    }
    let started = Instant::now();
    let report = ingest(
        gateway,
        SCHOOL_KEY,
        "riverside-referrals",
        referrals_csv("TIMED", 8),
    )
    .await;
    assert_eq!(report["status"], "done", "{report}");
    wait_until("the eight new deliveries", Duration::from_secs(60), || {
        tally(agency, FOOD_BANK).distinct_requests().len() >= 12
    })
    .await;
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_receiver_and_a_silent_notification_endpoint_do_not_delay_the_others() {
    let options = Options {
        claim_lease_ms: 10_000,
        server_extra: "notify_timeout_ms = 1000\ndestination_max_in_flight = 4".into(),
        ..Options::default()
    };
    // Alone: the food bank and a referrer's notification endpoint that answers.
    let (agency, url) = receiver(0, 0).await;
    let alone = {
        let gateway = Gateway::start_with(&url, options.clone()).await;
        food_bank_time_behind_notifications(&gateway, &agency).await
    };

    // Loaded: every referral also goes to a receiver that answers after 2 s, and the referrer's
    // notification endpoint never answers.
    let (agency, url) = receiver(0, 0).await;
    let (slow, slow_url) = receiver(0, 2_000).await;
    let (silent, silent_url) = silent_endpoint().await;
    let mut gateway = Gateway::prepare(&url, options).await;
    let config = std::fs::read_to_string(&gateway.config).unwrap();
    let notify = format!("notify_url = \"{url}/riverside/notifications\"");
    assert!(config.contains(&notify));
    let mut config = config.replace(&notify, &format!("notify_url = \"{silent_url}\""));
    config.push_str(&format!(
        "[destinations.slow-mirror]\nkind = \"fhir-rest\"\nendpoint = \"{slow_url}/mirror/fhir\"\n\
         org = \"urn:onedoor:agencies|county-food-bank\"\ntimeout_ms = 5000\n\
         [[routes]]\nneed = \"food-insecurity\"\ndestination = \"slow-mirror\"\n\
         [[routes]]\nperformer = \"urn:onedoor:agencies|county-food-bank\"\ndestination = \"slow-mirror\"\n"
    ));
    std::fs::write(&gateway.config, config).unwrap();
    gateway.spawn();
    let loaded = food_bank_time_behind_notifications(&gateway, &agency).await;
    eprintln!(
        "food bank: 8 referrals delivered in {alone:?} alone, {loaded:?} beside a 2 s receiver and a silent \
         notification endpoint"
    );
    assert!(
        loaded < alone * 2 + Duration::from_secs(1),
        "alone {alone:?}, loaded {loaded:?}"
    );
    // The silent endpoint's four notifications time out after 1 s and are tried again.
    wait_until(
        "the silent notifications retried",
        Duration::from_secs(30),
        || silent.load(Ordering::SeqCst) > 4,
    )
    .await;
    // The slow receiver gets its deliveries too, several at once.
    wait_until(
        "the slow receiver's deliveries",
        Duration::from_secs(60),
        || tally(&slow, "/mirror").distinct_requests().len() >= 12,
    )
    .await;
}
