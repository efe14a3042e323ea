//! Graceful shutdown of the `serve` binary under load: SIGTERM or SIGINT
//! while tasks are in flight stops the polling, every task already taken
//! (including one a poll in flight returns) is answered once, the working
//! folders are removed, and the process exits 0.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use intezer_dynamic::simulator::intezer::{DefaultOptions, IntezerBehaviour, IntezerSimulator};
use intezer_dynamic::simulator::service_server::{
    ServiceServerOptions, ServiceServerSimulator, SimFile,
};

const TASKS: usize = 60;

async fn stop_mid_load(signal: &'static str) {
    // Slow Intezer answers keep many tasks in flight when the signal comes.
    let intezer = IntezerSimulator::start(
        IntezerBehaviour::Default(DefaultOptions {
            latency: Duration::from_millis(150),
            polls_before_finished: 1,
            ..DefaultOptions::default()
        }),
        0,
    )
    .await
    .unwrap();
    let bytes = std::fs::read(common::sample("elf_true")).unwrap();
    let files = (0..TASKS)
        .map(|index| {
            // Distinct files, so no lookup is shared or cached.
            let mut content = bytes.clone();
            content.extend_from_slice(format!("shutdown-{index}").as_bytes());
            SimFile {
                name: format!("file-{index}"),
                bytes: content.into(),
                file_type: "executable/linux/elf64".to_string(),
            }
        })
        .collect();
    let config = json!({
        "base_url": intezer.base_url(),
        "api_key": "test-key",
        "polling_period_in_seconds": 1,
    });
    let options = ServiceServerOptions {
        files,
        config_overrides: config.as_object().unwrap().clone(),
        max_long_poll: Duration::from_secs(2),
        ..ServiceServerOptions::default()
    };
    let server = ServiceServerSimulator::start(options, 0).await.unwrap();
    let tasking = tempfile::tempdir().unwrap();
    // Logs go to a file: a pipe read only at exit could fill and stall it.
    let log_dir = tempfile::tempdir().unwrap();
    let stderr_path = log_dir.path().join("stderr");

    let mut service = Command::new(common::binary())
        .args([
            "serve",
            "--concurrency",
            "8",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .env("SERVICE_API_HOST", server.base_url())
        .env(
            "SERVICE_API_KEY",
            intezer_dynamic::simulator::service_server::DEFAULT_API_KEY,
        )
        .env("TASK_REQUEST_TIMEOUT", "2")
        .env("TASKING_DIR", tasking.path())
        .env("HOSTNAME", "shutdown-test")
        .env_remove("AL_SERVICE_TASK_LIMIT")
        .env("LOG_LEVEL", "INFO")
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&stderr_path).unwrap()))
        .spawn()
        .expect("the binary runs");

    // Signal once a few tasks are done and others are surely in flight.
    let started = std::time::Instant::now();
    while server.report().completions.len() < 5 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no task completed within a minute"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = Command::new("kill")
        .args([signal, &service.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());

    let exit = tokio::task::spawn_blocking(move || {
        common::wait_for_exit(&mut service, Duration::from_secs(90))
    })
    .await
    .unwrap();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();

    assert!(exit.success(), "exit {exit:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("stopping"), "{stderr}");
    let report = server.report();
    assert!(report.lost.is_empty(), "lost: {:?}", report.lost);
    assert!(
        report.completed_twice.is_empty(),
        "twice: {:?}",
        report.completed_twice
    );
    assert_eq!(report.completions.len(), report.tasks_handed_out);
    assert!(
        !report.never_handed_out.is_empty(),
        "the signal came after every task was taken; it stopped nothing"
    );
    assert!(
        report.protocol_errors.is_empty(),
        "{:?}",
        report.protocol_errors
    );
    assert!(
        std::fs::read_dir(tasking.path()).unwrap().next().is_none(),
        "working folders are removed"
    );
    intezer.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_load_answers_every_task_taken() {
    stop_mid_load("-TERM").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_mid_load_answers_every_task_taken() {
    stop_mid_load("-INT").await;
}
