//! Group commit against a real `onedoor serve`: referrals posted together share transactions
//! (`onedoor_group_commit_size` shows batches of more than one), each is answered only after the commit
//! that holds it, one that is refused (another organization's referral) is rolled back alone while the
//! others in its batch are stored (on SQLite by a committer on a thread of its own), and a SIGKILL in the
//! middle of a burst loses no acknowledged referral (the audit chain stays intact).

mod support;

use serde_json::{Value, json};
use std::sync::Arc;
use support::{Gateway, HOUSING_KEY, SCHOOL_KEY, client, get, receiver, referral};
use tokio::sync::Semaphore;

/// POST a transaction Bundle to `base` as `key`: the HTTP status (0 when the connection failed).
async fn post(base: &str, key: &str, bundle: &Value) -> u16 {
    match client()
        .post(format!("{base}/fhir"))
        .bearer_auth(key)
        .json(bundle)
        .send()
        .await
    {
        Ok(response) => response.status().as_u16(),
        Err(_) => 0,
    }
}

/// A Prometheus value of the metrics page (`name` at the start of a line), or 0.
fn metric(page: &str, name: &str) -> f64 {
    page.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn referrals_posted_together_share_commits_and_a_refused_one_is_rolled_back_alone() {
    let (_agency, url) = receiver(0, 0).await;
    let gateway = Gateway::start(&url, 50).await;
    assert_eq!(
        post(&gateway.base, SCHOOL_KEY, &referral(10_000)).await,
        200
    );
    let mut hostile = referral(10_000);
    hostile["entry"][0]["resource"]["status"] = json!("revoked");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..96 {
        let base = gateway.base.clone();
        let (key, bundle) = if i % 12 == 0 {
            (HOUSING_KEY, hostile.clone())
        } else {
            (SCHOOL_KEY, referral(i))
        };
        tasks.spawn(async move { (i, post(&base, key, &bundle).await) });
    }
    let answers = tasks.join_all().await;
    for (i, status) in &answers {
        let expected = if i % 12 == 0 { 403 } else { 200 };
        assert_eq!(*status, expected, "submission {i}");
    }
    for (i, _) in answers.iter().filter(|(i, _)| i % 12 != 0) {
        let (status, _) = get(
            &gateway,
            SCHOOL_KEY,
            &format!("/fhir/ServiceRequest/sr-{i}"),
        )
        .await;
        assert_eq!(status, 200, "sr-{i} was acknowledged, so it is stored");
    }
    let (_, kept) = get(&gateway, SCHOOL_KEY, "/fhir/ServiceRequest/sr-10000").await;
    assert_eq!(
        kept["status"], "active",
        "the refused overwrite left nothing"
    );
    let page = client()
        .get(format!("{}/metrics", gateway.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (batches, stored) = (
        metric(&page, "onedoor_group_commit_size_count"),
        metric(&page, "onedoor_group_commit_size_sum"),
    );
    eprintln!("group commit: {stored} submissions stored in {batches} transactions");
    assert!(stored >= 88.0, "{page}");
    assert!(
        batches < stored,
        "some transactions held several submissions"
    );
    // On SQLite the committer has a thread of its own (BENCHMARKS.md, eleventh round); on PostgreSQL it
    // is a task of the server's runtime, whose connections it uses.
    let committer = gateway
        .thread_names()
        .contains(&"onedoor-commit".to_owned());
    assert_eq!(
        committer,
        gateway.database_url.starts_with("sqlite:"),
        "{:?}",
        gateway.thread_names()
    );
    gateway.assert_audit_chain_intact();
}

/// Copies and changed copies of one referral posted together land in shared transactions: each changed
/// copy is the next version (a submission reads what an earlier one of its batch wrote), an identical copy
/// writes nothing, and the versions are consecutive.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revisions_of_one_referral_posted_together_are_consecutive_versions() {
    let (_agency, url) = receiver(0, 0).await;
    let gateway = Gateway::start(&url, 50).await;
    let variant = |k: usize| {
        let mut bundle = referral(20_000);
        bundle["entry"][0]["resource"]["note"] = json!([{"text": format!("variant {k}")}]);
        bundle
    };
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..30 {
        let (base, bundle) = (gateway.base.clone(), variant(i % 3));
        tasks.spawn(async move { (i, post(&base, SCHOOL_KEY, &bundle).await) });
    }
    for (i, status) in tasks.join_all().await {
        assert_eq!(status, 200, "submission {i}");
    }
    let path = "/fhir/ServiceRequest/sr-20000";
    let (_, current) = get(&gateway, SCHOOL_KEY, path).await;
    let latest: usize = current["meta"]["versionId"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no version: {current}"));
    assert!((1..=30).contains(&latest), "{latest} versions");
    let mut previous = None;
    for version in 1..=latest {
        let (status, body) = get(&gateway, SCHOOL_KEY, &format!("{path}/_history/{version}")).await;
        assert_eq!(status, 200, "version {version}");
        let note = body["note"][0]["text"].clone();
        assert_ne!(
            Some(&note),
            previous.as_ref(),
            "version {version} repeats the one before"
        );
        previous = Some(note);
    }
    assert_eq!(previous.as_ref(), Some(&current["note"][0]["text"]));
    let (status, _) = get(
        &gateway,
        SCHOOL_KEY,
        &format!("{path}/_history/{}", latest + 1),
    )
    .await;
    assert_eq!(status, 404, "no version after the latest");
    gateway.assert_audit_chain_intact();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kill_in_the_middle_of_a_burst_loses_no_acknowledged_referral() {
    let (_agency, url) = receiver(0, 0).await;
    let mut gateway = Gateway::start(&url, 50).await;
    let base = gateway.base.clone();
    let room = Arc::new(Semaphore::new(32));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..400 {
        let (base, room) = (base.clone(), room.clone());
        tasks.spawn(async move {
            let _turn = room.acquire_owned().await.unwrap();
            (i, post(&base, SCHOOL_KEY, &referral(i)).await)
        });
    }
    // Kill once about a third have been answered.
    let mut answers = Vec::new();
    while let Some(answer) = tasks.join_next().await {
        answers.push(answer.unwrap());
        if answers.len() == 130 {
            gateway.kill9();
            break;
        }
    }
    answers.extend(tasks.join_all().await);
    let acknowledged: Vec<usize> = answers
        .iter()
        .filter(|(_, status)| *status == 200)
        .map(|(i, _)| *i)
        .collect();
    let cut: Vec<u16> = answers
        .iter()
        .map(|(_, s)| *s)
        .filter(|s| *s != 200)
        .collect();
    assert!(
        acknowledged.len() >= 130,
        "{} acknowledged",
        acknowledged.len()
    );
    assert!(
        cut.iter().all(|s| *s == 0),
        "only cut connections besides 200: {cut:?}"
    );
    gateway.restart();
    for i in &acknowledged {
        let (status, _) = get(
            &gateway,
            SCHOOL_KEY,
            &format!("/fhir/ServiceRequest/sr-{i}"),
        )
        .await;
        assert_eq!(status, 200, "sr-{i} was acknowledged before the kill");
    }
    eprintln!(
        "kill -9 in a burst: {} acknowledged, all stored; {} cut off",
        acknowledged.len(),
        cut.len()
    );
    gateway.assert_audit_chain_intact();
}
