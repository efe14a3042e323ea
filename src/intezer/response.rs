//! Turns Intezer's HTTP responses into values or typed errors.
//!
//! Every decision reads the numeric status code and the JSON body, never the
//! text of an error message.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::{IntezerError, RateLimitInfo};

/// Maximum number of characters of a non-JSON error body quoted in an error.
const MAX_QUOTED_BODY_CHARS: usize = 200;

/// A response whose body was read into memory, or written to a file when
/// the caller asked for a download and the status was 200.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Bytes written to the download file, when the body went there.
    pub written: Option<u64>,
}

impl Reply {
    /// Parses the body as a JSON object.
    pub fn json_object(
        &self,
        endpoint: &'static str,
    ) -> Result<serde_json::Map<String, Value>, IntezerError> {
        match serde_json::from_slice::<Value>(&self.body) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(other) => Err(invalid(
                endpoint,
                format!("expected a JSON object, got {}", json_kind(&other)),
            )),
            Err(err) => Err(invalid(endpoint, format!("body is not JSON: {err}"))),
        }
    }

    /// Parses the body as JSON and deserialises its field `name`.
    pub fn json_field<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        name: &str,
    ) -> Result<T, IntezerError> {
        let mut object = self.json_object(endpoint)?;
        take_field(endpoint, &mut object, name)
    }
}

/// Removes field `name` from `object` and deserialises it.
pub(crate) fn take_field<T: DeserializeOwned>(
    endpoint: &'static str,
    object: &mut serde_json::Map<String, Value>,
    name: &str,
) -> Result<T, IntezerError> {
    let value = object
        .remove(name)
        .ok_or_else(|| invalid(endpoint, format!("missing field `{name}`")))?;
    serde_json::from_value(value)
        .map_err(|err| invalid(endpoint, format!("invalid field `{name}`: {err}")))
}

pub(crate) fn invalid(endpoint: &'static str, message: impl Into<String>) -> IntezerError {
    IntezerError::InvalidResponse {
        endpoint,
        message: message.into(),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Maps a status that every endpoint treats alike: 5xx and 429. Returns
/// `None` for any other status, which the endpoint maps itself.
pub(crate) fn transient_status_error(
    endpoint: &'static str,
    reply: &Reply,
) -> Option<IntezerError> {
    if reply.status.is_server_error() {
        return Some(IntezerError::Server {
            endpoint,
            status: reply.status.as_u16(),
        });
    }
    if reply.status == StatusCode::TOO_MANY_REQUESTS {
        return Some(IntezerError::RateLimited {
            endpoint,
            info: rate_limit_info(&reply.headers, SystemTime::now()),
        });
    }
    None
}

/// Maps an unsuccessful response of any endpoint except `POST /analyze`.
pub(crate) fn status_error(endpoint: &'static str, reply: &Reply) -> IntezerError {
    if let Some(err) = transient_status_error(endpoint, reply) {
        return err;
    }
    let status = reply.status.as_u16();
    match reply.status {
        StatusCode::BAD_REQUEST => IntezerError::BadRequest {
            endpoint,
            message: bad_request_message(&reply.body),
        },
        StatusCode::UNAUTHORIZED => IntezerError::InvalidApiKey { status },
        StatusCode::FORBIDDEN => {
            let error = body_error_text(&reply.body);
            if error.as_deref() == Some("Insufficient Permissions") {
                IntezerError::InsufficientPermissions { endpoint }
            } else {
                IntezerError::Forbidden {
                    endpoint,
                    message: error.unwrap_or_default(),
                }
            }
        }
        StatusCode::NOT_FOUND => IntezerError::NotFound { endpoint },
        StatusCode::GONE => IntezerError::Gone { endpoint },
        _ => IntezerError::UnexpectedStatus { endpoint, status },
    }
}

/// Maps an unsuccessful response of `POST /analyze`, whose 400, 403, 409,
/// 413 and 415 have meanings of their own.
pub(crate) fn submission_error(endpoint: &'static str, reply: &Reply) -> IntezerError {
    match reply.status {
        StatusCode::BAD_REQUEST => {
            let error = body_error_text(&reply.body).unwrap_or_default();
            if error == "Archive is password protected" || error.contains("Cannot extract archive")
            {
                IntezerError::PasswordProtected
            } else {
                IntezerError::BadRequest {
                    endpoint,
                    message: bad_request_message(&reply.body),
                }
            }
        }
        StatusCode::FORBIDDEN => IntezerError::InsufficientQuota {
            message: body_error_text(&reply.body).unwrap_or_default(),
        },
        StatusCode::CONFLICT => conflict_error(endpoint, &reply.body),
        StatusCode::PAYLOAD_TOO_LARGE => IntezerError::FileTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => IntezerError::UnsupportedFileType,
        _ => status_error(endpoint, reply),
    }
}

/// Maps a 409 on upload: either an account rule skipped the file, or the
/// same file is already being analysed under `result.analysis_id`.
fn conflict_error(endpoint: &'static str, body: &[u8]) -> IntezerError {
    let result = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|mut value| value.get_mut("result").map(Value::take));
    let Some(result) = result else {
        return invalid(endpoint, "HTTP 409 without a `result` object");
    };
    if result.get("is_skipped_by_rule").and_then(Value::as_bool) == Some(true) {
        return IntezerError::SkippedByRule;
    }
    match result.get("analysis_id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => IntezerError::AlreadyRunning {
            analysis_id: id.to_string(),
        },
        _ => invalid(endpoint, "HTTP 409 without `result.analysis_id`"),
    }
}

/// Returns the `error` field of a JSON error body, when it is a string.
fn body_error_text(body: &[u8]) -> Option<String> {
    let value = serde_json::from_slice::<Value>(body).ok()?;
    value.get("error")?.as_str().map(str::to_string)
}

/// Describes a 400 body: its `error` text, then its `message` and `details`
/// as JSON. A body that is not JSON is quoted, cut to a few hundred
/// characters.
fn bad_request_message(body: &[u8]) -> String {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return String::from_utf8_lossy(body)
            .chars()
            .take(MAX_QUOTED_BODY_CHARS)
            .collect();
    };
    let mut parts = Vec::new();
    if let Some(error) = value.get("error").and_then(Value::as_str) {
        parts.push(error.to_string());
    }
    for key in ["message", "details"] {
        match value.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) if map.is_empty() => {}
            Some(detail) => parts.push(format!("{key}: {detail}")),
        }
    }
    if parts.is_empty() {
        parts.push("no error text in the response".to_string());
    }
    parts.join("; ")
}

/// Reads the rate-limit headers of a 429 response.
///
/// The wait is `Retry-After` (seconds or an HTTP date), else
/// `X-RateLimit-Reset` (epoch seconds) minus `now`, at least one second as
/// in Intezer's Python SDK, so that a skewed clock cannot cause a burst of
/// retries. Headers that do not parse are ignored.
pub(crate) fn rate_limit_info(headers: &HeaderMap, now: SystemTime) -> RateLimitInfo {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
    };

    let retry_after = header(RETRY_AFTER.as_str())
        .and_then(|value| parse_retry_after(value, now))
        .or_else(|| {
            let reset = header("x-ratelimit-reset")?.parse::<f64>().ok()?;
            let now_secs = now.duration_since(UNIX_EPOCH).ok()?.as_secs_f64();
            let wait = Duration::try_from_secs_f64(reset - now_secs).unwrap_or(Duration::ZERO);
            Some(wait.max(Duration::from_secs(1)))
        });

    RateLimitInfo {
        retry_after,
        limit: header("x-ratelimit-limit").and_then(|value| value.parse().ok()),
        remaining: header("x-ratelimit-remaining").and_then(|value| value.parse().ok()),
    }
}

/// Parses `Retry-After` as delay seconds (fractions accepted, as Intezer's
/// SDK does) or as an HTTP date. A date in the past gives zero.
fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    if let Ok(seconds) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds).ok();
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Extracts the analysis id from a `result_url` of the form
/// `/analyses/<id>`.
pub(crate) fn analysis_id_from_result_url(
    endpoint: &'static str,
    result_url: &str,
) -> Result<String, IntezerError> {
    let segments: Vec<&str> = result_url.split('/').collect();
    match segments.as_slice() {
        ["", "analyses", id] if is_path_segment(id) => Ok((*id).to_string()),
        _ => Err(invalid(
            endpoint,
            format!("`result_url` {result_url:?} is not of the form /analyses/<id>"),
        )),
    }
}

/// Checks that a `result_url` is a plain absolute path below the versioned
/// root, so that appending it cannot reach another host or leave the API.
pub(crate) fn validate_result_path(
    endpoint: &'static str,
    result_url: &str,
) -> Result<(), IntezerError> {
    let is_valid = result_url
        .strip_prefix('/')
        .is_some_and(|relative| relative.split('/').all(is_path_segment));
    if is_valid {
        Ok(())
    } else {
        Err(invalid(
            endpoint,
            format!(
                "`result_url` {result_url:?} is not a relative API path such as /analyses/<id>/..."
            ),
        ))
    }
}

/// True for a non-empty URL path segment made of letters, digits, `-`, `_`
/// and `.`, other than `.` and `..`. Intezer ids are UUIDs, so this rejects
/// nothing real and keeps ids from changing the request path.
pub(crate) fn is_path_segment(segment: &str) -> bool {
    !segment.is_empty()
        && segment != "."
        && segment != ".."
        && segment
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn epoch(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn retry_after_seconds_are_parsed() {
        let info = rate_limit_info(&headers(&[("retry-after", "2.5")]), epoch(1_000));

        assert_eq!(info.retry_after, Some(Duration::from_millis(2_500)));
    }

    #[test]
    fn retry_after_http_date_is_relative_to_now() {
        let now = httpdate::parse_http_date("Wed, 01 Jan 2025 12:00:00 GMT").unwrap();
        let info = rate_limit_info(
            &headers(&[("retry-after", "Wed, 01 Jan 2025 12:00:30 GMT")]),
            now,
        );

        assert_eq!(info.retry_after, Some(Duration::from_secs(30)));
    }

    #[test]
    fn retry_after_date_in_past_gives_zero() {
        let now = httpdate::parse_http_date("Wed, 01 Jan 2025 12:00:00 GMT").unwrap();
        let info = rate_limit_info(
            &headers(&[("retry-after", "Wed, 01 Jan 2025 11:00:00 GMT")]),
            now,
        );

        assert_eq!(info.retry_after, Some(Duration::ZERO));
    }

    #[test]
    fn ratelimit_reset_is_used_without_retry_after() {
        let info = rate_limit_info(
            &headers(&[
                ("x-ratelimit-reset", "1010.5"),
                ("x-ratelimit-limit", "100"),
                ("x-ratelimit-remaining", "0"),
            ]),
            epoch(1_000),
        );

        assert_eq!(info.retry_after, Some(Duration::from_millis(10_500)));
        assert_eq!(info.limit, Some(100));
        assert_eq!(info.remaining, Some(0));
    }

    #[test]
    fn ratelimit_reset_in_past_waits_one_second() {
        let info = rate_limit_info(&headers(&[("x-ratelimit-reset", "900")]), epoch(1_000));

        assert_eq!(info.retry_after, Some(Duration::from_secs(1)));
    }

    #[test]
    fn rate_limit_without_headers_has_no_wait() {
        let info = rate_limit_info(&HeaderMap::new(), epoch(1_000));

        assert_eq!(info, RateLimitInfo::default());
    }

    #[test]
    fn result_url_gives_analysis_id() {
        let id = analysis_id_from_result_url(
            "analyze",
            "/analyses/6f1e2d3c-0000-4000-8000-00000000a001",
        );

        assert_eq!(id.unwrap(), "6f1e2d3c-0000-4000-8000-00000000a001");
    }

    #[test]
    fn result_url_of_other_shapes_is_rejected() {
        for url in [
            "a/sd/asd",
            "/analyses/",
            "/analyses/id/extra",
            "analyses/id",
            "/files/id",
            "/analyses/..",
            "/analyses/a?b",
            "https://evil.example/analyses/id",
        ] {
            let result = analysis_id_from_result_url("analyze", url);
            assert!(
                matches!(result, Err(IntezerError::InvalidResponse { .. })),
                "{url}: {result:?}"
            );
        }
    }

    #[test]
    fn result_path_accepts_nested_api_path() {
        assert!(validate_result_path("s", "/analyses/a1/sub-analyses/s1/strings/op-1").is_ok());
    }

    #[test]
    fn result_path_rejects_escapes() {
        for url in [
            "//evil.example/x",
            "/a/../b",
            "relative",
            "/a/b?x=1",
            "/a/b#f",
            "/a//b",
            "",
        ] {
            assert!(validate_result_path("s", url).is_err(), "{url}");
        }
    }

    #[test]
    fn bad_request_message_joins_error_and_details() {
        let body = br#"{"error": "The request is not valid", "details": {"f": ["unknown field"]}}"#;

        let message = bad_request_message(body);

        assert_eq!(
            message,
            r#"The request is not valid; details: {"f":["unknown field"]}"#
        );
    }

    #[test]
    fn bad_request_message_quotes_non_json_body() {
        assert_eq!(bad_request_message(b"<html>bad</html>"), "<html>bad</html>");
    }
}
