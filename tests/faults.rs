//! `serve` against both simulators while they inject faults: each test
//! breaks one kind of response and checks that every task is still
//! answered exactly once, that the fault really happened, and that the
//! answer is the one the fault calls for.

mod common;

use std::time::Duration;

use serde_json::{json, Map, Value};

use intezer_dynamic::runtime::{self, ServeExit, ServeOptions};
use intezer_dynamic::simulator::faults::{FaultPlan, InjectedFault};
use intezer_dynamic::simulator::intezer::{
    DefaultOptions, IntezerBehaviour, IntezerSimulator, RecordedCall,
};
use intezer_dynamic::simulator::service_server::{
    Completion, CompletionKind, ServiceServerOptions, ServiceServerSimulator, SimFile, SimReport,
};

const SAMPLES: &[&str] = &[
    "elf_true",
    "elf_libxau.so",
    "pe_nsis_stub.exe",
    "pe_nsis_system.dll",
];

/// Intezer API key the service is configured with and the simulator accepts.
const API_KEY: &str = "test-key";

/// Faults to inject, and the settings a test needs.
#[derive(Default)]
struct Setup {
    intezer: &'static [&'static str],
    service_server: &'static [&'static str],
    /// `service_config.timeout` in seconds, for faults that need a short one.
    timeout: Option<u64>,
    /// Extra manifest config.
    config: Value,
}

/// What a run produced.
struct Run {
    report: SimReport,
    intezer_faults: Vec<InjectedFault>,
    intezer_calls: Vec<RecordedCall>,
    server_faults: Vec<InjectedFault>,
}

impl Run {
    fn results(&self) -> Vec<&Completion> {
        self.completions(CompletionKind::Result)
    }

    fn errors(&self) -> Vec<&Completion> {
        self.completions(CompletionKind::Error)
    }

    fn completions(&self, kind: CompletionKind) -> Vec<&Completion> {
        self.report
            .completions
            .iter()
            .filter(|c| c.kind == kind)
            .collect()
    }
}

fn sim_file(name: &str) -> SimFile {
    SimFile {
        name: name.to_string(),
        bytes: std::fs::read(common::sample(name)).unwrap().into(),
        file_type: "executable/windows/pe32".to_string(),
    }
}

async fn run(setup: Setup) -> Run {
    let intezer = IntezerSimulator::start_with_faults(
        IntezerBehaviour::Default(DefaultOptions {
            polls_before_finished: 1,
            // Tokens are checked, as Intezer does, so expired ones are rejected.
            api_key: Some(API_KEY.to_string()),
            ..DefaultOptions::default()
        }),
        0,
        FaultPlan::parse(setup.intezer, 7).unwrap(),
    )
    .await
    .unwrap();
    let mut config = json!({
        "base_url": intezer.base_url(),
        "api_key": API_KEY,
        "polling_period_in_seconds": 1,
        "analysis_timeout_in_seconds": 20,
    });
    if let Value::Object(extra) = &setup.config {
        for (key, value) in extra {
            config[key] = value.clone();
        }
    }
    let options = ServiceServerOptions {
        files: SAMPLES.iter().map(|name| sim_file(name)).collect(),
        config_overrides: config.as_object().cloned().unwrap_or_else(Map::new),
        timeout_override: setup.timeout,
        faults: FaultPlan::parse(setup.service_server, 11).unwrap(),
        ..ServiceServerOptions::default()
    };
    let server = ServiceServerSimulator::start(options, 0).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let env = common::environment(&[
        ("SERVICE_API_HOST", server.base_url()),
        ("AL_SERVICE_TASK_LIMIT", SAMPLES.len().to_string()),
        ("TASK_REQUEST_TIMEOUT", "0.5".to_string()),
        ("TASKING_DIR", dir.path().display().to_string()),
        ("HOSTNAME", "faults".to_string()),
    ]);
    let options = ServeOptions {
        concurrency: 4,
        ..ServeOptions::default()
    };
    let exit = tokio::time::timeout(
        Duration::from_secs(120),
        runtime::serve(env, options, std::future::pending()),
    )
    .await
    .expect("serve ends within two minutes")
    .expect("serve runs");
    assert!(
        matches!(exit, ServeExit::Finished(summary) if summary.tasks == SAMPLES.len() as u64),
        "{exit:?}"
    );
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "working folders are removed"
    );

    let run = Run {
        report: server.report(),
        intezer_faults: intezer.injected_faults(),
        intezer_calls: intezer.calls(),
        server_faults: server.injected_faults(),
    };
    intezer.stop().await;
    server.stop().await;
    common::assert_each_task_once(&run.report, SAMPLES.len());
    run
}

fn error_message(completion: &Completion) -> String {
    completion.body["response"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn error_status(completion: &Completion) -> String {
    completion.body["response"]["status"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

// === Intezer faults ===

#[actix_rt::test]
async fn intezer_server_errors_are_retried() {
    let run = run(Setup {
        intezer: &["*=503,rate=0.2"],
        ..Setup::default()
    })
    .await;
    assert!(!run.intezer_faults.is_empty());
    // A task whose every retry met a 503 is retried by AL, never failed.
    for error in run.errors() {
        assert_eq!(error_status(error), "FAIL_RECOVERABLE");
    }
}

#[actix_rt::test]
async fn intezer_disconnects_are_retried() {
    let run = run(Setup {
        intezer: &["files.latest-analysis=disconnect,first=2"],
        ..Setup::default()
    })
    .await;
    assert_eq!(run.intezer_faults.len(), 2);
    assert_eq!(run.results().len(), SAMPLES.len());
}

#[actix_rt::test]
async fn intezer_hang_ends_in_recoverable_error() {
    let run = run(Setup {
        intezer: &["files.latest-analysis=hang,first=1"],
        // Long enough for the healthy tasks to finish on a loaded machine.
        timeout: Some(16),
        ..Setup::default()
    })
    .await;
    assert_eq!(run.intezer_faults.len(), 1);
    let errors = run.errors();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(error_status(errors[0]), "FAIL_RECOVERABLE");
}

#[actix_rt::test]
async fn intezer_slow_bodies_still_complete() {
    let run = run(Setup {
        intezer: &["*=slow-body:300,rate=0.5"],
        ..Setup::default()
    })
    .await;
    assert!(!run.intezer_faults.is_empty());
    assert_eq!(run.results().len(), SAMPLES.len());
}

#[actix_rt::test]
async fn intezer_truncated_bodies_are_retried() {
    let run = run(Setup {
        intezer: &["files.latest-analysis=truncated,first=2"],
        ..Setup::default()
    })
    .await;
    assert_eq!(run.intezer_faults.len(), 2);
    assert_eq!(run.results().len(), SAMPLES.len());
}

#[actix_rt::test]
async fn intezer_malformed_json_is_answered() {
    let run = run(Setup {
        intezer: &["files.latest-analysis=malformed-json,first=1"],
        ..Setup::default()
    })
    .await;
    assert_eq!(run.intezer_faults.len(), 1);
    assert!(run.results().len() >= SAMPLES.len() - 1);
}

/// Every access token expires while the tasks are in flight: the first
/// lookup gets 401 and the simulator invalidates its tokens, so each request
/// still carrying the old one gets 401 as well. The service fetches one new
/// token for all of them and repeats each request once.
#[actix_rt::test]
async fn intezer_expired_tokens_are_renewed() {
    let run = run(Setup {
        intezer: &["files.latest-analysis=expire-tokens,first=1"],
        ..Setup::default()
    })
    .await;
    assert_eq!(run.intezer_faults.len(), 1);
    assert_eq!(run.results().len(), SAMPLES.len());
    let token_fetches = run
        .intezer_calls
        .iter()
        .filter(|call| call.endpoint == "get-access-token")
        .count();
    assert_eq!(token_fetches, 2, "the first token and one renewal");
}

#[actix_rt::test]
async fn intezer_429_storm_is_waited_out() {
    let run = run(Setup {
        intezer: &["*=429,first=6"],
        ..Setup::default()
    })
    .await;
    assert_eq!(run.intezer_faults.len(), 6);
    assert_eq!(run.results().len(), SAMPLES.len());
}

#[actix_rt::test]
async fn intezer_huge_body_fails_at_the_cap() {
    let run = run(Setup {
        intezer: &["files.latest-analysis=huge-body:70"],
        ..Setup::default()
    })
    .await;
    assert!(!run.intezer_faults.is_empty());
    let errors = run.errors();
    assert_eq!(errors.len(), SAMPLES.len(), "{errors:#?}");
    for error in errors {
        let message = error_message(error);
        assert!(message.contains("exceeds the limit"), "{message}");
        assert!(message.contains("max_response_mb"), "{message}");
    }
}

#[actix_rt::test]
async fn analysis_stuck_in_progress_is_answered() {
    let run = run(Setup {
        intezer: &["analyses.status=stuck", "files.latest-analysis=404"],
        config: json!({"analysis_timeout_in_seconds": 3}),
        ..Setup::default()
    })
    .await;
    assert!(run
        .intezer_faults
        .iter()
        .any(|fault| fault.fault == "stuck"));
    let errors = run.errors();
    assert_eq!(errors.len(), SAMPLES.len(), "{errors:#?}");
    for error in errors {
        assert_eq!(error_status(error), "FAIL_RECOVERABLE");
        let message = error_message(error);
        assert!(message.contains("still in_progress"), "{message}");
    }
}

#[actix_rt::test]
async fn rejected_uploads_are_answered() {
    let run = run(Setup {
        intezer: &["files.latest-analysis=404", "analyze=400"],
        ..Setup::default()
    })
    .await;
    assert!(run
        .intezer_faults
        .iter()
        .any(|fault| fault.target == "analyze"));
    let errors = run.errors();
    assert_eq!(errors.len(), SAMPLES.len(), "{errors:#?}");
    for error in errors {
        assert_eq!(error_status(error), "FAIL_NONRECOVERABLE");
        let message = error_message(error);
        assert!(message.contains("submitting"), "{message}");
        assert!(message.contains("HTTP 400"), "{message}");
    }
}

// === Service-server faults ===

#[actix_rt::test]
async fn result_post_server_errors_are_retried() {
    let run = run(Setup {
        service_server: &["post-task=500,first=3"],
        ..Setup::default()
    })
    .await;
    assert_eq!(run.server_faults.len(), 3);
    assert_eq!(run.results().len(), SAMPLES.len());
}

#[actix_rt::test]
async fn result_rejected_with_400_becomes_nonrecoverable_error() {
    let run = run(Setup {
        service_server: &["post-task=400,first=1"],
        ..Setup::default()
    })
    .await;
    assert_eq!(run.server_faults.len(), 1);
    let errors = run.errors();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(error_status(errors[0]), "FAIL_NONRECOVERABLE");
    let message = error_message(errors[0]);
    assert!(message.contains("HTTP 400"), "{message}");
}

#[actix_rt::test]
async fn result_post_disconnects_are_retried() {
    let run = run(Setup {
        service_server: &["post-task=disconnect,first=2"],
        ..Setup::default()
    })
    .await;
    assert_eq!(run.server_faults.len(), 2);
    assert_eq!(run.results().len(), SAMPLES.len());
}

#[actix_rt::test]
async fn task_poll_faults_are_retried() {
    let run = run(Setup {
        service_server: &[
            "get-task=503,first=2",
            "get-task=disconnect,first=2",
            "get-task=malformed-json,first=1",
        ],
        ..Setup::default()
    })
    .await;
    assert_eq!(run.server_faults.len(), 5);
    assert_eq!(run.results().len(), SAMPLES.len());
}

#[actix_rt::test]
async fn task_poll_hang_is_outwaited() {
    let run = run(Setup {
        service_server: &["get-task=hang,first=1"],
        ..Setup::default()
    })
    .await;
    assert_eq!(run.server_faults.len(), 1);
    assert_eq!(run.results().len(), SAMPLES.len());
}

#[actix_rt::test]
async fn broken_downloads_are_retried() {
    let run = run(Setup {
        service_server: &[
            "download-file=wrong-bytes,first=1",
            "download-file=truncated,first=1",
            "download-file=slow-body:300,first=1",
        ],
        ..Setup::default()
    })
    .await;
    assert_eq!(run.server_faults.len(), 3);
    assert_eq!(run.results().len(), SAMPLES.len());
}

#[actix_rt::test]
async fn registration_and_safelist_faults_are_survived() {
    let run = run(Setup {
        service_server: &["register=503,first=2", "safelist=malformed-json"],
        ..Setup::default()
    })
    .await;
    assert!(run
        .server_faults
        .iter()
        .any(|fault| fault.target == "register"));
    assert!(run
        .server_faults
        .iter()
        .any(|fault| fault.target == "safelist"));
    assert_eq!(run.results().len(), SAMPLES.len());
}

#[actix_rt::test]
async fn huge_task_poll_body_is_rejected() {
    let run = run(Setup {
        service_server: &["get-task=huge-body:70,first=1"],
        ..Setup::default()
    })
    .await;
    assert_eq!(run.server_faults.len(), 1);
    assert_eq!(run.results().len(), SAMPLES.len());
}

/// Returns the error that starting the service-server simulator with the
/// fault `rule` gives.
fn service_server_plan_error(rule: &str) -> String {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let err = runtime
        .block_on(ServiceServerSimulator::start(
            ServiceServerOptions {
                faults: FaultPlan::parse(&[rule], 1).unwrap(),
                ..ServiceServerOptions::default()
            },
            0,
        ))
        .err()
        .expect("the plan is rejected");
    err.to_string()
}

#[test]
fn service_server_rejects_alteration_of_state_changing_calls() {
    let message = service_server_plan_error("post-task=truncated");
    assert!(message.contains("post-task"), "{message}");
}

#[test]
fn service_server_rejects_token_expiry() {
    let message = service_server_plan_error("get-task=expire-tokens");
    assert_eq!(
        message,
        "fault expire-tokens on get-task is not supported: the service server has no access \
         tokens; use status:401 for a rejected API key"
    );
}

#[actix_rt::test]
async fn sub_analysis_server_errors_fail_recoverably() {
    let run = run(Setup {
        intezer: &["sub-analysis.code-reuse=503"],
        ..Setup::default()
    })
    .await;
    assert!(!run.intezer_faults.is_empty());
    // No result may be posted with the sub-analyses silently left out.
    let errors = run.errors();
    assert!(!errors.is_empty());
    for error in errors {
        assert_eq!(error_status(error), "FAIL_RECOVERABLE");
    }
    for result in run.results() {
        let text = result.body.to_string();
        assert!(!text.contains("Subanalysis report"), "{text}");
    }
}

#[test]
fn intezer_simulator_rejects_unknown_fault_targets() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let err = runtime
        .block_on(IntezerSimulator::start_with_faults(
            IntezerBehaviour::Default(DefaultOptions::default()),
            0,
            FaultPlan::parse(&["sub-analyses.code-reuse=503"], 1).unwrap(),
        ))
        .err()
        .expect("the plan is rejected");
    let message = err.to_string();
    assert!(message.contains("sub-analyses.code-reuse"), "{message}");
    assert!(message.contains("sub-analysis.code-reuse"), "{message}");
}
