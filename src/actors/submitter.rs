//! Submitter: uploads files that Intezer does not know.
//!
//! Takes [`SubmitFile`] and answers with the new analysis id, the id of an
//! analysis of the same file that is already running (HTTP 409), or the
//! [`IntezerError`] that stopped the upload. Tasks for the same file that
//! arrive while its upload is in flight share that upload. Uploads are never re-sent after
//! an answer that is not transient, so a file is not analysed twice. It
//! holds only the shared Intezer client.

use std::path::PathBuf;
use std::sync::Arc;

use actix::{
    Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, ResponseFuture, WrapFuture,
};
use tokio::time::Instant;
use tracing::{debug, info, Instrument, Span};

use super::coalesce::InFlight;
use super::stage::{guard, StageError};
use crate::intezer::{IntezerClient, IntezerError};
use crate::quota::TASK_PRIORITY;

/// Upload the file at `path` under `file_name`.
pub struct SubmitFile {
    pub path: PathBuf,
    pub file_name: String,
    pub sha256: String,
    pub deadline: Instant,
    /// The task's AL priority, for the quota guard's queue.
    pub priority: i64,
    /// The task's span: the requests made for this message are its children.
    pub span: Span,
}

/// How an upload ended when Intezer took the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    Created { analysis_id: String },
    AlreadyRunning { analysis_id: String },
}

impl Submitted {
    pub fn analysis_id(&self) -> &str {
        match self {
            Submitted::Created { analysis_id } | Submitted::AlreadyRunning { analysis_id } => {
                analysis_id
            }
        }
    }
}

impl Message for SubmitFile {
    type Result = Result<Result<Submitted, IntezerError>, StageError>;
}

pub struct Submitter {
    client: Arc<IntezerClient>,
    mailbox_capacity: usize,
    /// Uploads in flight, by SHA-256: tasks for the same file share one.
    uploads: InFlight<String, Result<Submitted, IntezerError>>,
}

impl Submitter {
    pub fn new(client: Arc<IntezerClient>, mailbox_capacity: usize) -> Submitter {
        Submitter {
            client,
            mailbox_capacity,
            uploads: InFlight::new(),
        }
    }
}

impl Actor for Submitter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(self.mailbox_capacity);
    }
}

impl Handler<SubmitFile> for Submitter {
    type Result = ResponseFuture<<SubmitFile as Message>::Result>;

    fn handle(&mut self, message: SubmitFile, ctx: &mut Context<Self>) -> Self::Result {
        let key = message.sha256.clone();
        let client = self.client.clone();
        let (request, joined) = self
            .uploads
            .join_or_start(key.clone(), move || submit(client, message));
        if joined {
            debug!(sha256 = %key, "joined an upload of the same file in flight");
        } else {
            let finished = request
                .clone()
                .into_actor(self)
                .map(move |_, act, _| act.uploads.finish(&key));
            ctx.spawn(finished);
        }
        Box::pin(async move { Ok(request.await) })
    }
}

/// Uploads the file once. A panic in the client becomes an error, so every
/// task sharing the upload gets an answer.
async fn submit(
    client: Arc<IntezerClient>,
    message: SubmitFile,
) -> Result<Submitted, IntezerError> {
    // While Intezer reports the quota used up, uploads are not even tried;
    // the guard lets one probe through now and then.
    if let Some(quota) = client.quota() {
        if let Err(err) = quota.submissions_allowed() {
            return Err(IntezerError::InsufficientQuota {
                message: err.to_string(),
            });
        }
    }
    let priority = message.priority;
    let span = message.span.clone();
    let upload = TASK_PRIORITY.scope(priority, async {
        let outcome = match client
            .submit_file(&message.path, &message.file_name, message.deadline)
            .await
        {
            Ok(analysis_id) => Ok(Submitted::Created { analysis_id }),
            Err(IntezerError::AlreadyRunning { analysis_id }) => {
                Ok(Submitted::AlreadyRunning { analysis_id })
            }
            Err(err) => Err(err),
        };
        if let Some(quota) = client.quota() {
            match &outcome {
                Ok(_) => quota.record_submission_success(),
                Err(IntezerError::InsufficientQuota { .. }) => quota.open_submission_breaker(),
                Err(_) => {}
            }
        }
        outcome
    });
    let outcome = guard("Submitter", upload.instrument(span))
        .await
        .unwrap_or_else(|panic| {
            Err(IntezerError::InvalidResponse {
                endpoint: "analyze",
                message: panic.to_string(),
            })
        });
    if let Ok(submitted) = &outcome {
        message.span.in_scope(|| {
            info!(sha256 = %message.sha256, analysis_id = submitted.analysis_id(), "file submitted to Intezer");
        });
    }
    outcome
}
