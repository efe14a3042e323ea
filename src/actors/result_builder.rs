//! ResultBuilder: renders what the pipeline found into AL result JSON.
//!
//! Takes [`BuildResult`] and answers with the JSON posted as `result`. It
//! holds the service configuration, identity and the shared safelist, and no
//! per-task state, so a restart loses only the message being built.

use std::sync::Arc;

use actix::{Actor, Context, Handler, Message, MessageResult};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::intezer_lookup::ReportData;
use crate::assemblyline::result::{FileEntry, Milestones};
use crate::assemblyline::{Section, ServiceIdentity, ServiceResult, Task};
use crate::config::ServiceConfig;
use crate::intezer::Analysis;
use crate::report::safelist::SharedSafelist;
use crate::report::{build_result, ReportInput};
use crate::telemetry::metrics::metrics;

/// What the pipeline found for one task.
#[derive(Debug, Clone)]
pub enum Findings {
    /// Nothing to report: Intezer does not know the file and it was not
    /// submitted, it cannot analyse it, or it trusts it.
    Empty,
    /// An analysis, the parts of its report, the sub-files extracted and a
    /// note for each sub-file that could not be.
    Analysis {
        analysis: Box<Analysis>,
        report: Box<ReportData>,
        extracted: Vec<FileEntry>,
        notes: Vec<String>,
    },
    /// No analysis, but something the analyst should read. A partial note
    /// (the file could not be submitted) is not cached by AL as final.
    Note {
        title: String,
        lines: Vec<String>,
        partial: bool,
    },
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
    safelist: SharedSafelist,
    mailbox_capacity: usize,
}

impl ResultBuilder {
    pub fn new(
        config: Arc<ServiceConfig>,
        identity: Arc<ServiceIdentity>,
        safelist: SharedSafelist,
        mailbox_capacity: usize,
    ) -> ResultBuilder {
        ResultBuilder {
            config,
            identity,
            safelist,
            mailbox_capacity,
        }
    }

    fn service_result(&self, task: &Task, findings: &Findings) -> ServiceResult {
        match findings {
            Findings::Empty => ServiceResult::default(),
            Findings::Analysis {
                analysis,
                report,
                extracted,
                notes,
            } => {
                let safelist = self.safelist.current();
                let input = ReportInput {
                    sha256: &task.sha256,
                    analysis,
                    iocs: report.iocs.as_ref(),
                    ttps: &report.ttps,
                    sub_analyses: &report.sub_analyses,
                    safelist: &safelist,
                };
                let mut result = build_result(&input, &self.config);
                if !result.is_empty() {
                    result.extracted = extracted.clone();
                    if !notes.is_empty() {
                        result
                            .sections
                            .push(Section::text("Sub-files not extracted", notes));
                    }
                }
                result
            }
            Findings::Note {
                title,
                lines,
                partial,
            } => ServiceResult {
                sections: vec![Section::text(title.clone(), lines)],
                partial: *partial,
                ..ServiceResult::default()
            },
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
        let result = self.service_result(&message.task, &message.findings);
        count_heuristics(&result.sections);
        let milestones = Milestones {
            started: message.started,
            completed: Utc::now(),
        };
        MessageResult(result.to_json(&message.task, &self.identity, milestones))
    }
}

/// Counts the heuristics a result raises, at every depth.
fn count_heuristics(sections: &[Section]) {
    for section in sections {
        if let Some(heuristic) = &section.heuristic {
            metrics()
                .heuristics
                .with_label_values(&[&heuristic.heur_id.to_string()])
                .inc();
        }
        count_heuristics(&section.children);
    }
}
