//! Settings of the Intezer client: where the API is, how to authenticate,
//! and the timeouts, size cap and retry policy that bound every call.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::Secret;

/// Base URL of Intezer's public cloud, as the Intezer Python SDK uses it.
pub const DEFAULT_BASE_URL: &str = "https://analyze.intezer.com/api/";

/// API version appended to the base URL.
pub const DEFAULT_API_VERSION: &str = "v2-0";

/// Requests open at once by default: at 20 ms per request, enough for
/// about 12 000 requests a second, far above any Intezer plan's rate.
pub const DEFAULT_MAX_REQUESTS_IN_FLIGHT: usize = 256;

/// Retry policy for transient failures: HTTP 5xx, 429, transport errors and
/// timeouts. Other failures are never retried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// true: retry transient failures until the deadline; false: at most `max_attempts` attempts.
    pub retry_forever: bool,
    /// Maximum number of attempts when `retry_forever` is false; 0 counts as 1.
    pub max_attempts: u32,
    /// Upper bound of the first wait. The bound doubles after each attempt.
    pub initial_backoff: Duration,
    /// Cap of the doubling bound. Each wait is drawn uniformly between zero
    /// and the bound (full jitter).
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retry_forever: false,
            max_attempts: 3,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(10),
        }
    }
}

/// Connection settings of one Intezer account. `Debug` shows the API key
/// as `<redacted>`.
#[derive(Clone, Debug)]
pub struct IntezerSettings {
    /// Base URL such as `https://analyze.intezer.com/api/`. The client
    /// normalises it to end in exactly one `/`.
    pub base_url: String,
    /// API version appended to the base URL, such as `v2-0`.
    pub api_version: String,
    pub api_key: Secret,
    /// On premise, `GET /files/{sha256}` sends `{}` because older servers
    /// reject the `should_get_only_private_analysis` field with HTTP 400.
    pub is_on_premise: bool,
    /// Maximum time to open a TCP and TLS connection.
    pub connect_timeout: Duration,
    /// Maximum time of one HTTP request, from sending it to reading the last
    /// byte of the body. Each request gets the smaller of this and the time
    /// left before the caller's deadline.
    pub request_timeout: Duration,
    /// Maximum size in bytes of a response body, downloads included. A larger
    /// body fails with `IntezerError::ResponseTooLarge`. The service sets it
    /// from the `max_response_mb` key.
    pub max_response_bytes: u64,
    pub retry: RetryPolicy,
    /// PEM file with extra root certificates, for an on-premise server with
    /// a private CA. The service sets it from the `ca_cert_path` key, which
    /// errors name.
    pub ca_path: Option<PathBuf>,
    /// false accepts any server certificate, and the client logs a warning
    /// each time it is built with this setting.
    pub tls_verify: bool,
    pub user_agent: String,
    /// Maximum number of requests open at once; more wait for one to end.
    /// Each open request uses a connection and its buffers, so this bounds
    /// the memory a burst of tasks can take, and the idle connections kept.
    pub max_requests_in_flight: usize,
}

impl IntezerSettings {
    /// Creates settings for `base_url` with every other field at its default.
    pub fn new(base_url: impl Into<String>, api_key: Secret) -> Self {
        IntezerSettings {
            base_url: normalize_base_url(&base_url.into()),
            api_version: DEFAULT_API_VERSION.to_string(),
            api_key,
            is_on_premise: false,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            max_response_bytes: 64 * 1024 * 1024,
            retry: RetryPolicy::default(),
            ca_path: None,
            tls_verify: true,
            user_agent: concat!("intezer-dynamic/", env!("CARGO_PKG_VERSION")).to_string(),
            max_requests_in_flight: DEFAULT_MAX_REQUESTS_IN_FLIGHT,
        }
    }
}

/// Returns `base_url` without surrounding whitespace and with exactly one
/// trailing `/`, so that appending the API version gives `.../api/v2-0`.
pub(crate) fn normalize_base_url(base_url: &str) -> String {
    format!("{}/", base_url.trim().trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_base_url_adds_missing_slash() {
        assert_eq!(normalize_base_url("https://h/api"), "https://h/api/");
    }

    #[test]
    fn normalize_base_url_collapses_extra_slashes() {
        assert_eq!(normalize_base_url(" https://h/api/// "), "https://h/api/");
    }

    #[test]
    fn settings_debug_hides_api_key() {
        let settings = IntezerSettings::new(DEFAULT_BASE_URL, Secret::new("key-1234-abcd"));

        let printed = format!("{settings:?}");

        assert!(!printed.contains("key-1234-abcd"), "{printed}");
        assert!(printed.contains("<redacted>"), "{printed}");
    }
}
