//! SMART Backend Services against a real server: a partner registers its public keys (a JWKS file, made
//! here from key pairs openssl generates), signs assertions (ES384 and RS384) and gets short-lived access
//! tokens at `POST /auth/token`; replayed, expired, far-future, wrong-audience, wrong-key and wrong-algorithm
//! assertions, and one signed with a registered RSA key under 2048 bits (which shows the server verifies with
//! `ring`: RustCrypto, which signs here, takes it), are refused with `invalid_client`; scopes beyond the partner's are not granted; a token is
//! used only within its scopes; discovery and the CapabilityStatement advertise the endpoint.

mod support;

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::path::Path;
use support::certs::openssl;
use support::*;

const BASE_URL: &str = "https://onedoor.test";
const AUDIENCE: &str = "https://onedoor.test/auth/token";
const CLIENT: &str = "food-bank-app";

struct Keys {
    ec: EncodingKey,
    rsa: EncodingKey,
    stranger: EncodingKey,
    /// RSA 1024, registered: RustCrypto (which signs here) takes it, the server's `ring` does not.
    short: EncodingKey,
}

/// Key pairs (P-384, RSA 2048, a P-384 pair nobody registered, RSA 1024) and the partner's JWKS file.
fn keys(dir: &Path) -> Keys {
    for (file, algorithm, option) in [
        ("ec.pem", "EC", "ec_paramgen_curve:P-384"),
        ("stranger.pem", "EC", "ec_paramgen_curve:P-384"),
        ("rsa.pem", "RSA", "rsa_keygen_bits:2048"),
        ("short.pem", "RSA", "rsa_keygen_bits:1024"),
    ] {
        openssl(
            dir,
            &[
                "genpkey",
                "-algorithm",
                algorithm,
                "-pkeyopt",
                option,
                "-out",
                file,
            ],
        );
    }
    let read = |file: &str| std::fs::read(dir.join(file)).unwrap();
    let keys = Keys {
        ec: EncodingKey::from_ec_pem(&read("ec.pem")).unwrap(),
        rsa: EncodingKey::from_rsa_pem(&read("rsa.pem")).unwrap(),
        stranger: EncodingKey::from_ec_pem(&read("stranger.pem")).unwrap(),
        short: EncodingKey::from_rsa_pem(&read("short.pem")).unwrap(),
    };
    let mut ec = Jwk::from_encoding_key(&keys.ec, Algorithm::ES384).unwrap();
    ec.common.key_id = Some("ec-1".into());
    let mut rsa = Jwk::from_encoding_key(&keys.rsa, Algorithm::RS384).unwrap();
    rsa.common.key_id = Some("rsa-1".into());
    let mut short = Jwk::from_encoding_key(&keys.short, Algorithm::RS384).unwrap();
    short.common.key_id = Some("rsa-short".into());
    let jwks = JwkSet {
        keys: vec![ec, rsa, short],
    };
    std::fs::write(dir.join("jwks.json"), serde_json::to_string(&jwks).unwrap()).unwrap();
    keys
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Standard claims for `CLIENT`, valid for four minutes, with a fresh `jti`.
fn claims() -> Value {
    json!({"iss": CLIENT, "sub": CLIENT, "aud": AUDIENCE, "exp": now() + 240, "jti": uuid::Uuid::new_v4().to_string()})
}

fn sign(key: &EncodingKey, alg: Algorithm, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

async fn token_request(gateway: &Gateway, assertion: &str, scope: &str) -> (u16, Value) {
    let form = [
        ("grant_type", "client_credentials"),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", assertion),
        ("scope", scope),
    ];
    let body = form
        .iter()
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let response = client()
        .post(format!("{}/auth/token", gateway.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A gateway whose base URL is `BASE_URL`, with the partner `CLIENT` (the food bank's system) registered
/// for SMART with `system/*.read` and `system/Task.write`.
async fn gateway() -> (Gateway, Keys, onedoor::example_receiver::Receiver) {
    let (receiver, url) = receiver(0, 0).await;
    let options = Options {
        server_extra: format!("base_url = \"{BASE_URL}\""),
        ..Options::default()
    };
    let mut gateway = Gateway::prepare(&url, options).await;
    let keys = keys(gateway.dir.path());
    let mut config = std::fs::read_to_string(&gateway.config).unwrap();
    config.push_str(&format!(
        "[partners.{CLIENT}]\norg = \"urn:onedoor:agencies|county-food-bank\"\njwks_file = \"{}\"\nscopes = [\"system/*.read\", \"system/Task.write\"]\n",
        gateway.dir.path().join("jwks.json").display()
    ));
    std::fs::write(&gateway.config, config).unwrap();
    gateway.spawn();
    (gateway, keys, receiver)
}

fn error_of(body: &Value) -> (&str, &str) {
    (
        body["error"].as_str().unwrap_or_default(),
        body["error_description"].as_str().unwrap_or_default(),
    )
}

#[tokio::test]
async fn a_signed_assertion_gets_a_token_that_works_within_its_scopes() {
    let (gateway, keys, _receiver) = gateway().await;
    let assertion = sign(&keys.ec, Algorithm::ES384, "ec-1", &claims());
    let (status, body) = token_request(&gateway, &assertion, "system/*.read").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["scope"], "system/*.read");
    let token = body["access_token"].as_str().unwrap().to_owned();

    // reads are within system/*.read; writes are not (403 naming the scope), whatever the resource
    assert_eq!(get(&gateway, &token, "/fhir/Task").await.0, 200);
    assert_eq!(get(&gateway, &token, "/fhir/ServiceRequest").await.0, 200);
    let (status, outcome) = send_json(
        &gateway,
        reqwest::Method::POST,
        &token,
        "/fhir/ServiceRequest",
        &json!({"resourceType": "ServiceRequest"}),
    )
    .await;
    assert_eq!(status, 403, "{outcome}");
    assert!(
        outcome["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("writing ServiceRequest")
    );
    let (status, _) = send_json(
        &gateway,
        reqwest::Method::PUT,
        &token,
        "/fhir/Task/any",
        &json!({"resourceType": "Task"}),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        post_bundle(&gateway, &token, &referral(1))
            .await
            .status()
            .as_u16(),
        403
    );
    assert_eq!(
        get(&gateway, &token, "/admin/messages").await.0,
        403,
        "a token is no admin token"
    );

    // RS384 works as well; a token with Task.write only cannot read ServiceRequests
    let assertion = sign(&keys.rsa, Algorithm::RS384, "rsa-1", &claims());
    let (status, body) = token_request(&gateway, &assertion, "system/Task.write").await;
    assert_eq!(status, 200, "{body}");
    let writer = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(get(&gateway, &writer, "/fhir/ServiceRequest").await.0, 403);

    // revoking the partner ends its tokens at once
    let out = gateway.onedoor(&["partners", "revoke", CLIENT]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, outcome) = get(&gateway, &token, "/fhir/Task").await;
    assert_eq!(status, 401, "{outcome}");
}

#[tokio::test]
async fn bad_assertions_are_refused_as_invalid_client() {
    let (gateway, keys, _receiver) = gateway().await;
    let valid = sign(&keys.ec, Algorithm::ES384, "ec-1", &claims());
    assert_eq!(
        token_request(&gateway, &valid, "system/*.read").await.0,
        200
    );
    let with = |change: &dyn Fn(&mut Value)| {
        let mut c = claims();
        change(&mut c);
        sign(&keys.ec, Algorithm::ES384, "ec-1", &c)
    };
    let cases: Vec<(&str, String, &str)> = vec![
        ("replayed jti", valid.clone(), "jti"),
        (
            "expired",
            with(&|c| c["exp"] = json!(now() - 120)),
            "expired",
        ),
        (
            "exp an hour ahead",
            with(&|c| c["exp"] = json!(now() + 3600)),
            "five minutes",
        ),
        (
            "wrong audience",
            with(&|c| c["aud"] = json!("https://elsewhere.test/auth/token")),
            "aud",
        ),
        (
            "sub is not the client",
            with(&|c| c["sub"] = json!("food-bank")),
            "sub",
        ),
        (
            "no jti",
            with(&|c| {
                c.as_object_mut().unwrap().remove("jti");
            }),
            "jti",
        ),
        (
            "unknown client",
            with(&|c| {
                c["iss"] = json!("nobody");
                c["sub"] = json!("nobody");
            }),
            "unknown client",
        ),
        (
            "a client without keys",
            with(&|c| {
                c["iss"] = json!("food-bank");
                c["sub"] = json!("food-bank");
            }),
            "unknown client",
        ),
        (
            "a key nobody registered",
            sign(&keys.stranger, Algorithm::ES384, "ec-1", &claims()),
            "key",
        ),
        (
            "the RSA key named for the EC one",
            sign(&keys.rsa, Algorithm::RS384, "ec-1", &claims()),
            "key",
        ),
        (
            // SMART asks for keys of at least 2048 bits; a server verifying with RustCrypto would take it.
            "a registered RSA key of 1024 bits",
            sign(&keys.short, Algorithm::RS384, "rsa-short", &claims()),
            "key",
        ),
        (
            "RS256",
            sign(&keys.rsa, Algorithm::RS256, "rsa-1", &claims()),
            "RS384 or ES384",
        ),
        ("not a JWT", "not.a.jwt".to_owned(), "JWT"),
    ];
    for (case, assertion, says) in cases {
        let (status, body) = token_request(&gateway, &assertion, "system/*.read").await;
        let (error, description) = error_of(&body);
        assert_eq!((status, error), (401, "invalid_client"), "{case}: {body}");
        assert!(description.contains(says), "{case}: {description}");
    }
    // a replay is refused even when the first use was refused for its scope
    let assertion = sign(&keys.ec, Algorithm::ES384, "ec-1", &claims());
    assert_eq!(
        token_request(&gateway, &assertion, "system/Consent.write")
            .await
            .0,
        400
    );
    assert_eq!(
        token_request(&gateway, &assertion, "system/*.read").await.0,
        200,
        "a jti is recorded only when a token is issued"
    );
    assert_eq!(
        token_request(&gateway, &assertion, "system/*.read").await.0,
        401
    );

    let form = |grant: &str| {
        client()
            .post(format!("{}/auth/token", gateway.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("grant_type={grant}&client_assertion_type=x"))
    };
    let response = form("password").send().await.unwrap();
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(
        error_of(&response.json().await.unwrap()).0,
        "unsupported_grant_type"
    );
    let response = form("client_credentials").send().await.unwrap();
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(
        error_of(&response.json().await.unwrap()).0,
        "invalid_request"
    );
}

#[tokio::test]
async fn scopes_beyond_the_partners_are_not_granted() {
    let (gateway, keys, _receiver) = gateway().await;
    let assertion = || sign(&keys.ec, Algorithm::ES384, "ec-1", &claims());
    let (status, body) = token_request(
        &gateway,
        &assertion(),
        "system/*.read system/*.write system/Task.write patient/*.read",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["scope"], "system/*.read system/Task.write",
        "only what the partner may be granted"
    );
    for beyond in [
        "system/ServiceRequest.write",
        "system/*.*",
        "system/Task.*",
        "",
        "launch",
    ] {
        let (status, body) = token_request(&gateway, &assertion(), beyond).await;
        assert_eq!(
            (status, error_of(&body).0),
            (400, "invalid_scope"),
            "{beyond}: {body}"
        );
    }
}

#[tokio::test]
async fn discovery_and_the_capability_statement_advertise_the_token_endpoint() {
    let (gateway, _keys, _receiver) = gateway().await;
    for path in [
        "/.well-known/smart-configuration",
        "/fhir/.well-known/smart-configuration",
    ] {
        let config: Value = client()
            .get(format!("{}{path}", gateway.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(config["token_endpoint"], AUDIENCE, "{path}");
        assert_eq!(
            config["token_endpoint_auth_methods_supported"],
            json!(["private_key_jwt"])
        );
        assert_eq!(
            config["token_endpoint_auth_signing_alg_values_supported"],
            json!(["RS384", "ES384"])
        );
        assert_eq!(
            config["grant_types_supported"],
            json!(["client_credentials"])
        );
        assert!(
            config["scopes_supported"]
                .as_array()
                .unwrap()
                .contains(&json!("system/*.read"))
        );
    }
    let metadata: Value = client()
        .get(format!("{}/fhir/metadata", gateway.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let security = &metadata["rest"][0]["security"];
    assert_eq!(security["service"][0]["coding"][0]["code"], "SMART-on-FHIR");
    assert_eq!(
        security["extension"][0]["extension"][0]["valueUri"],
        AUDIENCE
    );
}
