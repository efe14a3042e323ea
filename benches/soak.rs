//! Soak run: the real `serve` binary takes many tasks from the
//! service-server simulator while both simulators inject faults of every
//! kind into about one task in ten. It checks that no task is lost or
//! answered twice, that nothing panics, and that the resident memory of
//! the service stays bounded, and writes `docs/benchmarks/soak.md`.
//!
//! Run: `cargo bench --bench soak` (10 000 tasks, a few minutes).
//! `SOAK_TASKS` sets another count; with it, the report is printed only,
//! unless `SOAK_REPORT` names a file. Exits 1 when a check fails.

use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use intezer_dynamic::simulator::faults::{FaultPlan, InjectedFault};
use intezer_dynamic::simulator::intezer::{DefaultOptions, IntezerBehaviour, IntezerSimulator};
use intezer_dynamic::simulator::service_server::{
    CompletionKind, ServiceServerOptions, ServiceServerSimulator, SimFile, DEFAULT_API_KEY,
};

const DEFAULT_TASKS: usize = 10_000;
const CONCURRENCY: usize = 64;

/// Resident memory the service may reach at any point of the run.
const RSS_LIMIT_MIB: f64 = 128.0;

/// Intezer faults, by endpoint. With about eight Intezer calls and five
/// service-server calls per task, both lists inject about one fault per ten
/// tasks.
const INTEZER_FAULTS: &[&str] = &[
    "*=503,rate=0.0025",
    "*=disconnect,rate=0.0015",
    "*=slow-body:200,rate=0.0015",
    "*=429,rate=0.0001",
    "files.latest-analysis=truncated,rate=0.0025",
    "files.latest-analysis=malformed-json,rate=0.001",
    "files.latest-analysis=401,rate=0.0015",
    "files.latest-analysis=hang,rate=0.00025",
    "analyze=400,rate=0.005",
    "analyses.status=stuck,rate=0.025",
];

/// Service-server faults, by call.
const SERVER_FAULTS: &[&str] = &[
    "get-task=503,rate=0.0025",
    "get-task=disconnect,rate=0.001",
    "post-task=503,rate=0.005",
    "post-task=disconnect,rate=0.0025",
    "post-task=400,rate=0.001",
    "download-file=wrong-bytes,rate=0.0025",
    "download-file=truncated,rate=0.0025",
    "download-file=slow-body:200,rate=0.0025",
];

/// Builds a unique small file per task, so lookups are neither shared nor
/// cached.
fn task_file(index: usize) -> SimFile {
    let mut state = (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let length = 4096 + (index % 8) * 4096;
    let bytes: Vec<u8> = (0..length)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    SimFile {
        name: format!("soak-{index}.bin"),
        bytes: bytes.into(),
        file_type: "executable/windows/pe32".to_string(),
    }
}

fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn count_by_fault(faults: &[InjectedFault]) -> Vec<(String, usize)> {
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for fault in faults {
        *counts
            .entry(format!("{} {}", fault.target, fault.fault))
            .or_default() += 1;
    }
    counts.into_iter().collect()
}

fn git_commit() -> String {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".to_string())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let tasks_setting = std::env::var("SOAK_TASKS").ok();
    let tasks: usize = tasks_setting
        .as_deref()
        .and_then(|text| text.parse().ok())
        .unwrap_or(DEFAULT_TASKS);
    let report_path = std::env::var("SOAK_REPORT").ok().or_else(|| {
        tasks_setting
            .is_none()
            .then(|| "docs/benchmarks/soak.md".to_string())
    });

    let intezer = IntezerSimulator::start_with_faults(
        IntezerBehaviour::Default(DefaultOptions {
            polls_before_finished: 1,
            ..DefaultOptions::default()
        }),
        0,
        FaultPlan::parse(INTEZER_FAULTS, 2026).expect("valid Intezer fault rules"),
    )
    .await
    .expect("the Intezer simulator starts");
    let config = json!({
        "base_url": intezer.base_url(),
        "api_key": "soak-key",
        "polling_period_in_seconds": 1,
        "analysis_timeout_in_seconds": 10,
    });
    let options = ServiceServerOptions {
        files: (0..tasks).map(task_file).collect(),
        config_overrides: config.as_object().cloned().unwrap_or_default(),
        max_long_poll: Duration::from_secs(1),
        // A hung request ends with the task's deadline, inside 20 s.
        timeout_override: Some(20),
        faults: FaultPlan::parse(SERVER_FAULTS, 1204).expect("valid service-server fault rules"),
        ..ServiceServerOptions::default()
    };
    let server = ServiceServerSimulator::start(options, 0)
        .await
        .expect("the service-server simulator starts");

    let work = tempfile::tempdir().expect("a temporary folder");
    let tasking = work.path().join("tasking");
    std::fs::create_dir(&tasking).expect("a tasking folder");
    let stderr_path = work.path().join("stderr");
    let started = Instant::now();
    let mut service = Command::new(env!("CARGO_BIN_EXE_intezer-dynamic"))
        .args(["serve", "--concurrency", &CONCURRENCY.to_string()])
        .args(["--metrics-addr", "127.0.0.1:0"])
        .env("SERVICE_API_HOST", server.base_url())
        .env("SERVICE_API_KEY", DEFAULT_API_KEY)
        .env("AL_SERVICE_TASK_LIMIT", tasks.to_string())
        .env("TASK_REQUEST_TIMEOUT", "1")
        .env("TASKING_DIR", &tasking)
        .env("HOSTNAME", "soak")
        .env("LOG_LEVEL", "WARNING")
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(&stderr_path).expect("a log file"),
        ))
        .spawn()
        .expect("the serve binary starts");
    let pid = service.id();

    // Sample the memory twice a second and note it per tenth of the run.
    let mut peak_rss = 0.0f64;
    let mut rss_by_tenth = [0.0f64; 10];
    let exit = loop {
        if let Some(exit) = service.try_wait().expect("the service can be waited on") {
            break exit;
        }
        if let Some(rss) = rss_mib(pid) {
            peak_rss = peak_rss.max(rss);
            let done = server.report().completions.len();
            let tenth = (done * 10 / tasks.max(1)).min(9);
            rss_by_tenth[tenth] = rss_by_tenth[tenth].max(rss);
        }
        if started.elapsed() > Duration::from_secs(1800) {
            let _ = service.kill();
            break service.wait().expect("the killed service is reaped");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let elapsed = started.elapsed();

    let report = server.report();
    let intezer_faults = intezer.injected_faults();
    let server_faults = server.injected_faults();
    let logs = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let panics = logs.matches("panicked").count();
    let results = report
        .completions
        .iter()
        .filter(|c| c.kind == CompletionKind::Result)
        .count();
    let error_status = |status: &str| {
        report
            .completions
            .iter()
            .filter(|c| c.kind == CompletionKind::Error && c.body["response"]["status"] == status)
            .count()
    };
    let recoverable = error_status("FAIL_RECOVERABLE");
    let nonrecoverable = error_status("FAIL_NONRECOVERABLE");
    let tasks_with_fault_estimate = intezer_faults.len() + server_faults.len();
    let leftovers = std::fs::read_dir(&tasking).map_or(0, |dir| dir.count());
    // Growth check: the second half of the run may not need much more
    // memory than the first half did.
    let first_half = rss_by_tenth[..5].iter().cloned().fold(0.0, f64::max);
    let second_half = rss_by_tenth[5..].iter().cloned().fold(0.0, f64::max);
    let bounded = peak_rss <= RSS_LIMIT_MIB && second_half <= first_half * 1.25 + 8.0;

    let checks = [
        ("exit status 0", exit.success()),
        ("every task handed out", report.tasks_handed_out == tasks),
        (
            "every task answered once",
            report.completions.len() == tasks,
        ),
        ("0 lost", report.lost.is_empty()),
        ("0 answered twice", report.completed_twice.is_empty()),
        ("0 protocol errors", report.protocol_errors.is_empty()),
        ("0 panics", panics == 0),
        ("working folders removed", leftovers == 0),
        ("memory bounded", bounded),
    ];

    let mut text = String::new();
    let _ = writeln!(text, "# Soak run\n");
    let _ = writeln!(
        text,
        "`cargo bench --bench soak`{} on commit {} ({} cores), {}.\n",
        tasks_setting
            .as_deref()
            .map(|n| format!(" with SOAK_TASKS={n}"))
            .unwrap_or_default(),
        git_commit(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        chrono::Utc::now().format("%Y-%m-%d"),
    );
    let _ = writeln!(
        text,
        "The release `serve` binary, {CONCURRENCY} tasks at once, took {tasks} tasks of unique \
         4 to 32 KiB files from the service-server simulator, against the Intezer simulator \
         (a mix of known and unknown files, one in-progress poll per new analysis). Both \
         simulators injected the faults listed below from seeded draws; the order in which \
         concurrent requests meet the draws varies, so a rerun gets a similar mix, not the \
         same one.\n"
    );
    let _ = writeln!(text, "| check | outcome |\n|---|---|");
    for (name, passed) in &checks {
        let _ = writeln!(
            text,
            "| {name} | {} |",
            if *passed { "pass" } else { "FAIL" }
        );
    }
    let _ = writeln!(text, "\n| measure | value |\n|---|---|");
    let rows = [
        ("tasks handed out", report.tasks_handed_out.to_string()),
        ("answers posted", report.completions.len().to_string()),
        ("results", results.to_string()),
        ("FAIL_RECOVERABLE errors", recoverable.to_string()),
        ("FAIL_NONRECOVERABLE errors", nonrecoverable.to_string()),
        ("lost", report.lost.len().to_string()),
        ("answered twice", report.completed_twice.len().to_string()),
        (
            "faults injected",
            format!(
                "{tasks_with_fault_estimate} ({:.1} per 100 tasks)",
                tasks_with_fault_estimate as f64 * 100.0 / tasks.max(1) as f64
            ),
        ),
        ("panics in the log", panics.to_string()),
        (
            "peak RSS",
            format!("{peak_rss:.1} MiB (limit {RSS_LIMIT_MIB} MiB)"),
        ),
        (
            "peak RSS, first / second half",
            format!("{first_half:.1} / {second_half:.1} MiB"),
        ),
        ("duration", format!("{:.0} s", elapsed.as_secs_f64())),
        (
            "throughput",
            format!("{:.1} tasks/s", tasks as f64 / elapsed.as_secs_f64()),
        ),
    ];
    for (name, value) in rows {
        let _ = writeln!(text, "| {name} | {value} |");
    }
    let _ = writeln!(
        text,
        "\n## Faults injected\n\n| where | fault | count |\n|---|---|---|"
    );
    for (name, count) in count_by_fault(&intezer_faults) {
        let _ = writeln!(text, "| Intezer | {name} | {count} |");
    }
    for (name, count) in count_by_fault(&server_faults) {
        let _ = writeln!(text, "| service server | {name} | {count} |");
    }
    print!("{text}");
    if let Some(path) = report_path {
        std::fs::write(&path, &text).expect("the report is written");
        println!("\nwritten to {path}");
    }
    intezer.stop().await;
    server.stop().await;
    if checks.iter().any(|(_, passed)| !passed) {
        eprintln!(
            "soak failed; the service log is kept in {}",
            stderr_path.display()
        );
        let _ = work.keep();
        std::process::exit(1);
    }
}
