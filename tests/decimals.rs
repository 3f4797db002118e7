//! FHIR decimals keep their exact text end to end (serde_json's `arbitrary_precision`): through
//! `onedoor validate`, `onedoor convert` and the server (POST /fhir to the receiving agency). A number
//! FHIR cannot hold (an integer beyond 32 bits, a fraction where an integer goes) is refused with its
//! path, never rounded.

mod support;

use onedoor::validation::Validator;
use serde_json::{Value, json};
use std::process::{Command, Output};
use std::time::Duration;
use support::{Gateway, SCHOOL_KEY, post_bundle, receiver, referral, root, wait_until};

/// 30 significant digits: an f64 would make it 1.2345678901234568e29.
const LONG: &str = "123456789012345678901234567890.5";
/// Below every f64: a float would make it 0.0.
const TINY: &str = "1e-999999";

fn number(text: &str) -> Value {
    serde_json::from_str(text).expect("a JSON number")
}

fn observation() -> Value {
    json!({"resourceType": "Observation", "id": "obs-decimals", "status": "final",
    "code": {"text": "decimals"},
    "component": [
        {"code": {"text": "long"}, "valueQuantity": {"value": number(LONG), "unit": "1"}},
        {"code": {"text": "tiny"}, "valueQuantity": {"value": number(TINY), "unit": "1"}},
        {"code": {"text": "exponent"}, "valueQuantity": {"value": number("1.50e+3"), "unit": "1"}}
    ]})
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

#[test]
fn json_numbers_keep_their_text() {
    let text = serde_json::to_string(&observation()).unwrap();
    for exact in [LONG, TINY, "1.50e+3"] {
        assert!(text.contains(exact), "{exact} in {text}");
    }
    // The one change serde_json makes: the exponent letter is written lower case (same digits, same
    // precision).
    assert_eq!(number("2.0E-7").to_string(), "2.0e-7");
}

#[test]
fn validate_accepts_any_decimal_and_refuses_integers_fhir_cannot_hold() {
    let validator = Validator::new();
    assert_eq!(validator.validate(&observation()), Vec::new());
    let refused = [
        (
            "/total",
            json!({"resourceType": "Bundle", "type": "searchset", "total": number("2147483648")}),
        ),
        (
            "/extension/0/valueInteger",
            json!({"resourceType": "Patient", "extension": [{"url": "u", "valueInteger": number("1.5")}]}),
        ),
        (
            "/extension/0/valueInteger",
            json!({"resourceType": "Patient", "extension": [{"url": "u", "valueInteger": number("1e3")}]}),
        ),
        (
            "/extension/0/valueUnsignedInt",
            json!({"resourceType": "Patient", "extension": [{"url": "u", "valueUnsignedInt": number("-1")}]}),
        ),
        (
            "/entry/0/resource/input/0/valuePositiveInt",
            json!({"resourceType": "Bundle", "type": "collection", "entry": [
            {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Task", "status": "requested", "intent": "order",
                "input": [{"type": {"text": "n"}, "valuePositiveInt": number("0")}]}}]}),
        ),
    ];
    for (path, resource) in refused {
        let issues = validator.validate(&resource);
        assert!(
            issues
                .iter()
                .any(|i| i.path == path && i.message.contains("refused, not rounded")),
            "{path}: {issues:?}"
        );
    }
}

#[test]
fn convert_passes_decimals_through_byte_exact_and_refuses_what_fhir_cannot_hold() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("observation.json");
    std::fs::write(&input, serde_json::to_string(&observation()).unwrap()).unwrap();
    let out = dir.path().join("out.ndjson");
    let run = onedoor(&[
        "convert",
        "--mapping",
        "fhir-r4",
        "--input",
        input.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    let written = std::fs::read_to_string(&out).unwrap();
    for exact in [
        format!("\"value\":{LONG}"),
        format!("\"value\":{TINY}"),
        "\"value\":1.50e+3".to_owned(),
    ] {
        assert!(written.contains(&exact), "{exact} in {written}");
    }

    let too_big = dir.path().join("patient.json");
    std::fs::write(
        &too_big,
        r#"{"resourceType": "Patient", "id": "p", "extension": [{"url": "u", "valueInteger": 99999999999999999999}]}"#,
    )
    .unwrap();
    let run = onedoor(&[
        "convert",
        "--mapping",
        "fhir-r4",
        "--input",
        too_big.to_str().unwrap(),
        "--output",
        dir.path().join("rejected.ndjson").to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "{stderr}");
    assert!(
        stderr.contains("99999999999999999999 cannot be held by a FHIR integer"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_delivers_decimals_byte_exact_and_refuses_an_integer_it_cannot_hold() {
    let (agency, url) = receiver(0, 0).await;
    let gateway = Gateway::start(&url, 50).await;
    let mut bundle = referral(1);
    bundle["entry"][0]["resource"]["extension"] = json!([
        {"url": "urn:onedoor:test:long", "valueDecimal": number(LONG)},
        {"url": "urn:onedoor:test:tiny", "valueDecimal": number(TINY)}
    ]);
    let response = post_bundle(&gateway, SCHOOL_KEY, &bundle).await;
    assert_eq!(response.status().as_u16(), 200);
    wait_until("the delivery", Duration::from_secs(30), || {
        !agency.accepted_on("/food-bank").is_empty()
    })
    .await;
    let delivered = serde_json::to_string(&agency.accepted_on("/food-bank")).unwrap();
    for exact in [
        format!("\"valueDecimal\":{LONG}"),
        format!("\"valueDecimal\":{TINY}"),
    ] {
        assert!(
            delivered.contains(&exact),
            "{exact} in the delivered Bundle"
        );
    }

    let mut bundle = referral(2);
    bundle["entry"][0]["resource"]["extension"] =
        json!([{"url": "urn:onedoor:test:n", "valueInteger": number("2147483648")}]);
    let response = post_bundle(&gateway, SCHOOL_KEY, &bundle).await;
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    assert!((400..500).contains(&status), "{status} {body}");
    assert!(body.contains("refused, not rounded"), "{body}");
}
