//! A real `redis-server` (Debian's `redis-server` package) on a free
//! 127.0.0.1 port, without persistence, in a temporary folder. Shared by the
//! shared-quota tests and the `redis_quota` benchmark.
//!
//! When the binary is missing, [`RedisServer::start`] prints why and
//! returns `None` so the caller can skip, except under CI (`CI=true`),
//! where a missing binary fails the test.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Maximum wait for a started server to accept connections.
const START_LIMIT: Duration = Duration::from_secs(10);

/// A running `redis-server`, killed when dropped.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    extra_args: Vec<String>,
    tls: bool,
}

impl RedisServer {
    /// Starts a plain server, or returns `None` when it cannot run here.
    pub fn start() -> Option<RedisServer> {
        RedisServer::start_with(&[], false)
    }

    /// Starts a server with `extra_args` (such as `--requirepass`). With
    /// `tls`, the port serves TLS only; `extra_args` must name the
    /// certificate files.
    pub fn start_with(extra_args: &[String], tls: bool) -> Option<RedisServer> {
        if !redis_server_installed() {
            let message = "redis-server is not installed (apt-get install -y redis-server)";
            if std::env::var("CI").is_ok_and(|value| value == "true") {
                panic!("{message}; CI must run the shared-quota tests");
            }
            eprintln!("skipped: {message}");
            return None;
        }
        let mut server = RedisServer {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().expect("a temporary folder"),
            extra_args: extra_args.to_vec(),
            tls,
        };
        server.spawn();
        Some(server)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Returns `redis://127.0.0.1:<port>`, or `rediss://` for TLS.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, empty, as after a crash of
    /// a Redis without persistence.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn spawn(&mut self) {
        let port = self.port.to_string();
        let mut command = Command::new("redis-server");
        if self.tls {
            command.args(["--port", "0", "--tls-port", &port]);
        } else {
            command.args(["--port", &port]);
        }
        command
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra_args)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = command.spawn().expect("redis-server starts");
        self.child = Some(child);
        wait_until_listening(self.port);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn redis_server_installed() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Returns a loopback port that was free a moment ago, for a server a test
/// starts as a separate process.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_until_listening(port: u16) {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let started = Instant::now();
    while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
        assert!(
            started.elapsed() < START_LIMIT,
            "redis-server did not listen on {address} within {START_LIMIT:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Writes a test CA and a server certificate for 127.0.0.1 into `dir` with
/// the `openssl` command, and returns (CA, certificate, key) paths. Returns
/// `None`, after printing why, when `openssl` is missing.
pub fn make_test_certificates(dir: &Path) -> Option<(PathBuf, PathBuf, PathBuf)> {
    let found = Command::new("openssl")
        .arg("version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !found {
        eprintln!("skipped: the openssl command is not installed");
        return None;
    }

    let ca_key = dir.join("ca.key");
    let ca = dir.join("ca.pem");
    let key = dir.join("server.key");
    let request = dir.join("server.csr");
    let certificate = dir.join("server.pem");
    let extensions = dir.join("server.ext");
    std::fs::write(
        &extensions,
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();

    // A self-signed CA, a key and request for 127.0.0.1, and the request
    // signed by the CA.
    let steps: Vec<Vec<String>> = vec![
        vec![
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=intezer-dynamic test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
            "-keyout",
        ]
        .into_iter()
        .map(String::from)
        .chain([path_text(&ca_key), "-out".to_string(), path_text(&ca)])
        .collect(),
        vec![
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
        ]
        .into_iter()
        .map(String::from)
        .chain([path_text(&key), "-out".to_string(), path_text(&request)])
        .collect(),
        vec!["x509", "-req", "-days", "1", "-set_serial", "2", "-in"]
            .into_iter()
            .map(String::from)
            .chain([
                path_text(&request),
                "-CA".to_string(),
                path_text(&ca),
                "-CAkey".to_string(),
                path_text(&ca_key),
                "-extfile".to_string(),
                path_text(&extensions),
                "-out".to_string(),
                path_text(&certificate),
            ])
            .collect(),
    ];
    for args in steps {
        let output = Command::new("openssl").args(&args).output().unwrap();
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Some((ca, certificate, key))
}

fn path_text(path: &Path) -> String {
    path.display().to_string()
}
