//! TLS certificate verification of both clients against an HTTPS server on
//! 127.0.0.1 whose certificate is signed by a CA made for each test: the
//! Intezer client through the configuration keys `tls_verify` and
//! `ca_cert_path`, the service-server client through
//! `SERVICE_SERVER_ROOT_CA_PATH`. Also the Intezer response size cap,
//! `max_response_mb`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::intezer_mock::{api_path, deadline, mount_token, API_KEY, SHA256};
use intezer_dynamic::assemblyline::{Identity, ServiceServerClient, ServiceServerError};
use intezer_dynamic::config::{Secret, ServiceConfig};
use intezer_dynamic::intezer::{IntezerClient, IntezerError};
use intezer_dynamic::runtime::intezer_client;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// An HTTPS server that responds to every request with one JSON body, and the
/// PEM of the CA that signed its certificate.
struct HttpsServer {
    base_url: String,
    ca_pem: String,
}

/// Creates a CA and a certificate for 127.0.0.1 signed by it, then serves
/// `body` over TLS to every request until the test's runtime ends.
/// Handshakes the client rejects end the connection and nothing else.
async fn start_https_server(body: serde_json::Value) -> HttpsServer {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "intezer-dynamic test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate().unwrap();
    let server_params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![server_cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        )
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let body = body.to_string();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let body = body.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let mut request = Vec::new();
                let mut buffer = [0u8; 1024];
                while !request.windows(4).any(|window| window == b"\r\n\r\n") {
                    match tls.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(read) => request.extend_from_slice(&buffer[..read]),
                    }
                }
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });

    HttpsServer {
        base_url: format!("https://127.0.0.1:{}/api/", address.port()),
        ca_pem: ca_cert.pem(),
    }
}

/// Builds the service configuration for an Intezer server at `base_url`,
/// with a real-looking key and a few attempts instead of endless retries.
fn config(base_url: &str) -> ServiceConfig {
    ServiceConfig {
        base_url: base_url.to_string(),
        api_key: Secret::new(API_KEY),
        retry_forever: false,
        ..ServiceConfig::default()
    }
}

async fn available_over_tls(config: &ServiceConfig) -> Result<bool, IntezerError> {
    let client = intezer_client(config)?;
    tokio::time::timeout(Duration::from_secs(10), client.is_available())
        .await
        .expect("is-available responds within 10 s")
}

#[tokio::test]
async fn private_ca_rejected_by_default() {
    let server = start_https_server(json!({ "is_available": true })).await;

    let result = available_over_tls(&config(&server.base_url)).await;

    let Err(IntezerError::Transport { message, .. }) = &result else {
        panic!("expected a transport error, got {result:?}");
    };
    assert!(message.contains("certificate"), "{message}");
}

#[tokio::test]
async fn ca_cert_path_trusts_private_ca() {
    let server = start_https_server(json!({ "is_available": true })).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("intezer-ca.pem");
    std::fs::write(&ca_file, &server.ca_pem).unwrap();
    let mut config = config(&server.base_url);
    config.ca_cert_path = ca_file.display().to_string();

    let result = available_over_tls(&config).await;

    assert!(matches!(result, Ok(true)), "{result:?}");
}

#[tokio::test]
async fn tls_verify_false_accepts_private_ca() {
    let server = start_https_server(json!({ "is_available": true })).await;
    let mut config = config(&server.base_url);
    config.tls_verify = false;

    let result = available_over_tls(&config).await;

    assert!(matches!(result, Ok(true)), "{result:?}");
}

/// A CA file for another server's CA does not make this server trusted.
#[tokio::test]
async fn ca_cert_path_of_other_ca_rejected() {
    let server = start_https_server(json!({ "is_available": true })).await;
    let other = start_https_server(json!({ "is_available": true })).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("other-ca.pem");
    std::fs::write(&ca_file, &other.ca_pem).unwrap();
    let mut config = config(&server.base_url);
    config.ca_cert_path = ca_file.display().to_string();

    let result = available_over_tls(&config).await;

    assert!(
        matches!(result, Err(IntezerError::Transport { .. })),
        "{result:?}"
    );
}

#[test]
fn missing_ca_cert_path_names_key_and_path() {
    let mut config = config("https://127.0.0.1:9/api/");
    config.ca_cert_path = "/nonexistent/intezer-ca.pem".to_string();

    let message = intezer_client(&config).unwrap_err().to_string();

    assert!(message.contains("ca_cert_path"), "{message}");
    assert!(message.contains("/nonexistent/intezer-ca.pem"), "{message}");
}

#[test]
fn non_pem_ca_cert_path_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("empty.pem", "".to_string()),
        ("text.pem", "this is not a certificate\n".to_string()),
        (
            "bad-base64.pem",
            "-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n"
                .to_string(),
        ),
        (
            "not-der.pem",
            "-----BEGIN CERTIFICATE-----\nAAAAAAAA\n-----END CERTIFICATE-----\n".to_string(),
        ),
    ];
    for (name, contents) in cases {
        let file = dir.path().join(name);
        std::fs::write(&file, contents).unwrap();
        let mut config = config("https://127.0.0.1:9/api/");
        config.ca_cert_path = file.display().to_string();

        let message = intezer_client(&config).unwrap_err().to_string();

        assert!(message.contains("ca_cert_path"), "{name}: {message}");
        assert!(
            message.contains(&file.display().to_string()),
            "{name}: {message}"
        );
    }
}

/// A lookup response larger than `max_response_mb` fails with an error that
/// names the cap in bytes and the key that raises it.
#[tokio::test]
async fn response_over_max_response_mb_names_cap() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    let padding = "x".repeat(1024 * 1024);
    Mock::given(method("GET"))
        .and(path(api_path(&format!("/files/{SHA256}"))))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "result": { "analysis_id": "a1", "padding": padding },
            "status": "succeeded"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let mut config = config(&format!("{}/api/", server.uri()));
    config.max_response_mb = 1;
    let client: IntezerClient = intezer_client(&config).unwrap();

    let result = client.latest_analysis(SHA256, false, deadline()).await;

    let Err(err @ IntezerError::ResponseTooLarge { limit, .. }) = &result else {
        panic!("expected ResponseTooLarge, got {result:?}");
    };
    assert_eq!(*limit, 1024 * 1024);
    let message = err.to_string();
    assert!(message.contains("1048576 bytes"), "{message}");
    assert!(message.contains("max_response_mb"), "{message}");
}

/// The same response fits under the default cap of 64 MiB.
#[tokio::test]
async fn response_under_default_cap_is_read() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    let padding = "x".repeat(1024 * 1024);
    Mock::given(method("GET"))
        .and(path(api_path(&format!("/files/{SHA256}"))))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "result": { "analysis_id": "a1", "padding": padding },
            "status": "succeeded"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let client = intezer_client(&config(&format!("{}/api/", server.uri()))).unwrap();

    let analysis = client
        .latest_analysis(SHA256, false, deadline())
        .await
        .unwrap();

    assert_eq!(analysis.analysis_id, "a1");
}

// === service server ===

fn identity() -> Identity {
    Identity {
        service_name: "IntezerDynamic".to_string(),
        service_version: "4.0.0.dev0".to_string(),
        tool_version: "v2-0".to_string(),
    }
}

/// Polls once for a task, giving up on connection failures after 2 s.
async fn poll_task(
    client: &ServiceServerClient,
) -> Result<Option<serde_json::Value>, ServiceServerError> {
    let stop = tokio_util::sync::CancellationToken::new();
    let cancel = stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        cancel.cancel();
    });
    client.get_task("container-1", &stop).await
}

#[tokio::test]
async fn service_server_with_root_ca_path_is_trusted() {
    let server = start_https_server(json!({ "api_response": { "task": false } })).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("al_root-ca.crt");
    std::fs::write(&ca_file, &server.ca_pem).unwrap();
    let host = server.base_url.trim_end_matches("/api/").to_string();
    let env = common::environment(&[
        ("SERVICE_API_HOST", host),
        ("SERVICE_SERVER_ROOT_CA_PATH", ca_file.display().to_string()),
    ]);
    let client = ServiceServerClient::new(&env, identity()).unwrap();

    let task = poll_task(&client).await;

    assert!(matches!(task, Ok(None)), "{task:?}");
}

#[tokio::test]
async fn service_server_without_root_ca_path_is_rejected() {
    let server = start_https_server(json!({ "api_response": { "task": false } })).await;
    let host = server.base_url.trim_end_matches("/api/").to_string();
    let env = common::environment(&[("SERVICE_API_HOST", host)]);
    let client = ServiceServerClient::new(&env, identity()).unwrap();

    let task = poll_task(&client).await;

    let Err(ServiceServerError::Unreachable { message, .. }) = &task else {
        panic!("expected an unreachable server, got {task:?}");
    };
    assert!(message.contains("certificate"), "{message}");
}

#[test]
fn non_pem_root_ca_path_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("text.crt", "this is not a certificate\n"),
        (
            "not-der.crt",
            "-----BEGIN CERTIFICATE-----\nAAAAAAAA\n-----END CERTIFICATE-----\n",
        ),
    ];
    for (name, contents) in cases {
        let file = dir.path().join(name);
        std::fs::write(&file, contents).unwrap();
        let env = common::environment(&[
            ("SERVICE_API_HOST", "https://127.0.0.1:9".to_string()),
            ("SERVICE_SERVER_ROOT_CA_PATH", file.display().to_string()),
        ]);

        let Err(err) = ServiceServerClient::new(&env, identity()) else {
            panic!("{name}: the client was built");
        };

        let message = err.to_string();
        assert!(
            message.contains("SERVICE_SERVER_ROOT_CA_PATH"),
            "{name}: {message}"
        );
        assert!(
            message.contains(&file.display().to_string()),
            "{name}: {message}"
        );
    }
}
