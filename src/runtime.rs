//! Starting the service: registration, configuration, the pipeline and the
//! task intake, for `serve`; and the same pipeline on local files, for
//! `scan`.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt;
use serde_json::{Map, Value};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::actors::hasher::{FileDigest, HashFile};
use crate::actors::task_intake::{IntakeSettings, IntakeSummary, StopIntake, TaskIntake};
use crate::actors::{Pipeline, PipelineSettings, TaskOutcome};
use crate::assemblyline::{
    Identity, Manifest, ServiceIdentity, ServiceServerClient, ServiceServerError, Task, TaskFailure,
};
use crate::config::secret::redact_json;
use crate::config::{ConfigError, Environment, ServiceConfig};
use crate::intezer::{IntezerClient, IntezerError, IntezerSettings, RetryPolicy};
use crate::quota::{
    BreakerState, QuotaGuard, QuotaOverrides, QuotaSettings, QuotaSnapshot, SharedQuotaSettings,
    SharedState, CUSTOM_TIER,
};
use crate::report::safelist::{Safelist, SharedSafelist};
use crate::telemetry::metrics::metrics;

/// Failure to start or run the service.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    ServiceServer(#[from] ServiceServerError),
    #[error(transparent)]
    Intezer(#[from] IntezerError),
    #[error("cannot serve metrics on {addr}: {message}; choose another address with --metrics-addr or METRICS_ADDR")]
    Metrics {
        addr: std::net::SocketAddr,
        message: String,
    },
}

/// Options of `serve` beyond the environment. `Debug` hides `api_key` in
/// the overrides and shows only the size of the manifest text.
#[derive(Clone, Default)]
pub struct ServeOptions {
    /// Tasks in flight at once.
    pub concurrency: usize,
    /// `--set KEY=VALUE` overrides, applied over the registered config.
    pub overrides: Map<String, Value>,
    pub register_only: bool,
    /// Manifest text to use instead of the embedded one.
    pub manifest_text: Option<String>,
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

impl fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let overrides = redact_json(&Value::Object(self.overrides.clone()));
        let manifest_text = self
            .manifest_text
            .as_ref()
            .map(|text| format!("<{} bytes>", text.len()));
        f.debug_struct("ServeOptions")
            .field("concurrency", &self.concurrency)
            .field("overrides", &overrides)
            .field("register_only", &self.register_only)
            .field("manifest_text", &manifest_text)
            .field("metrics_addr", &self.metrics_addr)
            .finish()
    }
}

/// The way `serve` ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServeExit {
    /// Registration only: `REGISTER_ONLY`, or the server created a new
    /// version and asked the container to restart (`keep_alive: false`).
    Registered { keep_alive: bool },
    /// The intake stopped after a shutdown request or the task limit.
    Finished(IntakeSummary),
}

/// Loads the manifest the service registers.
pub fn load_manifest(env: &Environment, text: Option<&str>) -> Result<Manifest, ConfigError> {
    match text {
        Some(text) => Manifest::parse(text, &env.service_tag),
        None => Manifest::embedded(&env.service_tag),
    }
}

/// Builds the identity posted in every result and error.
pub fn service_identity(manifest: &Manifest) -> ServiceIdentity {
    ServiceIdentity {
        name: manifest.name.clone(),
        version: manifest.version.clone(),
        tool_version: manifest.tool_version.clone().filter(|v| !v.is_empty()),
        heuristic_scores: manifest.heuristic_scores.clone(),
    }
}

const BYTES_PER_MIB: u64 = 1024 * 1024;

/// Builds the Intezer client for `config`, with its request-rate limiter.
/// With `tls_verify` false the client logs a warning each time it is built,
/// so once per start of `serve` or `scan`.
pub fn intezer_client(config: &ServiceConfig) -> Result<IntezerClient, IntezerError> {
    let mut settings = IntezerSettings::new(config.base_url.clone(), config.api_key.clone());
    settings.api_version = config.api_version.clone();
    settings.is_on_premise = config.is_on_premise;
    settings.retry = RetryPolicy {
        retry_forever: config.retry_forever,
        ..RetryPolicy::default()
    };
    settings.user_agent = concat!("intezer-dynamic/", env!("CARGO_PKG_VERSION")).to_string();
    settings.tls_verify = config.tls_verify;
    let ca_cert_path = config.ca_cert_path.trim();
    if !ca_cert_path.is_empty() {
        settings.ca_path = Some(PathBuf::from(ca_cert_path));
    }
    settings.max_response_bytes = config.max_response_mb.saturating_mul(BYTES_PER_MIB);
    let limits = quota_settings(config)?;
    let quota = match shared_quota_settings(config) {
        Some(shared) => QuotaGuard::shared(limits, shared),
        None => QuotaGuard::new(limits),
    }
    .map_err(|err| IntezerError::Config(err.to_string()))?;
    Ok(IntezerClient::new(settings)?.with_quota(Arc::new(quota)))
}

/// The shared quota backend of `config`, when `quota_redis_url` is set.
pub fn shared_quota_settings(config: &ServiceConfig) -> Option<SharedQuotaSettings> {
    if config.quota_redis_url.is_empty() {
        return None;
    }
    let containers = u32::try_from(config.quota_redis_fallback_containers).unwrap_or(u32::MAX);
    Some(SharedQuotaSettings::new(
        config.quota_redis_url.clone(),
        &config.api_key,
        containers,
    ))
}

/// The quota settings of `config`: the `quota_tier` preset, with
/// `requests_per_minute`, `requests_burst` and `file_scans_per_day`
/// overriding it where they differ from their defaults. The `custom` tier
/// takes the three values as they are.
pub fn quota_settings(config: &ServiceConfig) -> Result<QuotaSettings, IntezerError> {
    let defaults = ServiceConfig::default();
    let rate = u32::try_from(config.requests_per_minute).unwrap_or(u32::MAX);
    let burst = u32::try_from(config.requests_burst).unwrap_or(u32::MAX);
    let custom = config.quota_tier == CUSTOM_TIER;
    let overrides = QuotaOverrides {
        requests_per_minute: (custom || config.requests_per_minute != defaults.requests_per_minute)
            .then_some(rate),
        burst: (custom || config.requests_burst != defaults.requests_burst).then_some(burst),
        file_scans_per_day: (custom || config.file_scans_per_day != defaults.file_scans_per_day)
            .then_some(config.file_scans_per_day),
        ..QuotaOverrides::default()
    };
    QuotaSettings::resolve(&config.quota_tier, &overrides)
        .map_err(|err| IntezerError::Config(err.to_string()))
}

/// Longest wait at start for the first connection to Redis, after which the
/// service takes tasks with the local share of the quota.
const FIRST_REDIS_CONNECTION_WAIT: Duration = Duration::from_secs(5);

/// Interval between reads of Intezer's quota use after the first.
const QUOTA_SEED_INTERVAL: Duration = Duration::from_secs(10 * 60);

/// Re-reads Intezer's quota use every [`QUOTA_SEED_INTERVAL`], so scans
/// spent by other users of the key count here too.
fn keep_quota_seeded(client: Arc<IntezerClient>) {
    actix_rt::spawn(async move {
        let mut interval = tokio::time::interval(QUOTA_SEED_INTERVAL);
        interval.tick().await;
        loop {
            interval.tick().await;
            seed_quota(&client).await;
        }
    });
}

/// Interval between copies of the quota guard's state into the metrics.
const QUOTA_METRICS_INTERVAL: Duration = Duration::from_secs(5);

/// Copies the quota guard's state into the metrics every few seconds for as
/// long as the actix system runs.
fn export_quota_metrics(quota: Arc<QuotaGuard>) {
    actix_rt::spawn(async move {
        let mut previous = quota.snapshot();
        let mut interval = tokio::time::interval(QUOTA_METRICS_INTERVAL);
        loop {
            interval.tick().await;
            let now = quota.snapshot();
            let metrics = metrics();
            metrics
                .quota_tokens_left
                .set(now.tokens_left.map_or(-1, i64::from));
            metrics
                .quota_file_scans_left
                .set(now.file_scans_left_today.map_or(-1, |left| left as i64));
            metrics.quota_waiting.set(now.waiting as i64);
            export_shared_quota(&now);
            metrics.set_outage_breaker_open(now.outage_breaker == BreakerState::Open);
            for (breaker, state) in [
                ("outage", now.outage_breaker),
                ("submission", now.submission_breaker),
            ] {
                let value = match state {
                    BreakerState::Closed => 0,
                    BreakerState::Open => 1,
                    BreakerState::Probing => 2,
                };
                metrics
                    .quota_breaker_state
                    .with_label_values(&[breaker])
                    .set(value);
            }
            let events = [
                ("wait", now.waits, previous.waits),
                ("rate_limited", now.rate_limited, previous.rate_limited),
                ("deadline", now.deadline_errors, previous.deadline_errors),
                ("budget", now.budget_rejections, previous.budget_rejections),
                (
                    "breaker",
                    now.breaker_rejections,
                    previous.breaker_rejections,
                ),
            ];
            for (event, current, before) in events {
                metrics
                    .quota_events
                    .with_label_values(&[event])
                    .inc_by(current.saturating_sub(before));
            }
            previous = now;
        }
    });
}

/// Copies the shared backend's state and figures into the metrics; -1 where
/// a figure is unknown, unlimited, or there is no shared backend.
fn export_shared_quota(snapshot: &QuotaSnapshot) {
    let metrics = metrics();
    let unknown = -1;
    let Some(shared) = &snapshot.shared else {
        metrics.quota_backend_state.set(0);
        metrics.quota_shared_tokens_left.set(unknown);
        metrics.quota_shared_file_scans_used.set(unknown);
        metrics.quota_shared_file_scans_left.set(unknown);
        return;
    };
    let state = match shared.state {
        SharedState::Shared => 1,
        SharedState::Connecting | SharedState::Fallback => 2,
    };
    let as_gauge = |value: Option<u64>| value.map_or(unknown, |value| value as i64);
    metrics.quota_backend_state.set(state);
    metrics
        .quota_shared_tokens_left
        .set(shared.tokens_left.map_or(unknown, i64::from));
    metrics
        .quota_shared_file_scans_used
        .set(as_gauge(shared.file_scans_used_today));
    metrics
        .quota_shared_file_scans_left
        .set(as_gauge(shared.file_scans_left_today));
}

/// Seeds the guard's count of today's file scans from Intezer, when the
/// server reports a daily quota. Failures only log: local counting goes on.
async fn seed_quota(client: &IntezerClient) {
    let Some(quota) = client.quota() else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    match client.current_quota_usage(deadline).await {
        Ok(usage) => match usage.file_scans {
            Some(scans) if scans.period.as_deref() == Some("daily") => {
                let used = scans.usage.unwrap_or(0);
                quota.seed_used_today(used);
                info!(used, quota = ?scans.quota, "file scans used today, from Intezer");
            }
            Some(scans) => info!(
                period = scans.period.as_deref().unwrap_or("unknown"),
                used = ?scans.usage,
                quota = ?scans.quota,
                "Intezer quota is not daily; counting locally"
            ),
            None => info!("Intezer reports no file-scan quota; counting locally"),
        },
        Err(err) => warn!(error = %err, "cannot read Intezer's quota use; counting locally"),
    }
}

/// Runs the AL service until `shutdown` resolves or the task limit is
/// reached. Must run inside an actix `System`.
pub async fn serve(
    env: Environment,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<ServeExit, RuntimeError> {
    let manifest = load_manifest(&env, options.manifest_text.as_deref())?;
    let identity = Identity {
        service_name: manifest.name.clone(),
        service_version: manifest.version.clone(),
        tool_version: manifest.tool_version.clone().unwrap_or_default(),
    };
    let client = ServiceServerClient::new(&env, identity)?;

    let registration = client.register(&manifest.raw, &env.hostname).await?;
    info!(
        service = %manifest.name,
        version = %manifest.version,
        keep_alive = registration.keep_alive,
        new_heuristics = registration.new_heuristics.len(),
        "registered with the service server"
    );
    if env.register_only || options.register_only || !registration.keep_alive {
        return Ok(ServeExit::Registered {
            keep_alive: registration.keep_alive,
        });
    }
    if let Some(addr) = options.metrics_addr {
        let bound = crate::telemetry::server::start(addr).map_err(|err| RuntimeError::Metrics {
            addr,
            message: err.to_string(),
        })?;
        info!(addr = %bound, "serving /metrics, /healthz and /readyz");
    }

    let server_config = registration
        .service_config
        .get("config")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut config =
        ServiceConfig::from_layers([&manifest.config, &server_config, &options.overrides])?;
    if let Some(url) = &env.quota_redis_url {
        config.quota_redis_url = url.clone();
    }
    config.require_api_key()?;
    let timeout = registration
        .service_config
        .get("timeout")
        .and_then(Value::as_u64)
        .unwrap_or(manifest.timeout);
    let server_params = Manifest::server_param_defaults(&registration.service_config);
    if !is_known_base_url(&config.base_url) && !config.is_on_premise {
        warn!(base_url = %config.base_url, "base_url is not an Intezer cloud URL but is_on_premise is false");
    }

    if let Err(err) = tempfile::tempdir_in(&env.tasking_dir) {
        return Err(ConfigError::InvalidEnvironment {
            name: "TASKING_DIR",
            value: format!("{} ({err})", env.tasking_dir.display()),
            expected: "a folder where the service may create task folders",
        }
        .into());
    }
    let concurrency = options.concurrency.max(1);
    let intezer = Arc::new(intezer_client(&config)?);
    let limits = quota_settings(&config)?;
    match intezer.quota().and_then(|quota| quota.shared_backend()) {
        None => info!(
            tier = %config.quota_tier,
            requests_per_minute = limits.requests_per_minute,
            burst = limits.burst,
            file_scans_per_day = limits.file_scans_per_day,
            "quota limits of this container (its share of the API key; 0 means unlimited)"
        ),
        Some(backend) => {
            let state = backend
                .wait_for_state(FIRST_REDIS_CONNECTION_WAIT, |state| {
                    state != SharedState::Connecting
                })
                .await;
            let fallback_containers = backend.settings().fallback_containers;
            info!(
                tier = %config.quota_tier,
                requests_per_minute = limits.requests_per_minute,
                burst = limits.burst,
                file_scans_per_day = limits.file_scans_per_day,
                redis = %backend.settings().redacted_url(),
                ?state,
                fallback_containers,
                "quota limits of the whole API key, shared through Redis (0 means unlimited)"
            );
            if fallback_containers == 1 {
                warn!("quota_redis_fallback_containers is 1: while Redis is unreachable, every container uses the whole key's limits");
            }
        }
    }
    seed_quota(&intezer).await;
    keep_quota_seeded(intezer.clone());
    if let Some(quota) = intezer.quota() {
        export_quota_metrics(quota.clone());
    }
    let identity = Arc::new(service_identity(&manifest));
    let safelist = SharedSafelist::default();
    refresh_safelist(&client, &env.hostname, &safelist).await;
    keep_safelist_fresh(client.clone(), env.hostname.clone(), safelist.clone());
    let pipeline = Arc::new(Pipeline::start(PipelineSettings {
        config: Arc::new(config),
        identity: identity.clone(),
        param_defaults: vec![manifest.param_defaults.clone(), server_params],
        client: intezer,
        concurrency,
        file_source: Some((client.clone(), env.hostname.clone())),
        safelist,
    }));
    let settings = IntakeSettings {
        concurrency,
        hostname: env.hostname.clone(),
        tasking_dir: env.tasking_dir.clone(),
        task_limit: env.task_limit,
        task_timeout: Duration::from_secs(timeout),
    };
    info!(
        concurrency,
        timeout_seconds = timeout,
        budget_seconds = settings.task_budget().as_secs(),
        task_limit = env
            .task_limit
            .map_or_else(|| "none".to_string(), |limit| limit.to_string()),
        "taking tasks"
    );
    let intake = TaskIntake::start(client, pipeline, identity, settings);
    metrics().set_ready(true);

    tokio::pin!(shutdown);
    let summary = tokio::select! {
        summary = intake.finished() => summary,
        _ = &mut shutdown => {
            intake.addr.do_send(StopIntake);
            intake.finished().await
        }
    };
    metrics().set_ready(false);
    info!(
        tasks = summary.tasks,
        results = summary.results,
        errors = summary.errors,
        "stopped"
    );
    Ok(ServeExit::Finished(summary))
}

/// Checks whether `base_url` is one of Intezer's cloud hosts, or a
/// loopback address as the simulators use.
fn is_known_base_url(base_url: &str) -> bool {
    let Ok(url) = url::Url::parse(base_url) else {
        return false;
    };
    matches!(
        url.host_str(),
        Some("analyze.intezer.com" | "us.app.intezer.com" | "127.0.0.1" | "localhost" | "[::1]")
    )
}

/// Interval between reads of AL's tag safelist, so changes an analyst makes
/// reach running containers.
const SAFELIST_REFRESH: Duration = Duration::from_secs(30 * 60);

/// Reads the safelist from the service server into `safelist`. A failure
/// keeps the previous one and logs a warning.
async fn refresh_safelist(
    client: &ServiceServerClient,
    container_id: &str,
    safelist: &SharedSafelist,
) {
    match client.safelist(container_id).await {
        Ok(answer) => match Safelist::from_api(&answer) {
            Ok(fresh) => {
                info!(entries = fresh.len(), "tag safelist loaded");
                safelist.replace(fresh);
            }
            Err(err) => warn!(error = %err, "tag safelist ignored"),
        },
        Err(err) => warn!(error = %err, "cannot read the tag safelist; keeping the previous one"),
    }
}

/// Re-reads the safelist every [`SAFELIST_REFRESH`] for as long as the
/// actix system runs.
fn keep_safelist_fresh(
    client: ServiceServerClient,
    container_id: String,
    safelist: SharedSafelist,
) {
    actix_rt::spawn(async move {
        let mut interval = tokio::time::interval(SAFELIST_REFRESH);
        interval.tick().await;
        loop {
            interval.tick().await;
            refresh_safelist(&client, &container_id, &safelist).await;
        }
    });
}

/// One local file to scan.
#[derive(Debug, Clone)]
pub struct ScanInput {
    pub path: PathBuf,
}

/// Output of `scan` for one file.
#[derive(Debug, Clone)]
pub struct ScanReport {
    pub path: PathBuf,
    pub sha256: String,
    /// The result JSON, or the error JSON, exactly as `serve` would post it.
    pub outcome: ScanOutcome,
    /// Copies of the extracted sub-files, when an extraction folder is set.
    pub extracted: Vec<PathBuf>,
}

#[derive(Debug, Clone)]
pub enum ScanOutcome {
    Result(Value),
    Error(Value),
}

/// Settings of a local scan.
pub struct ScanSettings {
    pub manifest: Manifest,
    pub config: ServiceConfig,
    /// Submission parameters set with `--param`.
    pub params: Map<String, Value>,
    pub concurrency: usize,
    /// Where extracted sub-files are copied as `<sha256>.sample`; `None`
    /// drops them.
    pub extract_dir: Option<PathBuf>,
}

/// Runs the pipeline on local files, as `serve` would on tasks for them.
/// Must run inside an actix `System`.
pub async fn scan(
    settings: ScanSettings,
    inputs: Vec<ScanInput>,
) -> Result<Vec<ScanReport>, RuntimeError> {
    settings.config.require_api_key()?;
    let identity = Arc::new(service_identity(&settings.manifest));
    let concurrency = settings.concurrency.max(1);
    let pipeline = Arc::new(Pipeline::start(PipelineSettings {
        config: Arc::new(settings.config.clone()),
        identity: identity.clone(),
        param_defaults: vec![settings.manifest.param_defaults.clone()],
        client: Arc::new(intezer_client(&settings.config)?),
        concurrency,
        file_source: None,
        safelist: SharedSafelist::default(),
    }));
    let budget = IntakeSettings {
        concurrency,
        hostname: String::new(),
        tasking_dir: std::env::temp_dir(),
        task_limit: None,
        task_timeout: Duration::from_secs(settings.manifest.timeout),
    }
    .task_budget();

    let name = settings.manifest.name.clone();
    let params = settings.params.clone();
    let extract_dir = settings.extract_dir.clone();
    let reports = futures_util::stream::iter(inputs)
        .map(|input| {
            let (pipeline, identity, name, params) = (
                pipeline.clone(),
                identity.clone(),
                name.clone(),
                params.clone(),
            );
            let extract_dir = extract_dir.clone();
            async move {
                scan_one(
                    &pipeline,
                    &identity,
                    &name,
                    params,
                    input,
                    budget,
                    extract_dir.as_deref(),
                )
                .await
            }
        })
        .buffered(concurrency)
        .collect::<Vec<_>>()
        .await;
    Ok(reports)
}

async fn scan_one(
    pipeline: &Pipeline,
    identity: &ServiceIdentity,
    service_name: &str,
    params: Map<String, Value>,
    input: ScanInput,
    budget: Duration,
    extract_dir: Option<&Path>,
) -> ScanReport {
    let started = Utc::now();
    let deadline = Instant::now() + budget;
    let digest: Result<FileDigest, String> = match pipeline
        .hasher
        .send(HashFile {
            path: input.path.clone(),
        })
        .await
    {
        Ok(Ok(digest)) => Ok(digest),
        Ok(Err(err)) => Err(err.to_string()),
        Err(err) => Err(err.to_string()),
    };
    let digest = match digest {
        Ok(digest) => digest,
        Err(message) => {
            let failure = TaskFailure::nonrecoverable(message);
            return ScanReport {
                path: input.path,
                sha256: String::new(),
                outcome: ScanOutcome::Error(failure.to_json("", service_name, identity)),
                extracted: Vec::new(),
            };
        }
    };
    let file_name = input
        .path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| digest.sha256.clone());
    let task = Task::local(
        &digest.sha256,
        &file_name,
        digest.size,
        service_name,
        params,
    );
    let work_dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(err) => {
            let failure = TaskFailure::recoverable(format!("cannot make a working folder: {err}"));
            return ScanReport {
                path: input.path,
                sha256: digest.sha256,
                outcome: ScanOutcome::Error(failure.to_json(&task.sha256, service_name, identity)),
                extracted: Vec::new(),
            };
        }
    };
    let mut extracted = Vec::new();
    let analysis = pipeline.analyse(&task, &input.path, work_dir.path(), started, deadline);
    let outcome = match tokio::time::timeout_at(deadline, analysis).await {
        Ok(TaskOutcome::Result { json, files }) => {
            if let Some(dir) = extract_dir {
                for file in files {
                    let copy = dir.join(&file.name);
                    match std::fs::copy(&file.path, &copy) {
                        Ok(_) => extracted.push(copy),
                        Err(err) => {
                            warn!(file = %copy.display(), error = %err, "cannot keep extracted file")
                        }
                    }
                }
            }
            ScanOutcome::Result(json)
        }
        Ok(TaskOutcome::Error(failure)) => {
            ScanOutcome::Error(failure.to_json(&task.sha256, service_name, identity))
        }
        Err(_) => ScanOutcome::Error(
            TaskFailure::recoverable(format!(
                "the scan did not finish within {} s",
                budget.as_secs()
            ))
            .to_json(&task.sha256, service_name, identity),
        ),
    };
    ScanReport {
        path: input.path,
        sha256: digest.sha256,
        outcome,
        extracted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_options_debug_hides_api_key() {
        let mut overrides = Map::new();
        overrides.insert("api_key".into(), Value::from("override-key-1234"));
        let options = ServeOptions {
            overrides,
            manifest_text: Some("config:\n  api_key: manifest-key-5678\n".into()),
            ..ServeOptions::default()
        };

        let printed = format!("{options:?}");

        assert!(!printed.contains("override-key-1234"), "{printed}");
        assert!(!printed.contains("manifest-key-5678"), "{printed}");
        assert!(printed.contains("<redacted>"), "{printed}");
    }

    #[test]
    fn intezer_client_debug_hides_api_key() {
        let config = ServiceConfig {
            api_key: crate::config::Secret::new("client-key-0000-1111"),
            ..ServiceConfig::default()
        };

        let printed = format!("{:?}", intezer_client(&config).unwrap());

        assert!(!printed.contains("client-key-0000-1111"), "{printed}");
    }
}
