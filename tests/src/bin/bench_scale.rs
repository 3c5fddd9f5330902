//! `make bench` (scale): one scheduled run of the `gmail-refresh` release binary over N = 1,
//! 10, 100 and 1,000 mailboxes (`MAILBOXES_PATH`), every token expired so every mailbox is
//! refreshed and written back: the worst hour. Against moto behind the SSM proxy enforcing
//! Parameter Store's default quotas (reads 40 a second shared, writes 3 a second), and the
//! fake Google, with 20 ms added to every call of both.
//!
//! For each N: wall time, the bound the quotas and the latency impose, SSM reads and writes,
//! throttles absorbed, Google and Gmail calls, Gmail quota units, mailboxes not reached.
//! `SCALE_SIZES=1,10` runs fewer; `SCALE_READ_TPS` / `SCALE_WRITE_TPS` change the quotas
//! (the run's own pacing, `SSM_WRITE_TPS`, follows the write quota).

use integration_tests::benchmarks::{machine, write_section};
use integration_tests::events::scheduled_event;
use integration_tests::runtime_api::{FunctionProcess, release_binary};
use integration_tests::ssm_proxy::SsmProxy;
use integration_tests::{World, minutes_from_now, moto};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

const LATENCY: Duration = Duration::from_millis(20);
/// The function's timeout in this benchmark (Lambda's longest).
const TIMEOUT: Duration = Duration::from_secs(900);
const CONCURRENCY: usize = 8;
/// Sequential calls of one mailbox's turn: client secrets, the path's first page, the
/// refresh, the list, the metadata (in parallel), the write, its check.
const CHAIN: u32 = 7;

fn env_number(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Row {
    n: usize,
    wall: Duration,
    bound: Duration,
    reads: usize,
    writes: usize,
    throttled: usize,
    google: usize,
    gmail: usize,
    units: usize,
    ok: u64,
    not_reached: u64,
}

async fn one(n: usize, read_tps: f64, write_tps: f64) -> Row {
    let world = World::new(&format!("scale-{n}")).await;
    // Seed directly in moto (not through the proxy: setting up is not the run).
    world.seed_mailboxes(n, minutes_from_now(-5)).await;
    let proxy = SsmProxy::start(&moto::moto().endpoint).await;
    proxy.set_latency(LATENCY);
    proxy.set_quotas(read_tps, write_tps);
    world.google.set_latency(LATENCY);

    let write_pace = write_tps.to_string();
    let concurrency = CONCURRENCY.to_string();
    let env = world.env(&[
        world.many(),
        ("SSM_WRITE_TPS", write_pace.as_str()),
        ("SSM_READ_TPS", "20"),
        ("MAILBOX_CONCURRENCY", concurrency.as_str()),
        ("AWS_ENDPOINT_URL", proxy.endpoint.as_str()),
    ]);
    let function = FunctionProcess::start(release_binary("gmail-refresh"), env).await;
    function.api.set_timeout(TIMEOUT);
    let started = Instant::now();
    let report = function
        .api
        .invoke_within(scheduled_event(), TIMEOUT + Duration::from_secs(60))
        .await
        .response();
    let wall = started.elapsed();
    let counts = proxy.counts();
    let totals = &report["totals"];
    assert_eq!(totals["mailboxes"], n as u64, "{totals}");

    // The bound: one mailbox's chain of calls, plus what the quotas allow beyond their
    // first second's burst.
    let beyond = |calls: usize, rate: f64| (calls as f64 - rate).max(0.0) / rate;
    let quotas = beyond(counts.writes, write_tps).max(beyond(counts.reads, read_tps));
    let bound = LATENCY * CHAIN + Duration::from_secs_f64(quotas);
    Row {
        n,
        wall,
        bound,
        reads: counts.reads,
        writes: counts.writes,
        throttled: counts.throttled,
        google: world.google.refresh_grants(),
        gmail: world.google.gmail_requests(),
        units: world.google.quota_units(),
        ok: totals["ok"].as_u64().unwrap_or_default(),
        not_reached: totals["not_reached"].as_u64().unwrap_or_default(),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sizes: Vec<usize> = std::env::var("SCALE_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 10, 100, 1000]);
    let read_tps = env_number("SCALE_READ_TPS", 40.0);
    let write_tps = env_number("SCALE_WRITE_TPS", 3.0);
    let mut rows = Vec::new();
    for n in sizes {
        let row = one(n, read_tps, write_tps).await;
        eprintln!(
            "N = {n}: {:.1} s (bound {:.1} s), {} ok, {} not reached, {} throttles absorbed",
            row.wall.as_secs_f64(),
            row.bound.as_secs_f64(),
            row.ok,
            row.not_reached,
            row.throttled
        );
        rows.push(row);
    }

    let mut table = String::new();
    let _ = writeln!(
        table,
        "| mailboxes | wall s | bound s | wall / bound | SSM reads | SSM writes | throttles absorbed | Google calls | Gmail calls | Gmail units | ok | not reached |"
    );
    let _ = writeln!(
        table,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in &rows {
        let _ = writeln!(
            table,
            "| {} | {:.1} | {:.1} | {:.2} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.n,
            r.wall.as_secs_f64(),
            r.bound.as_secs_f64(),
            r.wall.as_secs_f64() / r.bound.as_secs_f64(),
            r.reads,
            r.writes,
            r.throttled,
            r.google,
            r.gmail,
            r.units,
            r.ok,
            r.not_reached
        );
    }
    if let Some(big) = rows.iter().max_by_key(|r| r.n) {
        let per = |x: usize| x as f64 / big.n as f64;
        let _ = writeln!(
            table,
            "\nPer mailbox at N = {}: {:.2} SSM reads (the path's pages, one check), {:.2} writes, {:.2} Google calls, {:.2} Gmail calls, {:.1} Gmail quota units. Every count grows linearly with N.",
            big.n,
            per(big.reads),
            per(big.writes),
            per(big.google),
            per(big.gmail),
            per(big.units)
        );
    }
    println!("{table}");
    let date = chrono::Utc::now().format("%Y-%m-%d");
    write_section(
        "scale",
        &format!(
            "## Many mailboxes, one run\n\nWritten by `make bench` on {date}, on {}. One scheduled run of the \
             `gmail-refresh` release binary under a Lambda Runtime API ({}-second timeout) with `MAILBOXES_PATH`, \
             every token expired (each mailbox is refreshed, read and written back: the worst hour), \
             `MAILBOX_CONCURRENCY` {CONCURRENCY}, `SSM_WRITE_TPS` {write_tps}. moto sits behind the SSM proxy \
             enforcing Parameter Store's default quotas as assumptions: {read_tps} reads and {write_tps} writes a \
             second (token buckets, one second's burst; a call over quota gets `ThrottlingException`). Every call to \
             SSM and Google takes 20 ms more. The bound is one mailbox's chain of {CHAIN} sequential calls plus the \
             time the quotas need for the calls made beyond their first second's burst.\n\n{table}",
            machine(),
            TIMEOUT.as_secs()
        ),
    );
}
