//! Entry point of the `intezer_response` fuzz target in `fuzz/`, built only
//! with the `fuzzing` feature because the parsers it reaches are private to
//! this module.
//!
//! [`parse_response`] feeds one body and one header value to every parser the
//! client applies to a response from the network, under each status code the
//! client tells apart. Parsers may reject any input, but they must not panic.
//! The values that end up in request paths must stay plain path segments,
//! which the function asserts.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::StatusCode;

use super::client::{analysis_state, strings_result};
use super::response::{
    analysis_id_from_result_url, is_path_segment, rate_limit_info, status_error, submission_error,
    transient_status_error, validate_result_path, Reply,
};
use super::token::parse_access_token;
use super::types::{Analysis, CodeReuse, Iocs, QuotaUsage, SubAnalysis, Ttp};

/// Endpoint name carried by the errors built here.
const ENDPOINT: &str = "fuzz";

/// Every status code that some endpoint maps in its own way, plus one of
/// each class the client maps alike.
const STATUSES: &[u16] = &[
    200, 201, 202, 204, 400, 401, 403, 404, 409, 410, 413, 415, 418, 429, 500, 503,
];

/// A fixed wall-clock time, so that a crash found with one run reproduces.
const NOW_SECONDS: u64 = 1_700_000_000;

/// Runs every response parser on `body` and every rate-limit header parser
/// on `header_value`. Panics when a parser panics or returns a path part
/// that is not a single plain segment.
pub fn parse_response(header_value: &[u8], body: &[u8]) {
    let now = UNIX_EPOCH + Duration::from_secs(NOW_SECONDS);
    let body = Bytes::copy_from_slice(body);
    for headers in rate_limit_header_sets(header_value) {
        let _ = rate_limit_info(&headers, now);
    }

    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_bytes(header_value) {
        headers.insert(RETRY_AFTER, value);
    }
    let mut reply = Reply {
        status: StatusCode::OK,
        headers,
        body,
        written: None,
    };
    parse_success_body(&reply, now);
    for &code in STATUSES {
        reply.status = StatusCode::from_u16(code).expect("listed status codes are valid");
        parse_by_status(&reply);
    }
}

/// Builds one header map per way the client reads a 429: `Retry-After`
/// alone, then the `X-RateLimit-*` headers alone.
fn rate_limit_header_sets(header_value: &[u8]) -> Vec<HeaderMap> {
    let Ok(value) = HeaderValue::from_bytes(header_value) else {
        return vec![HeaderMap::new()];
    };
    let mut retry_after = HeaderMap::new();
    retry_after.insert(RETRY_AFTER, value.clone());
    let mut rate_limit = HeaderMap::new();
    for name in [
        "x-ratelimit-reset",
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
    ] {
        rate_limit.insert(HeaderName::from_static(name), value.clone());
    }
    vec![retry_after, rate_limit]
}

/// Reads the body as each endpoint reads a successful response.
fn parse_success_body(reply: &Reply, now: SystemTime) {
    let _ = reply.json_object(ENDPOINT);
    let _ = reply.json_field::<bool>(ENDPOINT, "is_available");
    if let Ok(analysis) = reply.json_field::<Analysis>(ENDPOINT, "result") {
        let _ = analysis.to_json_map();
    }
    let _ = reply.json_field::<Iocs>(ENDPOINT, "result");
    let _ = reply.json_field::<Vec<Ttp>>(ENDPOINT, "result");
    let _ = reply.json_field::<Vec<SubAnalysis>>(ENDPOINT, "sub_analyses");
    if let Ok(usage) = reply.json_field::<QuotaUsage>(ENDPOINT, "result") {
        let _ = usage.file_scans.map(|scans| scans.remaining());
    }
    let _ = serde_json::from_slice::<CodeReuse>(&reply.body);
    if let Ok(token) = parse_access_token(reply) {
        let _ = token.is_fresh(now);
    }
    if let Ok(result_url) = reply.json_field::<String>(ENDPOINT, "result_url") {
        check_result_url(&result_url);
    }
}

/// Runs the parsers whose result depends on the status code: polls, whose
/// status code and body decide the state together, and error responses,
/// rendered as they would be logged and posted to AL.
fn parse_by_status(reply: &Reply) {
    if matches!(reply.status, StatusCode::OK | StatusCode::ACCEPTED) {
        if let Ok(state) = analysis_state(ENDPOINT, reply) {
            let _ = format!("{state:?}");
        }
    }
    let _ = strings_result(ENDPOINT, reply);
    let _ = transient_status_error(ENDPOINT, reply).map(|error| error.to_string());
    let _ = status_error(ENDPOINT, reply).to_string();
    let _ = submission_error(ENDPOINT, reply).to_string();
}

/// Checks that a `result_url` the parsers accept cannot change the host or
/// leave the API: the analysis id is one segment, and an accepted result
/// path is a chain of plain segments.
fn check_result_url(result_url: &str) {
    if let Ok(analysis_id) = analysis_id_from_result_url(ENDPOINT, result_url) {
        assert!(
            is_path_segment(&analysis_id),
            "analysis id {analysis_id:?} from {result_url:?} is not one path segment"
        );
        assert_eq!(format!("/analyses/{analysis_id}"), result_url);
    }
    if validate_result_path(ENDPOINT, result_url).is_ok() {
        let relative = result_url
            .strip_prefix('/')
            .expect("an accepted result path starts with /");
        for segment in relative.split('/') {
            assert!(
                !segment.is_empty() && segment != "." && segment != "..",
                "accepted result path {result_url:?} has segment {segment:?}"
            );
            assert!(
                !segment.contains(['?', '#', '%', '\\', ':']),
                "accepted result path {result_url:?} has segment {segment:?}"
            );
        }
    }
}
