//! `make bench`: the `gmail-refresh` release binary (A) against what a user would write
//! instead in Python (B, `tests/python/bench_python.py`: boto3, google-auth,
//! google-api-python-client), doing the same work against the same moto and fake Google:
//! read the token, refresh it, write it, list 25 messages, get their metadata.
//!
//! Cold runs alternate A and B; each is a whole process. With 20 ms added to every call of
//! the fakes (Google and SSM), the extra wall time over 20 ms is the number of sequential
//! round trips on the critical path. The warm path is 100 invocations in one A process.
//! Prints a table and writes it to its section of BENCHMARKS.md. A benchmark, not a test.

use integration_tests::benchmarks::{machine, write_section};
use integration_tests::events::scheduled_event;
use integration_tests::runtime_api::{FunctionProcess, release_binary};
use integration_tests::ssm_proxy::SsmProxy;
use integration_tests::{World, minutes_from_now, moto};
use std::fmt::Write as _;
use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const RUNS: usize = 5;
const WARM_INVOCATIONS: usize = 100;
const LATENCY: Duration = Duration::from_millis(20);

#[derive(Clone, Copy, Default)]
struct Cold {
    init_ms: f64,
    invocation_ms: f64,
    wall_ms: f64,
    peak_rss_mb: f64,
    /// CPU time of the whole process (user + system), start to answer.
    cpu_ms: f64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn percentile(mut values: Vec<f64>, p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let index = ((values.len() as f64 - 1.0) * p).round() as usize;
    values[index]
}

/// Peak resident memory of a live process (VmHWM), in MB.
fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_default();
    kb / 1024.0
}

/// CPU time the process has used so far, from the scheduler (nanosecond resolution).
fn cpu_ns(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or_default()
}

fn timeval_ms(t: libc::timeval) -> f64 {
    t.tv_sec as f64 * 1000.0 + t.tv_usec as f64 / 1000.0
}

/// The deployment's own pacing (the template's defaults: 20 reads and 2 writes a second),
/// not the tests' unpaced setting: a run of one mailbox must fit in the pacers' burst.
fn env_through(world: &World, proxy: &SsmProxy) -> Vec<(String, String)> {
    world.env(&[
        ("MAX_MESSAGES", "25"),
        ("AWS_ENDPOINT_URL", proxy.endpoint.as_str()),
        ("SSM_READ_TPS", "20"),
        ("SSM_WRITE_TPS", "2"),
    ])
}

/// A: spawn the release binary, wait for its first poll, send one scheduled event.
async fn run_a(world: &World, proxy: &SsmProxy) -> Cold {
    let spawned = Instant::now();
    let function =
        FunctionProcess::start(release_binary("gmail-refresh"), env_through(world, proxy)).await;
    let answer = function.invoke(scheduled_event()).await.response();
    let done = Instant::now();
    assert_eq!(answer["message_count"], 25, "{answer}");
    assert_eq!(answer["token_refreshed"], true);
    let init = function.api.first_poll().unwrap_or(spawned) - spawned;
    let peak = function.pid().map(peak_rss_mb).unwrap_or_default();
    let cpu = function.pid().map(cpu_ns).unwrap_or_default();
    Cold {
        init_ms: ms(init),
        invocation_ms: ms(done - spawned - init),
        wall_ms: ms(done - spawned),
        peak_rss_mb: peak,
        cpu_ms: cpu as f64 / 1e6,
    }
}

/// B: run the Python script to completion; its peak memory comes from wait4's rusage.
#[expect(
    clippy::zombie_processes,
    reason = "the child is reaped by libc::wait4, which also reports its peak RSS"
)]
fn run_b(world: &World, proxy: &SsmProxy) -> Cold {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let spawned_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let spawned = Instant::now();
    let mut child = std::process::Command::new(root.join("../.venv/bin/python"))
        .arg(root.join("python/bench_python.py"))
        .args([world.token_param.as_str(), "25"])
        .env_clear()
        .envs(env_through(world, proxy))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run the Python baseline (make venv)");
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut stdout)
        .expect("read stdout");
    let mut status = 0;
    // SAFETY: rusage is plain data filled in by the kernel; the pid is our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let done = Instant::now();
    assert!(
        waited > 0 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the Python baseline failed"
    );
    let report: serde_json::Value =
        serde_json::from_str(stdout.trim()).expect("the baseline prints JSON");
    assert_eq!(report["message_count"], 25);
    let init_ms =
        (report["imports_done"].as_f64().unwrap_or(spawned_epoch) - spawned_epoch) * 1000.0;
    let wall_ms = ms(done - spawned);
    Cold {
        init_ms,
        invocation_ms: wall_ms - init_ms,
        wall_ms,
        peak_rss_mb: usage.ru_maxrss as f64 / 1024.0,
        cpu_ms: timeval_ms(usage.ru_utime) + timeval_ms(usage.ru_stime),
    }
}

fn medians(runs: &[Cold]) -> Cold {
    let pick = |f: fn(&Cold) -> f64| median(runs.iter().map(f).collect());
    Cold {
        init_ms: pick(|c| c.init_ms),
        invocation_ms: pick(|c| c.invocation_ms),
        wall_ms: pick(|c| c.wall_ms),
        peak_rss_mb: pick(|c| c.peak_rss_mb),
        cpu_ms: pick(|c| c.cpu_ms),
    }
}

fn size(path: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path);
    std::fs::metadata(&path)
        .map(|m| format!("{:.2} MB", m.len() as f64 / 1_000_000.0))
        .unwrap_or_else(|_| "(not built)".into())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let world = World::new("bench").await;
    world.google.set_messages(25);
    // Pages as large as Gmail's: one list call for 25 messages, for A and B alike.
    world.google.set_page_size_cap(500);
    let proxy = SsmProxy::start(&moto::moto().endpoint).await;

    let mut results = Vec::new();
    for latency in [Duration::ZERO, LATENCY] {
        world.google.set_latency(latency);
        proxy.set_latency(latency);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..RUNS {
            world
                .seed_token("me@example.com", minutes_from_now(-5))
                .await;
            a.push(run_a(&world, &proxy).await);
            world
                .seed_token("me@example.com", minutes_from_now(-5))
                .await;
            let (w, p) = (&world, &proxy);
            b.push(tokio::task::block_in_place(|| run_b(w, p)));
        }
        results.push((medians(&a), medians(&b)));
        eprintln!(
            "latency {latency:?}: A {:.1} ms, B {:.1} ms",
            results.last().map(|r| r.0.wall_ms).unwrap_or_default(),
            results.last().map(|r| r.1.wall_ms).unwrap_or_default()
        );
    }
    world.google.set_latency(Duration::ZERO);
    proxy.set_latency(Duration::ZERO);

    // Warm: one process, a valid token, 100 invocations back to back. Unpaced: a hundred
    // runs a few milliseconds apart would wait for the read quota's pacing (20 a second),
    // which a schedule never reaches; this measures the invocation's own time.
    world
        .seed_token("me@example.com", minutes_from_now(50))
        .await;
    let mut unpaced = env_through(&world, &proxy);
    unpaced.retain(|(name, _)| !name.starts_with("SSM_") || !name.ends_with("_TPS"));
    unpaced.push(("SSM_READ_TPS".into(), "10000".into()));
    let function = FunctionProcess::start(release_binary("gmail-refresh"), unpaced).await;
    let pid = function.pid().unwrap_or_default();
    function.invoke(scheduled_event()).await.response();
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..WARM_INVOCATIONS {
        let (started, cpu_before) = (Instant::now(), cpu_ns(pid));
        let answer = function.invoke(scheduled_event()).await.response();
        wall.push(ms(started.elapsed()));
        cpu.push((cpu_ns(pid) - cpu_before) as f64 / 1e6);
        assert_eq!(answer["message_count"], 25);
    }
    drop(function);

    let (a0, b0) = results[0];
    let (a20, b20) = results[1];
    let trips = |slow: &Cold, fast: &Cold| (slow.wall_ms - fast.wall_ms) / ms(LATENCY);
    let mut table = String::new();
    let _ = writeln!(
        table,
        "| run | init ms | invocation ms | wall ms | CPU ms | peak RSS MB | round trips |"
    );
    let _ = writeln!(table, "|---|---:|---:|---:|---:|---:|---:|");
    for (name, fast, slow) in [
        ("A: gmail-refresh (Rust)", a0, a20),
        ("B: Python baseline", b0, b20),
    ] {
        let _ = writeln!(
            table,
            "| {name} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
            fast.init_ms,
            fast.invocation_ms,
            fast.wall_ms,
            fast.cpu_ms,
            fast.peak_rss_mb,
            trips(&slow, &fast)
        );
    }
    for (name, r) in [("A, +20 ms per call", a20), ("B, +20 ms per call", b20)] {
        let _ = writeln!(
            table,
            "| {name} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | |",
            r.init_ms, r.invocation_ms, r.wall_ms, r.cpu_ms, r.peak_rss_mb
        );
    }
    let _ = writeln!(
        table,
        "\n| ratio B/A | init | invocation | wall | CPU | peak RSS | round trips |"
    );
    let _ = writeln!(table, "|---|---:|---:|---:|---:|---:|---:|");
    let _ = writeln!(
        table,
        "| no added latency | {:.1}× | {:.1}× | {:.1}× | {:.1}× | {:.1}× | {:.1}× |",
        b0.init_ms / a0.init_ms,
        b0.invocation_ms / a0.invocation_ms,
        b0.wall_ms / a0.wall_ms,
        b0.cpu_ms / a0.cpu_ms,
        b0.peak_rss_mb / a0.peak_rss_mb,
        trips(&b20, &b0) / trips(&a20, &a0)
    );
    let _ = writeln!(
        table,
        "| +20 ms per call | | | {:.1}× | | | |",
        b20.wall_ms / a20.wall_ms
    );
    let _ = writeln!(
        table,
        "\nWarm path, {WARM_INVOCATIONS} invocations in one process (valid token, 25 messages, no added latency): \
         wall median {:.2} ms, p99 {:.2} ms; CPU time of the function per invocation median {:.2} ms, p99 {:.2} ms.",
        median(wall.clone()),
        percentile(wall, 0.99),
        median(cpu.clone()),
        percentile(cpu, 0.99)
    );
    let _ = writeln!(
        table,
        "\nCold with 20 ms per call: A's wall {:.1} ms = {:.1} round trips × 20 ms + {:.1} ms of everything else, \
         of which {:.1} ms is the function's own CPU time (process start included).",
        a20.wall_ms,
        trips(&a20, &a0),
        a20.wall_ms - trips(&a20, &a0) * 20.0,
        a20.cpu_ms
    );
    let _ = writeln!(
        table,
        "\narm64 bootstraps (`cargo lambda build --release --arm64`): gmail-refresh {}, zip {}; oauth-callback {}, zip {}.",
        size("target/lambda/gmail-refresh/bootstrap"),
        size("target/lambda-zip/gmail-refresh/bootstrap.zip"),
        size("target/lambda/oauth-callback/bootstrap"),
        size("target/lambda-zip/oauth-callback/bootstrap.zip"),
    );
    println!("{table}");

    let date = chrono::Utc::now().format("%Y-%m-%d");
    let report = format!(
        "## One mailbox, cold and warm, against Python\n\nWritten by `make bench` on {date}, on {}. Medians of {RUNS} cold runs each, A and B \
         alternating, against the same moto server and fake Google on loopback. A is the `gmail-refresh` release \
         binary (x86_64 here) started as a process under a Lambda Runtime API, one invocation with an expired \
         token and 25 messages; B is `tests/python/bench_python.py` (boto3, google-auth, google-api-python-client \
         with static discovery) doing the same work as one process. Init is process start to the first Runtime API \
         poll (A) or to the end of the imports (B). CPU is the process's user and system time from start to \
         the answer. Round trips are the sequential calls on the critical path: the \
         wall time added by 20 ms per call, divided by 20 ms.\n\n{table}",
        machine()
    );
    write_section("cold", &report);
}
