//! `make bench` (events): what publishing new mail as events costs, side by side with the
//! list-and-get summary the run makes without `EVENT_BUS_NAME`, in the same run of the
//! benchmark. The `gmail-refresh` release binary under a Lambda Runtime API, moto (SSM,
//! EventBridge → SQS) behind the proxy enforcing Parameter Store's default quotas, the fake
//! Google; 20 ms added to every call of both.
//!
//! 1. Steady state, nothing new, 1 and 1,000 mailboxes (valid tokens, 25 unread messages
//!    each): Gmail calls and quota units, SSM reads and writes, `PutEvents` calls, per run.
//! 2. 25 new messages in one mailbox: wall time with and without the 20 ms, sequential
//!    round trips, `PutEvents` calls; the publish latency is the run's wall time (every
//!    message had arrived when it started).
//!
//! `EVENTS_SIZES=1` runs fewer mailboxes.

use integration_tests::benchmarks::{machine, write_section};
use integration_tests::events::scheduled_event;
use integration_tests::fake_google::FakeMessage;
use integration_tests::runtime_api::{FunctionProcess, release_binary};
use integration_tests::ssm_proxy::SsmProxy;
use integration_tests::subscriber::Subscriber;
use integration_tests::{World, minutes_from_now, moto};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

const LATENCY: Duration = Duration::from_millis(20);
const TIMEOUT: Duration = Duration::from_secs(900);

struct Row {
    label: String,
    wall: Duration,
    gmail: usize,
    units: usize,
    gets: usize,
    reads: usize,
    writes: usize,
    put_events: usize,
    published: u64,
}

struct Setup {
    world: World,
    proxy: SsmProxy,
    subscriber: Subscriber,
}

async fn setup(name: &str, n: usize) -> Setup {
    let world = World::new(name).await;
    world.google.set_messages(25);
    // One list page of up to 500, as Gmail pages.
    world.google.set_page_size_cap(500);
    world.seed_mailboxes(n, minutes_from_now(50)).await;
    let proxy = SsmProxy::start(&moto::moto().endpoint).await;
    proxy.set_quotas(40.0, 3.0);
    let subscriber = Subscriber::start(name).await;
    Setup {
        world,
        proxy,
        subscriber,
    }
}

async fn function(setup: &Setup, events: bool, extra: &[(&str, &str)]) -> FunctionProcess {
    let mut pairs = vec![
        setup.world.many(),
        ("SSM_WRITE_TPS", "3"),
        ("SSM_READ_TPS", "20"),
        ("AWS_ENDPOINT_URL", setup.proxy.endpoint.as_str()),
    ];
    if events {
        pairs.push(("EVENT_BUS_NAME", setup.subscriber.bus.as_str()));
    }
    pairs.extend_from_slice(extra);
    let function =
        FunctionProcess::start(release_binary("gmail-refresh"), setup.world.env(&pairs)).await;
    function.api.set_timeout(TIMEOUT);
    function
}

/// One invocation, measured.
async fn measure(setup: &Setup, function: &FunctionProcess, label: String) -> Row {
    let google = &setup.world.google;
    let (gmail, units, gets) = (
        google.gmail_requests(),
        google.quota_units(),
        google.get_requests(),
    );
    let before = setup.proxy.counts();
    let puts = put_events(&setup.proxy);
    let started = Instant::now();
    let report = function
        .api
        .invoke_within(scheduled_event(), TIMEOUT + Duration::from_secs(60))
        .await
        .response();
    let wall = started.elapsed();
    let after = setup.proxy.counts();
    let put_calls = put_events(&setup.proxy) - puts;
    assert_eq!(
        report["totals"]["ok"], report["totals"]["mailboxes"],
        "{report}"
    );
    Row {
        label,
        wall,
        gmail: google.gmail_requests() - gmail,
        units: google.quota_units() - units,
        gets: google.get_requests() - gets,
        // PutEvents goes through the same proxy; it is not an SSM read.
        reads: after.reads - before.reads - put_calls,
        writes: after.writes - before.writes,
        put_events: put_calls,
        published: report["totals"]["events_published"]
            .as_u64()
            .unwrap_or_default(),
    }
}

fn put_events(proxy: &SsmProxy) -> usize {
    proxy
        .requests()
        .iter()
        .filter(|o| o.as_str() == "PutEvents")
        .count()
}

async fn steady(n: usize) -> (Row, Row) {
    let setup = setup(&format!("events-steady-{n}"), n).await;
    setup.proxy.set_latency(LATENCY);
    setup.world.google.set_latency(LATENCY);
    let summary = function(&setup, false, &[]).await;
    let list_and_get = measure(&setup, &summary, format!("{n}: list and get (no events)")).await;
    let events = function(&setup, true, &[]).await;
    // The first run with events starts the checkpoints; the second is the steady state.
    measure(&setup, &events, "first".into()).await;
    let quiet = measure(&setup, &events, format!("{n}: events, nothing new")).await;
    assert_eq!(quiet.published, 0);
    (list_and_get, quiet)
}

async fn burst() -> (Row, Row) {
    let setup = setup("events-burst", 1).await;
    let events = function(&setup, true, &[]).await;
    measure(&setup, &events, "first".into()).await;
    // Five of each, alternating; the row kept is the median wall time.
    let mut runs: [Vec<Row>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..5 {
        for (slot, latency) in [Duration::ZERO, LATENCY].into_iter().enumerate() {
            for n in 0..25 {
                setup.world.google.deliver(FakeMessage::numbered(500 + n));
            }
            setup.proxy.set_latency(latency);
            setup.world.google.set_latency(latency);
            let label = format!("25 new, +{} ms per call (median of 5)", latency.as_millis());
            let row = measure(&setup, &events, label).await;
            assert_eq!(row.published, 25);
            assert_eq!(setup.subscriber.receive().await.len(), 25);
            runs[slot].push(row);
        }
    }
    let [mut fast, mut slow] = runs;
    for rows in [&mut fast, &mut slow] {
        rows.sort_by_key(|r| r.wall);
    }
    (fast.swap_remove(2), slow.swap_remove(2))
}

fn line(table: &mut String, r: &Row) {
    let _ = writeln!(
        table,
        "| {} | {:.0} | {} | {} | {} | {} | {} | {} | {} |",
        r.label,
        r.wall.as_secs_f64() * 1000.0,
        r.gmail,
        r.gets,
        r.units,
        r.reads,
        r.writes,
        r.put_events,
        r.published
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sizes: Vec<usize> = std::env::var("EVENTS_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 1000]);
    let mut table = String::new();
    let _ = writeln!(
        table,
        "| run | wall ms | Gmail calls | messages.get | Gmail units | SSM reads | SSM writes | PutEvents | events |"
    );
    let _ = writeln!(table, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut ratios = String::new();
    for n in sizes {
        let (list, quiet) = steady(n).await;
        eprintln!(
            "N = {n}: list-and-get {} units, events {} units",
            list.units, quiet.units
        );
        line(&mut table, &list);
        line(&mut table, &quiet);
        let _ = writeln!(
            ratios,
            "- {n} mailbox(es), nothing new: {:.0}× fewer Gmail quota units ({} against {}), {:.1}× fewer Gmail calls, {} SSM writes.",
            list.units as f64 / quiet.units.max(1) as f64,
            quiet.units,
            list.units,
            list.gmail as f64 / quiet.gmail.max(1) as f64,
            quiet.writes
        );
    }
    let (fast, slow) = burst().await;
    line(&mut table, &fast);
    line(&mut table, &slow);
    let round_trips = (slow.wall.as_secs_f64() - fast.wall.as_secs_f64()) / LATENCY.as_secs_f64();
    let _ = writeln!(
        ratios,
        "- 25 new messages in one mailbox: {:.1} sequential round trips (the 25 metadata requests go out together; {} `PutEvents` calls of at most 10), published {:.0} ms after the run started with 20 ms per call ({:.0} ms without).",
        round_trips,
        slow.put_events,
        slow.wall.as_secs_f64() * 1000.0,
        fast.wall.as_secs_f64() * 1000.0
    );
    println!("{table}\n{ratios}");
    let date = chrono::Utc::now().format("%Y-%m-%d");
    write_section(
        "events",
        &format!(
            "## New mail as events, against list-and-get\n\nWritten by `make bench` on {date}, on {}. \
             The `gmail-refresh` release binary under a Lambda Runtime API with `MAILBOXES_PATH`; moto (SSM, \
             EventBridge delivering to SQS) behind the proxy enforcing Parameter Store's default quotas (40 reads, \
             3 writes a second); the fake Google. Steady state: valid tokens, 25 unread messages per mailbox, \
             nothing new; \"list and get\" is the run without `EVENT_BUS_NAME` (the summary of `GMAIL_QUERY`, \
             `MAX_MESSAGES` 25), \"events\" the second run with it (the first starts the checkpoints). \
             20 ms are added to every call unless the row says otherwise. SSM reads are pages of the path \
             (tokens and checkpoints in one listing) and the client secrets.\n\n{table}\n{ratios}",
            machine()
        ),
    );
}
