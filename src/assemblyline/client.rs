//! HTTP client for the AL service-server API: register, long-poll for
//! tasks, download files, post results and errors, upload missing files and
//! read the safelist.
//!
//! Every call carries the five identity headers. Connection failures and
//! client-side timeouts are retried with the reference client's back-off
//! (doubling from about 16 ms up to 2 s) until the call's retry budget ends;
//! HTTP errors are not retried, except that a result post rejected for a
//! missing file uploads the file and posts again.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn, Instrument};

use crate::config::secret::redact_json;
use crate::config::{Environment, Secret};
use crate::download::{write_if_small, WriteError};
use crate::telemetry::metrics::metrics;

/// Failure of one service-server call.
#[derive(Debug, thiserror::Error)]
pub enum ServiceServerError {
    #[error("{call}: service server unreachable: {message}")]
    Unreachable { call: &'static str, message: String },
    #[error("{call}: the service server rejected the request (HTTP 400): {message}")]
    Rejected { call: &'static str, message: String },
    #[error("{call}: the service server rejected the API key (HTTP 401); check SERVICE_API_KEY")]
    Unauthorized { call: &'static str },
    #[error("{call}: not found (HTTP 404): {message}")]
    NotFound { call: &'static str, message: String },
    #[error("{call}: unexpected HTTP status {status}: {message}")]
    Status {
        call: &'static str,
        status: u16,
        message: String,
    },
    #[error("{call}: invalid response: {message}")]
    InvalidResponse { call: &'static str, message: String },
    #[error("the service server asked for file {sha256}, which this task did not produce")]
    UnknownMissingFile { sha256: String },
    #[error("local file {path}: {message}")]
    LocalFile { path: String, message: String },
    #[error("invalid service-server setting: {0}")]
    Config(String),
}

impl ServiceServerError {
    /// Returns whether the call may succeed when sent again: the server
    /// was unreachable, overloaded (429) or failing (5xx), as while it
    /// restarts behind a proxy.
    fn is_transient(&self) -> bool {
        match self {
            ServiceServerError::Unreachable { .. } => true,
            ServiceServerError::Status { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

/// The service's identity, sent in headers on every call.
#[derive(Debug, Clone)]
pub struct Identity {
    pub service_name: String,
    pub service_version: String,
    pub tool_version: String,
}

/// Reply to a registration. `Debug` hides `api_key` in the service
/// configuration.
#[derive(Clone)]
pub struct Registration {
    pub keep_alive: bool,
    pub new_heuristics: Vec<String>,
    /// The active service definition, with the administrator's changes.
    pub service_config: Value,
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("keep_alive", &self.keep_alive)
            .field("new_heuristics", &self.new_heuristics)
            .field("service_config", &redact_json(&self.service_config))
            .finish()
    }
}

/// A local file the server may ask for after a result post.
#[derive(Debug, Clone)]
pub struct UploadableFile {
    pub path: PathBuf,
    pub classification: String,
    pub is_supplementary: bool,
}

/// Client of one service server.
#[derive(Clone)]
pub struct ServiceServerClient {
    http: reqwest::Client,
    host: String,
    api_key: Secret,
    identity: Identity,
    task_request_timeout: Duration,
    file_request_timeout: Duration,
    /// One permit per call open at once, task polls aside.
    open_calls: Arc<Semaphore>,
}

/// Maximum number of calls other than task polls open at once, and of idle
/// connections kept. Each open call uses a connection and its buffers, so
/// this bounds the memory a burst of tasks takes
/// (docs/benchmarks/profile.md), while every slot keeps its own task poll.
const MAX_OPEN_CALLS: usize = 64;

/// Timeout of calls other than task polls and file transfers.
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(180);

/// Timeout of result and error posts.
const POST_TIMEOUT: Duration = Duration::from_secs(60);

impl ServiceServerClient {
    pub fn new(
        env: &Environment,
        identity: Identity,
    ) -> Result<ServiceServerClient, ServiceServerError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("intezer-dynamic/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(MAX_OPEN_CALLS);
        let mut root_ca_used = None;
        if env.service_api_host.starts_with("https") {
            if let Some(path) = &env.root_ca_path {
                let pem = std::fs::read(path).map_err(|err| {
                    ServiceServerError::Config(format!(
                        "cannot read SERVICE_SERVER_ROOT_CA_PATH {}: {err}",
                        path.display()
                    ))
                })?;
                // `from_pem` accepts a file without any certificate, so the
                // bundle parser is used and an empty result rejected.
                let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|err| {
                    ServiceServerError::Config(format!(
                        "SERVICE_SERVER_ROOT_CA_PATH {} is not a PEM certificate bundle: {}",
                        path.display(),
                        describe(&err)
                    ))
                })?;
                if certificates.is_empty() {
                    return Err(ServiceServerError::Config(format!(
                        "SERVICE_SERVER_ROOT_CA_PATH {} contains no PEM certificate",
                        path.display()
                    )));
                }
                for certificate in certificates {
                    builder = builder.add_root_certificate(certificate);
                }
                root_ca_used = Some(path);
            }
        }
        // The PEM parser only decodes base64, so a certificate that is not
        // valid DER first fails here.
        let http = builder.build().map_err(|err| match root_ca_used {
            Some(path) => ServiceServerError::Config(format!(
                "failed to build the HTTP client with SERVICE_SERVER_ROOT_CA_PATH {}: {}",
                path.display(),
                describe(&err)
            )),
            None => ServiceServerError::Config(describe(&err)),
        })?;
        Ok(ServiceServerClient {
            http,
            host: env.service_api_host.clone(),
            api_key: env.service_api_key.clone(),
            identity,
            task_request_timeout: env.task_request_timeout,
            file_request_timeout: env.file_request_timeout,
            open_calls: Arc::new(Semaphore::new(MAX_OPEN_CALLS)),
        })
    }

    /// Waits for a permit to open `call`. Task polls need none, because each
    /// slot keeps one open while it waits for work.
    async fn turn(&self, call: &'static str) -> Option<SemaphorePermit<'_>> {
        if call == "get task" {
            return None;
        }
        // The semaphore is never closed.
        self.open_calls.acquire().await.ok()
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    fn request(&self, method: Method, path: &str, container_id: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}/api/v1/{path}", self.host))
            .header("X-APIKey", self.api_key.expose())
            .header("Container-ID", container_id)
            .header("Service-Name", &self.identity.service_name)
            .header("Service-Version", &self.identity.service_version)
            .header("Service-Tool-Version", &self.identity.tool_version)
    }

    /// Sends the request built by `build` until it gets an HTTP response or
    /// `stop` is cancelled between two attempts, and returns the envelope's
    /// `api_response`. A request in flight is never abandoned for `stop`.
    async fn call(
        &self,
        call: &'static str,
        stop: Option<&CancellationToken>,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Value, ServiceServerError> {
        let mut attempt: u32 = 0;
        loop {
            match self.send_once(call, build()).await {
                Err(err) if err.is_transient() => {
                    attempt += 1;
                    let pause = backoff(attempt);
                    if attempt % 10 == 1 {
                        warn!(call, attempt, error = %err, "service server call failed; retrying");
                    }
                    match stop {
                        Some(stop) => tokio::select! {
                            () = tokio::time::sleep(pause) => {}
                            () = stop.cancelled() => return Err(err),
                        },
                        None => tokio::time::sleep(pause).await,
                    }
                }
                other => return other,
            }
        }
    }

    async fn send_once(
        &self,
        call: &'static str,
        request: RequestBuilder,
    ) -> Result<Value, ServiceServerError> {
        let unreachable = |err: reqwest::Error| ServiceServerError::Unreachable {
            call,
            message: describe(&err),
        };
        let _turn = self.turn(call).await;
        let response = send_counted(call, request).await.map_err(unreachable)?;
        let status = response.status();
        let body = read_capped(response, MAX_ENVELOPE_BYTES)
            .await
            .map_err(|err| match err {
                BodyError::Transport(err) => unreachable(err),
                BodyError::TooLarge => ServiceServerError::InvalidResponse {
                    call,
                    message: format!(
                        "the response body is larger than {} MiB",
                        MAX_ENVELOPE_BYTES / (1024 * 1024)
                    ),
                },
            })?;
        let envelope: Option<Value> = serde_json::from_slice(&body).ok();
        let message = envelope
            .as_ref()
            .and_then(|e| e.get("api_error_message"))
            .and_then(Value::as_str)
            .map(last_line)
            .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(300).collect());
        match status {
            s if s.is_success() => {
                let envelope = envelope.ok_or_else(|| ServiceServerError::InvalidResponse {
                    call,
                    message: "body is not JSON".to_string(),
                })?;
                Ok(envelope.get("api_response").cloned().unwrap_or(Value::Null))
            }
            StatusCode::BAD_REQUEST => Err(ServiceServerError::Rejected { call, message }),
            StatusCode::UNAUTHORIZED => Err(ServiceServerError::Unauthorized { call }),
            StatusCode::NOT_FOUND => Err(ServiceServerError::NotFound { call, message }),
            s => Err(ServiceServerError::Status {
                call,
                status: s.as_u16(),
                message,
            }),
        }
    }

    /// Registers the manifest (`PUT /api/v1/service/register/`).
    pub async fn register(
        &self,
        manifest: &Value,
        container_id: &str,
    ) -> Result<Registration, ServiceServerError> {
        let response = self
            .call("register", None, || {
                self.request(Method::PUT, "service/register/", container_id)
                    .timeout(DEFAULT_REQUEST_TIMEOUT)
                    .json(manifest)
            })
            .await?;
        Ok(Registration {
            keep_alive: response
                .get("keep_alive")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            new_heuristics: response
                .get("new_heuristics")
                .and_then(Value::as_array)
                .map(|ids| {
                    ids.iter()
                        .filter_map(|id| id.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            service_config: response
                .get("service_config")
                .cloned()
                .unwrap_or(Value::Null),
        })
    }

    /// Long-polls for one task (`GET /api/v1/task/`). `Ok(None)` when the
    /// server had none within the `Timeout` it was sent. Failed polls are
    /// retried until `stop` is cancelled; a poll in flight is never
    /// abandoned, because the server may already have handed out its task.
    pub async fn get_task(
        &self,
        container_id: &str,
        stop: &CancellationToken,
    ) -> Result<Option<Value>, ServiceServerError> {
        let wait = self.task_request_timeout;
        let response = self
            .call("get task", Some(stop), || {
                self.request(Method::GET, "task/", container_id)
                    .header("Timeout", format_seconds(wait))
                    .timeout(wait * 2 + Duration::from_secs(5))
            })
            .await?;
        match response.get("task") {
            Some(Value::Object(_)) => Ok(response.get("task").cloned()),
            Some(Value::Bool(false)) | None | Some(Value::Null) => Ok(None),
            Some(other) => Err(ServiceServerError::InvalidResponse {
                call: "get task",
                message: format!(
                    "task is neither an object nor false: {}",
                    truncate(&other.to_string(), 200)
                ),
            }),
        }
    }

    /// Streams file `sha256` to `dest` (`GET /api/v1/file/<sha256>/`) and
    /// returns the number of bytes written. The caller verifies the hash.
    pub async fn download_file(
        &self,
        sha256: &str,
        dest: &Path,
        container_id: &str,
    ) -> Result<u64, ServiceServerError> {
        let call = "download file";
        let _turn = self.turn(call).await;
        let request = self
            .request(Method::GET, &format!("file/{sha256}/"), container_id)
            .timeout(self.file_request_timeout);
        let response =
            send_counted(call, request)
                .await
                .map_err(|err| ServiceServerError::Unreachable {
                    call,
                    message: describe(&err),
                })?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            let message = truncate(&body, 300);
            return Err(match status {
                StatusCode::NOT_FOUND => ServiceServerError::NotFound { call, message },
                StatusCode::UNAUTHORIZED => ServiceServerError::Unauthorized { call },
                StatusCode::BAD_REQUEST => ServiceServerError::Rejected { call, message },
                other => ServiceServerError::Status {
                    call,
                    status: other.as_u16(),
                    message,
                },
            });
        }
        let local = |err: std::io::Error| ServiceServerError::LocalFile {
            path: dest.display().to_string(),
            message: err.to_string(),
        };
        let unreachable = |err: reqwest::Error| ServiceServerError::Unreachable {
            call,
            message: describe(&err),
        };
        let response = match write_if_small(response, dest).await {
            Ok(written) => {
                let written = written.map_err(|err| match err {
                    WriteError::Body(err) => unreachable(err),
                    WriteError::File(err) => local(err),
                })?;
                debug!(sha256, bytes = written, "downloaded task file");
                return Ok(written);
            }
            Err(response) => response,
        };
        let mut file = tokio::fs::File::create(dest).await.map_err(local)?;
        let mut written = 0u64;
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(unreachable)?;
            file.write_all(&chunk).await.map_err(local)?;
            written += chunk.len() as u64;
        }
        file.flush().await.map_err(local)?;
        debug!(sha256, bytes = written, "downloaded task file");
        Ok(written)
    }

    /// Posts a result, uploading any file the server reports missing and
    /// posting again with `freshen: false`, as the reference client does.
    pub async fn post_result(
        &self,
        task: &Value,
        result: &Value,
        files: &HashMap<String, UploadableFile>,
        container_id: &str,
    ) -> Result<(), ServiceServerError> {
        let first = self
            .post_result_once(task, result, true, container_id)
            .await?;
        if first.get("success").and_then(Value::as_bool) == Some(true) {
            return Ok(());
        }
        let missing: Vec<String> = first
            .get("missing_files")
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if missing.is_empty() {
            return Err(ServiceServerError::InvalidResponse {
                call: "post result",
                message: format!(
                    "success is not true and no missing files listed: {}",
                    truncate(&first.to_string(), 200)
                ),
            });
        }
        let ttl = task.get("ttl").and_then(Value::as_u64).unwrap_or(0);
        for sha256 in &missing {
            let file = files
                .get(sha256)
                .ok_or_else(|| ServiceServerError::UnknownMissingFile {
                    sha256: sha256.clone(),
                })?;
            self.upload_file(sha256, file, ttl, container_id).await?;
        }
        let second = self
            .post_result_once(task, result, false, container_id)
            .await?;
        if second.get("success").and_then(Value::as_bool) == Some(true) {
            Ok(())
        } else {
            Err(ServiceServerError::InvalidResponse {
                call: "post result",
                message: format!(
                    "repost after uploads was not accepted: {}",
                    truncate(&second.to_string(), 200)
                ),
            })
        }
    }

    /// Posts a result once; `freshen: true` asks the server to check that
    /// every listed file exists.
    async fn post_result_once(
        &self,
        task: &Value,
        result: &Value,
        freshen: bool,
        container_id: &str,
    ) -> Result<Value, ServiceServerError> {
        let body = json!({"task": task, "result": result, "freshen": freshen});
        self.post_task(body, container_id).await
    }

    /// Posts an error for a task.
    pub async fn post_error(
        &self,
        task: &Value,
        error: &Value,
        container_id: &str,
    ) -> Result<(), ServiceServerError> {
        self.post_task(json!({"task": task, "error": error}), container_id)
            .await?;
        Ok(())
    }

    async fn post_task(
        &self,
        body: Value,
        container_id: &str,
    ) -> Result<Value, ServiceServerError> {
        self.call("post task", None, || {
            self.request(Method::POST, "task/", container_id)
                .timeout(POST_TIMEOUT)
                .json(&body)
        })
        .await
    }

    /// Uploads one file (`PUT /api/v1/file/`).
    pub async fn upload_file(
        &self,
        sha256: &str,
        file: &UploadableFile,
        ttl: u64,
        container_id: &str,
    ) -> Result<(), ServiceServerError> {
        let local = |err: std::io::Error| ServiceServerError::LocalFile {
            path: file.path.display().to_string(),
            message: err.to_string(),
        };
        let mut attempt = 0u32;
        loop {
            let handle = tokio::fs::File::open(&file.path).await.map_err(local)?;
            let length = handle.metadata().await.map_err(local)?.len();
            let stream = tokio_util::io::ReaderStream::new(handle);
            let part = reqwest::multipart::Part::stream_with_length(
                reqwest::Body::wrap_stream(stream),
                length,
            )
            .file_name(sha256.to_string());
            let form = reqwest::multipart::Form::new().part("file", part);
            let request = self
                .request(Method::PUT, "file/", container_id)
                .timeout(self.file_request_timeout)
                .header("sha256", sha256)
                .header("classification", &file.classification)
                .header("ttl", ttl.to_string())
                .header("Is-Section-Image", "false")
                .header(
                    "Is-Supplementary",
                    if file.is_supplementary {
                        "true"
                    } else {
                        "false"
                    },
                )
                .multipart(form);
            match self.send_once("upload file", request).await {
                Err(err) if err.is_transient() => {
                    attempt += 1;
                    warn!(sha256, attempt, error = %err, "file upload failed; retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(err) => return Err(err),
                Ok(_) => return Ok(()),
            }
        }
    }

    /// Reads the tag safelist (`GET /api/v1/safelist/`).
    pub async fn safelist(&self, container_id: &str) -> Result<Value, ServiceServerError> {
        self.send_once(
            "safelist",
            self.request(Method::GET, "safelist/", container_id)
                .timeout(DEFAULT_REQUEST_TIMEOUT),
        )
        .await
    }

    /// Checks that the service server responds to `/healthz/live`.
    pub async fn is_live(&self) -> bool {
        self.check_live(Duration::from_secs(10)).await.is_ok()
    }

    /// Sends `GET /healthz/live`, the check of AL's own liveness probe, and
    /// succeeds on a 2xx status. `timeout` covers the whole request. Errors
    /// leave out the URL, which the caller already has.
    pub async fn check_live(&self, timeout: Duration) -> Result<(), ServiceServerError> {
        let call = "liveness check";
        let response = self
            .http
            .get(format!("{}/healthz/live", self.host))
            .timeout(timeout)
            .send()
            .await
            .map_err(|err| ServiceServerError::Unreachable {
                call,
                message: describe(&err.without_url()),
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        Err(ServiceServerError::Status {
            call,
            status: status.as_u16(),
            message: truncate(body.trim(), 200),
        })
    }
}

/// Largest service-server JSON response read. Tasks, safelists and
/// registration answers are far smaller; a larger body is an error rather
/// than an unbounded allocation.
const MAX_ENVELOPE_BYTES: usize = 64 * 1024 * 1024;

/// Failure to read a response body.
enum BodyError {
    Transport(reqwest::Error),
    TooLarge,
}

/// Reads a response body, failing once it passes `cap` bytes.
async fn read_capped(mut response: reqwest::Response, cap: usize) -> Result<Vec<u8>, BodyError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Transport)? {
        if body.len() + chunk.len() > cap {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Sends `request` in an `al.request` span and counts it in
/// `service_server_requests` by call and status.
async fn send_counted(
    call: &'static str,
    request: RequestBuilder,
) -> Result<reqwest::Response, reqwest::Error> {
    let span = tracing::info_span!(
        "al.request",
        otel.kind = "client",
        call,
        http.response.status_code = tracing::field::Empty,
    );
    let sent = request.send().instrument(span.clone()).await;
    let status_label = match &sent {
        Ok(response) => {
            span.record("http.response.status_code", response.status().as_u16());
            response.status().as_str().to_string()
        }
        Err(_) => "unreachable".to_string(),
    };
    metrics()
        .service_server_requests
        .with_label_values(&[call, &status_label])
        .inc();
    sent
}

/// Back-off before retry `attempt` (1-based): 2^(attempt-7) s, at most 2 s.
fn backoff(attempt: u32) -> Duration {
    let exponent = attempt as i32 - 7;
    Duration::from_secs_f64(2f64.powi(exponent).min(2.0))
}

fn format_seconds(duration: Duration) -> String {
    let seconds = duration.as_secs_f64();
    if seconds.fract() == 0.0 {
        format!("{}", seconds as u64)
    } else {
        format!("{seconds}")
    }
}

fn describe(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Returns the last non-empty line of a server message, because Python
/// tracebacks end with the validation error.
fn last_line(message: &str) -> String {
    message
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or(message)
        .trim()
        .to_string()
}

fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_two_seconds() {
        assert_eq!(backoff(7), Duration::from_secs(1));
        assert_eq!(backoff(8), Duration::from_secs(2));
        assert_eq!(backoff(50), Duration::from_secs(2));
        assert!(backoff(1) < Duration::from_millis(20));
    }

    #[test]
    fn timeout_header_is_whole_seconds_when_possible() {
        assert_eq!(format_seconds(Duration::from_secs(30)), "30");
        assert_eq!(format_seconds(Duration::from_millis(500)), "0.5");
    }

    #[test]
    fn registration_debug_hides_api_key() {
        let registration = Registration {
            keep_alive: true,
            new_heuristics: Vec::new(),
            service_config: json!({"config": {"api_key": "intezer-key-9876", "private_only": false}}),
        };

        let printed = format!("{registration:?}");

        assert!(!printed.contains("intezer-key-9876"), "{printed}");
        assert!(printed.contains("<redacted>"), "{printed}");
    }

    #[test]
    fn last_line_of_traceback() {
        assert_eq!(
            last_line("Traceback\n  File x\nValueError: bad\n"),
            "ValueError: bad"
        );
    }
}
