//! `serve` and `register`: run as an AL service.

use std::process::ExitCode;

use anyhow::Context;
use tracing::info;

use intezer_dynamic::config::Environment;
use intezer_dynamic::runtime::{self, ServeExit, ServeOptions};

use super::{config_overrides, run_system, shutdown_signal};
use crate::cli::ServeArgs;

pub fn run(args: ServeArgs, register_only: bool) -> anyhow::Result<ExitCode> {
    let env = Environment::from_process()?;
    let overrides = config_overrides(&args.set)?;
    let manifest_text = match &args.manifest {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read manifest {}", path.display()))?,
        ),
        None => None,
    };
    let options = ServeOptions {
        concurrency: args.concurrency,
        overrides,
        register_only: register_only || args.register_only,
        manifest_text,
        metrics_addr: Some(args.metrics_addr),
    };
    let exit = run_system(runtime::serve(env, options, shutdown_signal()))?;
    match exit {
        ServeExit::Registered { keep_alive } => {
            info!(keep_alive, "registration done; exiting");
        }
        ServeExit::Finished(summary) => {
            info!(
                tasks = summary.tasks,
                results = summary.results,
                errors = summary.errors,
                "service stopped"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
