//! The embedded Intezer Analyze API simulator: an actix-web server on
//! 127.0.0.1 that replays a scenario file or plays the default scenario, and
//! records every request it gets.
//!
//! One mutex guards the whole state (recorded calls, issued tokens, replay
//! counters or default-scenario analyses), so that a request's response and
//! its place in the recorded calls are decided together even when requests
//! arrive concurrently. The response's delay is waited out after the lock is
//! released.

use std::collections::HashSet;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde::Serialize;
use serde_json::Value;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::default_scenario::DefaultIntezer;
pub use super::default_scenario::{DefaultOptions, DefaultVerdict};
use super::faults::{self, Fault, FaultPlan, InjectedFault, Stage};
use super::replay::Replay;
use super::reply::Reply;
use super::request::{Endpoint, IncomingRequest};
use super::scenario::Scenario;

/// Seconds a graceful stop waits for open connections before closing them.
const SHUTDOWN_TIMEOUT_SECS: u64 = 2;

/// Source of the simulator's responses.
#[derive(Debug, Clone)]
#[allow(
    clippy::large_enum_variant,
    reason = "built once per simulator, so boxing the scenario would only make callers write Box::new"
)]
pub enum IntezerBehaviour {
    /// Replay a scenario file's routes.
    Scenario(Scenario),
    /// Play the stateful default scenario, which derives verdicts from the
    /// file's SHA-256.
    Default(DefaultOptions),
}

/// One request the simulator received, with the status it returned.
#[derive(Debug, Clone, Serialize)]
pub struct RecordedCall {
    /// Position among all requests, from 1.
    pub seq: u64,
    /// Time from the simulator's start to this request's arrival.
    pub received_after: std::time::Duration,
    pub method: String,
    /// Full request path without the query string, such as
    /// `/api/v2-0/files/<sha256>`.
    pub path: String,
    /// Route that served the request, such as `GET /files/{sha256}`, or
    /// `None` when no route matched or the request lacked a required token.
    pub route: Option<String>,
    /// Endpoint name, such as `files.latest-analysis`, or `unknown`.
    pub endpoint: String,
    pub status: u16,
    /// Whether the request carried `Authorization: Bearer <token>` with a
    /// token this simulator issued.
    pub authorized: bool,
    /// The request body, when it was JSON.
    pub body_json: Option<Value>,
    /// Multipart fields in order. Text fields keep their value and a file
    /// part is `("file", "<filename> (<n> bytes, sha256 <hex>)")`.
    pub form_fields: Vec<(String, String)>,
}

/// Starts Intezer simulators.
pub struct IntezerSimulator;

/// A running simulator. Dropping it sends the stop command without waiting,
/// and the server stops if its runtime is still running.
/// [`IntezerSimHandle::stop`] waits until the server has stopped.
pub struct IntezerSimHandle {
    address: SocketAddr,
    state: Arc<SimState>,
    server: ServerHandle,
    /// Task that drives the server, or `None` once stopped.
    task: Option<JoinHandle<()>>,
}

struct SimState {
    inner: Mutex<SimInner>,
}

struct SimInner {
    calls: Vec<RecordedCall>,
    /// When the simulator started; calls record their time from it.
    started: std::time::Instant,
    /// Every token handed out by `POST /get-access-token`. None expires.
    issued_tokens: HashSet<String>,
    mode: Mode,
    faults: FaultPlan,
}

enum Mode {
    Replay(Replay),
    Default(DefaultIntezer),
}

// === impl IntezerSimulator ===

impl IntezerSimulator {
    /// Binds 127.0.0.1:`port` (0 = a free port) and serves until the handle
    /// is stopped or dropped.
    ///
    /// Must be called inside a Tokio runtime, which an actix System also is:
    /// the server runs in a task spawned there, with its one worker on a
    /// thread of its own. Fails when the port is taken or a file that the
    /// scenario serves cannot be read.
    pub async fn start(behaviour: IntezerBehaviour, port: u16) -> io::Result<IntezerSimHandle> {
        IntezerSimulator::start_with_faults(behaviour, port, FaultPlan::default()).await
    }

    /// Like [`IntezerSimulator::start`], injecting the faults of `faults`.
    /// Their targets are the endpoint names of [`RecordedCall::endpoint`],
    /// such as `files.latest-analysis`, `analyze` or `analyses.status`.
    pub async fn start_with_faults(
        behaviour: IntezerBehaviour,
        port: u16,
        faults: FaultPlan,
    ) -> io::Result<IntezerSimHandle> {
        check_fault_targets(&faults)?;
        if !faults.rules().is_empty() {
            info!(?faults, "injecting faults");
        }
        let mode = match behaviour {
            IntezerBehaviour::Scenario(scenario) => {
                info!(scenario = %scenario.name, routes = scenario.routes.len(), "replaying scenario");
                Mode::Replay(Replay::new(scenario)?)
            }
            IntezerBehaviour::Default(options) => {
                info!(?options, "playing the default scenario");
                Mode::Default(DefaultIntezer::new(options))
            }
        };
        let state = Arc::new(SimState {
            inner: Mutex::new(SimInner {
                calls: Vec::new(),
                started: std::time::Instant::now(),
                issued_tokens: HashSet::new(),
                mode,
                faults,
            }),
        });

        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))?;
        let address = listener.local_addr()?;
        let app_state = web::Data::from(Arc::clone(&state));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .default_service(web::to(handle_request))
        })
        .workers(1)
        .disable_signals()
        // Longer than the 5 s default, so a client polling every 5 s does
        // not race the server closing its idle connection.
        .keep_alive(std::time::Duration::from_secs(75))
        .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
        .listen(listener)?
        .run();

        let server_handle = server.handle();
        let task = tokio::spawn(async move {
            if let Err(error) = server.await {
                warn!(%error, "Intezer simulator failed");
            }
        });
        info!(%address, "Intezer simulator listening");

        Ok(IntezerSimHandle {
            address,
            state,
            server: server_handle,
            task: Some(task),
        })
    }
}

/// Runs a simulator on 127.0.0.1:`port` until Ctrl-C, then stops it and
/// returns the calls it recorded. For the `simulate intezer` command.
pub async fn run_until_ctrl_c(
    behaviour: IntezerBehaviour,
    port: u16,
) -> io::Result<Vec<RecordedCall>> {
    let handle = IntezerSimulator::start(behaviour, port).await?;
    info!(base_url = %handle.base_url(), "Intezer simulator running, press Ctrl-C to stop");
    let signal = tokio::signal::ctrl_c().await;
    let calls = handle.calls();
    handle.stop().await;
    signal?;
    Ok(calls)
}

// === impl IntezerSimHandle ===

impl IntezerSimHandle {
    /// Returns the base URL for the service's `base_url` setting. It ends in
    /// `/api/` because the service appends the API version `v2-0`.
    pub fn base_url(&self) -> String {
        format!("http://{}/api/", self.address)
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Returns every request received so far, in the order they were served.
    pub fn calls(&self) -> Vec<RecordedCall> {
        self.state.lock().calls.clone()
    }

    /// Returns every fault injected so far, in order.
    pub fn injected_faults(&self) -> Vec<InjectedFault> {
        self.state.lock().faults.injected()
    }

    /// Stops the server, waiting up to `SHUTDOWN_TIMEOUT_SECS` for open
    /// connections.
    pub async fn stop(mut self) {
        self.server.stop(true).await;
        if let Some(task) = self.task.take() {
            if let Err(error) = task.await {
                warn!(%error, "Intezer simulator task ended abnormally");
            }
        }
        info!(address = %self.address, "Intezer simulator stopped");
    }
}

impl Drop for IntezerSimHandle {
    fn drop(&mut self) {
        if self.task.is_some() {
            // `stop` sends the command when called, and the future it returns
            // only waits for the server to finish, so it can be dropped.
            drop(self.server.stop(false));
        }
    }
}

/// Endpoint names a fault rule may target, as [`RecordedCall::endpoint`]
/// names them.
const FAULT_TARGETS: [&str; 14] = [
    "get-access-token",
    "is-available",
    "current-quota-usage",
    "analyze",
    "files.latest-analysis",
    "files.download",
    "analyses.status",
    "analyses.iocs",
    "analyses.dynamic-ttps",
    "analyses.sub-analyses",
    "sub-analysis.code-reuse",
    "sub-analysis.metadata",
    "sub-analysis.strings.request",
    "sub-analysis.strings.result",
];

/// Rejects a plan with a target no request can match, naming the valid ones.
fn check_fault_targets(plan: &FaultPlan) -> io::Result<()> {
    for rule in plan.rules() {
        let target = rule.target.as_str();
        if target != "*" && !FAULT_TARGETS.contains(&target) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "fault target {target:?} is not an endpoint of the Intezer simulator; use * \
                     or one of {}",
                    FAULT_TARGETS.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

// === request handling ===

impl SimState {
    fn lock(&self) -> MutexGuard<'_, SimInner> {
        // A panic in one request should not fail every later one, so take
        // the state as that request left it.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

async fn handle_request(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<SimState>,
) -> HttpResponse {
    let incoming = IncomingRequest::read(&request, payload).await;
    let reply = state.lock().respond(incoming);
    if reply.fault == Some(Fault::Hang) {
        faults::hang().await;
    }
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    reply.into_http_response()
}

impl SimInner {
    /// Decides the response and records the call.
    fn respond(&mut self, request: IncomingRequest) -> Reply {
        let endpoint = Endpoint::parse(&request.method, request.api_path.as_deref());
        let authorized = request
            .bearer_token
            .as_ref()
            .is_some_and(|token| self.issued_tokens.contains(token));
        let (require_authorization, latency) = match &self.mode {
            Mode::Replay(replay) => (replay.require_authorization(), Duration::ZERO),
            Mode::Default(intezer) => (intezer.require_authorization(), intezer.latency()),
        };

        let before = self.faults.pick(endpoint.name(), Stage::Before);
        let mut reply = if let Some(fault) = before {
            if fault == Fault::ExpireTokens {
                self.issued_tokens.clear();
            }
            Reply::fault(fault)
        } else if require_authorization && !authorized && !endpoint.is_open() {
            Reply::error(401, "Invalid or missing access token")
        } else {
            match &mut self.mode {
                Mode::Replay(replay) => replay.respond(&request),
                Mode::Default(intezer) => intezer.respond(&request, endpoint),
            }
        };
        reply.delay += latency;
        if reply.fault.is_none() {
            if let Some(fault) = self.faults.pick(endpoint.name(), Stage::After) {
                if fault == Fault::Stuck {
                    reply.status = fault.recorded_status();
                }
                reply.fault = Some(fault);
            }
        }

        if endpoint == Endpoint::GetAccessToken {
            if let Some(token) = reply.issued_token() {
                self.issued_tokens.insert(token.to_string());
            }
        }

        let seq = self.calls.len() as u64 + 1;
        debug!(
            seq,
            method = %request.method,
            path = %request.path,
            endpoint = endpoint.name(),
            route = reply.route.as_deref().unwrap_or("-"),
            status = reply.status,
            authorized,
            delay_ms = reply.delay.as_millis() as u64,
            "Intezer simulator request"
        );
        let received_after = self.started.elapsed();
        self.calls.push(RecordedCall {
            seq,
            received_after,
            method: request.method,
            path: request.path,
            route: reply.route.clone(),
            endpoint: endpoint.name().to_string(),
            status: reply.status,
            authorized,
            body_json: request.body_json,
            form_fields: request.form_fields,
        });
        reply
    }
}
