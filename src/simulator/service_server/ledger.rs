//! The simulator's shared state: the task queue, the tasks handed out, the
//! filestore and the record of completions and rejected requests.
//!
//! Handlers run on the server's worker thread while the handle is used from
//! the test's runtime, so the state sits behind one mutex that is never held
//! across an `.await`. Two `Notify`s wake waiters: `task_queued` wakes task
//! long polls, `progress` wakes `wait_until_all_completed`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use serde_json::{Map, Value};
use tokio::sync::Notify;

use super::task::{build_task, new_sid, sha256_hex};
use super::{Completion, CompletionKind, ServiceServerOptions, SimFile, SimReport};

/// A task waiting in the queue. Its sid is fixed at queue time so the
/// report can name tasks that were never handed out.
struct QueuedTask {
    sid: String,
    sha256: String,
    file: SimFile,
    params: Option<Map<String, Value>>,
}

/// A task handed out to a service, as the server will match it again when
/// the result or error comes back.
#[derive(Clone, Debug)]
pub(super) struct IssuedTask {
    pub sid: String,
    pub sha256: String,
    pub service_name: String,
    /// When the task was handed out, for the completion's latency.
    pub handed_out_at: Instant,
}

#[derive(Default)]
struct Ledger {
    registered: u32,
    manifest: Option<Value>,
    queue: VecDeque<QueuedTask>,
    tasks_queued: usize,
    /// Sids in hand-out order.
    handed_out: Vec<String>,
    issued: HashMap<String, IssuedTask>,
    completions: Vec<Completion>,
    completion_counts: HashMap<String, u32>,
    completed_twice: Vec<String>,
    /// The simulated filestore: task files and uploaded files by SHA-256.
    files: HashMap<String, Bytes>,
    /// Files already served corrupted once.
    corrupted: HashSet<String>,
    uploads: Vec<String>,
    protocol_errors: Vec<String>,
}

/// State shared by the HTTP handlers and the [`super::ServiceServerHandle`].
pub(super) struct SharedState {
    pub options: ServiceServerOptions,
    /// When the simulator started; completion times count from it.
    started: Instant,
    ledger: Mutex<Ledger>,
    /// Notified whenever a task is queued.
    pub task_queued: Notify,
    /// Notified whenever a task is handed out or completed.
    pub progress: Notify,
}

impl SharedState {
    pub fn new(options: ServiceServerOptions) -> Self {
        let state = SharedState {
            options,
            started: Instant::now(),
            ledger: Mutex::new(Ledger::default()),
            task_queued: Notify::new(),
            progress: Notify::new(),
        };
        for file in state.options.files.clone() {
            state.queue_task(file, None);
        }
        state
    }

    /// Locks the ledger. A handler that panicked while holding the lock
    /// leaves the data consistent enough for a report, so poisoning is
    /// ignored.
    fn lock(&self) -> MutexGuard<'_, Ledger> {
        self.ledger
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn queue_task(&self, file: SimFile, params: Option<Map<String, Value>>) {
        let sha256 = sha256_hex(&file.bytes);
        let sid = new_sid();
        tracing::debug!(%sid, %sha256, name = %file.name, "task queued");
        {
            let mut ledger = self.lock();
            ledger.files.insert(sha256.clone(), file.bytes.clone());
            ledger.queue.push_back(QueuedTask {
                sid,
                sha256,
                file,
                params,
            });
            ledger.tasks_queued += 1;
        }
        self.task_queued.notify_waiters();
        self.progress.notify_waiters();
    }

    pub fn record_protocol_error(&self, line: String) {
        self.lock().protocol_errors.push(line);
    }

    pub fn is_registered(&self) -> bool {
        self.lock().manifest.is_some()
    }

    /// Stores an accepted registration and returns the manifest it replaced.
    pub fn record_registration(&self, manifest: Value) -> Option<Value> {
        let mut ledger = self.lock();
        ledger.registered += 1;
        ledger.manifest.replace(manifest)
    }

    /// Pops the next queued task, marks it handed out to `container_id` and
    /// returns its task JSON.
    pub fn hand_out_next(&self, container_id: &str) -> Option<Value> {
        let task = {
            let mut ledger = self.lock();
            let queued = ledger.queue.pop_front()?;
            let manifest = ledger.manifest.clone().unwrap_or(Value::Null);
            let task = build_task(
                &queued.sid,
                &queued.file,
                &self.options,
                &manifest,
                queued.params.as_ref(),
                container_id,
            );
            ledger.handed_out.push(queued.sid.clone());
            ledger.issued.insert(
                queued.sid.clone(),
                IssuedTask {
                    sid: queued.sid,
                    sha256: queued.sha256,
                    service_name: self.options.service_name.clone(),
                    handed_out_at: Instant::now(),
                },
            );
            task
        };
        self.progress.notify_waiters();
        Some(task)
    }

    pub fn issued_task(&self, sid: &str) -> Option<IssuedTask> {
        self.lock().issued.get(sid).cloned()
    }

    /// Returns the bytes of a stored file, corrupted on its first download
    /// when the options ask for it.
    pub fn download(&self, sha256: &str) -> Option<Bytes> {
        let mut ledger = self.lock();
        let bytes = ledger.files.get(sha256)?.clone();
        if self.options.corrupt_first_download && ledger.corrupted.insert(sha256.to_string()) {
            return Some(corrupt(&bytes));
        }
        Some(bytes)
    }

    pub fn store_upload(&self, sha256: String, bytes: Bytes) {
        let mut ledger = self.lock();
        ledger.files.insert(sha256.clone(), bytes);
        ledger.uploads.push(sha256);
    }

    /// Returns the SHA-256s in `listed` that are not in the filestore,
    /// without duplicates, in first-seen order.
    pub fn missing_files(&self, listed: &[String]) -> Vec<String> {
        let ledger = self.lock();
        let mut missing: Vec<String> = Vec::new();
        for sha256 in listed {
            if !ledger.files.contains_key(sha256) && !missing.contains(sha256) {
                missing.push(sha256.clone());
            }
        }
        missing
    }

    /// Records an accepted result or error and returns whether the task had
    /// already been completed.
    pub fn record_completion(
        &self,
        task: &IssuedTask,
        kind: CompletionKind,
        body: Value,
        freshen: Option<bool>,
    ) -> bool {
        let repeated = {
            let mut ledger = self.lock();
            ledger.completions.push(Completion {
                sid: task.sid.clone(),
                sha256: task.sha256.clone(),
                kind,
                body,
                freshen,
                handed_out_after: task.handed_out_at.duration_since(self.started),
                completed_after: self.started.elapsed(),
            });
            let count = ledger
                .completion_counts
                .entry(task.sid.clone())
                .or_insert(0);
            *count += 1;
            let repeated = *count > 1;
            if *count == 2 {
                ledger.completed_twice.push(task.sid.clone());
            }
            repeated
        };
        self.progress.notify_waiters();
        repeated
    }

    /// Returns the number of tasks handed out and of answers accepted, without
    /// copying the report.
    pub fn progress_counts(&self) -> (usize, usize) {
        let ledger = self.lock();
        (ledger.handed_out.len(), ledger.completions.len())
    }

    /// Returns whether nothing is queued and every handed-out task is
    /// completed.
    pub fn all_completed(&self) -> bool {
        let ledger = self.lock();
        ledger.queue.is_empty()
            && ledger
                .handed_out
                .iter()
                .all(|sid| ledger.completion_counts.contains_key(sid))
    }

    pub fn report(&self) -> SimReport {
        let ledger = self.lock();
        let lost = ledger
            .handed_out
            .iter()
            .filter(|sid| !ledger.completion_counts.contains_key(*sid))
            .cloned()
            .collect();
        SimReport {
            registered: ledger.registered,
            manifest: ledger.manifest.clone(),
            tasks_queued: ledger.tasks_queued,
            tasks_handed_out: ledger.handed_out.len(),
            completions: ledger.completions.clone(),
            lost,
            completed_twice: ledger.completed_twice.clone(),
            never_handed_out: ledger.queue.iter().map(|task| task.sid.clone()).collect(),
            uploads: ledger.uploads.clone(),
            protocol_errors: ledger.protocol_errors.clone(),
        }
    }
}

/// Returns different bytes of the same length (one extra byte for an empty
/// file), so the SHA-256 never matches.
fn corrupt(bytes: &Bytes) -> Bytes {
    if bytes.is_empty() {
        return Bytes::from_static(b"\0");
    }
    let mut damaged = bytes.to_vec();
    damaged[0] ^= 0xff;
    Bytes::from(damaged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_file(content: &'static [u8]) -> SimFile {
        SimFile {
            name: "sample.exe".to_string(),
            bytes: Bytes::from_static(content),
            file_type: "executable/windows/pe32".to_string(),
        }
    }

    #[test]
    fn corrupt_changes_hash_of_any_file() {
        for content in [&b""[..], b"MZ", b"x"] {
            let original = Bytes::from_static(content);
            assert_ne!(sha256_hex(&corrupt(&original)), sha256_hex(&original));
        }
    }

    #[test]
    fn report_lists_lost_and_queued_tasks() {
        let options = ServiceServerOptions {
            files: vec![sample_file(b"first"), sample_file(b"second")],
            ..ServiceServerOptions::default()
        };
        let state = SharedState::new(options);

        let task = state.hand_out_next("worker-1").expect("a queued task");
        let report = state.report();

        assert_eq!(report.tasks_queued, 2);
        assert_eq!(report.tasks_handed_out, 1);
        assert_eq!(report.lost, vec![task["sid"].as_str().unwrap().to_string()]);
        assert_eq!(report.never_handed_out.len(), 1);
        assert!(!state.all_completed());
    }

    #[test]
    fn second_completion_is_counted_once_in_completed_twice() {
        let options = ServiceServerOptions {
            files: vec![sample_file(b"only")],
            ..ServiceServerOptions::default()
        };
        let state = SharedState::new(options);
        let task = state.hand_out_next("worker-1").unwrap();
        let issued = state.issued_task(task["sid"].as_str().unwrap()).unwrap();

        let first =
            state.record_completion(&issued, CompletionKind::Result, Value::Null, Some(true));
        let second = state.record_completion(&issued, CompletionKind::Error, Value::Null, None);
        let third = state.record_completion(&issued, CompletionKind::Error, Value::Null, None);
        let report = state.report();

        assert!(!first);
        assert!(second);
        assert!(third);
        assert_eq!(report.completions.len(), 3);
        assert_eq!(report.completed_twice, vec![issued.sid.clone()]);
        assert!(report.lost.is_empty());
        assert!(state.all_completed());
    }
}
