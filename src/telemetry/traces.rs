//! OpenTelemetry trace export over OTLP/HTTP, configured by the standard
//! `OTEL_*` environment variables and off when no endpoint is set.
//!
//! The SDK's batch processor exports from a thread of its own, outside any
//! async runtime, so the exporter uses a blocking HTTP client
//! ([`BlockingHttp`]) built on the same reqwest and rustls as the rest of
//! the service.

use std::fmt;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;

/// Service name reported when `OTEL_SERVICE_NAME` is unset.
pub const SERVICE_NAME: &str = "intezer-dynamic";

/// Largest collector response read; OTLP responses are a few bytes.
const MAX_COLLECTOR_RESPONSE: usize = 1024 * 1024;

/// Shortest time between two warnings about failed exports.
const EXPORT_WARNING_INTERVAL: Duration = Duration::from_secs(60);

/// Failure to start trace export.
#[derive(Debug, thiserror::Error)]
pub enum TraceExportError {
    #[error(
        "{variable}={value:?} is not supported; set it to http/protobuf or http/json \
         and point OTEL_EXPORTER_OTLP_ENDPOINT at the collector's OTLP/HTTP port (4318)"
    )]
    UnsupportedProtocol {
        variable: &'static str,
        value: String,
    },
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(String),
}

/// The running exporter. Dropping it flushes the spans still queued.
pub struct TraceExport {
    provider: SdkTracerProvider,
    /// The collector's traces URL, for the start log line.
    pub endpoint: String,
}

impl fmt::Debug for TraceExport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceExport").finish_non_exhaustive()
    }
}

impl TraceExport {
    /// Starts the exporter when the environment requests one: an endpoint
    /// in `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
    /// and neither `OTEL_SDK_DISABLED=true` nor `OTEL_TRACES_EXPORTER=none`.
    /// Returns `Ok(None)` when export is off.
    pub fn from_env() -> Result<Option<(TraceExport, SdkTracer)>, TraceExportError> {
        if !export_requested(|name| std::env::var(name).ok()) {
            return Ok(None);
        }
        let protocol = protocol_from_env(|name| std::env::var(name).ok())?;
        let endpoint = traces_endpoint(|name| std::env::var(name).ok());
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(protocol)
            .with_http_client(BlockingHttp::new()?)
            .build()
            .map_err(|err| TraceExportError::Exporter(err.to_string()))?;
        let mut resource = Resource::builder()
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
        if std::env::var("OTEL_SERVICE_NAME").is_err() {
            resource = resource.with_service_name(SERVICE_NAME);
        }
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build();
        let tracer = provider.tracer(SERVICE_NAME);
        Ok(Some((TraceExport { provider, endpoint }, tracer)))
    }
}

impl Drop for TraceExport {
    fn drop(&mut self) {
        if let Err(err) = self.provider.shutdown_with_timeout(Duration::from_secs(5)) {
            eprintln!("warning: failed to flush the last trace spans to the OTLP endpoint: {err}");
        }
    }
}

/// Returns whether the environment read through `var` requests trace export.
fn export_requested(var: impl Fn(&str) -> Option<String>) -> bool {
    let set = |name: &str| var(name).is_some_and(|value| !value.trim().is_empty());
    let disabled = var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let no_exporter =
        var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim().eq_ignore_ascii_case("none"));
    !disabled
        && !no_exporter
        && (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

/// Returns the URL spans are sent to: the traces-specific endpoint as
/// given, or the general one with `/v1/traces` appended, as the exporter
/// resolves them.
fn traces_endpoint(var: impl Fn(&str) -> Option<String>) -> String {
    let set = |name: &str| var(name).filter(|value| !value.trim().is_empty());
    match set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        Some(endpoint) => endpoint.trim().to_string(),
        None => format!(
            "{}/v1/traces",
            set("OTEL_EXPORTER_OTLP_ENDPOINT")
                .unwrap_or_default()
                .trim()
                .trim_end_matches('/')
        ),
    }
}

/// Reads the OTLP protocol, the traces-specific variable first. Only the
/// two HTTP encodings are built in.
fn protocol_from_env(var: impl Fn(&str) -> Option<String>) -> Result<Protocol, TraceExportError> {
    for variable in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        let Some(value) = var(variable).filter(|v| !v.trim().is_empty()) else {
            continue;
        };
        return match value.trim() {
            "http/protobuf" => Ok(Protocol::HttpBinary),
            "http/json" => Ok(Protocol::HttpJson),
            _ => Err(TraceExportError::UnsupportedProtocol { variable, value }),
        };
    }
    Ok(Protocol::HttpBinary)
}

/// Blocking OTLP/HTTP client for the batch processor's export thread.
#[derive(Debug)]
struct BlockingHttp {
    client: reqwest::blocking::Client,
    /// When the last export failure was logged, to log at most one a minute.
    last_warning: std::sync::Mutex<Option<std::time::Instant>>,
}

impl BlockingHttp {
    fn new() -> Result<Self, TraceExportError> {
        // The exporter sets its own timeout per request from
        // OTEL_EXPORTER_OTLP_TIMEOUT; this bounds a stuck connection.
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|err| TraceExportError::Exporter(err.to_string()))?;
        Ok(BlockingHttp {
            client,
            last_warning: std::sync::Mutex::new(None),
        })
    }

    /// Logs a failed export, at most once per [`EXPORT_WARNING_INTERVAL`],
    /// so an unreachable collector is visible without flooding the log.
    fn warn_export_failed(&self, url: &str, problem: &str) {
        let mut last = self.last_warning.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < EXPORT_WARNING_INTERVAL) {
            return;
        }
        *last = Some(now);
        tracing::warn!(
            endpoint = url,
            problem,
            "failed to export trace spans to the OTLP collector; spans are dropped until it \
             answers (next warning in a minute at the earliest)"
        );
    }
}

#[async_trait::async_trait]
impl HttpClient for BlockingHttp {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let url = request.uri().to_string();
        let outcome = self.send(request);
        match &outcome {
            Ok(reply) if !reply.status().is_success() => {
                self.warn_export_failed(&url, &format!("HTTP {}", reply.status()));
            }
            Ok(_) => {}
            Err(err) => self.warn_export_failed(&url, &err.to_string()),
        }
        outcome
    }
}

impl BlockingHttp {
    /// Sends one export request and reads the collector's reply.
    fn send(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let mut response = self
            .client
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body.to_vec())
            .send()?;
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        let mut body = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(&mut response, MAX_COLLECTOR_RESPONSE as u64),
            &mut body,
        )?;
        let mut reply = Response::builder().status(status).body(Bytes::from(body))?;
        *reply.headers_mut() = headers;
        Ok(reply)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn export_is_off_without_an_endpoint() {
        assert!(!export_requested(env(&[])));
        assert!(!export_requested(env(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            " "
        )])));
    }

    #[test]
    fn either_endpoint_variable_turns_export_on() {
        assert!(export_requested(env(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://127.0.0.1:4318"
        )])));
        assert!(export_requested(env(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://127.0.0.1:4318/v1/traces"
        )])));
    }

    #[test]
    fn disable_variables_override_endpoint() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318");
        assert!(!export_requested(env(&[
            endpoint,
            ("OTEL_SDK_DISABLED", "TRUE")
        ])));
        assert!(!export_requested(env(&[
            endpoint,
            ("OTEL_TRACES_EXPORTER", "none")
        ])));
    }

    #[test]
    fn protocol_default_and_precedence() {
        assert!(matches!(
            protocol_from_env(env(&[])),
            Ok(Protocol::HttpBinary)
        ));
        let both = env(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"),
        ]);
        assert!(matches!(protocol_from_env(both), Ok(Protocol::HttpJson)));
    }

    #[test]
    fn grpc_protocol_rejected() {
        let err = protocol_from_env(env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")])).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("OTEL_EXPORTER_OTLP_PROTOCOL=\"grpc\""),
            "{text}"
        );
        assert!(text.contains("http/protobuf"), "{text}");
    }
}
