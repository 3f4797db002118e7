//! No input takes a request, a job or the server down (issue 10): a panicking handler answers 500 with an
//! OperationOutcome and its message (which may quote received data) never reaches the log; a complex element
//! that is not an object is refused with 422; oversized JSON is 413; `_count` out of range is 400; a client
//! stalled mid-headers is disconnected; SIGTERM with a stalled client exits within the grace period; at the
//! connection limit, more connections wait and `/healthz` still answers once stalled ones are dropped; the
//! repeat-incident history never uses the public default salt.

mod support;

use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Personal data of the requests below; none of it may appear in the log.
const PERSONAL: &[&str] = &["Quintessa", "Okonkwo-Brandt", "2013-07-19"];

/// `onedoor serve` with extra environment, its standard error written to a file in the test's folder.
struct Server {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Server {
    fn spawn(gateway: &Gateway, env: &[(&str, &str)]) -> Server {
        let log = gateway
            .dir
            .path()
            .join(format!("serve-{}.log", uuid::Uuid::new_v4()));
        let mut child = Command::new(env!("CARGO_BIN_EXE_onedoor"))
            .args(["serve", "--config", gateway.config.to_str().unwrap()])
            .args(["--database-url", &gateway.database_url])
            .env("ONEDOOR_ADMIN_TOKEN", ADMIN_TOKEN)
            .envs(env.iter().copied())
            .current_dir(root())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let base = support::listening_address(&mut child);
        Server { child, base, log }
    }

    fn address(&self) -> String {
        self.base.trim_start_matches("http://").to_owned()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then wait: how long it took to exit.
    fn terminate(&mut self) -> Duration {
        let started = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "serve did not exit"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        started.elapsed()
    }
}

impl Base for Server {
    fn base(&self) -> &str {
        &self.base
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn prepared(server_extra: &str) -> Gateway {
    Gateway::prepare(
        "http://127.0.0.1:9",
        Options {
            server_extra: server_extra.to_owned(),
            ..Options::default()
        },
    )
    .await
}

fn assert_outcome(status: u16, expected: u16, body: &Value, names: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["resourceType"], "OperationOutcome", "{body}");
    let diagnostics = body["issue"][0]["diagnostics"].as_str().unwrap_or_default();
    assert!(diagnostics.contains(names), "'{names}' not named: {body}");
}

/// A connection that sends part of a request head and then nothing.
async fn stalled(address: &str) -> TcpStream {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    stream
}

/// Whether the server closed the connection within `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buffer = [0u8; 1024];
    loop {
        match tokio::time::timeout(within, stream.read(&mut buffer)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

fn bundle_with_meta_string() -> Value {
    let mut bundle = referral(1);
    bundle["entry"].as_array_mut().unwrap().push(json!({
        "fullUrl": "urn:uuid:6b7d1d3e-2f4b-4f7e-9a53-6c1d0f1e2a11",
        "resource": {"resourceType": "Observation", "id": "obs-1", "status": "final", "meta": "x",
            "code": {"text": "Quintessa Okonkwo-Brandt born 2013-07-19"}},
        "request": {"method": "PUT", "url": "Observation/obs-1"}
    }));
    bundle
}

#[tokio::test]
async fn bad_input_gets_a_clear_outcome_and_a_panic_is_logged_without_personal_data() {
    let gateway = prepared("").await;
    let mut server = Server::spawn(
        &gateway,
        &[("ONEDOOR_TEST_PANIC_ROUTE", "1"), ("ONEDOOR_LOG", "debug")],
    );
    let client = client();

    // A panicking handler: 500 with an OperationOutcome; the server goes on.
    let response = client
        .post(format!("{}/admin/test-panic", server.base))
        .body(PERSONAL.join(" "))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 500);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/fhir+json"
    );
    let body: Value = response.json().await.unwrap();
    assert_outcome(500, 500, &body, "internal error");
    let (status, _) = get(&server, "", "/healthz").await;
    assert_eq!(status, 200, "the server answers after a panic");

    // The reproducer: an Observation whose meta is a string.
    let response = post_bundle(&server, SCHOOL_KEY, &bundle_with_meta_string()).await;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert_outcome(status, 422, &body, "/entry/3/resource/meta");

    // A JSON body over server.max_json_bytes (1 MiB by default).
    let big =
        json!({"resourceType": "ServiceRequest", "note": [{"text": "x".repeat(2 * 1024 * 1024)}]});
    let (status, body) = send_json(
        &server,
        reqwest::Method::POST,
        SCHOOL_KEY,
        "/fhir/ServiceRequest",
        &big,
    )
    .await;
    assert_outcome(status, 413, &body, "max_json_bytes");

    // _count out of range or not a number.
    for count in ["-1", "0", "1001", "ten"] {
        let (status, body) = get(&server, SCHOOL_KEY, &format!("/fhir/Task?_count={count}")).await;
        assert_outcome(status, 400, &body, "_count");
    }
    let (status, _) = get(&server, SCHOOL_KEY, "/fhir/Task?_count=5").await;
    assert_eq!(status, 200);

    // Errors of the framework itself are OperationOutcomes too.
    let (status, body) = get(&server, SCHOOL_KEY, "/no/such/route").await;
    assert_outcome(status, 404, &body, "no such endpoint");

    server.terminate();
    let log = server.log();
    assert!(log.contains("panicked"), "the panic is logged: {log}");
    for personal in PERSONAL {
        assert!(!log.contains(personal), "the log holds '{personal}': {log}");
    }
}

#[tokio::test]
async fn the_panic_route_does_not_exist_by_default() {
    let gateway = prepared("").await;
    let server = Server::spawn(&gateway, &[]);
    let response = client()
        .post(format!("{}/admin/test-panic", server.base))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
}

#[tokio::test]
async fn a_client_stalled_mid_headers_is_disconnected_after_the_header_timeout() {
    let gateway = prepared("header_read_timeout_ms = 500").await;
    let server = Server::spawn(&gateway, &[]);
    let started = Instant::now();
    let mut stream = stalled(&server.address()).await;
    assert!(
        closed_within(&mut stream, Duration::from_secs(5)).await,
        "the stalled client is disconnected"
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(400),
        "not before the timeout: {took:?}"
    );
    let (status, _) = get(&server, "", "/healthz").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn sigterm_with_a_stalled_client_exits_within_the_grace_period() {
    let gateway = prepared("header_read_timeout_ms = 60000\nshutdown_grace_ms = 1000").await;
    let mut server = Server::spawn(&gateway, &[]);
    let _stalled = stalled(&server.address()).await;
    let (status, _) = get(&server, "", "/healthz").await;
    assert_eq!(status, 200);
    let took = server.terminate();
    eprintln!("serve exited {took:?} after SIGTERM with a stalled client (grace 1 s)");
    assert!(took < Duration::from_secs(5), "exited after {took:?}");
}

#[tokio::test]
async fn over_the_connection_limit_clients_wait_and_healthz_still_answers() {
    let gateway = prepared("max_connections = 4\nheader_read_timeout_ms = 1000").await;
    let server = Server::spawn(&gateway, &[]);
    let mut stalled_clients = Vec::new();
    for _ in 0..4 {
        stalled_clients.push(stalled(&server.address()).await);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let response = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(response.status().as_u16(), 200);
    eprintln!("/healthz answered after {waited:?} with 4 stalled connections at a limit of 4");
    assert!(
        waited >= Duration::from_millis(500),
        "it waited for a slot: {waited:?}"
    );
    for stream in &mut stalled_clients {
        assert!(closed_within(stream, Duration::from_secs(3)).await);
    }
}

#[tokio::test]
async fn a_kept_incident_history_never_uses_the_public_salt() {
    let gateway = prepared("").await;
    let input = root().join("conformance/niem/nibrs-2019/repeat-incidents/input/2-first.xml");
    let out = gateway.dir.path().join("out.ndjson");
    let history = gateway.dir.path().join("history.jsonl");
    let run = Command::new(env!("CARGO_BIN_EXE_onedoor"))
        .args(["convert", "--mapping", "nibrs-2019", "--input"])
        .arg(&input)
        .arg("--incident-history")
        .arg(&history)
        .arg("--output")
        .arg(&out)
        .env_remove("ONEDOOR_HISTORY_SALT")
        .current_dir(root())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "refused without a salt");
    assert!(stderr.contains("--history-salt"), "{stderr}");
    assert!(!history.exists(), "no history written");
}

/// The referral CSV of [`referrals_csv`] with `note` in its notes column.
fn referral_with_note(prefix: &str, note: &str) -> Vec<u8> {
    let csv = String::from_utf8(referrals_csv(prefix, 1)).unwrap();
    csv.replace("at home,,CONS-88", &format!("at home,{note},CONS-88"))
        .into_bytes()
}

#[tokio::test]
async fn a_job_or_a_delivery_that_panics_fails_alone_and_the_workers_go_on() {
    let (receiver, url) = receiver(0, 0).await;
    let gateway = Gateway::prepare(&url, Options::default()).await;
    let server = Server::spawn(&gateway, &[("ONEDOOR_TEST_PANIC_ROUTE", "1")]);
    let source = "riverside-referrals";

    // A record that makes the job panic: the job fails with a message, without the panic's text.
    let body = referral_with_note("jobpanic", "onedoor-test-panic-job");
    let report = ingest(&server, SCHOOL_KEY, source, body).await;
    assert_eq!(report["status"], "failed", "{report}");
    assert!(report.to_string().contains("internal error"), "{report}");
    assert!(!report.to_string().contains("Jordan"), "{report}");

    // A referral whose delivery panics: retried, and the worker goes on.
    let body = referral_with_note("sendpanic", "onedoor-test-panic-delivery");
    let report = ingest(&server, SCHOOL_KEY, source, body).await;
    assert_eq!(report["status"], "done", "{report}");
    wait_until(
        "the panicking delivery to be retried",
        Duration::from_secs(20),
        || {
            server
                .log()
                .matches("the delivery stopped on an internal error")
                .count()
                >= 2
        },
    )
    .await;

    // The job runner and the outbox worker are alive: the next referral is stored and delivered.
    let report = ingest(&server, SCHOOL_KEY, source, referrals_csv("fine", 1)).await;
    assert_eq!(report["status"], "done", "{report}");
    wait_until(
        "the next referral to be delivered",
        Duration::from_secs(20),
        || !tally(&receiver, FOOD_BANK).distinct_requests().is_empty(),
    )
    .await;
}
