//! Shared-quota benchmark: the latency one token adds when Redis enforces
//! the quota, against the in-process limiter, on a local `redis-server`
//! (Debian's package) started on a free loopback port. Writes
//! `docs/benchmarks/redis-quota.md`.
//!
//! The limits are set so high that no acquisition waits for a token, so
//! the figures are the cost of the decision itself: a mutex and governor's
//! check in-process, one Lua script round trip to Redis when shared.
//!
//! Run: `cargo bench --bench redis_quota` (about 10 s). `REDIS_BENCH_TOKENS`
//! changes the number of sequential acquisitions per case.

// The benchmark uses only part of the test helper.
#[allow(dead_code)]
#[path = "../tests/common/redis_server.rs"]
mod redis_server;

use std::sync::Arc;
use std::time::Duration;

use intezer_dynamic::config::Secret;
use intezer_dynamic::quota::{
    CallCost, QuotaGuard, QuotaSettings, SharedQuotaSettings, SharedState,
};
use tokio::time::Instant;

use redis_server::RedisServer;

/// Tasks that acquire at once in the concurrent cases.
const CONCURRENT_TASKS: usize = 16;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// Limits no acquisition of the benchmark reaches: 100,000 requests a
/// second with a burst of a million.
fn unreachable_limits() -> QuotaSettings {
    QuotaSettings {
        requests_per_minute: 6_000_000,
        burst: 1_000_000,
        file_scans_per_day: 1_000_000_000,
        ..QuotaSettings::default()
    }
}

/// Latency figures of one case, in microseconds.
struct Latency {
    p50: f64,
    p99: f64,
    mean: f64,
}

fn latency(mut samples: Vec<Duration>) -> Latency {
    samples.sort();
    let micros = |duration: Duration| duration.as_secs_f64() * 1e6;
    let at = |quantile: f64| {
        let index = ((samples.len() as f64 - 1.0) * quantile).round() as usize;
        micros(samples[index])
    };
    let total: Duration = samples.iter().sum();
    Latency {
        p50: at(0.5),
        p99: at(0.99),
        mean: micros(total) / samples.len() as f64,
    }
}

/// Times `tokens` acquisitions made one after another.
async fn sequential(guard: &QuotaGuard, cost: CallCost, tokens: u64) -> Latency {
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut samples = Vec::with_capacity(tokens as usize);
    for _ in 0..tokens {
        let started = std::time::Instant::now();
        let permit = guard.acquire(cost, 0, deadline).await;
        samples.push(started.elapsed());
        assert!(permit.is_ok(), "{permit:?}");
    }
    latency(samples)
}

/// Returns the tokens per second that `CONCURRENT_TASKS` tasks, spread
/// over `guards`, acquire in total.
async fn concurrent(guards: &[Arc<QuotaGuard>], tokens: u64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(600);
    let per_task = tokens / CONCURRENT_TASKS as u64;
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..CONCURRENT_TASKS)
        .map(|index| {
            let guard = guards[index % guards.len()].clone();
            tokio::spawn(async move {
                for _ in 0..per_task {
                    let permit = guard.acquire(CallCost::Free, 0, deadline).await;
                    assert!(permit.is_ok(), "{permit:?}");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    (per_task * CONCURRENT_TASKS as u64) as f64 / started.elapsed().as_secs_f64()
}

async fn shared_guard(redis: &RedisServer, api_key: &str) -> Arc<QuotaGuard> {
    let settings = SharedQuotaSettings::new(Secret::new(redis.url()), &Secret::new(api_key), 3);
    let guard = QuotaGuard::shared(unreachable_limits(), settings).expect("valid settings");
    let state = guard
        .shared_backend()
        .expect("a shared guard")
        .wait_for_state(Duration::from_secs(10), |state| {
            state != SharedState::Connecting
        })
        .await;
    assert_eq!(state, SharedState::Shared, "Redis did not connect");
    Arc::new(guard)
}

fn command_output(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .unwrap_or_default()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let tokens = env_number("REDIS_BENCH_TOKENS", 20_000);
    // Other work on the machine shows in the tail latencies, so the report
    // states the load average at the start (Linux only).
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".to_string());
    let Some(redis) = RedisServer::start() else {
        return;
    };

    let local = QuotaGuard::new(unreachable_limits()).expect("valid settings");
    let local_free = sequential(&local, CallCost::Free, tokens).await;
    let local_scan = sequential(&local, CallCost::FileScan, tokens).await;
    let local_guards = vec![Arc::new(local)];
    let local_rate = concurrent(&local_guards, tokens).await;

    let shared = shared_guard(&redis, "bench-key-sequential").await;
    let shared_free = sequential(&shared, CallCost::Free, tokens).await;
    let shared_scan = sequential(&shared, CallCost::FileScan, tokens).await;
    let one_container = concurrent(std::slice::from_ref(&shared), tokens).await;
    let mut containers = Vec::new();
    for _ in 0..3 {
        containers.push(shared_guard(&redis, "bench-key-concurrent").await);
    }
    let three_containers = concurrent(&containers, tokens).await;

    let commit = command_output("git", &["rev-parse", "--short", "HEAD"]);
    let redis_version = command_output("redis-server", &["--version"]);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let row = |case: &str, figures: &Latency| {
        format!(
            "| {case} | {:.1} | {:.1} | {:.1} |\n",
            figures.p50, figures.p99, figures.mean
        )
    };
    let report = format!(
        "# Shared quota (Redis) benchmark\n\n\
         Command: `cargo bench --bench redis_quota` (REDIS_BENCH_TOKENS={tokens}).\n\
         Commit: `{commit}`. Machine: {cores} cores, shared with other work (1-minute load \
         average {load} at the start); Redis on loopback ({redis_version}).\n\n\
         Each case acquires {tokens} tokens one after another from one guard whose limits are \
         never reached, so no acquisition waits for a token: the figures are the cost of the \
         decision. In-process, that is a mutex and governor's check; shared, one Lua script \
         round trip to Redis.\n\n\
         | Acquisition | p50 (µs) | p99 (µs) | mean (µs) |\n|---|---|---|---|\n\
         {}{}{}{}\n\
         Added latency per token when shared: {:.1} µs at the median, {:.1} µs at p99 \
         (free calls), {:.1} µs and {:.1} µs (file scans).\n\n\
         Throughput with {CONCURRENT_TASKS} tasks acquiring at once:\n\n\
         | Setup | tokens/s |\n|---|---|\n\
         | in-process, one guard | {local_rate:.0} |\n\
         | shared, one container | {one_container:.0} |\n\
         | shared, three containers on one Redis | {three_containers:.0} |\n\n\
         One container requests from Redis only the token of the head of its queue, so its \
         shared tokens are served one round trip at a time; Intezer's rates are counted in requests per minute, \
         far below these figures.\n",
        row("in-process, free call", &local_free),
        row("in-process, file scan", &local_scan),
        row("shared, free call", &shared_free),
        row("shared, file scan", &shared_scan),
        shared_free.p50 - local_free.p50,
        shared_free.p99 - local_free.p99,
        shared_scan.p50 - local_scan.p50,
        shared_scan.p99 - local_scan.p99,
    );
    println!("{report}");
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/benchmarks/redis-quota.md");
    if let Err(err) = std::fs::write(&path, &report) {
        eprintln!("cannot write {}: {err}", path.display());
    }
}
