//! The API keys never leave the process: `serve` runs with recognisable
//! Intezer and service-server keys, at TRACE level, in both log formats,
//! while both simulators inject faults that make it log warnings and post
//! errors. Neither key may appear in the logs, the posted results and
//! errors, or the metrics.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use intezer_dynamic::simulator::faults::FaultPlan;
use intezer_dynamic::simulator::intezer::{DefaultOptions, IntezerBehaviour, IntezerSimulator};
use intezer_dynamic::simulator::service_server::{
    ServiceServerOptions, ServiceServerSimulator, SimFile,
};

const INTEZER_KEY: &str = "intezer-LEAKCHECK-5e8f1c2a9b7d";
const AL_KEY: &str = "assemblyline-LEAKCHECK-4d3c2b1a0f9e";
const SAMPLES: &[&str] = &["elf_true", "elf_libxau.so", "pe_nsis_stub.exe"];

async fn check_run(log_format: &str) {
    let intezer = IntezerSimulator::start_with_faults(
        IntezerBehaviour::Default(DefaultOptions {
            api_key: Some(INTEZER_KEY.to_string()),
            polls_before_finished: 1,
            ..DefaultOptions::default()
        }),
        0,
        FaultPlan::parse(
            &[
                "get-access-token=500,first=2",
                "files.latest-analysis=401,first=1",
                "analyze=400",
            ],
            3,
        )
        .unwrap(),
    )
    .await
    .unwrap();
    let config = json!({
        "base_url": intezer.base_url(),
        "api_key": INTEZER_KEY,
        "polling_period_in_seconds": 1,
    });
    let options = ServiceServerOptions {
        api_key: AL_KEY.to_string(),
        files: SAMPLES
            .iter()
            .map(|name| SimFile {
                name: name.to_string(),
                bytes: std::fs::read(common::sample(name)).unwrap().into(),
                file_type: "executable/linux/elf64".to_string(),
            })
            .collect(),
        config_overrides: config.as_object().unwrap().clone(),
        faults: FaultPlan::parse(&["post-task=503,first=2"], 5).unwrap(),
        ..ServiceServerOptions::default()
    };
    let server = ServiceServerSimulator::start(options, 0).await.unwrap();
    let tasking = tempfile::tempdir().unwrap();
    let metrics_port = common::free_port();
    // TRACE logs fill a pipe long before the run ends, so they go to files.
    let log_dir = tempfile::tempdir().unwrap();
    let stderr_path = log_dir.path().join("stderr");
    let stdout_path = log_dir.path().join("stdout");

    let mut service = Command::new(common::binary())
        .args(["--log-format", log_format, "serve", "--concurrency", "2"])
        .arg("--metrics-addr")
        .arg(format!("127.0.0.1:{metrics_port}"))
        .env("SERVICE_API_HOST", server.base_url())
        .env("SERVICE_API_KEY", AL_KEY)
        .env("TASK_REQUEST_TIMEOUT", "1")
        .env("TASKING_DIR", tasking.path())
        .env("HOSTNAME", "leak-test")
        .env("RUST_LOG", "trace")
        .env_remove("AL_SERVICE_TASK_LIMIT")
        .stdout(Stdio::from(std::fs::File::create(&stdout_path).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(&stderr_path).unwrap()))
        .spawn()
        .expect("the binary runs");

    let report = server
        .wait_until_all_completed(Duration::from_secs(90))
        .await;
    assert_eq!(report.completions.len(), SAMPLES.len(), "{report:#?}");
    let metrics = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .expect("metrics answer")
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("intezer_dynamic_tasks_received_total"));

    let status = Command::new("kill")
        .args(["-TERM", &service.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || {
        common::wait_for_exit(&mut service, Duration::from_secs(60))
    })
    .await
    .unwrap();
    let logs = std::fs::read_to_string(&stderr_path).unwrap()
        + &std::fs::read_to_string(&stdout_path).unwrap();
    assert!(exit.success(), "exit {exit:?}");
    assert!(!intezer.injected_faults().is_empty());
    assert!(!server.injected_faults().is_empty());
    assert!(
        report
            .completions
            .iter()
            .any(|c| c.body.to_string().contains("submitting")),
        "no error was posted for a rejected upload: {report:#?}"
    );
    // TRACE logs are long; check they really cover the calls.
    assert!(logs.contains("get-access-token") || logs.contains("access token"));

    let answers = serde_json::to_string(&report).unwrap();
    for key in [INTEZER_KEY, AL_KEY] {
        assert!(
            !logs.contains(key),
            "{key} appears in the {log_format} logs"
        );
        assert!(!answers.contains(key), "{key} appears in a posted answer");
        assert!(!metrics.contains(key), "{key} appears in the metrics");
    }
    intezer.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_absent_with_text_logs() {
    check_run("text").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_absent_with_json_logs() {
    check_run("json").await;
}
