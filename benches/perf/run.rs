//! One run: both simulators in this process, the release `serve` binary as
//! a child, and samples of the child's CPU time, memory and progress.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use intezer_dynamic::simulator::intezer::{
    DefaultOptions, IntezerBehaviour, IntezerSimulator, RecordedCall,
};
use intezer_dynamic::simulator::service_server::{
    Completion, ServiceServerOptions, ServiceServerSimulator, SimFile, SimReport, DEFAULT_API_KEY,
};

use super::procstat;

/// Interval between samples of the child.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// Maximum time a run may take before the child is killed.
const RUN_LIMIT: Duration = Duration::from_secs(900);

/// Runs started so far, which numbers the kept logs.
static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// When a run ends.
pub enum Stop {
    /// When the service has answered every task and exited.
    AllAnswered,
    /// After this long; the service is then stopped with SIGTERM.
    After(Duration),
}

/// The load and settings of one run.
pub struct RunSpec {
    pub concurrency: usize,
    pub files: Vec<SimFile>,
    /// Wait the Intezer simulator adds before every response.
    pub latency: Duration,
    /// Status polls of a new analysis answered "in progress" before the one
    /// that finds it finished.
    pub polls_before_finished: u32,
    /// Strings operations finish at once instead of after one more read.
    pub instant_strings: bool,
    /// Service settings on top of the Intezer base URL and key.
    pub config: Map<String, Value>,
    /// Seconds the service server gives each task.
    pub task_timeout: u64,
    /// Seconds a task long poll may last (`TASK_REQUEST_TIMEOUT`).
    pub long_poll: u64,
    pub stop: Stop,
}

/// One reading of the child.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub at: Duration,
    /// CPU seconds the child has used since it started.
    pub cpu: f64,
    pub rss_mib: f64,
    pub handed_out: usize,
    pub completed: usize,
}

impl Sample {
    pub fn in_flight(&self) -> usize {
        self.handed_out.saturating_sub(self.completed)
    }
}

/// Measurements and records of one run.
pub struct RunOutcome {
    pub report: SimReport,
    pub calls: Vec<RecordedCall>,
    pub samples: Vec<Sample>,
    pub exit_ok: bool,
    /// CPU seconds this process (both simulators) used during the run.
    pub simulator_cpu: f64,
    /// Lines of the service's log at WARNING or above.
    pub log: String,
}

impl RunOutcome {
    /// Completions in the order they arrived.
    pub fn completions_by_time(&self) -> Vec<&Completion> {
        let mut completions: Vec<&Completion> = self.report.completions.iter().collect();
        completions.sort_by_key(|completion| completion.completed_after);
        completions
    }

    /// Tasks per second between the completion of the first and the last
    /// tenth of the tasks, so start-up and the last stragglers are left out.
    pub fn steady_throughput(&self) -> f64 {
        let completions = self.completions_by_time();
        let count = completions.len();
        if count < 10 {
            return 0.0;
        }
        let (first, last) = (count / 10, count - 1 - count / 10);
        let span = completions[last].completed_after - completions[first].completed_after;
        (last - first) as f64 / span.as_secs_f64().max(f64::EPSILON)
    }

    /// Samples between the first that saw a tenth of the tasks answered and
    /// the last that saw no more than nine tenths, the same window as
    /// [`RunOutcome::steady_throughput`].
    pub fn steady_samples(&self) -> Option<(Sample, Sample)> {
        let total = self.report.completions.len();
        let first = self
            .samples
            .iter()
            .find(|sample| sample.completed >= total / 10)?;
        let last = self
            .samples
            .iter()
            .rev()
            .find(|sample| sample.completed <= total - total / 10)?;
        (last.completed > first.completed).then_some((*first, *last))
    }

    /// Returns the service's CPU milliseconds per answered task in the
    /// steady window.
    pub fn cpu_ms_per_task(&self) -> Option<f64> {
        let (first, last) = self.steady_samples()?;
        Some((last.cpu - first.cpu) * 1000.0 / (last.completed - first.completed) as f64)
    }

    pub fn peak_rss(&self) -> f64 {
        self.samples
            .iter()
            .map(|sample| sample.rss_mib)
            .fold(0.0, f64::max)
    }

    /// Calls that carry a task's work: the token and start-up calls are
    /// left out.
    pub fn task_calls(&self) -> impl Iterator<Item = &RecordedCall> {
        self.calls.iter().filter(|call| is_task_call(call))
    }

    /// Checks that every task handed out was answered once, with no
    /// protocol error, and that the service exited with status 0.
    pub fn clean(&self) -> bool {
        self.exit_ok
            && self.report.lost.is_empty()
            && self.report.completed_twice.is_empty()
            && self.report.protocol_errors.is_empty()
    }
}

/// Checks whether a recorded call is made for a task, rather than for the
/// service's token or its start-up quota check.
pub fn is_task_call(call: &RecordedCall) -> bool {
    !matches!(
        call.endpoint.as_str(),
        "get-access-token" | "is-available" | "current-quota-usage"
    )
}

/// Runs `spec` and returns what it saw. Panics when a simulator or the
/// service cannot start, since no measurement is possible then.
pub async fn run(spec: RunSpec) -> RunOutcome {
    let intezer = IntezerSimulator::start(
        IntezerBehaviour::Default(DefaultOptions {
            polls_before_finished: spec.polls_before_finished,
            latency: spec.latency,
            instant_strings: spec.instant_strings,
            ..DefaultOptions::default()
        }),
        0,
    )
    .await
    .expect("the Intezer simulator starts");
    let mut config = json!({
        "base_url": intezer.base_url(),
        "api_key": "perf-key",
    })
    .as_object()
    .cloned()
    .unwrap_or_default();
    config.extend(spec.config);
    let tasks = spec.files.len();
    let options = ServiceServerOptions {
        files: spec.files,
        config_overrides: config,
        max_long_poll: Duration::from_secs(spec.long_poll),
        timeout_override: Some(spec.task_timeout),
        ..ServiceServerOptions::default()
    };
    let server = ServiceServerSimulator::start(options, 0)
        .await
        .expect("the service-server simulator starts");

    let work = tempfile::tempdir().expect("a temporary folder");
    let tasking = work.path().join("tasking");
    std::fs::create_dir(&tasking).expect("a tasking folder");
    let log_path = work.path().join("service.log");
    let simulator_cpu_before = procstat::own_cpu_seconds();
    // PERF_SERVICE_WRAPPER runs the service under a profiler, such as
    // "valgrind --tool=massif"; CPU and memory are then the wrapper's.
    let wrapper = std::env::var("PERF_SERVICE_WRAPPER").unwrap_or_default();
    let mut words = wrapper.split_whitespace();
    let mut command = match words.next() {
        Some(program) => {
            let mut command = Command::new(program);
            command
                .args(words)
                .arg(env!("CARGO_BIN_EXE_intezer-dynamic"));
            command
        }
        None => Command::new(env!("CARGO_BIN_EXE_intezer-dynamic")),
    };
    command
        .args(["serve", "--concurrency", &spec.concurrency.to_string()])
        .args(["--metrics-addr", "127.0.0.1:0"])
        .env("SERVICE_API_HOST", server.base_url())
        .env("SERVICE_API_KEY", DEFAULT_API_KEY)
        .env("TASK_REQUEST_TIMEOUT", spec.long_poll.to_string())
        .env("TASKING_DIR", &tasking)
        .env("HOSTNAME", "perf")
        .env(
            "LOG_LEVEL",
            std::env::var("PERF_LOG_LEVEL").unwrap_or_else(|_| "WARNING".to_string()),
        )
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(&log_path).expect("a log file"),
        ));
    if matches!(spec.stop, Stop::AllAnswered) {
        command.env("AL_SERVICE_TASK_LIMIT", tasks.to_string());
    }
    let mut child = command.spawn().expect("the serve binary starts");
    let samples = sample_until_stop(&mut child, &server, &spec.stop).await;
    let exit_ok = match spec.stop {
        Stop::AllAnswered => child.wait().is_ok_and(|status| status.success()),
        Stop::After(_) => terminate(&mut child),
    };
    let simulator_cpu = procstat::own_cpu_seconds() - simulator_cpu_before;

    if let Ok(folder) = std::env::var("PERF_LOG_DIR") {
        let kept = std::path::Path::new(&folder).join(format!(
            "serve-{}-{}.log",
            std::process::id(),
            RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        if let Err(err) = std::fs::copy(&log_path, &kept) {
            eprintln!("cannot keep the service log in {}: {err}", kept.display());
        }
    }
    let outcome = RunOutcome {
        report: server.report(),
        calls: intezer.calls(),
        samples,
        exit_ok,
        simulator_cpu,
        log: std::fs::read_to_string(&log_path).unwrap_or_default(),
    };
    intezer.stop().await;
    server.stop().await;
    outcome
}

/// Samples the child until the stop condition holds. A run that passes
/// [`RUN_LIMIT`] is killed.
async fn sample_until_stop(
    child: &mut Child,
    server: &intezer_dynamic::simulator::service_server::ServiceServerHandle,
    stop: &Stop,
) -> Vec<Sample> {
    let pid = child.id();
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut ticker = tokio::time::interval(SAMPLE_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let (handed_out, completed) = server.progress_counts();
        let (Some(cpu), Some(rss_mib)) = (procstat::cpu_seconds(pid), procstat::rss_mib(pid))
        else {
            break;
        };
        samples.push(Sample {
            at: started.elapsed(),
            cpu,
            rss_mib,
            handed_out,
            completed,
        });
        let done = match stop {
            Stop::AllAnswered => child.try_wait().ok().flatten().is_some(),
            Stop::After(limit) => started.elapsed() >= *limit,
        };
        if done {
            break;
        }
        if started.elapsed() > RUN_LIMIT {
            eprintln!("the run passed {RUN_LIMIT:?}; stopping the service");
            let _ = child.kill();
            break;
        }
    }
    samples
}

/// Stops the child with SIGTERM, as a container stop does, and returns
/// whether it exited with status 0.
fn terminate(child: &mut Child) -> bool {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    child.wait().is_ok_and(|status| status.success())
}
