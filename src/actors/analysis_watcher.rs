//! AnalysisWatcher: waits for running Intezer analyses to finish.
//!
//! Takes [`WatchAnalysis`] and answers with a [`WatchOutcome`] once the
//! analysis finished, failed, or the caller's wait ended. It owns one entry
//! per analysis id with the callers waiting on it, so tasks that wait for the
//! same analysis share its polls. Polls are actor timers that send
//! `FetchAnalysis` to the IntezerLookup; no thread or task sleeps per
//! analysis. If this actor stops, the waiting callers' answer channels close
//! and each of their tasks is completed with a recoverable error.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::{debug, warn, Span};

use super::intezer_lookup::{FetchAnalysis, IntezerLookup};
use super::stage::{Stage, StageError};
use crate::intezer::{Analysis, AnalysisState, IntezerError};
use crate::telemetry::metrics::metrics;

/// Wait for analysis `analysis_id`, polling every `poll_interval` until
/// `wait_until`.
pub struct WatchAnalysis {
    pub analysis_id: String,
    pub poll_interval: Duration,
    pub wait_until: Instant,
    /// The span of the first task that waits: the polls are its children.
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum WatchOutcome {
    Finished(Box<Analysis>),
    Failed,
    /// The wait ended while the analysis was still running.
    StillRunning {
        status: String,
        polls: u32,
    },
}

/// Failure of a watch that ended without an outcome.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(transparent)]
    Intezer(#[from] IntezerError),
    #[error(transparent)]
    Stage(#[from] StageError),
    #[error("the analysis watcher stopped before the analysis finished")]
    WatcherStopped,
}

impl Message for WatchAnalysis {
    type Result = Result<WatchOutcome, WatchError>;
}

type Reply = oneshot::Sender<Result<WatchOutcome, WatchError>>;

struct Waiter {
    reply: Reply,
    wait_until: Instant,
}

/// One analysis being watched and the callers waiting on it.
struct Watch {
    waiters: Vec<Waiter>,
    poll_interval: Duration,
    last_status: String,
    polls: u32,
    poll_in_flight: bool,
    timer: Option<SpawnHandle>,
    /// Parent of the polls' spans.
    span: Span,
}

pub struct AnalysisWatcher {
    lookup: Arc<Stage<IntezerLookup>>,
    watches: HashMap<String, Watch>,
    mailbox_capacity: usize,
}

impl AnalysisWatcher {
    pub fn new(lookup: Arc<Stage<IntezerLookup>>, mailbox_capacity: usize) -> AnalysisWatcher {
        AnalysisWatcher {
            lookup,
            watches: HashMap::new(),
            mailbox_capacity,
        }
    }

    /// Number of analyses being watched.
    pub fn watched(&self) -> usize {
        self.watches.len()
    }

    /// Arms the timer of `analysis_id` for its next poll, or for the
    /// earliest waiter's end if that comes first.
    fn schedule(&mut self, analysis_id: &str, ctx: &mut Context<Self>) {
        let Some(watch) = self.watches.get_mut(analysis_id) else {
            return;
        };
        if let Some(timer) = watch.timer.take() {
            ctx.cancel_future(timer);
        }
        let earliest_end = watch
            .waiters
            .iter()
            .map(|w| w.wait_until)
            .min()
            .unwrap_or_else(Instant::now);
        let next_poll = Instant::now() + watch.poll_interval;
        let at = next_poll.min(earliest_end);
        let id = analysis_id.to_string();
        let handle = ctx.run_later(
            at.saturating_duration_since(Instant::now()),
            move |act, ctx| {
                act.on_timer(&id, ctx);
            },
        );
        watch.timer = Some(handle);
    }

    fn on_timer(&mut self, analysis_id: &str, ctx: &mut Context<Self>) {
        self.expire_waiters(analysis_id);
        metrics().analyses_in_flight.set(self.watches.len() as i64);
        let Some(watch) = self.watches.get_mut(analysis_id) else {
            return;
        };
        watch.timer = None;
        if watch.poll_in_flight {
            return;
        }
        watch.poll_in_flight = true;
        let deadline = watch
            .waiters
            .iter()
            .map(|w| w.wait_until)
            .max()
            .unwrap_or_else(Instant::now);
        let lookup = self.lookup.clone();
        let message = FetchAnalysis {
            analysis_id: analysis_id.to_string(),
            deadline,
            span: watch.span.clone(),
        };
        let id = analysis_id.to_string();
        let poll = async move { lookup.call(message).await };
        ctx.spawn(
            poll.into_actor(self)
                .map(move |answer, act, ctx| act.on_polled(&id, answer, ctx)),
        );
    }

    /// Replies to the waiters whose wait has ended and drops the watch when
    /// no one waits any more.
    fn expire_waiters(&mut self, analysis_id: &str) {
        let Some(watch) = self.watches.get_mut(analysis_id) else {
            return;
        };
        let now = Instant::now();
        let (expired, waiting): (Vec<Waiter>, Vec<Waiter>) = watch
            .waiters
            .drain(..)
            .partition(|waiter| waiter.wait_until <= now);
        watch.waiters = waiting;
        for waiter in expired {
            let outcome = WatchOutcome::StillRunning {
                status: watch.last_status.clone(),
                polls: watch.polls,
            };
            let _ = waiter.reply.send(Ok(outcome));
        }
        if watch.waiters.is_empty() && !watch.poll_in_flight {
            self.watches.remove(analysis_id);
        }
    }

    fn on_polled(
        &mut self,
        analysis_id: &str,
        answer: Result<Result<AnalysisState, IntezerError>, StageError>,
        ctx: &mut Context<Self>,
    ) {
        let Some(watch) = self.watches.get_mut(analysis_id) else {
            return;
        };
        watch.poll_in_flight = false;
        watch.polls += 1;
        let finished = match answer {
            Ok(Ok(AnalysisState::Running { status })) => {
                debug!(analysis_id, status = %status, polls = watch.polls, "analysis still running");
                watch.last_status = status;
                None
            }
            Ok(Ok(AnalysisState::Finished(analysis))) => {
                Some(Ok(WatchOutcome::Finished(Box::new(analysis))))
            }
            Ok(Ok(AnalysisState::Failed)) => Some(Ok(WatchOutcome::Failed)),
            Ok(Err(err)) if err.is_transient() => {
                warn!(analysis_id, error = %err, "analysis poll failed; polling again");
                None
            }
            Ok(Err(err)) => Some(Err(WatchError::Intezer(err))),
            Err(err) => Some(Err(WatchError::Stage(err))),
        };
        match finished {
            Some(outcome) => {
                let watch = self.watches.remove(analysis_id).expect("watch exists");
                metrics().analyses_in_flight.set(self.watches.len() as i64);
                let mut waiters = watch.waiters.into_iter();
                let first = waiters.next();
                for waiter in waiters {
                    let copy = match &outcome {
                        Ok(value) => Ok(value.clone()),
                        Err(err) => Err(WatchError::Intezer(copy_error(err))),
                    };
                    let _ = waiter.reply.send(copy);
                }
                if let Some(first) = first {
                    let _ = first.reply.send(outcome);
                }
            }
            None => {
                self.expire_waiters(analysis_id);
                if self.watches.contains_key(analysis_id) {
                    self.schedule(analysis_id, ctx);
                }
            }
        }
    }
}

/// Copies the error of a failed watch for the second and later waiters,
/// because errors are not `Clone`. The first waiter gets the original.
fn copy_error(err: &WatchError) -> IntezerError {
    match err {
        WatchError::Intezer(inner) => IntezerError::InvalidResponse {
            endpoint: "analyses.get",
            message: inner.to_string(),
        },
        other => IntezerError::InvalidResponse {
            endpoint: "analyses.get",
            message: other.to_string(),
        },
    }
}

impl Actor for AnalysisWatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(self.mailbox_capacity);
    }
}

impl Handler<WatchAnalysis> for AnalysisWatcher {
    type Result = ResponseFuture<Result<WatchOutcome, WatchError>>;

    fn handle(&mut self, message: WatchAnalysis, ctx: &mut Context<Self>) -> Self::Result {
        let (reply, answer) = oneshot::channel();
        let waiter = Waiter {
            reply,
            wait_until: message.wait_until,
        };
        let is_new = !self.watches.contains_key(&message.analysis_id);
        let watch = self
            .watches
            .entry(message.analysis_id.clone())
            .or_insert_with(|| Watch {
                waiters: Vec::new(),
                poll_interval: message.poll_interval,
                last_status: "created".to_string(),
                polls: 0,
                poll_in_flight: false,
                timer: None,
                span: message.span.clone(),
            });
        watch.poll_interval = watch.poll_interval.min(message.poll_interval);
        watch.waiters.push(waiter);
        if is_new || watch.timer.is_none() {
            self.schedule(&message.analysis_id, ctx);
            metrics().analyses_in_flight.set(self.watches.len() as i64);
        }
        Box::pin(async move { answer.await.unwrap_or(Err(WatchError::WatcherStopped)) })
    }
}
