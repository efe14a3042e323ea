//! Fixtures of the Intezer client tests: a wiremock server on
//! 127.0.0.1 that issues access tokens, and client settings with short
//! timeouts and backoffs so that retries take milliseconds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use intezer_dynamic::config::Secret;
use intezer_dynamic::intezer::{IntezerClient, IntezerSettings, RetryPolicy};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::Instant;
use wiremock::matchers::{body_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate, Times};

pub const API_KEY: &str = "api-key-00000000-1111-2222-3333-444444444444";
pub const TOKEN: &str = "bearer-token-fake-eyJhbGciOi";
pub const SHA256: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
pub const ANALYSIS_ID: &str = "6f1e2d3c-0000-4000-8000-00000000a001";
pub const SUB_ID: &str = "a0000000-0000-4000-8000-000000000002";

/// Path of an endpoint on the mock server, below `/api/v2-0`.
pub fn api_path(endpoint_path: &str) -> String {
    format!("/api/v2-0{endpoint_path}")
}

/// Settings for a client of `server`: 2 s request timeout, three attempts,
/// and backoffs of a few milliseconds.
pub fn settings(server: &MockServer) -> IntezerSettings {
    let mut settings = IntezerSettings::new(format!("{}/api", server.uri()), Secret::new(API_KEY));
    settings.request_timeout = Duration::from_secs(2);
    settings.connect_timeout = Duration::from_secs(2);
    settings.retry = RetryPolicy {
        retry_forever: false,
        max_attempts: 3,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
    };
    settings
}

pub fn client(server: &MockServer) -> IntezerClient {
    IntezerClient::new(settings(server)).expect("valid test settings")
}

/// Returns a deadline far enough away that no test reaches it by accident.
pub fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

pub fn epoch_seconds_from_now(seconds: f64) -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        + seconds
}

/// Mounts `POST /get-access-token`, which accepts only [`API_KEY`] and
/// returns [`TOKEN`] valid for an hour, and expects `calls` calls.
pub async fn mount_token(server: &MockServer, calls: impl Into<Times>) {
    mount_token_expiring_in(server, 3600.0, calls).await;
}

pub async fn mount_token_expiring_in(server: &MockServer, seconds: f64, calls: impl Into<Times>) {
    Mock::given(method("POST"))
        .and(path(api_path("/get-access-token")))
        .and(body_json(json!({ "api_key": API_KEY })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "result": TOKEN,
            "expire_at": epoch_seconds_from_now(seconds),
        })))
        .expect(calls)
        .named("get-access-token")
        .mount(server)
        .await;
}

/// A finished analysis object as `GET /files/{sha256}` returns it.
pub fn analysis_json() -> serde_json::Value {
    json!({
        "analysis_id": ANALYSIS_ID,
        "analysis_time": "Wed, 01 Jan 2025 12:00:00 GMT",
        "analysis_url": format!("https://analyze.intezer.com/analyses/{ANALYSIS_ID}"),
        "family_name": "ExampleFamily",
        "is_private": true,
        "sha256": SHA256,
        "sub_verdict": "known_malicious",
        "verdict": "malicious"
    })
}

/// Starts a one-shot HTTP server on 127.0.0.1 that responds to the first
/// request with `status_line` and a chunked body of `chunks`, which has no
/// `Content-Length`. Returns its base URL.
pub async fn start_chunked_server(status_line: &'static str, chunks: Vec<Vec<u8>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let Ok((mut socket, _)) = listener.accept().await else {
            return;
        };
        let mut request = Vec::new();
        let mut buffer = [0u8; 1024];
        while !request.windows(4).any(|window| window == b"\r\n\r\n") {
            match socket.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => request.extend_from_slice(&buffer[..n]),
            }
        }
        let head = format!("HTTP/1.1 {status_line}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
        let _ = socket.write_all(head.as_bytes()).await;
        for chunk in chunks {
            let _ = socket
                .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .await;
            let _ = socket.write_all(&chunk).await;
            let _ = socket.write_all(b"\r\n").await;
        }
        let _ = socket.write_all(b"0\r\n\r\n").await;
        let _ = socket.shutdown().await;
    });
    format!("http://{address}")
}
