//! Randomized fault schedules: the token endpoint (500, 503, timeouts), Gmail (401, 429,
//! 503, timeouts) and SSM (throttling, 5xx, timeouts, on read and on write) fail in random
//! combinations. Every run must end in success or a typed error, before its deadline, with
//! a valid refresh token still stored. Timeouts and backoff are scaled down (see
//! `World::refresh_app_via`); the code paths are the production ones.
//!
//! `FAULT_SCHEDULES` sets the number of schedules (default 1,000; `make fuzz` runs more).

use chrono::Utc;
use gmail_oauth::deadline::Deadline;
use integration_tests::fake_google::Fault;
use integration_tests::ssm_proxy::{SsmFault, SsmProxy};
use integration_tests::{World, minutes_from_now, moto};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};

const WORKERS: u64 = 8;
const DEADLINE: Duration = Duration::from_millis(3500);
/// A save is a write and a check (each at most 600 ms with the fast client) and a repair.
const SAVE_RESERVE: Duration = Duration::from_millis(1400);
const SLOW: Duration = Duration::from_millis(200);

#[derive(Default, Debug)]
struct Tally {
    schedules: usize,
    succeeded: usize,
    upstream: usize,
    reauthorize: usize,
    refreshed_and_stored: usize,
    faults_injected: usize,
    slowest: Duration,
}

/// Injects a random set of faults; returns how many.
fn inject(rng: &mut StdRng, world: &World, proxy: &SsmProxy) -> usize {
    let mut count = 0;
    for _ in 0..rng.gen_range(0..=3) {
        let fault = match rng.gen_range(0..3) {
            0 => Fault::Status(500),
            1 => Fault::Status(503),
            _ => Fault::Delay(SLOW),
        };
        world.google.inject_token_fault(fault);
        count += 1;
    }
    for _ in 0..rng.gen_range(0..=4) {
        let fault = match rng.gen_range(0..4) {
            0 => Fault::Status(401),
            1 => Fault::Status(503),
            2 => Fault::TooManyRequests {
                retry_after_secs: 0,
            },
            _ => Fault::Delay(SLOW),
        };
        world.google.inject_gmail_fault(fault);
        count += 1;
    }
    for _ in 0..rng.gen_range(0..=3) {
        let operation = ["GetParameters", "PutParameter", "*"][rng.gen_range(0..3)];
        let fault = match rng.gen_range(0..4) {
            0 => SsmFault::Throttle,
            1 => SsmFault::Status(500),
            2 => SsmFault::CommitThenLose,
            _ => SsmFault::Delay(SLOW),
        };
        proxy.inject(operation, fault);
        count += 1;
    }
    count
}

async fn worker(index: u64, count: u64) -> Tally {
    let world = World::new(&format!("faults-{index}")).await;
    let proxy = SsmProxy::start(&moto::moto().endpoint).await;
    let refresh = world.refresh_app_via(&proxy, &[]).await;
    let mut rng = StdRng::seed_from_u64(0x5eed_0000 + index);
    let mut tally = Tally::default();
    for schedule in 0..count {
        world.google.clear_faults();
        proxy.clear();
        let expiry = if rng.gen_bool(0.6) { -5 } else { 30 };
        let (refresh_token, _) = world
            .seed_token("me@example.com", minutes_from_now(expiry))
            .await;
        tally.faults_injected += inject(&mut rng, &world, &proxy);

        let started = Instant::now();
        let deadline = Deadline {
            at: tokio::time::Instant::now() + DEADLINE,
            save_reserve: SAVE_RESERVE,
        };
        let result = refresh
            .run_until(Utc::now(), Some(deadline))
            .await
            .map(gmail_refresh::Output::summary);
        let elapsed = started.elapsed();
        tally.slowest = tally.slowest.max(elapsed);
        assert!(
            elapsed < DEADLINE + Duration::from_millis(250),
            "schedule {index}/{schedule} took {elapsed:?}"
        );

        match result {
            Ok(summary) => {
                tally.succeeded += 1;
                assert_eq!(summary.message_count, 3);
                let stored = world.stored_token().await.unwrap();
                if summary.token_refreshed && stored["expiry"] == summary.expires_at.as_str() {
                    tally.refreshed_and_stored += 1;
                }
            }
            Err(error) => {
                let diagnostic = lambda_runtime::Diagnostic::from(error);
                match diagnostic.error_type.as_str() {
                    "Upstream" => tally.upstream += 1,
                    // Two injected 401s in a row look exactly like a revoked grant.
                    "ReauthorizationRequired" => tally.reauthorize += 1,
                    other => panic!(
                        "schedule {index}/{schedule}: unexpected {other}: {}",
                        diagnostic.error_message
                    ),
                }
            }
        }
        // Whatever happened, the stored token is one Google still accepts.
        let stored = world
            .stored_token()
            .await
            .expect("the token is never deleted");
        assert_eq!(
            stored["refresh_token"],
            refresh_token.as_str(),
            "schedule {index}/{schedule}"
        );
        assert!(world.google.is_valid_refresh_token(&refresh_token));
        tally.schedules += 1;
    }
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_schedule_ends_typed_in_time_and_keeps_a_valid_refresh_token() {
    let total = integration_tests::fault_schedules();
    let mut tally = Tally::default();
    for part in integration_tests::across_workers(WORKERS, total, worker).await {
        tally.schedules += part.schedules;
        tally.succeeded += part.succeeded;
        tally.upstream += part.upstream;
        tally.reauthorize += part.reauthorize;
        tally.refreshed_and_stored += part.refreshed_and_stored;
        tally.faults_injected += part.faults_injected;
        tally.slowest = tally.slowest.max(part.slowest);
    }
    println!("fault schedules: {tally:?}");
    assert!(tally.schedules as u64 >= total);
    assert_eq!(
        tally.schedules,
        tally.succeeded + tally.upstream + tally.reauthorize
    );
    // The mix is real: some runs succeed through faults, some give up with Upstream.
    assert!(tally.succeeded > 0 && tally.upstream > 0, "{tally:?}");
}
