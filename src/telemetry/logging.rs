//! Log setup: `tracing` to standard error, filtered by `RUST_LOG`, or by
//! `LOG_LEVEL` as AL sets it for service containers.

use tracing_subscriber::EnvFilter;

/// Output format of the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Installs the global subscriber. `default_level` applies when neither
/// `RUST_LOG` nor `LOG_LEVEL` is set. Calling it twice is harmless.
pub fn init(default_level: &str, format: LogFormat) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .or_else(|| {
            std::env::var("LOG_LEVEL")
                .ok()
                .map(|level| level.to_lowercase())
        })
        .and_then(|spec| EnvFilter::try_new(spec).ok())
        .unwrap_or_else(|| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
