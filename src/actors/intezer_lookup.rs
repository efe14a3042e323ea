//! IntezerLookup: reads analyses from Intezer.
//!
//! Takes [`LookupHash`] (latest analysis of a SHA-256), [`FetchAnalysis`]
//! (one analysis by id, also used by the AnalysisWatcher to poll),
//! [`FetchReport`] (IOCs, TTPs, sub-analyses and their details) and
//! [`DownloadFile`] (a sub-file). Each reply is a typed outcome or an [`IntezerError`]. It
//! holds only the shared Intezer client, so a restart loses nothing but the
//! requests in flight, whose senders then see a `StageError`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use std::collections::HashMap;

use actix::{
    Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, ResponseFuture, WrapFuture,
};
use tokio::time::Instant;
use tracing::{debug, Instrument, Span};

use super::coalesce::InFlight;
use super::stage::{guard, StageError};
use crate::quota::TASK_PRIORITY;
use crate::telemetry::metrics::metrics;
use serde_json::Map;

use crate::intezer::{
    Analysis, AnalysisState, IntezerClient, IntezerError, Iocs, SubAnalysis, Ttp,
};
use crate::report::sub_analysis::is_reported;
use crate::report::SubAnalysisReport;

/// Outcome of a hash lookup.
#[derive(Debug, Clone, PartialEq)]
pub enum LookupOutcome {
    Found(Box<Analysis>),
    /// HTTP 404: Intezer has no analysis of this file visible to the key.
    NotFound,
    /// HTTP 410: Intezer dropped the analysis; treated like not found.
    Gone,
}

/// Look up the latest analysis of `sha256`.
pub struct LookupHash {
    pub sha256: String,
    pub private_only: bool,
    pub deadline: Instant,
    /// The task's AL priority, for the quota guard's queue.
    pub priority: i64,
    /// The task's span: the requests made for this message are its children.
    pub span: Span,
}

impl Message for LookupHash {
    type Result = Result<Result<LookupOutcome, IntezerError>, StageError>;
}

/// Read analysis `analysis_id`: its status, and its report once finished.
pub struct FetchAnalysis {
    pub analysis_id: String,
    pub deadline: Instant,
    /// The task's span: the requests made for this message are its children.
    pub span: Span,
}

impl Message for FetchAnalysis {
    type Result = Result<Result<AnalysisState, IntezerError>, StageError>;
}

pub struct IntezerLookup {
    client: Arc<IntezerClient>,
    mailbox_capacity: usize,
    /// Hash lookups in flight, by (sha256, private_only).
    lookups: InFlight<(String, bool), Result<LookupOutcome, IntezerError>>,
    cache: LookupCache,
}

impl IntezerLookup {
    /// `cache_for` is how long a found analysis serves repeated lookups
    /// of the same hash without a call; zero turns the cache off.
    pub fn new(
        client: Arc<IntezerClient>,
        mailbox_capacity: usize,
        cache_for: Duration,
    ) -> IntezerLookup {
        IntezerLookup {
            client,
            mailbox_capacity,
            lookups: InFlight::new(),
            cache: LookupCache::new(cache_for, LOOKUP_CACHE_ENTRIES),
        }
    }
}

/// Most analyses the lookup cache keeps; an analysis object is a few
/// hundred bytes, so the cache stays within a few megabytes.
const LOOKUP_CACHE_ENTRIES: usize = 10_000;

/// Finished analyses by (sha256, private_only), each kept for a while.
struct LookupCache {
    keep_for: Duration,
    max_entries: usize,
    entries: HashMap<(String, bool), (Instant, Analysis)>,
}

impl LookupCache {
    fn new(keep_for: Duration, max_entries: usize) -> LookupCache {
        LookupCache {
            keep_for,
            max_entries,
            entries: HashMap::new(),
        }
    }

    fn get(&self, key: &(String, bool)) -> Option<Analysis> {
        let (stored, analysis) = self.entries.get(key)?;
        (stored.elapsed() < self.keep_for).then(|| analysis.clone())
    }

    fn insert(&mut self, key: (String, bool), analysis: Analysis) {
        if self.keep_for.is_zero() {
            return;
        }
        if self.entries.len() >= self.max_entries {
            let keep_for = self.keep_for;
            self.entries
                .retain(|_, (stored, _)| stored.elapsed() < keep_for);
        }
        if self.entries.len() >= self.max_entries {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, (stored, _))| *stored)
                .map(|(key, _)| key.clone());
            if let Some(oldest) = oldest {
                self.entries.remove(&oldest);
            }
        }
        self.entries.insert(key, (Instant::now(), analysis));
    }
}

impl Actor for IntezerLookup {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(self.mailbox_capacity);
    }
}

impl Handler<LookupHash> for IntezerLookup {
    type Result = ResponseFuture<<LookupHash as Message>::Result>;

    fn handle(&mut self, message: LookupHash, ctx: &mut Context<Self>) -> Self::Result {
        let key = (message.sha256.clone(), message.private_only);
        if let Some(analysis) = self.cache.get(&key) {
            metrics().lookups.with_label_values(&["cached"]).inc();
            debug!(sha256 = %message.sha256, "hash lookup served from the cache");
            return Box::pin(async move { Ok(Ok(LookupOutcome::Found(Box::new(analysis)))) });
        }

        let client = self.client.clone();
        let (request, joined) = self
            .lookups
            .join_or_start(key.clone(), move || lookup_hash(client, message));
        if joined {
            metrics().lookups.with_label_values(&["coalesced"]).inc();
        } else {
            // When the request ends, forget it and keep a found analysis.
            let finished = request
                .clone()
                .into_actor(self)
                .map(move |outcome, act, _| {
                    act.lookups.finish(&key);
                    if let Ok(LookupOutcome::Found(analysis)) = outcome {
                        act.cache.insert(key, *analysis);
                    }
                });
            ctx.spawn(finished);
        }
        Box::pin(async move { Ok(request.await) })
    }
}

/// Looks `message.sha256` up once. A panic in the client becomes an error,
/// so every caller sharing the request gets a reply.
async fn lookup_hash(
    client: Arc<IntezerClient>,
    message: LookupHash,
) -> Result<LookupOutcome, IntezerError> {
    let priority = message.priority;
    let span = message.span.clone();
    let lookup = TASK_PRIORITY.scope(priority, async {
        match client
            .latest_analysis(&message.sha256, message.private_only, message.deadline)
            .await
        {
            Ok(analysis) => Ok(LookupOutcome::Found(Box::new(analysis))),
            Err(IntezerError::NotFound { .. }) => Ok(LookupOutcome::NotFound),
            Err(IntezerError::Gone { .. }) => Ok(LookupOutcome::Gone),
            Err(err) => Err(err),
        }
    });
    let outcome = guard("IntezerLookup", lookup.instrument(span))
        .await
        .unwrap_or_else(|panic| {
            Err(IntezerError::InvalidResponse {
                endpoint: "files.latest-analysis",
                message: panic.to_string(),
            })
        });
    debug!(sha256 = %message.sha256, outcome = ?outcome.as_ref().map(outcome_name), "hash lookup");
    outcome
}

fn outcome_name(outcome: &LookupOutcome) -> &'static str {
    match outcome {
        LookupOutcome::Found(_) => "found",
        LookupOutcome::NotFound => "not found",
        LookupOutcome::Gone => "gone",
    }
}

impl Handler<FetchAnalysis> for IntezerLookup {
    type Result = ResponseFuture<<FetchAnalysis as Message>::Result>;

    fn handle(&mut self, message: FetchAnalysis, _: &mut Context<Self>) -> Self::Result {
        let client = self.client.clone();
        let span = message.span.clone();
        Box::pin(guard(
            "IntezerLookup",
            async move {
                client
                    .analysis(&message.analysis_id, message.deadline)
                    .await
            }
            .instrument(span),
        ))
    }
}

/// Parts of a report to read. Each switch that is off removes its calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportOptions {
    pub iocs: bool,
    pub ttps: bool,
    pub sub_analyses: bool,
    pub strings: bool,
    /// Interval between polls of a strings operation.
    pub strings_poll: Duration,
}

/// Read the parts of analysis `analysis_id` that the result shows.
pub struct FetchReport {
    pub analysis_id: String,
    pub options: ReportOptions,
    pub deadline: Instant,
    /// The task's AL priority, for the quota guard's queue.
    pub priority: i64,
    /// The task's span: the requests made for this message are its children.
    pub span: Span,
}

/// The parts of a report, as far as Intezer has them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReportData {
    /// `None` when Intezer has none (404), the plan lacks them (403), or
    /// they were not read.
    pub iocs: Option<Iocs>,
    pub ttps: Vec<Ttp>,
    /// Sub-analyses that are reported, with their details.
    pub sub_analyses: Vec<SubAnalysisReport>,
}

impl Message for FetchReport {
    type Result = Result<Result<ReportData, IntezerError>, StageError>;
}

impl Handler<FetchReport> for IntezerLookup {
    type Result = ResponseFuture<<FetchReport as Message>::Result>;

    fn handle(&mut self, message: FetchReport, _: &mut Context<Self>) -> Self::Result {
        let client = self.client.clone();
        let span = message.span.clone();
        Box::pin(guard(
            "IntezerLookup",
            async move { fetch_report(&client, &message).await }.instrument(span),
        ))
    }
}

/// Reads IOCs, TTPs and sub-analyses at once, then the details of each
/// sub-analysis. A part the plan or the analysis does not have (403, 404)
/// is left empty. Any other failure fails the report, because the result
/// would silently miss that part.
async fn fetch_report(
    client: &IntezerClient,
    message: &FetchReport,
) -> Result<ReportData, IntezerError> {
    let id = message.analysis_id.as_str();
    let options = message.options;
    let deadline = message.deadline;

    let iocs = async {
        if !options.iocs {
            return Ok(None);
        }
        match client.iocs(id, deadline).await {
            Ok(iocs) => Ok(Some(iocs)),
            Err(err) if is_absent(&err) => Ok(None),
            Err(err) => Err(err),
        }
    };
    let ttps = async {
        if !options.ttps {
            return Ok(Vec::new());
        }
        match client.dynamic_ttps(id, deadline).await {
            Err(err) if is_absent(&err) => Ok(Vec::new()),
            other => other,
        }
    };
    let subs = async {
        if !options.sub_analyses {
            return Ok(Vec::new());
        }
        match client.sub_analyses(id, deadline).await {
            Err(err) if is_absent(&err) => Ok(Vec::new()),
            other => other,
        }
    };
    let (iocs, ttps, subs) = futures_util::join!(iocs, ttps, subs);
    let (iocs, ttps, subs) = (iocs?, ttps?, subs?);

    let details = subs
        .into_iter()
        .map(|sub| sub_analysis_details(client, id, sub, options, deadline));
    let sub_analyses = futures_util::future::join_all(details)
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flatten()
        .collect();
    Ok(ReportData {
        iocs,
        ttps,
        sub_analyses,
    })
}

/// Reads one sub-analysis's code reuse, then, if it is reported, its
/// metadata and strings. `Ok(None)` when it is not reported. A part Intezer
/// does not have (403, 404) is left out; any other failure fails the
/// report, so that a result is never posted, and cached by AL, with parts
/// silently missing.
async fn sub_analysis_details(
    client: &IntezerClient,
    analysis_id: &str,
    sub: SubAnalysis,
    options: ReportOptions,
    deadline: Instant,
) -> Result<Option<SubAnalysisReport>, IntezerError> {
    let sub_id = sub.sub_analysis_id.clone();
    let absent = |part: &str, err: &IntezerError| {
        debug!(analysis_id, sub_analysis_id = %sub_id, error = %err, "no {part} for sub-analysis");
    };
    let code_reuse = match client.code_reuse(analysis_id, &sub_id, deadline).await {
        Ok(code_reuse) => code_reuse,
        Err(err) if is_absent(&err) => {
            absent("code reuse", &err);
            None
        }
        Err(err) => return Err(err),
    };
    if !is_reported(&sub, code_reuse.as_ref()) {
        return Ok(None);
    }
    let metadata = async {
        match client.metadata(analysis_id, &sub_id, deadline).await {
            Err(err) if is_absent(&err) => {
                absent("metadata", &err);
                Ok(Map::new())
            }
            other => other,
        }
    };
    let strings = async {
        if !options.strings {
            return Ok(None);
        }
        match client
            .strings(analysis_id, &sub_id, options.strings_poll, deadline)
            .await
        {
            Ok(strings) => Ok(Some(strings)),
            Err(err) if is_absent(&err) => {
                absent("strings", &err);
                Ok(None)
            }
            Err(err) => Err(err),
        }
    };
    let (metadata, strings) = futures_util::join!(metadata, strings);
    Ok(Some(SubAnalysisReport {
        sub,
        code_reuse,
        metadata: metadata?,
        strings: strings?,
    }))
}

/// Checks whether an error means Intezer has no such data for this
/// analysis or plan, rather than a failure.
fn is_absent(err: &IntezerError) -> bool {
    matches!(
        err,
        IntezerError::NotFound { .. }
            | IntezerError::Forbidden { .. }
            | IntezerError::InsufficientPermissions { .. }
    )
}

/// Download file `sha256` from Intezer to `dest`. Each download costs one
/// file scan of the quota.
pub struct DownloadFile {
    pub sha256: String,
    pub dest: PathBuf,
    pub deadline: Instant,
    /// The task's span: the requests made for this message are its children.
    pub span: Span,
}

impl Message for DownloadFile {
    type Result = Result<Result<u64, IntezerError>, StageError>;
}

impl Handler<DownloadFile> for IntezerLookup {
    type Result = ResponseFuture<<DownloadFile as Message>::Result>;

    fn handle(&mut self, message: DownloadFile, _: &mut Context<Self>) -> Self::Result {
        let client = self.client.clone();
        let span = message.span.clone();
        Box::pin(guard(
            "IntezerLookup",
            async move {
                client
                    .download_file(&message.sha256, &message.dest, message.deadline)
                    .await
            }
            .instrument(span),
        ))
    }
}
