//! Helpers shared by the integration tests.

#![allow(dead_code)]

pub mod intezer_mock;
pub mod logs;
pub mod redis_server;
pub mod replay;

#[allow(unused_imports)]
pub use redis_server::free_port;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use intezer_dynamic::config::Environment;

/// Folder of the test fixtures.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A real sample binary from the fixtures (see tests/fixtures/scenarios/samples/SOURCES.md).
pub fn sample(name: &str) -> PathBuf {
    fixtures().join("scenarios/samples").join(name)
}

/// The shared scenario folder next to the checkout, when it exists.
pub fn shared_scenarios() -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/scenarios");
    path.is_dir().then_some(path)
}

/// An environment for `serve` built from `pairs` only, never from the
/// process environment.
pub fn environment(pairs: &[(&str, String)]) -> Environment {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    Environment::from_lookup(|name| map.get(name).cloned()).expect("test environment is valid")
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Path of the built binary.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_intezer-dynamic"))
}

/// Checks a service-server simulator report: `tasks` handed out, each
/// answered once, and no protocol error.
pub fn assert_each_task_once(
    report: &intezer_dynamic::simulator::service_server::SimReport,
    tasks: usize,
) {
    assert_eq!(report.tasks_handed_out, tasks);
    assert_eq!(report.completions.len(), tasks, "{report:#?}");
    assert!(report.lost.is_empty(), "lost: {:?}", report.lost);
    assert!(
        report.completed_twice.is_empty(),
        "twice: {:?}",
        report.completed_twice
    );
    assert!(
        report.protocol_errors.is_empty(),
        "protocol errors: {:?}",
        report.protocol_errors
    );
}

/// Waits for `child` to exit, killing it and failing after `limit`.
pub fn wait_for_exit(
    child: &mut std::process::Child,
    limit: std::time::Duration,
) -> std::process::ExitStatus {
    let started = std::time::Instant::now();
    loop {
        if let Some(exit) = child.try_wait().unwrap() {
            return exit;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("the process did not exit within {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
