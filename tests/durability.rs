//! Accepted means durable: the district uploads 1,000 referrals that consent permits for the county food
//! bank, the gateway answers 202, and the server is killed with SIGKILL at several points of the job (right
//! after the 202, then after the restarted node has run the resumed job for 0.5 s, 1.5 s and 3 s) and
//! started again on the same store each time. At the receiver, every referral arrives exactly once
//! (distinct idempotency keys, each ServiceRequest once) and the job's report ends `done`, saying how often
//! it was resumed.
//!
//! Runs on SQLite by default and on PostgreSQL when `ONEDOOR_TEST_POSTGRES_URL` is set. Each kill point
//! prints one line (referrals acknowledged, delivered, duplicates seen at the receiver) for the record:
//! `cargo test --test durability -- --nocapture` shows them when the test passes.

mod support;

use std::time::{Duration, Instant};
use support::{
    Base, FOOD_BANK, Gateway, Options, SCHOOL_KEY, Tally, assert_done_and_resumed,
    assert_exactly_once, referrals_csv, start_ingest, tally, wait_for_job_and_deliveries,
};

const REFERRALS: usize = 1000;

/// When to kill the server: right after the 202, then after the job has run this long on the restarted
/// node (counted from the first record it commits there, once it has resumed the job).
const KILL_POINTS: [(&str, u64); 4] = [
    ("right after the 202", 0),
    ("0.5 s into the resumed job", 500),
    ("1.5 s into the resumed job", 1500),
    ("3 s into the resumed job", 3000),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1000_referral_job_killed_at_several_points_delivers_every_referral_exactly_once() {
    let (agency, url) = support::receiver(0, 0).await;
    let options = Options {
        claim_lease_ms: 1500,
        ..Options::default()
    };
    let mut gateway = Gateway::start_with(&url, options).await;
    let csv = referrals_csv("REF-2026-D", REFERRALS);
    let job = start_ingest(&gateway, SCHOOL_KEY, UPLOAD, csv).await;
    let mut committed = 0;
    for (point, (label, run_ms)) in KILL_POINTS.into_iter().enumerate() {
        if run_ms > 0 {
            committed = resumed_past(&gateway, &job, committed).await;
            tokio::time::sleep(Duration::from_millis(run_ms)).await;
        }
        committed = records_done(&gateway, &job).await.unwrap_or(committed);
        gateway.kill9();
        let at = format!(
            "kill {} ({label}, {committed} records committed)",
            point + 1
        );
        summary(&at, &tally(&agency, FOOD_BANK));
        gateway.restart();
    }
    let stall = Duration::from_secs(30);
    let (report, seen) =
        wait_for_job_and_deliveries(&gateway, &agency, &job, REFERRALS, stall).await;
    let resumed = support::resumed(&report);
    summary(
        &format!("finished (job {}, resumed {resumed:?})", report["status"]),
        &seen,
    );
    assert_exactly_once(&seen, REFERRALS);
    assert_done_and_resumed(&report);
}

const UPLOAD: &str = "riverside-referrals?filename=referrals-1000.csv";

/// `records_done` of the job's report: the records it has committed.
async fn records_done(node: &impl Base, job: &str) -> Option<u64> {
    support::job(node, SCHOOL_KEY, job).await?["records_done"].as_u64()
}

/// Wait (up to 30 s) until the restarted node has resumed the job and committed a record past
/// `committed`, or the job has ended; returns the records committed then.
async fn resumed_past(node: &impl Base, job: &str, committed: u64) -> u64 {
    let started = Instant::now();
    loop {
        let report = support::job(node, SCHOOL_KEY, job)
            .await
            .unwrap_or_default();
        let done = report["records_done"].as_u64().unwrap_or(0);
        if done > committed || report["status"] == "done" {
            return done;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the restarted node did not resume the job within 30 s ({committed} records committed): {}",
            support::redacted_report(&report)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One line for the closing note: referrals acknowledged, delivered, duplicates seen at the receiver.
fn summary(at: &str, seen: &Tally) {
    eprintln!("{at}: {}", seen.summary(REFERRALS));
}
