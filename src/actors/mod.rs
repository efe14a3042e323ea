//! The actors of the service and the messages they pass.
//!
//! TaskIntake → Hasher → IntezerLookup → (Submitter → AnalysisWatcher) →
//! ResultBuilder → TaskIntake. [`pipeline::Pipeline`] starts the actors and
//! holds the flow of one task; [`stage::Stage`] restarts an actor that died.

pub mod analysis_watcher;
pub mod coalesce;
pub mod hasher;
pub mod intezer_lookup;
pub mod pipeline;
pub mod result_builder;
pub mod stage;
pub mod submitter;
pub mod task_intake;
pub mod work_folder;

pub use pipeline::{Pipeline, PipelineSettings, TaskOutcome};
