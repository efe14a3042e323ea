//! Prometheus metrics of the service, in one registry.
//!
//! Names follow Prometheus conventions: the `intezer_dynamic_` prefix,
//! `_total` counters, and labels with a handful of values each (never a
//! hash, sid or analysis id).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use prometheus::core::Collector;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every metric of the service.
pub struct Metrics {
    registry: Registry,
    /// Name of every family registered, prefix included.
    families: Vec<String>,
    pub tasks_received: IntCounter,
    /// Labels: `outcome` = result, recoverable_error, nonrecoverable_error,
    /// unposted.
    pub tasks_completed: IntCounterVec,
    pub tasks_in_flight: IntGauge,
    /// Labels: `outcome` = found, not_found, gone, error.
    pub lookups: IntCounterVec,
    /// Labels: `outcome` = accepted, already_running, unsupported,
    /// too_large, password_protected, skipped, quota, error.
    pub submissions: IntCounterVec,
    /// Labels: `verdict` = the verdict after the verdict rules, or `none`.
    pub verdicts: IntCounterVec,
    /// Labels: `source` = assemblyline, intezer.
    pub extracted_files: IntCounterVec,
    /// Seconds from taking a task to posting its result or error.
    pub task_duration: Histogram,
    /// Labels: `endpoint` (stable names such as `files.latest-analysis`),
    /// `status_class` = 2xx, 3xx, 4xx, 5xx, 429, error.
    pub intezer_requests: IntCounterVec,
    /// Labels: `endpoint`.
    pub intezer_request_duration: HistogramVec,
    /// Labels: `call` (register, get task, post task, …), `status`.
    pub service_server_requests: IntCounterVec,
    /// Seconds from starting to wait for an analysis to its outcome.
    pub analysis_wait: Histogram,
    /// Analyses being polled.
    pub analyses_in_flight: IntGauge,
    /// Labels: `heur_id`.
    pub heuristics: IntCounterVec,
    /// Request tokens available now (estimate); -1 when unlimited.
    pub quota_tokens_left: IntGauge,
    /// File scans left until 00:00 UTC; -1 when unlimited.
    pub quota_file_scans_left: IntGauge,
    /// Calls waiting for a token.
    pub quota_waiting: IntGauge,
    /// Labels: `breaker` = outage, submission; value 0 closed, 1 open,
    /// 2 probing.
    pub quota_breaker_state: IntGaugeVec,
    /// Labels: `event` = wait, rate_limited, deadline, budget, breaker.
    pub quota_events: IntCounterVec,
    /// Seconds a call waited for the quota guard before it was sent or
    /// rejected.
    pub quota_wait: Histogram,
    /// Where the quota is enforced: 0 in this container (no Redis set),
    /// 1 shared in Redis, 2 this container's share while Redis is
    /// unreachable.
    pub quota_backend_state: IntGauge,
    /// Request tokens in the shared bucket, as last read; -1 when unknown,
    /// unlimited or not shared.
    pub quota_shared_tokens_left: IntGauge,
    /// File scans counted in Redis today for the API key; -1 when unknown
    /// or not shared.
    pub quota_shared_file_scans_used: IntGauge,
    /// File scans left in the shared budget today; -1 when unknown,
    /// unlimited or not shared.
    pub quota_shared_file_scans_left: IntGauge,
    ready: AtomicBool,
    outage_breaker_open: AtomicBool,
}

/// Prefix of every metric name.
const PREFIX: &str = "intezer_dynamic";

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// Returns the process's metrics, registered on first use.
pub fn metrics() -> &'static Metrics {
    METRICS.get_or_init(Metrics::new)
}

/// The registry being filled, with the names of the families registered.
struct Registrar {
    registry: Registry,
    families: Vec<String>,
}

impl Registrar {
    /// Registers `collector` and records the names of its families.
    fn add<C: Collector + Clone + 'static>(&mut self, collector: &C) {
        self.families.extend(family_names(collector));
        self.registry
            .register(Box::new(collector.clone()))
            .expect("metric names are unique");
    }
}

/// Returns the full names of the families `collector` exports.
fn family_names(collector: &impl Collector) -> Vec<String> {
    collector
        .desc()
        .iter()
        .map(|desc| format!("{PREFIX}_{}", desc.fq_name))
        .collect()
}

fn gauge(registrar: &mut Registrar, name: &str, help: &str) -> IntGauge {
    let gauge = IntGauge::new(name, help).expect("metric definition is valid");
    registrar.add(&gauge);
    gauge
}

fn histogram(registrar: &mut Registrar, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    let histogram = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
        .expect("metric definition is valid");
    registrar.add(&histogram);
    histogram
}

/// Status class label of an HTTP status: `2xx` … `5xx`, with 429 apart.
pub fn status_class(status: u16) -> &'static str {
    match status {
        429 => "429",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    }
}

fn counter_vec(
    registrar: &mut Registrar,
    name: &str,
    help: &str,
    labels: &[&str],
) -> IntCounterVec {
    let counter =
        IntCounterVec::new(Opts::new(name, help), labels).expect("metric definition is valid");
    registrar.add(&counter);
    counter
}

impl Metrics {
    fn new() -> Metrics {
        let mut registrar = Registrar {
            registry: Registry::new_custom(Some(PREFIX.to_string()), None)
                .expect("registry prefix is valid"),
            families: Vec::new(),
        };

        let tasks_received = IntCounter::new(
            "tasks_received_total",
            "Tasks taken from the service server.",
        )
        .expect("metric definition is valid");
        registrar.add(&tasks_received);
        let tasks_in_flight = IntGauge::new("tasks_in_flight", "Tasks taken and not answered yet.")
            .expect("metric definition is valid");
        registrar.add(&tasks_in_flight);

        let build_info = IntGaugeVec::new(
            Opts::new(
                "build_info",
                "Version of the running service; the value is always 1.",
            ),
            &["version"],
        )
        .expect("metric definition is valid");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        registrar.add(&build_info);

        #[cfg(target_os = "linux")]
        {
            let process = prometheus::process_collector::ProcessCollector::for_self();
            let names = family_names(&process);
            if registrar.registry.register(Box::new(process)).is_ok() {
                registrar.families.extend(names);
            }
        }

        let task_duration = histogram(
            &mut registrar,
            "task_duration_seconds",
            "Seconds from taking a task to posting its answer.",
            vec![
                0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
            ],
        );
        let analysis_wait = histogram(
            &mut registrar,
            "analysis_wait_seconds",
            "Seconds spent waiting for a submitted analysis to finish.",
            vec![
                1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 180.0, 300.0, 450.0, 600.0, 900.0,
            ],
        );
        let intezer_request_duration = HistogramVec::new(
            HistogramOpts::new(
                "intezer_request_duration_seconds",
                "Seconds per Intezer request, by endpoint.",
            )
            .buckets(vec![
                0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ]),
            &["endpoint"],
        )
        .expect("metric definition is valid");
        registrar.add(&intezer_request_duration);
        let analyses_in_flight =
            IntGauge::new("analyses_in_flight", "Submitted analyses being polled.")
                .expect("metric definition is valid");
        registrar.add(&analyses_in_flight);

        let quota_tokens_left = gauge(
            &mut registrar,
            "quota_tokens_left",
            "Request tokens available now (estimate); -1 when unlimited.",
        );
        let quota_file_scans_left = gauge(
            &mut registrar,
            "quota_file_scans_left_today",
            "File scans left until 00:00 UTC; -1 when unlimited.",
        );
        let quota_waiting = gauge(
            &mut registrar,
            "quota_waiting",
            "Calls waiting for a quota token.",
        );
        let quota_breaker_state = IntGaugeVec::new(
            Opts::new(
                "quota_breaker_state",
                "Breaker state: 0 closed, 1 open, 2 probing.",
            ),
            &["breaker"],
        )
        .expect("metric definition is valid");
        registrar.add(&quota_breaker_state);

        let quota_wait = histogram(
            &mut registrar,
            "quota_wait_seconds",
            "Seconds a call waited for the quota guard.",
            vec![
                0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ],
        );

        let quota_backend_state = gauge(
            &mut registrar,
            "quota_backend_state",
            "Where the quota is enforced: 0 in this container, 1 shared in Redis, 2 this container's share while Redis is unreachable.",
        );
        let quota_shared_tokens_left = gauge(
            &mut registrar,
            "quota_shared_tokens_left",
            "Request tokens in the Redis-shared bucket, as last read; -1 when unknown, unlimited or not shared.",
        );
        let quota_shared_file_scans_used = gauge(
            &mut registrar,
            "quota_shared_file_scans_used_today",
            "File scans counted in Redis today (UTC) for the API key; -1 when unknown or not shared.",
        );
        let quota_shared_file_scans_left = gauge(
            &mut registrar,
            "quota_shared_file_scans_left_today",
            "File scans left in the Redis-shared budget until 00:00 UTC; -1 when unknown, unlimited or not shared.",
        );
        for unknown in [
            &quota_shared_tokens_left,
            &quota_shared_file_scans_used,
            &quota_shared_file_scans_left,
        ] {
            unknown.set(-1);
        }

        Metrics {
            quota_wait,
            quota_backend_state,
            quota_shared_tokens_left,
            quota_shared_file_scans_used,
            quota_shared_file_scans_left,
            quota_tokens_left,
            quota_file_scans_left,
            quota_waiting,
            quota_breaker_state,
            quota_events: counter_vec(
                &mut registrar,
                "quota_events_total",
                "Quota guard events: waits, 429 pauses, deadline, budget and breaker rejections.",
                &["event"],
            ),
            task_duration,
            analysis_wait,
            intezer_request_duration,
            analyses_in_flight,
            intezer_requests: counter_vec(
                &mut registrar,
                "intezer_requests_total",
                "Intezer requests, by endpoint and status class.",
                &["endpoint", "status_class"],
            ),
            service_server_requests: counter_vec(
                &mut registrar,
                "service_server_requests_total",
                "Service-server requests, by call and status.",
                &["call", "status"],
            ),
            heuristics: counter_vec(
                &mut registrar,
                "heuristics_total",
                "Heuristics raised in posted results, by id.",
                &["heur_id"],
            ),
            tasks_completed: counter_vec(
                &mut registrar,
                "tasks_completed_total",
                "Tasks answered, by outcome.",
                &["outcome"],
            ),
            lookups: counter_vec(
                &mut registrar,
                "lookups_total",
                "Intezer hash lookups, by outcome.",
                &["outcome"],
            ),
            submissions: counter_vec(
                &mut registrar,
                "submissions_total",
                "File uploads to Intezer, by outcome.",
                &["outcome"],
            ),
            verdicts: counter_vec(
                &mut registrar,
                "verdicts_total",
                "Results posted, by verdict.",
                &["verdict"],
            ),
            extracted_files: counter_vec(
                &mut registrar,
                "extracted_files_total",
                "Sub-files extracted, by where they came from.",
                &["source"],
            ),
            tasks_received,
            tasks_in_flight,
            registry: registrar.registry,
            families: registrar.families,
            ready: AtomicBool::new(false),
            outage_breaker_open: AtomicBool::new(false),
        }
    }

    /// Returns the name of every metric family the service exports. Unlike
    /// the rendered text, it lists labelled families that have no label set
    /// yet.
    pub fn family_names(&self) -> &[String] {
        &self.families
    }

    /// Renders the metrics in Prometheus's text format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        let encoder = TextEncoder::new();
        if encoder
            .encode(&self.registry.gather(), &mut buffer)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(buffer).unwrap_or_default()
    }

    /// Marks the service ready (registered and taking tasks) or not.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// Whether the service is registered, taking tasks, and its outage
    /// breaker is not open (so Intezer is reachable as far as the service can tell).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst) && !self.outage_breaker_open.load(Ordering::SeqCst)
    }

    /// Records whether the outage breaker is open, for `/readyz`.
    pub fn set_outage_breaker_open(&self, open: bool) {
        self.outage_breaker_open.store(open, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_has_prefixed_names() {
        let metrics = metrics();
        metrics.lookups.with_label_values(&["found"]).inc();
        let text = metrics.render();
        assert!(
            text.contains("intezer_dynamic_lookups_total{outcome=\"found\"}"),
            "{text}"
        );
        assert!(text.contains("intezer_dynamic_build_info"), "{text}");
        assert!(
            text.contains("intezer_dynamic_tasks_received_total"),
            "{text}"
        );
    }

    /// The README's metric table must name every family the registry
    /// exports, so that SREs can look each one up.
    #[test]
    fn readme_lists_every_metric() {
        let readme = include_str!("../../README.md");
        let listed = |name: &str| readme.contains(&format!("| `{name}`"));
        let metrics = metrics();
        let names = metrics.family_names();
        for family in metrics.registry.gather() {
            assert!(
                names.iter().any(|name| name == family.name()),
                "{} was registered without its name being recorded",
                family.name()
            );
        }
        assert!(
            names
                .iter()
                .any(|name| name == "intezer_dynamic_heuristics_total"),
            "labelled families are listed before they have a label set"
        );

        let mut missing = Vec::new();
        for name in names {
            let short = name.strip_prefix("intezer_dynamic_").unwrap_or(name);
            let documented = if short.starts_with("process_") {
                listed("process_*")
            } else {
                listed(short)
            };
            if !documented {
                missing.push(name.clone());
            }
        }
        assert!(missing.is_empty(), "README metric table lacks {missing:?}");
    }
}
