//! Randomized fault schedules for the events: Gmail (5xx, 429, 401, slow answers), a
//! history Gmail no longer keeps (404), `PutEvents` partial failures, throttling, 5xx and
//! answers lost after the events went out, SSM writes of the checkpoint that fail or commit
//! with a lost answer, deadline cuts anywhere, and new mail arriving mid-run. After every
//! run, faulty or not:
//!
//! - the checkpoint never passes a message that was not published;
//! - no event carries a secret, and every event matches the JSON Schema (the subscriber
//!   checks it);
//!
//! and at the end, after runs without faults, every message added with the label after the
//! first checkpoint is in the queue; duplicates only with the same `event_id`.
//!
//! The schedules run on a clock of their own, two hours apart (the fake Google receives
//! mail at that time), so a resynchronisation's one-hour overlap holds what it would in
//! production rather than every message of the test.
//!
//! `FAULT_SCHEDULES` sets the number of schedules (default 1,000; `make fuzz` runs more).

use chrono::Utc;
use gmail_oauth::deadline::Deadline;
use integration_tests::fake_google::{FakeMessage, Fault};
use integration_tests::ssm_proxy::{SsmFault, SsmProxy};
use integration_tests::subscriber::Subscriber;
use integration_tests::{World, minutes_from_now, moto};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

const WORKERS: u64 = 4;
const SLOW: Duration = Duration::from_millis(150);
/// Simulated time between two schedules.
const STEP: chrono::TimeDelta = chrono::TimeDelta::hours(2);

#[derive(Default, Debug)]
struct Tally {
    schedules: usize,
    faults: usize,
    messages: usize,
    events: usize,
    duplicates: usize,
    lost: usize,
    runs_ok: usize,
    runs_failed: usize,
    resynchronised: usize,
    deadline_cuts: usize,
}

fn inject(rng: &mut StdRng, world: &World, proxy: &SsmProxy) -> usize {
    let mut count = 0;
    for _ in 0..rng.gen_range(0..=3) {
        let fault = match rng.gen_range(0..5) {
            0 => Fault::Status(500),
            1 => Fault::Status(503),
            2 => Fault::TooManyRequests {
                retry_after_secs: 0,
            },
            3 => Fault::Status(401),
            _ => Fault::Delay(SLOW),
        };
        world.google.inject_gmail_fault(fault);
        count += 1;
    }
    if rng.gen_bool(0.08) {
        world.google.expire_history();
        count += 1;
    }
    for _ in 0..rng.gen_range(0..=2) {
        let fault = match rng.gen_range(0..5) {
            0 => SsmFault::FailEntries(vec![0, 1, 2]),
            1 => SsmFault::FailEntries(vec![1]),
            2 => SsmFault::Throttle,
            3 => SsmFault::CommitThenLose,
            _ => SsmFault::Status(500),
        };
        proxy.inject("PutEvents", fault);
        count += 1;
    }
    for _ in 0..rng.gen_range(0..=1) {
        let fault = match rng.gen_range(0..3) {
            0 => SsmFault::Throttle,
            1 => SsmFault::Status(500),
            _ => SsmFault::CommitThenLose,
        };
        proxy.inject("PutParameter", fault);
        count += 1;
    }
    count
}

/// The checkpoint's history id as stored.
async fn stored_checkpoint(world: &World) -> u64 {
    let stored = moto::read(&world.ssm, &format!("{}/checkpoint", world.token_param))
        .await
        .expect("a checkpoint after the first run");
    let json: serde_json::Value = serde_json::from_str(&stored.value).expect("JSON");
    json["history_id"]
        .as_str()
        .and_then(|h| h.parse().ok())
        .expect("a history id")
}

/// A run with no fault injected. The clients' timeouts are scaled down (Google 150 ms per
/// attempt, SSM and EventBridge 1 s), and on a loaded two-core machine the fakes and moto,
/// shared by every worker, can take longer: the machine's own fault. Such a run is
/// repeated, as the next schedule would, at most `ATTEMPTS` times; every other outcome
/// fails the test.
async fn run_without_faults(app: &integration_tests::RefreshApp, clock: chrono::DateTime<Utc>) {
    const ATTEMPTS: usize = 5;
    for attempt in 1..=ATTEMPTS {
        match app.run(clock).await {
            Ok(_) => return,
            Err(error) => {
                let diagnostic = lambda_runtime::Diagnostic::from(error);
                assert_eq!(
                    diagnostic.error_type, "Upstream",
                    "a run without faults: {}",
                    diagnostic.error_message
                );
                assert!(
                    attempt < ATTEMPTS,
                    "a run without faults failed {ATTEMPTS} times: {}",
                    diagnostic.error_message
                );
                eprintln!(
                    "a run without faults, attempt {attempt}: {} (repeated)",
                    diagnostic.error_message
                );
            }
        }
    }
}

async fn worker(index: u64, count: u64) -> Tally {
    let world = World::new(&format!("event-faults-{index}")).await;
    let subscriber = Subscriber::start(&format!("f{index}")).await;
    let proxy = SsmProxy::start(&moto::moto().endpoint).await;
    world
        .seed_token("me@example.com", minutes_from_now(50))
        .await;
    let env = [("EVENT_BUS_NAME", subscriber.bus.as_str())];
    let app = world.refresh_app_via_patient(&proxy, &env).await;
    let mut clock = Utc::now();
    world.google.set_clock(clock);
    run_without_faults(&app, clock).await;
    let first = stored_checkpoint(&world).await;
    let mut rng = StdRng::seed_from_u64(0xe7e7_0000 + index);
    let mut tally = Tally::default();
    let mut published: HashMap<String, String> = HashMap::new();
    let mut next = 1000 * (index as usize + 1);
    let receive = async |tally: &mut Tally, published: &mut HashMap<String, String>| {
        for event in subscriber.receive().await {
            tally.events += 1;
            let text = event.envelope.to_string();
            assert!(
                !text.contains("ya29.") && !text.contains("1//"),
                "a token in {text}"
            );
            if let Some(previous) =
                published.insert(event.id().to_owned(), event.event_id().to_owned())
            {
                tally.duplicates += 1;
                assert_eq!(previous, event.event_id(), "a duplicate with another id");
            }
        }
    };
    for schedule in 0..count {
        world.google.clear_faults();
        proxy.clear();
        clock += STEP;
        world.google.set_clock(clock);
        for _ in 0..rng.gen_range(0..=2) {
            next += 1;
            let label = if rng.gen_bool(0.15) { "SPAM" } else { "INBOX" };
            world.google.deliver(FakeMessage {
                labels: vec![label.into()],
                ..FakeMessage::numbered(next)
            });
        }
        for _ in 0..rng.gen_range(0..=1) {
            next += 1;
            world
                .google
                .deliver_during_run(rng.gen_range(0..4), FakeMessage::numbered(next));
        }
        tally.faults += inject(&mut rng, &world, &proxy);
        // Every worker loses its history at least once: the 404 keeps answering until a
        // run resynchronises, so the resynchronisation is always exercised.
        if schedule == count / 2 {
            world.google.expire_history();
            tally.faults += 1;
        }
        // A deadline anywhere from before the first call to well after the last.
        let budget = Duration::from_millis(rng.gen_range(0..900));
        let deadline = Deadline {
            at: tokio::time::Instant::now() + budget,
            save_reserve: Duration::ZERO,
        };
        if budget < Duration::from_millis(300) {
            tally.deadline_cuts += 1;
        }
        match app.run_until(clock, Some(deadline)).await {
            Ok(output) => {
                tally.runs_ok += 1;
                if output.summary().events.is_some_and(|e| e.resynchronised) {
                    tally.resynchronised += 1;
                }
            }
            Err(error) => {
                tally.runs_failed += 1;
                let diagnostic = lambda_runtime::Diagnostic::from(error);
                assert!(
                    ["Upstream", "ReauthorizationRequired"]
                        .contains(&diagnostic.error_type.as_str()),
                    "schedule {index}/{schedule}: {} {}",
                    diagnostic.error_type,
                    diagnostic.error_message
                );
            }
        }
        receive(&mut tally, &mut published).await;
        // The checkpoint never passes a message that was not published.
        let checkpoint = stored_checkpoint(&world).await;
        for (history_id, id) in world.google.history() {
            if history_id > first
                && history_id <= checkpoint
                && world.google.delivered_with("INBOX").contains(&id)
            {
                assert!(
                    published.contains_key(&id),
                    "schedule {index}/{schedule}: checkpoint {checkpoint} passed {id} ({history_id}), never published"
                );
            }
        }
        tally.schedules += 1;
    }
    // Without faults, everything arrives.
    world.google.clear_faults();
    proxy.clear();
    for _ in 0..3 {
        clock += STEP;
        world.google.set_clock(clock);
        run_without_faults(&app, clock).await;
    }
    receive(&mut tally, &mut published).await;
    let inbox: HashSet<String> = world.google.delivered_with("INBOX").into_iter().collect();
    for (history_id, id) in world.google.history() {
        if history_id > first && inbox.contains(&id) {
            tally.messages += 1;
            if !published.contains_key(&id) {
                tally.lost += 1;
            }
        }
    }
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_fault_schedule_loses_a_message_or_moves_the_checkpoint_past_one() {
    let total = integration_tests::fault_schedules();
    let mut tally = Tally::default();
    for part in integration_tests::across_workers(WORKERS, total, worker).await {
        tally.schedules += part.schedules;
        tally.faults += part.faults;
        tally.messages += part.messages;
        tally.events += part.events;
        tally.duplicates += part.duplicates;
        tally.lost += part.lost;
        tally.runs_ok += part.runs_ok;
        tally.runs_failed += part.runs_failed;
        tally.resynchronised += part.resynchronised;
        tally.deadline_cuts += part.deadline_cuts;
    }
    println!("event fault schedules: {tally:?}");
    assert!(tally.schedules as u64 >= total);
    assert_eq!(tally.lost, 0, "{tally:?}");
    assert!(
        tally.messages > 0 && tally.runs_ok > 0 && tally.runs_failed > 0,
        "{tally:?}"
    );
    assert!(tally.resynchronised > 0, "the 404 path ran: {tally:?}");
}
