//! FHIR Subscriptions (R5 Subscriptions Backport IG for R4) against a real `onedoor serve`: a referrer
//! subscribes to its referrals' Task status changes; the endpoint gets a handshake before the Subscription
//! is active, then id-only event notifications numbered from 1 and carrying the channel header the
//! subscriber chose, heartbeats when nothing else is sent, only the statuses its filter names, and nothing
//! after it is deleted. An endpoint that refuses the handshake, and Subscriptions onedoor cannot honour,
//! get 422 with an OperationOutcome that says what was wrong; other organizations see none of it.

mod support;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{
    FOOD_BANK_KEY, Gateway, HOUSING_KEY, SCHOOL_KEY, get, ingest, receiver, requested_tasks, root,
    send_json, subscription_request, wait_until,
};

/// What a subscriber's endpoint received: path, `Authorization` header, body.
type Hits = Arc<Mutex<Vec<(String, String, Value)>>>;

/// A subscriber's endpoint: records every request; paths under `/refuse` answer 403.
async fn hooks() -> (Hits, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits: Hits = Arc::default();
    let app = axum::Router::new()
        .fallback(record)
        .with_state(hits.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (hits, url)
}

async fn record(State(hits): State<Hits>, request: Request) -> StatusCode {
    let path = request.uri().path().to_owned();
    let auth = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    hits.lock().unwrap().push((path.clone(), auth, body));
    if path.starts_with("/refuse") {
        StatusCode::FORBIDDEN
    } else {
        StatusCode::OK
    }
}

/// The notifications received on `path`, of `kind` (handshake, heartbeat, event-notification).
fn received(hits: &Hits, path: &str, kind: &str) -> Vec<(String, Value)> {
    hits.lock()
        .unwrap()
        .iter()
        .filter(|(p, _, body)| p == path && parameter(body, "type")["valueCode"] == kind)
        .map(|(_, auth, body)| (auth.clone(), body.clone()))
        .collect()
}

/// A parameter of a notification's SubscriptionStatus.
fn parameter<'a>(notification: &'a Value, name: &str) -> &'a Value {
    notification["entry"][0]["resource"]["parameter"]
        .as_array()
        .and_then(|list| list.iter().find(|p| p["name"] == name))
        .unwrap_or(&Value::Null)
}

fn focus(notification: &Value) -> String {
    parameter(notification, "notification-event")["part"]
        .as_array()
        .and_then(|parts| parts.iter().find(|p| p["name"] == "focus"))
        .and_then(|p| p["valueReference"]["reference"].as_str())
        .unwrap_or_default()
        .to_owned()
}

async fn subscribe(gateway: &Gateway, key: &str, body: &Value) -> (u16, Value) {
    send_json(gateway, Method::POST, key, "/fhir/Subscription", body).await
}

async fn set_status(gateway: &Gateway, task: &Value, status: &str) {
    let mut task = task.clone();
    task["status"] = json!(status);
    let path = format!("/fhir/Task/{}", task["id"].as_str().unwrap());
    let (code, updated) = send_json(gateway, Method::PUT, FOOD_BANK_KEY, &path, &task).await;
    assert_eq!(code, 200, "{updated}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_referrer_hears_of_its_referrals_status_through_its_subscription() {
    let (agency, url) = receiver(0, 0).await;
    let gateway = Gateway::start(&url, 50).await;
    let (hits, hooks_url) = hooks().await;

    // Created after a handshake that carries the subscriber's own header.
    let response = support::client()
        .post(format!("{}/fhir/Subscription", gateway.base))
        .bearer_auth(SCHOOL_KEY)
        .json(&subscription_request(
            &format!("{hooks_url}/district"),
            "district-chose-this",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(response.headers()["etag"], "W/\"1\"");
    let created: Value = response.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["status"], "active");
    assert!(
        location.ends_with(&format!("/fhir/Subscription/{id}/_history/1")),
        "{location}"
    );
    let handshakes = received(&hits, "/district", "handshake");
    assert_eq!(handshakes.len(), 1);
    assert_eq!(handshakes[0].0, "Bearer district-chose-this");
    assert_eq!(
        parameter(&handshakes[0].1, "status")["valueCode"],
        "requested"
    );

    // A second one hears only of completed referrals.
    let mut completed_only = subscription_request(&format!("{hooks_url}/completed"), "c");
    completed_only["_criteria"] = json!({"extension": [{
        "url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-filter-criteria",
        "valueString": "Task?status=completed"}]});
    let (code, filtered) = subscribe(&gateway, SCHOOL_KEY, &completed_only).await;
    assert_eq!(code, 201, "{filtered}");

    // Another organization neither sees nor removes it.
    let path = format!("/fhir/Subscription/{id}");
    assert_eq!(get(&gateway, HOUSING_KEY, &path).await.0, 404);
    let (code, _) = send_json(&gateway, Method::DELETE, HOUSING_KEY, &path, &json!({})).await;
    assert_eq!(code, 404);
    let (_, theirs) = get(&gateway, HOUSING_KEY, "/fhir/Subscription").await;
    assert_eq!(theirs["total"], 0, "{theirs}");

    // The food bank accepts a referral: one id-only event, numbered 1, with the header.
    let csv = std::fs::read(root().join("examples/referrals.csv")).unwrap();
    let report = ingest(&gateway, SCHOOL_KEY, "riverside-referrals", csv).await;
    assert_eq!(report["status"], "done", "{report}");
    let tasks = requested_tasks(&gateway, FOOD_BANK_KEY, 1).await;
    let task = &tasks[0]["resource"];
    let task_id = task["id"].as_str().unwrap().to_owned();
    set_status(&gateway, task, "accepted").await;
    wait_until("the event notification", Duration::from_secs(20), || {
        !received(&hits, "/district", "event-notification").is_empty()
    })
    .await;
    let events = received(&hits, "/district", "event-notification");
    let (auth, event) = &events[0];
    assert_eq!(auth, "Bearer district-chose-this");
    assert_eq!(
        parameter(event, "events-since-subscription-start")["valueString"],
        "1"
    );
    assert!(
        focus(event).ends_with(&format!("/fhir/Task/{task_id}")),
        "{event}"
    );
    assert!(
        event["entry"][1].get("resource").is_none(),
        "id-only: {event}"
    );
    assert!(
        !event.to_string().contains("Martinez"),
        "notifications carry ids only"
    );
    let (_, status) = get(&gateway, SCHOOL_KEY, &format!("{path}/$status")).await;
    let status = &status["entry"][0]["resource"];
    assert_eq!(
        parameter(
            &json!({"entry": [{"resource": status}]}),
            "events-since-subscription-start"
        )["valueString"],
        "1"
    );

    // Deleted: no more notifications there (the notify_url shortcut still hears of the next change).
    let (code, deleted) = send_json(&gateway, Method::DELETE, SCHOOL_KEY, &path, &json!({})).await;
    assert_eq!(code, 200, "{deleted}");
    assert_eq!(get(&gateway, SCHOOL_KEY, &path).await.0, 404);
    let (_, task) = get(&gateway, FOOD_BANK_KEY, &format!("/fhir/Task/{task_id}")).await;
    set_status(&gateway, &task, "in-progress").await;
    let (_, task) = get(&gateway, FOOD_BANK_KEY, &format!("/fhir/Task/{task_id}")).await;
    set_status(&gateway, &task, "completed").await;
    wait_until(
        "the shortcut's three notifications",
        Duration::from_secs(20),
        || agency.accepted_on("/riverside/notifications").len() >= 3,
    )
    .await;
    wait_until(
        "the completed-only notification",
        Duration::from_secs(20),
        || !received(&hits, "/completed", "event-notification").is_empty(),
    )
    .await;
    assert_eq!(received(&hits, "/district", "event-notification").len(), 1);
    let completed = received(&hits, "/completed", "event-notification");
    assert_eq!(
        completed.len(),
        1,
        "the filter lets only 'completed' through"
    );
    assert_eq!(
        parameter(&completed[0].1, "events-since-subscription-start")["valueString"],
        "1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_arrive_when_nothing_else_does() {
    let (_agency, url) = receiver(0, 0).await;
    let gateway = Gateway::start(&url, 50).await;
    let (hits, hooks_url) = hooks().await;
    let mut asked = subscription_request(&format!("{hooks_url}/beat"), "beat-token");
    asked["channel"]["extension"] = json!([{
        "url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-heartbeat-period",
        "valueUnsignedInt": 1}]);
    let (code, created) = subscribe(&gateway, SCHOOL_KEY, &asked).await;
    assert_eq!(code, 201, "{created}");
    wait_until("two heartbeats", Duration::from_secs(15), || {
        received(&hits, "/beat", "heartbeat").len() >= 2
    })
    .await;
    let beats = received(&hits, "/beat", "heartbeat");
    assert!(beats.iter().all(|(auth, _)| auth == "Bearer beat-token"));
    assert_eq!(parameter(&beats[0].1, "status")["valueCode"], "active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_cannot_be_honoured_is_refused_with_what_was_wrong() {
    let (_agency, url) = receiver(0, 0).await;
    let gateway = Gateway::start(&url, 50).await;
    let (hits, hooks_url) = hooks().await;

    // The endpoint refuses the handshake, or nothing listens there: 422, nothing kept.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/gone", listener.local_addr().unwrap())
    };
    for (endpoint, expected) in [
        (format!("{hooks_url}/refuse"), "HTTP 403"),
        (closed, "could not connect"),
    ] {
        let (code, outcome) =
            subscribe(&gateway, SCHOOL_KEY, &subscription_request(&endpoint, "t")).await;
        assert_eq!(code, 422, "{outcome}");
        let said = outcome["issue"][0]["diagnostics"]
            .as_str()
            .unwrap_or_default();
        assert!(
            said.contains("handshake") && said.contains(expected),
            "{said}"
        );
    }
    assert_eq!(received(&hits, "/refuse", "handshake").len(), 1);
    let (_, mine) = get(&gateway, SCHOOL_KEY, "/fhir/Subscription").await;
    let endpoints: Vec<&str> = mine["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["resource"]["channel"]["endpoint"].as_str())
        .collect();
    assert_eq!(endpoints.len(), 1, "only the notify_url shortcut: {mine}");
    assert!(endpoints[0].ends_with("/riverside/notifications"));

    // What onedoor cannot honour, by element.
    let good = subscription_request(&format!("{hooks_url}/ok"), "t");
    let wrong: [(&str, Value, &str); 5] = [
        (
            "/criteria",
            json!("http://example.org/SubscriptionTopic/other"),
            "Subscription.criteria",
        ),
        ("/channel/type", json!("websocket"), "rest-hook"),
        (
            "/channel/header/0",
            json!("Host: evil.example"),
            "sets 'Host'",
        ),
        ("/channel/endpoint", json!("file:///etc/passwd"), "http(s)"),
        (
            "/channel/_payload/extension/0/valueCode",
            json!("full-resource"),
            "id-only",
        ),
    ];
    for (pointer, value, expected) in wrong {
        let mut asked = good.clone();
        *asked.pointer_mut(pointer).unwrap() = value;
        let (code, outcome) = subscribe(&gateway, SCHOOL_KEY, &asked).await;
        assert_eq!(code, 422, "{pointer}: {outcome}");
        let said = outcome["issue"][0]["diagnostics"]
            .as_str()
            .unwrap_or_default();
        assert!(said.contains(expected), "{pointer}: {said}");
    }
    assert!(
        received(&hits, "/ok", "handshake").is_empty(),
        "no handshake for a refused Subscription"
    );

    // Not JSON, another resource, an unknown search parameter: 400.
    let response = support::client()
        .post(format!("{}/fhir/Subscription", gateway.base))
        .bearer_auth(SCHOOL_KEY)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let (code, _) = subscribe(&gateway, SCHOOL_KEY, &json!({"resourceType": "Patient"})).await;
    assert_eq!(code, 400);
    let (code, outcome) = get(&gateway, SCHOOL_KEY, "/fhir/Subscription?criteria=x").await;
    assert_eq!(code, 400, "{outcome}");
    // The CapabilityStatement names the topic.
    let (_, metadata) = get(&gateway, SCHOOL_KEY, "/fhir/metadata").await;
    assert!(
        metadata
            .to_string()
            .contains(onedoor::canonical::subscription::TASK_STATUS_TOPIC)
    );
}
