//! `intezer-dynamic healthcheck`, run as the container's probe runs it.
//! The targets are the service-server simulator, a server that reports
//! itself down, a slow one, an HTTPS server with its own CA, a closed port
//! and broken settings. The HTTPS server is `openssl s_server`, so
//! `openssl` must be on PATH.

mod common;

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use intezer_dynamic::simulator::service_server::{ServiceServerOptions, ServiceServerSimulator};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Runs `healthcheck` with only `env` in its environment, off the async
/// runtime so the server under test keeps responding.
async fn healthcheck(env: Vec<(&'static str, String)>, extra_args: &[&str]) -> Output {
    let args: Vec<String> = extra_args.iter().map(|arg| arg.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(common::binary())
            .arg("healthcheck")
            .args(&args)
            .env_clear()
            .envs(env)
            .output()
            .expect("the binary runs")
    })
    .await
    .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Returns a loopback port that nothing listens on.
fn closed_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    listener.local_addr().unwrap().port()
}

/// Asserts exit status 1 and exactly one line on standard error.
fn assert_not_live(output: &Output) -> String {
    let message = stderr(output);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert_eq!(message.lines().count(), 1, "{message:?}");
    message
}

#[tokio::test(flavor = "multi_thread")]
async fn simulator_is_live() {
    let server = ServiceServerSimulator::start(ServiceServerOptions::default(), 0)
        .await
        .unwrap();

    let output = healthcheck(vec![("SERVICE_API_HOST", server.base_url())], &[]).await;

    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("{}/healthz/live", server.base_url())),
        "{stdout}"
    );
    assert!(output.stderr.is_empty(), "{}", stderr(&output));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn closed_port_is_not_live() {
    let host = format!("http://127.0.0.1:{}", closed_port());

    let output = healthcheck(vec![("SERVICE_API_HOST", host.clone())], &[]).await;

    let message = assert_not_live(&output);
    assert!(
        message.contains(&format!("{host}/healthz/live")),
        "{message}"
    );
    assert!(message.contains("unreachable"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn server_error_status_is_not_live() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/healthz/live"))
        .respond_with(ResponseTemplate::new(503).set_body_string("FAIL\n"))
        .expect(1)
        .mount(&server)
        .await;

    let output = healthcheck(vec![("SERVICE_API_HOST", server.uri())], &[]).await;

    let message = assert_not_live(&output);
    assert!(message.contains("503"), "{message}");
    assert!(message.contains("FAIL"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_server_times_out() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/healthz/live"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(30)))
        .mount(&server)
        .await;

    let output = healthcheck(
        vec![("SERVICE_API_HOST", server.uri())],
        &["--timeout", "0.5"],
    )
    .await;

    let message = assert_not_live(&output);
    assert!(message.contains("timed out"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_host_exits_1_naming_variable() {
    let output = healthcheck(
        vec![("SERVICE_API_HOST", "al-service-server".to_string())],
        &[],
    )
    .await;

    let message = assert_not_live(&output);
    assert!(message.contains("SERVICE_API_HOST"), "{message}");
    assert!(message.contains("al-service-server"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_root_ca_exits_1_naming_path() {
    let host = format!("https://127.0.0.1:{}", closed_port());
    let ca_path = "/nonexistent/al_root-ca.crt".to_string();

    let output = healthcheck(
        vec![
            ("SERVICE_API_HOST", host),
            ("SERVICE_SERVER_ROOT_CA_PATH", ca_path.clone()),
        ],
        &[],
    )
    .await;

    let message = assert_not_live(&output);
    assert!(message.contains("SERVICE_SERVER_ROOT_CA_PATH"), "{message}");
    assert!(message.contains(&ca_path), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_in_host_are_not_printed() {
    let host = format!("http://probe:s3cret@127.0.0.1:{}", closed_port());

    let output = healthcheck(vec![("SERVICE_API_HOST", host)], &[]).await;

    let message = assert_not_live(&output);
    assert!(!message.contains("s3cret"), "{message}");
}

// === HTTPS with AL's own CA ===

/// An `openssl s_server` on 127.0.0.1 that serves `healthz/live` over
/// HTTPS with a certificate from a CA made for the test. Dropping it stops
/// the server.
struct TlsServer {
    child: Child,
    port: u16,
    ca_path: PathBuf,
    _folder: tempfile::TempDir,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs openssl with the space-separated `args` in `folder` and panics
/// with its output on failure.
fn openssl(folder: &Path, args: &str) {
    let output = Command::new("openssl")
        .args(args.split_whitespace())
        .current_dir(folder)
        .output()
        .expect("openssl is on PATH");
    assert!(
        output.status.success(),
        "openssl {args} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Creates a CA and a certificate for IP 127.0.0.1 signed by it, then
/// starts the server and waits until it accepts connections.
fn start_tls_server() -> TlsServer {
    let folder = tempfile::tempdir().unwrap();
    let dir = folder.path();
    let new_key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    openssl(
        dir,
        &format!("req -x509 {new_key} -keyout ca.key -out ca.pem -days 2 -subj /CN=test-CA"),
    );
    openssl(
        dir,
        &format!("req {new_key} -keyout server.key -out server.csr -subj /CN=127.0.0.1"),
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        dir,
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
         -out server.pem -days 2 -extfile san.ext",
    );
    let www = dir.join("www");
    std::fs::create_dir_all(www.join("healthz")).unwrap();
    std::fs::write(www.join("healthz/live"), "OK\n").unwrap();

    let port = closed_port();
    let child = Command::new("openssl")
        .args(["s_server", "-quiet", "-WWW"])
        .arg("-accept")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(dir.join("server.pem"))
        .arg("-key")
        .arg(dir.join("server.key"))
        .current_dir(&www)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_server starts");
    let server = TlsServer {
        child,
        port,
        ca_path: dir.join("ca.pem"),
        _folder: folder,
    };

    let give_up = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
        assert!(
            Instant::now() < give_up,
            "openssl s_server did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    server
}

#[tokio::test(flavor = "multi_thread")]
async fn https_trusts_root_ca_path() {
    let server = start_tls_server();
    let host = format!("https://127.0.0.1:{}", server.port);

    let output = healthcheck(
        vec![
            ("SERVICE_API_HOST", host),
            (
                "SERVICE_SERVER_ROOT_CA_PATH",
                server.ca_path.display().to_string(),
            ),
        ],
        &[],
    )
    .await;

    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

#[tokio::test(flavor = "multi_thread")]
async fn https_without_ca_rejects_certificate() {
    let server = start_tls_server();
    let host = format!("https://127.0.0.1:{}", server.port);

    // With no SERVICE_SERVER_ROOT_CA_PATH, only the built-in public roots
    // are trusted (AL's CA path does not exist on a test machine).
    let output = healthcheck(vec![("SERVICE_API_HOST", host)], &[]).await;

    let message = assert_not_live(&output);
    assert!(message.contains("certificate"), "{message}");
}
