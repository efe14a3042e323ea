//! The binary's commands, run as a user would run them.

mod common;

use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(common::binary())
        .args(args)
        .env_remove("INTEZER_API_KEY")
        .env_remove("RUST_LOG")
        .output()
        .expect("the binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn every_command_has_help() {
    for command in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["register", "--help"],
        vec!["scan", "--help"],
        vec!["simulate", "--help"],
        vec!["simulate", "intezer", "--help"],
        vec!["simulate", "service-server", "--help"],
        vec!["demo", "--help"],
        vec!["healthcheck", "--help"],
    ] {
        let output = run(&command);
        assert!(
            output.status.success(),
            "{command:?} failed: {}",
            stderr(&output)
        );
        assert!(!output.stdout.is_empty(), "{command:?} printed no help");
    }
}

#[test]
fn unknown_set_key_exits_2_naming_key() {
    let sample = common::sample("elf_true");
    let output = run(&[
        "scan",
        "--simulator",
        "--set",
        "polling_period=3",
        sample.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("polling_period"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn wrong_set_type_exits_2_naming_key_and_type() {
    let sample = common::sample("elf_true");
    let output = run(&[
        "scan",
        "--simulator",
        "--set",
        "private_only=maybe",
        sample.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(message.contains("private_only"), "{message}");
    assert!(message.contains("boolean"), "{message}");
}

#[test]
fn unknown_param_exits_2() {
    let sample = common::sample("elf_true");
    let output = run(&[
        "scan",
        "--simulator",
        "--param",
        "submit=true",
        sample.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("submit"));
}

#[test]
fn scan_without_api_key_exits_2_saying_where_to_set_it() {
    let sample = common::sample("elf_true");
    let output = run(&[
        "scan",
        "--base-url",
        "http://127.0.0.1:9/api/",
        sample.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("api_key"), "{}", stderr(&output));
}

#[test]
fn scan_missing_file_exits_2_naming_it() {
    let output = run(&["scan", "--simulator", "/nonexistent/sample.exe"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("/nonexistent/sample.exe"));
}

/// `scan --simulator` on a real ELF and a real PE writes one result JSON
/// each and prints one line per file.
#[test]
fn scan_simulator_writes_result_json() {
    let out = tempfile::tempdir().unwrap();
    let files = [
        common::sample("elf_true"),
        common::sample("pe_nsis_stub.exe"),
    ];
    let output = run(&[
        "scan",
        "--simulator",
        "--output-dir",
        out.path().to_str().unwrap(),
        files[0].to_str().unwrap(),
        files[1].to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    for file in &files {
        let sha256 = common::sha256_hex(&std::fs::read(file).unwrap());
        let path = out.path().join(format!("{sha256}.result.json"));
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(json["sha256"], sha256.as_str());
        assert_eq!(json["response"]["service_name"], "IntezerDynamic");
        assert!(stdout.contains(&sha256));
    }
}

/// `scan` with certificate verification turned off warns when it starts,
/// at the default log level.
#[test]
fn scan_with_tls_verify_off_warns() {
    let sample = common::sample("elf_true");
    let output = run(&[
        "scan",
        "--simulator",
        "--set",
        "tls_verify=false",
        sample.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(message.contains("WARN"), "{message}");
    assert!(
        message.contains("TLS certificate verification is off"),
        "{message}"
    );
}

#[test]
fn scan_with_zero_max_response_mb_exits_2() {
    let sample = common::sample("elf_true");
    let output = run(&[
        "scan",
        "--simulator",
        "--set",
        "max_response_mb=0",
        sample.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("max_response_mb"));
}

/// The demo runs the service over real HTTP against both simulators and
/// exits 0 when every task was answered exactly once.
#[test]
fn demo_answers_every_task_once() {
    let out = tempfile::tempdir().unwrap();
    let files = [
        common::sample("elf_true"),
        common::sample("elf_libxau.so"),
        common::sample("pe_nsis_stub.exe"),
    ];
    let output = run(&[
        "demo",
        "--output-dir",
        out.path().to_str().unwrap(),
        files[0].to_str().unwrap(),
        files[1].to_str().unwrap(),
        files[2].to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        stderr(&output)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("3 tasks handed out, 3 answered, 0 lost, 0 answered twice"),
        "{stdout}"
    );
    let written = std::fs::read_dir(out.path()).unwrap().count();
    assert_eq!(written, 3);
}

/// `serve` with the manifest's placeholder key still in AL's configuration
/// exits non-zero before taking a task, saying where to set the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_without_api_key_exits_before_tasks() {
    use intezer_dynamic::simulator::service_server::{
        ServiceServerOptions, ServiceServerSimulator, SimFile,
    };

    let file = SimFile {
        name: "true".into(),
        bytes: std::fs::read(common::sample("elf_true")).unwrap().into(),
        file_type: "executable/linux/pie64".into(),
    };
    let server = ServiceServerSimulator::start(
        ServiceServerOptions {
            files: vec![file],
            ..Default::default()
        },
        0,
    )
    .await
    .unwrap();
    let host = server.base_url();

    let output = tokio::task::spawn_blocking(move || {
        Command::new(common::binary())
            .args(["serve", "--metrics-addr", "127.0.0.1:0"])
            .env("SERVICE_API_HOST", host)
            .env("TASK_REQUEST_TIMEOUT", "0.2")
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    })
    .await
    .unwrap();

    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(message.contains("Administration > Services"), "{message}");
    assert!(message.contains("--set api_key"), "{message}");
    assert_eq!(server.report().tasks_handed_out, 0);
    server.stop().await;
}

#[test]
fn scan_format_tree_lists_sections() {
    let sample = common::sample("elf_libxau.so");
    let output = run(&[
        "scan",
        "--simulator",
        "--format",
        "tree",
        "--set",
        "polling_period_in_seconds=1",
        sample.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    for title in [
        "Intezer analysis report",
        "Signatures",
        "Subanalysis report for",
        "Spawned Process Tree",
    ] {
        assert!(stdout.contains(title), "tree lacks {title}: {stdout}");
    }
    assert!(stdout.contains("tag network.dynamic.ip"), "{stdout}");
    assert!(stdout.contains("extracted "), "{stdout}");
}

#[test]
fn scan_format_json_prints_result() {
    let sample = common::sample("elf_true");
    let output = run(&[
        "scan",
        "--simulator",
        "--format",
        "json",
        "--set",
        "polling_period_in_seconds=1",
        sample.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let json: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("stdout is one JSON document");
    assert_eq!(json["response"]["service_name"], "IntezerDynamic");
}

#[test]
fn version_prints_version_and_commit() {
    let output = run(&["--version"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let printed = String::from_utf8_lossy(&output.stdout).trim().to_string();

    let commit = env!("INTEZER_DYNAMIC_GIT_COMMIT");
    assert_eq!(
        printed,
        format!(
            "intezer-dynamic {} (commit {commit})",
            env!("CARGO_PKG_VERSION")
        )
    );
    assert!(!commit.is_empty());

    // A commit read from git at build time is the checkout's HEAD.
    if env!("INTEZER_DYNAMIC_GIT_COMMIT_SOURCE") == "git" {
        let head = std::process::Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("git ran at build time, so it runs now");
        assert_eq!(String::from_utf8_lossy(&head.stdout).trim(), commit);
    }
}

#[test]
fn log_format_env_selects_json() {
    let sample = common::sample("elf_true");
    let output = Command::new(common::binary())
        .args(["scan", "--simulator", "--format", "line"])
        .arg(&sample)
        .env_remove("INTEZER_API_KEY")
        .env("RUST_LOG", "info")
        .env("LOG_FORMAT", "json")
        .output()
        .expect("the binary runs");
    assert!(output.status.success(), "{}", stderr(&output));

    let logs = stderr(&output);
    assert!(logs.lines().count() > 0, "no log lines with RUST_LOG=info");
    for line in logs.lines() {
        let parsed: Result<serde_json::Value, _> = serde_json::from_str(line);
        assert!(parsed.is_ok(), "not a JSON log line: {line}");
    }
}
