//! HTTP handlers of the simulated service server.
//!
//! Every `/api/v1/` handler first checks the identity headers, then its own
//! input. A rejected request gets the status the real servers use, an
//! enveloped error message, and a line in the report's `protocol_errors`.

use std::collections::HashMap;
use std::time::Duration;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use serde_json::{json, Map, Value};
use tracing::{debug, info, warn};

use super::ledger::SharedState;
use super::task::{is_sha256, sha256_hex};
use super::validate::{
    check_echoed_task, check_error, check_manifest, check_result, listed_files, new_heuristics,
    Expected,
};
use super::{multipart, CompletionKind, ServiceServerOptions};

/// Version string the simulator reports in every envelope. Clients only log
/// it. It names the Assemblyline release whose protocol the simulator follows.
const SERVER_VERSION: &str = "4.7.4.25";

/// Maximum request body, for file uploads and large results.
const MAX_BODY_BYTES: usize = 512 * 1024 * 1024;

/// Long-poll wait when a task request has no `Timeout` header, as in
/// Assemblyline.
const DEFAULT_LONG_POLL: Duration = Duration::from_secs(30);

/// Identity headers every `/api/v1/` call must carry besides `X-APIKey`.
/// `Service-Tool-Version` may be empty.
const IDENTITY_HEADERS: &[&str] = &[
    "Container-ID",
    "Service-Name",
    "Service-Version",
    "Service-Tool-Version",
];

type State = web::Data<SharedState>;

/// Registers every route of the simulator.
pub(super) fn configure(config: &mut web::ServiceConfig) {
    config
        .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
        .service(
            web::resource("/healthz/live")
                .route(web::get().to(live))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/api/v1/service/register/")
                .route(web::put().to(register))
                .route(web::post().to(register))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/api/v1/task/")
                .route(web::get().to(get_task))
                .route(web::post().to(post_task))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/api/v1/file/")
                .route(web::put().to(upload_file))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/api/v1/file/{sha256}/")
                .route(web::get().to(download_file))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/api/v1/safelist/")
                .route(web::get().to(get_safelist))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/api/v1/safelist/signatures/")
                .route(web::get().to(get_safelisted_signatures))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/api/v1/safelist/{hash}/")
                .route(web::get().to(get_safelist_item))
                .default_service(web::to(method_not_allowed)),
        )
        .default_service(web::to(not_found));
}

// === Envelope and rejections ===

fn envelope(status: StatusCode, response: Value, error_message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({
        "api_response": response,
        "api_error_message": error_message,
        "api_server_version": SERVER_VERSION,
        "api_status_code": status.as_u16(),
    }))
}

fn ok(response: Value) -> HttpResponse {
    envelope(StatusCode::OK, response, "")
}

/// Why a request was rejected: what the client gets and what the report
/// records.
#[derive(Debug)]
struct Rejection {
    status: StatusCode,
    /// `api_response` of the error envelope, boxed to keep `Result`s with
    /// a `Rejection` small.
    response: Box<Value>,
    /// `api_error_message` of the error envelope.
    message: String,
    /// Explanation for the report and the log. It equals `message` unless
    /// that is too vague to debug with, as for a 401.
    reason: String,
}

impl Rejection {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        let message = message.into();
        Rejection {
            status,
            response: Box::new(Value::Null),
            reason: message.clone(),
            message,
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Rejection::new(StatusCode::BAD_REQUEST, message)
    }

    fn with_response(mut self, response: Value) -> Self {
        self.response = Box::new(response);
        self
    }

    fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = reason.into();
        self
    }
}

type Outcome = Result<HttpResponse, Rejection>;

/// Turns a handler's outcome into the response. A rejection is logged,
/// recorded as a protocol error and sent back as an error envelope.
fn reply(state: &SharedState, request: &HttpRequest, outcome: Outcome) -> HttpResponse {
    let rejection = match outcome {
        Ok(response) => return response,
        Err(rejection) => rejection,
    };
    warn!(
        method = %request.method(),
        path = request.path(),
        status = rejection.status.as_u16(),
        reason = %rejection.reason,
        "request rejected"
    );
    state.record_protocol_error(format!(
        "{} {}: {} ({})",
        request.method(),
        request.path(),
        rejection.reason,
        rejection.status.as_u16()
    ));
    envelope(rejection.status, *rejection.response, &rejection.message)
}

fn header_text<'a>(request: &'a HttpRequest, name: &str) -> Result<Option<&'a str>, String> {
    match request.headers().get(name) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .map(Some)
            .map_err(|_| format!("header {name} is not visible ASCII text")),
    }
}

/// Checks the API key and the identity headers, and returns the
/// `Container-ID`.
fn check_identity(state: &SharedState, request: &HttpRequest) -> Result<String, Rejection> {
    let unauthorized = |reason: String| {
        Rejection::new(StatusCode::UNAUTHORIZED, "Unauthorized access denied")
            .with_response(json!(""))
            .with_reason(reason)
    };
    match header_text(request, "X-APIKey").map_err(unauthorized)? {
        Some(key) if key == state.options.api_key => {}
        Some(_) => return Err(unauthorized("wrong API key in header X-APIKey".into())),
        None => return Err(unauthorized("missing header X-APIKey".into())),
    }

    let mut values = HashMap::new();
    for name in IDENTITY_HEADERS {
        let value = header_text(request, name)
            .map_err(Rejection::bad_request)?
            .ok_or_else(|| Rejection::bad_request(format!("missing required header {name}")))?;
        if value.is_empty() && *name != "Service-Tool-Version" {
            return Err(Rejection::bad_request(format!(
                "header {name} must not be empty"
            )));
        }
        values.insert(*name, value);
    }

    let service_name = values["Service-Name"];
    if service_name != state.options.service_name {
        return Err(Rejection::bad_request(format!(
            "header Service-Name {service_name:?} does not match the service {:?} of this server",
            state.options.service_name
        )));
    }
    Ok(values["Container-ID"].to_string())
}

fn parse_json_body(body: &Bytes) -> Result<Value, Rejection> {
    serde_json::from_slice(body)
        .map_err(|_| Rejection::bad_request("Data received not in JSON format."))
}

// === Health and fallbacks ===

async fn live() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("OK")
}

async fn not_found(state: State, request: HttpRequest) -> HttpResponse {
    let path = request.path();
    let message = if path.starts_with("/api/v1/") && !path.ends_with('/') {
        format!("not found: API paths end with a slash, request {path}/")
    } else {
        format!("not found: no endpoint {path}")
    };
    let rejection = Rejection::new(StatusCode::NOT_FOUND, message);
    reply(&state, &request, Err(rejection))
}

async fn method_not_allowed(state: State, request: HttpRequest) -> HttpResponse {
    let message = format!(
        "method {} is not allowed on {}",
        request.method(),
        request.path()
    );
    let rejection = Rejection::new(StatusCode::METHOD_NOT_ALLOWED, message);
    reply(&state, &request, Err(rejection))
}

// === Register ===

async fn register(state: State, request: HttpRequest, body: Bytes) -> HttpResponse {
    let outcome = handle_register(&state, &request, &body);
    reply(&state, &request, outcome)
}

fn handle_register(state: &SharedState, request: &HttpRequest, body: &Bytes) -> Outcome {
    check_identity(state, request)?;
    let manifest = parse_json_body(body)?;
    check_manifest(&manifest, &state.options.service_name).map_err(Rejection::bad_request)?;

    let service_config = registered_service_config(&manifest, &state.options);
    let previous = state.record_registration(manifest.clone());
    let new_heuristics = new_heuristics(&manifest, previous.as_ref());
    info!(
        version = manifest["version"].as_str().unwrap_or_default(),
        new_heuristics = new_heuristics.len(),
        "service registered"
    );
    Ok(ok(json!({
        "keep_alive": true,
        "new_heuristics": new_heuristics,
        "service_config": service_config,
    })))
}

/// Builds the register response's `service_config`: the manifest without
/// its manifest-only keys, `stable` removed from the version, `config`
/// overlaid by the administrator's overrides and `timeout` replaced when an
/// override is set.
fn registered_service_config(manifest: &Value, options: &ServiceServerOptions) -> Value {
    let mut service = manifest.as_object().cloned().unwrap_or_default();
    for key in ["heuristics", "file_required", "tool_version"] {
        service.remove(key);
    }
    if let Some(Value::String(version)) = service.get_mut("version") {
        *version = version.replace("stable", "");
    }

    let mut config = match service.remove("config") {
        Some(Value::Object(config)) => config,
        _ => Map::new(),
    };
    for (key, value) in &options.config_overrides {
        config.insert(key.clone(), value.clone());
    }
    service.insert("config".to_string(), Value::Object(config));

    if let Some(timeout) = options.timeout_override {
        service.insert("timeout".to_string(), json!(timeout));
    }
    Value::Object(service)
}

// === Tasks ===

/// Returns how long a task request may wait: its `Timeout` header in
/// seconds (a float, 30 when absent), capped at `max`.
fn long_poll_wait(request: &HttpRequest, max: Duration) -> Result<Duration, String> {
    let wait = match header_text(request, "Timeout")? {
        None => DEFAULT_LONG_POLL,
        Some(text) => {
            let invalid = || format!("header Timeout {text:?} is not a number of seconds");
            let seconds: f64 = text.trim().parse().map_err(|_| invalid())?;
            if !seconds.is_finite() {
                return Err(invalid());
            }
            Duration::from_secs_f64(seconds.clamp(0.0, max.as_secs_f64()))
        }
    };
    Ok(wait.min(max))
}

async fn get_task(state: State, request: HttpRequest) -> HttpResponse {
    let outcome = handle_get_task(&state, &request).await;
    reply(&state, &request, outcome)
}

async fn handle_get_task(state: &SharedState, request: &HttpRequest) -> Outcome {
    let container_id = check_identity(state, request)?;
    let wait =
        long_poll_wait(request, state.options.max_long_poll).map_err(Rejection::bad_request)?;
    if !state.is_registered() {
        return Err(Rejection::new(
            StatusCode::NOT_FOUND,
            "The service you're asking task for does not exist, try later",
        )
        .with_response(json!({}))
        .with_reason("task requested before the service registered"));
    }

    debug!(container_id, wait = ?wait, "task long poll started");
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        // Enable the notification before looking at the queue, so a task
        // queued in between still wakes this poll.
        let queued = state.task_queued.notified();
        tokio::pin!(queued);
        queued.as_mut().enable();

        if let Some(task) = state.hand_out_next(&container_id) {
            info!(
                sid = task["sid"].as_str().unwrap_or_default(),
                sha256 = task["fileinfo"]["sha256"].as_str().unwrap_or_default(),
                container_id,
                "task handed out"
            );
            return Ok(ok(json!({ "task": task })));
        }
        if tokio::time::timeout_at(deadline, queued).await.is_err() {
            return Ok(ok(json!({ "task": false })));
        }
    }
}

async fn post_task(state: State, request: HttpRequest, body: Bytes) -> HttpResponse {
    let outcome = handle_post_task(&state, &request, &body);
    reply(&state, &request, outcome)
}

fn handle_post_task(state: &SharedState, request: &HttpRequest, body: &Bytes) -> Outcome {
    check_identity(state, request)?;
    let Value::Object(body) = parse_json_body(body)? else {
        return Err(Rejection::bad_request("Data received not in JSON format."));
    };

    // Match the posted task to the one handed out, by sid and file.
    let sid = check_echoed_task(body.get("task")).map_err(Rejection::bad_request)?;
    let issued = state.issued_task(sid).ok_or_else(|| {
        Rejection::bad_request(format!(
            "task.sid {sid:?} was never handed out by this server"
        ))
    })?;
    let echoed = &body["task"];
    if echoed["fileinfo"]["sha256"] != issued.sha256.as_str() {
        return Err(Rejection::bad_request(format!(
            "task.fileinfo.sha256 does not match the file {} of task {sid}",
            issued.sha256
        )));
    }
    if echoed["service_name"] != issued.service_name.as_str() {
        return Err(Rejection::bad_request(format!(
            "task.service_name does not match the service {:?} of task {sid}",
            issued.service_name
        )));
    }
    let expected = Expected {
        sha256: &issued.sha256,
        service_name: &issued.service_name,
    };

    if let Some(result) = body.get("result") {
        let freshen = match body.get("freshen") {
            Some(Value::Bool(freshen)) => *freshen,
            Some(_) => return Err(Rejection::bad_request("freshen must be a boolean")),
            None => {
                return Err(Rejection::bad_request(
                    "freshen is missing (send true, or false after uploading missing files)",
                ))
            }
        };
        check_result(result, freshen, &expected).map_err(Rejection::bad_request)?;

        if freshen && state.options.ask_missing_files {
            let missing = state.missing_files(&listed_files(result));
            if !missing.is_empty() {
                info!(
                    sid,
                    missing = missing.len(),
                    "result lists files not uploaded yet"
                );
                return Ok(ok(json!({"success": false, "missing_files": missing})));
            }
        }

        let repeated = state.record_completion(
            &issued,
            CompletionKind::Result,
            result.clone(),
            Some(freshen),
        );
        log_completion(sid, &issued.sha256, CompletionKind::Result, repeated);
        return Ok(ok(json!({"success": true})));
    }

    if let Some(error) = body.get("error") {
        check_error(error, &expected).map_err(Rejection::bad_request)?;
        let repeated = state.record_completion(&issued, CompletionKind::Error, error.clone(), None);
        log_completion(sid, &issued.sha256, CompletionKind::Error, repeated);
        return Ok(ok(json!({"success": true})));
    }

    Err(Rejection::bad_request(
        "No result or error provided by service.",
    ))
}

fn log_completion(sid: &str, sha256: &str, kind: CompletionKind, repeated: bool) {
    if repeated {
        warn!(sid, sha256, ?kind, "task completed again");
    } else {
        info!(sid, sha256, ?kind, "task completed");
    }
}

// === Files ===

async fn download_file(
    state: State,
    request: HttpRequest,
    sha256: web::Path<String>,
) -> HttpResponse {
    let outcome = handle_download_file(&state, &request, &sha256);
    reply(&state, &request, outcome)
}

fn handle_download_file(state: &SharedState, request: &HttpRequest, sha256: &str) -> Outcome {
    check_identity(state, request)?;
    if !is_sha256(sha256) {
        return Err(Rejection::bad_request(format!(
            "{sha256:?} is not a SHA-256 in 64 lowercase hex digits"
        )));
    }
    // A service may ask for any file (sub-files before downloading them
    // elsewhere), so a miss is a normal answer, not a protocol error.
    let Some(bytes) = state.download(sha256) else {
        debug!(sha256, "file not found");
        return Ok(envelope(
            StatusCode::NOT_FOUND,
            json!({}),
            "The file was not found in the system.",
        ));
    };

    debug!(sha256, size = bytes.len(), "file downloaded");
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=file.bin; filename*=UTF-8''{sha256}"),
        ))
        .body(bytes))
}

/// Reads an optional `true`/`false` header (any case).
fn optional_flag(request: &HttpRequest, name: &str) -> Result<bool, String> {
    match header_text(request, name)? {
        None => Ok(false),
        Some(text) if text.eq_ignore_ascii_case("true") => Ok(true),
        Some(text) if text.eq_ignore_ascii_case("false") => Ok(false),
        Some(text) => Err(format!("header {name} must be true or false, got {text:?}")),
    }
}

/// Reads and checks the headers of an upload, returning the announced
/// SHA-256.
fn upload_headers(request: &HttpRequest) -> Result<String, String> {
    let required = |name: &str| -> Result<String, String> {
        match header_text(request, name)? {
            Some(value) if !value.trim().is_empty() => Ok(value.trim().to_string()),
            _ => Err(format!("missing required header {name}")),
        }
    };
    let sha256 = required("sha256")?;
    if !is_sha256(&sha256) {
        return Err(format!(
            "header sha256 {sha256:?} is not a SHA-256 in 64 lowercase hex digits"
        ));
    }
    required("classification")?;
    let ttl = required("ttl")?;
    if ttl.parse::<i64>().is_err() {
        return Err(format!("header ttl {ttl:?} is not a whole number of days"));
    }
    optional_flag(request, "Is-Section-Image")?;
    optional_flag(request, "Is-Supplementary")?;
    Ok(sha256)
}

/// Returns the uploaded file: the `file` part of a multipart body, or the
/// raw body otherwise.
fn uploaded_content(request: &HttpRequest, body: Bytes) -> Result<Bytes, String> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value: &HeaderValue| value.to_str().ok())
        .unwrap_or_default();
    let Some(boundary) = multipart::boundary(content_type) else {
        return Ok(body);
    };
    multipart::find_part(&body, &boundary, "file")?
        .ok_or_else(|| "multipart body has no part named file".to_string())
}

async fn upload_file(state: State, request: HttpRequest, body: Bytes) -> HttpResponse {
    let outcome = handle_upload_file(&state, &request, body);
    reply(&state, &request, outcome)
}

fn handle_upload_file(state: &SharedState, request: &HttpRequest, body: Bytes) -> Outcome {
    check_identity(state, request)?;
    let expected = upload_headers(request).map_err(Rejection::bad_request)?;
    let content = uploaded_content(request, body).map_err(Rejection::bad_request)?;

    let actual = sha256_hex(&content);
    if actual != expected {
        return Err(Rejection::bad_request(format!(
            "Uploaded file does not match expected file hash. [{actual} != {expected}]"
        ))
        .with_response(json!({"success": false})));
    }

    info!(sha256 = %actual, size = content.len(), "file uploaded");
    state.store_upload(actual, content);
    Ok(ok(json!({"success": true})))
}

// === Safelist ===

async fn get_safelist(
    state: State,
    request: HttpRequest,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let outcome = handle_get_safelist(&state, &request, query.get("tag_types"));
    reply(&state, &request, outcome)
}

fn handle_get_safelist(
    state: &SharedState,
    request: &HttpRequest,
    tag_types: Option<&String>,
) -> Outcome {
    check_identity(state, request)?;
    let Some(tag_types) = tag_types else {
        return Ok(ok(state.options.safelist.clone()));
    };

    let requested: Vec<&str> = tag_types
        .split(',')
        .map(str::trim)
        .filter(|tag_type| !tag_type.is_empty())
        .collect();
    let mut filtered = Map::new();
    for list in ["match", "regex"] {
        let entries: Map<String, Value> = state.options.safelist[list]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(tag_type, _)| requested.contains(&tag_type.as_str()))
            .map(|(tag_type, values)| (tag_type.clone(), values.clone()))
            .collect();
        filtered.insert(list.to_string(), Value::Object(entries));
    }
    Ok(ok(Value::Object(filtered)))
}

async fn get_safelisted_signatures(state: State, request: HttpRequest) -> HttpResponse {
    let outcome = check_identity(&state, &request).map(|_| ok(json!([])));
    reply(&state, &request, outcome)
}

/// No hash is ever safelisted by the simulator, so every item lookup gets
/// the real server's 404. A miss is a normal response, not a protocol error.
async fn get_safelist_item(state: State, request: HttpRequest) -> HttpResponse {
    let outcome = check_identity(&state, &request).map(|_| {
        envelope(
            StatusCode::NOT_FOUND,
            Value::Null,
            "The hash was not found in the safelist.",
        )
    });
    reply(&state, &request, outcome)
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn long_poll_wait_parses_float_and_caps() {
        let max = Duration::from_secs(5);
        let wait = |value: Option<&str>| {
            let mut request = TestRequest::default();
            if let Some(value) = value {
                request = request.insert_header(("Timeout", value));
            }
            long_poll_wait(&request.to_http_request(), max)
        };

        assert_eq!(wait(Some("0.25")), Ok(Duration::from_millis(250)));
        assert_eq!(wait(Some("0")), Ok(Duration::ZERO));
        assert_eq!(wait(Some("-3")), Ok(Duration::ZERO));
        assert_eq!(wait(Some("600")), Ok(max));
        assert_eq!(wait(None), Ok(max));
        assert!(wait(Some("soon")).is_err());
        assert!(wait(Some("NaN")).is_err());
    }

    #[test]
    fn service_config_drops_manifest_keys_and_applies_overrides() {
        let manifest = json!({
            "name": "IntezerDynamic", "version": "4.6.0.stable7", "timeout": 60,
            "file_required": true, "tool_version": "v2-0", "heuristics": [],
            "config": {"api_key": "changeme", "base_url": "https://example.invalid/"},
            "docker_config": {"image": "x"},
        });
        let mut options = ServiceServerOptions {
            timeout_override: Some(90),
            ..ServiceServerOptions::default()
        };
        options
            .config_overrides
            .insert("api_key".into(), json!("set-by-admin"));

        let service = registered_service_config(&manifest, &options);

        assert_eq!(service["version"], "4.6.0.7");
        assert_eq!(service["timeout"], 90);
        assert_eq!(service["config"]["api_key"], "set-by-admin");
        assert_eq!(service["config"]["base_url"], "https://example.invalid/");
        for key in ["heuristics", "file_required", "tool_version"] {
            assert!(service.get(key).is_none(), "{key} kept");
        }
    }
}
