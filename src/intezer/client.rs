//! HTTP client for the Intezer Analyze API (v2-0).
//!
//! Each public method of [`IntezerClient`] calls one endpoint. They share one
//! retry loop, [`IntezerClient::execute`], which for each attempt takes a
//! token from the optional rate limiter, gets an access token, sends the
//! request and, after a 401, renews the token and repeats the request once.
//! Transient failures (5xx, 429, transport errors, timeouts) are retried
//! with capped exponential backoff and full jitter, never past the caller's
//! deadline. Every other status is mapped to an [`IntezerError`] by the
//! endpoint's method.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Map, Value};
use tokio::time::Instant;
use tracing::Instrument;

use super::endpoint;
use super::error::IntezerError;
use super::response::{
    analysis_id_from_result_url, invalid, is_path_segment, status_error, submission_error,
    take_field, transient_status_error, validate_result_path, Reply,
};
use super::retry::{attempts_left, backoff_with_jitter, may_retry, Delivery, Resend};
use super::token::TokenCache;
use super::transport::{ApiRequest, Failure, RequestBody, Sink, Transport};
use super::types::{
    Analysis, AnalysisState, CodeReuse, Iocs, QuotaUsage, StringEntry, SubAnalysis, Ttp,
};
use crate::quota::{current_priority, CallCost, CallOutcome, Limiter, QuotaError, QuotaGuard};
use crate::telemetry::metrics::{metrics, status_class};

pub use super::settings::{IntezerSettings, RetryPolicy, DEFAULT_API_VERSION, DEFAULT_BASE_URL};

/// Running state reported for an HTTP 202 whose body has no `status`.
const ACCEPTED_STATUS: &str = "accepted";

/// Client of one Intezer account. It owns one connection pool and one
/// access token, so share a single instance (for example in an `Arc`)
/// between tasks.
pub struct IntezerClient {
    transport: Transport,
    tokens: TokenCache,
    limiter: Option<Arc<Limiter>>,
    quota: Option<Arc<QuotaGuard>>,
    retry: RetryPolicy,
    is_on_premise: bool,
}

impl fmt::Debug for IntezerClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntezerClient")
            .field("root", &self.transport.root())
            .field("is_on_premise", &self.is_on_premise)
            .field("retry", &self.retry)
            .field("rate_limited", &self.limiter.is_some())
            .finish_non_exhaustive()
    }
}

// === impl IntezerClient: construction ===

impl IntezerClient {
    /// Validates `settings` and builds the HTTP client. Nothing is sent
    /// until the first call.
    pub fn new(settings: IntezerSettings) -> Result<Self, IntezerError> {
        let transport = Transport::new(&settings)?;
        Ok(IntezerClient {
            transport,
            tokens: TokenCache::new(settings.api_key),
            limiter: None,
            quota: None,
            retry: settings.retry,
            is_on_premise: settings.is_on_premise,
        })
    }

    /// Makes every request take one token from `limiter` before it is sent,
    /// waiting no later than the call's deadline. Access-token requests do
    /// not take one.
    /// Makes every request wait for `quota`: its request rate, its daily
    /// file-scan budget (lookups, uploads and downloads cost one), its pause
    /// after a 429 and its outage breaker. The request's priority is the
    /// task's, from [`crate::quota::TASK_PRIORITY`].
    pub fn with_quota(mut self, quota: Arc<QuotaGuard>) -> Self {
        self.quota = Some(quota);
        self
    }

    /// The quota guard, when one is set.
    pub fn quota(&self) -> Option<&Arc<QuotaGuard>> {
        self.quota.as_ref()
    }

    pub fn with_limiter(mut self, limiter: Arc<Limiter>) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// Returns the URL that endpoint paths are appended to, such as
    /// `https://analyze.intezer.com/api/v2-0`.
    pub fn versioned_root(&self) -> &str {
        self.transport.root()
    }
}

// === impl IntezerClient: endpoints ===

impl IntezerClient {
    /// Calls `GET /is-available`, without authentication and without
    /// retries. Any status other than 200 means "not available", and only a
    /// failure to get a response at all is an error. The call is bounded by
    /// `request_timeout`.
    pub async fn is_available(&self) -> Result<bool, IntezerError> {
        let endpoint = endpoint::IS_AVAILABLE;
        let deadline = deadline_after(self.transport.request_timeout());
        self.acquire_limiter(endpoint, deadline).await?;

        let request = ApiRequest {
            endpoint,
            method: Method::GET,
            path: "/is-available".to_string(),
            body: RequestBody::None,
            sink: Sink::Memory,
            resend: Resend::Idempotent,
        };
        let reply = self
            .transport
            .send(&request, None, deadline)
            .await
            .map_err(|failure| failure.error)?;

        if reply.status != StatusCode::OK {
            tracing::debug!(
                endpoint,
                status = reply.status.as_u16(),
                "Intezer is not available"
            );
            return Ok(false);
        }
        reply.json_field(endpoint, "is_available")
    }

    /// Fetches the latest analysis of a file with `GET /files/{sha256}`.
    /// `private_only` limits it to this account's analyses. On premise the
    /// flag is not sent. No analysis gives `NotFound` (404) or `Gone` (410).
    #[tracing::instrument(level = "debug", skip_all, fields(sha256 = %sha256))]
    pub async fn latest_analysis(
        &self,
        sha256: &str,
        private_only: bool,
        deadline: Instant,
    ) -> Result<Analysis, IntezerError> {
        let endpoint = endpoint::LATEST_ANALYSIS;
        check_sha256(endpoint, sha256)?;
        let body = if self.is_on_premise {
            json!({})
        } else {
            json!({ "should_get_only_private_analysis": private_only })
        };

        let request = ApiRequest::json(endpoint, Method::GET, format!("/files/{sha256}"), body);
        let reply = self.execute(&request, deadline).await?;
        expect_ok(endpoint, &reply)?;
        reply.json_field(endpoint, "result")
    }

    /// Reads the state of an analysis with `GET /analyses/{id}`: running
    /// (HTTP 202, or status `queued`, `in_progress` or another unfinished
    /// value), finished with its report (`succeeded` or `finished`), or
    /// failed (`failed`, whether the status code is 200 or 202).
    #[tracing::instrument(level = "debug", skip_all, fields(analysis_id = %analysis_id))]
    pub async fn analysis(
        &self,
        analysis_id: &str,
        deadline: Instant,
    ) -> Result<AnalysisState, IntezerError> {
        let endpoint = endpoint::ANALYSIS;
        check_id(endpoint, "analysis_id", analysis_id)?;

        let request = ApiRequest::json(
            endpoint,
            Method::GET,
            format!("/analyses/{analysis_id}"),
            json!({}),
        );
        let reply = self.execute(&request, deadline).await?;
        if !matches!(reply.status, StatusCode::OK | StatusCode::ACCEPTED) {
            return Err(status_error(endpoint, &reply));
        }

        let state = analysis_state(endpoint, &reply)?;
        tracing::debug!(
            endpoint,
            analysis_id,
            state = state_name(&state),
            "Intezer analysis state read"
        );
        Ok(state)
    }

    /// Uploads a file with `POST /analyze` and returns the new analysis id.
    ///
    /// The file is streamed from `path` under the name `file_name`. Only 201
    /// is success. An upload is retried after a 5xx, a 429 or a failed
    /// connection, but never after a timeout or a lost connection once it
    /// may have arrived, because a second upload would start a second
    /// analysis. A 409 gives `AlreadyRunning` with the running analysis id.
    #[tracing::instrument(level = "debug", skip_all, fields(file_name = %file_name))]
    pub async fn submit_file(
        &self,
        path: &Path,
        file_name: &str,
        deadline: Instant,
    ) -> Result<String, IntezerError> {
        let endpoint = endpoint::ANALYZE;
        if file_name.is_empty() {
            return Err(IntezerError::InvalidArgument {
                endpoint,
                message: "file_name is empty".into(),
            });
        }

        let request = ApiRequest {
            endpoint,
            method: Method::POST,
            path: "/analyze".to_string(),
            body: RequestBody::Upload { path, file_name },
            sink: Sink::Memory,
            resend: Resend::UnlessMaybeReceived,
        };
        let reply = self.execute(&request, deadline).await?;
        if reply.status != StatusCode::CREATED {
            return Err(submission_error(endpoint, &reply));
        }

        let result_url: String = reply.json_field(endpoint, "result_url")?;
        let analysis_id = analysis_id_from_result_url(endpoint, &result_url)?;
        tracing::debug!(endpoint, analysis_id = %analysis_id, "file submitted to Intezer");
        Ok(analysis_id)
    }

    /// Fetches the file and network IOCs of an analysis. A 404 (no IOCs) and
    /// a 403 (community accounts) come back as errors for the caller to
    /// treat as "none".
    #[tracing::instrument(level = "debug", skip_all, fields(analysis_id = %analysis_id))]
    pub async fn iocs(&self, analysis_id: &str, deadline: Instant) -> Result<Iocs, IntezerError> {
        let endpoint = endpoint::IOCS;
        check_id(endpoint, "analysis_id", analysis_id)?;

        let reply = self
            .get(endpoint, format!("/analyses/{analysis_id}/iocs"), deadline)
            .await?;
        expect_ok(endpoint, &reply)?;
        reply.json_field(endpoint, "result")
    }

    /// Reads the account's quota use with `GET /current-quota-usage`: the
    /// `result` object, such as `{"file_scans": {"quota": 1000, "usage": 12,
    /// "type": "monthly"}}`. On-premise servers may not offer it.
    pub async fn current_quota_usage(&self, deadline: Instant) -> Result<QuotaUsage, IntezerError> {
        let endpoint = endpoint::QUOTA_USAGE;
        let reply = self
            .get(endpoint, "/current-quota-usage".to_string(), deadline)
            .await?;
        expect_ok(endpoint, &reply)?;
        reply.json_field(endpoint, "result")
    }

    /// Fetches the dynamic-execution signatures (TTPs) of an analysis.
    #[tracing::instrument(level = "debug", skip_all, fields(analysis_id = %analysis_id))]
    pub async fn dynamic_ttps(
        &self,
        analysis_id: &str,
        deadline: Instant,
    ) -> Result<Vec<Ttp>, IntezerError> {
        let endpoint = endpoint::DYNAMIC_TTPS;
        check_id(endpoint, "analysis_id", analysis_id)?;

        let reply = self
            .get(
                endpoint,
                format!("/analyses/{analysis_id}/dynamic-ttps"),
                deadline,
            )
            .await?;
        expect_ok(endpoint, &reply)?;
        reply.json_field(endpoint, "result")
    }

    /// Lists the sub-analyses of an analysis, the submitted file included
    /// (source `root`).
    #[tracing::instrument(level = "debug", skip_all, fields(analysis_id = %analysis_id))]
    pub async fn sub_analyses(
        &self,
        analysis_id: &str,
        deadline: Instant,
    ) -> Result<Vec<SubAnalysis>, IntezerError> {
        let endpoint = endpoint::SUB_ANALYSES;
        check_id(endpoint, "analysis_id", analysis_id)?;

        let reply = self
            .get(
                endpoint,
                format!("/analyses/{analysis_id}/sub-analyses"),
                deadline,
            )
            .await?;
        expect_ok(endpoint, &reply)?;
        reply.json_field(endpoint, "sub_analyses")
    }

    /// Fetches the code-reuse report of a sub-analysis. Returns `None` when
    /// the sub-analysis has none (HTTP 409).
    #[tracing::instrument(level = "debug", skip_all, fields(analysis_id = %analysis_id, sub_analysis_id = %sub_id))]
    pub async fn code_reuse(
        &self,
        analysis_id: &str,
        sub_id: &str,
        deadline: Instant,
    ) -> Result<Option<CodeReuse>, IntezerError> {
        let endpoint = endpoint::CODE_REUSE;
        let path = sub_analysis_path(endpoint, analysis_id, sub_id, "code-reuse")?;

        let reply = self.get(endpoint, path, deadline).await?;
        if reply.status == StatusCode::CONFLICT {
            tracing::debug!(
                endpoint,
                status = 409,
                "sub-analysis has no code-reuse report"
            );
            return Ok(None);
        }
        expect_ok(endpoint, &reply)?;
        let report = serde_json::from_slice(&reply.body)
            .map_err(|err| invalid(endpoint, format!("body is not a code-reuse report: {err}")))?;
        Ok(Some(report))
    }

    /// Fetches the file metadata of a sub-analysis as the JSON object the
    /// server returned. Its keys vary by file type.
    #[tracing::instrument(level = "debug", skip_all, fields(analysis_id = %analysis_id, sub_analysis_id = %sub_id))]
    pub async fn metadata(
        &self,
        analysis_id: &str,
        sub_id: &str,
        deadline: Instant,
    ) -> Result<Map<String, Value>, IntezerError> {
        let endpoint = endpoint::METADATA;
        let path = sub_analysis_path(endpoint, analysis_id, sub_id, "metadata")?;

        let reply = self.get(endpoint, path, deadline).await?;
        expect_ok(endpoint, &reply)?;
        reply.json_object(endpoint)
    }

    /// Runs the strings operation of a sub-analysis and waits for its
    /// result.
    ///
    /// `POST .../strings` returns a `result_url`, which is then read every
    /// `poll_interval` until its status is `succeeded`. A 202 or any other
    /// status means "not finished", except `failed`. A body with an `error`
    /// key or status `failed` gives `InvalidResponse`, and running out of
    /// time gives `DeadlineExceeded`.
    #[tracing::instrument(level = "debug", skip_all, fields(analysis_id = %analysis_id, sub_analysis_id = %sub_id))]
    pub async fn strings(
        &self,
        analysis_id: &str,
        sub_id: &str,
        poll_interval: Duration,
        deadline: Instant,
    ) -> Result<Vec<StringEntry>, IntezerError> {
        let endpoint = endpoint::STRINGS;
        let path = sub_analysis_path(endpoint, analysis_id, sub_id, "strings")?;

        let request = ApiRequest::json(endpoint, Method::POST, path, json!({}));
        let reply = self.execute(&request, deadline).await?;
        if !reply.status.is_success() {
            return Err(status_error(endpoint, &reply));
        }
        let result_url: String = reply.json_field(endpoint, "result_url")?;
        validate_result_path(endpoint, &result_url)?;
        tracing::debug!(endpoint, result_url = %result_url, "strings operation started");

        loop {
            let reply = self.get(endpoint, result_url.clone(), deadline).await?;
            if let Some(strings) = strings_result(endpoint, &reply)? {
                return Ok(strings);
            }

            match Instant::now().checked_add(poll_interval) {
                Some(next_poll) if next_poll < deadline => {
                    tokio::time::sleep_until(next_poll).await
                }
                _ => return Err(IntezerError::DeadlineExceeded { endpoint }),
            }
        }
    }

    /// Downloads a sample with `GET /files/{sha256}/download` and streams it
    /// to `dest`, which is created or truncated. Returns the bytes written.
    /// The server's `Content-Disposition` file name is ignored. On failure
    /// `dest` is removed. Each download counts against the account's quota.
    #[tracing::instrument(level = "debug", skip_all, fields(sha256 = %sha256))]
    pub async fn download_file(
        &self,
        sha256: &str,
        dest: &Path,
        deadline: Instant,
    ) -> Result<u64, IntezerError> {
        let endpoint = endpoint::DOWNLOAD;
        check_sha256(endpoint, sha256)?;

        let request = ApiRequest {
            endpoint,
            method: Method::GET,
            path: format!("/files/{sha256}/download"),
            body: RequestBody::Json(json!({})),
            sink: Sink::File(dest),
            resend: Resend::Idempotent,
        };
        let reply = self.execute(&request, deadline).await?;
        match reply.written {
            Some(written) if reply.status == StatusCode::OK => {
                tracing::debug!(endpoint, bytes = written, path = %dest.display(), "sample downloaded");
                Ok(written)
            }
            _ => Err(status_error(endpoint, &reply)),
        }
    }
}

/// Pause after a 429 that names no wait.
const DEFAULT_429_PAUSE: Duration = Duration::from_secs(1);

// === impl IntezerClient: retries, tokens and the rate limiter ===

impl IntezerClient {
    /// Sends a GET with the body `{}` through the retry loop.
    async fn get(
        &self,
        endpoint: &'static str,
        path: String,
        deadline: Instant,
    ) -> Result<Reply, IntezerError> {
        let request = ApiRequest::json(endpoint, Method::GET, path, json!({}));
        self.execute(&request, deadline).await
    }

    /// Sends `request` until it gets a response that is not transient, the
    /// retry policy runs out, or the deadline leaves no time for another
    /// attempt. A 429 waits for its `Retry-After` when known, and gives up
    /// at once when that wait would pass the deadline.
    async fn execute(
        &self,
        request: &ApiRequest<'_>,
        deadline: Instant,
    ) -> Result<Reply, IntezerError> {
        let endpoint = request.endpoint;
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            if Instant::now() >= deadline {
                return Err(IntezerError::DeadlineExceeded { endpoint });
            }

            let failure = match self.attempt(request, deadline).await {
                Ok(reply) => match transient_status_error(endpoint, &reply) {
                    None => return Ok(reply),
                    Some(error) => Failure {
                        error,
                        delivery: Delivery::Answered,
                    },
                },
                Err(failure) => failure,
            };
            let error = failure.error;
            if let IntezerError::RateLimited { info, .. } = &error {
                if let Some(quota) = &self.quota {
                    // Nobody sends to this key until Intezer's wait is over.
                    let wait = info.retry_after.unwrap_or(DEFAULT_429_PAUSE);
                    if let Some(until) = Instant::now().checked_add(wait) {
                        quota.pause_until(until);
                    }
                }
                tracing::warn!(
                    endpoint,
                    status = 429,
                    attempt,
                    retry_after_ms = info.retry_after.map(|wait| wait.as_millis() as u64),
                    limit = info.limit,
                    remaining = info.remaining,
                    "rate limited by Intezer"
                );
            }
            if !may_retry(&error, failure.delivery, request.resend)
                || !attempts_left(&self.retry, attempt)
            {
                return Err(error);
            }

            let wait = match &error {
                IntezerError::RateLimited { info, .. } => match info.retry_after {
                    Some(retry_after) => {
                        let fits = Instant::now()
                            .checked_add(retry_after)
                            .is_some_and(|resume_at| resume_at < deadline);
                        if !fits {
                            return Err(error);
                        }
                        retry_after
                    }
                    None => backoff_with_jitter(&self.retry, attempt),
                },
                _ => backoff_with_jitter(&self.retry, attempt),
            };
            let resume_at = match Instant::now().checked_add(wait) {
                Some(resume_at) if resume_at < deadline => resume_at,
                _ => {
                    tracing::warn!(endpoint, attempt, error = %error, "deadline leaves no time to retry Intezer request");
                    return Err(IntezerError::DeadlineExceeded { endpoint });
                }
            };
            tracing::warn!(
                endpoint,
                attempt,
                status = error.status(),
                wait_ms = wait.as_millis() as u64,
                error = %error,
                "retrying Intezer request"
            );
            tokio::time::sleep_until(resume_at).await;
        }
    }

    /// Makes one attempt: takes a limiter token and an access token, sends
    /// the request, and after a 401 fetches a new access token and sends the
    /// request once more. A second 401 means the API key itself is rejected.
    async fn attempt(&self, request: &ApiRequest<'_>, deadline: Instant) -> Result<Reply, Failure> {
        let endpoint = request.endpoint;
        self.acquire_limiter(endpoint, deadline)
            .await
            .map_err(Failure::not_sent)?;
        let bearer = self.tokens.bearer(&self.transport, deadline).await?;
        let reply = self.send_measured(request, &bearer, deadline).await?;
        if reply.status != StatusCode::UNAUTHORIZED {
            return Ok(reply);
        }

        tracing::debug!(
            endpoint,
            status = 401,
            "access token rejected; fetching a new one"
        );
        self.tokens.discard(&bearer).await;
        let bearer = self.tokens.bearer(&self.transport, deadline).await?;
        self.acquire_limiter(endpoint, deadline)
            .await
            .map_err(Failure::not_sent)?;
        let reply = self.send_measured(request, &bearer, deadline).await?;
        if reply.status == StatusCode::UNAUTHORIZED {
            return Err(Failure {
                error: IntezerError::InvalidApiKey { status: 401 },
                delivery: Delivery::Answered,
            });
        }
        Ok(reply)
    }

    /// Sends one request and counts it in the metrics by endpoint, status
    /// class and duration.
    async fn send_measured(
        &self,
        request: &ApiRequest<'_>,
        bearer: &crate::config::Secret,
        deadline: Instant,
    ) -> Result<Reply, Failure> {
        let span = tracing::info_span!(
            "intezer.request",
            otel.kind = "client",
            endpoint = request.endpoint,
            http.request.method = %request.method,
            http.response.status_code = tracing::field::Empty,
            error = tracing::field::Empty,
        );
        let started = std::time::Instant::now();
        let outcome = self
            .transport
            .send(request, Some(bearer), deadline)
            .instrument(span.clone())
            .await;
        let metrics = metrics();
        let class = match &outcome {
            Ok(reply) => {
                span.record("http.response.status_code", reply.status.as_u16());
                status_class(reply.status.as_u16())
            }
            Err(failure) => {
                span.record("error", tracing::field::display(&failure.error));
                "error"
            }
        };
        if let Some(quota) = &self.quota {
            let call_outcome = match &outcome {
                Ok(reply) if reply.status.is_success() => CallOutcome::Success,
                Ok(reply) if reply.status.is_server_error() => CallOutcome::Transient,
                Ok(_) => CallOutcome::Other,
                Err(failure) if failure.error.is_transient() => CallOutcome::Transient,
                Err(_) => CallOutcome::Other,
            };
            quota.record(call_outcome);
        }
        metrics
            .intezer_requests
            .with_label_values(&[request.endpoint, class])
            .inc();
        metrics
            .intezer_request_duration
            .with_label_values(&[request.endpoint])
            .observe(started.elapsed().as_secs_f64());
        outcome
    }

    /// Waits for a rate-limiter token, or fails with `DeadlineExceeded` when
    /// none comes before `deadline`.
    async fn acquire_limiter(
        &self,
        endpoint: &'static str,
        deadline: Instant,
    ) -> Result<(), IntezerError> {
        if let Some(quota) = &self.quota {
            let cost = match endpoint {
                endpoint::LATEST_ANALYSIS | endpoint::ANALYZE | endpoint::DOWNLOAD => {
                    CallCost::FileScan
                }
                _ => CallCost::Free,
            };
            let waiting_since = std::time::Instant::now();
            let acquired = quota.acquire(cost, current_priority(), deadline).await;
            metrics()
                .quota_wait
                .observe(waiting_since.elapsed().as_secs_f64());
            return match acquired {
                Ok(_) => Ok(()),
                Err(err) => {
                    tracing::warn!(endpoint, error = %err, "request held back by the quota guard");
                    let budget_exhausted = matches!(err, QuotaError::BudgetExhausted { .. });
                    Err(IntezerError::QuotaHeld {
                        endpoint,
                        message: err.to_string(),
                        budget_exhausted,
                    })
                }
            };
        }
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter.acquire(deadline).await.map_err(|err| {
            tracing::warn!(endpoint, error = %err, "no rate-limiter token before the deadline");
            IntezerError::DeadlineExceeded { endpoint }
        })
    }
}

// === response helpers ===

/// Maps any status but 200 to an error.
fn expect_ok(endpoint: &'static str, reply: &Reply) -> Result<(), IntezerError> {
    if reply.status == StatusCode::OK {
        Ok(())
    } else {
        Err(status_error(endpoint, reply))
    }
}

/// Reads an analysis state from a 200 or 202 response of `GET /analyses/{id}`.
pub(super) fn analysis_state(
    endpoint: &'static str,
    reply: &Reply,
) -> Result<AnalysisState, IntezerError> {
    let accepted = reply.status == StatusCode::ACCEPTED;
    let mut body = match reply.json_object(endpoint) {
        Ok(body) => body,
        // A 202 needs no body to mean "still running".
        Err(_) if accepted => {
            return Ok(AnalysisState::Running {
                status: ACCEPTED_STATUS.to_string(),
            })
        }
        Err(err) => return Err(err),
    };

    let status = body
        .get("status")
        .and_then(Value::as_str)
        .map(str::to_string);
    match status.as_deref() {
        Some("failed") => Ok(AnalysisState::Failed),
        Some("succeeded" | "finished") => Ok(AnalysisState::Finished(take_field(
            endpoint, &mut body, "result",
        )?)),
        Some(running) => Ok(AnalysisState::Running {
            status: running.to_string(),
        }),
        None if accepted => Ok(AnalysisState::Running {
            status: ACCEPTED_STATUS.to_string(),
        }),
        None => Err(invalid(endpoint, "missing field `status`")),
    }
}

fn state_name(state: &AnalysisState) -> &str {
    match state {
        AnalysisState::Running { status } => status,
        AnalysisState::Finished(_) => "finished",
        AnalysisState::Failed => "failed",
    }
}

/// Reads one poll of a strings operation: the strings once it succeeded,
/// `None` while it runs.
pub(super) fn strings_result(
    endpoint: &'static str,
    reply: &Reply,
) -> Result<Option<Vec<StringEntry>>, IntezerError> {
    let accepted = match reply.status {
        StatusCode::OK => false,
        StatusCode::ACCEPTED => true,
        _ => return Err(status_error(endpoint, reply)),
    };
    let mut body = match reply.json_object(endpoint) {
        Ok(body) => body,
        Err(_) if accepted => return Ok(None),
        Err(err) => return Err(err),
    };

    if let Some(error) = body.get("error") {
        return Err(invalid(
            endpoint,
            format!("strings operation failed: {error}"),
        ));
    }
    match body.get("status").and_then(Value::as_str) {
        Some("succeeded") if !accepted => {
            let mut result: Map<String, Value> = take_field(endpoint, &mut body, "result")?;
            take_field(endpoint, &mut result, "strings").map(Some)
        }
        Some("failed") => Err(invalid(
            endpoint,
            "strings operation failed (status `failed`)",
        )),
        status => {
            tracing::trace!(endpoint, status, "strings operation not finished");
            Ok(None)
        }
    }
}

// === argument checks ===

/// Rejects anything but 64 hexadecimal digits, so that the hash cannot
/// change the request path.
fn check_sha256(endpoint: &'static str, sha256: &str) -> Result<(), IntezerError> {
    if sha256.len() == 64 && sha256.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(IntezerError::InvalidArgument {
            endpoint,
            message: format!("sha256 {sha256:?} is not 64 hexadecimal digits"),
        })
    }
}

/// Rejects an id that is not a single plain path segment.
fn check_id(endpoint: &'static str, name: &str, id: &str) -> Result<(), IntezerError> {
    if is_path_segment(id) {
        Ok(())
    } else {
        Err(IntezerError::InvalidArgument {
            endpoint,
            message: format!(
                "{name} {id:?} is not a valid id; expected letters, digits, '-', '_' or '.'"
            ),
        })
    }
}

fn sub_analysis_path(
    endpoint: &'static str,
    analysis_id: &str,
    sub_id: &str,
    resource: &str,
) -> Result<String, IntezerError> {
    check_id(endpoint, "analysis_id", analysis_id)?;
    check_id(endpoint, "sub_id", sub_id)?;
    Ok(format!(
        "/analyses/{analysis_id}/sub-analyses/{sub_id}/{resource}"
    ))
}

/// `Instant::now() + wait`, saturating far in the future on overflow.
fn deadline_after(wait: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(wait)
        .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use reqwest::header::HeaderMap;

    fn reply(status: u16, body: &str) -> Reply {
        Reply {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: Bytes::from(body.to_string()),
            written: None,
        }
    }

    #[test]
    fn empty_202_is_running() {
        let state = analysis_state("analyses.get", &reply(202, "")).unwrap();

        assert_eq!(
            state,
            AnalysisState::Running {
                status: "accepted".into()
            }
        );
    }

    #[test]
    fn failed_status_in_202_is_failed() {
        let state = analysis_state("analyses.get", &reply(202, r#"{"status": "failed"}"#)).unwrap();

        assert_eq!(state, AnalysisState::Failed);
    }

    #[test]
    fn finished_without_result_is_invalid() {
        let state = analysis_state("analyses.get", &reply(200, r#"{"status": "succeeded"}"#));

        assert!(
            matches!(state, Err(IntezerError::InvalidResponse { .. })),
            "{state:?}"
        );
    }

    #[test]
    fn sha256_check_rejects_path_characters() {
        let slash = format!("{}/x", "a".repeat(62));
        for value in [
            "",
            "abc",
            &"a".repeat(63),
            &"a".repeat(65),
            &"g".repeat(64),
            &slash,
        ] {
            assert!(check_sha256("files.download", value).is_err(), "{value}");
        }
    }

    #[test]
    fn sha256_check_accepts_either_case() {
        assert!(check_sha256("files.download", &"aB0c".repeat(16)).is_ok());
    }

    #[test]
    fn strings_still_running_on_other_status() {
        let result = strings_result(
            "sub-analyses.strings",
            &reply(200, r#"{"status": "in_progress"}"#),
        )
        .unwrap();

        assert_eq!(result, None);
    }
}
