//! The embedded Assemblyline service-server simulator and the Python
//! stand-in, driven over real HTTP on 127.0.0.1 the way a service container
//! talks to a service server.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::Bytes;
use intezer_dynamic::simulator::service_server::{
    CompletionKind, ServiceServerHandle, ServiceServerOptions, ServiceServerSimulator, SimFile,
    DEFAULT_API_KEY,
};
use reqwest::StatusCode;
use serde_json::{json, Map, Value};
use sha2::Digest as _;

const SERVICE_NAME: &str = "IntezerDynamic";
const SERVICE_VERSION: &str = "4.6.0.1";

/// Upper bound for anything the tests wait on, so a hang fails instead of
/// blocking the suite.
const TEST_DEADLINE: Duration = Duration::from_secs(20);

// === Helpers ===

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

fn sample(name: &str, content: &'static [u8]) -> SimFile {
    SimFile {
        name: name.to_string(),
        bytes: Bytes::from_static(content),
        file_type: "executable/windows/pe32".to_string(),
    }
}

fn options_with(files: Vec<SimFile>) -> ServiceServerOptions {
    ServiceServerOptions {
        files,
        ..ServiceServerOptions::default()
    }
}

async fn start(options: ServiceServerOptions) -> ServiceServerHandle {
    ServiceServerSimulator::start(options, 0)
        .await
        .expect("simulator binds a free port on 127.0.0.1")
}

fn manifest() -> Value {
    json!({
        "name": SERVICE_NAME,
        "version": SERVICE_VERSION,
        "description": "Looks files up in Intezer Analyze",
        "accepts": "executable/windows/.*",
        "rejects": "empty|metadata/.*",
        "stage": "CORE",
        "category": "External",
        "file_required": true,
        "timeout": 60,
        "enabled": false,
        "privileged": false,
        "tool_version": "v2-0",
        "config": {"base_url": "https://analyze.intezer.com/api/", "api_key": "sample_api_key"},
        "submission_params": [
            {"name": "dynamic_submit", "type": "bool", "value": true, "default": true},
            {"name": "analysis_id", "type": "str", "value": "", "default": ""},
        ],
        "heuristics": [
            {"heur_id": 1, "name": "File is malicious", "score": 1000, "filetype": ".*",
             "description": "Intezer verdict is malicious"},
            {"heur_id": 4, "name": "Generic signature raised", "score": 0, "filetype": ".*",
             "description": "Intezer raised a signature"},
        ],
        "docker_config": {"image": "example/intezer-dynamic:4.6.0.1", "cpu_cores": 0.5,
                          "ram_mb": 512, "allow_internet_access": true},
    })
}

/// Builds a file entry for `response.extracted`.
fn extracted_entry(name: &str, content: &[u8]) -> Value {
    json!({
        "name": name,
        "sha256": sha256_hex(content),
        "description": "Sub-file downloaded from Intezer",
        "classification": "TLP:C",
        "is_section_image": false,
        "is_supplementary": false,
        "parent_relation": "EXTRACTED",
        "allow_dynamic_recursion": false,
    })
}

/// Builds a result the real servers accept for `task`, listing `extracted`
/// files.
fn result_for(task: &Value, extracted: Vec<Value>) -> Value {
    json!({
        "classification": "TLP:C",
        "sha256": task["fileinfo"]["sha256"],
        "type": task["fileinfo"]["type"],
        "size": task["fileinfo"]["size"],
        "drop_file": false,
        "partial": false,
        "temp_submission_data": {},
        "response": {
            "milestones": {"service_started": "2026-01-01T00:00:00.000000Z",
                           "service_completed": "2026-01-01T00:00:05.000000Z"},
            "service_name": SERVICE_NAME,
            "service_version": SERVICE_VERSION,
            "service_tool_version": "v2-0",
            "service_context": null,
            "service_debug_info": null,
            "extracted": extracted,
            "supplementary": [],
        },
        "result": {"score": 0, "sections": [
            {"title_text": "Intezer analysis report", "body_format": "KEY_VALUE",
             "body": "{\"analysis_id\": \"0b3c\", \"verdict\": \"malicious\"}",
             "body_config": {}, "classification": "TLP:C", "depth": 0,
             "heuristic": {"heur_id": 1, "attack_ids": [], "signatures": {}, "frequency": 1,
                           "score_map": {}, "score": 1000},
             "tags": {"attribution": {"implant": ["EXAMPLERAT"]}},
             "zeroize_on_tag_safe": false, "auto_collapse": false, "promote_to": null},
            {"title_text": "Signature: process_injection", "body_format": "TEXT",
             "body": "Injects code into a remote process", "body_config": {},
             "classification": "TLP:C", "depth": 1, "heuristic": null, "tags": {},
             "zeroize_on_tag_safe": false, "auto_collapse": false, "promote_to": null},
        ]},
    })
}

fn error_for(task: &Value) -> Value {
    json!({
        "response": {
            "message": "Intezer API returned HTTP 503 after 5 retries",
            "service_name": SERVICE_NAME,
            "service_version": SERVICE_VERSION,
            "service_tool_version": "v2-0",
            "service_debug_info": null,
            "status": "FAIL_RECOVERABLE",
        },
        "sha256": task["fileinfo"]["sha256"],
        "type": "EXCEPTION",
        "severity": "error",
    })
}

/// A service's side of the conversation: identity headers on every call.
struct ServiceClient {
    http: reqwest::Client,
    base_url: String,
    api_key: String,
    service_name: String,
    tool_version: String,
}

impl ServiceClient {
    fn new(base_url: &str) -> Self {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(TEST_DEADLINE)
            .build()
            .expect("HTTP client");
        ServiceClient {
            http,
            base_url: base_url.to_string(),
            api_key: DEFAULT_API_KEY.to_string(),
            service_name: SERVICE_NAME.to_string(),
            tool_version: "v2-0".to_string(),
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base_url))
            .header("X-APIKey", &self.api_key)
            .header("Container-ID", "alsvc-intezer-test-1")
            .header("Service-Name", &self.service_name)
            .header("Service-Version", SERVICE_VERSION)
            .header("Service-Tool-Version", &self.tool_version)
    }

    async fn send(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let response = request.send().await.expect("request reaches the server");
        let status = response.status();
        let body = response.json().await.expect("enveloped JSON response");
        (status, body)
    }

    async fn register(&self, manifest: &Value) -> (StatusCode, Value) {
        Self::send(
            self.request(reqwest::Method::PUT, "/api/v1/service/register/")
                .json(manifest),
        )
        .await
    }

    async fn get_task(&self, timeout: &str) -> (StatusCode, Value) {
        Self::send(
            self.request(reqwest::Method::GET, "/api/v1/task/")
                .header("Timeout", timeout),
        )
        .await
    }

    /// Polls once with `Timeout: 0` and returns the task, which must exist.
    async fn take_task(&self) -> Value {
        let (status, envelope) = self.get_task("0").await;
        assert_eq!(status, StatusCode::OK, "{envelope}");
        let task = envelope["api_response"]["task"].clone();
        assert!(task.is_object(), "no task handed out: {envelope}");
        task
    }

    async fn download(&self, sha256: &str) -> (StatusCode, Bytes) {
        let response = self
            .request(reqwest::Method::GET, &format!("/api/v1/file/{sha256}/"))
            .send()
            .await
            .expect("request reaches the server");
        let status = response.status();
        (status, response.bytes().await.expect("response body"))
    }

    async fn post(&self, body: &Value) -> (StatusCode, Value) {
        Self::send(
            self.request(reqwest::Method::POST, "/api/v1/task/")
                .json(body),
        )
        .await
    }

    fn upload_request(&self, sha256: &str) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::PUT, "/api/v1/file/")
            .header("sha256", sha256)
            .header("classification", "TLP:C")
            .header("ttl", "15")
            .header("Is-Section-Image", "False")
            .header("Is-Supplementary", "False")
    }

    /// Uploads `content` as the `file` part of a multipart body, streamed
    /// with chunked transfer encoding as a service streaming from disk does.
    async fn upload_multipart(&self, content: &'static [u8]) -> (StatusCode, Value) {
        let chunks = futures_util::stream::iter(
            content
                .chunks(4)
                .map(|chunk| Ok::<_, std::io::Error>(Bytes::from_static(chunk))),
        );
        let part = reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(chunks))
            .file_name("payload.bin");
        let form = reqwest::multipart::Form::new().part("file", part);
        Self::send(self.upload_request(&sha256_hex(content)).multipart(form)).await
    }

    async fn upload_raw(
        &self,
        announced_sha256: &str,
        content: &'static [u8],
    ) -> (StatusCode, Value) {
        Self::send(
            self.upload_request(announced_sha256)
                .header("Content-Type", "application/octet-stream")
                .body(content),
        )
        .await
    }
}

fn message(envelope: &Value) -> &str {
    envelope["api_error_message"].as_str().unwrap_or_default()
}

// === Cycle shared by the simulator and the stand-in ===

const EXTRACTED: &[u8] = b"stage two payload";

/// Walks one service lifetime against a server started with one queued
/// file and with missing-file checks on. The steps: a rejected key,
/// register, take the task, download and verify it, an invalid result, the
/// missing-files loop, a duplicate result and a final empty poll. Returns
/// the task's sid.
async fn drive_protocol_cycle(base_url: &str) -> String {
    let service = ServiceClient::new(base_url);

    let mut intruder = ServiceClient::new(base_url);
    intruder.api_key = "not-the-key".to_string();
    let (status, envelope) = intruder.get_task("0").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(message(&envelope), "Unauthorized access denied");

    let (status, envelope) = service.register(&manifest()).await;
    assert_eq!(status, StatusCode::OK, "{envelope}");
    assert_eq!(envelope["api_response"]["keep_alive"], true);
    assert_eq!(envelope["api_status_code"], 200);

    let task = service.take_task().await;
    let sha256 = task["fileinfo"]["sha256"].as_str().unwrap().to_string();
    let (status, content) = service.download(&sha256).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sha256_hex(&content), sha256);

    let mut invalid = result_for(&task, vec![]);
    invalid["result"]["sections"][1]["title_text"] = json!("");
    let (status, envelope) = service
        .post(&json!({"task": task, "result": invalid, "freshen": true}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        message(&envelope).contains("sections[1].title_text"),
        "{envelope}"
    );

    let result = result_for(&task, vec![extracted_entry("stage2.bin", EXTRACTED)]);
    let (status, envelope) = service
        .post(&json!({"task": task, "result": result, "freshen": true}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        envelope["api_response"],
        json!({"success": false, "missing_files": [sha256_hex(EXTRACTED)]})
    );

    let (status, envelope) = service.upload_multipart(EXTRACTED).await;
    assert_eq!(status, StatusCode::OK, "{envelope}");
    let (status, envelope) = service
        .post(&json!({"task": task, "result": result, "freshen": false}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(envelope["api_response"], json!({"success": true}));

    let (status, envelope) = service
        .post(&json!({"task": task, "result": result, "freshen": true}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(envelope["api_response"], json!({"success": true}));

    let (status, envelope) = service.get_task("0").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(envelope["api_response"], json!({"task": false}));

    task["sid"].as_str().unwrap().to_string()
}

/// Checks a report (simulator or stand-in, as JSON) after
/// [`drive_protocol_cycle`].
fn assert_cycle_report(report: &Value, sid: &str) {
    assert_eq!(report["registered"], 1);
    assert_eq!(report["tasks_queued"], 1);
    assert_eq!(report["tasks_handed_out"], 1);
    assert_eq!(report["lost"], json!([]));
    assert_eq!(report["never_handed_out"], json!([]));
    assert_eq!(report["completed_twice"], json!([sid]));
    assert_eq!(report["uploads"], json!([sha256_hex(EXTRACTED)]));

    let completions = report["completions"].as_array().unwrap();
    assert_eq!(completions.len(), 2);
    assert_eq!(completions[0]["sid"], sid);
    assert_eq!(completions[0]["kind"], "Result");
    assert_eq!(completions[0]["freshen"], false);
    assert_eq!(completions[1]["freshen"], true);

    let errors: Vec<&str> = report["protocol_errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| line.as_str().unwrap())
        .collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].contains("wrong API key"), "{errors:?}");
    assert!(errors[1].contains("title_text"), "{errors:?}");
}

// === Simulator: the main cycle ===

/// Register, take the task, download and verify it, post a result: the
/// report shows one completion and nothing lost.
#[tokio::test(flavor = "multi_thread")]
async fn full_cycle_records_one_completion() {
    let server = start(options_with(vec![sample(
        "invoice.exe",
        b"MZ\x90\x00 sample",
    )]))
    .await;
    let service = ServiceClient::new(&server.base_url());

    let (status, _) = service.register(&manifest()).await;
    assert_eq!(status, StatusCode::OK);
    let task = service.take_task().await;
    assert_eq!(server.progress_counts(), (1, 0));
    let sha256 = task["fileinfo"]["sha256"].as_str().unwrap();
    let (status, content) = service.download(sha256).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sha256_hex(&content), sha256);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let (status, envelope) = service
        .post(&json!({"task": task, "result": result_for(&task, vec![]), "freshen": true}))
        .await;
    let report = server.report();

    assert_eq!(status, StatusCode::OK);
    assert_eq!(envelope["api_response"], json!({"success": true}));
    assert_eq!(server.progress_counts(), (1, 1));
    // The task was held at least as long as the pause above.
    assert!(report.completions[0].latency() >= std::time::Duration::from_millis(20));
    assert_eq!(
        report.completions[0].completed_after - report.completions[0].handed_out_after,
        report.completions[0].latency()
    );
    assert_eq!(report.registered, 1);
    assert_eq!(report.tasks_handed_out, 1);
    assert_eq!(report.completions.len(), 1);
    assert_eq!(report.completions[0].sid, task["sid"].as_str().unwrap());
    assert_eq!(report.completions[0].sha256, sha256);
    assert_eq!(report.completions[0].kind, CompletionKind::Result);
    assert_eq!(report.completions[0].freshen, Some(true));
    assert_eq!(
        report.completions[0].body["result"]["sections"][0]["depth"],
        0
    );
    assert!(report.lost.is_empty());
    assert!(report.never_handed_out.is_empty());
    assert!(
        report.protocol_errors.is_empty(),
        "{:?}",
        report.protocol_errors
    );
    server.stop().await;
}

/// The shared protocol cycle passes against the simulator and leaves the
/// expected report.
#[tokio::test(flavor = "multi_thread")]
async fn protocol_cycle_passes_against_simulator() {
    let options = ServiceServerOptions {
        ask_missing_files: true,
        ..options_with(vec![sample("invoice.exe", b"MZ cycle sample")])
    };
    let server = start(options).await;

    let sid = drive_protocol_cycle(&server.base_url()).await;
    let report = serde_json::to_value(server.report()).unwrap();

    assert_cycle_report(&report, &sid);
    server.stop().await;
}

/// `start` also works inside an actix System, not only a tokio runtime.
#[actix_rt::test]
async fn simulator_runs_inside_actix_system() {
    let server = start(options_with(vec![sample("a.exe", b"MZ actix")])).await;
    let service = ServiceClient::new(&server.base_url());

    let (status, _) = service.register(&manifest()).await;
    let task = service.take_task().await;
    let (post_status, _) = service
        .post(&json!({"task": task, "error": error_for(&task)}))
        .await;
    let report = server.report();

    assert_eq!(status, StatusCode::OK);
    assert_eq!(post_status, StatusCode::OK);
    assert_eq!(report.completions.len(), 1);
    assert_eq!(report.completions[0].kind, CompletionKind::Error);
    assert_eq!(report.completions[0].freshen, None);
    server.stop().await;
}

/// `base_url` has no trailing slash and names the bound port.
#[tokio::test(flavor = "multi_thread")]
async fn base_url_names_loopback_port() {
    let server = start(ServiceServerOptions::default()).await;

    assert_eq!(
        server.base_url(),
        format!("http://127.0.0.1:{}", server.port())
    );
    assert_ne!(server.port(), 0);
    server.stop().await;
}

// === Registration ===

/// The register response carries the manifest minus manifest-only keys,
/// with the administrator's config and timeout applied.
#[tokio::test(flavor = "multi_thread")]
async fn register_returns_overridden_service_config() {
    let mut options = ServiceServerOptions {
        timeout_override: Some(120),
        ..ServiceServerOptions::default()
    };
    options
        .config_overrides
        .insert("api_key".into(), json!("real-key-set-by-admin"));
    let server = start(options).await;
    let service = ServiceClient::new(&server.base_url());

    let (status, first) = service.register(&manifest()).await;
    let (_, second) = service.register(&manifest()).await;
    let report = server.report();

    assert_eq!(status, StatusCode::OK);
    let response = &first["api_response"];
    assert_eq!(response["keep_alive"], true);
    assert_eq!(
        response["new_heuristics"],
        json!(["INTEZERDYNAMIC.1", "INTEZERDYNAMIC.4"])
    );
    assert_eq!(second["api_response"]["new_heuristics"], json!([]));
    let service_config = &response["service_config"];
    assert_eq!(service_config["config"]["api_key"], "real-key-set-by-admin");
    assert_eq!(
        service_config["config"]["base_url"],
        "https://analyze.intezer.com/api/"
    );
    assert_eq!(service_config["timeout"], 120);
    assert_eq!(service_config["version"], SERVICE_VERSION);
    assert!(service_config.get("heuristics").is_none());
    assert!(service_config.get("file_required").is_none());
    assert!(service_config.get("tool_version").is_none());
    assert_eq!(report.registered, 2);
    assert_eq!(report.manifest, Some(manifest()));
    server.stop().await;
}

/// A manifest without `docker_config` or with a bad heuristic is rejected
/// with 400 naming the problem.
#[tokio::test(flavor = "multi_thread")]
async fn register_rejects_invalid_manifest() {
    let server = start(ServiceServerOptions::default()).await;
    let service = ServiceClient::new(&server.base_url());
    let mut without_docker = manifest();
    without_docker
        .as_object_mut()
        .unwrap()
        .remove("docker_config");
    let mut bad_heuristic = manifest();
    bad_heuristic["heuristics"][1]["score"] = json!("zero");

    let (docker_status, docker_envelope) = service.register(&without_docker).await;
    let (heuristic_status, heuristic_envelope) = service.register(&bad_heuristic).await;
    let report = server.report();

    assert_eq!(docker_status, StatusCode::BAD_REQUEST);
    assert!(message(&docker_envelope).contains("docker_config"));
    assert_eq!(heuristic_status, StatusCode::BAD_REQUEST);
    assert!(message(&heuristic_envelope).starts_with("IntezerDynamic has an invalid heuristic (4)"));
    assert_eq!(report.registered, 0);
    assert_eq!(report.protocol_errors.len(), 2);
    server.stop().await;
}

/// Asking for a task before registering gets 404, as for a service that
/// Assemblyline does not know.
#[tokio::test(flavor = "multi_thread")]
async fn task_before_register_is_rejected() {
    let server = start(options_with(vec![sample("a.exe", b"MZ early")])).await;
    let service = ServiceClient::new(&server.base_url());

    let (status, _) = service.get_task("0").await;
    let report = server.report();

    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(report.tasks_handed_out, 0);
    assert!(report.protocol_errors[0].contains("before the service registered"));
    server.stop().await;
}

// === Headers and paths ===

/// Each missing identity header gets 400 naming it and a protocol error.
/// An empty Service-Tool-Version is accepted.
#[tokio::test(flavor = "multi_thread")]
async fn missing_identity_header_is_rejected() {
    let server = start(ServiceServerOptions::default()).await;
    let service = ServiceClient::new(&server.base_url());
    let url = format!("{}/api/v1/safelist/", server.base_url());
    let identity = [
        ("Container-ID", "alsvc-intezer-test-1"),
        ("Service-Name", SERVICE_NAME),
        ("Service-Version", SERVICE_VERSION),
        ("Service-Tool-Version", "v2-0"),
    ];

    for (missing, _) in identity {
        let mut request = service.http.get(&url).header("X-APIKey", DEFAULT_API_KEY);
        for (name, value) in identity.iter().filter(|(name, _)| *name != missing) {
            request = request.header(*name, *value);
        }
        let (status, envelope) = ServiceClient::send(request).await;

        assert_eq!(status, StatusCode::BAD_REQUEST, "{missing}");
        assert!(
            message(&envelope).contains(missing),
            "{missing}: {envelope}"
        );
    }
    let mut without_tool_version = ServiceClient::new(&server.base_url());
    without_tool_version.tool_version = String::new();
    let (status, _) = ServiceClient::send(
        without_tool_version.request(reqwest::Method::GET, "/api/v1/safelist/"),
    )
    .await;
    let report = server.report();

    assert_eq!(status, StatusCode::OK);
    assert_eq!(report.protocol_errors.len(), identity.len());
    for (line, (header, _)) in report.protocol_errors.iter().zip(identity) {
        assert!(line.contains(header), "{line}");
    }
    server.stop().await;
}

/// A missing or wrong `X-APIKey` gets 401 "Unauthorized access denied".
#[tokio::test(flavor = "multi_thread")]
async fn wrong_or_missing_api_key_is_unauthorized() {
    let server = start(ServiceServerOptions::default()).await;
    let mut service = ServiceClient::new(&server.base_url());
    service.api_key = "wrong".to_string();

    let (wrong_status, wrong_envelope) = service.get_task("0").await;
    let (missing_status, missing_envelope) = ServiceClient::send(
        service
            .http
            .get(format!("{}/api/v1/task/", server.base_url()))
            .header("Container-ID", "c"),
    )
    .await;
    let report = server.report();

    assert_eq!(wrong_status, StatusCode::UNAUTHORIZED);
    assert_eq!(message(&wrong_envelope), "Unauthorized access denied");
    assert_eq!(wrong_envelope["api_status_code"], 401);
    assert_eq!(missing_status, StatusCode::UNAUTHORIZED);
    assert_eq!(message(&missing_envelope), "Unauthorized access denied");
    assert_eq!(report.protocol_errors.len(), 2);
    assert!(report.protocol_errors[0].contains("wrong API key"));
    assert!(report.protocol_errors[1].contains("missing header X-APIKey"));
    server.stop().await;
}

/// A `Service-Name` other than the configured service is rejected.
#[tokio::test(flavor = "multi_thread")]
async fn other_service_name_is_rejected() {
    let server = start(ServiceServerOptions::default()).await;
    let mut service = ServiceClient::new(&server.base_url());
    service.service_name = "Intezer".to_string();

    let (status, envelope) =
        ServiceClient::send(service.request(reqwest::Method::GET, "/api/v1/safelist/signatures/"))
            .await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message(&envelope).contains("Service-Name"));
    server.stop().await;
}

/// An API path without its trailing slash is rejected and recorded.
#[tokio::test(flavor = "multi_thread")]
async fn path_without_trailing_slash_is_rejected() {
    let server = start(ServiceServerOptions::default()).await;
    let service = ServiceClient::new(&server.base_url());

    let (status, envelope) =
        ServiceClient::send(service.request(reqwest::Method::GET, "/api/v1/task")).await;
    let report = server.report();

    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(message(&envelope).contains("/api/v1/task/"));
    assert_eq!(report.protocol_errors.len(), 1);
    server.stop().await;
}

// === Long poll ===

/// With no task queued the poll waits for the `Timeout` header and then
/// returns `{"task": false}`.
#[tokio::test(flavor = "multi_thread")]
async fn long_poll_returns_no_task_after_timeout() {
    let server = start(ServiceServerOptions::default()).await;
    let service = ServiceClient::new(&server.base_url());
    service.register(&manifest()).await;

    let started = Instant::now();
    let (status, envelope) = service.get_task("0.2").await;
    let waited = started.elapsed();

    assert_eq!(status, StatusCode::OK);
    assert_eq!(envelope["api_response"], json!({"task": false}));
    assert!(waited >= Duration::from_millis(200), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    server.stop().await;
}

/// `max_long_poll` caps a long `Timeout` header.
#[tokio::test(flavor = "multi_thread")]
async fn long_poll_wait_is_capped() {
    let options = ServiceServerOptions {
        max_long_poll: Duration::from_millis(100),
        ..ServiceServerOptions::default()
    };
    let server = start(options).await;
    let service = ServiceClient::new(&server.base_url());
    service.register(&manifest()).await;

    let started = Instant::now();
    let (_, envelope) = service.get_task("30").await;

    assert_eq!(envelope["api_response"], json!({"task": false}));
    assert!(started.elapsed() < Duration::from_secs(5));
    server.stop().await;
}

/// A task queued while a poll waits is handed out to that poll at once.
#[tokio::test(flavor = "multi_thread")]
async fn long_poll_returns_task_added_while_waiting() {
    let server = start(ServiceServerOptions::default()).await;
    let service = ServiceClient::new(&server.base_url());
    service.register(&manifest()).await;

    let started = Instant::now();
    let poll = tokio::spawn(async move { service.get_task("15").await });
    server.add_task(sample("late.exe", b"MZ late"), None);
    let (status, envelope) = poll.await.unwrap();

    assert_eq!(status, StatusCode::OK);
    assert_eq!(envelope["api_response"]["task"]["filename"], "late.exe");
    assert!(started.elapsed() < Duration::from_secs(10));
    server.stop().await;
}

/// An unparsable `Timeout` header is rejected.
#[tokio::test(flavor = "multi_thread")]
async fn unparsable_timeout_is_rejected() {
    let server = start(ServiceServerOptions::default()).await;
    let service = ServiceClient::new(&server.base_url());
    service.register(&manifest()).await;

    let (status, envelope) = service.get_task("soon").await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message(&envelope).contains("Timeout"));
    server.stop().await;
}

// === Task content ===

/// The task carries the file's hashes and the submission parameters:
/// manifest defaults, then options, then the task's own parameters.
#[tokio::test(flavor = "multi_thread")]
async fn task_carries_hashes_and_merged_parameters() {
    let mut options = options_with(vec![sample("abc.exe", b"abc")]);
    options
        .submission_params
        .insert("dynamic_submit".into(), json!(false));
    let server = start(options).await;
    let mut params = Map::new();
    params.insert("analysis_id".into(), json!("0b3c"));
    server.add_task(sample("second.exe", b"MZ second"), Some(params));
    let service = ServiceClient::new(&server.base_url());
    service.register(&manifest()).await;

    let first = service.take_task().await;
    let second = service.take_task().await;

    let fileinfo = &first["fileinfo"];
    assert_eq!(fileinfo["md5"], "900150983cd24fb0d6963f7d28e17f72");
    assert_eq!(fileinfo["sha1"], "a9993e364706816aba3e25717850c26c9cd0d89d");
    assert_eq!(fileinfo["sha256"], sha256_hex(b"abc"));
    assert_eq!(fileinfo["size"], 3);
    assert_eq!(fileinfo["type"], "executable/windows/pe32");
    assert_eq!(first["filename"], "abc.exe");
    assert_eq!(first["service_name"], SERVICE_NAME);
    assert_eq!(first["metadata"]["worker__"], "alsvc-intezer-test-1");
    assert_eq!(first["max_files"], 500);
    assert_eq!(first["ttl"], 15);
    assert_eq!(first["min_classification"], "TLP:C");
    assert_eq!(first["sid"].as_str().unwrap().len(), 22);
    assert_ne!(first["sid"], second["sid"]);
    assert_eq!(
        first["service_config"],
        json!({"dynamic_submit": false, "analysis_id": ""})
    );
    assert_eq!(
        second["service_config"],
        json!({"dynamic_submit": false, "analysis_id": "0b3c"})
    );
    server.stop().await;
}

// === Files ===

/// With `corrupt_first_download`, the first download has the wrong SHA-256
/// and the next one the right bytes.
#[tokio::test(flavor = "multi_thread")]
async fn corrupt_first_download_then_correct_bytes() {
    let options = ServiceServerOptions {
        corrupt_first_download: true,
        ..options_with(vec![sample("a.exe", b"MZ original bytes")])
    };
    let server = start(options).await;
    let service = ServiceClient::new(&server.base_url());
    service.register(&manifest()).await;
    let task = service.take_task().await;
    let sha256 = task["fileinfo"]["sha256"].as_str().unwrap();

    let (first_status, first) = service.download(sha256).await;
    let (second_status, second) = service.download(sha256).await;

    assert_eq!(first_status, StatusCode::OK);
    assert_ne!(sha256_hex(&first), sha256);
    assert_eq!(first.len(), second.len());
    assert_eq!(second_status, StatusCode::OK);
    assert_eq!(sha256_hex(&second), sha256);
    server.stop().await;
}

/// Downloading a file the server does not have gets an enveloped 404.
#[tokio::test(flavor = "multi_thread")]
async fn download_of_unknown_file_is_not_found() {
    let server = start(ServiceServerOptions::default()).await;
    let service = ServiceClient::new(&server.base_url());

    let (status, body) = service.download(&sha256_hex(b"unknown")).await;
    let envelope: Value = serde_json::from_slice(&body).unwrap();

    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(message(&envelope), "The file was not found in the system.");
    assert!(
        server.report().protocol_errors.is_empty(),
        "a miss is not a protocol error"
    );
    server.stop().await;
}

/// A raw octet-stream upload is stored and can be downloaded. An upload
/// whose bytes do not match its `sha256` header is rejected.
#[tokio::test(flavor = "multi_thread")]
async fn upload_checks_hash_and_stores_file() {
    let server = start(ServiceServerOptions::default()).await;
    let service = ServiceClient::new(&server.base_url());
    let content: &'static [u8] = b"supplementary report";
    let sha256 = sha256_hex(content);

    let (bad_status, bad_envelope) = service.upload_raw(&sha256_hex(b"other"), content).await;
    let (good_status, good_envelope) = service.upload_raw(&sha256, content).await;
    let (download_status, downloaded) = service.download(&sha256).await;
    let (no_ttl_status, no_ttl_envelope) = ServiceClient::send(
        service
            .request(reqwest::Method::PUT, "/api/v1/file/")
            .header("sha256", &sha256)
            .header("classification", "TLP:C")
            .body(content),
    )
    .await;
    let report = server.report();

    assert_eq!(bad_status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_envelope["api_response"], json!({"success": false}));
    assert!(message(&bad_envelope).starts_with("Uploaded file does not match expected file hash."));
    assert_eq!(good_status, StatusCode::OK);
    assert_eq!(good_envelope["api_response"], json!({"success": true}));
    assert_eq!(download_status, StatusCode::OK);
    assert_eq!(&downloaded[..], content);
    assert_eq!(no_ttl_status, StatusCode::BAD_REQUEST);
    assert!(message(&no_ttl_envelope).contains("ttl"));
    assert_eq!(report.uploads, vec![sha256]);
    assert_eq!(report.protocol_errors.len(), 2);
    server.stop().await;
}

// === Results and errors ===

/// The first result POST listing an unknown extracted file gets
/// `missing_files` back. After the upload, the POST with `freshen: false`
/// is accepted.
#[tokio::test(flavor = "multi_thread")]
async fn missing_files_loop_accepts_repost_after_upload() {
    let options = ServiceServerOptions {
        ask_missing_files: true,
        ..options_with(vec![sample("a.exe", b"MZ parent")])
    };
    let server = start(options).await;
    let service = ServiceClient::new(&server.base_url());
    service.register(&manifest()).await;
    let task = service.take_task().await;
    let result = result_for(&task, vec![extracted_entry("stage2.bin", EXTRACTED)]);

    let (_, asked) = service
        .post(&json!({"task": task, "result": result, "freshen": true}))
        .await;
    let report_after_ask = server.report();
    let (upload_status, _) = service.upload_multipart(EXTRACTED).await;
    let (_, accepted) = service
        .post(&json!({"task": task, "result": result, "freshen": false}))
        .await;
    let report = server.report();

    assert_eq!(
        asked["api_response"],
        json!({"success": false, "missing_files": [sha256_hex(EXTRACTED)]})
    );
    assert!(report_after_ask.completions.is_empty());
    assert_eq!(report_after_ask.lost.len(), 1);
    assert_eq!(upload_status, StatusCode::OK);
    assert_eq!(accepted["api_response"], json!({"success": true}));
    assert_eq!(report.completions.len(), 1);
    assert_eq!(report.completions[0].freshen, Some(false));
    assert_eq!(report.uploads, vec![sha256_hex(EXTRACTED)]);
    assert!(report.lost.is_empty());
    assert!(
        report.protocol_errors.is_empty(),
        "{:?}",
        report.protocol_errors
    );
    server.stop().await;
}

/// Without `ask_missing_files`, a result listing unknown files is accepted
/// on the first POST.
#[tokio::test(flavor = "multi_thread")]
async fn missing_files_not_asked_when_disabled() {
    let server = start(options_with(vec![sample("a.exe", b"MZ lenient")])).await;
    let service = ServiceClient::new(&server.base_url());
    service.register(&manifest()).await;
    let task = service.take_task().await;
    let result = result_for(&task, vec![extracted_entry("stage2.bin", EXTRACTED)]);

    let (_, envelope) = service
        .post(&json!({"task": task, "result": result, "freshen": true}))
        .await;

    assert_eq!(envelope["api_response"], json!({"success": true}));
    assert_eq!(server.report().completions.len(), 1);
    server.stop().await;
}

/// Each result defect gets 400 naming the field, and the task stays
/// incomplete.
#[tokio::test(flavor = "multi_thread")]
async fn invalid_result_is_rejected_naming_field() {
    let server = start(options_with(vec![sample("a.exe", b"MZ invalid")])).await;
    let service = ServiceClient::new(&server.base_url());
    service.register(&manifest()).await;
    let task = service.take_task().await;
    let valid = result_for(&task, vec![]);
    let cases: Vec<(&str, &str, Value)> = vec![
        (
            "empty title",
            "result.result.sections[0].title_text",
            json!(""),
        ),
        (
            "object body",
            "result.result.sections[1].body",
            json!({"text": "x"}),
        ),
        ("empty body", "result.result.sections[1].body", json!("")),
        (
            "unknown body format",
            "result.result.sections[0].body_format",
            json!("HTML"),
        ),
        (
            "empty tool version",
            "result.response.service_tool_version",
            json!(""),
        ),
        (
            "empty context",
            "result.response.service_context",
            json!(""),
        ),
        (
            "other service",
            "result.response.service_name",
            json!("Intezer"),
        ),
        ("other file", "result.sha256", json!(sha256_hex(b"other"))),
    ];
    let pointers = [
        "/result/sections/0/title_text",
        "/result/sections/1/body",
        "/result/sections/1/body",
        "/result/sections/0/body_format",
        "/response/service_tool_version",
        "/response/service_context",
        "/response/service_name",
        "/sha256",
    ];

    for ((case, field, value), pointer) in cases.iter().zip(pointers) {
        let mut result = valid.clone();
        *result.pointer_mut(pointer).unwrap() = value.clone();
        let (status, envelope) = service
            .post(&json!({"task": task, "result": result, "freshen": true}))
            .await;

        assert_eq!(status, StatusCode::BAD_REQUEST, "{case}");
        assert!(message(&envelope).contains(field), "{case}: {envelope}");
    }
    let mut without_tags = valid.clone();
    without_tags["result"]["sections"][0]
        .as_object_mut()
        .unwrap()
        .remove("tags");
    let (tags_status, tags_envelope) = service
        .post(&json!({"task": task, "result": without_tags, "freshen": true}))
        .await;
    let (freshen_status, freshen_envelope) =
        service.post(&json!({"task": task, "result": valid})).await;
    let (empty_status, empty_envelope) = service.post(&json!({"task": task})).await;
    let report = server.report();

    assert_eq!(tags_status, StatusCode::BAD_REQUEST);
    assert!(message(&tags_envelope).contains("sections[0].tags"));
    assert_eq!(freshen_status, StatusCode::BAD_REQUEST);
    assert!(message(&freshen_envelope).contains("freshen"));
    assert_eq!(empty_status, StatusCode::BAD_REQUEST);
    assert_eq!(
        message(&empty_envelope),
        "No result or error provided by service."
    );
    assert!(report.completions.is_empty());
    assert_eq!(report.lost, vec![task["sid"].as_str().unwrap().to_string()]);
    assert_eq!(report.protocol_errors.len(), cases.len() + 3);
    server.stop().await;
}

/// Each error defect gets 400 naming the field.
#[tokio::test(flavor = "multi_thread")]
async fn invalid_error_is_rejected_naming_field() {
    let server = start(options_with(vec![sample("a.exe", b"MZ bad error")])).await;
    let service = ServiceClient::new(&server.base_url());
    service.register(&manifest()).await;
    let task = service.take_task().await;
    let cases = [
        ("/response/message", json!(""), "error.response.message"),
        ("/response/status", json!("FAILED"), "error.response.status"),
        ("/type", json!("CRASH"), "error.type"),
    ];

    for (pointer, value, field) in cases {
        let mut error = error_for(&task);
        *error.pointer_mut(pointer).unwrap() = value;
        let (status, envelope) = service.post(&json!({"task": task, "error": error})).await;

        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}");
        assert!(message(&envelope).contains(field), "{field}: {envelope}");
    }
    assert!(server.report().completions.is_empty());
    server.stop().await;
}

/// A result for a sid the server never handed out is rejected.
#[tokio::test(flavor = "multi_thread")]
async fn result_for_unknown_sid_is_rejected() {
    let server = start(options_with(vec![sample("a.exe", b"MZ sid")])).await;
    let service = ServiceClient::new(&server.base_url());
    service.register(&manifest()).await;
    let mut task = service.take_task().await;
    let result = result_for(&task, vec![]);
    task["sid"] = json!("NotASidThisServerIssued");

    let (status, envelope) = service
        .post(&json!({"task": task, "result": result, "freshen": true}))
        .await;

    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message(&envelope).contains("task.sid"));
    assert!(server.report().completions.is_empty());
    server.stop().await;
}

/// A second completion of the same task is accepted, like the real server
/// does, and reported in `completed_twice`.
#[tokio::test(flavor = "multi_thread")]
async fn second_completion_is_reported_twice() {
    let server = start(options_with(vec![sample("a.exe", b"MZ twice")])).await;
    let service = ServiceClient::new(&server.base_url());
    service.register(&manifest()).await;
    let task = service.take_task().await;

    let (_, first) = service
        .post(&json!({"task": task, "result": result_for(&task, vec![]), "freshen": true}))
        .await;
    let (_, second) = service
        .post(&json!({"task": task, "error": error_for(&task)}))
        .await;
    let report = server.report();

    assert_eq!(first["api_response"], json!({"success": true}));
    assert_eq!(second["api_response"], json!({"success": true}));
    assert_eq!(report.completions.len(), 2);
    assert_eq!(
        report.completed_twice,
        vec![task["sid"].as_str().unwrap().to_string()]
    );
    server.stop().await;
}

/// A task handed out and never completed is reported lost, and one never
/// polled for is reported as never handed out.
#[tokio::test(flavor = "multi_thread")]
async fn unfinished_task_is_reported_lost() {
    let server = start(options_with(vec![
        sample("first.exe", b"MZ first"),
        sample("second.exe", b"MZ second"),
    ]))
    .await;
    let service = ServiceClient::new(&server.base_url());
    service.register(&manifest()).await;

    let task = service.take_task().await;
    let report = server
        .wait_until_all_completed(Duration::from_millis(100))
        .await;

    assert_eq!(report.tasks_queued, 2);
    assert_eq!(report.tasks_handed_out, 1);
    assert_eq!(report.lost, vec![task["sid"].as_str().unwrap().to_string()]);
    assert_eq!(report.never_handed_out.len(), 1);
    assert!(report.completions.is_empty());
    server.stop().await;
}

/// `wait_until_all_completed` resolves once the last task is completed.
#[tokio::test(flavor = "multi_thread")]
async fn wait_resolves_after_last_completion() {
    let server = start(options_with(vec![
        sample("first.exe", b"MZ one"),
        sample("second.exe", b"MZ two"),
    ]))
    .await;
    let base_url = server.base_url();
    let worker = tokio::spawn(async move {
        let service = ServiceClient::new(&base_url);
        service.register(&manifest()).await;
        for _ in 0..2 {
            let (_, envelope) = service.get_task("5").await;
            let task = envelope["api_response"]["task"].clone();
            service
                .post(&json!({"task": task, "result": result_for(&task, vec![]), "freshen": true}))
                .await;
        }
    });

    let started = Instant::now();
    let report = server.wait_until_all_completed(TEST_DEADLINE).await;
    worker.await.unwrap();

    assert!(started.elapsed() < TEST_DEADLINE);
    assert_eq!(report.completions.len(), 2);
    assert!(report.lost.is_empty());
    assert!(report.never_handed_out.is_empty());
    server.stop().await;
}

// === Safelist and health ===

/// The safelist endpoints return the configured lists, filtered by
/// `tag_types`. `/healthz/live` needs no identity headers.
#[tokio::test(flavor = "multi_thread")]
async fn safelist_and_health_endpoints_answer() {
    let options = ServiceServerOptions {
        safelist: json!({
            "match": {"network.dynamic.domain": ["windowsupdate.com"], "network.dynamic.ip": ["8.8.8.8"]},
            "regex": {"network.dynamic.domain": [".*\\.microsoft\\.com$"]},
        }),
        ..ServiceServerOptions::default()
    };
    let server = start(options).await;
    let service = ServiceClient::new(&server.base_url());

    let (_, everything) =
        ServiceClient::send(service.request(reqwest::Method::GET, "/api/v1/safelist/")).await;
    let (_, domains) = ServiceClient::send(service.request(
        reqwest::Method::GET,
        "/api/v1/safelist/?tag_types=network.dynamic.domain",
    ))
    .await;
    let (_, signatures) =
        ServiceClient::send(service.request(reqwest::Method::GET, "/api/v1/safelist/signatures/"))
            .await;
    let (item_status, _) = ServiceClient::send(service.request(
        reqwest::Method::GET,
        &format!("/api/v1/safelist/{}/", sha256_hex(b"x")),
    ))
    .await;
    let health = service
        .http
        .get(format!("{}/healthz/live", server.base_url()))
        .send()
        .await
        .unwrap();

    assert_eq!(
        everything["api_response"]["match"]["network.dynamic.ip"],
        json!(["8.8.8.8"])
    );
    assert_eq!(
        domains["api_response"],
        json!({"match": {"network.dynamic.domain": ["windowsupdate.com"]},
               "regex": {"network.dynamic.domain": [".*\\.microsoft\\.com$"]}})
    );
    assert_eq!(signatures["api_response"], json!([]));
    assert_eq!(item_status, StatusCode::NOT_FOUND);
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(health.text().await.unwrap(), "OK");
    assert!(server.report().protocol_errors.is_empty());
    server.stop().await;
}

// === Python stand-in ===

/// Waits for the stand-in to write its port file, polling with a bound.
async fn read_port_file(path: &Path, child: &mut tokio::process::Child) -> u16 {
    let deadline = Instant::now() + TEST_DEADLINE;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Ok(port) = text.trim().parse() {
                return port;
            }
        }
        if let Some(status) = child.try_wait().expect("stand-in process status") {
            panic!("stand-in exited before listening: {status}");
        }
        assert!(Instant::now() < deadline, "stand-in wrote no port file");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The Python stand-in passes the same protocol cycle as the simulator and
/// writes the same report, also on SIGTERM.
#[tokio::test(flavor = "multi_thread")]
async fn python_standin_passes_protocol_cycle() {
    let workdir = tempfile::tempdir().unwrap();
    let sample_path = workdir.path().join("invoice.exe");
    std::fs::write(&sample_path, b"MZ stand-in sample").unwrap();
    let port_file = workdir.path().join("port");
    let report_file = workdir.path().join("report.json");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/standin/al_service_server.py");

    let mut child = tokio::process::Command::new("python3")
        .arg(&script)
        .args(["--port", "0", "--port-file"])
        .arg(&port_file)
        .arg("--files")
        .arg(&sample_path)
        .args(["--config", "api_key=secret", "--report"])
        .arg(&report_file)
        .args(["--api-key", DEFAULT_API_KEY, "--ask-missing-files"])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs the stand-in");
    let port = read_port_file(&port_file, &mut child).await;
    let base_url = format!("http://127.0.0.1:{port}");

    let sid = drive_protocol_cycle(&base_url).await;
    let report_after_cycle: Value =
        serde_json::from_slice(&std::fs::read(&report_file).unwrap()).unwrap();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().unwrap().to_string()])
        .status()
        .unwrap();
    let exit = tokio::time::timeout(TEST_DEADLINE, child.wait())
        .await
        .expect("stand-in exits after SIGTERM")
        .unwrap();
    let final_report: Value =
        serde_json::from_slice(&std::fs::read(&report_file).unwrap()).unwrap();

    assert_eq!(
        report_after_cycle["completions"].as_array().unwrap().len(),
        2
    );
    assert!(kill.success());
    assert!(exit.success(), "{exit}");
    assert_cycle_report(&final_report, &sid);
    assert_eq!(final_report["manifest"], manifest());
}

/// The stand-in's register response applies its `--config` values.
#[tokio::test(flavor = "multi_thread")]
async fn python_standin_applies_config_overrides() {
    let workdir = tempfile::tempdir().unwrap();
    let port_file = workdir.path().join("port");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/standin/al_service_server.py");
    let mut child = tokio::process::Command::new("python3")
        .arg(&script)
        .args(["--port-file"])
        .arg(&port_file)
        .args(["--config", "api_key=secret", "polling_period_in_seconds=1"])
        .args(["--timeout-override", "90"])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs the stand-in");
    let port = read_port_file(&port_file, &mut child).await;
    let service = ServiceClient::new(&format!("http://127.0.0.1:{port}"));

    let (status, envelope) = service.register(&manifest()).await;
    child.kill().await.unwrap();

    assert_eq!(status, StatusCode::OK);
    let service_config = &envelope["api_response"]["service_config"];
    assert_eq!(service_config["config"]["api_key"], "secret");
    assert_eq!(service_config["config"]["polling_period_in_seconds"], 1);
    assert_eq!(
        service_config["config"]["base_url"],
        "https://analyze.intezer.com/api/"
    );
    assert_eq!(service_config["timeout"], 90);
    assert!(service_config.get("heuristics").is_none());
}
