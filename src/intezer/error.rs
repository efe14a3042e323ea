//! The one error type of the Intezer client.

use std::time::Duration;

/// Rate-limit headers of a 429 answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RateLimitInfo {
    /// `Retry-After`, or `X-RateLimit-Reset` minus now when only that is sent.
    pub retry_after: Option<Duration>,
    pub limit: Option<u64>,
    pub remaining: Option<u64>,
}

/// Every way a call to Intezer can fail. Status codes come from the
/// response, never from error text.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IntezerError {
    #[error("{endpoint}: not found (HTTP 404)")]
    NotFound { endpoint: &'static str },
    #[error("{endpoint}: gone (HTTP 410)")]
    Gone { endpoint: &'static str },
    #[error("{endpoint}: forbidden (HTTP 403): {message}")]
    Forbidden {
        endpoint: &'static str,
        message: String,
    },
    #[error("{endpoint}: insufficient permissions for this API key's plan (HTTP 403)")]
    InsufficientPermissions { endpoint: &'static str },
    #[error("the Intezer account's quota is used up (HTTP 403 on upload): {message}")]
    InsufficientQuota { message: String },
    #[error("Intezer is already analysing this file as analysis {analysis_id} (HTTP 409)")]
    AlreadyRunning { analysis_id: String },
    #[error("an Intezer account rule skipped the analysis (HTTP 409)")]
    SkippedByRule,
    #[error("Intezer does not support this file type (HTTP 415)")]
    UnsupportedFileType,
    #[error("the file is too large for Intezer (HTTP 413)")]
    FileTooLarge,
    #[error("the archive is password protected, so Intezer cannot open it")]
    PasswordProtected,
    #[error("the Intezer API key was rejected (HTTP {status}); check the api_key setting")]
    InvalidApiKey { status: u16 },
    #[error("{endpoint}: rate limited by Intezer (HTTP 429){}", retry_hint(.info))]
    RateLimited {
        endpoint: &'static str,
        info: RateLimitInfo,
    },
    #[error("{endpoint}: bad request (HTTP 400): {message}")]
    BadRequest {
        endpoint: &'static str,
        message: String,
    },
    #[error("{endpoint}: Intezer server error (HTTP {status})")]
    Server { endpoint: &'static str, status: u16 },
    #[error("{endpoint}: unexpected HTTP status {status}")]
    UnexpectedStatus { endpoint: &'static str, status: u16 },
    #[error("{endpoint}: request failed: {message}")]
    Transport {
        endpoint: &'static str,
        message: String,
    },
    #[error("{endpoint}: timed out")]
    Timeout { endpoint: &'static str },
    #[error("{endpoint}: invalid response: {message}")]
    InvalidResponse {
        endpoint: &'static str,
        message: String,
    },
    #[error(
        "{endpoint}: response body exceeds the limit of {limit} bytes; raise max_response_mb \
         to accept larger responses"
    )]
    ResponseTooLarge { endpoint: &'static str, limit: u64 },
    #[error("the task deadline passed before {endpoint} could be retried")]
    DeadlineExceeded { endpoint: &'static str },
    #[error("{endpoint}: not sent: {message}")]
    QuotaHeld {
        endpoint: &'static str,
        message: String,
        budget_exhausted: bool,
    },
    #[error("invalid Intezer client setting: {0}")]
    Config(String),
    #[error("local file error for {path}: {message}")]
    LocalFile { path: String, message: String },
    #[error("{endpoint}: invalid argument: {message}")]
    InvalidArgument {
        endpoint: &'static str,
        message: String,
    },
}

impl IntezerError {
    /// Whether the same request may succeed if sent again later: transport
    /// failures, timeouts, 5xx and 429.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            IntezerError::Server { .. }
                | IntezerError::Transport { .. }
                | IntezerError::Timeout { .. }
                | IntezerError::RateLimited { .. }
        )
    }

    /// Returns the HTTP status code of the response behind the error, or
    /// `None` when no response was involved.
    pub fn status(&self) -> Option<u16> {
        match self {
            IntezerError::NotFound { .. } => Some(404),
            IntezerError::Gone { .. } => Some(410),
            IntezerError::Forbidden { .. }
            | IntezerError::InsufficientPermissions { .. }
            | IntezerError::InsufficientQuota { .. } => Some(403),
            IntezerError::AlreadyRunning { .. } | IntezerError::SkippedByRule => Some(409),
            IntezerError::UnsupportedFileType => Some(415),
            IntezerError::FileTooLarge => Some(413),
            IntezerError::PasswordProtected | IntezerError::BadRequest { .. } => Some(400),
            IntezerError::RateLimited { .. } => Some(429),
            IntezerError::InvalidApiKey { status }
            | IntezerError::Server { status, .. }
            | IntezerError::UnexpectedStatus { status, .. } => Some(*status),
            IntezerError::Transport { .. }
            | IntezerError::Timeout { .. }
            | IntezerError::InvalidResponse { .. }
            | IntezerError::ResponseTooLarge { .. }
            | IntezerError::DeadlineExceeded { .. }
            | IntezerError::QuotaHeld { .. }
            | IntezerError::Config(_)
            | IntezerError::LocalFile { .. }
            | IntezerError::InvalidArgument { .. } => None,
        }
    }

    /// Returns the endpoint name of the call that failed, for variants that
    /// carry one. The upload-only variants (quota, already running, skipped by
    /// rule, file type, size, password) always come from `analyze`.
    pub fn endpoint(&self) -> Option<&'static str> {
        match self {
            IntezerError::NotFound { endpoint }
            | IntezerError::Gone { endpoint }
            | IntezerError::Forbidden { endpoint, .. }
            | IntezerError::InsufficientPermissions { endpoint }
            | IntezerError::RateLimited { endpoint, .. }
            | IntezerError::BadRequest { endpoint, .. }
            | IntezerError::Server { endpoint, .. }
            | IntezerError::UnexpectedStatus { endpoint, .. }
            | IntezerError::Transport { endpoint, .. }
            | IntezerError::Timeout { endpoint }
            | IntezerError::InvalidResponse { endpoint, .. }
            | IntezerError::ResponseTooLarge { endpoint, .. }
            | IntezerError::DeadlineExceeded { endpoint }
            | IntezerError::QuotaHeld { endpoint, .. }
            | IntezerError::InvalidArgument { endpoint, .. } => Some(endpoint),
            IntezerError::InsufficientQuota { .. }
            | IntezerError::AlreadyRunning { .. }
            | IntezerError::SkippedByRule
            | IntezerError::UnsupportedFileType
            | IntezerError::FileTooLarge
            | IntezerError::PasswordProtected => Some(crate::intezer::endpoint::ANALYZE),
            IntezerError::InvalidApiKey { .. }
            | IntezerError::Config(_)
            | IntezerError::LocalFile { .. } => None,
        }
    }
}

/// The wait a 429 asked for, as text for error messages.
fn retry_hint(info: &RateLimitInfo) -> String {
    match info.retry_after {
        Some(wait) => format!(", retry after {:.1} s", wait.as_secs_f64()),
        None => ", with no retry time given".to_string(),
    }
}
