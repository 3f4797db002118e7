//! The authorization matrix: every route the API serves (`onedoor::http::paths()`: a route missing here
//! fails the test) called by every kind of caller — no credential, a malformed one, a wrong key, a revoked
//! key, an expired key, the wrong partner, the right partner, the admin — against a real `onedoor serve`
//! holding the example referrals (one delivered to the food bank, one withheld from youth-housing). Each
//! answer's status is asserted (401 for no or bad credentials, 404 for what the caller may not see, 403 for
//! what it may see but not do), and no answer to anyone but the right partner or the admin carries the
//! students' data. Then the rules one by one: what a receiver may change in a Task, a finished Task, who
//! writes consents, and a revocation stopping reads at once.

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;
use support::{
    ADMIN_TOKEN, FOOD_BANK_KEY, Gateway, HOUSING_KEY, Options, POLICE_KEY, SCHOOL_KEY, client, get,
    ingest, receiver, referral, root, send_json, wait_until,
};

const RETIRED_KEY: &str = "od_retired_partner_key_0001";
const LAPSED_KEY: &str = "od_lapsed_partner_key_00001";
const NOBODY_KEY: &str = "od_nobody_has_this_key_0001";
/// The Subscription the district's `notify_url` stands for.
const SHORTCUT: &str = "notify-url-riverside-sis";
/// What must not reach anyone but the sender and the receiver the gate released it to.
const PRIVATE: &[&str] = &["Martinez", "Patel", "eviction", "skipping meals", "Lucia"];

/// The callers, in the order each route is called (the right partner first, so a wrong partner's write
/// meets records that exist).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Right,
    NoCredential,
    Malformed,
    WrongKey,
    Revoked,
    Expired,
    WrongPartner,
    Admin,
}

const CALLERS: [Caller; 8] = [
    Caller::Right,
    Caller::NoCredential,
    Caller::Malformed,
    Caller::WrongKey,
    Caller::Revoked,
    Caller::Expired,
    Caller::WrongPartner,
    Caller::Admin,
];

/// Who may call a route.
#[derive(Debug, Clone, Copy)]
enum Access {
    /// Anyone, the same answer for all.
    Public,
    /// Partners: the right one gets `right`, the wrong one `wrong`.
    Partner {
        right: &'static [u16],
        wrong: &'static [u16],
    },
    /// The admin token only.
    Admin,
}

/// One route called in the matrix.
struct Case {
    route: &'static str,
    method: Method,
    path: String,
    body: Option<Vec<u8>>,
    right_key: &'static str,
    wrong_key: &'static str,
    access: Access,
}

/// The ids of the example referrals once the district's export is in.
struct World {
    gateway: Gateway,
    food_request: String,
    food_task: String,
    food_patient: String,
    housing_request: String,
    consent: Value,
    job: String,
    message: String,
    /// The receiver's URL (a Subscription endpoint that accepts the handshake).
    hooks: String,
    /// A Subscription the district created (the one the matrix deletes).
    subscription: String,
}

async fn world() -> World {
    let (agency, url) = receiver(0, 0).await;
    std::mem::forget(agency_keepalive(agency.clone()));
    let mut gateway = Gateway::prepare(&url, Options::default()).await;
    add_retired_and_lapsed_partners(&gateway);
    gateway.spawn();
    let csv = std::fs::read(root().join("examples/referrals.csv")).unwrap();
    let report = ingest(&gateway, SCHOOL_KEY, "riverside-referrals", csv).await;
    assert_eq!(report["status"], "done", "{report}");
    wait_until("the food bank's delivery", Duration::from_secs(20), || {
        !agency.accepted_on("/food-bank").is_empty()
    })
    .await;
    support::wait_recorded_delivered(&gateway, "food-bank").await;
    let (_, tasks) = get(&gateway, FOOD_BANK_KEY, "/fhir/Task").await;
    let food_task = &tasks["entry"][0]["resource"];
    let food_request = reference_id(&food_task["focus"]);
    let (_, request) = get(
        &gateway,
        FOOD_BANK_KEY,
        &format!("/fhir/ServiceRequest/{food_request}"),
    )
    .await;
    let (_, requests) = get(&gateway, SCHOOL_KEY, "/fhir/ServiceRequest").await;
    let housing = requests["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e.to_string().contains("eviction"))
        .expect("the district sees its housing referral");
    let consent = consent_of_the_school();
    let (status, posted) = send_json(
        &gateway,
        Method::POST,
        SCHOOL_KEY,
        "/fhir/Consent",
        &consent,
    )
    .await;
    assert_eq!(status, 201, "{posted}");
    let (_, deliveries) = get(&gateway, ADMIN_TOKEN, "/admin/messages").await;
    let hooks = format!("{url}/district/hooks");
    let (status, subscription) = send_json(
        &gateway,
        Method::POST,
        SCHOOL_KEY,
        "/fhir/Subscription",
        &support::subscription_request(&hooks, "district-chose-this"),
    )
    .await;
    assert_eq!(status, 201, "{subscription}");
    World {
        hooks,
        subscription: subscription["id"].as_str().unwrap_or_default().to_owned(),
        food_request,
        food_task: food_task["id"].as_str().unwrap_or_default().to_owned(),
        food_patient: reference_id(&request["subject"]),
        housing_request: housing["resource"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        consent: posted,
        job: report["id"].as_str().unwrap_or_default().to_owned(),
        message: deliveries["deliveries"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        gateway,
    }
}

/// The receiver lives as long as the test process (it is an in-process server).
fn agency_keepalive(
    agency: onedoor::example_receiver::Receiver,
) -> Box<onedoor::example_receiver::Receiver> {
    Box::new(agency)
}

fn reference_id(reference: &Value) -> String {
    reference["reference"]
        .as_str()
        .and_then(|r| r.rsplit('/').next())
        .unwrap_or_default()
        .to_owned()
}

/// Two more partners of the food bank's organization: one whose key is revoked, one whose key expired.
fn add_retired_and_lapsed_partners(gateway: &Gateway) {
    let mut config = std::fs::read_to_string(&gateway.config).unwrap();
    config.push_str(
        "\n[partners.retired]\norg = \"urn:onedoor:agencies|county-food-bank\"\n\
         [partners.lapsed]\norg = \"urn:onedoor:agencies|county-food-bank\"\n",
    );
    std::fs::write(&gateway.config, config).unwrap();
    for args in [
        vec!["partners", "add", "retired", "--key", RETIRED_KEY],
        vec!["partners", "revoke", "retired"],
        vec![
            "partners",
            "add",
            "lapsed",
            "--key",
            LAPSED_KEY,
            "--expires-in",
            "1s",
        ],
    ] {
        let out = gateway.onedoor(&args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::thread::sleep(Duration::from_millis(1_100));
}

/// A consent the district records for a student of its school sch-110 (its custodian).
fn consent_of_the_school() -> Value {
    let mut consent = support::food_bank_consent();
    consent["identifier"][0]["value"] = json!("CONS-MATRIX");
    consent
}

fn cases(world: &World) -> Vec<Case> {
    let partner = |right: &'static [u16], wrong: &'static [u16]| Access::Partner { right, wrong };
    let json_body = |v: &Value| Some(serde_json::to_vec(v).unwrap());
    let mut consent = world.consent.clone();
    consent["status"] = json!("active");
    let mut task = json!({});
    let mut accepted = task.clone();
    if let Some(found) = food_task_body(world) {
        task = found.clone();
        accepted = found;
        accepted["status"] = json!("accepted");
    }
    let _ = task;
    let request = json!({"resourceType": "ServiceRequest", "status": "active", "intent": "order",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "3457005"}]},
        "subject": {"reference": format!("Patient/{}", world.food_patient)},
        "performer": [{"identifier": {"system": "urn:onedoor:agencies", "value": "county-food-bank"}}]});
    let patient = json!({"resourceType": "Patient", "id": "p"});
    let c = |route: &'static str,
             method: Method,
             path: String,
             body: Option<Vec<u8>>,
             right_key,
             wrong_key,
             access| Case {
        route,
        method,
        path,
        body,
        right_key,
        wrong_key,
        access,
    };
    vec![
        c(
            "/fhir/metadata",
            Method::GET,
            "/fhir/metadata".into(),
            None,
            SCHOOL_KEY,
            HOUSING_KEY,
            Access::Public,
        ),
        c(
            "/auth/token",
            Method::POST,
            "/auth/token".into(),
            Some(Vec::new()),
            SCHOOL_KEY,
            HOUSING_KEY,
            Access::Public,
        ),
        c(
            "/.well-known/smart-configuration",
            Method::GET,
            "/.well-known/smart-configuration".into(),
            None,
            SCHOOL_KEY,
            HOUSING_KEY,
            Access::Public,
        ),
        c(
            "/fhir/.well-known/smart-configuration",
            Method::GET,
            "/fhir/.well-known/smart-configuration".into(),
            None,
            SCHOOL_KEY,
            HOUSING_KEY,
            Access::Public,
        ),
        c(
            "/fhir",
            Method::POST,
            "/fhir".into(),
            json_body(&referral(50)),
            SCHOOL_KEY,
            HOUSING_KEY,
            partner(&[200], &[403]),
        ),
        c(
            "/fhir/$validate",
            Method::POST,
            "/fhir/$validate".into(),
            json_body(&patient),
            SCHOOL_KEY,
            HOUSING_KEY,
            Access::Public,
        ),
        c(
            "/fhir/ServiceRequest",
            Method::POST,
            "/fhir/ServiceRequest".into(),
            json_body(&request),
            SCHOOL_KEY,
            HOUSING_KEY,
            partner(&[201], &[201, 403, 422]),
        ),
        c(
            "/fhir/Consent",
            Method::POST,
            "/fhir/Consent".into(),
            json_body(&consent_of_the_school()),
            SCHOOL_KEY,
            HOUSING_KEY,
            partner(&[201], &[403]),
        ),
        c(
            "/fhir/Consent/{id}",
            Method::PUT,
            format!(
                "/fhir/Consent/{}",
                world.consent["id"].as_str().unwrap_or_default()
            ),
            json_body(&consent),
            SCHOOL_KEY,
            POLICE_KEY,
            partner(&[200], &[404]),
        ),
        c(
            "/fhir/Task/{id}",
            Method::PUT,
            format!("/fhir/Task/{}", world.food_task),
            json_body(&accepted),
            FOOD_BANK_KEY,
            HOUSING_KEY,
            partner(&[200], &[404]),
        ),
        c(
            "/fhir/Task/{id}/_history",
            Method::GET,
            format!("/fhir/Task/{}/_history", world.food_task),
            None,
            FOOD_BANK_KEY,
            HOUSING_KEY,
            partner(&[200], &[404]),
        ),
        c(
            "/fhir/Subscription",
            Method::POST,
            "/fhir/Subscription".into(),
            json_body(&support::subscription_request(&world.hooks, "t")),
            SCHOOL_KEY,
            HOUSING_KEY,
            partner(&[201], &[201]),
        ),
        c(
            "/fhir/Subscription/{id}",
            Method::GET,
            format!("/fhir/Subscription/{SHORTCUT}"),
            None,
            SCHOOL_KEY,
            HOUSING_KEY,
            partner(&[200], &[404]),
        ),
        c(
            "/fhir/Subscription/{id}",
            Method::DELETE,
            format!("/fhir/Subscription/{}", world.subscription),
            None,
            SCHOOL_KEY,
            HOUSING_KEY,
            partner(&[200], &[404]),
        ),
        c(
            "/fhir/Subscription/{id}/_history/{vid}",
            Method::GET,
            format!("/fhir/Subscription/{SHORTCUT}/_history/1"),
            None,
            SCHOOL_KEY,
            HOUSING_KEY,
            partner(&[200], &[404]),
        ),
        c(
            "/fhir/Subscription/{id}/$status",
            Method::GET,
            format!("/fhir/Subscription/{SHORTCUT}/$status"),
            None,
            SCHOOL_KEY,
            HOUSING_KEY,
            partner(&[200], &[404]),
        ),
        c(
            "/fhir/Patient/{id}",
            Method::GET,
            format!("/fhir/Patient/{}", world.food_patient),
            None,
            FOOD_BANK_KEY,
            HOUSING_KEY,
            partner(&[200], &[404]),
        ),
        c(
            "/fhir/{kind}",
            Method::GET,
            "/fhir/Task".into(),
            None,
            FOOD_BANK_KEY,
            HOUSING_KEY,
            partner(&[200], &[200]),
        ),
        c(
            "/fhir/{kind}/{id}",
            Method::GET,
            format!("/fhir/ServiceRequest/{}", world.housing_request),
            None,
            SCHOOL_KEY,
            HOUSING_KEY,
            partner(&[200], &[404]),
        ),
        c(
            "/fhir/{kind}/{id}/_history/{vid}",
            Method::GET,
            format!("/fhir/Task/{}/_history/1", world.food_task),
            None,
            FOOD_BANK_KEY,
            HOUSING_KEY,
            partner(&[200], &[404]),
        ),
        c(
            "/fhir/{kind}/$validate",
            Method::POST,
            "/fhir/Patient/$validate".into(),
            json_body(&patient),
            SCHOOL_KEY,
            HOUSING_KEY,
            Access::Public,
        ),
        c(
            "/ingest/{source}",
            Method::POST,
            "/ingest/riverside-referrals".into(),
            Some(std::fs::read(root().join("examples/referrals.csv")).unwrap()),
            SCHOOL_KEY,
            FOOD_BANK_KEY,
            partner(&[202], &[403]),
        ),
        c(
            "/jobs/{id}",
            Method::GET,
            format!("/jobs/{}", world.job),
            None,
            SCHOOL_KEY,
            FOOD_BANK_KEY,
            partner(&[200], &[404]),
        ),
        c(
            "/admin/messages",
            Method::GET,
            "/admin/messages".into(),
            None,
            SCHOOL_KEY,
            HOUSING_KEY,
            Access::Admin,
        ),
        c(
            "/admin/dead-letters",
            Method::GET,
            "/admin/dead-letters".into(),
            None,
            SCHOOL_KEY,
            HOUSING_KEY,
            Access::Admin,
        ),
        c(
            "/admin/messages/{id}/replay",
            Method::POST,
            format!("/admin/messages/{}/replay", world.message),
            None,
            SCHOOL_KEY,
            HOUSING_KEY,
            Access::Admin,
        ),
        c(
            "/admin/dead-letters/{destination}/replay",
            Method::POST,
            "/admin/dead-letters/food-bank/replay".into(),
            None,
            SCHOOL_KEY,
            HOUSING_KEY,
            Access::Admin,
        ),
        c(
            "/admin/disclosures",
            Method::GET,
            "/admin/disclosures?patient=stu-1001".into(),
            None,
            SCHOOL_KEY,
            HOUSING_KEY,
            Access::Admin,
        ),
        c(
            "/healthz",
            Method::GET,
            "/healthz".into(),
            None,
            SCHOOL_KEY,
            HOUSING_KEY,
            Access::Public,
        ),
        c(
            "/readyz",
            Method::GET,
            "/readyz".into(),
            None,
            SCHOOL_KEY,
            HOUSING_KEY,
            Access::Public,
        ),
        c(
            "/metrics",
            Method::GET,
            "/metrics".into(),
            None,
            SCHOOL_KEY,
            HOUSING_KEY,
            Access::Public,
        ),
        c(
            "/openapi.json",
            Method::GET,
            "/openapi.json".into(),
            None,
            SCHOOL_KEY,
            HOUSING_KEY,
            Access::Public,
        ),
    ]
}

/// The food bank's Task as it reads it (filled in by [`world`] through a blocking read in the test).
fn food_task_body(world: &World) -> Option<Value> {
    FOOD_TASK
        .with(|t| t.borrow().clone())
        .filter(|t| t["id"] == world.food_task.as_str())
}

thread_local! {
    static FOOD_TASK: std::cell::RefCell<Option<Value>> = const { std::cell::RefCell::new(None) };
}

/// The Authorization header a caller sends, if any.
fn credential(case: &Case, caller: Caller) -> Option<String> {
    let bearer = |key: &str| Some(format!("Bearer {key}"));
    match caller {
        Caller::Right => bearer(case.right_key),
        Caller::NoCredential => None,
        Caller::Malformed => Some("Basic not-a-credential".into()),
        Caller::WrongKey => bearer(NOBODY_KEY),
        Caller::Revoked => bearer(RETIRED_KEY),
        Caller::Expired => bearer(LAPSED_KEY),
        Caller::WrongPartner => bearer(case.wrong_key),
        Caller::Admin => bearer(ADMIN_TOKEN),
    }
}

/// What a caller must get, or `None` for a public route (checked for sameness instead).
fn expected(access: Access, caller: Caller) -> Option<&'static [u16]> {
    let unauthenticated = matches!(
        caller,
        Caller::NoCredential
            | Caller::Malformed
            | Caller::WrongKey
            | Caller::Revoked
            | Caller::Expired
    );
    match access {
        Access::Public => None,
        _ if unauthenticated => Some(&[401]),
        Access::Partner { right, wrong } => Some(match caller {
            Caller::Right => right,
            Caller::WrongPartner => wrong,
            _ => &[401],
        }),
        Access::Admin => Some(if caller == Caller::Admin {
            &[200]
        } else {
            &[403]
        }),
    }
}

async fn call(world: &World, case: &Case, caller: Caller) -> (u16, String) {
    let mut request = client().request(
        case.method.clone(),
        format!("{}{}", world.gateway.base, case.path),
    );
    if let Some(header) = credential(case, caller) {
        request = request.header("Authorization", header);
    }
    if let Some(body) = &case.body {
        let kind = if case.route == "/ingest/{source}" {
            "text/csv"
        } else if case.route == "/auth/token" {
            "application/x-www-form-urlencoded"
        } else {
            "application/fhir+json"
        };
        request = request.header("Content-Type", kind).body(body.clone());
    }
    let response = request.send().await.unwrap();
    (
        response.status().as_u16(),
        response.text().await.unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_every_kind_of_caller_as_the_rights_table_says() {
    let world = world().await;
    let (_, task) = get(
        &world.gateway,
        FOOD_BANK_KEY,
        &format!("/fhir/Task/{}", world.food_task),
    )
    .await;
    FOOD_TASK.with(|t| *t.borrow_mut() = Some(task));
    let cases = cases(&world);
    let covered: BTreeSet<&str> = cases.iter().map(|c| c.route).collect();
    let served: BTreeSet<&str> = onedoor::http::paths().into_iter().collect();
    assert_eq!(
        covered, served,
        "every route the API serves is in the matrix, and only those"
    );
    let mut failures = Vec::new();
    for case in &cases {
        let mut public_answers = BTreeSet::new();
        for caller in CALLERS {
            let (status, body) = call(&world, case, caller).await;
            match expected(case.access, caller) {
                Some(allowed) if !allowed.contains(&status) => failures.push(format!(
                    "{} {} as {caller:?}: {status}, expected {allowed:?}: {}",
                    case.method,
                    case.path,
                    body.chars().take(200).collect::<String>()
                )),
                None => {
                    public_answers.insert(status);
                }
                _ => {}
            }
            if !matches!(caller, Caller::Right | Caller::Admin)
                && let Some(word) = PRIVATE.iter().find(|w| body.contains(*w))
            {
                failures.push(format!(
                    "{} {} as {caller:?}: the answer holds '{word}'",
                    case.method, case.path
                ));
            }
        }
        if public_answers.len() > 1 || public_answers.iter().any(|s| *s >= 500) {
            failures.push(format!(
                "{} {}: a public route answered {public_answers:?}",
                case.method, case.path
            ));
        }
    }
    eprintln!(
        "authorization matrix: {} routes x {} callers",
        cases.len(),
        CALLERS.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withheld_referral_does_not_exist_for_its_intended_receiver() {
    let world = world().await;
    let (_, tasks) = get(&world.gateway, HOUSING_KEY, "/fhir/Task").await;
    assert_eq!(tasks["total"], 0, "{tasks}");
    let (status, _) = get(
        &world.gateway,
        HOUSING_KEY,
        &format!("/fhir/ServiceRequest/{}", world.housing_request),
    )
    .await;
    assert_eq!(status, 404);
    let (_, housing) = get(
        &world.gateway,
        SCHOOL_KEY,
        &format!("/fhir/ServiceRequest/{}", world.housing_request),
    )
    .await;
    let patient = reference_id(&housing["subject"]);
    assert_eq!(
        get(
            &world.gateway,
            HOUSING_KEY,
            &format!("/fhir/Patient/{patient}")
        )
        .await
        .0,
        404
    );
    let (status, read) = get(
        &world.gateway,
        FOOD_BANK_KEY,
        &format!("/fhir/Patient/{}", world.food_patient),
    )
    .await;
    assert_eq!(
        status, 200,
        "the food bank reads the student the gate released to it: {read}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_changes_only_what_its_role_may_and_a_finished_task_is_frozen() {
    let world = world().await;
    let gateway = &world.gateway;
    let path = format!("/fhir/Task/{}", world.food_task);
    let (_, task) = get(gateway, FOOD_BANK_KEY, &path).await;
    let put = |key: &'static str, body: Value| {
        let path = path.clone();
        async move { send_json(gateway, Method::PUT, key, &path, &body).await }
    };
    for (element, value) in [
        ("authoredOn", json!("2020-01-01")),
        ("priority", json!("stat")),
        ("description", json!("rewritten")),
        ("identifier", json!([{"system": "urn:x", "value": "y"}])),
    ] {
        let mut changed = task.clone();
        changed[element] = value;
        let (status, body) = put(FOOD_BANK_KEY, changed).await;
        assert_eq!(status, 403, "{element}: {body}");
    }
    let mut unlabelled = task.clone();
    unlabelled["meta"]["security"] = json!([]);
    assert_eq!(
        put(FOOD_BANK_KEY, unlabelled).await.0,
        403,
        "security labels stay"
    );
    let mut next = task.clone();
    for status in ["accepted", "in-progress", "completed"] {
        next["status"] = json!(status);
        let (code, body) = put(FOOD_BANK_KEY, next.clone()).await;
        assert_eq!(code, 200, "{status}: {body}");
        next = body;
    }
    let mut rewritten = next.clone();
    rewritten["note"] = json!([{"text": "rewritten after the fact"}]);
    assert_eq!(
        put(SCHOOL_KEY, rewritten.clone()).await.0,
        409,
        "the requester cannot rewrite a finished Task"
    );
    assert_eq!(
        put(FOOD_BANK_KEY, rewritten).await.0,
        409,
        "nor the receiver"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consents_are_written_by_their_custodian_and_a_revocation_stops_reads_at_once() {
    let world = world().await;
    let gateway = &world.gateway;
    let mut own = support::food_bank_consent();
    own["organization"] =
        json!([{"identifier": {"system": "urn:onedoor:agencies", "value": "youth-housing"}}]);
    own["provision"]["actor"][0]["reference"]["identifier"]["value"] = json!("youth-housing");
    let (status, body) = send_json(gateway, Method::POST, HOUSING_KEY, "/fhir/Consent", &own).await;
    assert_eq!(
        status, 403,
        "an agency cannot grant itself a consent: {body}"
    );
    let mut revoked = world.consent.clone();
    revoked["status"] = json!("inactive");
    let id = world.consent["id"].as_str().unwrap_or_default();
    let (status, _) = send_json(
        gateway,
        Method::PUT,
        POLICE_KEY,
        &format!("/fhir/Consent/{id}"),
        &revoked,
    )
    .await;
    assert_eq!(
        status, 404,
        "the police cannot revoke the district's consent"
    );
    let read = format!("/fhir/ServiceRequest/{}", world.food_request);
    assert_eq!(get(gateway, FOOD_BANK_KEY, &read).await.0, 200);
    // The district revokes the consent its school holds (riverside-consent-88, from the consent folder).
    let (_, held) = get(gateway, SCHOOL_KEY, "/fhir/Consent/riverside-consent-88").await;
    let mut withdrawn = held.clone();
    withdrawn["status"] = json!("inactive");
    let (status, body) = send_json(
        gateway,
        Method::PUT,
        SCHOOL_KEY,
        "/fhir/Consent/riverside-consent-88",
        &withdrawn,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // ...and the one it recorded through the API for the same student (see `world`).
    let (status, body) = send_json(
        gateway,
        Method::PUT,
        SCHOOL_KEY,
        &format!("/fhir/Consent/{id}"),
        &revoked,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        get(gateway, FOOD_BANK_KEY, &read).await.0,
        404,
        "reads stop with the revocation"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_reads_the_redacted_version_the_gate_released_to_it() {
    let (agency, url) = receiver(0, 0).await;
    let gateway = Gateway::start(&url, 50).await;
    let case = root().join("conformance/consent/nested-deny-data-class");
    let student = json!({"system": "urn:onedoor:source:riverside-usd/users", "value": "stu-9001"});
    let mut consent: Value =
        serde_json::from_str(&std::fs::read_to_string(case.join("consents/c-1.json")).unwrap())
            .unwrap();
    consent["patient"] = json!({"identifier": student});
    consent["organization"] = json!([{"identifier": {"system": "urn:onedoor:source:riverside-usd/orgs", "value": "sch-110"}}]);
    let (status, body) = send_json(
        &gateway,
        Method::POST,
        SCHOOL_KEY,
        "/fhir/Consent",
        &consent,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let mut bundle: Value =
        serde_json::from_str(&std::fs::read_to_string(case.join("bundle.json")).unwrap()).unwrap();
    for entry in bundle["entry"].as_array_mut().unwrap() {
        if entry["resource"]["resourceType"] == "Patient" {
            entry["resource"]["identifier"] = json!([student]);
        }
        // The referring school is the district's sch-110, the custodian the consent names.
        if entry["resource"]["id"] == "org-school" {
            entry["resource"]["identifier"] =
                json!([{"system": "urn:onedoor:source:riverside-usd/orgs", "value": "sch-110"}]);
        }
    }
    bundle["type"] = json!("transaction");
    let posted = support::post_bundle(&gateway, SCHOOL_KEY, &bundle).await;
    assert_eq!(posted.status().as_u16(), 200);
    wait_until("the redacted delivery", Duration::from_secs(20), || {
        !agency.accepted_on("/food-bank").is_empty()
    })
    .await;
    support::wait_recorded_delivered(&gateway, "food-bank").await;
    assert!(
        !agency.accepted_on("/food-bank")[0]
            .to_string()
            .contains("\"Condition\"")
    );
    assert_eq!(
        get(&gateway, SCHOOL_KEY, "/fhir/Condition/cond-1").await.0,
        200,
        "the sender reads all it sent"
    );
    assert_eq!(
        get(&gateway, FOOD_BANK_KEY, "/fhir/Condition/cond-1")
            .await
            .0,
        404,
        "withheld by the consent's nested deny"
    );
    let (status, patient) = get(&gateway, FOOD_BANK_KEY, "/fhir/Patient/pat-1").await;
    assert_eq!(status, 200, "{patient}");
    let (status, request) = get(&gateway, FOOD_BANK_KEY, "/fhir/ServiceRequest/sr-1").await;
    assert_eq!(status, 200, "{request}");
}
