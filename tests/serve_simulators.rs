//! `serve` against both embedded simulators over real loopback HTTP: every
//! task is answered exactly once, with the outcome Intezer's answer calls
//! for.

mod common;

use std::time::Duration;

use serde_json::{json, Map, Value};

use intezer_dynamic::runtime::{self, RuntimeError, ServeExit, ServeOptions};
use intezer_dynamic::simulator::intezer::{DefaultOptions, IntezerBehaviour, IntezerSimulator};
use intezer_dynamic::simulator::scenario::Scenario;
use intezer_dynamic::simulator::service_server::{
    CompletionKind, ServiceServerOptions, ServiceServerSimulator, SimFile,
};

const SAMPLES: &[&str] = &[
    "elf_true",
    "elf_libxau.so",
    "pe_nsis_stub.exe",
    "pe_nsis_system.dll",
];

fn sim_file(name: &str) -> SimFile {
    SimFile {
        name: name.to_string(),
        bytes: std::fs::read(common::sample(name)).unwrap().into(),
        file_type: "executable/windows/pe32".to_string(),
    }
}

fn config(base_url: &str) -> Map<String, Value> {
    json!({"base_url": base_url, "api_key": "test-key", "polling_period_in_seconds": 1, "analysis_timeout_in_seconds": 20})
        .as_object()
        .unwrap()
        .clone()
}

async fn serve_until_limit(
    host: String,
    tasks: usize,
    concurrency: usize,
) -> Result<ServeExit, RuntimeError> {
    let dir = tempfile::tempdir().unwrap();
    let env = common::environment(&[
        ("SERVICE_API_HOST", host),
        ("AL_SERVICE_TASK_LIMIT", tasks.to_string()),
        ("TASK_REQUEST_TIMEOUT", "0.5".to_string()),
        ("TASKING_DIR", dir.path().display().to_string()),
        ("HOSTNAME", "e2e".to_string()),
    ]);
    let options = ServeOptions {
        concurrency,
        ..ServeOptions::default()
    };
    let exit = runtime::serve(env, options, std::future::pending()).await;
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "working folders are removed"
    );
    exit
}

/// Title → heuristic id of every section of a posted result.
fn heuristics(result: &Value) -> Vec<(String, Option<u64>)> {
    result["result"]["sections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["title_text"].as_str().unwrap().to_string(),
                s["heuristic"]["heur_id"].as_u64(),
            )
        })
        .collect()
}

/// All four samples, many slots: each is answered once, with a result.
#[actix_rt::test]
async fn every_sample_answered_once_with_result() {
    let intezer = IntezerSimulator::start(IntezerBehaviour::Default(DefaultOptions::default()), 0)
        .await
        .unwrap();
    let options = ServiceServerOptions {
        files: SAMPLES.iter().map(|name| sim_file(name)).collect(),
        config_overrides: config(&intezer.base_url()),
        ask_missing_files: true,
        ..ServiceServerOptions::default()
    };
    let server = ServiceServerSimulator::start(options, 0).await.unwrap();

    let exit = serve_until_limit(server.base_url(), SAMPLES.len(), 4)
        .await
        .unwrap();

    let report = server
        .wait_until_all_completed(Duration::from_secs(5))
        .await;
    common::assert_each_task_once(&report, SAMPLES.len());
    assert!(
        matches!(exit, ServeExit::Finished(summary) if summary.results == SAMPLES.len() as u64)
    );
    for completion in &report.completions {
        assert!(
            matches!(completion.kind, CompletionKind::Result),
            "{completion:#?}"
        );
        assert_eq!(
            completion.body["response"]["service_name"],
            "IntezerDynamic"
        );
        assert_eq!(completion.body["sha256"], completion.sha256.as_str());
    }
    intezer.stop().await;
    server.stop().await;
}

/// Scenario 03: lookup miss, upload, three 202 polls, then a malicious
/// report, used as returned without a second hash lookup.
#[actix_rt::test]
async fn unknown_file_is_submitted_polled_and_reported() {
    let scenario =
        Scenario::load(&common::fixtures().join("scenarios/03_miss_submit_poll_malicious.json"))
            .unwrap();
    let intezer = IntezerSimulator::start(IntezerBehaviour::Scenario(scenario), 0)
        .await
        .unwrap();
    let options = ServiceServerOptions {
        files: vec![sim_file("elf_libxau.so")],
        config_overrides: config(&intezer.base_url()),
        ..ServiceServerOptions::default()
    };
    let server = ServiceServerSimulator::start(options, 0).await.unwrap();

    serve_until_limit(server.base_url(), 1, 2).await.unwrap();

    let report = server
        .wait_until_all_completed(Duration::from_secs(5))
        .await;
    common::assert_each_task_once(&report, 1);
    let result = &report.completions[0].body;
    let found = heuristics(result);
    assert!(
        found.contains(&("Intezer analysis report".to_string(), Some(1))),
        "{found:?}"
    );
    assert!(
        found.contains(&("Intezer sub-verdict".to_string(), Some(13))),
        "{found:?}"
    );
    let calls = intezer.calls();
    let uploads = calls
        .iter()
        .filter(|c| c.method == "POST" && c.path.ends_with("/analyze"))
        .count();
    let lookups = calls
        .iter()
        .filter(|c| c.method == "GET" && c.path.contains("/files/"))
        .count();
    let polls = calls
        .iter()
        .filter(|c| c.method == "GET" && c.path.ends_with("-000000000003"))
        .count();
    assert_eq!(uploads, 1);
    assert_eq!(
        lookups, 1,
        "no second hash lookup after the analysis finished"
    );
    assert_eq!(polls, 4, "three 202 answers, then the finished report");
    intezer.stop().await;
    server.stop().await;
}

/// The placeholder API key left in AL's configuration stops `serve` before
/// it takes any task, with a message saying where to set the key.
#[actix_rt::test]
async fn placeholder_api_key_stops_before_any_task() {
    let mut overrides = config("http://127.0.0.1:9/api/");
    overrides.insert("api_key".into(), json!("sample_api_key"));
    let options = ServiceServerOptions {
        files: vec![sim_file("elf_true")],
        config_overrides: overrides,
        ..ServiceServerOptions::default()
    };
    let server = ServiceServerSimulator::start(options, 0).await.unwrap();

    let err = serve_until_limit(server.base_url(), 1, 1)
        .await
        .unwrap_err();

    let message = err.to_string();
    assert!(message.contains("api_key"), "{message}");
    assert!(message.contains("--set api_key"), "{message}");
    assert_eq!(server.report().tasks_handed_out, 0);
    assert_eq!(server.report().registered, 1);
    server.stop().await;
}

/// REGISTER_ONLY registers the manifest and returns without polling.
#[actix_rt::test]
async fn register_only_registers_and_exits() {
    let server = ServiceServerSimulator::start(ServiceServerOptions::default(), 0)
        .await
        .unwrap();
    let env = common::environment(&[
        ("SERVICE_API_HOST", server.base_url()),
        ("REGISTER_ONLY", "true".to_string()),
    ]);

    let exit = runtime::serve(env, ServeOptions::default(), std::future::pending())
        .await
        .unwrap();

    assert_eq!(exit, ServeExit::Registered { keep_alive: true });
    let report = server.report();
    assert_eq!(report.registered, 1);
    let manifest = report.manifest.unwrap();
    assert_eq!(manifest["name"], "IntezerDynamic");
    assert_eq!(manifest["heuristics"].as_array().unwrap().len(), 21);
    server.stop().await;
}

/// A shutdown request stops polling; the service exits with nothing lost.
#[actix_rt::test]
async fn shutdown_request_stops_cleanly() {
    let intezer = IntezerSimulator::start(IntezerBehaviour::Default(DefaultOptions::default()), 0)
        .await
        .unwrap();
    let options = ServiceServerOptions {
        files: vec![sim_file("elf_true")],
        config_overrides: config(&intezer.base_url()),
        ..ServiceServerOptions::default()
    };
    let server = ServiceServerSimulator::start(options, 0).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let env = common::environment(&[
        ("SERVICE_API_HOST", server.base_url()),
        ("TASK_REQUEST_TIMEOUT", "0.2".to_string()),
        ("TASKING_DIR", dir.path().display().to_string()),
    ]);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let wait_for_answer = {
        let handle = &server;
        async move {
            handle
                .wait_until_all_completed(Duration::from_secs(10))
                .await;
            let _ = stop.send(());
        }
    };
    let options = ServeOptions {
        concurrency: 3,
        ..ServeOptions::default()
    };
    let serve = runtime::serve(env, options, async {
        let _ = stopped.await;
    });

    let (exit, ()) = tokio::join!(serve, wait_for_answer);

    assert!(matches!(exit.unwrap(), ServeExit::Finished(summary) if summary.tasks == 1));
    common::assert_each_task_once(&server.report(), 1);
    intezer.stop().await;
    server.stop().await;
}

/// Every network tag from every path (network IOCs, signature marks, IOC
/// tables) goes through AL's safelist: a safelisted domain, IP or URI never
/// appears as a network tag. Command lines that merely contain them are
/// still tagged as command lines.
#[actix_rt::test]
async fn safelisted_values_are_never_tagged() {
    let intezer = IntezerSimulator::start(IntezerBehaviour::Default(DefaultOptions::default()), 0)
        .await
        .unwrap();
    let options = ServiceServerOptions {
        files: vec![sim_file("elf_libxau.so")],
        config_overrides: config(&intezer.base_url()),
        safelist: json!({
            "match": {},
            "regex": {
                "network.dynamic.domain": [".*\\.example\\.net"],
                "network.dynamic.ip": ["192\\.0\\.2\\..*"],
                "network.dynamic.uri": [".*example\\.net.*", "http://192\\.0\\.2\\..*"]
            }
        }),
        ..ServiceServerOptions::default()
    };
    let server = ServiceServerSimulator::start(options, 0).await.unwrap();

    serve_until_limit(server.base_url(), 1, 1).await.unwrap();

    let report = server
        .wait_until_all_completed(Duration::from_secs(5))
        .await;
    common::assert_each_task_once(&report, 1);
    let result = &report.completions[0].body;
    let sections = result["result"]["sections"].as_array().unwrap();
    assert!(sections
        .iter()
        .any(|s| s["title_text"] == "Network Communication Observed"));
    let network_tags = sections
        .iter()
        .map(|s| s["tags"]["network"].to_string())
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        !network_tags.contains("example.net"),
        "a safelisted domain was tagged: {network_tags}"
    );
    assert!(
        !network_tags.contains("192.0.2."),
        "a safelisted IP was tagged: {network_tags}"
    );
    assert!(
        network_tags.contains("uri_path"),
        "tags that are not safelisted remain: {network_tags}"
    );
    intezer.stop().await;
    server.stop().await;
}

/// Under a request rate far below the demand, every task is still answered
/// exactly once, with a result or a recoverable error, and the simulated
/// key (limited above the service's rate) never answers 429.
#[actix_rt::test]
async fn overload_answers_every_task_once() {
    let options = DefaultOptions {
        rate_limit_per_minute: Some(40),
        ..DefaultOptions::default()
    };
    let intezer = IntezerSimulator::start(IntezerBehaviour::Default(options), 0)
        .await
        .unwrap();
    let mut overrides = config(&intezer.base_url());
    overrides.insert("requests_per_minute".into(), json!(30));
    overrides.insert("requests_burst".into(), json!(2));
    let options = ServiceServerOptions {
        files: SAMPLES.iter().map(|name| sim_file(name)).collect(),
        config_overrides: overrides,
        timeout_override: Some(8),
        ..ServiceServerOptions::default()
    };
    let server = ServiceServerSimulator::start(options, 0).await.unwrap();

    serve_until_limit(server.base_url(), SAMPLES.len(), 4)
        .await
        .unwrap();

    let report = server
        .wait_until_all_completed(Duration::from_secs(5))
        .await;
    common::assert_each_task_once(&report, SAMPLES.len());
    for completion in &report.completions {
        let recoverable = completion.body["response"]["status"] == "FAIL_RECOVERABLE";
        let result = matches!(completion.kind, CompletionKind::Result);
        assert!(result || recoverable, "{:#}", completion.body);
    }
    let rate_limited = intezer
        .calls()
        .iter()
        .filter(|call| call.status == 429)
        .count();
    assert_eq!(rate_limited, 0);
    intezer.stop().await;
    server.stop().await;
}
