//! TaskIntake: takes tasks from the AL service server and posts exactly one
//! result or error for each.
//!
//! It owns the service-server client and `concurrency` slots. Each slot
//! long-polls for a task, downloads the file, has the Hasher verify it,
//! drives the task through the [`Pipeline`] and posts the outcome. Slots run
//! as tasks of their own, not inside this actor's context, so a failure of
//! the actor cannot drop a task in flight; each task is also bounded by its
//! deadline and guarded against panics, so every task taken is answered.
//!
//! Takes [`StopIntake`] (stop polling, finish what is in flight) and
//! [`IntakeStatus`]. When the last slot ends, [`IntakeHandle::finished`]
//! resolves with the counts.
//!
//! Container ids: with one slot every call carries `HOSTNAME`, as the
//! reference client does. With several, slot `k` sends `HOSTNAME-s<k>`, so
//! the scaler's status table sees each slot's own busy or idle state
//! instead of one entry that every slot overwrites, and a task that times
//! out on the AL side cannot get the whole container and its other tasks
//! killed. The service enforces its own deadline instead, posting before AL
//! gives up on a task.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::Utc;
use serde_json::Value;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, info_span, warn, Instrument};

use super::hasher::HashFile;
use super::pipeline::{stage_failure, Pipeline, TaskOutcome};
use super::stage::guard;
use super::work_folder::WorkFolder;
use crate::assemblyline::{
    ErrorStatus, ServiceIdentity, ServiceServerClient, ServiceServerError, Task, TaskFailure,
    UploadableFile,
};
use crate::telemetry::metrics::metrics;

/// Attempts at downloading a task's file whose hash does not match.
const DOWNLOAD_ATTEMPTS: u32 = 3;

/// Pause after a failed task poll before the slot polls again.
const POLL_ERROR_PAUSE: Duration = Duration::from_secs(5);

/// Settings of the intake.
#[derive(Debug, Clone)]
pub struct IntakeSettings {
    pub concurrency: usize,
    pub hostname: String,
    /// Folder in which each task's working folder is made.
    pub tasking_dir: PathBuf,
    /// Stop after this many tasks (`AL_SERVICE_TASK_LIMIT`).
    pub task_limit: Option<u64>,
    /// The service-side task timeout, from the registered service config.
    pub task_timeout: Duration,
}

impl IntakeSettings {
    /// Time the service gives itself per task: the AL timeout minus a margin
    /// for posting, a quarter of the timeout and at most 10 s.
    pub fn task_budget(&self) -> Duration {
        let margin = (self.task_timeout / 4).min(Duration::from_secs(10));
        self.task_timeout.saturating_sub(margin)
    }

    fn container_id(&self, slot: usize) -> String {
        if self.concurrency <= 1 {
            self.hostname.clone()
        } else {
            format!("{}-s{slot}", self.hostname)
        }
    }
}

/// Counts of the tasks the intake completed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IntakeSummary {
    pub tasks: u64,
    pub results: u64,
    pub errors: u64,
    /// Results or errors the service server did not accept even after retries.
    pub unposted: u64,
}

/// State shared by the slots.
struct Shared {
    client: ServiceServerClient,
    pipeline: Arc<Pipeline>,
    identity: Arc<ServiceIdentity>,
    settings: IntakeSettings,
    stopping: AtomicBool,
    /// Cancelled on stop: ends the retries of a failing task poll.
    stop: CancellationToken,
    wake: Notify,
    /// Tasks taken plus polls in flight, checked against the task limit.
    reserved: AtomicU64,
    tasks: AtomicU64,
    results: AtomicU64,
    errors: AtomicU64,
    unposted: AtomicU64,
    slots_running: AtomicUsize,
    finished: Notify,
}

impl Shared {
    /// Reserves one task under the task limit before a poll.
    fn reserve(&self) -> bool {
        let Some(limit) = self.settings.task_limit else {
            return true;
        };
        let reserved = self.reserved.fetch_add(1, Ordering::SeqCst);
        if reserved >= limit {
            self.reserved.fetch_sub(1, Ordering::SeqCst);
            return false;
        }
        true
    }

    fn release(&self) {
        if self.settings.task_limit.is_some() {
            self.reserved.fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn summary(&self) -> IntakeSummary {
        IntakeSummary {
            tasks: self.tasks.load(Ordering::SeqCst),
            results: self.results.load(Ordering::SeqCst),
            errors: self.errors.load(Ordering::SeqCst),
            unposted: self.unposted.load(Ordering::SeqCst),
        }
    }
}

pub struct TaskIntake {
    shared: Arc<Shared>,
}

/// Stop taking tasks; tasks in flight, and a task returned by a poll still
/// open, are finished and posted.
pub struct StopIntake;

impl Message for StopIntake {
    type Result = ();
}

/// Counts so far.
pub struct IntakeStatus;

impl Message for IntakeStatus {
    type Result = IntakeSummary;
}

/// Address of a running intake and the future of its end.
pub struct IntakeHandle {
    pub addr: Addr<TaskIntake>,
    shared: Arc<Shared>,
}

impl IntakeHandle {
    /// Resolves when every slot has ended.
    pub async fn finished(&self) -> IntakeSummary {
        loop {
            let notified = self.shared.finished.notified();
            if self.shared.slots_running.load(Ordering::SeqCst) == 0 {
                return self.shared.summary();
            }
            notified.await;
        }
    }

    pub fn summary(&self) -> IntakeSummary {
        self.shared.summary()
    }
}

impl TaskIntake {
    /// Starts the intake and its slots. Must run inside an actix `System`.
    pub fn start(
        client: ServiceServerClient,
        pipeline: Arc<Pipeline>,
        identity: Arc<ServiceIdentity>,
        settings: IntakeSettings,
    ) -> IntakeHandle {
        let slots = settings.concurrency.max(1);
        let shared = Arc::new(Shared {
            client,
            pipeline,
            identity,
            settings,
            stopping: AtomicBool::new(false),
            stop: CancellationToken::new(),
            wake: Notify::new(),
            reserved: AtomicU64::new(0),
            tasks: AtomicU64::new(0),
            results: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            unposted: AtomicU64::new(0),
            slots_running: AtomicUsize::new(slots),
            finished: Notify::new(),
        });
        for slot in 0..slots {
            let shared = shared.clone();
            actix_rt::spawn(async move {
                run_slot(slot, &shared).await;
                if shared.slots_running.fetch_sub(1, Ordering::SeqCst) == 1 {
                    shared.finished.notify_waiters();
                }
            });
        }
        let addr = TaskIntake {
            shared: shared.clone(),
        }
        .start();
        IntakeHandle { addr, shared }
    }
}

impl Actor for TaskIntake {
    type Context = Context<Self>;
}

impl Handler<StopIntake> for TaskIntake {
    type Result = ();

    fn handle(&mut self, _: StopIntake, _: &mut Context<Self>) {
        if !self.shared.stopping.swap(true, Ordering::SeqCst) {
            info!("stopping: no new tasks will be taken; finishing tasks in flight");
        }
        self.shared.stop.cancel();
        self.shared.wake.notify_waiters();
    }
}

impl Handler<IntakeStatus> for TaskIntake {
    type Result = MessageResult<IntakeStatus>;

    fn handle(&mut self, _: IntakeStatus, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.shared.summary())
    }
}

/// Runs one slot: poll, process, post, until stopped or the task limit is used.
async fn run_slot(slot: usize, shared: &Shared) {
    let container_id = shared.settings.container_id(slot);
    // Made at the slot's first task and removed when the slot ends.
    let mut folder: Option<WorkFolder> = None;
    while !shared.stopping.load(Ordering::SeqCst) {
        if !shared.reserve() {
            debug!(slot, "task limit reached; slot stops");
            break;
        }
        // A poll in flight is not aborted on stop: the server may already
        // have handed out its task, which must then be answered.
        match shared.client.get_task(&container_id, &shared.stop).await {
            Ok(Some(raw)) => {
                shared.tasks.fetch_add(1, Ordering::SeqCst);
                metrics().tasks_received.inc();
                metrics().tasks_in_flight.inc();
                let started = std::time::Instant::now();
                process_task(shared, raw, &container_id, slot, &mut folder).await;
                metrics()
                    .task_duration
                    .observe(started.elapsed().as_secs_f64());
                metrics().tasks_in_flight.dec();
            }
            Ok(None) => shared.release(),
            Err(err) => {
                shared.release();
                error!(slot, error = %err, "task poll failed");
                let pause = tokio::time::sleep(POLL_ERROR_PAUSE);
                tokio::select! {
                    _ = pause => {}
                    _ = shared.wake.notified() => {}
                }
            }
        }
    }
}

/// Processes one task and posts exactly one answer for it, in the slot's
/// working folder, which is emptied afterwards.
async fn process_task(
    shared: &Shared,
    raw: Value,
    container_id: &str,
    slot: usize,
    folder: &mut Option<WorkFolder>,
) {
    let started = Utc::now();
    let budget = shared.settings.task_budget();
    let deadline = Instant::now() + budget;
    let (sid, sha256) = Task::identity_of(&raw);
    let span = info_span!(
        "task",
        sid = %sid,
        sha256 = %sha256,
        outcome = tracing::field::Empty
    );

    async {
        info!("task received");
        let work_dir = match folder {
            Some(made) => Ok(&*made),
            None => WorkFolder::create(&shared.settings.tasking_dir, slot)
                .map(|made| &*folder.insert(made)),
        };
        let outcome = match (Task::parse(raw.clone()), &work_dir) {
            (Err(err), _) => TaskOutcome::Error(TaskFailure::nonrecoverable(format!(
                "invalid task from the service server: {err}"
            ))),
            (Ok(_), Err(err)) => TaskOutcome::Error(TaskFailure::recoverable(format!(
                "cannot make a working folder in {}: {err}",
                shared.settings.tasking_dir.display()
            ))),
            (Ok(task), Ok(dir)) => {
                let work = guard(
                    "TaskIntake",
                    run_task(shared, &task, dir, container_id, started, deadline),
                );
                match tokio::time::timeout_at(deadline, work).await {
                    Ok(Ok(outcome)) => outcome,
                    Ok(Err(err)) => TaskOutcome::Error(stage_failure(&err)),
                    Err(_) => TaskOutcome::Error(TaskFailure::recoverable(format!(
                        "the task did not finish within {} s, the service's budget inside the \
                         {} s Assemblyline timeout; Assemblyline will retry it",
                        budget.as_secs(),
                        shared.settings.task_timeout.as_secs()
                    ))),
                }
            }
        };
        let kind = match &outcome {
            TaskOutcome::Result { .. } => "result",
            TaskOutcome::Error(_) => "error",
        };
        tracing::Span::current().record("outcome", kind);
        post_outcome(shared, &raw, &sha256, outcome, container_id).await;
        if let Some(dir) = folder.as_ref() {
            if let Err(err) = dir.clear() {
                // Removing the folder removes its files; the next task
                // makes a new one.
                warn!(folder = %dir.path().display(), error = %err, "cannot empty the working folder; removing it");
                *folder = None;
            }
        }
    }
    .instrument(span)
    .await
}

/// Downloads and verifies the file, then runs the pipeline.
async fn run_task(
    shared: &Shared,
    task: &Task,
    dir: &WorkFolder,
    container_id: &str,
    started: chrono::DateTime<Utc>,
    deadline: Instant,
) -> TaskOutcome {
    let file = dir.task_file();
    if let Err(failure) = download_verified(shared, task, &file, container_id).await {
        return TaskOutcome::Error(failure);
    }
    shared
        .pipeline
        .analyse(task, &file, dir.path(), started, deadline)
        .await
}

/// Downloads the task's file and checks its SHA-256, retrying a mismatch.
async fn download_verified(
    shared: &Shared,
    task: &Task,
    file: &Path,
    container_id: &str,
) -> Result<(), TaskFailure> {
    let mut last_problem = String::new();
    for attempt in 1..=DOWNLOAD_ATTEMPTS {
        match shared
            .client
            .download_file(&task.sha256, file, container_id)
            .await
        {
            Ok(_) => {}
            Err(ServiceServerError::NotFound { .. }) => {
                return Err(TaskFailure::nonrecoverable(format!(
                    "the service server does not have file {}",
                    task.sha256
                )))
            }
            Err(err) => {
                warn!(attempt, error = %err, "file download failed");
                last_problem = err.to_string();
                continue;
            }
        }
        let digest = shared
            .pipeline
            .hasher
            .send(HashFile {
                path: file.to_path_buf(),
            })
            .await
            .map_err(|err| stage_failure(&err))?
            .map_err(|err| TaskFailure::recoverable(err.to_string()))?;
        if digest.sha256 == task.sha256 {
            return Ok(());
        }
        warn!(attempt, downloaded = %digest.sha256, "downloaded file has the wrong SHA-256");
        last_problem = format!(
            "the downloaded file's SHA-256 was {}, expected {}",
            digest.sha256, task.sha256
        );
    }
    Err(TaskFailure::recoverable(format!(
        "could not download file {} after {DOWNLOAD_ATTEMPTS} attempts: {last_problem}",
        task.sha256
    )))
}

/// Posts the outcome. A result the server rejects becomes a
/// non-recoverable error that names the reason, so the task still gets
/// exactly one answer.
async fn post_outcome(
    shared: &Shared,
    raw: &Value,
    sha256: &str,
    outcome: TaskOutcome,
    container_id: &str,
) {
    let service_name = raw
        .get("service_name")
        .and_then(Value::as_str)
        .unwrap_or(&shared.identity.name)
        .to_string();
    let failure = match outcome {
        TaskOutcome::Result {
            json: result,
            files,
        } => {
            let classification = raw
                .get("min_classification")
                .and_then(Value::as_str)
                .unwrap_or("TLP:C");
            let uploadable: HashMap<String, UploadableFile> = files
                .into_iter()
                .map(|file| {
                    let upload = UploadableFile {
                        path: file.path,
                        classification: classification.to_string(),
                        is_supplementary: false,
                    };
                    (file.sha256, upload)
                })
                .collect();
            match shared
                .client
                .post_result(raw, &result, &uploadable, container_id)
                .await
            {
                Ok(()) => {
                    shared.results.fetch_add(1, Ordering::SeqCst);
                    metrics()
                        .tasks_completed
                        .with_label_values(&["result"])
                        .inc();
                    let score = result
                        .pointer("/result/score")
                        .and_then(serde_json::Value::as_i64);
                    info!(score, "result posted");
                    return;
                }
                Err(err) => {
                    warn!(error = %err, "the service server did not accept the result; posting an error instead");
                    TaskFailure::nonrecoverable(format!(
                        "the service server rejected the result: {err}"
                    ))
                }
            }
        }
        TaskOutcome::Error(failure) => failure,
    };
    let error = failure.to_json(sha256, &service_name, &shared.identity);
    match shared.client.post_error(raw, &error, container_id).await {
        Ok(()) => {
            shared.errors.fetch_add(1, Ordering::SeqCst);
            let outcome = match failure.status {
                ErrorStatus::Recoverable => "recoverable_error",
                ErrorStatus::NonRecoverable => "nonrecoverable_error",
            };
            metrics()
                .tasks_completed
                .with_label_values(&[outcome])
                .inc();
            info!(status = failure.status.as_str(), message = %failure.message, "error posted");
        }
        Err(err) => {
            shared.unposted.fetch_add(1, Ordering::SeqCst);
            metrics()
                .tasks_completed
                .with_label_values(&["unposted"])
                .inc();
            error!(error = %err, "could not post the task's error; AL will retry the task after its timeout");
        }
    }
}
