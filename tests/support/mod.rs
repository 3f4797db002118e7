//! The shared harness of the server tests (`mod support;` in each test file): a configuration written into a
//! temporary folder; a store that is a SQLite file in that folder, or a fresh PostgreSQL database when
//! `ONEDOOR_TEST_POSTGRES_URL` is set (as in CI); real `onedoor serve` child processes on port 0, as many as a
//! test wants over the same configuration and store (nodes), each of which can be killed with SIGKILL and
//! started again; partner keys provisioned with `onedoor partners add`; the in-process example receiver as
//! the receiving agencies; and small HTTP helpers. Nothing here prints personal data.

#![allow(dead_code)]

pub mod certs;

use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SCHOOL_KEY: &str = "od_test_school_key";
pub const FOOD_BANK_KEY: &str = "od_test_food_bank_key";
pub const HOUSING_KEY: &str = "od_test_housing_key";
pub const POLICE_KEY: &str = "od_test_police_key";
pub const ADMIN_TOKEN: &str = "od_test_admin_token";
pub const SCHOOL_ORG: &str = "urn:onedoor:source:riverside-usd/orgs|dist-100";
/// The receiver path prefix of the county food bank's destination.
pub const FOOD_BANK: &str = "/food-bank";

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What a test may change in the written configuration.
#[derive(Debug, Clone)]
pub struct Options {
    /// `server.retry_base_ms`.
    pub retry_base_ms: u64,
    /// `server.claim_lease_ms`: how long a claimed outbox item (or job) is held by a node.
    pub claim_lease_ms: u64,
    /// `server.max_attempts`.
    pub max_attempts: u64,
    /// The folder `consent.consents` names.
    pub consents: Consents,
    /// More `key = value` lines for the `[server]` table.
    pub server_extra: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            retry_base_ms: 50,
            claim_lease_ms: 3000,
            max_attempts: 8,
            consents: Consents::Examples,
            server_extra: String::new(),
        }
    }
}

/// The consent folder of a test's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consents {
    /// The repository's `examples/consents` (CONS-88: stu-1001 permits the county food bank).
    Examples,
    /// A folder in the test's temporary folder holding a consent for another student only: nothing
    /// permits anything for stu-1001 until a consent is recorded through the API.
    OtherStudentOnly,
}

/// One `onedoor serve` process.
pub struct Node {
    pub name: String,
    pub base: String,
    child: Option<Child>,
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Node {
    /// Start `onedoor serve` on `config` and `database_url`; returns once it has printed its address. Its
    /// further standard output is copied to the test's standard error, prefixed with the node's name.
    pub fn spawn(name: &str, config: &Path, database_url: &str) -> Node {
        let mut child = Command::new(env!("CARGO_BIN_EXE_onedoor"))
            .args([
                "serve",
                "--config",
                config.to_str().unwrap(),
                "--database-url",
                database_url,
            ])
            .env("ONEDOOR_ADMIN_TOKEN", ADMIN_TOKEN)
            .current_dir(root())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let base = line
            .trim()
            .strip_prefix("onedoor listening on ")
            .unwrap_or_else(|| panic!("node {name}: the server prints its address, got {line:?}"))
            .to_owned();
        let prefix = name.to_owned();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                eprintln!("[node {prefix}] {line}");
            }
        });
        Node {
            name: name.to_owned(),
            base,
            child: Some(child),
        }
    }

    /// A real kill -9: no shutdown handler runs.
    pub fn kill9(&mut self) {
        let mut child = self
            .child
            .take()
            .unwrap_or_else(|| panic!("node {} is not running", self.name));
        let status = Command::new("kill")
            .args(["-9", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -9 node {}", self.name);
        let _ = child.wait();
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

/// Anything with a base URL to send requests to: the gateway's first node, or any node.
pub trait Base {
    fn base(&self) -> &str;
}

impl Base for Node {
    fn base(&self) -> &str {
        &self.base
    }
}

impl Base for Gateway {
    fn base(&self) -> &str {
        &self.base
    }
}

/// A configuration, a store and (usually) a first node; [`Gateway::node`] starts more nodes over the same
/// configuration and store.
pub struct Gateway {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub database_url: String,
    /// The first node's base URL (empty while it is not running).
    pub base: String,
    node: Option<Node>,
}

/// A store for one test: a fresh PostgreSQL database when `ONEDOOR_TEST_POSTGRES_URL` is set, otherwise a
/// SQLite file in `dir`.
pub async fn database_url(dir: &Path) -> String {
    match postgres_admin_url() {
        Some(admin) => {
            use sqlx::Connection;
            let name = format!("onedoor_test_{}", uuid::Uuid::new_v4().simple());
            let mut conn = sqlx::PgConnection::connect(&admin)
                .await
                .expect("PostgreSQL reachable");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .expect("create test database");
            let (base, _) = admin
                .rsplit_once('/')
                .expect("postgres URL with a database");
            format!("{base}/{name}")
        }
        None => format!("sqlite://{}", dir.join("onedoor.db").display()),
    }
}

/// `ONEDOOR_TEST_POSTGRES_URL`, when set and not empty.
pub fn postgres_admin_url() -> Option<String> {
    std::env::var("ONEDOOR_TEST_POSTGRES_URL")
        .ok()
        .filter(|url| !url.is_empty())
}

/// Whether a test that needs PostgreSQL can run. Without `ONEDOOR_TEST_POSTGRES_URL` it fails when
/// `ONEDOOR_REQUIRE_POSTGRES=1` (CI), and otherwise says it is skipped.
pub fn postgres_or_skip(test: &str) -> bool {
    if postgres_admin_url().is_some() {
        return true;
    }
    if std::env::var("ONEDOOR_REQUIRE_POSTGRES").as_deref() == Ok("1") {
        panic!(
            "{test} needs PostgreSQL: ONEDOOR_REQUIRE_POSTGRES=1 but ONEDOOR_TEST_POSTGRES_URL is not set"
        );
    }
    // Written past the test harness's output capture, so that a skip shows in a plain `cargo test`.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "{test}: skipped (set ONEDOOR_TEST_POSTGRES_URL to a PostgreSQL server to run it)"
    );
    false
}

impl Drop for Gateway {
    /// Stops the node, then drops the test's PostgreSQL database (a test that failed keeps it, named on
    /// stderr, for a look; `.ci/run` drops what is left at its start and end).
    fn drop(&mut self) {
        self.node.take();
        if std::thread::panicking() {
            if let Some(name) = test_database_name(&self.database_url) {
                eprintln!("kept for a look: the PostgreSQL database {name}");
            }
            return;
        }
        drop_test_database(&self.database_url);
    }
}

/// The name of the PostgreSQL database `url` names, if it is one [`database_url`] made.
fn test_database_name(url: &str) -> Option<&str> {
    let (_, name) = url.rsplit_once('/')?;
    (url.starts_with("postgres") && name.starts_with("onedoor_test_")).then_some(name)
}

/// Drops the PostgreSQL database `url` names if it is a test database this harness made; nothing for SQLite
/// (its file goes with the temporary folder). Runs on its own thread: a drop may happen inside a runtime.
pub fn drop_test_database(url: &str) {
    let (Some(admin), Some(name)) = (postgres_admin_url(), test_database_name(url)) else {
        return;
    };
    let statement = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
    let dropped = std::thread::spawn(move || {
        use sqlx::Connection;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime to drop the test database");
        runtime.block_on(async {
            let mut conn = sqlx::PgConnection::connect(&admin).await?;
            sqlx::query(&statement).execute(&mut conn).await.map(|_| ())
        })
    })
    .join();
    if let Ok(Err(error)) = dropped {
        eprintln!("could not drop the test database {name}: {error}");
    }
}

impl Gateway {
    /// The names of the first node's threads (Linux: `/proc/PID/task/*/comm`); empty when it is not
    /// running.
    pub fn thread_names(&self) -> Vec<String> {
        let Some(pid) = self
            .node
            .as_ref()
            .and_then(|n| n.child.as_ref())
            .map(Child::id)
        else {
            return Vec::new();
        };
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the node's threads");
        tasks
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .map(|name| name.trim().to_owned())
            .collect()
    }

    /// Configuration, store, partner keys and a first node, with the default options and `retry_base_ms`.
    pub async fn start(receiver: &str, retry_base_ms: u64) -> Self {
        Self::start_with(
            receiver,
            Options {
                retry_base_ms,
                ..Options::default()
            },
        )
        .await
    }

    /// Configuration, store, partner keys and a first node.
    pub async fn start_with(receiver: &str, options: Options) -> Self {
        let mut gateway = Self::prepare(receiver, options).await;
        gateway.spawn();
        gateway
    }

    /// Configuration, store and partner keys, with no node running.
    pub async fn prepare(receiver: &str, options: Options) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database_url = database_url(dir.path()).await;
        let config = dir.path().join("onedoor.toml");
        write_config(dir.path(), &config, receiver, &options);
        let gateway = Gateway {
            dir,
            config,
            database_url,
            base: String::new(),
            node: None,
        };
        for (name, key) in [
            ("riverside-sis", SCHOOL_KEY),
            ("food-bank", FOOD_BANK_KEY),
            ("youth-housing", HOUSING_KEY),
            ("police", POLICE_KEY),
        ] {
            let out = gateway.onedoor(&["partners", "add", name, "--key", key]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        gateway
    }

    /// Run `onedoor ARGS --config CONFIG --database-url URL`.
    pub fn onedoor(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_onedoor"))
            .args(args)
            .args([
                "--config",
                self.config.to_str().unwrap(),
                "--database-url",
                &self.database_url,
            ])
            .current_dir(root())
            .output()
            .unwrap()
    }

    /// Start the first node (again, after [`Gateway::kill9`]).
    pub fn spawn(&mut self) {
        let node = Node::spawn("1", &self.config, &self.database_url);
        self.base = node.base.clone();
        self.node = Some(node);
    }

    /// Start the first node again on the same configuration and store.
    pub fn restart(&mut self) {
        self.spawn();
    }

    /// SIGKILL the first node.
    pub fn kill9(&mut self) {
        self.node
            .as_mut()
            .expect("the first node is running")
            .kill9();
        self.node = None;
        self.base.clear();
    }

    /// Another `onedoor serve` process over the same configuration and store.
    pub fn node(&self, name: &str) -> Node {
        Node::spawn(name, &self.config, &self.database_url)
    }

    /// `onedoor audit verify --database-url URL`: asserts it succeeds and says the chain is intact;
    /// returns the number of entries it reports.
    pub fn assert_audit_chain_intact(&self) -> u64 {
        let out = Command::new(env!("CARGO_BIN_EXE_onedoor"))
            .args(["audit", "verify", "--database-url", &self.database_url])
            .current_dir(root())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("chain intact"),
            "`onedoor audit verify --database-url` must read the chain from the store and find it intact; \
             exit {:?}, stdout {stdout:?}, stderr {:?}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        let entries = stdout
            .split_whitespace()
            .zip(stdout.split_whitespace().skip(1))
            .find(|(_, word)| word.starts_with("entries"))
            .and_then(|(count, _)| count.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("audit verify names its entry count: {stdout:?}"));
        eprintln!("audit verify over the store: {entries} entries, chain intact");
        entries
    }
}

const BASES: &str = "[[basis]]\nkind = \"court-order\"\nrecipient = \"urn:onedoor:agencies|county-food-bank\"\nfrom = \"2020-01-01\"\nuntil = \"2099-12-31\"\nreference = \"test order 1\"\npatients = [\"Patient/kill-test-patient\"]\n\n[[basis]]\nkind = \"statute-or-agreement\"\nrecipient = \"urn:onedoor:agencies|family-services\"\nfrom = \"2020-01-01\"\nuntil = \"2099-12-31\"\nreference = \"police/social-work co-responder MOU 2026-03\"\n\n[[basis]]\nkind = \"court-order\"\nrecipient = \"urn:onedoor:source:hsds/organizations|org-pantry\"\nfrom = \"2020-01-01\"\nuntil = \"2099-12-31\"\nreference = \"test order 2\"\npatients = [\"Patient/directory-test-patient\"]\n";

fn write_config(dir: &Path, config: &Path, receiver: &str, options: &Options) {
    let repo = root();
    std::fs::write(dir.join("bases.toml"), BASES).unwrap();
    let consents = match options.consents {
        Consents::Examples => repo.join("examples/consents"),
        Consents::OtherStudentOnly => consent_folder_without_stu_1001(dir),
    };
    std::fs::write(
        config,
        format!(
            r#"[gateway]
mappings = "{repo}/mappings"
[server]
listen = "127.0.0.1:0"
outbox_poll_ms = 50
retry_base_ms = {retry_base_ms}
claim_lease_ms = {claim_lease_ms}
max_attempts = {max_attempts}
{server_extra}
[consent]
consents = "{consents}"
bases = "{bases}"
audit_dir = "{audit}"
[sources.riverside-referrals]
mapping = "student-referrals"
roster = "{repo}/examples/district-export"
source_system = "urn:onedoor:source:riverside-usd"
org = "{SCHOOL_ORG}"
[destinations.food-bank]
kind = "fhir-rest"
endpoint = "{receiver}/food-bank/fhir"
org = "urn:onedoor:agencies|county-food-bank"
timeout_ms = 1000
[sources.directory]
mapping = "hsds-3.0"
[destinations.pantry]
kind = "fhir-rest"
endpoint = "{receiver}/pantry/fhir"
org = "urn:onedoor:source:hsds/organizations|org-pantry"
timeout_ms = 1000
[[routes]]
need = "food-insecurity"
directory_category = ["Food Pantry"]
destination = "food-bank"
[[routes]]
performer = "urn:onedoor:source:hsds/organizations|org-pantry"
destination = "pantry"
[sources.police-nibrs]
mapping = "nibrs-2019"
org = "urn:onedoor:fbi:ori|CA0190000"
[destinations.family-services]
kind = "fhir-rest"
endpoint = "{receiver}/family-services/fhir"
org = "urn:onedoor:agencies|family-services"
timeout_ms = 1000
[[routes]]
performer = "urn:onedoor:agencies|family-services"
destination = "family-services"
[destinations.transit]
kind = "file"
endpoint = "{transit}"
org = "urn:onedoor:agencies|transit-assist"
[[routes]]
performer = "urn:onedoor:agencies|county-food-bank"
destination = "food-bank"
[[routes]]
performer = "urn:onedoor:agencies|transit-assist"
destination = "transit"
[partners.riverside-sis]
org = "{SCHOOL_ORG}"
notify_url = "{receiver}/riverside/notifications"
sources = ["riverside-referrals", "directory"]
custodian_for = ["urn:onedoor:source:riverside-usd/orgs|sch-110", "urn:onedoor:source:riverside-usd/orgs|sch-120"]
[partners.food-bank]
org = "urn:onedoor:agencies|county-food-bank"
[partners.police]
org = "urn:onedoor:fbi:ori|CA0190000"
sources = ["police-nibrs"]
[partners.youth-housing]
org = "urn:onedoor:agencies|youth-housing"
"#,
            repo = repo.display(),
            retry_base_ms = options.retry_base_ms,
            claim_lease_ms = options.claim_lease_ms,
            max_attempts = options.max_attempts,
            server_extra = options.server_extra,
            consents = consents.display(),
            bases = dir.join("bases.toml").display(),
            audit = dir.join("audit").display(),
            transit = dir.join("transit.ndjson").display(),
        ),
    )
    .unwrap();
}

pub fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// Wait until the store has recorded a delivery to `destination` as delivered (the receiver has the
/// Bundle a moment before: reads through the gate serve only what is recorded as delivered).
pub async fn wait_recorded_delivered(node: &impl Base, destination: &str) {
    for _ in 0..400 {
        if outbox(node, "delivered")
            .await
            .iter()
            .any(|d| d["destination"] == destination)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no delivery to {destination} recorded as delivered");
}

/// The Tasks in `requested` status that the partner of `key` sees, once there are at least `at_least` of
/// them (polling every 50 ms for up to 20 s): a receiver has a delivery a moment before the gateway records
/// it delivered, and only then may the receiving partner read it.
pub async fn requested_tasks(node: &impl Base, key: &str, at_least: usize) -> Vec<Value> {
    let mut tasks = Vec::new();
    for _ in 0..400 {
        let (status, found) = get(node, key, "/fhir/Task?status=requested").await;
        assert_eq!(status, 200, "{found}");
        tasks = found["entry"].as_array().cloned().unwrap_or_default();
        if tasks.len() >= at_least {
            return tasks;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{} requested Tasks seen, expected at least {at_least}",
        tasks.len()
    );
}

/// Wait (polling every 50 ms) until `done`, failing the test after `timeout`.
pub async fn wait_until<F: FnMut() -> bool>(what: &str, timeout: Duration, mut done: F) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The example receiver on a free port: the first `fail_first` requests get 503, each answer waits
/// `delay_ms`. Returns it and its base URL.
pub async fn receiver(
    fail_first: u32,
    delay_ms: u64,
) -> (onedoor::example_receiver::Receiver, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (
        onedoor::example_receiver::serve(listener, fail_first, delay_ms).await,
        url,
    )
}

/// GET `path` as the partner (or admin) with `key`: status and JSON body (`null` when not JSON).
pub async fn get(node: &impl Base, key: &str, path: &str) -> (u16, Value) {
    let response = client()
        .get(format!("{}{path}", node.base()))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Send `body` as JSON with `method` to `path` as the partner with `key`: status and JSON body.
pub async fn send_json(
    node: &impl Base,
    method: reqwest::Method,
    key: &str,
    path: &str,
    body: &Value,
) -> (u16, Value) {
    let response = client()
        .request(method, format!("{}{path}", node.base()))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// POST a transaction Bundle to `/fhir` as the partner with `key`.
pub async fn post_bundle(node: &impl Base, key: &str, bundle: &Value) -> reqwest::Response {
    client()
        .post(format!("{}/fhir", node.base()))
        .bearer_auth(key)
        .json(bundle)
        .send()
        .await
        .unwrap()
}

/// Post one upload to `source` (a path after `/ingest/`, query included); asserts 202 and returns the job id.
pub async fn start_ingest(node: &impl Base, key: &str, source: &str, body: Vec<u8>) -> String {
    let response = client()
        .post(format!("{}/ingest/{source}", node.base()))
        .bearer_auth(key)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let job: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 202, "the upload is accepted: {job}");
    job["job"]
        .as_str()
        .unwrap_or_else(|| panic!("the 202 names the job: {job}"))
        .to_owned()
}

/// Post one upload to a source and wait for its job to finish; the job report.
pub async fn ingest(node: &impl Base, key: &str, source: &str, body: Vec<u8>) -> Value {
    let job = start_ingest(node, key, source, body).await;
    let job_path = format!("/jobs/{job}");
    for _ in 0..200 {
        let report = get(node, key, &job_path).await.1;
        if report["status"] == "done" || report["status"] == "failed" {
            return report;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("job {job_path} did not finish");
}

/// `GET /jobs/{id}` as the partner with `key`: the report, or `None` when the node does not answer 200.
pub async fn job(node: &impl Base, key: &str, id: &str) -> Option<Value> {
    match get(node, key, &format!("/jobs/{id}")).await {
        (200, report) => Some(report),
        _ => None,
    }
}

/// The number of times a job report says its job was resumed: `resumed` at the top of the report or
/// inside its `report` object, as a number (`true`/`false` read as 1/0).
pub fn resumed(report: &Value) -> Option<u64> {
    [report.get("resumed"), report.pointer("/report/resumed")]
        .into_iter()
        .flatten()
        .find_map(|value| value.as_u64().or_else(|| value.as_bool().map(u64::from)))
}

/// `GET /admin/messages?status=STATUS` on a node: the deliveries listed.
pub async fn outbox(node: &impl Base, status: &str) -> Vec<Value> {
    let (code, body) = get(
        node,
        ADMIN_TOKEN,
        &format!("/admin/messages?status={status}"),
    )
    .await;
    assert_eq!(code, 200, "admin messages: {body}");
    body["deliveries"].as_array().cloned().unwrap_or_default()
}

/// A referral CSV in the format of `examples/referrals.csv`: `rows` food-insecurity referrals to the county
/// food bank for student stu-1001 (whose consent in `examples/consents`, CONS-88, permits the food bank),
/// each with its own referral id `{prefix}-{n}`.
pub fn referrals_csv(prefix: &str, rows: usize) -> Vec<u8> {
    let mut csv = String::from(
        "referral_id,student_id,need_category,urgency,referred_on,referring_staff_id,referring_staff_name,target_agency,target_service,reason,notes,consent_reference\n",
    );
    for n in 0..rows {
        csv.push_str(&format!(
            "{prefix}-{n:05},stu-1001,food-insecurity,routine,2026-09-08,stf-3001,Jordan Rivera,county-food-bank,Weekend food backpack program,Student reports skipping meals at home,,CONS-88\n"
        ));
    }
    csv.into_bytes()
}

/// The example consent (CONS-88: stu-1001 permits disclosure to the county food bank), without its id.
pub fn food_bank_consent() -> Value {
    let mut consent: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("examples/consents/consent-stu-1001-food-bank.json"))
            .unwrap(),
    )
    .unwrap();
    consent.as_object_mut().unwrap().remove("id");
    consent
}

/// A consent folder in `dir` that holds a consent for another student (stu-1002) only: nothing in it
/// permits anything for stu-1001.
pub fn consent_folder_without_stu_1001(dir: &Path) -> PathBuf {
    let folder = dir.join("consents");
    std::fs::create_dir_all(&folder).unwrap();
    let mut consent = food_bank_consent();
    consent["id"] = json!("riverside-consent-90");
    consent["identifier"][0]["value"] = json!("CONS-90");
    consent["patient"]["identifier"]["value"] = json!("stu-1002");
    std::fs::write(
        folder.join("consent-stu-1002-food-bank.json"),
        serde_json::to_string_pretty(&consent).unwrap(),
    )
    .unwrap();
    folder
}

/// What one receiver path saw: every accepted delivery (idempotency key and ServiceRequest id), and how
/// many requests repeated a key already accepted.
#[derive(Debug, Default)]
pub struct Tally {
    /// (idempotency key, ServiceRequest id) of each accepted delivery, in order.
    pub accepted: Vec<(String, Option<String>)>,
    /// Requests on the path (accepted, refused or repeated).
    pub requests: usize,
    /// Requests that repeated an already accepted idempotency key.
    pub repeated_keys: usize,
}

impl Tally {
    /// Distinct ServiceRequest ids delivered.
    pub fn distinct_requests(&self) -> BTreeSet<String> {
        self.accepted
            .iter()
            .filter_map(|(_, id)| id.clone())
            .collect()
    }

    /// ServiceRequest ids accepted more than once (under different keys), with their counts.
    pub fn delivered_twice(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for id in self.accepted.iter().filter_map(|(_, id)| id.clone()) {
            *counts.entry(id).or_insert(0) += 1;
        }
        counts.retain(|_, n| *n > 1);
        counts
    }

    /// Distinct idempotency keys accepted.
    pub fn distinct_keys(&self) -> usize {
        self.accepted
            .iter()
            .map(|(key, _)| key)
            .collect::<BTreeSet<_>>()
            .len()
    }

    /// One line: referrals acknowledged, delivered, duplicates seen at the receiver (re-sent keys, which
    /// the receiver answers as duplicates, apart from referrals accepted twice under different keys).
    pub fn summary(&self, acknowledged: usize) -> String {
        format!(
            "acknowledged {acknowledged}, delivered {}, duplicates seen at the receiver {} ({} re-sent under an \
             idempotency key already accepted, {} referrals accepted twice)",
            self.distinct_requests().len(),
            self.duplicates(),
            self.repeated_keys,
            self.accepted.len() - self.distinct_requests().len(),
        )
    }

    /// Deliveries seen twice: repeated keys plus ServiceRequests accepted under a second key.
    pub fn duplicates(&self) -> usize {
        self.repeated_keys + self.accepted.len() - self.distinct_requests().len()
    }
}

/// What the receiver saw on paths starting with `prefix`.
pub fn tally(receiver: &onedoor::example_receiver::Receiver, prefix: &str) -> Tally {
    let seen = receiver.received.lock().unwrap_or_else(|p| p.into_inner());
    let mut tally = Tally::default();
    let mut first_seen = BTreeSet::new();
    for (_, key, _) in seen.requests.iter().filter(|r| r.0.starts_with(prefix)) {
        tally.requests += 1;
        let Some(index) = seen.accepted_keys.iter().position(|k| k == key) else {
            continue;
        };
        if !first_seen.insert(key.clone()) {
            tally.repeated_keys += 1;
            continue;
        }
        let id = seen.bodies.get(index).and_then(service_request_id);
        tally.accepted.push((key.clone(), id));
    }
    tally
}

/// The id of the ServiceRequest in a delivered Bundle.
pub fn service_request_id(bundle: &Value) -> Option<String> {
    bundle["entry"]
        .as_array()?
        .iter()
        .map(|entry| &entry["resource"])
        .find(|resource| resource["resourceType"] == "ServiceRequest")?["id"]
        .as_str()
        .map(str::to_owned)
}

/// A referral Bundle for the patient a court order in `bases.toml` lets go to the food bank.
pub fn referral(i: usize) -> Value {
    let patient = "kill-test-patient";
    json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": format!("urn:uuid:{}", uuid::Uuid::new_v4()), "resource": {"resourceType": "ServiceRequest", "id": format!("sr-{i}"), "status": "active", "intent": "order",
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "3457005"}]}, "subject": {"reference": format!("Patient/{patient}")},
            "performer": [{"reference": "Organization/org-food"}]}, "request": {"method": "PUT", "url": format!("ServiceRequest/sr-{i}")}},
        {"fullUrl": format!("urn:uuid:{}", uuid::Uuid::new_v4()), "resource": {"resourceType": "Patient", "id": patient, "birthDate": "2010-01-01"}, "request": {"method": "PUT", "url": format!("Patient/{patient}")}},
        {"fullUrl": format!("urn:uuid:{}", uuid::Uuid::new_v4()), "resource": {"resourceType": "Organization", "id": "org-food", "identifier": [{"system": "urn:onedoor:agencies", "value": "county-food-bank"}], "name": "Food bank"}, "request": {"method": "PUT", "url": "Organization/org-food"}}
    ]})
}

/// Two `onedoor serve` nodes, A and B, over one configuration and one store.
pub struct Cluster {
    // Fields drop in this order: the nodes stop before the gateway drops the store they use.
    pub a: Node,
    pub b: Node,
    pub gateway: Gateway,
}

impl Cluster {
    /// Configuration, store and partner keys, then node A, then node B.
    pub async fn start(receiver: &str, options: Options) -> Cluster {
        let gateway = Gateway::prepare(receiver, options).await;
        let a = gateway.node("A");
        let b = gateway.node("B");
        Cluster { gateway, a, b }
    }
}

/// `POST /fhir/Consent` on a node as the district: asserts 201 and returns the consent's id.
pub async fn post_consent(node: &impl Base, consent: &Value) -> String {
    let (status, stored) = send_json(
        node,
        reqwest::Method::POST,
        SCHOOL_KEY,
        "/fhir/Consent",
        consent,
    )
    .await;
    assert_eq!(status, 201, "the consent is recorded: {}", stored["issue"]);
    stored["id"]
        .as_str()
        .unwrap_or_else(|| panic!("the recorded consent has an id"))
        .to_owned()
}

/// Revoke a consent on a node as the district: the stored Consent read back from that node, `status`
/// set to `inactive`, and `PUT /fhir/Consent/{id}` with `If-Match` on the version read (the version check
/// a conflicting update on another node meets). Asserts 200.
pub async fn revoke_consent(node: &impl Base, id: &str) {
    let (status, mut consent) = get(node, SCHOOL_KEY, &format!("/fhir/Consent/{id}")).await;
    assert_eq!(
        status, 200,
        "the district reads its consent back: {}",
        consent["issue"]
    );
    consent["status"] = json!("inactive");
    let mut request = client()
        .put(format!("{}/fhir/Consent/{id}", node.base()))
        .bearer_auth(SCHOOL_KEY)
        .json(&consent);
    if let Some(version) = consent.pointer("/meta/versionId").and_then(Value::as_str) {
        request = request.header("If-Match", format!("W/\"{version}\""));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 200, "the revocation is recorded: {}", body["issue"]);
}

/// Wait for a job to end and its referrals to reach the receiver, asking `node`; gives up when nothing
/// has changed (job status, referrals delivered) for `stall`. Returns the last job report read (`Null`
/// when the node never answered for the job) and what the receiver saw.
pub async fn wait_for_job_and_deliveries(
    node: &impl Base,
    receiver: &onedoor::example_receiver::Receiver,
    job_id: &str,
    referrals: usize,
    stall: Duration,
) -> (Value, Tally) {
    let mut last_change = Instant::now();
    let mut last_seen = (String::new(), 0usize);
    loop {
        let report = job(node, SCHOOL_KEY, job_id).await.unwrap_or(Value::Null);
        let seen = tally(receiver, FOOD_BANK);
        let status = report["status"].as_str().unwrap_or("unknown").to_owned();
        let delivered = seen.distinct_requests().len();
        if status == "done" && delivered >= referrals {
            // Late repeats (a lease running out on a delivery already made) would show within a lease.
            tokio::time::sleep(Duration::from_millis(2000)).await;
            return (report, tally(receiver, FOOD_BANK));
        }
        if (status.clone(), delivered) != last_seen {
            last_seen = (status, delivered);
            last_change = Instant::now();
        } else if last_change.elapsed() > stall {
            eprintln!(
                "no progress for {} s: job {}, {delivered} of {referrals} referrals delivered",
                stall.as_secs(),
                last_seen.0
            );
            return (report, seen);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Asserts that the food bank accepted each of `referrals` referrals exactly once: as many distinct
/// idempotency keys, as many distinct ServiceRequests, none accepted under two keys.
pub fn assert_exactly_once(seen: &Tally, referrals: usize) {
    let twice = seen.delivered_twice();
    assert!(
        twice.is_empty(),
        "{} referral(s) accepted at the receiver under more than one idempotency key (e.g. {:?})",
        twice.len(),
        twice.iter().next()
    );
    assert_eq!(
        seen.distinct_requests().len(),
        referrals,
        "distinct ServiceRequests accepted at the food bank"
    );
    assert_eq!(
        seen.distinct_keys(),
        referrals,
        "distinct idempotency keys accepted at the food bank"
    );
    assert_eq!(
        seen.accepted.len(),
        referrals,
        "every accepted delivery carries a ServiceRequest"
    );
}

/// Asserts that a job report says `done` and that the job was resumed at least once; returns how often.
pub fn assert_done_and_resumed(report: &Value) -> u64 {
    assert_eq!(
        report["status"].as_str(),
        Some("done"),
        "the job ends done: {}",
        redacted_report(report)
    );
    let resumed = resumed(report).unwrap_or_else(|| {
        panic!(
            "the job report says how often the job was resumed (`resumed`): {}",
            redacted_report(report)
        )
    });
    assert!(resumed >= 1, "the job was interrupted, so it was resumed");
    resumed
}

/// A job report without its per-record errors and rejections (which may quote input): fit to print.
pub fn redacted_report(report: &Value) -> Value {
    let mut report = report.clone();
    for pointer in ["/report/refused", "/report/summary/rejected"] {
        if let Some(listed) = report.pointer_mut(pointer)
            && let Some(list) = listed.as_array()
        {
            *listed = json!(format!("{} record(s)", list.len()));
        }
    }
    report
}

/// The address a just-started `onedoor serve` prints on its first line of standard output.
pub fn listening_address(child: &mut std::process::Child) -> String {
    use std::io::BufRead;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout is piped"))
        .read_line(&mut line)
        .unwrap();
    line.trim()
        .strip_prefix("onedoor listening on ")
        .unwrap_or_else(|| panic!("the server prints its address, got {line:?}"))
        .to_owned()
}

/// A Subscription (R5 Backport IG for R4) to referral Task status changes, notified id-only to
/// `endpoint` with the channel header `Authorization: Bearer <token>`.
pub fn subscription_request(endpoint: &str, token: &str) -> Value {
    serde_json::json!({
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "Know whether help arrived",
        "criteria": onedoor::canonical::subscription::TASK_STATUS_TOPIC,
        "channel": {
            "type": "rest-hook",
            "endpoint": endpoint,
            "payload": "application/fhir+json",
            "_payload": {"extension": [{
                "url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content",
                "valueCode": "id-only"
            }]},
            "header": [format!("Authorization: Bearer {token}")]
        }
    })
}
