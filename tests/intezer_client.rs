//! The Intezer client against wiremock servers on 127.0.0.1: one test per
//! endpoint success and per error kind, plus access tokens, retries, rate
//! limits, timeouts, the response size cap and secret hygiene.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::intezer_mock::*;
use common::logs::CapturedLogs;
use intezer_dynamic::config::Secret;
use intezer_dynamic::intezer::{AnalysisState, IntezerClient, IntezerError, IntezerSettings};
use intezer_dynamic::quota::Limiter;
use serde_json::json;
use tokio::time::Instant;
use wiremock::matchers::{bearer_token, body_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate, Times};

/// Mounts `GET <endpoint_path>` returning `response`, expecting `calls` calls.
async fn mount_get(
    server: &MockServer,
    endpoint_path: &str,
    response: ResponseTemplate,
    calls: impl Into<Times>,
) {
    Mock::given(method("GET"))
        .and(path(api_path(endpoint_path)))
        .and(bearer_token(TOKEN))
        .respond_with(response)
        .expect(calls)
        .mount(server)
        .await;
}

async fn mount_analyze(server: &MockServer, response: ResponseTemplate, calls: impl Into<Times>) {
    Mock::given(method("POST"))
        .and(path(api_path("/analyze")))
        .and(bearer_token(TOKEN))
        .respond_with(response)
        .expect(calls)
        .mount(server)
        .await;
}

/// Writes a sample file into a fresh temporary directory.
fn sample_file(content: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file_path = dir.path().join("upload.bin");
    std::fs::write(&file_path, content).unwrap();
    (dir, file_path)
}

fn latest_path() -> String {
    format!("/files/{SHA256}")
}

// === construction and settings ===

#[tokio::test]
async fn versioned_root_has_one_slash_before_version() {
    let server = MockServer::start().await;
    let mut settings = settings(&server);
    settings.base_url = format!("{}/api///", server.uri());

    let client = IntezerClient::new(settings).unwrap();

    assert_eq!(
        client.versioned_root(),
        format!("{}/api/v2-0", server.uri())
    );
}

#[tokio::test]
async fn client_rejects_non_http_base_url() {
    let settings = IntezerSettings::new("ftp://127.0.0.1/api/", Secret::new(API_KEY));

    let result = IntezerClient::new(settings);

    assert!(matches!(result, Err(IntezerError::Config(_))), "{result:?}");
}

#[tokio::test]
async fn settings_and_client_debug_hide_api_key() {
    let server = MockServer::start().await;
    let settings = settings(&server);

    let settings_debug = format!("{settings:?}");
    let client_debug = format!("{:?}", IntezerClient::new(settings).unwrap());

    assert!(!settings_debug.contains(API_KEY), "{settings_debug}");
    assert!(!client_debug.contains(API_KEY), "{client_debug}");
}

#[tokio::test]
async fn ca_path_with_pem_certificate_is_accepted() {
    let server = MockServer::start().await;
    let mut settings = settings(&server);
    settings.ca_path =
        Some(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/test-ca.pem").into());

    let result = IntezerClient::new(settings);

    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn ca_path_without_certificate_is_rejected() {
    let server = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("ca.pem");
    std::fs::write(&not_pem, "not a certificate\n").unwrap();
    let mut settings = settings(&server);
    settings.ca_path = Some(not_pem);

    let result = IntezerClient::new(settings);

    assert!(matches!(result, Err(IntezerError::Config(_))), "{result:?}");
}

#[tokio::test]
async fn tls_verify_off_logs_warning() {
    let server = MockServer::start().await;
    let mut settings = settings(&server);
    settings.tls_verify = false;
    let logs = CapturedLogs::default();
    let _guard = logs.capture();

    let result = IntezerClient::new(settings);

    assert!(result.is_ok(), "{result:?}");
    let text = logs.text();
    assert!(text.contains("WARN"), "{text}");
    assert!(
        text.contains("TLS certificate verification is off"),
        "{text}"
    );
}

// === is-available ===

#[tokio::test]
async fn is_available_sends_no_authorization() {
    let server = MockServer::start().await;
    mount_token(&server, 0).await;
    Mock::given(method("GET"))
        .and(path(api_path("/is-available")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "is_available": true })))
        .expect(1)
        .mount(&server)
        .await;

    let available = client(&server).is_available().await.unwrap();

    assert!(available);
    let requests = server.received_requests().await.unwrap();
    assert!(requests[0].headers.get("authorization").is_none());
}

#[tokio::test]
async fn is_available_is_false_on_504() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(api_path("/is-available")))
        .respond_with(ResponseTemplate::new(504))
        .expect(1)
        .mount(&server)
        .await;

    let available = client(&server).is_available().await.unwrap();

    assert!(!available);
}

#[tokio::test]
async fn connection_refused_gives_transport_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let client = IntezerClient::new(IntezerSettings::new(
        format!("http://{address}/api/"),
        Secret::new(API_KEY),
    ))
    .unwrap();

    let result = client.is_available().await;

    assert!(
        matches!(
            result,
            Err(IntezerError::Transport {
                endpoint: "is-available",
                ..
            })
        ),
        "{result:?}"
    );
}

// === access token ===

#[tokio::test]
async fn token_is_fetched_once_for_many_calls() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    mount_get(
        &server,
        &latest_path(),
        ResponseTemplate::new(200).set_body_json(json!({ "result": analysis_json() })),
        9,
    )
    .await;
    let client = client(&server);

    let concurrent = (0..8).map(|_| client.latest_analysis(SHA256, false, deadline()));
    let results = futures_util::future::join_all(concurrent).await;
    let sequential = client.latest_analysis(SHA256, false, deadline()).await;

    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert!(sequential.is_ok(), "{sequential:?}");
}

#[tokio::test]
async fn token_is_renewed_before_expiry() {
    let server = MockServer::start().await;
    mount_token_expiring_in(&server, 10.0, 2).await;
    mount_get(
        &server,
        &latest_path(),
        ResponseTemplate::new(200).set_body_json(json!({ "result": analysis_json() })),
        2,
    )
    .await;
    let client = client(&server);

    client
        .latest_analysis(SHA256, false, deadline())
        .await
        .unwrap();
    client
        .latest_analysis(SHA256, false, deadline())
        .await
        .unwrap();
}

#[tokio::test]
async fn unauthorized_renews_token_and_repeats_once() {
    let server = MockServer::start().await;
    mount_token(&server, 2).await;
    Mock::given(method("GET"))
        .and(path(api_path(&latest_path())))
        .respond_with(ResponseTemplate::new(401))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    mount_get(
        &server,
        &latest_path(),
        ResponseTemplate::new(200).set_body_json(json!({ "result": analysis_json() })),
        1,
    )
    .await;

    let analysis = client(&server)
        .latest_analysis(SHA256, false, deadline())
        .await
        .unwrap();

    assert_eq!(analysis.analysis_id, ANALYSIS_ID);
}

/// After the first token: request, token, request, and then no more.
#[tokio::test]
async fn second_unauthorized_gives_invalid_api_key() {
    let server = MockServer::start().await;
    mount_token(&server, 2).await;
    mount_get(&server, &latest_path(), ResponseTemplate::new(401), 2).await;

    let result = client(&server)
        .latest_analysis(SHA256, false, deadline())
        .await;

    assert!(
        matches!(result, Err(IntezerError::InvalidApiKey { status: 401 })),
        "{result:?}"
    );
}

#[tokio::test]
async fn token_request_401_gives_invalid_api_key() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(api_path("/get-access-token")))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({ "error": "Invalid api key" })),
        )
        .expect(1)
        .mount(&server)
        .await;
    mount_get(&server, &latest_path(), ResponseTemplate::new(200), 0).await;

    let result = client(&server)
        .latest_analysis(SHA256, false, deadline())
        .await;

    assert!(
        matches!(result, Err(IntezerError::InvalidApiKey { status: 401 })),
        "{result:?}"
    );
}

#[tokio::test]
async fn token_request_400_gives_invalid_api_key() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(api_path("/get-access-token")))
        .respond_with(ResponseTemplate::new(400))
        .expect(1)
        .mount(&server)
        .await;

    let result = client(&server).iocs(ANALYSIS_ID, deadline()).await;

    assert!(
        matches!(result, Err(IntezerError::InvalidApiKey { status: 400 })),
        "{result:?}"
    );
}

#[tokio::test]
async fn token_server_error_is_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(api_path("/get-access-token")))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    mount_token(&server, 1).await;
    mount_get(
        &server,
        &latest_path(),
        ResponseTemplate::new(200).set_body_json(json!({ "result": analysis_json() })),
        1,
    )
    .await;

    let result = client(&server)
        .latest_analysis(SHA256, false, deadline())
        .await;

    assert!(result.is_ok(), "{result:?}");
}

// === GET /files/{sha256} ===

#[tokio::test]
async fn latest_analysis_returns_result() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    Mock::given(method("GET"))
        .and(path(api_path(&latest_path())))
        .and(bearer_token(TOKEN))
        .and(body_json(
            json!({ "should_get_only_private_analysis": true }),
        ))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({ "result": analysis_json() })),
        )
        .expect(1)
        .mount(&server)
        .await;

    let analysis = client(&server)
        .latest_analysis(SHA256, true, deadline())
        .await
        .unwrap();

    assert_eq!(analysis.analysis_id, ANALYSIS_ID);
    assert_eq!(analysis.verdict.as_deref(), Some("malicious"));
    assert_eq!(analysis.sub_verdict.as_deref(), Some("known_malicious"));
    assert_eq!(analysis.family_name.as_deref(), Some("ExampleFamily"));
    assert_eq!(analysis.extra.get("is_private"), Some(&json!(true)));
}

#[tokio::test]
async fn latest_analysis_sends_private_flag_on_cloud() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    mount_get(
        &server,
        &latest_path(),
        ResponseTemplate::new(200).set_body_json(json!({ "result": analysis_json() })),
        1,
    )
    .await;

    client(&server)
        .latest_analysis(SHA256, false, deadline())
        .await
        .unwrap();

    let requests = server.received_requests().await.unwrap();
    let lookup = requests
        .iter()
        .find(|r| r.url.path() == api_path(&latest_path()))
        .unwrap();
    assert_eq!(
        lookup.headers.get("content-type").unwrap(),
        "application/json"
    );
    let body: serde_json::Value = serde_json::from_slice(&lookup.body).unwrap();
    assert_eq!(body, json!({ "should_get_only_private_analysis": false }));
}

#[tokio::test]
async fn latest_analysis_sends_empty_body_on_premise() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    mount_get(
        &server,
        &latest_path(),
        ResponseTemplate::new(200).set_body_json(json!({ "result": analysis_json() })),
        1,
    )
    .await;
    let mut settings = settings(&server);
    settings.is_on_premise = true;

    IntezerClient::new(settings)
        .unwrap()
        .latest_analysis(SHA256, true, deadline())
        .await
        .unwrap();

    let requests = server.received_requests().await.unwrap();
    let lookup = requests
        .iter()
        .find(|r| r.url.path() == api_path(&latest_path()))
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&lookup.body).unwrap();
    assert_eq!(body, json!({}));
}

#[tokio::test]
async fn latest_analysis_returns_not_found_on_404() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    mount_get(&server, &latest_path(), ResponseTemplate::new(404), 1).await;

    let result = client(&server)
        .latest_analysis(SHA256, false, deadline())
        .await;

    assert!(
        matches!(
            result,
            Err(IntezerError::NotFound {
                endpoint: "files.latest-analysis"
            })
        ),
        "{result:?}"
    );
}

#[tokio::test]
async fn latest_analysis_returns_gone_on_410() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    mount_get(&server, &latest_path(), ResponseTemplate::new(410), 1).await;

    let result = client(&server)
        .latest_analysis(SHA256, false, deadline())
        .await;

    assert!(
        matches!(
            result,
            Err(IntezerError::Gone {
                endpoint: "files.latest-analysis"
            })
        ),
        "{result:?}"
    );
}

#[tokio::test]
async fn latest_analysis_returns_bad_request_with_details() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    let body = json!({
        "error": "The request is not valid",
        "details": { "should_get_only_private_analysis": ["unknown field"] }
    });
    mount_get(
        &server,
        &latest_path(),
        ResponseTemplate::new(400).set_body_json(body),
        1,
    )
    .await;

    let result = client(&server)
        .latest_analysis(SHA256, true, deadline())
        .await;

    let Err(IntezerError::BadRequest { endpoint, message }) = result else {
        panic!("expected BadRequest, got {result:?}");
    };
    assert_eq!(endpoint, "files.latest-analysis");
    assert!(message.contains("The request is not valid"), "{message}");
    assert!(message.contains("unknown field"), "{message}");
}

#[tokio::test]
async fn latest_analysis_returns_insufficient_permissions_on_403() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    let body = json!({ "error": "Insufficient Permissions" });
    mount_get(
        &server,
        &latest_path(),
        ResponseTemplate::new(403).set_body_json(body),
        1,
    )
    .await;

    let result = client(&server)
        .latest_analysis(SHA256, false, deadline())
        .await;

    assert!(
        matches!(result, Err(IntezerError::InsufficientPermissions { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn latest_analysis_returns_forbidden_on_other_403() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    let body = json!({ "error": "Community accounts cannot do this" });
    mount_get(
        &server,
        &latest_path(),
        ResponseTemplate::new(403).set_body_json(body),
        1,
    )
    .await;

    let result = client(&server)
        .latest_analysis(SHA256, false, deadline())
        .await;

    let Err(IntezerError::Forbidden { message, .. }) = result else {
        panic!("expected Forbidden, got {result:?}");
    };
    assert_eq!(message, "Community accounts cannot do this");
}

#[tokio::test]
async fn latest_analysis_rejects_non_json_body() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    let html = ResponseTemplate::new(200).set_body_raw("<html>maintenance</html>", "text/html");
    mount_get(&server, &latest_path(), html, 1).await;

    let result = client(&server)
        .latest_analysis(SHA256, false, deadline())
        .await;

    assert!(
        matches!(
            result,
            Err(IntezerError::InvalidResponse {
                endpoint: "files.latest-analysis",
                ..
            })
        ),
        "{result:?}"
    );
}

#[tokio::test]
async fn latest_analysis_rejects_missing_result() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    mount_get(
        &server,
        &latest_path(),
        ResponseTemplate::new(200).set_body_json(json!({ "status": "ok" })),
        1,
    )
    .await;

    let result = client(&server)
        .latest_analysis(SHA256, false, deadline())
        .await;

    assert!(
        matches!(result, Err(IntezerError::InvalidResponse { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn latest_analysis_rejects_malformed_hash() {
    let server = MockServer::start().await;
    mount_token(&server, 0).await;

    let result = client(&server)
        .latest_analysis("../is-available", false, deadline())
        .await;

    assert!(
        matches!(result, Err(IntezerError::InvalidArgument { .. })),
        "{result:?}"
    );
}

// === GET /analyses/{id} ===

fn analysis_path() -> String {
    format!("/analyses/{ANALYSIS_ID}")
}

#[tokio::test]
async fn analysis_is_running_on_202() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    let body = json!({ "status": "in_progress" });
    mount_get(
        &server,
        &analysis_path(),
        ResponseTemplate::new(202).set_body_json(body),
        1,
    )
    .await;

    let state = client(&server)
        .analysis(ANALYSIS_ID, deadline())
        .await
        .unwrap();

    assert_eq!(
        state,
        AnalysisState::Running {
            status: "in_progress".into()
        }
    );
}

#[tokio::test]
async fn analysis_is_running_while_queued() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    let body = json!({ "status": "queued" });
    mount_get(
        &server,
        &analysis_path(),
        ResponseTemplate::new(200).set_body_json(body),
        1,
    )
    .await;

    let state = client(&server)
        .analysis(ANALYSIS_ID, deadline())
        .await
        .unwrap();

    assert_eq!(
        state,
        AnalysisState::Running {
            status: "queued".into()
        }
    );
}

#[tokio::test]
async fn analysis_is_finished_when_succeeded() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    let body = json!({ "status": "succeeded", "result": analysis_json() });
    mount_get(
        &server,
        &analysis_path(),
        ResponseTemplate::new(200).set_body_json(body),
        1,
    )
    .await;

    let state = client(&server)
        .analysis(ANALYSIS_ID, deadline())
        .await
        .unwrap();

    let AnalysisState::Finished(analysis) = state else {
        panic!("expected Finished, got {state:?}");
    };
    assert_eq!(analysis.analysis_id, ANALYSIS_ID);
    assert_eq!(analysis.verdict.as_deref(), Some("malicious"));
}

#[tokio::test]
async fn analysis_is_failed_when_status_failed() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    let body = json!({ "status": "failed" });
    mount_get(
        &server,
        &analysis_path(),
        ResponseTemplate::new(200).set_body_json(body),
        1,
    )
    .await;

    let state = client(&server)
        .analysis(ANALYSIS_ID, deadline())
        .await
        .unwrap();

    assert_eq!(state, AnalysisState::Failed);
}

#[tokio::test]
async fn analysis_returns_not_found_on_404() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    mount_get(&server, &analysis_path(), ResponseTemplate::new(404), 1).await;

    let result = client(&server).analysis(ANALYSIS_ID, deadline()).await;

    assert!(
        matches!(
            result,
            Err(IntezerError::NotFound {
                endpoint: "analyses.get"
            })
        ),
        "{result:?}"
    );
}

// === POST /analyze ===

#[tokio::test]
async fn submit_file_uploads_multipart_and_returns_id() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    let created = json!({ "result_url": format!("/analyses/{ANALYSIS_ID}") });
    mount_analyze(
        &server,
        ResponseTemplate::new(201).set_body_json(created),
        1,
    )
    .await;
    let (_dir, file_path) = sample_file(b"MZ\x90\x00 sample bytes");

    let analysis_id = client(&server)
        .submit_file(&file_path, "sample.exe", deadline())
        .await
        .unwrap();

    assert_eq!(analysis_id, ANALYSIS_ID);
    let requests = server.received_requests().await.unwrap();
    let upload = requests
        .iter()
        .find(|r| r.url.path() == api_path("/analyze"))
        .unwrap();
    let content_type = upload
        .headers
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        content_type.starts_with("multipart/form-data; boundary="),
        "{content_type}"
    );
    let body = String::from_utf8_lossy(&upload.body);
    assert!(
        body.contains(r#"Content-Disposition: form-data; name="file"; filename="sample.exe""#),
        "{body}"
    );
    assert!(body.contains("MZ\u{FFFD}\u{0} sample bytes"), "{body}");
    assert!(
        body.contains(
            "Content-Disposition: form-data; name=\"verify_file_support\"\r\n\r\nTrue\r\n"
        ),
        "{body}"
    );
}

#[tokio::test]
async fn submit_file_rejects_unexpected_result_url() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    let created = json!({ "result_url": "a/sd/asd" });
    mount_analyze(
        &server,
        ResponseTemplate::new(201).set_body_json(created),
        1,
    )
    .await;
    let (_dir, file_path) = sample_file(b"content");

    let result = client(&server)
        .submit_file(&file_path, "sample.exe", deadline())
        .await;

    assert!(
        matches!(
            result,
            Err(IntezerError::InvalidResponse {
                endpoint: "analyze",
                ..
            })
        ),
        "{result:?}"
    );
}

#[tokio::test]
async fn submit_file_rejects_202() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    let accepted = json!({ "result_url": format!("/analyses/{ANALYSIS_ID}") });
    mount_analyze(
        &server,
        ResponseTemplate::new(202).set_body_json(accepted),
        1,
    )
    .await;
    let (_dir, file_path) = sample_file(b"content");

    let result = client(&server)
        .submit_file(&file_path, "sample.exe", deadline())
        .await;

    assert!(
        matches!(
            result,
            Err(IntezerError::UnexpectedStatus { status: 202, .. })
        ),
        "{result:?}"
    );
}

#[tokio::test]
async fn submit_file_returns_already_running_with_id() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    let conflict = json!({ "result": { "analysis_id": ANALYSIS_ID, "is_skipped_by_rule": false } });
    mount_analyze(
        &server,
        ResponseTemplate::new(409).set_body_json(conflict),
        1,
    )
    .await;
    let (_dir, file_path) = sample_file(b"content");

    let result = client(&server)
        .submit_file(&file_path, "sample.exe", deadline())
        .await;

    let Err(IntezerError::AlreadyRunning { analysis_id }) = result else {
        panic!("expected AlreadyRunning, got {result:?}");
    };
    assert_eq!(analysis_id, ANALYSIS_ID);
}

#[tokio::test]
async fn submit_file_returns_skipped_by_rule() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    let conflict = json!({ "result": { "analysis_id": ANALYSIS_ID, "is_skipped_by_rule": true } });
    mount_analyze(
        &server,
        ResponseTemplate::new(409).set_body_json(conflict),
        1,
    )
    .await;
    let (_dir, file_path) = sample_file(b"content");

    let result = client(&server)
        .submit_file(&file_path, "sample.exe", deadline())
        .await;

    assert!(
        matches!(result, Err(IntezerError::SkippedByRule)),
        "{result:?}"
    );
}

#[tokio::test]
async fn submit_file_returns_insufficient_quota_on_403() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    let body = json!({ "error": "Quota exceeded" });
    mount_analyze(&server, ResponseTemplate::new(403).set_body_json(body), 1).await;
    let (_dir, file_path) = sample_file(b"content");

    let result = client(&server)
        .submit_file(&file_path, "sample.exe", deadline())
        .await;

    let Err(IntezerError::InsufficientQuota { message }) = result else {
        panic!("expected InsufficientQuota, got {result:?}");
    };
    assert_eq!(message, "Quota exceeded");
}

#[tokio::test]
async fn submit_file_returns_file_too_large_on_413() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    mount_analyze(&server, ResponseTemplate::new(413), 1).await;
    let (_dir, file_path) = sample_file(b"content");

    let result = client(&server)
        .submit_file(&file_path, "sample.exe", deadline())
        .await;

    assert!(
        matches!(result, Err(IntezerError::FileTooLarge)),
        "{result:?}"
    );
}

#[tokio::test]
async fn submit_file_returns_unsupported_type_on_415() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    mount_analyze(&server, ResponseTemplate::new(415), 1).await;
    let (_dir, file_path) = sample_file(b"content");

    let result = client(&server)
        .submit_file(&file_path, "sample.txt", deadline())
        .await;

    assert!(
        matches!(result, Err(IntezerError::UnsupportedFileType)),
        "{result:?}"
    );
}

#[tokio::test]
async fn submit_file_returns_password_protected_for_both_wordings() {
    for error in [
        "Archive is password protected",
        "Cannot extract archive: bad password",
    ] {
        let server = MockServer::start().await;
        mount_token(&server, 1).await;
        let body = json!({ "error": error });
        mount_analyze(&server, ResponseTemplate::new(400).set_body_json(body), 1).await;
        let (_dir, file_path) = sample_file(b"PK\x03\x04");

        let result = client(&server)
            .submit_file(&file_path, "sample.zip", deadline())
            .await;

        assert!(
            matches!(result, Err(IntezerError::PasswordProtected)),
            "{error}: {result:?}"
        );
    }
}

#[tokio::test]
async fn submit_file_returns_bad_request_on_other_400() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    let body =
        json!({ "error": "Invalid parameter", "details": { "code_item_type": ["bad value"] } });
    mount_analyze(&server, ResponseTemplate::new(400).set_body_json(body), 1).await;
    let (_dir, file_path) = sample_file(b"content");

    let result = client(&server)
        .submit_file(&file_path, "sample.exe", deadline())
        .await;

    let Err(IntezerError::BadRequest { endpoint, message }) = result else {
        panic!("expected BadRequest, got {result:?}");
    };
    assert_eq!(endpoint, "analyze");
    assert!(message.contains("Invalid parameter"), "{message}");
    assert!(message.contains("bad value"), "{message}");
}

#[tokio::test]
async fn submit_file_not_resent_on_500() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    mount_analyze(&server, ResponseTemplate::new(500), 1).await;
    let (_dir, file_path) = sample_file(b"content");
    let mut settings = settings(&server);
    settings.retry.max_attempts = 1;

    let result = IntezerClient::new(settings)
        .unwrap()
        .submit_file(&file_path, "sample.exe", deadline())
        .await;

    assert!(
        matches!(
            result,
            Err(IntezerError::Server {
                endpoint: "analyze",
                status: 500
            })
        ),
        "{result:?}"
    );
}

/// The server may have accepted an upload whose response timed out, so a
/// second upload could start a second, counted analysis.
#[tokio::test]
async fn submit_file_not_resent_after_timeout() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    let slow = ResponseTemplate::new(201)
        .set_body_json(json!({ "result_url": format!("/analyses/{ANALYSIS_ID}") }))
        .set_delay(Duration::from_secs(10));
    mount_analyze(&server, slow, 1).await;
    let (_dir, file_path) = sample_file(b"content");
    let mut settings = settings(&server);
    // Long enough for the token request on a loaded test machine.
    settings.request_timeout = Duration::from_secs(1);

    let result = IntezerClient::new(settings)
        .unwrap()
        .submit_file(&file_path, "sample.exe", deadline())
        .await;

    assert!(
        matches!(
            result,
            Err(IntezerError::Timeout {
                endpoint: "analyze"
            })
        ),
        "{result:?}"
    );
}

#[tokio::test]
async fn submit_file_reports_missing_local_file() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    mount_analyze(&server, ResponseTemplate::new(201), 0).await;
    let dir = tempfile::tempdir().unwrap();

    let result = client(&server)
        .submit_file(&dir.path().join("missing.bin"), "sample.exe", deadline())
        .await;

    assert!(
        matches!(result, Err(IntezerError::LocalFile { .. })),
        "{result:?}"
    );
}

// === retries, rate limits and deadlines ===

#[tokio::test]
async fn server_error_is_retried_then_succeeds() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    Mock::given(method("GET"))
        .and(path(api_path(&latest_path())))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .with_priority(1)
        .expect(2)
        .mount(&server)
        .await;
    mount_get(
        &server,
        &latest_path(),
        ResponseTemplate::new(200).set_body_json(json!({ "result": analysis_json() })),
        1,
    )
    .await;

    let result = client(&server)
        .latest_analysis(SHA256, false, deadline())
        .await;

    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn server_errors_stop_after_max_attempts() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    mount_get(&server, &latest_path(), ResponseTemplate::new(500), 3).await;

    let result = client(&server)
        .latest_analysis(SHA256, false, deadline())
        .await;

    assert!(
        matches!(result, Err(IntezerError::Server { status: 500, .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn retry_forever_stops_at_deadline() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    mount_get(&server, &latest_path(), ResponseTemplate::new(502), 2..).await;
    let mut settings = settings(&server);
    settings.retry.retry_forever = true;
    settings.retry.max_attempts = 1;
    let deadline = Instant::now() + Duration::from_secs(2);

    let result = IntezerClient::new(settings)
        .unwrap()
        .latest_analysis(SHA256, false, deadline)
        .await;

    assert!(
        matches!(
            result,
            Err(IntezerError::DeadlineExceeded {
                endpoint: "files.latest-analysis"
            })
        ),
        "{result:?}"
    );
    assert!(Instant::now() < deadline + Duration::from_secs(1));
}

#[tokio::test]
async fn rate_limit_waits_retry_after_then_succeeds() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    Mock::given(method("GET"))
        .and(path(api_path(&latest_path())))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    mount_get(
        &server,
        &latest_path(),
        ResponseTemplate::new(200).set_body_json(json!({ "result": analysis_json() })),
        1,
    )
    .await;
    let started = Instant::now();

    let result = client(&server)
        .latest_analysis(SHA256, false, deadline())
        .await;

    assert!(result.is_ok(), "{result:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn rate_limit_past_deadline_returns_at_once() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    let limited = ResponseTemplate::new(429)
        .insert_header("Retry-After", "120")
        .insert_header("X-RateLimit-Limit", "100")
        .insert_header("X-RateLimit-Remaining", "0");
    mount_get(&server, &latest_path(), limited, 1).await;
    let started = Instant::now();

    let result = client(&server)
        .latest_analysis(SHA256, false, deadline())
        .await;

    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let Err(IntezerError::RateLimited { endpoint, info }) = result else {
        panic!("expected RateLimited, got {result:?}");
    };
    assert_eq!(endpoint, "files.latest-analysis");
    assert_eq!(info.retry_after, Some(Duration::from_secs(120)));
    assert_eq!(info.limit, Some(100));
    assert_eq!(info.remaining, Some(0));
}

#[tokio::test]
async fn rate_limit_reset_header_gives_wait() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    let reset = format!("{:.3}", epoch_seconds_from_now(100.0));
    let limited = ResponseTemplate::new(429).insert_header("X-RateLimit-Reset", reset.as_str());
    mount_get(&server, &latest_path(), limited, 1).await;

    let result = client(&server)
        .latest_analysis(SHA256, false, deadline())
        .await;

    let Err(IntezerError::RateLimited { info, .. }) = result else {
        panic!("expected RateLimited, got {result:?}");
    };
    let wait = info.retry_after.unwrap();
    assert!(
        wait > Duration::from_secs(95) && wait <= Duration::from_secs(100),
        "{wait:?}"
    );
}

#[tokio::test]
async fn read_timeout_is_retried_for_reads() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    let slow = ResponseTemplate::new(200).set_delay(Duration::from_secs(10));
    mount_get(&server, &latest_path(), slow, 2).await;
    let mut settings = settings(&server);
    // Long enough for the token request on a loaded test machine.
    settings.request_timeout = Duration::from_secs(1);
    settings.retry.max_attempts = 2;

    let result = IntezerClient::new(settings)
        .unwrap()
        .latest_analysis(SHA256, false, deadline())
        .await;

    assert!(
        matches!(
            result,
            Err(IntezerError::Timeout {
                endpoint: "files.latest-analysis"
            })
        ),
        "{result:?}"
    );
}

#[tokio::test]
async fn request_timeout_is_cut_to_deadline() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    let slow = ResponseTemplate::new(200).set_delay(Duration::from_secs(5));
    mount_get(&server, &latest_path(), slow, 1).await;
    let mut settings = settings(&server);
    settings.request_timeout = Duration::from_secs(30);
    let started = Instant::now();

    let result = IntezerClient::new(settings)
        .unwrap()
        .latest_analysis(SHA256, false, started + Duration::from_millis(300))
        .await;

    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(result, Err(IntezerError::DeadlineExceeded { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn passed_deadline_sends_nothing() {
    let server = MockServer::start().await;
    mount_token(&server, 0).await;

    let result = client(&server)
        .latest_analysis(SHA256, false, Instant::now())
        .await;

    assert!(
        matches!(result, Err(IntezerError::DeadlineExceeded { .. })),
        "{result:?}"
    );
}

/// The limiter allows one request a minute: the access token does not use
/// it, the first lookup does, and the second finds none before its deadline.
#[tokio::test]
async fn limiter_token_is_taken_per_request() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    mount_get(
        &server,
        &latest_path(),
        ResponseTemplate::new(200).set_body_json(json!({ "result": analysis_json() })),
        1,
    )
    .await;
    let limiter = Arc::new(Limiter::new(1, 1).unwrap());
    let client = client(&server).with_limiter(limiter);

    let first = client.latest_analysis(SHA256, false, deadline()).await;
    let second = client
        .latest_analysis(SHA256, false, Instant::now() + Duration::from_millis(200))
        .await;

    assert!(first.is_ok(), "{first:?}");
    assert!(
        matches!(second, Err(IntezerError::DeadlineExceeded { .. })),
        "{second:?}"
    );
}

// === analysis sub-resources ===

#[tokio::test]
async fn iocs_returns_files_and_network() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    let body = json!({ "result": {
        "files": [{ "sha256": SHA256, "verdict": "malicious", "path": "sample.exe", "type": "Main file" }],
        "network": [
            { "ioc": "192.0.2.10", "type": "ip", "source": ["Network communication"] },
            { "ioc": "bad.example.net", "type": "domain" }
        ]
    }});
    let iocs_path = format!("/analyses/{ANALYSIS_ID}/iocs");
    mount_get(
        &server,
        &iocs_path,
        ResponseTemplate::new(200).set_body_json(body),
        1,
    )
    .await;

    let iocs = client(&server).iocs(ANALYSIS_ID, deadline()).await.unwrap();

    assert_eq!(iocs.files.len(), 1);
    assert_eq!(iocs.files[0].verdict.as_deref(), Some("malicious"));
    assert_eq!(iocs.network.len(), 2);
    assert_eq!(iocs.network[1].ioc, "bad.example.net");
    assert_eq!(iocs.network[1].kind.as_deref(), Some("domain"));
}

#[tokio::test]
async fn iocs_returns_forbidden_for_community_accounts() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    let iocs_path = format!("/analyses/{ANALYSIS_ID}/iocs");
    mount_get(&server, &iocs_path, ResponseTemplate::new(403), 1).await;

    let result = client(&server).iocs(ANALYSIS_ID, deadline()).await;

    assert!(
        matches!(
            result,
            Err(IntezerError::Forbidden {
                endpoint: "analyses.iocs",
                ..
            })
        ),
        "{result:?}"
    );
}

#[tokio::test]
async fn dynamic_ttps_returns_signatures() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    let body = json!({ "result": [{
        "name": "InjectionInterProcess",
        "description": "Injects code into another process",
        "severity": 2,
        "data": [{ "IP": "192.0.2.10" }, { "command": "cmd.exe /c whoami" }]
    }]});
    let ttps_path = format!("/analyses/{ANALYSIS_ID}/dynamic-ttps");
    mount_get(
        &server,
        &ttps_path,
        ResponseTemplate::new(200).set_body_json(body),
        1,
    )
    .await;

    let ttps = client(&server)
        .dynamic_ttps(ANALYSIS_ID, deadline())
        .await
        .unwrap();

    assert_eq!(ttps.len(), 1);
    assert_eq!(ttps[0].name, "InjectionInterProcess");
    assert_eq!(ttps[0].severity, Some(2));
    assert_eq!(
        ttps[0].data[1].get("command"),
        Some(&json!("cmd.exe /c whoami"))
    );
}

#[tokio::test]
async fn sub_analyses_returns_list() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    let body = json!({ "sub_analyses": [
        { "sub_analysis_id": "a0000000-0000-4000-8000-000000000001", "source": "root", "sha256": SHA256 },
        { "sub_analysis_id": SUB_ID, "source": "static_extraction",
          "extraction_info": { "processes": [{ "process_id": 1204 }] } }
    ]});
    let list_path = format!("/analyses/{ANALYSIS_ID}/sub-analyses");
    mount_get(
        &server,
        &list_path,
        ResponseTemplate::new(200).set_body_json(body),
        1,
    )
    .await;

    let subs = client(&server)
        .sub_analyses(ANALYSIS_ID, deadline())
        .await
        .unwrap();

    assert_eq!(subs.len(), 2);
    assert_eq!(subs[0].source.as_deref(), Some("root"));
    assert_eq!(subs[1].sub_analysis_id, SUB_ID);
    assert!(subs[1].extraction_info.is_some());
}

fn sub_path(resource: &str) -> String {
    format!("/analyses/{ANALYSIS_ID}/sub-analyses/{SUB_ID}/{resource}")
}

#[tokio::test]
async fn code_reuse_returns_report() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    let body = json!({
        "gene_count": 66,
        "unique_gene_count": 12,
        "families": [{ "family_name": "ExampleFamily", "family_type": "malware", "reused_gene_count": 40 }]
    });
    mount_get(
        &server,
        &sub_path("code-reuse"),
        ResponseTemplate::new(200).set_body_json(body),
        1,
    )
    .await;

    let report = client(&server)
        .code_reuse(ANALYSIS_ID, SUB_ID, deadline())
        .await
        .unwrap()
        .unwrap();

    assert_eq!(report.gene_count, Some(json!(66)));
    assert_eq!(report.families.len(), 1);
    assert_eq!(report.extra.get("unique_gene_count"), Some(&json!(12)));
}

#[tokio::test]
async fn code_reuse_returns_none_on_409() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    mount_get(
        &server,
        &sub_path("code-reuse"),
        ResponseTemplate::new(409),
        1,
    )
    .await;

    let report = client(&server)
        .code_reuse(ANALYSIS_ID, SUB_ID, deadline())
        .await
        .unwrap();

    assert_eq!(report, None);
}

#[tokio::test]
async fn metadata_returns_object_as_sent() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    let body = json!({ "sha256": SHA256, "file_type": "pe", "product_name": "Example Product", "size_in_bytes": 838 });
    mount_get(
        &server,
        &sub_path("metadata"),
        ResponseTemplate::new(200).set_body_json(body),
        1,
    )
    .await;

    let metadata = client(&server)
        .metadata(ANALYSIS_ID, SUB_ID, deadline())
        .await
        .unwrap();

    let keys: Vec<&str> = metadata.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["sha256", "file_type", "product_name", "size_in_bytes"]
    );
    assert_eq!(metadata["product_name"], json!("Example Product"));
}

// === strings operation ===

fn strings_result_path() -> String {
    format!("/analyses/{ANALYSIS_ID}/sub-analyses/{SUB_ID}/strings/op-1")
}

async fn mount_strings_start(server: &MockServer, result_url: &str) {
    Mock::given(method("POST"))
        .and(path(api_path(&sub_path("strings"))))
        .and(bearer_token(TOKEN))
        .and(body_json(json!({})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "result_url": result_url })))
        .expect(1)
        .mount(server)
        .await;
}

#[tokio::test]
async fn strings_polled_through_202_until_succeeded() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    mount_strings_start(&server, &strings_result_path()).await;
    Mock::given(method("GET"))
        .and(path(api_path(&strings_result_path())))
        .respond_with(ResponseTemplate::new(202).set_body_json(json!({ "status": "in_progress" })))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    let done = json!({ "status": "succeeded", "result": { "strings": [
        { "string_value": "bad.example.net", "software_type": "malware", "tags": ["network"],
          "families": [{ "family_name": "ExampleFamily" }] },
        { "string_value": "GetProcAddress", "software_type": "common", "tags": [] }
    ]}});
    mount_get(
        &server,
        &strings_result_path(),
        ResponseTemplate::new(200).set_body_json(done),
        1,
    )
    .await;

    let strings = client(&server)
        .strings(ANALYSIS_ID, SUB_ID, Duration::from_millis(10), deadline())
        .await
        .unwrap();

    assert_eq!(strings.len(), 2);
    assert_eq!(strings[0].string_value.as_deref(), Some("bad.example.net"));
    assert_eq!(strings[0].tags, ["network"]);
    assert_eq!(strings[1].software_type.as_deref(), Some("common"));
}

#[tokio::test]
async fn strings_error_key_gives_invalid_response() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    mount_strings_start(&server, &strings_result_path()).await;
    let failed = json!({ "error": "Operation failed" });
    mount_get(
        &server,
        &strings_result_path(),
        ResponseTemplate::new(200).set_body_json(failed),
        1,
    )
    .await;

    let result = client(&server)
        .strings(ANALYSIS_ID, SUB_ID, Duration::from_millis(10), deadline())
        .await;

    assert!(
        matches!(
            result,
            Err(IntezerError::InvalidResponse {
                endpoint: "sub-analyses.strings",
                ..
            })
        ),
        "{result:?}"
    );
}

#[tokio::test]
async fn strings_poll_stops_at_deadline() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    mount_strings_start(&server, &strings_result_path()).await;
    let running = ResponseTemplate::new(202).set_body_json(json!({ "status": "in_progress" }));
    mount_get(&server, &strings_result_path(), running, 2..).await;

    let result = client(&server)
        .strings(
            ANALYSIS_ID,
            SUB_ID,
            Duration::from_millis(50),
            Instant::now() + Duration::from_secs(2),
        )
        .await;

    assert!(
        matches!(
            result,
            Err(IntezerError::DeadlineExceeded {
                endpoint: "sub-analyses.strings"
            })
        ),
        "{result:?}"
    );
}

#[tokio::test]
async fn strings_reject_result_url_outside_api() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    mount_strings_start(&server, "//evil.example/strings").await;

    let result = client(&server)
        .strings(ANALYSIS_ID, SUB_ID, Duration::from_millis(10), deadline())
        .await;

    assert!(
        matches!(result, Err(IntezerError::InvalidResponse { .. })),
        "{result:?}"
    );
}

// === GET /files/{sha256}/download ===

fn download_path() -> String {
    format!("/files/{SHA256}/download")
}

#[tokio::test]
async fn download_ignores_content_disposition() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    let sample: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    Mock::given(method("GET"))
        .and(path(api_path(&download_path())))
        .and(bearer_token(TOKEN))
        .and(body_json(json!({})))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("Content-Disposition", "inline; filename=../escaped.exe")
                .set_body_bytes(sample.clone()),
        )
        .expect(1)
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let dest = work.join(format!("{SHA256}.sample"));

    let written = client(&server)
        .download_file(SHA256, &dest, deadline())
        .await
        .unwrap();

    assert_eq!(written, sample.len() as u64);
    assert_eq!(std::fs::read(&dest).unwrap(), sample);
    assert!(!dir.path().join("escaped.exe").exists());
    assert_eq!(std::fs::read_dir(&work).unwrap().count(), 1);
}

#[tokio::test]
async fn download_over_cap_gives_response_too_large() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    mount_get(
        &server,
        &download_path(),
        ResponseTemplate::new(200).set_body_bytes(vec![7u8; 2048]),
        1,
    )
    .await;
    let mut settings = settings(&server);
    settings.max_response_bytes = 1024;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("sample.bin");

    let result = IntezerClient::new(settings)
        .unwrap()
        .download_file(SHA256, &dest, deadline())
        .await;

    assert!(
        matches!(
            result,
            Err(IntezerError::ResponseTooLarge {
                endpoint: "files.download",
                limit: 1024
            })
        ),
        "{result:?}"
    );
    assert!(!dest.exists());
}

#[tokio::test]
async fn download_returns_not_found_on_404() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    mount_get(&server, &download_path(), ResponseTemplate::new(404), 1).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("sample.bin");

    let result = client(&server)
        .download_file(SHA256, &dest, deadline())
        .await;

    assert!(
        matches!(
            result,
            Err(IntezerError::NotFound {
                endpoint: "files.download"
            })
        ),
        "{result:?}"
    );
    assert!(!dest.exists());
}

// === response size cap ===

#[tokio::test]
async fn json_response_over_cap_gives_response_too_large() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    let padding = "x".repeat(4096);
    let body = json!({ "result": analysis_json(), "padding": padding });
    mount_get(
        &server,
        &latest_path(),
        ResponseTemplate::new(200).set_body_json(body),
        1,
    )
    .await;
    let mut settings = settings(&server);
    settings.max_response_bytes = 1024;

    let result = IntezerClient::new(settings)
        .unwrap()
        .latest_analysis(SHA256, false, deadline())
        .await;

    assert!(
        matches!(
            result,
            Err(IntezerError::ResponseTooLarge { limit: 1024, .. })
        ),
        "{result:?}"
    );
}

/// A chunked body has no `Content-Length`, so only counting the chunks as
/// they arrive can stop it.
#[tokio::test]
async fn chunked_response_over_cap_is_cut() {
    let chunks = vec![
        vec![b' '; 600],
        vec![b' '; 600],
        b"{\"is_available\": true}".to_vec(),
    ];
    let base = start_chunked_server("200 OK", chunks).await;
    let mut settings = IntezerSettings::new(format!("{base}/api/"), Secret::new(API_KEY));
    settings.max_response_bytes = 1000;

    let result = IntezerClient::new(settings).unwrap().is_available().await;

    assert!(
        matches!(
            result,
            Err(IntezerError::ResponseTooLarge {
                endpoint: "is-available",
                limit: 1000
            })
        ),
        "{result:?}"
    );
}

// === secrets ===

/// Every error kind the client can return in these scenarios, printed with
/// `Debug` and `Display`, must not contain the API key or the token.
#[tokio::test]
async fn errors_never_contain_api_key_or_token() {
    let server = MockServer::start().await;
    mount_token(&server, 1..).await;
    mount_get(&server, &latest_path(), ResponseTemplate::new(401), 1..).await;
    mount_get(
        &server,
        &format!("/analyses/{ANALYSIS_ID}/iocs"),
        ResponseTemplate::new(500),
        1..,
    )
    .await;
    let echo = json!({ "error": "bad", "details": "echo" });
    mount_get(
        &server,
        &sub_path("metadata"),
        ResponseTemplate::new(400).set_body_json(echo),
        1..,
    )
    .await;
    let limited = ResponseTemplate::new(429).insert_header("Retry-After", "600");
    mount_get(
        &server,
        &format!("/analyses/{ANALYSIS_ID}/dynamic-ttps"),
        limited,
        1..,
    )
    .await;
    let client = client(&server);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = listener.local_addr().unwrap();
    drop(listener);
    let unreachable = IntezerClient::new(IntezerSettings::new(
        format!("http://{closed}/api/"),
        Secret::new(API_KEY),
    ))
    .unwrap();

    let errors = vec![
        client
            .latest_analysis(SHA256, false, deadline())
            .await
            .unwrap_err(),
        client.iocs(ANALYSIS_ID, deadline()).await.unwrap_err(),
        client
            .metadata(ANALYSIS_ID, SUB_ID, deadline())
            .await
            .unwrap_err(),
        client
            .dynamic_ttps(ANALYSIS_ID, deadline())
            .await
            .unwrap_err(),
        client
            .analysis(ANALYSIS_ID, Instant::now())
            .await
            .unwrap_err(),
        unreachable.iocs(ANALYSIS_ID, deadline()).await.unwrap_err(),
    ];

    for error in &errors {
        for printed in [format!("{error:?}"), format!("{error}")] {
            assert!(!printed.contains(API_KEY), "{printed}");
            assert!(!printed.contains(TOKEN), "{printed}");
        }
    }
}

/// Captures everything logged at any level by any crate while the client
/// fetches a token, gets a 401, renews it and retries a 5xx.
#[tokio::test]
async fn logs_never_contain_api_key_or_token() {
    let server = MockServer::start().await;
    mount_token(&server, 2).await;
    Mock::given(method("GET"))
        .and(path(api_path(&latest_path())))
        .respond_with(ResponseTemplate::new(401))
        .up_to_n_times(1)
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(api_path(&latest_path())))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(2)
        .expect(1)
        .mount(&server)
        .await;
    mount_get(
        &server,
        &latest_path(),
        ResponseTemplate::new(200).set_body_json(json!({ "result": analysis_json() })),
        1,
    )
    .await;
    let logs = CapturedLogs::default();
    let _guard = logs.capture();

    let result = client(&server)
        .latest_analysis(SHA256, false, deadline())
        .await;

    assert!(result.is_ok(), "{result:?}");
    let text = logs.text();
    assert!(text.contains("retrying Intezer request"), "{text}");
    assert!(text.contains("access token rejected"), "{text}");
    assert!(!text.contains(API_KEY), "{text}");
    assert!(!text.contains(TOKEN), "{text}");
}

#[tokio::test]
async fn current_quota_usage_reads_file_scans() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    Mock::given(method("GET"))
        .and(path(api_path("/current-quota-usage")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "result": {"file_scans": {"quota": 1000, "usage": 12, "type": "monthly"},
                       "endpoint_scans": {"quota": 100, "usage": 0, "type": "monthly"}}
        })))
        .expect(1)
        .mount(&server)
        .await;

    let usage = client(&server)
        .current_quota_usage(deadline())
        .await
        .unwrap();

    let scans = usage.file_scans.unwrap();
    assert_eq!(scans.remaining(), Some(988));
    assert_eq!(scans.period.as_deref(), Some("monthly"));
}
