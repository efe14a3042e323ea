//! ResultBuilder: renders what the pipeline found into AL result JSON.
//!
//! Takes [`BuildResult`] and answers with the JSON posted as `result`. It
//! holds the service configuration and identity and no per-task state, so a
//! restart loses only the message being built.

use std::sync::Arc;

use actix::{Actor, Context, Handler, Message, MessageResult};
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::assemblyline::result::Milestones;
use crate::assemblyline::{Section, ServiceIdentity, ServiceResult, Task};
use crate::config::ServiceConfig;
use crate::intezer::{Analysis, Iocs};
use crate::report::safelist::Safelist;
use crate::report::{build_result, ReportInput};

/// What the pipeline found for one task.
#[derive(Debug, Clone)]
pub enum Findings {
    /// Nothing to report: Intezer does not know the file and it was not
    /// submitted, it cannot analyse it, or it trusts it.
    Empty,
    /// An analysis and its IOCs.
    Analysis {
        analysis: Box<Analysis>,
        iocs: Option<Iocs>,
    },
    /// No analysis, but something the analyst should read.
    Note { title: String, lines: Vec<String> },
}

/// Render the result of `task`.
pub struct BuildResult {
    pub task: Task,
    pub findings: Findings,
    pub started: DateTime<Utc>,
}

impl Message for BuildResult {
    type Result = Value;
}

pub struct ResultBuilder {
    config: Arc<ServiceConfig>,
    identity: Arc<ServiceIdentity>,
    mailbox_capacity: usize,
}

impl ResultBuilder {
    pub fn new(
        config: Arc<ServiceConfig>,
        identity: Arc<ServiceIdentity>,
        mailbox_capacity: usize,
    ) -> ResultBuilder {
        ResultBuilder {
            config,
            identity,
            mailbox_capacity,
        }
    }
}

impl Actor for ResultBuilder {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(self.mailbox_capacity);
    }
}

impl Handler<BuildResult> for ResultBuilder {
    type Result = MessageResult<BuildResult>;

    fn handle(&mut self, message: BuildResult, _: &mut Context<Self>) -> Self::Result {
        let result = match &message.findings {
            Findings::Empty => ServiceResult::default(),
            Findings::Analysis { analysis, iocs } => {
                let safelist = Safelist::empty();
                let input = ReportInput {
                    sha256: &message.task.sha256,
                    analysis,
                    iocs: iocs.as_ref(),
                    ttps: &[],
                    sub_analyses: &[],
                    safelist: &safelist,
                };
                build_result(&input, &self.config)
            }
            Findings::Note { title, lines } => ServiceResult {
                sections: vec![Section::text(title.clone(), lines)],
                ..ServiceResult::default()
            },
        };
        let milestones = Milestones {
            started: message.started,
            completed: Utc::now(),
        };
        MessageResult(result.to_json(&message.task, &self.identity, milestones))
    }
}
