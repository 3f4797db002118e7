//! The gateway server as deployed: a real `onedoor serve` process on port 0 with a temporary SQLite file
//! (or a fresh PostgreSQL database when `ONEDOOR_TEST_POSTGRES_URL` is set, as in CI), a fake receiving
//! agency that is a real HTTP server in the test, and the proofs the issue asks for: referral from ingest
//! to delivery to status back; consent deny stops delivery and is audited; retries end in exactly one
//! accepted delivery; a partner cannot read another's referral; kill -9 mid-batch loses nothing.

mod support;

use serde_json::{Value, json};
use std::time::Duration;
use support::{
    ADMIN_TOKEN, FOOD_BANK_KEY, Gateway, HOUSING_KEY, POLICE_KEY, SCHOOL_KEY, client, get, ingest,
    post_bundle, receiver, referral, root, wait_until,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referral_goes_from_ingest_to_delivery_and_status_comes_back() {
    let (agency, url) = receiver(0, 0).await;
    let gateway = Gateway::start(&url, 50).await;
    let csv = std::fs::read(root().join("examples/referrals.csv")).unwrap();
    let report = ingest(
        &gateway,
        SCHOOL_KEY,
        "riverside-referrals?filename=referrals.csv",
        csv,
    )
    .await;
    assert_eq!(report["status"], "done", "{report}");
    assert_eq!(report["report"]["accepted"], 3, "{report}");
    // The summary counts what the last batch stored too (it commits when the conversion ends).
    let summary = &report["report"]["summary"];
    assert_eq!(summary["lines_out"], 3, "{report}");
    assert_eq!(summary["records_converted"], 3, "{report}");

    wait_until("the food bank's delivery", Duration::from_secs(20), || {
        !agency.accepted_on("/food-bank").is_empty()
    })
    .await;
    let delivered = agency.accepted_on("/food-bank");
    assert_eq!(delivered.len(), 1);
    let kinds: Vec<&str> = delivered[0]["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["resourceType"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"ServiceRequest") && kinds.contains(&"Task") && kinds.contains(&"Patient"),
        "{kinds:?}"
    );

    let tasks = support::requested_tasks(&gateway, FOOD_BANK_KEY, 1).await;
    let mut task = tasks[0]["resource"].clone();
    let id = task["id"].as_str().unwrap().to_owned();
    let focus = task["focus"]["reference"].as_str().unwrap().to_owned();
    task["status"] = json!("completed");
    let refused = client()
        .put(format!("{}/fhir/Task/{id}", gateway.base))
        .bearer_auth(FOOD_BANK_KEY)
        .json(&task)
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused.status().as_u16(),
        409,
        "requested → completed skips the workflow"
    );
    let outcome: Value = refused.json().await.unwrap();
    assert!(
        outcome["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("cannot go from 'requested' to 'completed'")
    );
    task["status"] = json!("accepted");
    let accepted = client()
        .put(format!("{}/fhir/Task/{id}", gateway.base))
        .bearer_auth(FOOD_BANK_KEY)
        .json(&task)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status().as_u16(), 200);

    wait_until(
        "the referrer's notification",
        Duration::from_secs(20),
        || !agency.accepted_on("/riverside/notifications").is_empty(),
    )
    .await;
    let note = &agency.accepted_on("/riverside/notifications")[0];
    assert_eq!(note["type"], "history");
    let event = note["entry"][0]["resource"]["parameter"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "notification-event"))
        .expect("an event notification");
    let focused = event["part"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "focus"))
        .and_then(|p| p["valueReference"]["reference"].as_str())
        .unwrap_or_default();
    assert!(focused.ends_with(&format!("/fhir/Task/{id}")), "{note}");
    assert!(
        !note.to_string().contains("Martinez"),
        "notifications carry ids only"
    );
    let (_, seen) = get(&gateway, SCHOOL_KEY, &format!("/fhir/Task?focus={focus}")).await;
    assert_eq!(seen["entry"][0]["resource"]["status"], "accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_deny_stops_delivery_and_is_audited() {
    let (_agency, url) = receiver(0, 0).await;
    let gateway = Gateway::start(&url, 50).await;
    let csv = std::fs::read(root().join("examples/referrals.csv")).unwrap();
    client()
        .post(format!("{}/ingest/riverside-referrals", gateway.base))
        .bearer_auth(SCHOOL_KEY)
        .body(csv)
        .send()
        .await
        .unwrap();
    let mut withheld = Vec::new();
    for _ in 0..200 {
        let response = client()
            .get(format!("{}/admin/messages?status=withheld", gateway.base))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        withheld = response.json::<Value>().await.unwrap()["deliveries"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if withheld.iter().any(|d| d["destination"] == "transit") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        withheld.iter().any(|d| d["destination"] == "transit"),
        "{withheld:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !gateway.dir.path().join("transit.ndjson").exists(),
        "nothing reached the transit programme"
    );
    let export = gateway.onedoor(&["audit", "export"]);
    let audit = String::from_utf8_lossy(&export.stdout);
    assert!(
        audit
            .lines()
            .any(|l| l.contains("NoConsent") && l.contains("transit-assist")),
        "{audit}"
    );
    let verify = gateway.onedoor(&["audit", "verify"]);
    assert!(String::from_utf8_lossy(&verify.stdout).contains("chain intact"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_failing_three_times_gets_exactly_one_accepted_delivery() {
    let (agency, url) = receiver(3, 0).await;
    let gateway = Gateway::start(&url, 20).await;
    let response = post_bundle(&gateway, SCHOOL_KEY, &referral(1)).await;
    assert_eq!(response.status().as_u16(), 200);
    wait_until(
        "the delivery after three failures",
        Duration::from_secs(30),
        || !agency.accepted_on("/food-bank").is_empty(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    {
        let seen = agency.received.lock().unwrap();
        assert_eq!(seen.accepted_keys.len(), 1, "exactly one accepted delivery");
        let keys: Vec<&String> = seen.requests.iter().map(|r| &r.1).collect();
        assert_eq!(keys.len(), 4, "three refusals and one success");
        assert!(
            keys.iter().all(|k| *k == keys[0]),
            "every attempt carries the same idempotency key"
        );
    }
    let resubmit = post_bundle(&gateway, SCHOOL_KEY, &referral(1)).await;
    assert_eq!(resubmit.status().as_u16(), 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        agency.received.lock().unwrap().accepted_keys.len(),
        1,
        "re-submitting the same referral is idempotent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_cannot_read_another_partners_referral() {
    let (agency, url) = receiver(0, 0).await;
    let gateway = Gateway::start(&url, 50).await;
    post_bundle(&gateway, SCHOOL_KEY, &referral(7)).await;
    // The receiver reads what was released to it: once the referral is delivered.
    wait_until("the delivery", Duration::from_secs(20), || {
        !agency.accepted_on("/food-bank").is_empty()
    })
    .await;
    support::wait_recorded_delivered(&gateway, "food-bank").await;
    assert_eq!(
        get(&gateway, SCHOOL_KEY, "/fhir/ServiceRequest/sr-7")
            .await
            .0,
        200,
        "the sender reads it"
    );
    assert_eq!(
        get(&gateway, FOOD_BANK_KEY, "/fhir/ServiceRequest/sr-7")
            .await
            .0,
        200,
        "the receiver reads it"
    );
    assert_eq!(
        get(&gateway, HOUSING_KEY, "/fhir/ServiceRequest/sr-7")
            .await
            .0,
        404,
        "another agency does not learn it exists"
    );
    assert_eq!(
        get(
            &gateway,
            HOUSING_KEY,
            "/fhir/ServiceRequest/sr-does-not-exist"
        )
        .await
        .0,
        404
    );
    assert_eq!(
        get(&gateway, HOUSING_KEY, "/fhir/Patient/kill-test-patient")
            .await
            .0,
        404
    );
    let (_, search) = get(
        &gateway,
        HOUSING_KEY,
        "/fhir/ServiceRequest?patient=Patient/kill-test-patient",
    )
    .await;
    assert_eq!(search["total"], 0);
    assert_eq!(
        get(&gateway, "wrong-key", "/fhir/ServiceRequest/sr-7")
            .await
            .0,
        401
    );
    let metadata = client()
        .get(format!("{}/fhir/metadata", gateway.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        metadata.json::<Value>().await.unwrap()["resourceType"],
        "CapabilityStatement"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_batch_then_restart_delivers_every_accepted_referral() {
    let (agency, url) = receiver(0, 40).await;
    let mut gateway = Gateway::start(&url, 50).await;
    let total = 40;
    let mut accepted = Vec::new();
    for i in 0..total {
        let response = post_bundle(&gateway, SCHOOL_KEY, &referral(1000 + i)).await;
        if response.status().is_success() {
            accepted.push(format!("sr-{}", 1000 + i));
        }
    }
    assert_eq!(accepted.len(), total, "every referral acknowledged");
    wait_until("some deliveries", Duration::from_secs(20), || {
        !agency.accepted_on("/food-bank").is_empty()
    })
    .await;
    gateway.kill9();
    let before = agency.accepted_on("/food-bank").len();
    assert!(
        before < total,
        "the kill came mid-batch ({before} of {total} delivered)"
    );
    gateway.spawn();
    let delivered_ids = || -> Vec<String> {
        agency
            .accepted_on("/food-bank")
            .iter()
            .filter_map(|b| b["entry"][0]["resource"]["id"].as_str().map(str::to_owned))
            .collect()
    };
    wait_until("every accepted referral", Duration::from_secs(60), || {
        accepted.iter().all(|id| delivered_ids().contains(id))
    })
    .await;
    let ids = delivered_ids();
    for id in &accepted {
        assert!(ids.contains(id), "{id} was lost");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn police_domestic_violence_incidents_reach_the_partner_with_their_repeat_count() {
    let (agency, url) = receiver(0, 0).await;
    let gateway = Gateway::start(&url, 50).await;
    let folder = root().join("conformance/niem/nibrs-2019/repeat-incidents/input");
    let mut files: Vec<_> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for file in &files {
        let report = ingest(
            &gateway,
            POLICE_KEY,
            "police-nibrs",
            std::fs::read(file).unwrap(),
        )
        .await;
        assert_eq!(report["status"], "done", "{report}");
        assert_eq!(report["report"]["accepted"], 1, "{report}");
    }
    wait_until(
        "four referrals at family services",
        Duration::from_secs(30),
        || agency.accepted_on("/family-services").len() == 4,
    )
    .await;
    let mut counts: Vec<u64> = agency
        .accepted_on("/family-services")
        .iter()
        .map(|bundle| {
            let request = bundle["entry"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| &e["resource"])
                .find(|r| r["resourceType"] == "ServiceRequest")
                .unwrap()
                .clone();
            let labels: Vec<&str> = request["meta"]["security"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["code"].as_str().unwrap())
                .collect();
            assert!(
                labels.contains(&"SDV") && labels.contains(&"R"),
                "{labels:?}"
            );
            request["extension"][0]["valueInteger"].as_u64().unwrap()
        })
        .collect();
    counts.sort_unstable();
    assert_eq!(counts, [0, 0, 1, 2], "earlier incidents as delivered");
}

fn hsds_service(id: &str, org: &str, term: &str, area: &str) -> Value {
    json!({
        "id": id, "name": format!("{term} {id}"), "status": "active",
        "organization": {"id": org, "name": format!("Organization {org}")},
        "service_areas": [{"id": format!("area-{id}"), "name": area}],
        "attributes": [{"id": format!("attr-{id}"), "link_entity": "service",
            "taxonomy_term": {"id": format!("term-{term}"), "code": term, "name": term}}]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_referral_without_a_performer_goes_to_the_directory_service_covering_the_person() {
    let (agency, url) = receiver(0, 0).await;
    let gateway = Gateway::start(&url, 50).await;
    let directory = json!({"total_items": 3, "contents": [
        hsds_service("svc-statewide", "org-state", "Food Pantry", "OR"),
        hsds_service("svc-pantry", "org-pantry", "Food Pantry", "97365"),
        hsds_service("svc-shelter", "org-shelter", "Shelter", "97365"),
    ]});
    let report = ingest(
        &gateway,
        SCHOOL_KEY,
        "directory",
        directory.to_string().into_bytes(),
    )
    .await;
    assert_eq!(report["status"], "done", "{report}");
    let patient = "directory-test-patient";
    let referral = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:6f1d3c1e-0000-4000-8000-000000000001", "resource": {"resourceType": "ServiceRequest", "id": "sr-directory", "status": "active", "intent": "order",
            "category": [{"coding": [{"system": "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes", "code": "food-insecurity"}]}],
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "3457005"}]}, "subject": {"reference": format!("Patient/{patient}")}},
            "request": {"method": "PUT", "url": "ServiceRequest/sr-directory"}},
        {"fullUrl": "urn:uuid:6f1d3c1e-0000-4000-8000-000000000002", "resource": {"resourceType": "Patient", "id": patient, "birthDate": "1980-01-01",
            "address": [{"city": "Harbor City", "state": "OR", "postalCode": "97365"}]}, "request": {"method": "PUT", "url": format!("Patient/{patient}")}}
    ]});
    let response = post_bundle(&gateway, SCHOOL_KEY, &referral).await;
    assert_eq!(
        response.status().as_u16(),
        200,
        "{}",
        response.text().await.unwrap()
    );
    wait_until("the pantry's delivery", Duration::from_secs(20), || {
        !agency.accepted_on("/pantry").is_empty()
    })
    .await;
    let delivered = &agency.accepted_on("/pantry")[0];
    let resources: Vec<&Value> = delivered["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .collect();
    let request = resources
        .iter()
        .find(|r| r["resourceType"] == "ServiceRequest")
        .unwrap();
    let service = resources
        .iter()
        .find(|r| r["resourceType"] == "HealthcareService")
        .expect("the chosen service travels with the referral");
    assert_eq!(
        service["identifier"][0]["value"], "svc-pantry",
        "the postal-code service beats the statewide one"
    );
    assert_eq!(
        request["performer"][0]["reference"],
        format!("HealthcareService/{}", service["id"].as_str().unwrap())
    );
    assert!(
        agency.accepted_on("/food-bank").is_empty(),
        "the provider's own destination, not the fallback"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        agency.accepted_on("/pantry").len(),
        1,
        "two routes to one destination deliver once"
    );
}

/// A consent is recorded only through `POST /fhir/Consent`, where its custodian is checked: a Consent
/// carried inside a referral Bundle is refused with the whole Bundle, and the consent gate never sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consent_inside_a_referral_bundle_is_refused() {
    let (_agency, url) = receiver(0, 0).await;
    let gateway = Gateway::start(&url, 50).await;
    let mut bundle = referral(11);
    let mut consent = support::food_bank_consent();
    consent["id"] = json!("smuggled-consent");
    bundle["entry"].as_array_mut().unwrap().push(json!({
        "fullUrl": "urn:uuid:7d3c1c63-1b1c-4d55-9a3e-3c5f3b0e2a11",
        "resource": consent,
        "request": {"method": "PUT", "url": "Consent/smuggled-consent"}
    }));
    let response = post_bundle(&gateway, POLICE_KEY, &bundle).await;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 403, "refused: {body}");
    assert!(
        body.to_string().contains("Consent/smuggled-consent"),
        "says why: {body}"
    );
    assert_eq!(
        get(&gateway, SCHOOL_KEY, "/fhir/Consent/smuggled-consent")
            .await
            .0,
        404,
        "nothing of it is stored"
    );
    assert_eq!(
        get(&gateway, POLICE_KEY, "/fhir/ServiceRequest/sr-11")
            .await
            .0,
        404,
        "nor the referral it came with"
    );
}
