//! Accepted means durable: the district uploads 1,000 referrals that consent permits for the county food
//! bank, the gateway answers 202, and the server is killed with SIGKILL at several points of the job (right
//! after the 202, then after it has run 0.5 s, 1.5 s and 3 s since each restart) and started again on the
//! same store each time. At the receiver, every referral arrives exactly once (distinct idempotency keys,
//! each ServiceRequest once) and the job's report ends `done`, saying it was resumed.
//!
//! Runs on SQLite by default and on PostgreSQL when `ONEDOOR_TEST_POSTGRES_URL` is set. Each kill point
//! prints one line (referrals acknowledged, delivered, duplicates seen at the receiver) for the record:
//! `cargo test --test durability -- --nocapture` shows them when the test passes.

mod support;

use std::time::{Duration, Instant};
use support::{
    FOOD_BANK, Gateway, SCHOOL_KEY, Tally, assert_done_and_resumed, assert_exactly_once,
    referrals_csv, start_ingest, tally, wait_for_job_and_deliveries,
};

const REFERRALS: usize = 1000;

/// When to kill the server: how long after the 202 (first point) or after the restart before it.
const KILL_POINTS: [(&str, u64); 4] = [
    ("right after the 202", 0),
    ("0.5 s after the restart", 500),
    ("1.5 s after the restart", 1500),
    ("3 s after the restart", 3000),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1000_referral_job_killed_at_several_points_delivers_every_referral_exactly_once() {
    let (agency, url) = support::receiver(0, 0).await;
    let mut gateway = Gateway::start(&url, 50).await;
    let started = Instant::now();
    let job = start_ingest(
        &gateway,
        SCHOOL_KEY,
        "riverside-referrals?filename=referrals-1000.csv",
        referrals_csv("REF-2026-D", REFERRALS),
    )
    .await;
    for (point, (label, after_ms)) in KILL_POINTS.into_iter().enumerate() {
        tokio::time::sleep(Duration::from_millis(after_ms)).await;
        gateway.kill9();
        let at = format!("kill {} ({label}, {:.1} s)", point + 1, secs(started));
        summary(&at, &tally(&agency, FOOD_BANK));
        gateway.restart();
    }
    let (report, seen) =
        wait_for_job_and_deliveries(&gateway, &agency, &job, REFERRALS, Duration::from_secs(30))
            .await;
    summary(&format!("finished ({:.1} s)", secs(started)), &seen);
    eprintln!(
        "job {}: resumed {:?}",
        report["status"].as_str().unwrap_or("not found"),
        support::resumed(&report)
    );
    assert_exactly_once(&seen, REFERRALS);
    assert_done_and_resumed(&report);
}

/// One line for the closing note: referrals acknowledged, delivered, duplicates seen at the receiver.
fn summary(at: &str, seen: &Tally) {
    eprintln!(
        "{at}: acknowledged {REFERRALS}, delivered {}, duplicates {} (re-sent keys {}, referrals under a second key {})",
        seen.distinct_requests().len(),
        seen.duplicates(),
        seen.repeated_keys,
        seen.accepted.len() - seen.distinct_requests().len(),
    );
}

fn secs(since: Instant) -> f64 {
    since.elapsed().as_secs_f64()
}
