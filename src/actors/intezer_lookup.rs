//! IntezerLookup: reads analyses from Intezer.
//!
//! Takes [`LookupHash`] (latest analysis of a SHA-256), [`FetchAnalysis`]
//! (one analysis by id, also used by the AnalysisWatcher to poll) and
//! [`FetchIocs`]. Each answer is a typed outcome or an [`IntezerError`]. It
//! holds only the shared Intezer client, so a restart loses nothing but the
//! requests in flight, whose senders then see a `StageError`.

use std::sync::Arc;

use actix::{Actor, Context, Handler, Message, ResponseFuture};
use tokio::time::Instant;
use tracing::debug;

use super::stage::{guard, StageError};
use crate::intezer::{Analysis, AnalysisState, IntezerClient, IntezerError, Iocs};

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
}

impl Message for LookupHash {
    type Result = Result<Result<LookupOutcome, IntezerError>, StageError>;
}

/// Read analysis `analysis_id`: its status, and its report once finished.
pub struct FetchAnalysis {
    pub analysis_id: String,
    pub deadline: Instant,
}

impl Message for FetchAnalysis {
    type Result = Result<Result<AnalysisState, IntezerError>, StageError>;
}

/// Read the IOCs of analysis `analysis_id`. `None` when Intezer has none
/// (404) or the plan does not include them (403).
pub struct FetchIocs {
    pub analysis_id: String,
    pub deadline: Instant,
}

impl Message for FetchIocs {
    type Result = Result<Result<Option<Iocs>, IntezerError>, StageError>;
}

pub struct IntezerLookup {
    client: Arc<IntezerClient>,
    mailbox_capacity: usize,
}

impl IntezerLookup {
    pub fn new(client: Arc<IntezerClient>, mailbox_capacity: usize) -> IntezerLookup {
        IntezerLookup {
            client,
            mailbox_capacity,
        }
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

    fn handle(&mut self, message: LookupHash, _: &mut Context<Self>) -> Self::Result {
        let client = self.client.clone();
        Box::pin(guard("IntezerLookup", async move {
            let outcome = match client
                .latest_analysis(&message.sha256, message.private_only, message.deadline)
                .await
            {
                Ok(analysis) => Ok(LookupOutcome::Found(Box::new(analysis))),
                Err(IntezerError::NotFound { .. }) => Ok(LookupOutcome::NotFound),
                Err(IntezerError::Gone { .. }) => Ok(LookupOutcome::Gone),
                Err(err) => Err(err),
            };
            debug!(sha256 = %message.sha256, outcome = ?outcome.as_ref().map(outcome_name), "hash lookup");
            outcome
        }))
    }
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
        Box::pin(guard("IntezerLookup", async move {
            client
                .analysis(&message.analysis_id, message.deadline)
                .await
        }))
    }
}

impl Handler<FetchIocs> for IntezerLookup {
    type Result = ResponseFuture<<FetchIocs as Message>::Result>;

    fn handle(&mut self, message: FetchIocs, _: &mut Context<Self>) -> Self::Result {
        let client = self.client.clone();
        Box::pin(guard("IntezerLookup", async move {
            match client.iocs(&message.analysis_id, message.deadline).await {
                Ok(iocs) => Ok(Some(iocs)),
                Err(IntezerError::NotFound { .. })
                | Err(IntezerError::Forbidden { .. })
                | Err(IntezerError::InsufficientPermissions { .. }) => Ok(None),
                Err(err) => Err(err),
            }
        }))
    }
}
