//! Several nodes for real: two `onedoor serve` processes, A and B, over one fresh PostgreSQL database, with
//! the example receiver as the county food bank. A consent posted to A permits a referral ingested on B; a
//! revocation posted to A withholds a referral queued on B; killing A (SIGKILL) in the middle of an ingest
//! job or of a delivery batch leaves B to finish, and the receiver gets every referral exactly once
//! (idempotency keys and ServiceRequest ids checked there). Each test ends with `onedoor audit verify
//! --database-url`, which reads both nodes' entries from the store and must find the chain intact.
//!
//! These tests need PostgreSQL (`ONEDOOR_TEST_POSTGRES_URL`, an admin URL: each test creates its own
//! database). Without it each test says it is skipped, or fails when `ONEDOOR_REQUIRE_POSTGRES=1` (CI).

mod support;

use serde_json::Value;
use std::time::{Duration, Instant};
use support::{
    Cluster, Consents, FOOD_BANK, Options, SCHOOL_KEY, assert_done_and_resumed,
    assert_exactly_once, food_bank_consent, ingest, job, outbox, post_bundle, post_consent,
    postgres_or_skip, receiver, referral, referrals_csv, revoke_consent, start_ingest, tally,
    wait_for_job_and_deliveries, wait_until,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consent_posted_to_node_a_permits_a_referral_ingested_on_node_b() {
    if !postgres_or_skip("a_consent_posted_to_node_a_permits_a_referral_ingested_on_node_b") {
        return;
    }
    let (agency, url) = receiver(0, 0).await;
    let options = Options {
        consents: Consents::OtherStudentOnly,
        ..Options::default()
    };
    let cluster = Cluster::start(&url, options).await;
    post_consent(&cluster.a, &food_bank_consent()).await;
    let csv = referrals_csv("REF-2026-A", 1);
    let source = "riverside-referrals?filename=referrals.csv";
    let report = ingest(&cluster.b, SCHOOL_KEY, source, csv).await;
    assert_eq!(report["status"], "done", "the ingest on B ends done");
    delivered_not_withheld(&cluster.b, &agency).await;
    assert_exactly_once(&tally(&agency, FOOD_BANK), 1);
    cluster.gateway.assert_audit_chain_intact();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_posted_to_node_a_withholds_a_referral_queued_on_node_b() {
    if !postgres_or_skip("a_revocation_posted_to_node_a_withholds_a_referral_queued_on_node_b") {
        return;
    }
    // The food bank refuses the first 3 requests: the referral stays queued on B and is retried.
    let (agency, url) = receiver(3, 0).await;
    let options = Options {
        consents: Consents::OtherStudentOnly,
        retry_base_ms: 300,
        ..Options::default()
    };
    let cluster = Cluster::start(&url, options).await;
    let consent = post_consent(&cluster.b, &food_bank_consent()).await;
    let csv = referrals_csv("REF-2026-R", 1);
    let source = "riverside-referrals?filename=referrals.csv";
    let report = ingest(&cluster.b, SCHOOL_KEY, source, csv).await;
    assert_eq!(report["status"], "done", "the ingest on B ends done");
    first_refused_attempt(&cluster.b, &agency).await;
    revoke_consent(&cluster.a, &consent).await;
    let withheld = withheld_on(&cluster.b, &agency).await;
    assert!(
        withheld,
        "node B's outbox shows the food bank's delivery withheld after the revocation on node A"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        tally(&agency, FOOD_BANK).accepted.is_empty(),
        "the food bank never accepted the revoked referral"
    );
    cluster.gateway.assert_audit_chain_intact();
}

/// Wait (up to 20 s) for the referral to reach the food bank, failing the test at once if the outbox
/// shows it withheld (the node that decided did not see the consent posted on the other).
async fn delivered_not_withheld(
    node: &support::Node,
    agency: &onedoor::example_receiver::Receiver,
) {
    let started = Instant::now();
    while tally(agency, FOOD_BANK).accepted.is_empty() {
        let withheld = outbox(node, "withheld").await;
        if let Some(denied) = withheld.iter().find(|d| d["destination"] == "food-bank") {
            panic!(
                "the referral ingested on node B was withheld from the food bank although the consent \
                 posted to node A permits it ({})",
                denied["last_error"]
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "timed out waiting for the referral ingested on node B to reach the food bank"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Wait (up to 20 s) for the food bank to refuse the first attempt to deliver the referral, failing the
/// test if a node withholds it first (it did not see the consent posted on B).
async fn first_refused_attempt(node: &support::Node, agency: &onedoor::example_receiver::Receiver) {
    let started = Instant::now();
    while tally(agency, FOOD_BANK).requests == 0 {
        let withheld = outbox(node, "withheld").await;
        if let Some(early) = withheld.iter().find(|d| d["destination"] == "food-bank") {
            panic!(
                "the referral was withheld before the revocation: a node did not see the consent posted \
                 on node B ({})",
                early["last_error"]
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "timed out waiting for the first delivery attempt to the food bank"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Poll a job on `node` until it reports committed rows (or stops running, or 30 s pass); the last report.
async fn first_progress(node: &support::Node, id: &str) -> Value {
    let started = Instant::now();
    loop {
        let report = job(node, SCHOOL_KEY, id).await.unwrap_or_default();
        let committed = report["records_done"].as_u64().unwrap_or_default() > 0;
        let under_way = matches!(report["status"].as_str(), Some("queued" | "running") | None);
        if committed || !under_way || started.elapsed() > Duration::from_secs(30) {
            return report;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Wait (up to 30 s) until node B's outbox lists a withheld delivery to the food bank; false when the
/// receiver accepts the referral first or time runs out.
async fn withheld_on(node: &support::Node, agency: &onedoor::example_receiver::Receiver) -> bool {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if !tally(agency, FOOD_BANK).accepted.is_empty() {
            return false;
        }
        let withheld = outbox(node, "withheld").await;
        if withheld.iter().any(|d| d["destination"] == "food-bank") {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_node_a_mid_job_leaves_node_b_to_finish_it() {
    if !postgres_or_skip("killing_node_a_mid_job_leaves_node_b_to_finish_it") {
        return;
    }
    const REFERRALS: usize = 600;
    let (agency, url) = receiver(0, 0).await;
    let options = Options {
        claim_lease_ms: 1500,
        ..Options::default()
    };
    // Node B starts only once A is gone: with both running, either may claim the job, and killing A
    // would then interrupt nothing.
    let gateway = support::Gateway::prepare(&url, options).await;
    let mut a = gateway.node("A");
    let csv = referrals_csv("REF-2026-J", REFERRALS);
    let source = "riverside-referrals?filename=referrals-600.csv";
    let id = start_ingest(&a, SCHOOL_KEY, source, csv).await;
    // Kill A as soon as it has committed part of the job (a batch or more), never on a timer: a fast
    // machine finishes a few hundred rows within a fixed delay.
    let before = first_progress(&a, &id).await;
    a.kill9();
    assert_eq!(
        before["status"], "running",
        "node A was killed mid-job: {before}"
    );
    let done = before["records_done"].as_u64().unwrap_or_default();
    assert!(
        done > 0 && done < REFERRALS as u64,
        "node A was killed part-way ({done} of {REFERRALS} rows committed)"
    );
    let stall = Duration::from_secs(30);
    let b = gateway.node("B");
    let (report, seen) = wait_for_job_and_deliveries(&b, &agency, &id, REFERRALS, stall).await;
    eprintln!("node A killed mid-job: {}", seen.summary(REFERRALS));
    assert_exactly_once(&seen, REFERRALS);
    assert_done_and_resumed(&report);
    gateway.assert_audit_chain_intact();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_node_a_mid_delivery_batch_leaves_node_b_to_deliver() {
    if !postgres_or_skip("killing_node_a_mid_delivery_batch_leaves_node_b_to_deliver") {
        return;
    }
    const REFERRALS: usize = 60;
    // A slow food bank: each answer takes 100 ms, so the batch is in flight when A dies.
    let (agency, url) = receiver(0, 100).await;
    let options = Options {
        claim_lease_ms: 1500,
        ..Options::default()
    };
    let mut cluster = Cluster::start(&url, options).await;
    for i in 0..REFERRALS {
        let response = post_bundle(&cluster.a, SCHOOL_KEY, &referral(2000 + i)).await;
        assert!(response.status().is_success(), "referral {i} acknowledged");
    }
    wait_until("the first deliveries", Duration::from_secs(20), || {
        tally(&agency, FOOD_BANK).accepted.len() >= 5
    })
    .await;
    cluster.a.kill9();
    let at_kill = tally(&agency, FOOD_BANK).distinct_requests().len();
    assert!(
        at_kill < REFERRALS,
        "node A was killed mid-batch ({at_kill} of {REFERRALS} delivered)"
    );
    wait_until(
        "node B to deliver the rest",
        Duration::from_secs(60),
        || tally(&agency, FOOD_BANK).distinct_requests().len() >= REFERRALS,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let seen = tally(&agency, FOOD_BANK);
    eprintln!(
        "node A killed mid-batch ({at_kill} delivered): {}",
        seen.summary(REFERRALS)
    );
    assert_exactly_once(&seen, REFERRALS);
    cluster.gateway.assert_audit_chain_intact();
}
