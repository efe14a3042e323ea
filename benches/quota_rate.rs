//! Rate-limit benchmark: one quota guard set to a request rate, twice that
//! demand, for a while, against the embedded Intezer simulator on loopback.
//! It checks that no 60 s window holds more requests than the rate allows
//! and measures how much of the rate is used, then writes
//! `docs/benchmarks/quota-rate.md`.
//!
//! Run: `cargo bench --bench quota_rate` (about 70 s). `QUOTA_BENCH_SECONDS`
//! and `QUOTA_BENCH_RATE` change the duration and the rate per minute.

use std::sync::Arc;
use std::time::Duration;

use intezer_dynamic::config::Secret;
use intezer_dynamic::intezer::{IntezerClient, IntezerSettings, RetryPolicy};
use intezer_dynamic::quota::{QuotaGuard, QuotaSettings};
use intezer_dynamic::simulator::intezer::{DefaultOptions, IntezerBehaviour, IntezerSimulator};
use tokio::time::Instant;

/// Length of the window the limit is stated for.
const WINDOW: Duration = Duration::from_secs(60);

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let seconds = env_number("QUOTA_BENCH_SECONDS", 60);
    let rate = env_number("QUOTA_BENCH_RATE", 120) as u32;
    let run_for = Duration::from_secs(seconds);

    // The simulated key allows a quarter more than the service is set to
    // use, so any 429 would mean the guard let too much through.
    let simulated_limit = rate + rate / 4;
    let options = DefaultOptions {
        rate_limit_per_minute: Some(simulated_limit),
        ..DefaultOptions::default()
    };
    let simulator = IntezerSimulator::start(IntezerBehaviour::Default(options), 0)
        .await
        .expect("the simulator starts on loopback");
    let settings = QuotaSettings {
        requests_per_minute: rate,
        burst: 1,
        max_jitter: Duration::ZERO,
        ..QuotaSettings::default()
    };
    let guard = Arc::new(QuotaGuard::new(settings).expect("valid quota settings"));
    let mut client_settings = IntezerSettings::new(simulator.base_url(), Secret::new("bench-key"));
    client_settings.retry = RetryPolicy {
        retry_forever: false,
        max_attempts: 1,
        ..RetryPolicy::default()
    };
    let client = Arc::new(
        IntezerClient::new(client_settings)
            .expect("client builds")
            .with_quota(guard.clone()),
    );

    // Twice the allowed demand: one request every 30 s / rate.
    let demand_interval = Duration::from_secs_f64(30.0 / f64::from(rate));
    let started = Instant::now();
    let end = started + run_for;
    let mut tasks = Vec::new();
    let mut next = started;
    let mut asked = 0u64;
    while next < end {
        tokio::time::sleep_until(next).await;
        let client = client.clone();
        asked += 1;
        tasks.push(tokio::spawn(async move {
            // A request that cannot get a token before the run ends gives up.
            let _ = client
                .analysis("00000000-0000-4000-8000-000000000000", end)
                .await;
        }));
        next += demand_interval;
    }
    for task in tasks {
        let _ = task.await;
    }

    let calls = simulator.calls();
    let rate_limited = calls.iter().filter(|call| call.status == 429).count();
    let mut times: Vec<Duration> = calls
        .into_iter()
        .filter(|call| call.endpoint != "get-access-token")
        .map(|call| call.received_after)
        .collect();
    times.sort();
    simulator.stop().await;

    let sent = times.len();
    let mut worst_window = 0usize;
    for (index, start) in times.iter().enumerate() {
        let in_window = times[index..]
            .iter()
            .take_while(|at| **at < *start + WINDOW)
            .count();
        worst_window = worst_window.max(in_window);
    }
    let allowed = f64::from(rate) * run_for.as_secs_f64() / 60.0;
    let used = sent as f64 / allowed * 100.0;
    let limit_held = worst_window as u32 <= rate && rate_limited == 0;
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let report = format!(
        "# Quota rate benchmark\n\n\
         Command: `cargo bench --bench quota_rate` (QUOTA_BENCH_SECONDS={seconds}, QUOTA_BENCH_RATE={rate}).\n\
         Commit: `{commit}`. Machine: {cores} cores, loopback simulator.\n\n\
         | Measure | Value |\n|---|---|\n\
         | configured rate | {rate} requests/min, burst 1 |\n\
         | demand | {asked} requests over {seconds} s (twice the rate) |\n\
         | requests sent | {sent} |\n\
         | most requests in any 60 s window | {worst_window} (limit {rate}: {}) |\n\
         | share of the allowed rate used | {used:.1} % |\n\
         | 429 answers from the simulator (its limit {simulated_limit}/min) | {rate_limited} |\n",
        if limit_held { "held" } else { "EXCEEDED" }
    );
    println!("{report}");
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/benchmarks/quota-rate.md");
    if let Err(err) = std::fs::write(&path, &report) {
        eprintln!("cannot write {}: {err}", path.display());
    }
    if !limit_held {
        std::process::exit(1);
    }
}
