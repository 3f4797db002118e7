//! Credentials against a real server: `onedoor partners add|list|revoke|rotate` on the test store, keys
//! that expire, are revoked or rotated out (401 naming why), malformed and wrong credentials (401), the
//! admin token (a partner's key there is 403), keys stored as an HMAC (not a bare SHA-256), and client
//! certificates bound to partners on a mutual-TLS listener.

mod support;

use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::certs::certificates;
use support::*;

fn stdout_of(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

async fn diagnostics_of(gateway: &impl Base, key: &str) -> (u16, String) {
    let (status, body) = get(gateway, key, "/fhir/Task").await;
    let why = body["issue"][0]["diagnostics"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (status, why)
}

async fn raw_get(gateway: &impl Base, header: Option<(&str, &str)>) -> u16 {
    let mut request = client().get(format!("{}/fhir/Task", gateway.base()));
    if let Some((name, value)) = header {
        request = request.header(name, value);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn keys_are_issued_listed_rotated_revoked_and_expire() {
    let (_receiver, url) = receiver(0, 0).await;
    let mut gateway = Gateway::prepare(&url, Options::default()).await;
    gateway.spawn();

    // add: a generated key with an expiry, printed once; it works at once
    let short =
        stdout_of(&gateway.onedoor(&["partners", "add", "food-bank", "--expires-in", "3s"]));
    assert!(short.starts_with("od_") && short.len() > 40, "{short}");
    assert_eq!(diagnostics_of(&gateway, &short).await.0, 200);
    assert_eq!(diagnostics_of(&gateway, SCHOOL_KEY).await.0, 200);

    // rotate: a new key; the old one keeps working during the grace period, then is refused as expired
    let rotated =
        stdout_of(&gateway.onedoor(&["partners", "rotate", "youth-housing", "--grace", "3s"]));
    assert_eq!(diagnostics_of(&gateway, &rotated).await.0, 200);
    assert_eq!(
        diagnostics_of(&gateway, HOUSING_KEY).await.0,
        200,
        "within the grace"
    );

    // revoke: every key of the partner, at once
    assert_eq!(diagnostics_of(&gateway, POLICE_KEY).await.0, 200);
    stdout_of(&gateway.onedoor(&["partners", "revoke", "police"]));
    let (status, why) = diagnostics_of(&gateway, POLICE_KEY).await;
    assert_eq!((status, why.contains("revoked")), (401, true), "{why}");

    // list: partner, organization, key ids and prefixes, times, never a key
    tokio::time::sleep(Duration::from_millis(300)).await; // the last-used time is written beside the request
    let list = stdout_of(&gateway.onedoor(&["partners", "list"]));
    for key in [
        SCHOOL_KEY,
        FOOD_BANK_KEY,
        HOUSING_KEY,
        POLICE_KEY,
        short.as_str(),
        rotated.as_str(),
    ] {
        assert!(!list.contains(key), "list shows no key: {list}");
    }
    assert!(
        list.contains(&short[..11]),
        "the lookup prefix is shown: {list}"
    );
    assert!(
        list.lines()
            .any(|l| l.starts_with("police") && l.contains("revoked")),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.starts_with("youth-housing") && l.contains("rotated, valid until")),
        "{list}"
    );
    let school = list
        .lines()
        .find(|l| l.starts_with("riverside-sis"))
        .unwrap();
    assert!(
        school.contains(SCHOOL_ORG) && school.contains("active"),
        "{school}"
    );
    assert_eq!(
        school.split('\t').nth(7).map(|used| used != "-"),
        Some(true),
        "last used is recorded: {school}"
    );

    // revoke one key by its id: the partner's other keys keep working
    let extra = stdout_of(&gateway.onedoor(&[
        "partners",
        "add",
        "riverside-sis",
        "--expires",
        "2099-01-01T00:00:00Z",
    ]));
    let id = &extra[3..11];
    stdout_of(&gateway.onedoor(&["partners", "revoke", "riverside-sis", "--key-id", id]));
    assert_eq!(diagnostics_of(&gateway, &extra).await.0, 401);
    assert_eq!(diagnostics_of(&gateway, SCHOOL_KEY).await.0, 200);
    let unknown = gateway.onedoor(&[
        "partners",
        "revoke",
        "riverside-sis",
        "--key-id",
        "nosuchid",
    ]);
    assert_eq!(unknown.status.code(), Some(1));

    // expiry and the end of the grace
    tokio::time::sleep(Duration::from_millis(3200)).await;
    for key in [short.as_str(), HOUSING_KEY] {
        let (status, why) = diagnostics_of(&gateway, key).await;
        assert_eq!((status, why.contains("expired")), (401, true), "{why}");
    }
    assert_eq!(diagnostics_of(&gateway, &rotated).await.0, 200);

    // bad input on the command line
    for args in [
        vec![
            "partners",
            "add",
            "food-bank",
            "--expires-in",
            "ninety days",
        ],
        vec!["partners", "add", "food-bank", "--expires", "tomorrow"],
        vec!["partners", "add", "food-bank", "--key", "short"],
        vec!["partners", "add", "nobody"],
    ] {
        assert_eq!(gateway.onedoor(&args).status.code(), Some(2), "{args:?}");
    }
}

#[tokio::test]
async fn missing_malformed_and_wrong_credentials_are_401_and_the_admin_api_is_403_for_partners() {
    let (_receiver, url) = receiver(0, 0).await;
    let gateway = Gateway::start_with(&url, Options::default()).await;
    assert_eq!(raw_get(&gateway, None).await, 401);
    for (name, value) in [
        ("authorization", "Basic b2Q6b2Q="),
        ("authorization", "Bearer"),
        ("authorization", "Bearer two words"),
        ("x-api-key", ""),
    ] {
        assert_eq!(
            raw_get(&gateway, Some((name, value))).await,
            401,
            "{name}: {value}"
        );
    }
    for wrong in [
        "od_test_school_kez",
        "od_test_",
        "odt_0123456789abcdef0123",
        "odt_x",
    ] {
        let (status, why) = diagnostics_of(&gateway, wrong).await;
        assert_eq!(
            (status, why.as_str()),
            (401, "the credential is not valid"),
            "{wrong}"
        );
    }
    assert_eq!(
        raw_get(&gateway, Some(("x-api-key", SCHOOL_KEY))).await,
        200
    );

    assert_eq!(get(&gateway, ADMIN_TOKEN, "/admin/messages").await.0, 200);
    assert_eq!(get(&gateway, SCHOOL_KEY, "/admin/messages").await.0, 403);
    assert_eq!(
        get(&gateway, "od_not_the_admin", "/admin/messages").await.0,
        401
    );
    assert_eq!(
        get(&gateway, ADMIN_TOKEN, "/fhir/Task").await.0,
        401,
        "the admin token is no partner key"
    );
}

#[tokio::test]
async fn keys_are_stored_as_an_hmac_never_a_bare_sha256() {
    let (_receiver, url) = receiver(0, 0).await;
    let gateway = Gateway::prepare(&url, Options::default()).await;
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&gateway.database_url).await.unwrap();
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT prefix, hash FROM partner_keys")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(rows.len(), 4);
    let bare: Vec<String> = [SCHOOL_KEY, FOOD_BANK_KEY, HOUSING_KEY, POLICE_KEY]
        .iter()
        .map(|k| format!("{:x}", Sha256::digest(k.as_bytes())))
        .collect();
    for (prefix, hash) in &rows {
        assert_eq!(
            prefix.len(),
            11,
            "the lookup prefix: the key's first 11 characters"
        );
        assert_eq!(hash.len(), 64, "hex HMAC-SHA-256");
        assert!(!bare.contains(hash), "a key is stored as a bare SHA-256");
        for key in [SCHOOL_KEY, FOOD_BANK_KEY, HOUSING_KEY, POLICE_KEY] {
            assert!(!hash.contains(key));
        }
    }
    let secrets: Vec<(String,)> = sqlx::query_as("SELECT secret FROM server_secret")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(secrets.len(), 1, "one secret, shared by every node");
}

// ---- mutual TLS: a certificate is bound to one partner ----

fn tls_client(dir: &Path, identity: &str) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(dir.join("ca.pem")).unwrap()).unwrap();
    let mut pem = std::fs::read(dir.join(format!("{identity}.pem"))).unwrap();
    pem.extend(std::fs::read(dir.join(format!("{identity}.key"))).unwrap());
    reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(ca)
        .identity(reqwest::Identity::from_pem(&pem).unwrap())
        .build()
        .unwrap()
}

async fn status_with(client: &reqwest::Client, base: &str, key: Option<&str>) -> u16 {
    let mut request = client.get(format!("{base}/fhir/Task"));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn a_client_certificate_acts_only_as_the_partner_it_is_bound_to() {
    let dir = tempfile::tempdir().unwrap();
    certificates(
        dir.path(),
        &["food-bank-system", "school-system", "unbound-system"],
    );
    let root = env!("CARGO_MANIFEST_DIR");
    let d = dir.path().display();
    let config = dir.path().join("onedoor.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nmappings = \"{root}/mappings\"\n[server]\nlisten = \"127.0.0.1:0\"\ndatabase_url = \"sqlite://{d}/onedoor.db\"\n\
             [server.tls]\ncert = \"{d}/server.pem\"\nkey = \"{d}/server.key\"\nclient_ca = \"{d}/ca.pem\"\n[consent]\naudit_dir = \"{d}/audit\"\n\
             [partners.food-bank]\norg = \"urn:onedoor:agencies|county-food-bank\"\ncert_subject = \"food-bank-system\"\n\
             [partners.riverside-sis]\norg = \"{SCHOOL_ORG}\"\ncert_san = \"school-system.partners.test\"\n\
             [partners.youth-housing]\norg = \"urn:onedoor:agencies|youth-housing\"\n"
        ),
    )
    .unwrap();
    let onedoor = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_onedoor"))
            .args(args)
            .args(["--config", config.to_str().unwrap()])
            .current_dir(root)
            .output()
            .unwrap()
    };
    for (name, key) in [
        ("food-bank", FOOD_BANK_KEY),
        ("riverside-sis", SCHOOL_KEY),
        ("youth-housing", HOUSING_KEY),
    ] {
        stdout_of(&onedoor(&["partners", "add", name, "--key", key]));
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_onedoor"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .current_dir(root)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let base = support::listening_address(&mut child);

    let food_bank = tls_client(dir.path(), "food-bank-system");
    let school = tls_client(dir.path(), "school-system");
    let unbound = tls_client(dir.path(), "unbound-system");
    // the certificate alone identifies its partner; with a key, the key must be that partner's
    assert_eq!(
        status_with(&food_bank, &base, None).await,
        200,
        "subject binding"
    );
    assert_eq!(status_with(&school, &base, None).await, 200, "SAN binding");
    assert_eq!(
        status_with(&food_bank, &base, Some(FOOD_BANK_KEY)).await,
        200
    );
    assert_eq!(
        status_with(&food_bank, &base, Some(SCHOOL_KEY)).await,
        401,
        "A's certificate, B's key"
    );
    assert_eq!(
        status_with(&school, &base, Some(HOUSING_KEY)).await,
        401,
        "a bound certificate, an unbound partner's key"
    );
    // a certificate bound to no partner: only partners without a binding, and only with their key
    assert_eq!(status_with(&unbound, &base, None).await, 401);
    assert_eq!(status_with(&unbound, &base, Some(HOUSING_KEY)).await, 200);
    assert_eq!(
        status_with(&unbound, &base, Some(FOOD_BANK_KEY)).await,
        401,
        "a bound partner's key with another certificate"
    );
    let _ = child.kill();
    let _ = child.wait();
}
