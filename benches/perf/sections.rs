//! The report's sections: each runs what it measures and writes its part of
//! the report, and returns the rows of the summary of targets.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{json, Map, Value};

use intezer_dynamic::simulator::intezer::{DefaultVerdict, RecordedCall};
use intezer_dynamic::simulator::service_server::{CompletionKind, SimFile};

use super::run::{run, RunOutcome, RunSpec, Stop};
use super::workload::FileMaker;

/// Latency the Intezer simulator adds to every response in the throughput
/// runs.
pub const INTEZER_LATENCY: Duration = Duration::from_millis(20);

/// Gap between two requests that starts a new round of requests: the
/// requests of one round leave within a millisecond or two of each other,
/// and the next round waits for an answer that takes the full latency.
const ROUND_GAP: Duration = Duration::from_millis(10);

/// One line of the summary: a measure, its target and whether it was met.
pub struct TargetRow {
    pub measure: String,
    pub target: String,
    pub value: String,
    /// `None` for a measure that is reported without a target.
    pub met: Option<bool>,
}

/// The report being written: its text so far and the summary rows.
pub struct Report {
    pub text: String,
    pub targets: Vec<TargetRow>,
    /// Mean sequential rounds of Intezer requests per hit, measured at
    /// concurrency 1 by the hit section.
    pub rounds_per_hit: Option<f64>,
    /// Per kind of run, whether every task was answered once.
    pub clean: Vec<(String, CleanCount)>,
    /// Mean Intezer requests per hit.
    pub calls_per_hit: Option<f64>,
    pub quick: bool,
}

impl Report {
    pub fn target(&mut self, measure: &str, target: &str, value: String, met: bool) {
        self.targets.push(TargetRow {
            measure: measure.to_string(),
            target: target.to_string(),
            value,
            met: Some(met),
        });
    }

    /// Adds a summary row for a measure that has no target.
    pub fn reported(&mut self, measure: &str, value: String) {
        self.targets.push(TargetRow {
            measure: measure.to_string(),
            target: "none, reported".to_string(),
            value,
            met: None,
        });
    }
}

fn settings(pairs: Value) -> Map<String, Value> {
    pairs.as_object().cloned().unwrap_or_default()
}

/// Settings of the hit runs: default report options, no rate limit.
fn hit_settings() -> Map<String, Value> {
    settings(json!({
        "polling_period_in_seconds": 1,
        "analysis_timeout_in_seconds": 60,
    }))
}

/// Returns the settings most runs share: `files` at `concurrency`, the
/// Intezer latency, analyses finished at the first status read, the hit
/// settings, a 120 s task timeout and 1 s task polls, until every task is
/// answered.
fn task_run(concurrency: usize, files: Vec<SimFile>) -> RunSpec {
    RunSpec {
        concurrency,
        files,
        latency: INTEZER_LATENCY,
        polls_before_finished: 0,
        instant_strings: false,
        config: hit_settings(),
        task_timeout: 120,
        long_poll: 1,
        stop: Stop::AllAnswered,
    }
}

/// Counts the rounds of requests in a run at concurrency 1, where the tasks'
/// requests never overlap: a request that arrives more than [`ROUND_GAP`]
/// after the one before it starts a round.
fn count_rounds<'a>(calls: impl Iterator<Item = &'a RecordedCall>) -> usize {
    let mut rounds = 0;
    let mut previous: Option<Duration> = None;
    for call in calls {
        let starts_round =
            previous.is_none_or(|before| call.received_after.saturating_sub(before) > ROUND_GAP);
        if starts_round {
            rounds += 1;
        }
        previous = Some(call.received_after);
    }
    rounds
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * fraction).round() as usize;
    sorted[index]
}

fn ms(duration: Duration) -> String {
    format!("{:.0} ms", duration.as_secs_f64() * 1000.0)
}

/// Counts over the runs of one kind, for the check that every task was
/// answered once.
#[derive(Default)]
pub struct CleanCount {
    pub runs: usize,
    pub answered: usize,
    pub lost: usize,
    pub twice: usize,
    pub errors: usize,
    pub failed_exits: usize,
}

impl CleanCount {
    pub fn clean(&self) -> bool {
        self.lost == 0 && self.twice == 0 && self.errors == 0 && self.failed_exits == 0
    }
}

fn check_clean(report: &mut Report, label: &str, outcome: &RunOutcome) {
    let errors = outcome
        .report
        .completions
        .iter()
        .filter(|completion| completion.kind == CompletionKind::Error)
        .count();
    let index = match report.clean.iter().position(|(name, _)| name == label) {
        Some(index) => index,
        None => {
            report
                .clean
                .push((label.to_string(), CleanCount::default()));
            report.clean.len() - 1
        }
    };
    let count = &mut report.clean[index].1;
    count.runs += 1;
    count.answered += outcome.report.completions.len();
    count.lost += outcome.report.lost.len();
    count.twice += outcome.report.completed_twice.len();
    count.errors += errors;
    count.failed_exits += usize::from(!outcome.clean());
    if !outcome.clean() || errors > 0 {
        let lines: Vec<&str> = outcome.log.lines().take(20).collect();
        let _ = writeln!(
            report.text,
            "\nThe {label} run was not clean; the service's first log lines:\n\n```\n{}\n```\n",
            lines.join("\n")
        );
    }
}

/// Number of runs of each concurrency in the hit section. The report shows
/// the median of each column, so one slow moment of a shared machine does
/// not decide the result.
const HIT_REPEATS: usize = 3;

/// Measurements of one hit run, kept instead of the whole run.
struct HitRun {
    tasks: usize,
    calls_per_task: f64,
    throughput: f64,
    mean_latency: Duration,
    cpu_ms: f64,
    simulator_cpu_ms: f64,
    machine_busy: f64,
}

impl HitRun {
    fn of(outcome: &RunOutcome, tasks: usize) -> HitRun {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let latencies: Vec<Duration> = outcome
            .report
            .completions
            .iter()
            .map(|completion| completion.latency())
            .collect();
        let run_seconds = outcome.samples.last().map_or(1.0, |s| s.at.as_secs_f64());
        let service_cpu = outcome.samples.last().map_or(0.0, |s| s.cpu);
        HitRun {
            tasks,
            calls_per_task: outcome.task_calls().count() as f64 / tasks as f64,
            throughput: outcome.steady_throughput(),
            mean_latency: latencies.iter().sum::<Duration>() / latencies.len().max(1) as u32,
            cpu_ms: outcome.cpu_ms_per_task().unwrap_or(f64::NAN),
            simulator_cpu_ms: outcome.simulator_cpu * 1000.0 / tasks as f64,
            machine_busy: (service_cpu + outcome.simulator_cpu) / (run_seconds * cores),
        }
    }
}

/// Sections 1 and 4: throughput of hits at several concurrencies against
/// the latency bound, and the service's CPU per hit.
pub async fn hits(report: &mut Report) {
    let concurrencies: [usize; 4] = [1, 16, 64, 256];
    let repeats = if report.quick { 1 } else { HIT_REPEATS };
    let mut files = FileMaker::new(1);
    let mut runs: Vec<Vec<HitRun>> = concurrencies.iter().map(|_| Vec::new()).collect();
    let mut rounds_seen = Vec::new();
    // Whole rounds over the concurrencies, so a slow spell of the machine
    // spreads over them instead of hitting one.
    for _ in 0..repeats {
        for (index, &concurrency) in concurrencies.iter().enumerate() {
            let tasks = if report.quick {
                (concurrency * 4).clamp(30, 400)
            } else if concurrency == 1 {
                150
            } else {
                (concurrency * 120).min(12_000)
            };
            let outcome = run(RunSpec {
                instant_strings: true,
                ..task_run(concurrency, files.known(tasks))
            })
            .await;
            check_clean(
                report,
                &format!("hits at concurrency {concurrency}"),
                &outcome,
            );
            if concurrency == 1 {
                rounds_seen.push(count_rounds(outcome.task_calls()) as f64 / tasks as f64);
            }
            runs[index].push(HitRun::of(&outcome, tasks));
        }
    }
    let rounds = rounds_seen.iter().sum::<f64>() / rounds_seen.len().max(1) as f64;
    let calls = runs
        .iter()
        .flatten()
        .map(|run| run.calls_per_task)
        .sum::<f64>()
        / runs.iter().flatten().count().max(1) as f64;
    report.rounds_per_hit = Some(rounds);
    report.calls_per_hit = Some(calls);
    let latency = INTEZER_LATENCY.as_secs_f64();

    let text = &mut report.text;
    let _ = writeln!(text, "\n## 1. Hits: throughput against the latency bound\n");
    let _ = writeln!(
        text,
        "Every file is known to Intezer (a third each malicious, suspicious and trusted), so a \
         task is: take the task, download and hash the file, look it up, read the report \
         (IOCs, TTPs and sub-analyses at once, then each sub-analysis's code reuse, then its \
         metadata and strings), extract the payload of a malicious file, post the result. The \
         Intezer simulator answers every request after {} ms, and its strings operations \
         finish at once (`instant_strings`), so a task waits for nothing but the latency; the \
         service-server simulator answers at once.\n",
        INTEZER_LATENCY.as_millis()
    );
    let _ = writeln!(
        text,
        "A hit makes {calls:.2} Intezer requests on average, in {rounds:.2} sequential rounds \
         (counted at concurrency 1, where a request more than {} ms after the previous one \
         starts a round). Two bounds follow. The sequential bound, concurrency ÷ (requests per \
         task × latency), is the rate if each task's requests went one after another; the \
         target is 90 % of it. The critical-path bound, concurrency ÷ (rounds per task × \
         latency), is the most tasks a second if every round of parallel requests took exactly \
         the latency and nothing else took time; it is reported as a stricter check.\n",
        ROUND_GAP.as_millis()
    );
    let _ = writeln!(
        text,
        "Each concurrency ran {repeats} times, in {repeats} rounds over all four; each column \
         shows the median of its runs, and the range over the runs where it matters.\n"
    );
    let _ = writeln!(
        text,
        "| concurrency | tasks | tasks/s (range) | sequential bound | of it | critical-path \
         bound | of it | mean latency | service CPU per task (range) | service CPU busy | \
         simulators' CPU per task | machine busy |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    let mut fractions = Vec::new();
    for (concurrency, measured) in concurrencies.into_iter().zip(runs) {
        let median_of = |value: fn(&HitRun) -> f64| {
            let mut values: Vec<f64> = measured.iter().map(value).collect();
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };
        let range = |value: fn(&HitRun) -> f64, digits: usize| {
            let low = measured.iter().map(value).fold(f64::INFINITY, f64::min);
            let high = measured.iter().map(value).fold(f64::NEG_INFINITY, f64::max);
            format!("{low:.digits$}–{high:.digits$}")
        };
        let throughput = median_of(|run| run.throughput);
        let cpu_ms = median_of(|run| run.cpu_ms);
        let sequential_bound = concurrency as f64 / (median_of(|run| run.calls_per_task) * latency);
        let bound = concurrency as f64 / (rounds * latency);
        let sequential_fraction = throughput / sequential_bound;
        let fraction = throughput / bound;
        // The share of one core the service used: its event loop runs on
        // one thread, so near 100 % that thread bounds the throughput.
        let service_busy = throughput * cpu_ms / 1000.0;
        let _ = writeln!(
            text,
            "| {concurrency} | {} | {throughput:.1} ({}) | {sequential_bound:.0} | {:.0} % | \
             {bound:.0} | {:.1} % | {} | {cpu_ms:.2} ms ({}) | {:.0} % | {:.2} ms | {:.0} % |",
            measured[0].tasks,
            range(|run| run.throughput, 1),
            sequential_fraction * 100.0,
            fraction * 100.0,
            ms(Duration::from_secs_f64(median_of(|run| run
                .mean_latency
                .as_secs_f64()))),
            range(|run| run.cpu_ms, 2),
            service_busy * 100.0,
            median_of(|run| run.simulator_cpu_ms),
            median_of(|run| run.machine_busy) * 100.0
        );
        fractions.push((concurrency, sequential_fraction, fraction, cpu_ms));
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let _ = writeln!(
        text,
        "\nTasks per second and CPU per task are taken between the first and the last tenth of \
         the answers, so start-up and the last stragglers are left out. \"Service CPU busy\" is \
         tasks/s × service CPU per task, the share of one core the service used; its event \
         loop runs on one thread, so near 100 % that thread bounds the run. The simulators' \
         CPU is that of this whole benchmark process over the whole run, divided by the tasks. \
         \"Machine busy\" is the CPU time of the service and of this process over the run, as \
         a share of all {cores} cores."
    );
    for (concurrency, sequential_fraction, fraction, cpu) in fractions {
        report.target(
            &format!("1. hits at concurrency {concurrency}, share of the sequential bound"),
            "≥ 90 %",
            format!("{:.0} %", sequential_fraction * 100.0),
            sequential_fraction >= 0.9,
        );
        report.reported(
            &format!("1. hits at concurrency {concurrency}, share of the critical-path bound"),
            format!("{:.1} %", fraction * 100.0),
        );
        if concurrency == 64 {
            report.target(
                "4. service CPU per hit (concurrency 64, median of runs)",
                "< 0.5 ms",
                format!("{cpu:.2} ms"),
                cpu < 0.5,
            );
        }
    }
}

/// Section 2: 70 % hits and 30 % unknown files that are uploaded and polled
/// three times a second apart.
pub async fn mix(report: &mut Report) {
    let concurrency = 64;
    let tasks = if report.quick { 100 } else { 2000 };
    let mut files = FileMaker::new(2);
    let mut config = hit_settings();
    config.insert("polling_period_in_seconds".into(), json!(1));
    let outcome = run(RunSpec {
        // Two polls get "in progress", the third finds it finished.
        polls_before_finished: 2,
        config,
        ..task_run(concurrency, files.mixed(tasks, 30))
    })
    .await;
    check_clean(report, "miss-heavy mix", &outcome);
    let throughput = outcome.steady_throughput();
    let mut hits = Vec::new();
    let mut misses = Vec::new();
    for completion in &outcome.report.completions {
        let known = DefaultVerdict::for_sha256(&completion.sha256).is_some_and(|v| v.is_known());
        if known {
            hits.push(completion.latency());
        } else {
            misses.push(completion.latency());
        }
    }
    hits.sort();
    misses.sort();
    let mut all: Vec<Duration> = hits.iter().chain(misses.iter()).copied().collect();
    all.sort();
    // Little's law over the steady window: the tasks answered in it, and
    // their mean latency.
    let completions = outcome.completions_by_time();
    let (first, last) = (
        completions.len() / 10,
        completions.len() - 1 - completions.len() / 10,
    );
    let window = &completions[first..=last];
    let window_mean = window
        .iter()
        .map(|completion| completion.latency())
        .sum::<Duration>()
        / window.len().max(1) as u32;
    let occupancy = throughput * window_mean.as_secs_f64() / concurrency as f64;
    let polls = outcome
        .calls
        .iter()
        .filter(|call| call.endpoint == "analyses.status")
        .count() as f64
        / misses.len().max(1) as f64;

    let text = &mut report.text;
    let _ = writeln!(text, "\n## 2. Miss-heavy mix\n");
    let _ = writeln!(
        text,
        "{tasks} tasks at concurrency {concurrency}: 70 % known files as in section 1, 30 % \
         unknown files, which are uploaded and whose analysis is polled every second until the \
         third poll finds it finished ({polls:.2} status polls per unknown file were made). \
         Intezer latency {} ms.\n",
        INTEZER_LATENCY.as_millis()
    );
    let _ = writeln!(
        text,
        "| tasks | p50 | p90 | p99 | max |\n|---|---|---|---|---|"
    );
    for (label, sorted) in [("hits", &hits), ("misses", &misses), ("all", &all)] {
        let _ = writeln!(
            text,
            "| {label} ({}) | {} | {} | {} | {} |",
            sorted.len(),
            ms(percentile(sorted, 0.5)),
            ms(percentile(sorted, 0.9)),
            ms(percentile(sorted, 0.99)),
            ms(sorted.last().copied().unwrap_or_default()),
        );
    }
    let _ = writeln!(
        text,
        "\nThroughput {throughput:.1} tasks/s. By Little's law, tasks/s × mean latency ÷ \
         concurrency, both over the steady window, is the share of the time the {concurrency} \
         task slots hold a task: {:.1} %. The rest is the time between answering one task and \
         receiving the next.",
        occupancy * 100.0
    );
    let _ = writeln!(
        text,
        "\nHere the strings operation of a malicious file's main sub-analysis is still running \
         at its first read, as the simulator's default scenario has it, and is read again a \
         second later. That is why the malicious third of the hits takes about 1.1 s, and the \
         hits' p90 with it."
    );
    report.reported(
        "2. miss-heavy mix: tasks/s, p50 / p99 latency, share of time the slots hold a task",
        format!(
            "{throughput:.1}, {} / {}, {:.0} %",
            ms(percentile(&all, 0.5)),
            ms(percentile(&all, 0.99)),
            occupancy * 100.0
        ),
    );
}

/// Section 3: throughput under a configured request rate, against the rate
/// divided by the requests each task needs.
pub async fn rate_limited(report: &mut Report) {
    let per_minute: u32 = 1200;
    // The default concurrency: enough to keep the rate busy, and few
    // enough that the run reaches a steady state within its tasks.
    let concurrency = 16;
    let calls_per_hit = report.calls_per_hit.unwrap_or(8.0);
    let seconds = if report.quick { 20.0 } else { 90.0 };
    let tasks = (per_minute as f64 / 60.0 / calls_per_hit * seconds).ceil() as usize;
    let mut files = FileMaker::new(3);
    let mut config = hit_settings();
    config.insert("requests_per_minute".into(), json!(per_minute));
    let outcome = run(RunSpec {
        instant_strings: true,
        config,
        task_timeout: 600,
        ..task_run(concurrency, files.known(tasks))
    })
    .await;
    check_clean(report, "rate-limited", &outcome);
    let throughput = outcome.steady_throughput();
    let counted: Vec<&RecordedCall> = outcome.task_calls().collect();
    let calls_per_task = outcome.task_calls().count() as f64 / tasks as f64;
    let bound = per_minute as f64 / 60.0 / calls_per_task;
    let fraction = throughput / bound;
    let rejected = outcome
        .calls
        .iter()
        .filter(|call| call.status == 429)
        .count();
    // Requests per second in the steady window, for the rate itself.
    let completions = outcome.completions_by_time();
    let (from, to) = (
        completions[completions.len() / 10].completed_after,
        completions[completions.len() - 1 - completions.len() / 10].completed_after,
    );
    let in_window = counted
        .iter()
        .filter(|call| call.received_after >= from && call.received_after <= to)
        .count();
    let request_rate = in_window as f64 / (to - from).as_secs_f64().max(f64::EPSILON);

    let text = &mut report.text;
    let _ = writeln!(text, "\n## 3. Rate-limited throughput\n");
    let _ = writeln!(
        text,
        "`requests_per_minute = {per_minute}` (default burst), {tasks} known files at \
         concurrency {concurrency}, Intezer latency {} ms. Each task makes {calls_per_task:.2} requests, so \
         the rate allows {bound:.3} tasks/s.\n",
        INTEZER_LATENCY.as_millis()
    );
    let _ = writeln!(
        text,
        "| measure | value |\n|---|---|\n\
         | tasks/s (steady window) | {throughput:.3} |\n\
         | share of rate ÷ requests per task | {:.1} % |\n\
         | requests/s in the steady window | {request_rate:.2} (configured {:.2}) |\n\
         | HTTP 429 from Intezer | {rejected} |",
        fraction * 100.0,
        per_minute as f64 / 60.0
    );
    report.target(
        "3. rate-limited throughput, share of rate ÷ requests per task",
        "≥ 90 %",
        format!("{:.1} %", fraction * 100.0),
        fraction >= 0.9,
    );
}

/// Section 5 (loaded part): resident memory with 1 000 analyses in flight.
pub async fn memory_in_flight(report: &mut Report) {
    let in_flight = match std::env::var("PERF_IN_FLIGHT") {
        Ok(count) => count.parse().expect("PERF_IN_FLIGHT is a number"),
        Err(_) if report.quick => 100,
        Err(_) => 1000,
    };
    let mut files = FileMaker::new(5);
    let mut config = hit_settings();
    config.insert("polling_period_in_seconds".into(), json!(5));
    let outcome = run(RunSpec {
        // Five polls five seconds apart keep every analysis running for
        // about 25 s, long enough to sample the full load.
        polls_before_finished: 5,
        config,
        task_timeout: 300,
        ..task_run(in_flight, files.unknown(in_flight))
    })
    .await;
    check_clean(report, "1 000 in flight", &outcome);
    let loaded: Vec<f64> = outcome
        .samples
        .iter()
        .filter(|sample| sample.in_flight() >= in_flight)
        .map(|sample| sample.rss_mib)
        .collect();
    let peak_loaded = loaded.iter().copied().fold(0.0, f64::max);
    let seconds_loaded = loaded.len() as f64 * 0.1;
    let peak = outcome.peak_rss();

    let text = &mut report.text;
    let _ = writeln!(text, "\n## 5. Memory with {in_flight} analyses in flight\n");
    let _ = writeln!(
        text,
        "`--concurrency {in_flight}`, {in_flight} unknown files, each uploaded and polled every \
         5 s until its sixth poll, so all {in_flight} analyses are in flight together for \
         {seconds_loaded:.0} s, counted as the time the service server has handed out all \
         {in_flight} tasks and received no answer yet. RSS sampled every 100 ms. The peak over \
         the whole run comes when all analyses finish in the same second, and reports, results \
         and the next task polls of all slots overlap.\n"
    );
    let _ = writeln!(
        text,
        "| measure | value |\n|---|---|\n\
         | time with all {in_flight} in flight | {seconds_loaded:.1} s |\n\
         | peak RSS with all {in_flight} in flight | {peak_loaded:.1} MiB |\n\
         | peak RSS over the whole run | {peak:.1} MiB |"
    );
    report.target(
        "5. RSS with 1 000 analyses in flight",
        "< 64 MiB",
        format!("{peak_loaded:.1} MiB (whole run, as all finish at once: {peak:.1} MiB)"),
        !loaded.is_empty() && peak_loaded < 64.0,
    );
}

/// Sections 5 (idle part) and 7: memory and CPU of a service with no tasks.
pub async fn idle(report: &mut Report) {
    let settle = Duration::from_secs(5);
    let window = if report.quick {
        Duration::from_secs(10)
    } else {
        Duration::from_secs(30)
    };
    let outcome = run(RunSpec {
        latency: Duration::ZERO,
        // AL's own long poll, as a real cluster runs it.
        long_poll: 30,
        stop: Stop::After(settle + window),
        ..task_run(16, Vec::new())
    })
    .await;
    let first = outcome.samples.iter().find(|sample| sample.at >= settle);
    let last = outcome.samples.last();
    let (cpu_ms, rss) = match (first, last) {
        (Some(first), Some(last)) => ((last.cpu - first.cpu) * 1000.0, last.rss_mib),
        _ => (f64::NAN, f64::NAN),
    };
    let measured = last
        .zip(first)
        .map_or(0.0, |(l, f)| (l.at - f.at).as_secs_f64());
    let share = cpu_ms / 1000.0 / measured.max(f64::EPSILON);

    let text = &mut report.text;
    let _ = writeln!(text, "\n## 5 and 7. Idle: memory and CPU with no tasks\n");
    let _ = writeln!(
        text,
        "`serve --concurrency 16` against a service server with no tasks, with AL's 30 s task \
         long poll. After {} s of start-up, {measured:.0} s were measured.\n",
        settle.as_secs()
    );
    let _ = writeln!(
        text,
        "| measure | value |\n|---|---|\n\
         | CPU used | {cpu_ms:.0} ms in {measured:.0} s ({:.3} % of one core) |\n\
         | RSS | {rss:.1} MiB |\n\
         | stopped by SIGTERM with exit 0 | {} |",
        share * 100.0,
        if outcome.exit_ok { "yes" } else { "no" }
    );
    let _ = writeln!(
        text,
        "\nCPU time is read from /proc in clock ticks of 10 ms, so a result of 0 ms means \
         less than one tick."
    );
    report.target(
        "5. RSS idle",
        "< 20 MiB",
        format!("{rss:.1} MiB"),
        rss < 20.0,
    );
    report.target(
        "7. idle CPU over 30 s",
        "effectively zero (< 0.1 % of a core)",
        format!("{cpu_ms:.0} ms ({:.3} %)", share * 100.0),
        share < 0.001,
    );
}
