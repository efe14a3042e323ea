//! The pipeline: the actors that analyse one file, and the flow that takes a
//! task through them.
//!
//! IntezerLookup finds the file's analysis. When Intezer does not know the
//! file and submission is allowed, the Submitter uploads it and the
//! AnalysisWatcher waits for the analysis. The ResultBuilder renders the
//! result. TaskIntake (for `serve`) and the `scan` command both drive tasks
//! through [`Pipeline::analyse`], which always returns exactly one outcome.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Supervised, Supervisor, SyncArbiter};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use tokio::time::Instant;
use tracing::{info, warn, Span};

use super::analysis_watcher::{AnalysisWatcher, WatchAnalysis, WatchError, WatchOutcome};
use super::hasher::HashFile;
use super::hasher::Hasher;
use super::intezer_lookup::{
    DownloadFile, FetchAnalysis, FetchReport, IntezerLookup, LookupHash, LookupOutcome, ReportData,
    ReportOptions,
};
use super::result_builder::{BuildResult, Findings, ResultBuilder};
use super::stage::{Stage, StageError};
use super::submitter::{SubmitFile, Submitted, Submitter};
use super::work_folder::extracted_file;
use crate::assemblyline::result::FileEntry;
use crate::assemblyline::{
    ServiceIdentity, ServiceServerClient, ServiceServerError, Task, TaskFailure,
};
use crate::config::{ServiceConfig, SubmissionParams};
use crate::intezer::{Analysis, AnalysisState, IntezerClient, IntezerError};
use crate::report::main_verdict;
use crate::report::safelist::SharedSafelist;
use crate::report::sub_analysis::extraction_candidates;
use crate::telemetry::metrics::metrics;

/// Threads of the Hasher's `SyncArbiter`.
const HASHER_THREADS: usize = 2;

/// Time kept between the end of an analysis wait and the task deadline.
const WAIT_MARGIN: Duration = Duration::from_secs(2);

/// Interval between polls of a strings operation, which Intezer usually
/// finishes within seconds.
const STRINGS_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The outcome of one task: exactly one of these is posted.
#[derive(Debug, Clone)]
pub enum TaskOutcome {
    /// The result JSON and the local copies of the files it extracts, which
    /// the service server may ask to upload.
    Result {
        json: Value,
        files: Vec<FileEntry>,
    },
    Error(TaskFailure),
}

/// Everything the pipeline needs to start.
pub struct PipelineSettings {
    pub config: Arc<ServiceConfig>,
    pub identity: Arc<ServiceIdentity>,
    /// Submission parameter defaults, lowest precedence first: the
    /// manifest's, then the server's.
    pub param_defaults: Vec<Map<String, Value>>,
    pub client: Arc<IntezerClient>,
    /// Tasks in flight at once; sizes the actors' mailboxes.
    pub concurrency: usize,
    /// The service server and the container id to ask it with, to get
    /// sub-files from AL before spending Intezer quota on them. `None` for
    /// `scan`.
    pub file_source: Option<(ServiceServerClient, String)>,
    pub safelist: SharedSafelist,
}

/// The running actors of the pipeline.
pub struct Pipeline {
    pub hasher: Arc<Stage<Hasher>>,
    pub lookup: Arc<Stage<IntezerLookup>>,
    pub submitter: Arc<Stage<Submitter>>,
    pub watcher: Arc<Stage<AnalysisWatcher>>,
    pub builder: Arc<Stage<ResultBuilder>>,
    config: Arc<ServiceConfig>,
    param_defaults: Vec<Map<String, Value>>,
    file_source: Option<(ServiceServerClient, String)>,
}

impl Supervised for IntezerLookup {}
impl Supervised for Submitter {}
impl Supervised for AnalysisWatcher {}
impl Supervised for ResultBuilder {}

impl Pipeline {
    /// Starts every actor. Must run inside an actix `System`.
    pub fn start(settings: PipelineSettings) -> Pipeline {
        let capacity = settings.concurrency.max(1);
        let hasher = Arc::new(Stage::start("Hasher", || {
            SyncArbiter::start(HASHER_THREADS, Hasher::default)
        }));

        let client = settings.client.clone();
        let cache_for = Duration::from_secs(settings.config.lookup_cache_seconds);
        let lookup = Arc::new(Stage::start("IntezerLookup", move || {
            let client = client.clone();
            Supervisor::start(move |_| IntezerLookup::new(client.clone(), capacity, cache_for))
        }));

        let client = settings.client.clone();
        let submitter = Arc::new(Stage::start("Submitter", move || {
            let client = client.clone();
            Supervisor::start(move |_| Submitter::new(client.clone(), capacity))
        }));

        let watcher_lookup = lookup.clone();
        let watcher = Arc::new(Stage::start("AnalysisWatcher", move || {
            let lookup = watcher_lookup.clone();
            Supervisor::start(move |_| AnalysisWatcher::new(lookup.clone(), capacity))
        }));

        let config = settings.config.clone();
        let identity = settings.identity.clone();
        let safelist = settings.safelist.clone();
        let builder = Arc::new(Stage::start("ResultBuilder", move || {
            let (config, identity, safelist) = (config.clone(), identity.clone(), safelist.clone());
            ResultBuilder::new(config, identity, safelist, capacity).start()
        }));

        Pipeline {
            hasher,
            lookup,
            submitter,
            watcher,
            builder,
            config: settings.config,
            param_defaults: settings.param_defaults,
            file_source: settings.file_source,
        }
    }

    /// Analyses `file` for `task` and returns the result or the error to
    /// post. Every path ends in one outcome; the caller bounds the call by
    /// `deadline` and guards it against panics.
    pub async fn analyse(
        &self,
        task: &Task,
        file: &Path,
        work_dir: &Path,
        started: DateTime<Utc>,
        deadline: Instant,
    ) -> TaskOutcome {
        let findings = match self.find(task, file, work_dir, deadline).await {
            Ok(findings) => findings,
            Err(failure) => return TaskOutcome::Error(failure),
        };
        let files = match &findings {
            Findings::Analysis { extracted, .. } => extracted.clone(),
            _ => Vec::new(),
        };
        let message = BuildResult {
            task: task.clone(),
            findings,
            started,
        };
        match self.builder.send(message).await {
            Ok(json) => TaskOutcome::Result { json, files },
            Err(err) => TaskOutcome::Error(stage_failure(&err)),
        }
    }

    async fn find(
        &self,
        task: &Task,
        file: &Path,
        work_dir: &Path,
        deadline: Instant,
    ) -> Result<Findings, TaskFailure> {
        let layers = self
            .param_defaults
            .iter()
            .chain(std::iter::once(&task.service_config));
        let params = SubmissionParams::resolve(layers).map_err(|err| {
            TaskFailure::nonrecoverable(format!("invalid submission parameters: {err}"))
        })?;

        let analysis = match &params.analysis_id {
            Some(analysis_id) => match self.analysis_by_id(task, analysis_id, deadline).await? {
                Some(analysis) => analysis,
                None => {
                    return Ok(Findings::Note {
                        partial: false,
                        title: "Intezer analysis not found".to_string(),
                        lines: vec![format!(
                            "Intezer has no analysis {analysis_id}, named by the analysis_id submission parameter."
                        )],
                    })
                }
            },
            None => match self.analysis_by_hash(task, file, &params, deadline).await? {
                Ok(analysis) => analysis,
                Err(findings) => return Ok(findings),
            },
        };

        let Some(verdict) = main_verdict(&analysis, &self.config) else {
            metrics().verdicts.with_label_values(&["none"]).inc();
            return Ok(Findings::Empty);
        };
        metrics()
            .verdicts
            .with_label_values(&[verdict_label(&verdict)])
            .inc();
        let config = &self.config;
        let options = ReportOptions {
            iocs: config.fetch_iocs,
            // Dynamic TTPs are not served by on-premise Intezer.
            ttps: config.fetch_ttps && !config.is_on_premise,
            sub_analyses: config.fetch_sub_analyses,
            strings: config.fetch_sub_analyses && config.fetch_strings,
            strings_poll: STRINGS_POLL_INTERVAL,
        };
        let message = FetchReport {
            analysis_id: analysis.analysis_id.clone(),
            priority: task.priority,
            options,
            deadline,
            span: Span::current(),
        };
        let report = self
            .lookup
            .call(message)
            .await
            .map_err(|err| stage_failure(&err))?
            .map_err(|err| intezer_failure(&err, "reading the analysis report"))?;
        let (extracted, notes) = self.extract_files(task, &report, work_dir, deadline).await;
        Ok(Findings::Analysis {
            analysis: Box::new(analysis),
            report: Box::new(report),
            extracted,
            notes,
        })
    }

    /// Gets the files of the reported sub-analyses, as many as the task's
    /// `max_files` allows: from AL when it has them, else from Intezer, which
    /// costs one file scan each. Returns the files and a note for each file
    /// left out. A failed download never fails the task.
    async fn extract_files(
        &self,
        task: &Task,
        report: &ReportData,
        work_dir: &Path,
        deadline: Instant,
    ) -> (Vec<FileEntry>, Vec<String>) {
        let mut files = Vec::new();
        let mut notes = Vec::new();
        if !self.config.download_subfiles {
            return (files, notes);
        }
        let candidates = extraction_candidates(&report.sub_analyses, &task.sha256);
        for (index, (sha256, method)) in candidates.iter().enumerate() {
            if files.len() as u64 >= task.max_files {
                notes.push(format!(
                    "{} sub-files not extracted: the submission allows {} extracted files",
                    candidates.len() - index,
                    task.max_files
                ));
                break;
            }
            let dest = extracted_file(work_dir, files.len());
            match self.fetch_sub_file(sha256, &dest, deadline).await {
                Ok(source) => {
                    metrics().extracted_files.with_label_values(&[source]).inc();
                    files.push(FileEntry {
                        name: format!("{sha256}.sample"),
                        sha256: sha256.clone(),
                        description: format!("Extracted via {method}"),
                        path: dest,
                    });
                }
                Err(failure) => {
                    let reason = &failure.reason;
                    warn!(sha256 = %task.sha256, sub_file = %sha256, reason = %reason, "sub-file not extracted");
                    notes.push(format!("{sha256} not extracted: {reason}"));
                    // What a failed download left in `dest` stays: the next
                    // sub-file overwrites it and the working folder is
                    // emptied after the task, while deleting it would cost
                    // the next file a new inode.
                    //
                    // A file Intezer does not have says nothing about the
                    // next one. Any other failure (a plan without downloads,
                    // the quota) would repeat, so the rest are skipped.
                    if !failure.not_available && !self.config.try_to_download_every_file {
                        let left = candidates.len() - index - 1;
                        if left > 0 {
                            notes.push(format!(
                                "{left} more sub-files not tried, because try_to_download_every_file is off"
                            ));
                        }
                        break;
                    }
                }
            }
        }
        (files, notes)
    }

    /// Gets one sub-file into `dest` and checks its SHA-256. Returns where
    /// it came from (`assemblyline` or `intezer`) or why it could not be had.
    async fn fetch_sub_file(
        &self,
        sha256: &str,
        dest: &Path,
        deadline: Instant,
    ) -> Result<&'static str, SubFileFailure> {
        let mut source = None;
        if let Some((client, container_id)) = &self.file_source {
            match client.download_file(sha256, dest, container_id).await {
                Ok(_) => source = Some("assemblyline"),
                Err(ServiceServerError::NotFound { .. }) => {}
                Err(err) => {
                    warn!(sub_file = sha256, error = %err, "AL could not serve the sub-file; asking Intezer")
                }
            }
        }
        if source.is_none() {
            let message = DownloadFile {
                sha256: sha256.to_string(),
                dest: dest.to_path_buf(),
                deadline,
                span: Span::current(),
            };
            match self.lookup.call(message).await {
                Ok(Ok(_)) => source = Some("intezer"),
                Ok(Err(err)) => {
                    let not_available = matches!(err, IntezerError::NotFound { .. });
                    let reason = format!("Intezer download failed: {err}");
                    return Err(SubFileFailure {
                        reason,
                        not_available,
                    });
                }
                Err(err) => return Err(SubFileFailure::other(err.to_string())),
            }
        }
        let digest = self
            .hasher
            .send(HashFile {
                path: dest.to_path_buf(),
            })
            .await
            .map_err(|err| SubFileFailure::other(err.to_string()))?
            .map_err(|err| SubFileFailure::other(err.to_string()))?;
        if digest.sha256 != sha256 {
            let reason = format!("the downloaded file's SHA-256 is {}", digest.sha256);
            return Err(SubFileFailure::other(reason));
        }
        source.ok_or_else(|| SubFileFailure::other("no source had the file".to_string()))
    }

    /// Reads the analysis named by the `analysis_id` parameter and waits for
    /// it if it is still running. Returns `None` when Intezer does not know
    /// the id.
    async fn analysis_by_id(
        &self,
        task: &Task,
        analysis_id: &str,
        deadline: Instant,
    ) -> Result<Option<Analysis>, TaskFailure> {
        let message = FetchAnalysis {
            analysis_id: analysis_id.to_string(),
            deadline,
            span: Span::current(),
        };
        let answer = self
            .lookup
            .call(message)
            .await
            .map_err(|err| stage_failure(&err))?;
        match answer {
            Ok(AnalysisState::Finished(analysis)) => Ok(Some(analysis)),
            Ok(AnalysisState::Failed) => Err(failed_analysis(task, analysis_id)),
            Ok(AnalysisState::Running { .. }) => {
                self.wait(task, analysis_id, deadline).await.map(Some)
            }
            Err(IntezerError::NotFound { .. }) => {
                warn!(sid = %task.sid, analysis_id, "the analysis_id parameter names an unknown analysis");
                Ok(None)
            }
            Err(err) => Err(intezer_failure(
                &err,
                "reading the analysis named by analysis_id",
            )),
        }
    }

    /// Looks up the latest analysis of the file, submitting the file first
    /// when Intezer does not know it and both switches allow it.
    async fn analysis_by_hash(
        &self,
        task: &Task,
        file: &Path,
        params: &SubmissionParams,
        deadline: Instant,
    ) -> Result<Result<Analysis, Findings>, TaskFailure> {
        let message = LookupHash {
            sha256: task.sha256.clone(),
            priority: task.priority,
            private_only: self.config.private_only,
            deadline,
            span: Span::current(),
        };
        let answer = self
            .lookup
            .call(message)
            .await
            .map_err(|err| stage_failure(&err))?;
        let outcome = match &answer {
            Ok(LookupOutcome::Found(_)) => "found",
            Ok(LookupOutcome::NotFound) => "not_found",
            Ok(LookupOutcome::Gone) => "gone",
            Err(_) => "error",
        };
        metrics().lookups.with_label_values(&[outcome]).inc();
        match answer {
            Ok(LookupOutcome::Found(analysis)) => return Ok(Ok(*analysis)),
            Ok(LookupOutcome::NotFound) | Ok(LookupOutcome::Gone) => {}
            Err(err) => return Err(intezer_failure(&err, "looking the file up")),
        }

        if !self.config.allow_dynamic_submit || !params.dynamic_submit {
            info!(
                sid = %task.sid,
                sha256 = %task.sha256,
                allow_dynamic_submit = self.config.allow_dynamic_submit,
                dynamic_submit = params.dynamic_submit,
                "Intezer does not know the file and submission is off"
            );
            return Ok(Err(Findings::Empty));
        }

        let message = SubmitFile {
            path: file.to_path_buf(),
            priority: task.priority,
            file_name: task.file_name.clone(),
            sha256: task.sha256.clone(),
            deadline,
            span: Span::current(),
        };
        let answer = self
            .submitter
            .call(message)
            .await
            .map_err(|err| stage_failure(&err))?;
        metrics()
            .submissions
            .with_label_values(&[submission_outcome(&answer)])
            .inc();
        let submitted = match answer {
            Ok(submitted) => submitted,
            Err(
                err @ (IntezerError::UnsupportedFileType
                | IntezerError::FileTooLarge
                | IntezerError::PasswordProtected
                | IntezerError::SkippedByRule),
            ) => {
                info!(sid = %task.sid, sha256 = %task.sha256, reason = %err, "Intezer cannot analyse the file");
                return Ok(Err(Findings::Empty));
            }
            Err(IntezerError::InsufficientQuota { message })
            | Err(IntezerError::QuotaHeld {
                endpoint: "analyze",
                message,
                ..
            }) => {
                warn!(sid = %task.sid, sha256 = %task.sha256, reason = %message, "the file was not submitted for lack of quota");
                return Ok(Err(Findings::Note {
                    title: "Not submitted to Intezer".to_string(),
                    lines: vec![
                        "Intezer does not know this file, and it was not submitted because the \
                         quota of file scans is used up or uploads are held back."
                            .to_string(),
                        format!("Reason: {message}"),
                        "The result is marked partial, so Assemblyline does not cache it."
                            .to_string(),
                    ],
                    partial: true,
                }));
            }
            Err(err) => return Err(intezer_failure(&err, "submitting the file")),
        };
        self.wait(task, submitted.analysis_id(), deadline)
            .await
            .map(Ok)
    }

    /// Waits for a running analysis until it finishes, the configured
    /// analysis timeout passes, or the task deadline comes near.
    async fn wait(
        &self,
        task: &Task,
        analysis_id: &str,
        deadline: Instant,
    ) -> Result<Analysis, TaskFailure> {
        let limit = Instant::now() + Duration::from_secs(self.config.analysis_timeout_in_seconds);
        let message = WatchAnalysis {
            analysis_id: analysis_id.to_string(),
            poll_interval: Duration::from_secs(self.config.polling_period_in_seconds.max(1)),
            // Stop waiting a little before the deadline, so the task's
            // error names the analysis id instead of a bare timeout.
            wait_until: limit.min(deadline - WAIT_MARGIN),
            span: Span::current(),
        };
        let waiting_since = std::time::Instant::now();
        let outcome = self
            .watcher
            .send(message)
            .await
            .map_err(|err| stage_failure(&err))?;
        metrics()
            .analysis_wait
            .observe(waiting_since.elapsed().as_secs_f64());
        match outcome {
            Ok(WatchOutcome::Finished(analysis)) => Ok(*analysis),
            Ok(WatchOutcome::Failed) => Err(failed_analysis(task, analysis_id)),
            Ok(WatchOutcome::StillRunning { status, polls }) => {
                Err(TaskFailure::recoverable(format!(
                    "Intezer analysis {analysis_id} was still {status} after {polls} polls; \
                 Assemblyline will retry the task, and the analysis will be read once it finishes"
                )))
            }
            Err(WatchError::Intezer(err)) => Err(intezer_failure(&err, "waiting for the analysis")),
            Err(WatchError::Stage(err)) => Err(stage_failure(&err)),
            Err(err @ WatchError::WatcherStopped) => Err(TaskFailure::recoverable(err.to_string())),
        }
    }
}

/// Reason a sub-file could not be extracted.
struct SubFileFailure {
    reason: String,
    /// Intezer responded that it does not have the file (HTTP 404).
    not_available: bool,
}

impl SubFileFailure {
    fn other(reason: String) -> SubFileFailure {
        SubFileFailure {
            reason,
            not_available: false,
        }
    }
}

/// Metric label of an upload's outcome.
fn submission_outcome(answer: &Result<Submitted, IntezerError>) -> &'static str {
    match answer {
        Ok(Submitted::Created { .. }) => "accepted",
        Ok(Submitted::AlreadyRunning { .. }) => "already_running",
        Err(IntezerError::UnsupportedFileType) => "unsupported",
        Err(IntezerError::FileTooLarge) => "too_large",
        Err(IntezerError::PasswordProtected) => "password_protected",
        Err(IntezerError::SkippedByRule) => "skipped",
        Err(IntezerError::InsufficientQuota { .. }) => "quota",
        Err(_) => "error",
    }
}

/// Metric label of a verdict: known verdicts as they are, anything else
/// `other`, so a server sending new values cannot grow the label set.
fn verdict_label(verdict: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "malicious",
        "known_malicious",
        "suspicious",
        "administration_tool",
        "known_administration_tool",
        "packed",
        "script",
        "probably_packed",
        "interesting",
        "unique",
        "no_genes",
        "almost_no_genes",
        "inconclusive",
        "installer",
        "no_code",
        "unknown",
        "neutral",
        "testing",
    ];
    KNOWN
        .iter()
        .find(|known| **known == verdict)
        .copied()
        .unwrap_or("other")
}

fn failed_analysis(task: &Task, analysis_id: &str) -> TaskFailure {
    TaskFailure::nonrecoverable(format!(
        "Intezer analysis {analysis_id} of {} failed: Intezer could not analyse this file",
        task.sha256
    ))
}

/// Builds the error posted for a task whose Intezer call failed while `doing`.
/// Problems that a retry cannot fix (the key, the plan, a rejected request)
/// are not recoverable; the rest are, so AL tries the task again.
pub fn intezer_failure(err: &IntezerError, doing: &str) -> TaskFailure {
    let message = format!("Intezer failed while {doing}: {err}");
    match err {
        IntezerError::InvalidApiKey { .. }
        | IntezerError::Forbidden { .. }
        | IntezerError::InsufficientPermissions { .. }
        | IntezerError::BadRequest { .. }
        | IntezerError::Config(_) => TaskFailure::nonrecoverable(message),
        _ => TaskFailure::recoverable(message),
    }
}

pub fn stage_failure(err: &StageError) -> TaskFailure {
    TaskFailure::recoverable(format!("internal error, the task can be retried: {err}"))
}
