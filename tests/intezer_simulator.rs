//! The Intezer API simulator over real HTTP on 127.0.0.1: scenario replay,
//! the default scenario, recorded calls and scenario file errors.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use intezer_dynamic::simulator::faults::FaultPlan;
use intezer_dynamic::simulator::intezer::{
    DefaultOptions, DefaultVerdict, IntezerBehaviour, IntezerSimHandle, IntezerSimulator,
    RecordedCall,
};
use intezer_dynamic::simulator::scenario::{Scenario, ScenarioError};
use reqwest::multipart::{Form, Part};
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const API_KEY: &str = "00000000-0000-4000-8000-000000000000";

// === helpers ===

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scenarios")
}

fn fixture(name: &str) -> Scenario {
    let path = fixtures_dir().join(format!("{name}.json"));
    Scenario::load(&path).unwrap_or_else(|error| panic!("{error}"))
}

async fn start_scenario(scenario: Scenario) -> IntezerSimHandle {
    IntezerSimulator::start(IntezerBehaviour::Scenario(scenario), 0)
        .await
        .expect("simulator starts")
}

async fn start_default(options: DefaultOptions) -> IntezerSimHandle {
    IntezerSimulator::start(IntezerBehaviour::Default(options), 0)
        .await
        .expect("simulator starts")
}

/// A client of one simulator that sends requests the way the Intezer SDK
/// does: JSON bodies on every request, `{}` when there are no parameters.
struct ApiClient {
    http: Client,
    root: String,
    token: Option<String>,
}

impl ApiClient {
    fn new(handle: &IntezerSimHandle) -> ApiClient {
        ApiClient {
            http: Client::new(),
            root: format!("{}v2-0", handle.base_url()),
            token: None,
        }
    }

    async fn authenticate(&mut self) -> Value {
        let response = self
            .http
            .post(format!("{}/get-access-token", self.root))
            .json(&json!({ "api_key": API_KEY }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        self.token = Some(
            body["result"]
                .as_str()
                .expect("token is a string")
                .to_string(),
        );
        body
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self.http.request(method, format!("{}{path}", self.root));
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    async fn get(&self, path: &str) -> Response {
        self.request(reqwest::Method::GET, path)
            .json(&json!({}))
            .send()
            .await
            .unwrap()
    }

    async fn post(&self, path: &str) -> Response {
        self.request(reqwest::Method::POST, path)
            .json(&json!({}))
            .send()
            .await
            .unwrap()
    }

    async fn upload(&self, file_name: &str, bytes: Vec<u8>) -> Response {
        let form = Form::new()
            .text("verify_file_support", "True")
            .text("disable_dynamic_execution", "False")
            .part("file", Part::bytes(bytes).file_name(file_name.to_string()));
        self.request(reqwest::Method::POST, "/analyze")
            .multipart(form)
            .send()
            .await
            .unwrap()
    }
}

async fn status_and_json(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Returns file contents whose SHA-256 falls in the expected case of the
/// default scenario. It counts up from a fixed seed, so every run uses the
/// same files.
fn contents_with_verdict(expected: DefaultVerdict) -> Vec<u8> {
    (0u32..)
        .map(|counter| format!("simulator test file {counter}").into_bytes())
        .find(|bytes| DefaultVerdict::for_sha256(&sha256_hex(bytes)) == Some(expected))
        .expect("some counter gives every case")
}

fn routes_of(calls: &[RecordedCall]) -> Vec<Option<&str>> {
    calls.iter().map(|call| call.route.as_deref()).collect()
}

// === scenario replay ===

/// Scenario 01 lists exact routes before `{name}` catch-alls: the exact
/// download serves the real DLL bytes with its header, and other hashes
/// fall through to the catch-all 404.
#[tokio::test(flavor = "multi_thread")]
async fn scenario_01_exact_routes_beat_templates() {
    let handle = start_scenario(fixture("01_known_malicious_family")).await;
    let mut client = ApiClient::new(&handle);
    client.authenticate().await;

    let (status, body) = status_and_json(
        client
            .get("/files/2db11b8dd647844e7d70448e6d553fdb7f9ba32715f3306d108f3027df5ac0bc")
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["result"]["family_name"], "ExampleRAT");

    let download = client
        .get("/files/46b364f13d089636b60c33d3f6a4b1d2cd32e6af8d9bc29339af0b7dadd21703/download")
        .await;
    assert_eq!(download.status(), StatusCode::OK);
    assert_eq!(
        download.headers()["content-disposition"],
        "attachment; filename=46b364f13d089636b60c33d3f6a4b1d2cd32e6af8d9bc29339af0b7dadd21703.sample"
    );
    assert_eq!(
        download.headers()["content-type"],
        "application/octet-stream"
    );
    let served = download.bytes().await.unwrap();
    let expected = std::fs::read(fixtures_dir().join("samples/pe_nsis_system.dll")).unwrap();
    assert_eq!(served.as_ref(), expected.as_slice());

    let (status, body) = status_and_json(
        client
            .get("/files/b30ec0a0d2f2d8fca0f6eb33b7336bfbb121fa0360ff013f3edca5a4c76fee02/download")
            .await,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(body, json!({ "error": "File not found" }));

    let root_reuse = client
        .get("/analyses/5d1a3c0e-7b42-4f7e-9c1a-000000000001/sub-analyses/root/code-reuse")
        .await;
    assert_eq!(root_reuse.status(), StatusCode::OK);
    let other_reuse = client
        .get("/analyses/5d1a3c0e-7b42-4f7e-9c1a-000000000001/sub-analyses/a7e2b9d4-1c3f-4e8a-b6d5-000000000104/code-reuse")
        .await;
    assert_eq!(other_reuse.status(), StatusCode::CONFLICT);

    let calls = handle.calls();
    assert_eq!(
        routes_of(&calls),
        [
            Some("POST /get-access-token"),
            Some("GET /files/2db11b8dd647844e7d70448e6d553fdb7f9ba32715f3306d108f3027df5ac0bc"),
            Some("GET /files/46b364f13d089636b60c33d3f6a4b1d2cd32e6af8d9bc29339af0b7dadd21703/download"),
            Some("GET /files/{sha256}/download"),
            Some("GET /analyses/5d1a3c0e-7b42-4f7e-9c1a-000000000001/sub-analyses/root/code-reuse"),
            Some("GET /analyses/{analysis_id}/sub-analyses/{sub_analysis_id}/code-reuse"),
        ]
    );
    assert_eq!(calls[3].endpoint, "files.download");
    handle.stop().await;
}

/// Scenario 03: the lookup returns 404 once, then 200 for ever. The analysis
/// returns 202 queued once, 202 in_progress twice (`times: 2`), then 200,
/// which repeats.
#[tokio::test(flavor = "multi_thread")]
async fn scenario_03_list_repeats_last_entry() {
    let handle = start_scenario(fixture("03_miss_submit_poll_malicious")).await;
    let mut client = ApiClient::new(&handle);
    client.authenticate().await;
    let lookup = "/files/833aa73cf8f645330907d5923fcbf380e0895ab2551d522b41b0308747a51e27";
    let status_path = "/analyses/5d1a3c0e-7b42-4f7e-9c1a-000000000003";

    let mut lookups = Vec::new();
    for _ in 0..3 {
        lookups.push(client.get(lookup).await.status().as_u16());
    }
    assert_eq!(lookups, [404, 200, 200]);

    let mut polls = Vec::new();
    for _ in 0..6 {
        polls.push(status_and_json(client.get(status_path).await).await);
    }
    let statuses: Vec<u16> = polls.iter().map(|(status, _)| *status).collect();
    assert_eq!(statuses, [202, 202, 202, 200, 200, 200]);
    let states: Vec<&str> = polls
        .iter()
        .map(|(_, body)| body["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        states,
        [
            "queued",
            "in_progress",
            "in_progress",
            "succeeded",
            "succeeded",
            "succeeded"
        ]
    );
    assert_eq!(polls[3].1["result"]["family_name"], "ExampleBotnet");
    handle.stop().await;
}

/// Scenario 21: the exact strings route wins over the catch-all, and the
/// operation's result URL returns 202 twice, then 200 with the strings.
#[tokio::test(flavor = "multi_thread")]
async fn scenario_21_strings_finish_after_two_polls() {
    let handle = start_scenario(fixture("21_strings_in_progress")).await;
    let mut client = ApiClient::new(&handle);
    client.authenticate().await;

    let (status, body) = status_and_json(
        client
            .post("/analyses/5d1a3c0e-7b42-4f7e-9c1a-000000000021/sub-analyses/root/strings")
            .await,
    )
    .await;
    assert_eq!(status, 201);
    let result_url = body["result_url"].as_str().unwrap().to_string();
    assert_eq!(
        result_url,
        "/analyses/5d1a3c0e-7b42-4f7e-9c1a-000000000021/sub-analyses/root/strings/6c0ffee0-0000-4000-8000-000000000021"
    );

    let other_sub = client
        .post("/analyses/5d1a3c0e-7b42-4f7e-9c1a-000000000021/sub-analyses/some-other-sub/strings")
        .await;
    assert_eq!(other_sub.status(), StatusCode::NOT_FOUND);

    let mut reads = Vec::new();
    for _ in 0..4 {
        reads.push(status_and_json(client.get(&result_url).await).await);
    }
    let statuses: Vec<u16> = reads.iter().map(|(status, _)| *status).collect();
    assert_eq!(statuses, [202, 202, 200, 200]);
    assert_eq!(
        reads[2].1["result"]["strings"][0]["string_value"],
        "ExampleRAT_mutex_4411"
    );

    let calls = handle.calls();
    assert_eq!(calls[1].endpoint, "sub-analysis.strings.request");
    assert_eq!(
        calls[2].route.as_deref(),
        Some("POST /analyses/{analysis_id}/sub-analyses/{sub_analysis_id}/strings")
    );
    assert_eq!(calls[3].endpoint, "sub-analysis.strings.result");
    handle.stop().await;
}

/// Scenario 28: the 429 carries the scenario's rate-limit headers and body.
#[tokio::test(flavor = "multi_thread")]
async fn scenario_28_rate_limit_has_headers() {
    let handle = start_scenario(fixture("28_lookup_429_rate_limited")).await;
    let mut client = ApiClient::new(&handle);
    client.authenticate().await;

    let response = client
        .get("/files/c79bf44242829108e323378531f4ac839513ca1fba45efd6583643526e1e9fd2")
        .await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["x-ratelimit-limit"], "100");
    assert_eq!(response.headers()["x-ratelimit-remaining"], "0");
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({ "error": "Rate limit exceeded" }));
    handle.stop().await;
}

/// Without a token route, `POST /get-access-token` gets a fresh token that
/// expires in an hour, and only that token counts as authorized.
#[tokio::test(flavor = "multi_thread")]
async fn unrouted_token_request_gets_fresh_token() {
    let handle = start_scenario(fixture("28_lookup_429_rate_limited")).await;
    let mut client = ApiClient::new(&handle);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();

    let token_body = client.authenticate().await;
    let expire_at = token_body["expire_at"]
        .as_f64()
        .expect("expire_at is a number");
    assert!(
        (expire_at - now - 3600.0).abs() < 60.0,
        "expire_at {expire_at}, now {now}"
    );
    client.get("/files/anything").await;
    client.token = Some("not-a-token-we-issued".to_string());
    client.get("/files/anything").await;
    client.token = None;
    client.get("/files/anything").await;

    let calls = handle.calls();
    let authorized: Vec<bool> = calls.iter().map(|call| call.authorized).collect();
    assert_eq!(authorized, [false, true, false, false]);
    assert_eq!(calls[0].route.as_deref(), Some("POST /get-access-token"));
    assert_eq!(calls[0].body_json, Some(json!({ "api_key": API_KEY })));
    assert_eq!(calls[0].path, "/api/v2-0/get-access-token");
    handle.stop().await;
}

/// A request no route matches gets 404 `no route in scenario` and is
/// recorded with no route, inside the API root or outside it.
#[tokio::test(flavor = "multi_thread")]
async fn unmatched_request_gets_404_and_no_route() {
    let handle = start_scenario(fixture("28_lookup_429_rate_limited")).await;
    let client = ApiClient::new(&handle);

    let (status, body) = status_and_json(client.get("/analyses/unknown-analysis").await).await;
    assert_eq!(status, 404);
    assert_eq!(body, json!({ "error": "no route in scenario" }));

    let outside = Client::new()
        .get(format!("http://127.0.0.1:{}/api/v1/files/x", handle.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(outside.status(), StatusCode::NOT_FOUND);

    let calls = handle.calls();
    assert_eq!(routes_of(&calls), [None, None]);
    assert_eq!(calls[0].endpoint, "analyses.status");
    assert_eq!(calls[1].endpoint, "unknown");
    assert_eq!(calls[1].path, "/api/v1/files/x");
    handle.stop().await;
}

/// Replays every call the Python service made against each fixture
/// scenario and expects the same status, route and endpoint for each. This
/// checks the first-match-in-file-order rule on real call sequences.
#[tokio::test(flavor = "multi_thread")]
async fn python_calls_replay_with_same_responses() {
    let calls_dir = fixtures_dir().join("python-service-calls");
    let samples_by_name: HashMap<String, Vec<u8>> =
        std::fs::read_dir(fixtures_dir().join("samples"))
            .unwrap()
            .map(|entry| {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read(&path).unwrap())
            })
            .collect();

    let mut replayed = 0;
    for entry in std::fs::read_dir(&calls_dir).unwrap() {
        let path = entry.unwrap().path();
        let scenario_name = path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches(".calls.jsonl")
            .to_string();
        let handle = start_scenario(fixture(&scenario_name)).await;
        let mut client = ApiClient::new(&handle);
        let mut expected = Vec::new();

        for line in std::fs::read_to_string(&path).unwrap().lines() {
            let call: Value = serde_json::from_str(line).unwrap();
            let api_path = call["path"]
                .as_str()
                .unwrap()
                .strip_prefix("/api/v2-0")
                .unwrap();
            let method: reqwest::Method = call["method"].as_str().unwrap().parse().unwrap();
            let request = client.request(method, api_path);
            let response = match call["body"].get("files") {
                Some(files) => {
                    let file_name = files["file"]["filename"].as_str().unwrap();
                    let mut form = Form::new();
                    for (name, value) in call["body"]["form"].as_object().unwrap() {
                        form = form.text(name.clone(), value.as_str().unwrap().to_string());
                    }
                    let bytes = samples_by_name[file_name].clone();
                    form = form.part("file", Part::bytes(bytes).file_name(file_name.to_string()));
                    request.multipart(form).send().await.unwrap()
                }
                None => request.json(&call["body"]["json"]).send().await.unwrap(),
            };
            if call["endpoint"] == "get-access-token" {
                let body: Value = response.json().await.unwrap();
                client.token = body["result"].as_str().map(str::to_string);
            }
            expected.push(call);
        }

        let recorded = handle.calls();
        assert_eq!(recorded.len(), expected.len(), "{scenario_name}");
        for (recorded_call, expected_call) in recorded.iter().zip(&expected) {
            let context = format!("{scenario_name} call {}", expected_call["seq"]);
            assert_eq!(
                u64::from(recorded_call.status),
                expected_call["status"].as_u64().unwrap(),
                "{context}"
            );
            assert_eq!(
                recorded_call.route.as_deref(),
                expected_call["route"].as_str(),
                "{context}"
            );
            assert_eq!(
                recorded_call.endpoint,
                expected_call["endpoint"].as_str().unwrap(),
                "{context}"
            );
            assert_eq!(
                recorded_call.authorized,
                expected_call["authorized"].as_bool().unwrap(),
                "{context}"
            );
            assert_eq!(
                recorded_call.path,
                expected_call["path"].as_str().unwrap(),
                "{context}"
            );
        }
        replayed += expected.len();
        handle.stop().await;
    }
    assert!(replayed > 100, "only {replayed} calls replayed");
}

/// An upload's text fields and a summary of its file part are recorded in
/// the order they were sent.
#[tokio::test(flavor = "multi_thread")]
async fn scenario_upload_records_multipart_fields() {
    let handle = start_scenario(fixture("03_miss_submit_poll_malicious")).await;
    let mut client = ApiClient::new(&handle);
    client.authenticate().await;
    let bytes = std::fs::read(fixtures_dir().join("samples/elf_libxau.so")).unwrap();

    let (status, body) = status_and_json(client.upload("elf_libxau.so", bytes).await).await;
    assert_eq!(status, 201);
    assert_eq!(
        body["result_url"],
        "/analyses/5d1a3c0e-7b42-4f7e-9c1a-000000000003"
    );

    let calls = handle.calls();
    assert_eq!(calls[1].endpoint, "analyze");
    assert_eq!(calls[1].body_json, None);
    assert_eq!(
        calls[1].form_fields,
        [
            ("verify_file_support".to_string(), "True".to_string()),
            ("disable_dynamic_execution".to_string(), "False".to_string()),
            (
                "file".to_string(),
                "elf_libxau.so (14496 bytes, sha256 833aa73cf8f645330907d5923fcbf380e0895ab2551d522b41b0308747a51e27)"
                    .to_string()
            ),
        ]
    );
    handle.stop().await;
}

/// Serves `text` bodies, custom content types, empty bodies and `delay_ms`.
#[tokio::test(flavor = "multi_thread")]
async fn inline_scenario_text_empty_and_delayed() {
    let scenario = Scenario::from_json(
        json!({
            "name": "inline",
            "routes": {
                "GET /is-available": { "text": "maintenance", "status": 503, "headers": { "Content-Type": "text/html" } },
                "GET /current-quota-usage": { "status": 204 },
                "GET /files/{sha256}": { "status": 404, "body": { "error": "Analysis was not found" }, "delay_ms": 300 }
            }
        }),
        &fixtures_dir(),
    )
    .unwrap();
    let handle = start_scenario(scenario).await;
    let client = ApiClient::new(&handle);

    let text = client.get("/is-available").await;
    assert_eq!(text.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(text.headers()["content-type"], "text/html");
    assert_eq!(text.text().await.unwrap(), "maintenance");

    let empty = client.get("/current-quota-usage").await;
    assert_eq!(empty.status(), StatusCode::NO_CONTENT);
    assert!(empty.bytes().await.unwrap().is_empty());

    let started = Instant::now();
    let delayed = client.get("/files/abc").await;
    assert_eq!(delayed.status(), StatusCode::NOT_FOUND);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    handle.stop().await;
}

/// With `require_authorization`, requests without an issued token get 401,
/// while the token and health endpoints stay open.
#[tokio::test(flavor = "multi_thread")]
async fn required_authorization_rejects_missing_token() {
    let scenario = Scenario::from_json(
        json!({
            "require_authorization": true,
            "routes": {
                "GET /is-available": { "body": { "is_available": true } },
                "GET /files/{sha256}": { "status": 404, "body": { "error": "Analysis was not found" } }
            }
        }),
        &fixtures_dir(),
    )
    .unwrap();
    let handle = start_scenario(scenario).await;
    let mut client = ApiClient::new(&handle);

    assert_eq!(
        client.get("/files/abc").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(client.get("/is-available").await.status(), StatusCode::OK);
    client.authenticate().await;
    assert_eq!(
        client.get("/files/abc").await.status(),
        StatusCode::NOT_FOUND
    );

    let calls = handle.calls();
    assert_eq!(calls[0].route, None);
    assert_eq!(calls[3].route.as_deref(), Some("GET /files/{sha256}"));
    handle.stop().await;
}

/// Every scenario under the fixtures loads.
#[test]
fn every_fixture_scenario_loads() {
    let mut loaded = 0;
    for entry in std::fs::read_dir(fixtures_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path
            .extension()
            .is_some_and(|extension| extension == "json")
        {
            let scenario = Scenario::load(&path).unwrap_or_else(|error| panic!("{error}"));
            assert_eq!(
                Some(scenario.name.as_str()),
                path.file_stem().and_then(|stem| stem.to_str())
            );
            let sample = scenario
                .sample_path()
                .expect("every fixture names a sample");
            assert!(sample.is_file(), "{} is missing", sample.display());
            loaded += 1;
        }
    }
    assert!(loaded >= 18, "only {loaded} scenarios loaded");
}

/// Every scenario of the team's shared set loads as it is. The set sits in
/// a folder beside the repository, so a clone without it skips the test.
#[test]
fn every_shared_scenario_loads_or_skips() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/scenarios");
    if !shared.is_dir() {
        println!("skipped: no shared scenario folder at {}", shared.display());
        return;
    }
    let mut loaded = 0;
    for entry in std::fs::read_dir(&shared).unwrap() {
        let path = entry.unwrap().path();
        if path
            .extension()
            .is_some_and(|extension| extension == "json")
        {
            Scenario::load(&path).unwrap_or_else(|error| panic!("{error}"));
            loaded += 1;
        }
    }
    assert!(loaded > 0, "no scenario in {}", shared.display());
}

// === scenario file errors ===

/// Writes `text` as a scenario file in a new folder and loads it.
fn load_text(text: &str) -> (tempfile::TempDir, PathBuf, ScenarioError) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.json");
    std::fs::write(&path, text).unwrap();
    let error = Scenario::load(&path).expect_err("the scenario is invalid");
    (dir, path, error)
}

#[test]
fn bad_scenario_error_names_file_and_key() {
    let cases = [
        (
            r#"{"routes": {"GET /x": {"stauts": 200}}}"#,
            r#"routes["GET /x"].stauts"#,
        ),
        (
            r#"{"routes": {"GET /x": [{"times": 0}, {}]}}"#,
            r#"routes["GET /x"][0].times"#,
        ),
        (
            r#"{"routes": {"GET /x": {"status": 99}}}"#,
            r#"routes["GET /x"].status"#,
        ),
        (
            r#"{"routes": {"GET /x": {"file": "samples/missing.bin"}}}"#,
            r#"routes["GET /x"].file"#,
        ),
        (
            r#"{"routes": {"GET /x": {"file": "../escape.bin"}}}"#,
            r#"routes["GET /x"].file"#,
        ),
        (
            r#"{"routes": {"GET /x": {"body": {}, "text": ""}}}"#,
            r#"routes["GET /x"].text"#,
        ),
        (
            r#"{"routes": {"GET /x": {"headers": {"X-Count": 1}}}}"#,
            r#"routes["GET /x"].headers["X-Count"]"#,
        ),
        (r#"{"routes": {"GET /x": []}}"#, r#"routes["GET /x"]"#),
        (r#"{"routes": {"get /x": {}}}"#, r#"routes["get /x"]"#),
        (r#"{"routes": {"GET x": {}}}"#, r#"routes["GET x"]"#),
        (
            r#"{"routes": {"GET /files/{sha": {}}}"#,
            r#"routes["GET /files/{sha"]"#,
        ),
        (
            r#"{"routes": {"GET /a/{id}": {}, "GET /a/b": {}}}"#,
            r#"routes["GET /a/b"]"#,
        ),
        (r#"{"routes": {}, "rutes": {}}"#, "rutes"),
        (r#"{"description": "no routes"}"#, "routes"),
        (r#"{"routes": {}, "config": []}"#, "config"),
        (
            r#"{"routes": {}, "require_authorization": "yes"}"#,
            "require_authorization",
        ),
        (r#"[]"#, "(top level)"),
    ];
    for (text, key) in cases {
        let (_dir, path, error) = load_text(text);
        let message = error.to_string();
        assert!(
            matches!(error, ScenarioError::Invalid { .. }),
            "{text}: {message}"
        );
        assert!(
            message.contains(&path.display().to_string()),
            "{text}: {message}"
        );
        assert!(message.contains(&format!("`{key}`")), "{text}: {message}");
    }
}

#[test]
fn duplicate_route_key_names_file_and_line() {
    let (_dir, path, error) = load_text("{\"routes\": {\n  \"GET /x\": {},\n  \"GET /x\": {}\n}}");
    let message = error.to_string();
    assert!(matches!(error, ScenarioError::Json { .. }), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("duplicate key \"GET /x\""), "{message}");
    assert!(message.contains("line 3"), "{message}");
}

#[test]
fn unreadable_scenario_names_the_file() {
    let path = fixtures_dir().join("no_such_scenario.json");
    let error = Scenario::load(&path).expect_err("the file does not exist");
    assert!(matches!(error, ScenarioError::Read { .. }));
    assert!(
        error.to_string().contains("no_such_scenario.json"),
        "{error}"
    );

    let (_dir, path, error) = load_text("{ not json");
    assert!(matches!(error, ScenarioError::Json { .. }));
    assert!(
        error.to_string().contains(&path.display().to_string()),
        "{error}"
    );
}

#[test]
fn sample_path_is_under_samples_folder() {
    let scenario = fixture("01_known_malicious_family");
    assert_eq!(scenario.sample.as_deref(), Some("pe_nsis_stub.exe"));
    assert_eq!(
        scenario.sample_path(),
        Some(fixtures_dir().join("samples/pe_nsis_stub.exe"))
    );
    assert_eq!(scenario.base_dir, fixtures_dir());
    assert_eq!(scenario.config["polling_period_in_seconds"], 1);
    assert!(scenario.submission_params.is_empty());
    assert_eq!(scenario.routes[0].method, "GET");
}

// === default scenario ===

/// Each known case returns its own verdict from the lookup, and two
/// simulators return the same analysis for the same hash.
#[tokio::test(flavor = "multi_thread")]
async fn default_verdicts_are_deterministic_per_hash() {
    let first = start_default(DefaultOptions::default()).await;
    let second = start_default(DefaultOptions::default()).await;
    let mut first_client = ApiClient::new(&first);
    let mut second_client = ApiClient::new(&second);
    first_client.authenticate().await;
    second_client.authenticate().await;

    let cases = [
        (
            DefaultVerdict::KnownMalicious,
            200,
            "malicious",
            "malicious",
        ),
        (
            DefaultVerdict::KnownSuspicious,
            200,
            "suspicious",
            "suspicious",
        ),
        (
            DefaultVerdict::KnownTrusted,
            200,
            "trusted",
            "known_trusted",
        ),
        (DefaultVerdict::UnknownThenMalicious, 404, "", ""),
        (DefaultVerdict::UnknownThenSuspicious, 404, "", ""),
    ];
    for (case, expected_status, verdict, sub_verdict) in cases {
        let sha256 = sha256_hex(&contents_with_verdict(case));
        let path = format!("/files/{sha256}");
        let (status, body) = status_and_json(first_client.get(&path).await).await;
        let (_, again) = status_and_json(second_client.get(&path).await).await;

        assert_eq!(status, expected_status, "{case:?}");
        if expected_status == 200 {
            assert_eq!(body["result"]["verdict"], verdict, "{case:?}");
            assert_eq!(body["result"]["sub_verdict"], sub_verdict, "{case:?}");
            assert_eq!(body["result"]["sha256"], sha256.as_str(), "{case:?}");
            assert_eq!(body["status"], "succeeded", "{case:?}");
            assert_eq!(
                body["result"]["analysis_id"], again["result"]["analysis_id"],
                "{case:?}"
            );
        } else {
            assert_eq!(
                body,
                json!({ "error": "Analysis was not found" }),
                "{case:?}"
            );
        }
    }
    first.stop().await;
    second.stop().await;
}

/// The bundled samples fall in the default-scenario cases that the
/// simulator documentation lists for them.
#[test]
fn bundled_samples_have_documented_verdicts() {
    let cases = [
        ("elf_libxau.so", DefaultVerdict::UnknownThenMalicious),
        ("elf_true", DefaultVerdict::UnknownThenSuspicious),
        ("pe_nsis_stub.exe", DefaultVerdict::KnownSuspicious),
        ("pe_nsis_system.dll", DefaultVerdict::KnownTrusted),
    ];
    for (name, expected) in cases {
        let bytes = std::fs::read(fixtures_dir().join("samples").join(name)).unwrap();
        assert_eq!(
            DefaultVerdict::for_sha256(&sha256_hex(&bytes)),
            Some(expected),
            "{name}"
        );
    }
}

/// The known malicious case has the ExampleRAT family, network IOCs in
/// documentation ranges, dynamic TTPs, and a root sub-analysis with malware
/// code reuse.
#[tokio::test(flavor = "multi_thread")]
async fn default_known_malicious_report_is_complete() {
    let handle = start_default(DefaultOptions::default()).await;
    let mut client = ApiClient::new(&handle);
    client.authenticate().await;
    let sha256 = sha256_hex(&contents_with_verdict(DefaultVerdict::KnownMalicious));

    let (_, lookup) = status_and_json(client.get(&format!("/files/{sha256}")).await).await;
    assert_eq!(lookup["result"]["family_name"], "ExampleRAT");
    let analysis_id = lookup["result"]["analysis_id"]
        .as_str()
        .unwrap()
        .to_string();
    let analysis = format!("/analyses/{analysis_id}");

    let (status, iocs) = status_and_json(client.get(&format!("{analysis}/iocs")).await).await;
    assert_eq!(status, 200);
    let network = iocs["result"]["network"].as_array().unwrap();
    assert_eq!(network.len(), 2);
    assert_eq!(network[0]["type"], "ip");
    assert!(network[0]["ioc"].as_str().unwrap().starts_with("192.0.2."));
    assert_eq!(network[1]["type"], "domain");
    assert_eq!(
        network[1]["ioc"],
        format!("c2-{}.example.net", &sha256[8..16])
    );

    let (status, ttps) =
        status_and_json(client.get(&format!("{analysis}/dynamic-ttps")).await).await;
    assert_eq!(status, 200);
    assert!(!ttps["result"].as_array().unwrap().is_empty());

    let (_, subs) = status_and_json(client.get(&format!("{analysis}/sub-analyses")).await).await;
    let subs = subs["sub_analyses"].as_array().unwrap();
    assert_eq!(subs[0]["source"], "root");
    assert_eq!(subs[0]["sha256"], sha256.as_str());
    assert!(subs[1]["extraction_info"]["processes"].is_array());
    let root_id = subs[0]["sub_analysis_id"].as_str().unwrap();

    let (status, reuse) = status_and_json(
        client
            .get(&format!("{analysis}/sub-analyses/{root_id}/code-reuse"))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(reuse["families"][0]["family_name"], "ExampleRAT");
    assert_eq!(reuse["families"][0]["family_type"], "malware");

    let unknown_sub = client
        .get(&format!("{analysis}/sub-analyses/no-such-sub/metadata"))
        .await;
    assert_eq!(unknown_sub.status(), StatusCode::NOT_FOUND);
    let download = client.get(&format!("/files/{sha256}/download")).await;
    assert_eq!(
        download.status(),
        StatusCode::NOT_FOUND,
        "a file never uploaded cannot be downloaded"
    );
    handle.stop().await;
}

/// Looks up a file of the known malicious case and returns the client, the
/// SHA-256 and the analysis path `/analyses/<id>`.
async fn known_malicious_analysis(handle: &IntezerSimHandle) -> (ApiClient, String, String) {
    let mut client = ApiClient::new(handle);
    client.authenticate().await;
    let sha256 = sha256_hex(&contents_with_verdict(DefaultVerdict::KnownMalicious));
    let (_, lookup) = status_and_json(client.get(&format!("/files/{sha256}")).await).await;
    let analysis_id = lookup["result"]["analysis_id"].as_str().unwrap();
    let analysis = format!("/analyses/{analysis_id}");
    (client, sha256, analysis)
}

/// Returns the sub-analysis entry with `source`.
fn sub_analysis_by_source<'a>(subs: &'a Value, source: &str) -> &'a Value {
    subs["sub_analyses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|sub| sub["source"] == source)
        .unwrap_or_else(|| panic!("no {source} sub-analysis in {subs}"))
}

/// Starts the strings operation of the known malicious root and returns the
/// client and the operation's result URL.
async fn start_root_strings(handle: &IntezerSimHandle) -> (ApiClient, String) {
    let (client, _, analysis) = known_malicious_analysis(handle).await;
    let (_, subs) = status_and_json(client.get(&format!("{analysis}/sub-analyses")).await).await;
    let root_id = sub_analysis_by_source(&subs, "root")["sub_analysis_id"]
        .as_str()
        .unwrap()
        .to_string();

    let (status, operation) = status_and_json(
        client
            .post(&format!("{analysis}/sub-analyses/{root_id}/strings"))
            .await,
    )
    .await;
    assert_eq!(status, 201);
    let strings_url = operation["result_url"].as_str().unwrap().to_string();
    (client, strings_url)
}

/// The malicious TTPs hold one signature per category heuristic (5 to 11),
/// an unmapped one (4) and a silent one, with every mark kind the service
/// tags, and they build a Signatures section with an IOC table.
#[tokio::test(flavor = "multi_thread")]
async fn default_malicious_ttps_cover_every_mark_kind() {
    use intezer_dynamic::intezer::Ttp;
    use intezer_dynamic::report::safelist::Safelist;
    use intezer_dynamic::report::signatures::signatures_section;

    let handle = start_default(DefaultOptions::default()).await;
    let (client, _, analysis) = known_malicious_analysis(&handle).await;

    let (status, body) =
        status_and_json(client.get(&format!("{analysis}/dynamic-ttps")).await).await;
    assert_eq!(status, 200);
    let ttps: Vec<Ttp> = serde_json::from_value(body["result"].clone()).unwrap();

    let mark_keys: std::collections::BTreeSet<&str> = ttps
        .iter()
        .flat_map(|ttp| ttp.data.iter())
        .filter_map(|mark| mark.keys().next().map(String::as_str))
        .collect();
    for key in [
        "IP", "command", "cmdline", "file", "regkey", "url", "domain", "api",
    ] {
        assert!(mark_keys.contains(key), "no {key} mark in {mark_keys:?}");
    }
    assert!(ttps
        .iter()
        .any(|ttp| ttp.name == "enumerates_running_processes"));

    let section = signatures_section(&ttps, &Safelist::empty()).unwrap();
    let heuristics: std::collections::BTreeSet<u32> = section
        .children
        .iter()
        .map(|child| child.heuristic.as_ref().unwrap().heur_id)
        .collect();
    assert_eq!(heuristics, (4..=11).collect());
    let with_ioc_table = section
        .children
        .iter()
        .filter(|child| !child.children.is_empty())
        .count();
    assert!(with_ioc_table >= 2, "{section:#?}");
    handle.stop().await;
}

/// The malicious analysis has a root, a dynamic_unpacking module with a
/// three-process tree, and a static_extraction payload whose bytes can be
/// downloaded and hash to its `sha256`. A second simulator gives the same
/// ids and hashes.
#[tokio::test(flavor = "multi_thread")]
async fn default_malicious_sub_analyses_cover_each_source() {
    let handle = start_default(DefaultOptions::default()).await;
    let (client, sha256, analysis) = known_malicious_analysis(&handle).await;

    let (status, subs) =
        status_and_json(client.get(&format!("{analysis}/sub-analyses")).await).await;
    assert_eq!(status, 200);
    let sources: Vec<&str> = subs["sub_analyses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|sub| sub["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["root", "dynamic_unpacking", "static_extraction"]);

    let unpacked = sub_analysis_by_source(&subs, "dynamic_unpacking");
    let processes = unpacked["extraction_info"]["processes"].as_array().unwrap();
    assert_eq!(processes.len(), 3);
    let pids: Vec<&Value> = processes.iter().map(|p| &p["process_id"]).collect();
    let children = processes
        .iter()
        .filter(|p| pids.contains(&&p["parent_process_id"]))
        .count();
    assert_eq!(children, 2, "two processes have a parent in the list");
    let injected = processes
        .iter()
        .filter(|p| p["process_path"] != p["module_path"])
        .count();
    assert_eq!(injected, 1);

    let extracted = sub_analysis_by_source(&subs, "static_extraction");
    let extracted_sha256 = extracted["sha256"].as_str().unwrap();
    assert_ne!(extracted_sha256, sha256);
    let download = client
        .get(&format!("/files/{extracted_sha256}/download"))
        .await;
    assert_eq!(download.status(), StatusCode::OK);
    assert_eq!(
        download.headers()["content-disposition"],
        format!("attachment; filename={extracted_sha256}.sample").as_str()
    );
    let bytes = download.bytes().await.unwrap();
    assert_eq!(sha256_hex(&bytes), extracted_sha256);

    let extracted_id = extracted["sub_analysis_id"].as_str().unwrap();
    let (status, reuse) = status_and_json(
        client
            .get(&format!(
                "{analysis}/sub-analyses/{extracted_id}/code-reuse"
            ))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(reuse["families"][0]["family_type"], "packer");
    let (_, metadata) = status_and_json(
        client
            .get(&format!("{analysis}/sub-analyses/{extracted_id}/metadata"))
            .await,
    )
    .await;
    assert_eq!(metadata["size_in_bytes"], bytes.len());

    let other = start_default(DefaultOptions::default()).await;
    let (other_client, _, other_analysis) = known_malicious_analysis(&other).await;
    assert_eq!(other_analysis, analysis);
    let (_, other_subs) =
        status_and_json(other_client.get(&format!("{analysis}/sub-analyses")).await).await;
    assert_eq!(other_subs, subs);
    handle.stop().await;
    other.stop().await;
}

/// The malicious root reuses at least five malware genes and its metadata
/// lists indicators.
#[tokio::test(flavor = "multi_thread")]
async fn default_malicious_root_has_genes_and_indicators() {
    let handle = start_default(DefaultOptions::default()).await;
    let (client, _, analysis) = known_malicious_analysis(&handle).await;
    let (_, subs) = status_and_json(client.get(&format!("{analysis}/sub-analyses")).await).await;
    let root_id = sub_analysis_by_source(&subs, "root")["sub_analysis_id"]
        .as_str()
        .unwrap()
        .to_string();

    let (_, reuse) = status_and_json(
        client
            .get(&format!("{analysis}/sub-analyses/{root_id}/code-reuse"))
            .await,
    )
    .await;
    let malware_genes = reuse["families"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|family| family["family_type"] == "malware")
        .map(|family| family["reused_gene_count"].as_u64().unwrap())
        .max();
    assert!(malware_genes >= Some(5), "{reuse}");

    let (_, metadata) = status_and_json(
        client
            .get(&format!("{analysis}/sub-analyses/{root_id}/metadata"))
            .await,
    )
    .await;
    let indicators = metadata["indicators"].as_array().unwrap();
    assert!(!indicators.is_empty());
    assert!(indicators
        .iter()
        .all(|indicator| indicator["name"].is_string() && indicator["classification"].is_string()));
    handle.stop().await;
}

/// The strings operation of the malicious root returns 202 once, then the
/// strings: some with families, one without, and a common one.
#[tokio::test(flavor = "multi_thread")]
async fn default_malicious_root_strings_poll_once() {
    let handle = start_default(DefaultOptions::default()).await;
    let (client, strings_url) = start_root_strings(&handle).await;
    let first = status_and_json(client.get(&strings_url).await).await;
    let second = status_and_json(client.get(&strings_url).await).await;

    assert_eq!(first, (202, json!({ "status": "in_progress" })));
    assert_eq!(second.0, 200);
    assert_eq!(second.1["status"], "succeeded");
    let entries = second.1["result"]["strings"].as_array().unwrap();
    let with_families = entries
        .iter()
        .filter(|entry| entry.get("families").is_some())
        .count();
    let without_families = entries
        .iter()
        .filter(|entry| entry.get("families").is_none() && entry["software_type"] != "common")
        .count();
    let common = entries
        .iter()
        .filter(|entry| entry["software_type"] == "common")
        .count();
    assert!(with_families >= 2, "{entries:?}");
    assert_eq!(without_families, 1, "{entries:?}");
    assert_eq!(common, 1, "{entries:?}");
    handle.stop().await;
}

/// With `instant_strings`, the malicious root's strings operation is done
/// at its first read, as the benchmark's hit runs need.
#[tokio::test(flavor = "multi_thread")]
async fn default_instant_strings_finish_at_first_read() {
    let handle = start_default(DefaultOptions {
        instant_strings: true,
        ..DefaultOptions::default()
    })
    .await;
    let (client, strings_url) = start_root_strings(&handle).await;
    let (status, body) = status_and_json(client.get(&strings_url).await).await;

    assert_eq!(status, 200);
    assert_eq!(body["status"], "succeeded");
    handle.stop().await;
}

/// An uploaded file that finishes as malicious has the same report as the
/// known malicious case, and its extracted payload can be downloaded only
/// from the simulator that analysed it.
#[tokio::test(flavor = "multi_thread")]
async fn default_uploaded_malicious_file_has_extracted_payload() {
    let handle = start_default(DefaultOptions {
        polls_before_finished: 0,
        ..DefaultOptions::default()
    })
    .await;
    let stranger = start_default(DefaultOptions::default()).await;
    let mut client = ApiClient::new(&handle);
    let mut stranger_client = ApiClient::new(&stranger);
    client.authenticate().await;
    stranger_client.authenticate().await;
    let contents = contents_with_verdict(DefaultVerdict::UnknownThenMalicious);

    let (_, created) = status_and_json(client.upload("sample.bin", contents).await).await;
    let result_url = created["result_url"].as_str().unwrap().to_string();
    let (status, _) = status_and_json(client.get(&result_url).await).await;
    assert_eq!(status, 200);

    let (_, subs) = status_and_json(client.get(&format!("{result_url}/sub-analyses")).await).await;
    let extracted_sha256 = sub_analysis_by_source(&subs, "static_extraction")["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, ttps) = status_and_json(client.get(&format!("{result_url}/dynamic-ttps")).await).await;
    assert!(ttps["result"].as_array().unwrap().len() >= 8);

    let path = format!("/files/{extracted_sha256}/download");
    let download = client.get(&path).await;
    assert_eq!(download.status(), StatusCode::OK);
    assert_eq!(
        sha256_hex(&download.bytes().await.unwrap()),
        extracted_sha256
    );
    assert_eq!(
        stranger_client.get(&path).await.status(),
        StatusCode::NOT_FOUND,
        "a simulator that never analysed the parent does not know the payload"
    );
    handle.stop().await;
    stranger.stop().await;
}

/// The trusted case was not executed, so its dynamic TTPs return 404.
#[tokio::test(flavor = "multi_thread")]
async fn default_trusted_file_has_no_dynamic_ttps() {
    let handle = start_default(DefaultOptions::default()).await;
    let mut client = ApiClient::new(&handle);
    client.authenticate().await;
    let sha256 = sha256_hex(&contents_with_verdict(DefaultVerdict::KnownTrusted));

    let (_, lookup) = status_and_json(client.get(&format!("/files/{sha256}")).await).await;
    let analysis_id = lookup["result"]["analysis_id"].as_str().unwrap();
    let ttps = client
        .get(&format!("/analyses/{analysis_id}/dynamic-ttps"))
        .await;
    assert_eq!(ttps.status(), StatusCode::NOT_FOUND);
    handle.stop().await;
}

/// An unknown file: lookup 404, upload 201, N polls 202, then 200. From
/// then on the lookup finds the same analysis. Its sub-resources, strings
/// and download work, and the quota counts lookups, the upload and the
/// download.
#[tokio::test(flavor = "multi_thread")]
async fn default_unknown_file_upload_poll_lookup() {
    let options = DefaultOptions {
        polls_before_finished: 3,
        ..DefaultOptions::default()
    };
    let handle = start_default(options).await;
    let mut client = ApiClient::new(&handle);
    client.authenticate().await;
    let mut contents = b"MZ".to_vec();
    contents.extend(contents_with_verdict(DefaultVerdict::UnknownThenSuspicious));
    while DefaultVerdict::for_sha256(&sha256_hex(&contents))
        != Some(DefaultVerdict::UnknownThenSuspicious)
    {
        contents.push(b'.');
    }
    let sha256 = sha256_hex(&contents);
    let lookup = format!("/files/{sha256}");

    assert_eq!(client.get(&lookup).await.status(), StatusCode::NOT_FOUND);

    let (status, created) =
        status_and_json(client.upload("dropper.exe", contents.clone()).await).await;
    assert_eq!(status, 201);
    let result_url = created["result_url"].as_str().unwrap().to_string();
    let analysis_id = result_url.strip_prefix("/analyses/").unwrap().to_string();
    assert_eq!(analysis_id.len(), 36);

    let mut polls = Vec::new();
    for _ in 0..5 {
        polls.push(status_and_json(client.get(&result_url).await).await);
    }
    let statuses: Vec<u16> = polls.iter().map(|(status, _)| *status).collect();
    assert_eq!(statuses, [202, 202, 202, 200, 200]);
    assert_eq!(polls[0].1, json!({ "status": "in_progress" }));
    assert_eq!(polls[3].1["status"], "succeeded");
    assert_eq!(polls[3].1["result"]["verdict"], "suspicious");
    assert_eq!(polls[3].1["result"]["file_name"], "dropper.exe");

    let (status, found) = status_and_json(client.get(&lookup).await).await;
    assert_eq!(status, 200);
    assert_eq!(found["result"]["analysis_id"], analysis_id.as_str());

    let (_, subs) = status_and_json(client.get(&format!("{result_url}/sub-analyses")).await).await;
    let root_id = subs["sub_analyses"][0]["sub_analysis_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, metadata) = status_and_json(
        client
            .get(&format!("{result_url}/sub-analyses/{root_id}/metadata"))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(metadata["file_type"], "pe");
    assert_eq!(metadata["size_in_bytes"], contents.len());

    let (status, operation) = status_and_json(
        client
            .post(&format!("{result_url}/sub-analyses/{root_id}/strings"))
            .await,
    )
    .await;
    assert_eq!(status, 201);
    let strings_url = operation["result_url"].as_str().unwrap();
    assert!(strings_url.starts_with(&format!("{result_url}/sub-analyses/{root_id}/strings/")));
    let (status, strings) = status_and_json(client.get(strings_url).await).await;
    assert_eq!(status, 200);
    assert_eq!(strings["status"], "succeeded");
    assert!(!strings["result"]["strings"].as_array().unwrap().is_empty());

    let download = client.get(&format!("/files/{sha256}/download")).await;
    assert_eq!(download.status(), StatusCode::OK);
    assert_eq!(
        download.bytes().await.unwrap().as_ref(),
        contents.as_slice()
    );

    let (_, quota) = status_and_json(client.get("/current-quota-usage").await).await;
    assert_eq!(quota["result"]["file_scans"]["usage"], 4);

    let calls = handle.calls();
    let upload = calls
        .iter()
        .find(|call| call.endpoint == "analyze")
        .unwrap();
    assert_eq!(
        upload.form_fields,
        [
            ("verify_file_support".to_string(), "True".to_string()),
            ("disable_dynamic_execution".to_string(), "False".to_string()),
            (
                "file".to_string(),
                format!("dropper.exe ({} bytes, sha256 {sha256})", contents.len())
            ),
        ]
    );
    assert!(calls.iter().skip(1).all(|call| call.authorized));
    let sequence: Vec<u64> = calls.iter().map(|call| call.seq).collect();
    assert_eq!(sequence, (1..=calls.len() as u64).collect::<Vec<_>>());
    handle.stop().await;
}

/// A second upload while the first analysis runs gets 409 with the running
/// analysis id. Once it has finished, an upload starts a new analysis.
#[tokio::test(flavor = "multi_thread")]
async fn default_reupload_while_running_gets_409() {
    let handle = start_default(DefaultOptions {
        polls_before_finished: 1,
        ..DefaultOptions::default()
    })
    .await;
    let mut client = ApiClient::new(&handle);
    client.authenticate().await;
    let contents = contents_with_verdict(DefaultVerdict::UnknownThenMalicious);

    let (status, created) =
        status_and_json(client.upload("sample.bin", contents.clone()).await).await;
    assert_eq!(status, 201);
    let analysis_id = created["result_url"]
        .as_str()
        .unwrap()
        .strip_prefix("/analyses/")
        .unwrap()
        .to_string();

    let (status, conflict) =
        status_and_json(client.upload("sample.bin", contents.clone()).await).await;
    assert_eq!(status, 409);
    assert_eq!(conflict["result"]["analysis_id"], analysis_id.as_str());
    assert_eq!(conflict["result"]["is_skipped_by_rule"], false);

    let running = client.get(&format!("/analyses/{analysis_id}/iocs")).await;
    assert_eq!(
        running.status(),
        StatusCode::CONFLICT,
        "sub-resources wait for the analysis"
    );

    assert_eq!(
        client
            .get(&format!("/analyses/{analysis_id}"))
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    let (status, finished) =
        status_and_json(client.get(&format!("/analyses/{analysis_id}")).await).await;
    assert_eq!(status, 200);
    assert_eq!(finished["result"]["verdict"], "malicious");

    let (status, again) = status_and_json(client.upload("sample.bin", contents).await).await;
    assert_eq!(status, 201);
    assert_ne!(again["result_url"], created["result_url"]);
    handle.stop().await;
}

/// Malformed uploads get 400, and unknown analysis ids 404.
#[tokio::test(flavor = "multi_thread")]
async fn default_upload_without_file_is_rejected() {
    let handle = start_default(DefaultOptions::default()).await;
    let mut client = ApiClient::new(&handle);
    client.authenticate().await;

    let no_file = client
        .request(reqwest::Method::POST, "/analyze")
        .multipart(Form::new().text("verify_file_support", "True"))
        .send()
        .await
        .unwrap();
    assert_eq!(no_file.status(), StatusCode::BAD_REQUEST);
    let not_multipart = client.post("/analyze").await;
    assert_eq!(not_multipart.status(), StatusCode::BAD_REQUEST);
    let unknown = client
        .get("/analyses/00000000-0000-4000-8000-000000000000")
        .await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let (status, body) = status_and_json(client.get("/no-such-endpoint").await).await;
    assert_eq!(status, 404);
    assert_eq!(body, json!({ "error": "endpoint not found" }));
    assert_eq!(handle.calls().last().unwrap().route, None);
    handle.stop().await;
}

/// With an API key set, other keys get 401 on the token endpoint and
/// requests without an issued token get 401, but `is-available` stays open.
#[tokio::test(flavor = "multi_thread")]
async fn default_api_key_rejects_bad_credentials() {
    let handle = start_default(DefaultOptions {
        api_key: Some(API_KEY.to_string()),
        ..DefaultOptions::default()
    })
    .await;
    let mut client = ApiClient::new(&handle);

    let wrong_key = client
        .http
        .post(format!("{}/get-access-token", client.root))
        .json(&json!({ "api_key": "wrong" }))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_key.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(client.get("/is-available").await.status(), StatusCode::OK);
    assert_eq!(
        client.get("/current-quota-usage").await.status(),
        StatusCode::UNAUTHORIZED
    );

    client.authenticate().await;
    assert_eq!(
        client.get("/current-quota-usage").await.status(),
        StatusCode::OK
    );
    handle.stop().await;
}

/// The `expire-tokens` fault returns 401 and makes every token issued so
/// far stop working, until a new one is fetched.
#[tokio::test(flavor = "multi_thread")]
async fn expire_tokens_fault_revokes_issued_tokens() {
    let handle = IntezerSimulator::start_with_faults(
        IntezerBehaviour::Default(DefaultOptions {
            api_key: Some(API_KEY.to_string()),
            ..DefaultOptions::default()
        }),
        0,
        FaultPlan::parse(&["analyses.status=expire-tokens,first=1"], 1).unwrap(),
    )
    .await
    .expect("simulator starts");
    let mut client = ApiClient::new(&handle);
    client.authenticate().await;
    assert_eq!(
        client.get("/current-quota-usage").await.status(),
        StatusCode::OK
    );

    let status_path = "/analyses/00000000-0000-4000-8000-000000000000";
    assert_eq!(
        client.get(status_path).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        client.get("/current-quota-usage").await.status(),
        StatusCode::UNAUTHORIZED,
        "the old token no longer works"
    );

    client.authenticate().await;
    assert_eq!(
        client.get("/current-quota-usage").await.status(),
        StatusCode::OK
    );
    let injected = handle.injected_faults();
    assert_eq!(injected.len(), 1);
    assert_eq!(injected[0].fault, "expire-tokens");
    handle.stop().await;
}

/// `latency` delays every response, including the token.
#[tokio::test(flavor = "multi_thread")]
async fn default_latency_delays_every_response() {
    let latency = Duration::from_millis(150);
    let handle = start_default(DefaultOptions {
        latency,
        ..DefaultOptions::default()
    })
    .await;
    let mut client = ApiClient::new(&handle);

    let started = Instant::now();
    client.authenticate().await;
    client.get("/is-available").await;
    assert!(started.elapsed() >= latency * 2, "{:?}", started.elapsed());
    handle.stop().await;
}

// === server lifecycle ===

/// Starts the simulator inside an actix System, where the service's actors
/// run.
#[actix_rt::test]
async fn simulator_runs_inside_an_actix_system() {
    let handle = start_default(DefaultOptions::default()).await;
    let response = Client::new()
        .get(format!("{}v2-0/is-available", handle.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    handle.stop().await;
}

/// Starts the simulator on a current-thread Tokio runtime.
#[tokio::test]
async fn simulator_runs_on_a_current_thread_runtime() {
    let handle = start_default(DefaultOptions::default()).await;
    let response = Client::new()
        .get(format!("{}v2-0/is-available", handle.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    handle.stop().await;
}

/// The base URL is the loopback address with the bound port, and stopping
/// frees the port for a new simulator.
#[tokio::test(flavor = "multi_thread")]
async fn stop_frees_the_port() {
    let handle = start_default(DefaultOptions::default()).await;
    let port = handle.port();
    assert_ne!(port, 0);
    assert_eq!(handle.base_url(), format!("http://127.0.0.1:{port}/api/"));
    handle.stop().await;

    let again = IntezerSimulator::start(IntezerBehaviour::Default(DefaultOptions::default()), port)
        .await
        .expect("the port is free after stop");
    assert_eq!(again.port(), port);
    again.stop().await;
}

/// Starting on a port that is in use fails with `AddrInUse`.
#[tokio::test(flavor = "multi_thread")]
async fn start_on_taken_port_fails() {
    let first = start_default(DefaultOptions::default()).await;

    let second = IntezerSimulator::start(
        IntezerBehaviour::Default(DefaultOptions::default()),
        first.port(),
    )
    .await;
    let error = second.err().expect("the port is taken");
    assert_eq!(error.kind(), std::io::ErrorKind::AddrInUse);
    first.stop().await;
}

/// Concurrent requests are all served and recorded with distinct
/// sequence numbers, and a scripted list hands each entry out once.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_requests_are_each_recorded_once() {
    let scenario = Scenario::from_json(
        json!({ "routes": { "GET /files/{sha256}": [
            { "status": 404, "times": 10 },
            { "status": 200, "body": {} }
        ] } }),
        &fixtures_dir(),
    )
    .unwrap();
    let handle = start_scenario(scenario).await;
    let base = format!("{}v2-0", handle.base_url());
    let http = Client::new();

    let requests = (0..20).map(|index| {
        let http = http.clone();
        let url = format!("{base}/files/{index}");
        tokio::spawn(async move { http.get(url).send().await.unwrap().status().as_u16() })
    });
    let mut statuses = Vec::new();
    for request in requests {
        statuses.push(request.await.unwrap());
    }
    statuses.sort_unstable();
    assert_eq!(statuses.iter().filter(|status| **status == 200).count(), 10);
    assert_eq!(statuses.iter().filter(|status| **status == 404).count(), 10);

    let calls = handle.calls();
    let recorded: Vec<u16> = calls.iter().map(|call| call.status).collect();
    assert_eq!(
        recorded,
        [[404; 10], [200; 10]].concat(),
        "responses follow the recorded order"
    );
    let sequence: Vec<u64> = calls.iter().map(|call| call.seq).collect();
    assert_eq!(sequence, (1..=20).collect::<Vec<_>>());
    handle.stop().await;
}

/// The default scenario's optional rate limit answers 429 with
/// `Retry-After` past its per-minute allowance; access tokens are free.
#[tokio::test(flavor = "multi_thread")]
async fn default_rate_limit_answers_429() {
    let handle = start_default(DefaultOptions {
        rate_limit_per_minute: Some(2),
        ..DefaultOptions::default()
    })
    .await;
    let http = reqwest::Client::new();
    let url = format!("{}v2-0/files/{}", handle.base_url(), "a".repeat(64));

    let mut statuses = Vec::new();
    for _ in 0..3 {
        let response = http
            .get(&url)
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap();
        statuses.push((
            response.status().as_u16(),
            response.headers().get("Retry-After").is_some(),
        ));
    }
    let token = http
        .post(format!("{}v2-0/get-access-token", handle.base_url()))
        .json(&serde_json::json!({"api_key": "k"}))
        .send()
        .await
        .unwrap();

    assert_ne!(statuses[0].0, 429);
    assert_ne!(statuses[1].0, 429);
    assert_eq!(statuses[2], (429, true));
    assert_eq!(token.status().as_u16(), 200);
}
