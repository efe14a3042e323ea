//! The `serve` binary against an independent stand-in service server (the
//! Python one in tests/standin, written separately from the Rust
//! simulator) and the embedded Intezer simulator: every task is answered
//! exactly once, and neither API key appears in the logs or the results.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use intezer_dynamic::simulator::intezer::{DefaultOptions, IntezerBehaviour, IntezerSimulator};

/// Recognisable keys, searched for in everything the service wrote.
const INTEZER_KEY: &str = "intezer-key-MUST-NOT-LEAK-7f3a";
const AL_KEY: &str = "al-service-key-MUST-NOT-LEAK-91c2";

const SAMPLES: &[&str] = &[
    "elf_true",
    "elf_libxau.so",
    "pe_nsis_stub.exe",
    "pe_nsis_system.dll",
];

/// Longest time the stand-in may take to write its port file, and the
/// service to finish its tasks.
const STARTUP_LIMIT: Duration = Duration::from_secs(20);
const RUN_LIMIT: Duration = Duration::from_secs(90);

fn start_standin(dir: &Path, intezer_base_url: &str) -> Child {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/standin/al_service_server.py");
    let mut command = Command::new("python3");
    command
        .arg(script)
        .args(["--port", "0", "--port-file"])
        .arg(dir.join("port"))
        .arg("--report")
        .arg(dir.join("report.json"))
        .args([
            "--api-key",
            AL_KEY,
            "--max-long-poll",
            "1",
            "--log-level",
            "WARNING",
        ])
        .arg("--config")
        .arg(format!("base_url={intezer_base_url}"))
        .arg(format!("api_key={INTEZER_KEY}"))
        .arg("polling_period_in_seconds=1")
        .arg("--files");
    for sample in SAMPLES {
        command.arg(common::sample(sample));
    }
    command
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 runs the stand-in")
}

fn wait_for_port(path: &Path) -> u16 {
    let start = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Ok(port) = text.trim().parse() {
                return port;
            }
        }
        assert!(
            start.elapsed() < STARTUP_LIMIT,
            "the stand-in did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_standin_tasks_once_without_leaking_keys() {
    let intezer = IntezerSimulator::start(IntezerBehaviour::Default(DefaultOptions::default()), 0)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tasking = tempfile::tempdir().unwrap();
    let mut standin = start_standin(dir.path(), &intezer.base_url());
    let port = tokio::task::spawn_blocking({
        let path = dir.path().join("port");
        move || wait_for_port(&path)
    })
    .await
    .unwrap();

    let service = Command::new(common::binary())
        .args([
            "serve",
            "--concurrency",
            "3",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .env("SERVICE_API_HOST", format!("http://127.0.0.1:{port}"))
        .env("SERVICE_API_KEY", AL_KEY)
        .env("AL_SERVICE_TASK_LIMIT", SAMPLES.len().to_string())
        .env("TASK_REQUEST_TIMEOUT", "1")
        .env("TASKING_DIR", tasking.path())
        .env("HOSTNAME", "standin-test")
        .env("RUST_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let output = tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        let output = service.wait_with_output().expect("the service exits");
        assert!(start.elapsed() < RUN_LIMIT, "the service took too long");
        output
    })
    .await
    .unwrap();

    let _ = standin.kill();
    let _ = standin.wait();
    intezer.stop().await;
    let logs = String::from_utf8_lossy(&output.stderr).into_owned()
        + &String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "serve failed: {logs}");

    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
            .unwrap();
    assert_eq!(report["tasks_handed_out"], SAMPLES.len());
    assert_eq!(
        report["completions"].as_array().unwrap().len(),
        SAMPLES.len(),
        "{report:#}"
    );
    assert_eq!(report["lost"], serde_json::json!([]));
    assert_eq!(report["completed_twice"], serde_json::json!([]));
    assert_eq!(
        report["protocol_errors"],
        serde_json::json!([]),
        "{report:#}"
    );
    for completion in report["completions"].as_array().unwrap() {
        assert_eq!(completion["kind"], "Result", "{completion:#}");
    }

    assert!(!logs.is_empty());
    for key in [INTEZER_KEY, AL_KEY] {
        assert!(!logs.contains(key), "a key appears in the logs");
        assert!(
            !report.to_string().contains(key),
            "a key appears in a posted answer"
        );
    }
    assert!(
        std::fs::read_dir(tasking.path()).unwrap().next().is_none(),
        "working folders are removed"
    );
}
