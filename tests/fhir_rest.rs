//! FHIR REST as clients expect it (issue 14), against a real `onedoor serve`: `vread` of the version a
//! `Location` names, `ETag`/`Last-Modified` on reads, vreads, creates and updates, `If-Match` on updates
//! (412 on a stale version, 400 on a malformed one), simultaneous updates of one Task of which exactly
//! one succeeds (25 tries of accepted vs rejected and of accepted vs the requester's cancel), searchset
//! paging with `_count`/`_offset`, links and a true `total`, exactly the search parameters the
//! CapabilityStatement advertises (others 400, or ignored with `Prefer: handling=lenient`),
//! `_lastUpdated`, 400 for unparseable JSON and 422 with `expression` for invalid FHIR, `$validate` with a
//! profile, and the CapabilityStatement valid FHIR.

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;
use support::{
    FOOD_BANK_KEY, Gateway, HOUSING_KEY, SCHOOL_KEY, client, get, post_bundle, receiver, referral,
    send_json,
};

/// A gateway with the district's transaction Bundle `sr-0` (its Patient, no Task) and `n` referrals
/// (`req-0`..) posted by the district as ServiceRequests for that Patient, each with its Task, delivered
/// to the food bank: `n + 1` ServiceRequests in all.
async fn with_referrals(n: usize) -> (onedoor::example_receiver::Receiver, Gateway) {
    let (agency, url) = receiver(0, 0).await;
    let gateway = Gateway::start(&url, 50).await;
    let response = post_bundle(&gateway, SCHOOL_KEY, &referral(0)).await;
    assert_eq!(response.status().as_u16(), 200);
    for i in 0..n {
        let request = json!({"resourceType": "ServiceRequest", "id": format!("req-{i}"),
            "status": "active", "intent": "order",
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "3457005"}]},
            "subject": {"reference": "Patient/kill-test-patient"},
            "performer": [{"identifier": {"system": "urn:onedoor:agencies", "value": "county-food-bank"}}]});
        let (status, body) = send_json(
            &gateway,
            Method::POST,
            SCHOOL_KEY,
            "/fhir/ServiceRequest",
            &request,
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    (agency, gateway)
}

/// The food bank's Task for referral `req-{i}`, once it has been delivered (as it reads it).
async fn food_bank_task(gateway: &Gateway, i: usize) -> Value {
    let path = format!("/fhir/Task?focus=ServiceRequest/req-{i}");
    for _ in 0..400 {
        let (status, found) = get(gateway, FOOD_BANK_KEY, &path).await;
        assert_eq!(status, 200, "{found}");
        if let Some(task) = found.pointer("/entry/0/resource") {
            return task.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, all) = get(gateway, FOOD_BANK_KEY, "/fhir/Task").await;
    let (_, sent) = get(gateway, SCHOOL_KEY, "/fhir/Task").await;
    panic!("the food bank never saw the Task of req-{i}: it sees {all}; the district {sent}");
}

/// Send with headers; status, headers and JSON body.
async fn send(
    gateway: &Gateway,
    method: Method,
    key: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = client()
        .request(method, format!("{}{path}", gateway.base))
        .bearer_auth(key);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request
            .header("Content-Type", "application/fhir+json")
            .body(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (
        status,
        headers,
        response.json().await.unwrap_or(Value::Null),
    )
}

fn header(headers: &reqwest::header::HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// An OperationOutcome whose issue text contains `needle`.
fn assert_outcome(body: &Value, needle: &str) {
    assert_eq!(body["resourceType"], "OperationOutcome", "{body}");
    assert!(body.to_string().contains(needle), "'{needle}' in {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_give_location_and_etag_and_vread_serves_that_version() {
    let (_agency, gateway) = with_referrals(1).await;
    // Transaction: every entry's response names its version.
    let response = post_bundle(&gateway, SCHOOL_KEY, &referral(7)).await;
    let answer: Value = response.json().await.unwrap();
    let entries = answer["entry"].as_array().cloned().unwrap_or_default();
    assert!(!entries.is_empty(), "{answer}");
    for entry in &entries {
        let location = entry["response"]["location"].as_str().unwrap_or_default();
        assert!(location.contains("/_history/"), "{entry}");
        assert!(entry["response"]["etag"].as_str().is_some(), "{entry}");
    }
    let request = entries
        .iter()
        .filter_map(|e| e["response"]["location"].as_str())
        .find(|l| l.contains("/ServiceRequest/sr-7/"))
        .expect("the ServiceRequest's location")
        .to_owned();
    let path = request
        .split_once("/fhir/")
        .map(|(_, p)| format!("/fhir/{p}"))
        .unwrap();
    let (status, headers, body) = send(&gateway, Method::GET, SCHOOL_KEY, &path, &[], None).await;
    assert_eq!(status, 200, "{body}");
    let version = body["meta"]["versionId"].as_str().unwrap().to_owned();
    assert_eq!(header(&headers, "etag"), format!("W/\"{version}\""));
    assert!(header(&headers, "last-modified").ends_with(" GMT"));
    // A read gives the same ETag; an unknown version is 404; another partner does not see it.
    let (_, read_headers, _) = send(
        &gateway,
        Method::GET,
        SCHOOL_KEY,
        "/fhir/ServiceRequest/sr-7",
        &[],
        None,
    )
    .await;
    assert_eq!(header(&read_headers, "etag"), format!("W/\"{version}\""));
    for (key, vid) in [(SCHOOL_KEY, "99"), (SCHOOL_KEY, "x"), (HOUSING_KEY, "1")] {
        let path = format!("/fhir/ServiceRequest/sr-7/_history/{vid}");
        let (status, _, body) = send(&gateway, Method::GET, key, &path, &[], None).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_outcome(&body, "not found");
    }
    // Consent POST: 201 with Location of version 1 and ETag.
    let (status, headers, body) = send(
        &gateway,
        Method::POST,
        SCHOOL_KEY,
        "/fhir/Consent",
        &[],
        Some(serde_json::to_vec(&support::food_bank_consent()).unwrap()),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap();
    assert!(header(&headers, "location").ends_with(&format!("/fhir/Consent/{id}/_history/1")));
    assert_eq!(header(&headers, "etag"), "W/\"1\"");
}

/// `POST /fhir/ServiceRequest` answers with the ServiceRequest as its acceptance stored it (taken from the
/// write itself, not read back): the body, `ETag` and `Location` a read gives afterwards, for a new
/// referral (201), the same one again (200, nothing new) and a changed one (201, the next version).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_posted_service_request_is_answered_as_it_was_stored() {
    let (_agency, gateway) = with_referrals(0).await;
    let mut request = json!({"resourceType": "ServiceRequest", "id": "posted-1",
        "status": "active", "intent": "order",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "3457005"}]},
        "subject": {"reference": "Patient/kill-test-patient"},
        "performer": [{"identifier": {"system": "urn:onedoor:agencies", "value": "county-food-bank"}}]});
    let post = |body: Value| {
        let gateway = &gateway;
        async move {
            let bytes = Some(serde_json::to_vec(&body).unwrap());
            send(
                gateway,
                Method::POST,
                SCHOOL_KEY,
                "/fhir/ServiceRequest",
                &[],
                bytes,
            )
            .await
        }
    };
    let changed = {
        request["note"] = json!([{"text": "changed"}]);
        request.clone()
    };
    let first = request.as_object().map(|o| {
        let mut o = o.clone();
        o.remove("note");
        Value::Object(o)
    });
    let first = first.unwrap();
    for (body, status, version) in [
        (first.clone(), 201, "1"),
        (first, 200, "1"),
        (changed, 201, "2"),
    ] {
        let (got, headers, answered) = post(body).await;
        assert_eq!(got, status, "{answered}");
        assert_eq!(answered["meta"]["versionId"], version, "{answered}");
        assert_eq!(header(&headers, "etag"), format!("W/\"{version}\""));
        assert!(
            header(&headers, "location")
                .ends_with(&format!("/fhir/ServiceRequest/posted-1/_history/{version}")),
            "{headers:?}"
        );
        let (read, read_headers, stored) = send(
            &gateway,
            Method::GET,
            SCHOOL_KEY,
            "/fhir/ServiceRequest/posted-1",
            &[],
            None,
        )
        .await;
        assert_eq!(read, 200, "{stored}");
        assert_eq!(answered, stored, "the answer is the resource as stored");
        assert_eq!(header(&read_headers, "etag"), header(&headers, "etag"));
        assert_eq!(
            header(&read_headers, "last-modified"),
            header(&headers, "last-modified")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_updates_take_if_match_and_a_stale_version_is_412() {
    let (_agency, gateway) = with_referrals(1).await;
    let task = food_bank_task(&gateway, 0).await;
    let id = task["id"].as_str().unwrap().to_owned();
    let path = format!("/fhir/Task/{id}");
    let (_, headers, _) = send(&gateway, Method::GET, FOOD_BANK_KEY, &path, &[], None).await;
    let etag = header(&headers, "etag");
    let version: i64 = etag
        .trim_start_matches("W/")
        .trim_matches('"')
        .parse()
        .unwrap();
    let mut accepted = task.clone();
    accepted["status"] = json!("accepted");
    let body = Some(serde_json::to_vec(&accepted).unwrap());
    let stale = format!("W/\"{}\"", version + 5);
    for bad in ["3", "W/3", "\"x\"", "*"] {
        let (status, _, outcome) = send(
            &gateway,
            Method::PUT,
            FOOD_BANK_KEY,
            &path,
            &[("If-Match", bad)],
            body.clone(),
        )
        .await;
        assert_eq!(status, 400, "{bad}: {outcome}");
        assert_outcome(&outcome, "If-Match");
    }
    let (status, _, outcome) = send(
        &gateway,
        Method::PUT,
        FOOD_BANK_KEY,
        &path,
        &[("If-Match", &stale)],
        body.clone(),
    )
    .await;
    assert_eq!(status, 412, "{outcome}");
    assert_outcome(&outcome, "changed meanwhile");
    // Someone who does not see the Task gets 404, not 412.
    let (status, _, _) = send(
        &gateway,
        Method::PUT,
        HOUSING_KEY,
        &path,
        &[("If-Match", &stale)],
        body.clone(),
    )
    .await;
    assert_eq!(status, 404);
    let plain = format!("\"{version}\"");
    let (status, headers, updated) = send(
        &gateway,
        Method::PUT,
        FOOD_BANK_KEY,
        &path,
        &[("If-Match", &plain)],
        body,
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(header(&headers, "etag"), format!("W/\"{}\"", version + 1));
    assert!(!header(&headers, "last-modified").is_empty());
    // The previous version is still there, by vread.
    let old = format!("{path}/_history/{version}");
    let (status, _, body) = send(&gateway, Method::GET, FOOD_BANK_KEY, &old, &[], None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "requested");
}

/// Two PUTs of one Task at once, with the same `If-Match`: statuses of both.
async fn race(gateway: &Gateway, id: &str, one: (&str, Value), two: (&str, Value)) -> [u16; 2] {
    let path = format!("/fhir/Task/{id}");
    let (_, headers, _) = send(gateway, Method::GET, FOOD_BANK_KEY, &path, &[], None).await;
    let etag = header(&headers, "etag");
    let put = |key: &str, task: Value| {
        let request = client()
            .put(format!("{}{path}", gateway.base))
            .bearer_auth(key)
            .header("If-Match", etag.clone())
            .json(&task);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let (a, b) = tokio::join!(put(one.0, one.1), put(two.0, two.1));
    [a, b]
}

fn with_status(task: &Value, status: &str) -> Value {
    let mut task = task.clone();
    task["status"] = json!(status);
    if status != "accepted" {
        task["statusReason"] = json!({"text": "test"});
    }
    task
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_two_simultaneous_task_updates_exactly_one_succeeds() {
    const TRIES: usize = 25;
    let (_agency, gateway) = with_referrals(2 * TRIES).await;
    for i in 0..2 * TRIES {
        let task = food_bank_task(&gateway, i).await;
        let id = task["id"].as_str().unwrap().to_owned();
        let accepted = (FOOD_BANK_KEY, with_status(&task, "accepted"));
        let other = if i < TRIES {
            (FOOD_BANK_KEY, with_status(&task, "rejected"))
        } else {
            (SCHOOL_KEY, with_status(&task, "cancelled"))
        };
        let statuses = race(&gateway, &id, accepted, other).await;
        let won = statuses.iter().filter(|s| **s == 200).count();
        let lost = statuses.iter().filter(|s| [409, 412].contains(*s)).count();
        assert_eq!((won, lost), (1, 1), "try {i}: {statuses:?}");
        let (_, now) = get(&gateway, FOOD_BANK_KEY, &format!("/fhir/Task/{id}")).await;
        let expected = if statuses[0] == 200 {
            "accepted"
        } else if i < TRIES {
            "rejected"
        } else {
            "cancelled"
        };
        assert_eq!(now["status"], expected, "try {i}: {statuses:?}");
        if expected == "cancelled" {
            // A cancelled referral never comes back as accepted, even based on its current version.
            let (_, headers, _) = send(
                &gateway,
                Method::GET,
                FOOD_BANK_KEY,
                &format!("/fhir/Task/{id}"),
                &[],
                None,
            )
            .await;
            let etag = header(&headers, "etag");
            let (status, _, body) = send(
                &gateway,
                Method::PUT,
                FOOD_BANK_KEY,
                &format!("/fhir/Task/{id}"),
                &[("If-Match", &etag)],
                Some(serde_json::to_vec(&with_status(&now, "accepted")).unwrap()),
            )
            .await;
            assert_eq!(status, 409, "{body}");
            let (_, after) = get(&gateway, FOOD_BANK_KEY, &format!("/fhir/Task/{id}")).await;
            assert_eq!(after["status"], "cancelled");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searchsets_are_paged_with_links_and_a_true_total() {
    const N: usize = 8;
    let (_agency, gateway) = with_referrals(N).await;
    let (status, first) = get(&gateway, SCHOOL_KEY, "/fhir/ServiceRequest?_count=3").await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["total"], N + 1, "{first}");
    let mut seen = Vec::new();
    let mut page = first.clone();
    let mut pages = 0;
    loop {
        pages += 1;
        let entries = page["entry"].as_array().cloned().unwrap_or_default();
        assert!(entries.len() <= 3);
        seen.extend(entries.iter().map(|e| e["resource"]["id"].clone()));
        let link = |relation: &str| {
            page["link"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|l| l["relation"] == relation)
                .and_then(|l| l["url"].as_str())
                .map(str::to_owned)
        };
        assert!(link("self").is_some(), "{page}");
        assert_eq!(link("previous").is_some(), pages > 1, "{page}");
        let Some(next) = link("next") else { break };
        let path = next
            .split_once("/fhir/")
            .map(|(_, p)| format!("/fhir/{p}"))
            .unwrap();
        let (status, next_page) = get(&gateway, SCHOOL_KEY, &path).await;
        assert_eq!(status, 200, "{next_page}");
        assert_eq!(next_page["total"], N + 1);
        page = next_page;
    }
    assert_eq!(pages, 3);
    let mut distinct = seen.clone();
    distinct.sort_by_key(|v| v.to_string());
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        N + 1,
        "every match once across pages: {seen:?}"
    );
    // The default page holds them all; _count out of range and a bad _offset are 400.
    let (_, all) = get(&gateway, SCHOOL_KEY, "/fhir/ServiceRequest").await;
    assert_eq!(all["entry"].as_array().map(Vec::len), Some(N + 1));
    for bad in [
        "_count=0",
        "_count=501",
        "_count=ten",
        "_offset=-1",
        "_offset=x",
    ] {
        let (status, body) =
            get(&gateway, SCHOOL_KEY, &format!("/fhir/ServiceRequest?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_outcome(&body, bad.split('=').next().unwrap());
    }
    // Another partner's total counts only what it may see.
    let (_, theirs) = get(&gateway, HOUSING_KEY, "/fhir/ServiceRequest").await;
    assert_eq!(theirs["total"], 0, "{theirs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_takes_exactly_the_parameters_the_capability_statement_lists() {
    let (_agency, gateway) = with_referrals(2).await;
    food_bank_task(&gateway, 1).await;
    let (_, metadata) = get(&gateway, SCHOOL_KEY, "/fhir/metadata").await;
    let resources = metadata["rest"][0]["resource"].as_array().cloned().unwrap();
    for resource in resources {
        let kind = resource["type"].as_str().unwrap();
        for param in resource["searchParam"].as_array().into_iter().flatten() {
            let name = param["name"].as_str().unwrap();
            let query = match name {
                "requester" | "performer" | "owner" => {
                    format!("{name}:identifier=urn:onedoor:agencies|county-food-bank")
                }
                "_lastUpdated" => "_lastUpdated=ge2000-01-01".into(),
                "patient" => "patient=Patient/kill-test-patient".into(),
                "focus" => "focus=ServiceRequest/req-1".into(),
                _ => format!("{name}=active"),
            };
            let (status, body) = get(&gateway, SCHOOL_KEY, &format!("/fhir/{kind}?{query}")).await;
            assert_eq!(status, 200, "{kind}?{query}: {body}");
            assert_eq!(body["type"], "searchset");
        }
        let (status, body) = get(&gateway, SCHOOL_KEY, &format!("/fhir/{kind}?subject=x")).await;
        if resource["searchParam"].is_array() {
            assert_eq!(status, 400, "{kind}: {body}");
            assert_outcome(&body, "'subject'");
        }
    }
    // Lenient handling ignores what is not supported.
    let (status, _, body) = send(
        &gateway,
        Method::GET,
        SCHOOL_KEY,
        "/fhir/ServiceRequest?subject=x&status=active",
        &[("Prefer", "handling=lenient")],
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], 3, "{body}");
    // _lastUpdated with prefixes.
    let count = |body: &Value| body["total"].as_i64().unwrap_or(-1);
    for (query, expected) in [
        ("_lastUpdated=ge2000-01-01", 3),
        ("_lastUpdated=lt2000-01-01", 0),
        ("_lastUpdated=gt2999", 0),
        ("_lastUpdated=le2999-12-31T23:59:59Z", 3),
        ("_lastUpdated=ge2000&_lastUpdated=lt2000-06", 0),
    ] {
        let (status, body) = get(
            &gateway,
            SCHOOL_KEY,
            &format!("/fhir/ServiceRequest?{query}"),
        )
        .await;
        assert_eq!((status, count(&body)), (200, expected), "{query}: {body}");
    }
    for bad in [
        "_lastUpdated=yesterday",
        "_lastUpdated=ne2020",
        "status=a,b",
    ] {
        let (status, body) =
            get(&gateway, SCHOOL_KEY, &format!("/fhir/ServiceRequest?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_outcome(&body, bad.split('=').next().unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unparseable_json_is_400_and_invalid_fhir_is_422_with_expression() {
    let (_agency, gateway) = with_referrals(1).await;
    let task = food_bank_task(&gateway, 0).await;
    let task_path = format!("/fhir/Task/{}", task["id"].as_str().unwrap());
    let routes = [
        (Method::POST, "/fhir/ServiceRequest".to_owned(), SCHOOL_KEY),
        (Method::POST, "/fhir/Consent".to_owned(), SCHOOL_KEY),
        (Method::POST, "/fhir".to_owned(), SCHOOL_KEY),
        (Method::PUT, task_path.clone(), FOOD_BANK_KEY),
        (Method::POST, "/fhir/$validate".to_owned(), SCHOOL_KEY),
    ];
    for (method, path, key) in &routes {
        for junk in [&b"{\"resourceType\": "[..], b"not json", b"[1, 2]"] {
            let (status, _, body) = send(
                &gateway,
                method.clone(),
                key,
                path,
                &[],
                Some(junk.to_vec()),
            )
            .await;
            assert_eq!(status, 400, "{method} {path}: {body}");
            assert_eq!(body["resourceType"], "OperationOutcome");
        }
    }
    let bad_request = json!({"resourceType": "ServiceRequest", "status": 12, "intent": "order",
        "subject": {"reference": "Patient/kill-test-patient"}});
    let (status, body) = send_json(
        &gateway,
        Method::POST,
        SCHOOL_KEY,
        "/fhir/ServiceRequest",
        &bad_request,
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["issue"][0]["expression"][0], "status", "{body}");
    let mut bad_task = task.clone();
    bad_task["status"] = json!("no-such-status");
    let (status, body) =
        send_json(&gateway, Method::PUT, FOOD_BANK_KEY, &task_path, &bad_task).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["issue"][0]["expression"].is_array(), "{body}");
    // Another resource type than the route's is 400.
    let (status, body) = send_json(
        &gateway,
        Method::POST,
        SCHOOL_KEY,
        "/fhir/ServiceRequest",
        &task,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_outcome(&body, "expected a ServiceRequest");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_takes_a_profile() {
    let (_agency, gateway) = with_referrals(0).await;
    let profile =
        "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-ServiceRequest";
    let request = json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "3457005"}]},
        "subject": {"reference": "Patient/p"}, "bodySite": [{"text": "not in SDOHCC"}]});
    let (status, plain) = send_json(
        &gateway,
        Method::POST,
        SCHOOL_KEY,
        "/fhir/$validate",
        &request,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(plain["issue"][0]["severity"], "information", "{plain}");
    let path = format!("/fhir/ServiceRequest/$validate?profile={profile}");
    let (status, profiled) = send_json(&gateway, Method::POST, SCHOOL_KEY, &path, &request).await;
    assert_eq!(status, 200);
    assert_eq!(profiled["issue"][0]["severity"], "error", "{profiled}");
    assert!(profiled["issue"][0]["expression"].is_array(), "{profiled}");
    let parameters = json!({"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": request},
        {"name": "profile", "valueCanonical": profile}]});
    let (_, by_parameter) = send_json(
        &gateway,
        Method::POST,
        SCHOOL_KEY,
        "/fhir/$validate",
        &parameters,
    )
    .await;
    assert_eq!(by_parameter, profiled);
    let (status, body) = send_json(
        &gateway,
        Method::POST,
        SCHOOL_KEY,
        "/fhir/$validate?profile=http://example.org/StructureDefinition/nope",
        &request,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_outcome(&body, "unknown profile");
    let task_profile = "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-TaskForReferralManagement";
    let (status, body) = send_json(
        &gateway,
        Method::POST,
        SCHOOL_KEY,
        &format!("/fhir/$validate?profile={task_profile}"),
        &request,
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_outcome(&body, "is for Task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_capability_statement_is_valid_fhir() {
    let (_agency, gateway) = with_referrals(0).await;
    let (status, statement) = get(&gateway, SCHOOL_KEY, "/fhir/metadata").await;
    assert_eq!(status, 200);
    let issues = onedoor::validation::Validator::new().validate(&statement);
    assert!(issues.is_empty(), "{issues:#?}");
    let interactions = statement.to_string();
    for needed in [
        "\"vread\"",
        "\"versioned-update\"",
        "_lastUpdated",
        "\"owner\"",
    ] {
        assert!(interactions.contains(needed), "{needed}");
    }
}

/// Read disclosures recorded so far (those not tied to a delivery).
async fn read_disclosures(gateway: &Gateway) -> i64 {
    use sqlx::{Connection, Row};
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&gateway.database_url)
        .await
        .unwrap();
    sqlx::query("SELECT COUNT(*) FROM disclosures WHERE outbox_id IS NULL")
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get::<i64, _>(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_discloses_its_page_not_every_match_it_counts() {
    const N: usize = 5;
    let (_agency, gateway) = with_referrals(N).await;
    for i in 0..N {
        food_bank_task(&gateway, i).await;
    }
    let before = read_disclosures(&gateway).await;
    let (status, page) = get(&gateway, FOOD_BANK_KEY, "/fhir/ServiceRequest?_count=2").await;
    assert_eq!(status, 200, "{page}");
    let total = page["total"].as_u64().unwrap_or_default();
    assert!(
        total >= N as u64,
        "the food bank sees every referral sent to it: {page}"
    );
    assert_eq!(page["entry"].as_array().map(Vec::len), Some(2), "{page}");
    let after = read_disclosures(&gateway).await;
    assert_eq!(
        after - before,
        2,
        "only the two resources handed over are recorded as disclosed, not the {total} counted"
    );
}

/// A ServiceRequest posted on its own gets a Task whose id follows the ServiceRequest's (a UUIDv8 with the
/// request's first 48 bits: time-ordered when the gateway assigned the request's id), and a revision of a
/// referral stored by an earlier onedoor, whose Task has the id derived the earlier way, keeps that Task
/// with the status it had and a note of the revision: one Task for the referral, not a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_posted_referrals_task_follows_its_request_and_an_earlier_task_is_kept() {
    let (_agency, gateway) = with_referrals(0).await;
    let request = |id: Option<&str>, note: &str| {
        let mut request = json!({"resourceType": "ServiceRequest",
            "status": "active", "intent": "order",
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "3457005"}]},
            "subject": {"reference": "Patient/kill-test-patient"},
            "note": [{"text": note}],
            "performer": [{"identifier": {"system": "urn:onedoor:agencies", "value": "county-food-bank"}}]});
        if let Some(id) = id {
            request["id"] = json!(id);
        }
        request
    };
    let assert_follows = |task_id: &str, sr_id: &str| {
        assert_eq!(task_id[..13], sr_id[..13], "{task_id} follows {sr_id}");
        assert_eq!(&task_id[14..15], "8", "{task_id} is a UUIDv8");
        assert!(
            "89ab".contains(&task_id[19..20]),
            "{task_id} has the RFC variant"
        );
        assert_ne!(task_id, onedoor::gateway::legacy_task_id(sr_id));
    };
    // An id assigned here (the Task's id then begins with the request's time, its first 48 bits), and an
    // id the sender chose, a random UUID (v4): each Task follows its request.
    let chosen = uuid::Uuid::new_v4().to_string();
    for (id, note) in [(None, "first"), (Some(chosen.as_str()), "chosen")] {
        let (status, created) = post_request(&gateway, &request(id, note)).await;
        assert_eq!(status, 201, "{created}");
        let sr_id = created["id"].as_str().unwrap_or_default().to_owned();
        let task_id = onedoor::gateway::referral_task_id(&sr_id);
        let tasks = tasks_focused_on(&gateway, &sr_id).await;
        assert_eq!(ids(&tasks), vec![task_id.clone()]);
        assert_follows(&task_id, &sr_id);
    }

    // A referral as an earlier onedoor stored it: its Task under the earlier id.
    let earlier = uuid::Uuid::now_v7().to_string();
    let legacy = onedoor::gateway::legacy_task_id(&earlier);
    let mut bundle = referral(0);
    let entries = bundle["entry"]
        .as_array_mut()
        .expect("a transaction bundle");
    entries[0]["resource"]["id"] = json!(earlier);
    entries[0]["request"]["url"] = json!(format!("ServiceRequest/{earlier}"));
    entries.push(json!({"fullUrl": format!("urn:uuid:{legacy}"), "resource": {
        "resourceType": "Task", "id": legacy,
        "meta": {"profile": ["http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-TaskForReferralManagement"]},
        "status": "accepted", "intent": "order",
        "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]},
        "focus": {"reference": format!("ServiceRequest/{earlier}")},
        "for": {"reference": "Patient/kill-test-patient"},
        "authoredOn": "2026-12-01T00:00:00Z",
        "requester": {"reference": "Organization/org-food"},
        "owner": {"reference": "Organization/org-food"}},
        "request": {"method": "PUT", "url": format!("Task/{legacy}")}}));
    let response = post_bundle(&gateway, SCHOOL_KEY, &bundle).await;
    let stored_status = response.status().as_u16();
    assert_eq!(
        stored_status,
        200,
        "{}",
        response.text().await.unwrap_or_default()
    );
    assert_eq!(
        ids(&tasks_focused_on(&gateway, &earlier).await),
        vec![legacy.clone()]
    );
    // Its revision, posted on its own: the earlier Task carries it.
    let (status, revised) = post_request(&gateway, &request(Some(&earlier), "revised")).await;
    assert_eq!(status, 201, "{revised}");
    assert_eq!(revised["meta"]["versionId"], "2", "{revised}");
    let tasks = tasks_focused_on(&gateway, &earlier).await;
    assert_eq!(ids(&tasks), vec![legacy]);
    assert_eq!(
        tasks[0]["status"], "accepted",
        "the status it had: {}",
        tasks[0]
    );
    assert!(
        tasks[0]["note"].to_string().contains("revision 2"),
        "the revision noted: {}",
        tasks[0]
    );
}

/// `POST /fhir/ServiceRequest` of `request` by the district: status and body.
async fn post_request(gateway: &Gateway, request: &Value) -> (u16, Value) {
    send_json(
        gateway,
        Method::POST,
        SCHOOL_KEY,
        "/fhir/ServiceRequest",
        request,
    )
    .await
}

/// The Tasks focused on `ServiceRequest/{id}`, as the district reads them.
async fn tasks_focused_on(gateway: &Gateway, id: &str) -> Vec<Value> {
    let path = format!("/fhir/Task?focus=ServiceRequest/{id}");
    let (status, found) = get(gateway, SCHOOL_KEY, &path).await;
    assert_eq!(status, 200, "{found}");
    (found["entry"].as_array().into_iter().flatten())
        .filter_map(|entry| entry.get("resource").cloned())
        .collect()
}

/// The ids of `resources`.
fn ids(resources: &[Value]) -> Vec<String> {
    (resources.iter())
        .filter_map(|r| r["id"].as_str().map(str::to_owned))
        .collect()
}
