//! One module per subcommand.

pub mod demo;
pub mod healthcheck;
pub mod scan;
pub mod serve;
pub mod simulate;

use serde_json::{Map, Value};

use intezer_dynamic::config::service::parse_override;
use intezer_dynamic::config::ConfigError;
use intezer_dynamic::intezer::IntezerError;
use intezer_dynamic::runtime::RuntimeError;

use crate::cli::SetArg;

/// A usage or configuration error: exit status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Exit status for an error that ends a command.
pub fn exit_status(err: &anyhow::Error) -> u8 {
    let usage = err.downcast_ref::<UsageError>().is_some()
        || err.downcast_ref::<ConfigError>().is_some()
        || matches!(
            err.downcast_ref::<RuntimeError>(),
            Some(RuntimeError::Config(_)) | Some(RuntimeError::Intezer(IntezerError::Config(_)))
        );
    if usage {
        2
    } else {
        1
    }
}

/// The error and its causes on one line.
pub fn describe(err: &anyhow::Error) -> String {
    format!("{err:#}")
}

/// Parses `--set KEY=VALUE` options into a configuration layer.
pub fn config_overrides(options: &[SetArg]) -> Result<Map<String, Value>, ConfigError> {
    let mut layer = Map::new();
    for option in options {
        let (key, value) = parse_override(&option.0)?;
        layer.insert(key, value);
    }
    Ok(layer)
}

/// Maximum number of threads the runtime starts for file operations.
/// With tokio's default of 512, a burst of a thousand downloads and uploads
/// started hundreds of threads, each with its stack and allocator heap, and
/// tripled the service's memory (docs/benchmarks/profile.md). A few
/// threads keep the disk as busy.
const BLOCKING_THREADS: usize = 8;

/// Runs `future` in a new actix system and returns its output.
pub fn run_system<F: std::future::Future>(future: F) -> F::Output {
    actix_rt::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .max_blocking_threads(BLOCKING_THREADS)
            .build()
            .expect("the tokio runtime starts")
    })
    .block_on(future)
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
