//! Fuzzes the parser of tasks from the Assemblyline service server, and what
//! the service does next with a task: the error JSON for a task it rejects,
//! or the submission parameters and the result JSON for one it accepts.
//!
//! Input: the task JSON, as `GET /api/v1/task/` returns it under `task`.

#![no_main]

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use intezer_dynamic::assemblyline::result::Milestones;
use intezer_dynamic::assemblyline::task::is_sha256;
use intezer_dynamic::assemblyline::{Manifest, ServiceIdentity, ServiceResult, Task, TaskFailure};
use intezer_dynamic::config::SubmissionParams;
use intezer_dynamic::runtime::service_identity;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

static MANIFEST: LazyLock<Manifest> =
    LazyLock::new(|| Manifest::embedded("4.0.0.dev0").expect("embedded manifest parses"));

static IDENTITY: LazyLock<ServiceIdentity> = LazyLock::new(|| service_identity(&MANIFEST));

/// Fixed processing times, so that a crash reproduces.
fn milestones() -> Milestones {
    let time = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).expect("valid timestamp");
    Milestones {
        started: time,
        completed: time,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let (_sid, sha256) = Task::identity_of(&raw);

    match Task::parse(raw) {
        Err(err) => {
            let failure =
                TaskFailure::nonrecoverable(format!("invalid task from the service server: {err}"));
            let json = failure.to_json(&sha256, &MANIFEST.name, &IDENTITY);
            serde_json::to_vec(&json).expect("error JSON serialises");
        }
        Ok(task) => {
            // The task's file is downloaded to a file named by its hash.
            assert!(
                is_sha256(&task.sha256),
                "accepted task hash {:?} is not a lowercase SHA-256",
                task.sha256
            );
            let _ = SubmissionParams::resolve([&MANIFEST.param_defaults, &task.service_config]);
            let json = ServiceResult::default().to_json(&task, &IDENTITY, milestones());
            assert_eq!(json["sha256"], task.sha256.as_str());
            serde_json::to_vec(&json).expect("result JSON serialises");
        }
    }
});
