//! An Assemblyline 4 service server, simulated on 127.0.0.1 for demos and
//! integration tests.
//!
//! The simulator speaks the service-server REST API that a service container
//! uses: register, long-poll for tasks, download and upload files, post a
//! result or an error, look up the safelist. It checks requests as strictly
//! as the real servers do (identity headers, API key, result and error
//! shape) and records every request it rejects, so a test can assert that the
//! service made no protocol mistake. Each file in [`ServiceServerOptions::files`]
//! becomes one task, and [`ServiceServerHandle::report`] records what happened
//! to each of them.
//!
//! Layout: `routes` holds the HTTP handlers, `ledger` the shared state and the
//! report, `task` builds task JSON, `validate` checks manifests, results and
//! errors, and `multipart` reads uploaded files.

mod ledger;
mod multipart;
mod routes;
mod task;
mod validate;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::Method;
use actix_web::{web, App, HttpServer};
use futures_util::future::{FutureExt, LocalBoxFuture};
use serde::Serialize;
use serde_json::{Map, Value};
use tracing::{info, warn};

use self::ledger::SharedState;
use super::faults::{self, Fault, FaultPlan, InjectedFault, Stage};

/// The API key that Assemblyline ships as its default `SERVICE_API_KEY`.
pub const DEFAULT_API_KEY: &str = "ThisIsARandomAuthKey...ChangeMe!";

/// Default expected `Service-Name` header and manifest `name`.
pub const DEFAULT_SERVICE_NAME: &str = "IntezerDynamic";

/// One file to hand out as a task.
#[derive(Clone, Debug)]
pub struct SimFile {
    /// File name within the submission (`task.filename`).
    pub name: String,
    pub bytes: bytes::Bytes,
    /// Assemblyline file type, e.g. `executable/windows/pe32`.
    pub file_type: String,
}

/// Settings of a simulated server: the files it hands out, the configuration
/// it returns and the faults it injects.
#[derive(Clone, Debug)]
pub struct ServiceServerOptions {
    /// Expected `X-APIKey` header value.
    pub api_key: String,
    /// Expected `Service-Name` header and manifest `name`. Every task carries it.
    pub service_name: String,
    /// Merged key by key over the registered manifest's `config` in the
    /// register response's `service_config`, the way an administrator's
    /// changes are.
    pub config_overrides: Map<String, Value>,
    /// Submission parameter values put into every `task.service_config`, over
    /// the manifest's `submission_params` defaults.
    pub submission_params: Map<String, Value>,
    /// One task per file, handed out in this order.
    pub files: Vec<SimFile>,
    /// With `freshen: true`, reply to a result POST whose extracted or
    /// supplementary files were never uploaded with
    /// `{"success": false, "missing_files": [...]}`.
    pub ask_missing_files: bool,
    /// Serve wrong bytes on the first download of each file, so the
    /// service's SHA-256 check and retry can be tested.
    pub corrupt_first_download: bool,
    /// Maximum wait of one task long poll, whatever the `Timeout` header requests.
    pub max_long_poll: Duration,
    /// `service_config.timeout` in the register response, in seconds,
    /// instead of the manifest's `timeout`.
    pub timeout_override: Option<u64>,
    /// `api_response` of `GET /api/v1/safelist/`: `{"match": {...}, "regex": {...}}`
    /// keyed by tag type.
    pub safelist: Value,
    /// Faults injected into responses. Targets are `register`, `get-task`,
    /// `post-task`, `download-file`, `upload-file` and `safelist`. Faults
    /// that alter a built response (`slow-body`, `truncated`, `wrong-bytes`,
    /// `stuck`) apply to `download-file` and `safelist` only, because on the
    /// other calls the server's state would change while the service sees
    /// a failure, which no retry can repair.
    pub faults: FaultPlan,
}

impl Default for ServiceServerOptions {
    fn default() -> Self {
        ServiceServerOptions {
            api_key: DEFAULT_API_KEY.to_string(),
            service_name: DEFAULT_SERVICE_NAME.to_string(),
            config_overrides: Map::new(),
            submission_params: Map::new(),
            files: Vec::new(),
            ask_missing_files: false,
            corrupt_first_download: false,
            max_long_poll: Duration::from_secs(30),
            timeout_override: None,
            safelist: serde_json::json!({"match": {}, "regex": {}}),
            faults: FaultPlan::default(),
        }
    }
}

/// Whether a task ended with a result or an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CompletionKind {
    Result,
    Error,
}

/// One accepted result or error POST.
#[derive(Debug, Clone, Serialize)]
pub struct Completion {
    pub sid: String,
    /// SHA-256 of the task's file.
    pub sha256: String,
    pub kind: CompletionKind,
    /// The posted `result` or `error` object, unchanged.
    pub body: Value,
    /// The posted `freshen` flag, or `None` for an error.
    pub freshen: Option<bool>,
    /// Time from the simulator's start to the task's hand-out.
    pub handed_out_after: Duration,
    /// Time from the simulator's start to this answer.
    pub completed_after: Duration,
}

impl Completion {
    /// Time from the task's hand-out to this answer.
    pub fn latency(&self) -> Duration {
        self.completed_after.saturating_sub(self.handed_out_after)
    }
}

/// Everything the simulator saw, for assertions and for the demo's summary.
#[derive(Debug, Clone, Serialize)]
pub struct SimReport {
    /// Number of accepted register calls.
    pub registered: u32,
    /// Body of the last accepted register call.
    pub manifest: Option<Value>,
    pub tasks_queued: usize,
    pub tasks_handed_out: usize,
    /// Every accepted result or error POST, in arrival order.
    pub completions: Vec<Completion>,
    /// Sids handed out and not completed (yet).
    pub lost: Vec<String>,
    /// Sids completed more than once.
    pub completed_twice: Vec<String>,
    /// Sids still queued.
    pub never_handed_out: Vec<String>,
    /// SHA-256 of every file accepted by `PUT /api/v1/file/`, in order.
    pub uploads: Vec<String>,
    /// One line per rejected request: method, path and reason.
    pub protocol_errors: Vec<String>,
}

/// Entry point of the simulator.
pub struct ServiceServerSimulator;

impl ServiceServerSimulator {
    /// Binds 127.0.0.1:`port` (0 = a free port) and serves until stopped.
    ///
    /// Works inside an actix `System` and inside a plain tokio runtime: the
    /// server future is spawned on the current runtime and its one worker
    /// thread runs its own runtime.
    pub async fn start(
        options: ServiceServerOptions,
        port: u16,
    ) -> std::io::Result<ServiceServerHandle> {
        check_fault_targets(&options.faults)?;
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))?;
        let address = listener.local_addr()?;
        let plan = options.faults.clone();
        if !plan.rules().is_empty() {
            info!(faults = ?plan, "injecting faults");
        }
        let state = Arc::new(SharedState::new(options));

        let app_state = web::Data::from(Arc::clone(&state));
        let server = HttpServer::new(move || {
            let plan = plan.clone();
            App::new()
                .app_data(app_state.clone())
                .configure(routes::configure)
                .wrap_fn(move |request, service| {
                    let Some(call) = call_name(request.method(), request.path()) else {
                        let response = service.call(request);
                        return async move { Ok(response.await?.map_into_boxed_body()) }
                            .boxed_local();
                    };
                    if let Some(fault) = plan.pick(call, Stage::Before) {
                        let (request, _) = request.into_parts();
                        return replace(request, fault).boxed_local();
                    }
                    let after = if ALTERABLE_CALLS.contains(&call) {
                        plan.pick(call, Stage::After)
                    } else {
                        None
                    };
                    let response = service.call(request);
                    alter(response, after).boxed_local()
                })
        })
        .workers(1)
        .disable_signals()
        .keep_alive(Duration::from_secs(75))
        .listen(listener)?
        .run();

        let server_handle = server.handle();
        let join = tokio::spawn(server);
        info!(address = %address, "service server simulator started");

        Ok(ServiceServerHandle {
            state,
            address,
            server: server_handle,
            join: Some(join),
        })
    }
}

/// A running simulator. Dropping it stops the server without waiting.
pub struct ServiceServerHandle {
    state: Arc<SharedState>,
    address: SocketAddr,
    server: actix_web::dev::ServerHandle,
    /// Task that drives the server future, taken by [`ServiceServerHandle::stop`].
    join: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl ServiceServerHandle {
    /// Base URL without a trailing slash, as `SERVICE_API_HOST` is given.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Queues one more task for `file`. `params` override
    /// [`ServiceServerOptions::submission_params`] for this task only.
    pub fn add_task(&self, file: SimFile, params: Option<Map<String, Value>>) {
        self.state.queue_task(file, params);
    }

    pub fn report(&self) -> SimReport {
        self.state.report()
    }

    /// Returns the number of tasks handed out and of answers accepted so
    /// far; cheaper than [`ServiceServerHandle::report`] for polling.
    pub fn progress_counts(&self) -> (usize, usize) {
        self.state.progress_counts()
    }

    /// Returns every fault injected so far, in order.
    pub fn injected_faults(&self) -> Vec<InjectedFault> {
        self.state.options.faults.injected()
    }

    /// Waits until every queued task has been handed out and completed, or
    /// until `timeout` passes, and returns the report either way.
    pub async fn wait_until_all_completed(&self, timeout: Duration) -> SimReport {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let progressed = self.state.progress.notified();
            tokio::pin!(progressed);
            progressed.as_mut().enable();

            if self.state.all_completed() {
                return self.report();
            }
            if tokio::time::timeout_at(deadline, progressed).await.is_err() {
                return self.report();
            }
        }
    }

    /// Stops the server, dropping requests still in flight, and waits for it
    /// to shut down.
    pub async fn stop(mut self) {
        self.server.stop(false).await;
        if let Some(join) = self.join.take() {
            match join.await {
                Ok(Ok(())) => info!(address = %self.address, "service server simulator stopped"),
                Ok(Err(error)) => warn!(%error, "service server simulator failed while stopping"),
                Err(error) => warn!(%error, "service server simulator task ended abnormally"),
            }
        }
    }
}

impl Drop for ServiceServerHandle {
    fn drop(&mut self) {
        if self.join.is_some() {
            // `stop` sends the command when called. The future it returns
            // only waits for completion, so it can be dropped here.
            drop(self.server.stop(false));
        }
    }
}

/// Calls whose built response a fault may alter: they change no state.
const ALTERABLE_CALLS: [&str; 2] = ["download-file", "safelist"];

/// Names the service-server call of a request, as fault targets name it.
fn call_name(method: &Method, path: &str) -> Option<&'static str> {
    let call = match (method.as_str(), path) {
        ("PUT" | "POST", "/api/v1/service/register/") => "register",
        ("GET", "/api/v1/task/") => "get-task",
        ("POST", "/api/v1/task/") => "post-task",
        ("PUT", "/api/v1/file/") => "upload-file",
        ("GET", path) if path.starts_with("/api/v1/file/") => "download-file",
        ("GET", path) if path.starts_with("/api/v1/safelist/") => "safelist",
        _ => return None,
    };
    Some(call)
}

/// Rejects a plan whose rules alter a response of a call that changes state.
fn check_fault_targets(plan: &FaultPlan) -> std::io::Result<()> {
    for rule in plan.rules() {
        let target = rule.target.as_str();
        let known = [
            "*",
            "register",
            "get-task",
            "post-task",
            "download-file",
            "upload-file",
            "safelist",
        ];
        if !known.contains(&target) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "fault target {target:?} is not a service-server call; use one of {}",
                    known.join(", ")
                ),
            ));
        }
        if rule.fault == Fault::ExpireTokens {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "fault expire-tokens on {target} is not supported: the service server has \
                     no access tokens; use status:401 for a rejected API key"
                ),
            ));
        }
        if rule.fault.stage() == Stage::After && target != "*" && !ALTERABLE_CALLS.contains(&target)
        {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "fault {} on {target} is not supported: it alters a built response, which \
                     the simulator does only for download-file and safelist",
                    rule.fault
                ),
            ));
        }
    }
    Ok(())
}

/// Answers a request with a fault in place of the server's handling.
async fn replace(
    request: actix_web::HttpRequest,
    fault: Fault,
) -> Result<ServiceResponse, actix_web::Error> {
    if fault == Fault::Hang {
        faults::hang().await;
    }
    Ok(ServiceResponse::new(
        request,
        faults::replacement_response(&fault),
    ))
}

/// Waits for the server's response and applies `fault` to it, if any.
fn alter<F, B>(
    response: F,
    fault: Option<Fault>,
) -> LocalBoxFuture<'static, Result<ServiceResponse, actix_web::Error>>
where
    F: std::future::Future<Output = Result<ServiceResponse<B>, actix_web::Error>> + 'static,
    B: actix_web::body::MessageBody + 'static,
{
    async move {
        let response = response.await?;
        let Some(fault) = fault else {
            return Ok(response.map_into_boxed_body());
        };
        let (request, response) = response.into_parts();
        let status = response.status();
        let content_type = response
            .headers()
            .get(actix_web::http::header::CONTENT_TYPE)
            .cloned();
        let body = actix_web::body::to_bytes(response.into_body())
            .await
            .unwrap_or_default();
        Ok(ServiceResponse::new(
            request,
            faults::altered_response(&fault, status, content_type, body),
        ))
    }
    .boxed_local()
}
