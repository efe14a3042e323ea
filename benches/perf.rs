//! Performance report: throughput of hits against the latency bound, a
//! miss-heavy mix, throughput under a rate limit, CPU per task, memory idle
//! and with 1 000 analyses in flight, streaming SHA-256 against OpenSSL,
//! and idle CPU. Each run starts both simulators on 127.0.0.1 in this
//! process and the release `serve` binary as a child, and reads the child's
//! CPU time and memory from /proc.
//!
//! Run: `cargo bench --bench perf` (about 10 minutes) writes
//! `docs/benchmarks.md`. Options after `--`:
//! - `--quick`: small runs that check the harness works; the report is
//!   printed only.
//! - `--sections hits,mix,rate,memory,hash,idle`: only these sections.
//! - `--report FILE`: write the report there.
//!
//! Environment: `PERF_SERVICE_WRAPPER` runs the service under a tool such
//! as `valgrind --tool=massif` (the report then shows the tool's CPU and
//! memory), `PERF_IN_FLIGHT` sets the load of the memory run,
//! `PERF_LOG_DIR` keeps the service's logs and `PERF_LOG_LEVEL` sets their
//! level.
//!
//! Exits 1 when a run lost a task, answered one twice or got an error, so
//! that a broken service never yields a report; missed targets are
//! reported, not failed.

#[path = "perf/hashing.rs"]
mod hashing;
#[path = "perf/procstat.rs"]
mod procstat;
#[path = "perf/run.rs"]
mod run;
#[path = "perf/sections.rs"]
mod sections;
#[path = "perf/workload.rs"]
mod workload;

use std::fmt::Write as _;
use std::process::Command;

use sections::Report;

const SECTIONS: [&str; 6] = ["hits", "mix", "rate", "memory", "hash", "idle"];

const DEFAULT_REPORT: &str = "docs/benchmarks.md";

/// The targets, numbered as the summary rows and the sections are.
const TARGETS: &str = "\
1. Hits at concurrency 1, 16, 64 and 256, with 20 ms of Intezer latency: tasks/s at least 90 % \
   of the sequential bound, concurrency ÷ (requests per task × latency).
2. A miss-heavy mix (70 % hits, 30 % unknown files uploaded and polled 3 times at 1 s): \
   tasks/s and latency percentiles, reported.
3. Under a configured request rate: tasks/s at least 90 % of the rate ÷ requests per task.
4. Service CPU time (user + system) per hit under 0.5 ms.
5. Resident memory under 20 MiB idle and under 64 MiB with 1 000 analyses in flight.
6. Streaming SHA-256 of a 1 GiB file at least 0.9 × `openssl dgst -sha256` on the same file.
7. Idle CPU over 30 s with no tasks effectively zero: no busy polling.
";

struct Options {
    quick: bool,
    sections: Vec<String>,
    report: Option<String>,
}

fn usage_error(message: &str) -> ! {
    eprintln!(
        "{message}\nusage: cargo bench --bench perf -- [--quick] [--sections {}] [--report FILE]",
        SECTIONS.join(",")
    );
    std::process::exit(2);
}

fn parse_options() -> Options {
    let mut options = Options {
        quick: false,
        sections: SECTIONS.iter().map(|s| s.to_string()).collect(),
        report: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            // cargo bench passes --bench to every bench binary.
            "--bench" => {}
            "--quick" => options.quick = true,
            "--sections" => {
                let list = args
                    .next()
                    .unwrap_or_else(|| usage_error("--sections needs a list"));
                options.sections = list.split(',').map(|s| s.trim().to_string()).collect();
                if let Some(unknown) = options
                    .sections
                    .iter()
                    .find(|s| !SECTIONS.contains(&s.as_str()))
                {
                    usage_error(&format!("unknown section {unknown:?}"));
                }
            }
            "--report" => {
                options.report = Some(
                    args.next()
                        .unwrap_or_else(|| usage_error("--report needs a file name")),
                )
            }
            other => usage_error(&format!("unknown option {other:?}")),
        }
    }
    if options.report.is_none() && !options.quick && options.sections.len() == SECTIONS.len() {
        options.report = Some(DEFAULT_REPORT.to_string());
    }
    options
}

fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".to_string())
}

/// Describes the machine the report was made on: CPU model, cores, memory, kernel.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|line| line.starts_with("model name"))
        .and_then(|line| line.split(':').nth(1))
        .map_or("unknown CPU".to_string(), |model| model.trim().to_string());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_gib = meminfo
        .lines()
        .find(|line| line.starts_with("MemTotal:"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kib| kib.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    format!(
        "{model}, {} cores, {memory_gib:.0} GiB, Linux {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        command_output("uname", &["-r"])
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let options = parse_options();
    let mut report = Report {
        text: String::new(),
        targets: Vec::new(),
        rounds_per_hit: None,
        clean: Vec::new(),
        calls_per_hit: None,
        quick: options.quick,
    };
    for section in &options.sections {
        eprintln!("perf: running {section}");
        match section.as_str() {
            "hits" => sections::hits(&mut report).await,
            "mix" => sections::mix(&mut report).await,
            "rate" => sections::rate_limited(&mut report).await,
            "memory" => sections::memory_in_flight(&mut report).await,
            "hash" => hashing::sha256(&mut report),
            "idle" => sections::idle(&mut report).await,
            _ => unreachable!("sections are checked when parsed"),
        }
    }

    let mut text = String::new();
    let _ = writeln!(text, "# Performance report\n");
    let command = std::env::args()
        .skip(1)
        .filter(|arg| arg != "--bench")
        .collect::<Vec<_>>()
        .join(" ");
    let _ = writeln!(
        text,
        "`cargo bench --bench perf{}` on commit {}, {}, {}; {}.\n",
        if command.is_empty() {
            String::new()
        } else {
            format!(" -- {command}")
        },
        command_output("git", &["describe", "--always", "--dirty"]),
        chrono::Utc::now().format("%Y-%m-%d"),
        command_output("rustc", &["--version"]),
        machine(),
    );
    let _ = writeln!(
        text,
        "Both simulators run in the benchmark's process on 127.0.0.1 and share the machine \
         with the service; the service is the release `serve` binary, run as a child process \
         with `LOG_LEVEL=WARNING`.\n"
    );
    let _ = writeln!(
        text,
        "Where a target is missed, [benchmarks/profile.md](benchmarks/profile.md) shows with \
         profiles what bounds it on this design, and what was changed on the way.\n"
    );
    let _ = writeln!(text, "## Targets\n\n{TARGETS}");
    let _ = writeln!(
        text,
        "| measure | target | measured | met |\n|---|---|---|---|"
    );
    // Targets in the order of the list above; a stable sort keeps the
    // order of the rows within one number.
    report
        .targets
        .sort_by_key(|row| row.measure.split('.').next().map(str::to_string));
    for (label, count) in &report.clean {
        let _ = writeln!(
            text,
            "| {label}: every task answered once, service exit 0 | yes | {} run(s): {} answered, \
             {} lost, {} twice, {} errors, {} failed exits | {} |",
            count.runs,
            count.answered,
            count.lost,
            count.twice,
            count.errors,
            count.failed_exits,
            if count.clean() { "yes" } else { "**no**" }
        );
    }
    for row in &report.targets {
        let _ = writeln!(
            text,
            "| {} | {} | {} | {} |",
            row.measure,
            row.target,
            row.value,
            match row.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "–",
            }
        );
    }
    text.push_str(&report.text);
    print!("{text}");
    if let Some(path) = &options.report {
        std::fs::write(path, &text).expect("the report is written");
        eprintln!("perf: report written to {path}");
    }
    let broken = report.clean.iter().any(|(_, count)| !count.clean());
    if broken {
        eprintln!("perf: a run lost a task, answered one twice or got an error");
        std::process::exit(1);
    }
}
