//! Log setup: `tracing` to standard error, filtered by `RUST_LOG`, or by
//! `LOG_LEVEL` as AL sets it for service containers, plus the spans sent to
//! an OpenTelemetry collector when the `OTEL_*` variables request it.

use std::io::IsTerminal;

use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use super::traces::{TraceExport, TraceExportError};

/// Output format of the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Maps a `LOG_LEVEL` value to a `tracing` level. AL uses Python's level
/// names (`DEBUG`, `INFO`, `WARNING`, `ERROR`, `CRITICAL`); `None` for a
/// value that is none of them.
pub fn level_from_python_name(name: &str) -> Option<&'static str> {
    match name.trim().to_ascii_uppercase().as_str() {
        "TRACE" => Some("trace"),
        "DEBUG" => Some("debug"),
        "INFO" => Some("info"),
        "WARN" | "WARNING" => Some("warn"),
        "ERROR" | "CRITICAL" | "FATAL" => Some("error"),
        _ => None,
    }
}

/// Installs the global subscriber. `default_level` applies when neither
/// `RUST_LOG` nor `LOG_LEVEL` is set; an unusable value of either is
/// reported on standard error and replaced by the default. Colours are used
/// only when standard error is a terminal. Calling it twice is harmless.
///
/// When the environment sets an OTLP endpoint, the service's spans at INFO
/// and above (one per task, per Intezer request and per service-server
/// request) are exported too, whatever the log level. Keep the returned
/// [`TraceExport`] alive until the end, because dropping it flushes them.
pub fn init(
    default_level: &str,
    format: LogFormat,
) -> Result<Option<TraceExport>, TraceExportError> {
    let mut problem = None;
    let filter = if let Ok(spec) = std::env::var("RUST_LOG") {
        EnvFilter::try_new(&spec).ok().or_else(|| {
            problem = Some(format!(
                "RUST_LOG={spec:?} is not a valid filter; using {default_level}"
            ));
            None
        })
    } else if let Ok(level) = std::env::var("LOG_LEVEL") {
        level_from_python_name(&level).map(EnvFilter::new).or_else(|| {
            problem = Some(format!(
                "LOG_LEVEL={level:?} is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL; using {default_level}"
            ));
            None
        })
    } else {
        None
    };
    let filter = filter.unwrap_or_else(|| EnvFilter::new(default_level));
    let logs = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let logs: Box<dyn Layer<Registry> + Send + Sync> = match format {
        LogFormat::Text => logs.with_filter(filter).boxed(),
        LogFormat::Json => logs.json().with_filter(filter).boxed(),
    };

    let export = TraceExport::from_env()?;
    let (export, spans) = match export {
        Some((export, tracer)) => {
            let spans = tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(Targets::new().with_target("intezer_dynamic", Level::INFO));
            (Some(export), Some(spans))
        }
        None => (None, None),
    };
    let _ = tracing_subscriber::registry()
        .with(logs)
        .with(spans)
        .try_init();
    if let Some(problem) = problem {
        tracing::warn!("{problem}");
    }
    if let Some(export) = &export {
        tracing::info!(endpoint = %export.endpoint, "exporting trace spans over OTLP");
    }
    Ok(export)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_level_names_map_to_tracing_levels() {
        assert_eq!(level_from_python_name("WARNING"), Some("warn"));
        assert_eq!(level_from_python_name("critical"), Some("error"));
        assert_eq!(level_from_python_name("INFO"), Some("info"));
        assert_eq!(level_from_python_name("bogus"), None);
    }
}
