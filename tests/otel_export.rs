//! OpenTelemetry export. The demo runs with `OTEL_EXPORTER_OTLP_ENDPOINT`
//! pointing at an OTLP/HTTP receiver on 127.0.0.1 (wiremock). The received
//! spans must hold a task span with the sid and SHA-256, with the Intezer
//! and service-server requests as its descendants in one trace.

mod common;

use std::collections::HashMap;
use std::process::{Command, Output};

use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// One exported span, flattened from the OTLP JSON.
#[derive(Debug, Clone)]
struct Span {
    name: String,
    trace_id: String,
    span_id: String,
    parent_id: String,
    attributes: HashMap<String, Value>,
}

impl Span {
    fn text(&self, key: &str) -> Option<&str> {
        self.attributes
            .get(key)
            .and_then(|value| value.get("stringValue"))
            .and_then(Value::as_str)
    }
}

async fn receiver() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/traces"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    server
}

fn run_demo(endpoint: &str, protocol: Option<&str>, sample: &std::path::Path) -> Output {
    let mut command = Command::new(common::binary());
    command
        .arg("demo")
        .arg("--concurrency")
        .arg("1")
        .arg(sample)
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env_remove("OTEL_SDK_DISABLED")
        .env_remove("OTEL_TRACES_EXPORTER")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        .env("OTEL_BSP_SCHEDULE_DELAY", "100");
    match protocol {
        Some(protocol) => command.env("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
        None => command.env_remove("OTEL_EXPORTER_OTLP_PROTOCOL"),
    };
    let output = command.output().expect("run the demo");
    assert!(
        output.status.success(),
        "demo failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn spans_from_json(bodies: &[Vec<u8>]) -> Vec<Span> {
    let mut spans = Vec::new();
    for body in bodies {
        let export: Value = serde_json::from_slice(body).expect("OTLP JSON body");
        for resource in export["resourceSpans"].as_array().into_iter().flatten() {
            for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                for span in scope["spans"].as_array().into_iter().flatten() {
                    let attributes = span["attributes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|kv| (kv["key"].as_str().unwrap().to_string(), kv["value"].clone()))
                        .collect();
                    let id = |key: &str| span[key].as_str().unwrap_or_default().to_string();
                    spans.push(Span {
                        name: id("name"),
                        trace_id: id("traceId"),
                        span_id: id("spanId"),
                        parent_id: id("parentSpanId"),
                        attributes,
                    });
                }
            }
        }
    }
    spans
}

/// Returns whether `ancestor` is `span`'s parent, grandparent, and so on.
fn descends_from(span: &Span, ancestor: &Span, by_id: &HashMap<&str, &Span>) -> bool {
    let mut parent = span.parent_id.as_str();
    while let Some(next) = by_id.get(parent) {
        if next.span_id == ancestor.span_id {
            return true;
        }
        parent = next.parent_id.as_str();
    }
    false
}

#[tokio::test]
async fn json_export_nests_request_spans() {
    let receiver = receiver().await;
    let sample = common::sample("elf_true");
    let sha256 = common::sha256_hex(&std::fs::read(&sample).unwrap());
    let output = run_demo(&receiver.uri(), Some("http/json"), &sample);

    let bodies: Vec<Vec<u8>> = receiver
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .map(|request| request.body)
        .collect();
    assert!(!bodies.is_empty(), "no export reached the receiver");
    let spans = spans_from_json(&bodies);
    let by_id: HashMap<&str, &Span> = spans.iter().map(|s| (s.span_id.as_str(), s)).collect();

    let task = spans
        .iter()
        .find(|span| span.name == "task")
        .unwrap_or_else(|| panic!("no task span among {spans:#?}"));
    assert_eq!(task.text("sha256"), Some(sha256.as_str()));
    let sid = task.text("sid").expect("sid attribute");
    assert!(!sid.is_empty(), "empty sid");
    assert_ne!(sid, "unknown");
    assert!(
        String::from_utf8_lossy(&output.stdout).contains(&sha256[..12]),
        "the demo printed no line for the sample"
    );
    assert_eq!(task.text("outcome"), Some("result"));

    let intezer: Vec<&Span> = spans
        .iter()
        .filter(|span| span.name == "intezer.request")
        .collect();
    assert!(!intezer.is_empty(), "no Intezer request span");
    assert!(
        intezer.iter().any(|span| span.text("endpoint").is_some()
            && span.trace_id == task.trace_id
            && descends_from(span, task, &by_id)),
        "no Intezer request span under the task span: {intezer:#?}"
    );
    let service_server: Vec<&Span> = spans
        .iter()
        .filter(|span| span.name == "al.request")
        .collect();
    assert!(
        service_server
            .iter()
            .any(|span| span.text("call").is_some() && descends_from(span, task, &by_id)),
        "no service-server request span under the task span: {service_server:#?}"
    );
    let service_name = serde_json::from_slice::<Value>(&bodies[0]).unwrap()["resourceSpans"][0]
        ["resource"]["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|kv| kv["key"] == "service.name")
        .map(|kv| kv["value"]["stringValue"].clone());
    assert_eq!(service_name, Some(Value::from("intezer-dynamic")));
}

#[tokio::test]
async fn protobuf_is_the_default_encoding() {
    let receiver = receiver().await;
    run_demo(&receiver.uri(), None, &common::sample("elf_true"));
    let requests = receiver.received_requests().await.unwrap();
    assert!(!requests.is_empty(), "no export reached the receiver");
    for request in requests {
        let content_type = request
            .headers
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert_eq!(content_type, "application/x-protobuf");
        assert!(!request.body.is_empty());
    }
}

#[test]
fn grpc_protocol_is_refused_before_any_work() {
    let output = Command::new(common::binary())
        .arg("demo")
        .arg(common::sample("elf_true"))
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .output()
        .expect("run the demo");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("OTEL_EXPORTER_OTLP_PROTOCOL"), "{stderr}");
    assert!(stderr.contains("http/protobuf"), "{stderr}");
}

#[test]
fn unreachable_collector_is_reported() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let output = Command::new(common::binary())
        .arg("demo")
        .arg(common::sample("elf_true"))
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env_remove("OTEL_EXPORTER_OTLP_PROTOCOL")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .output()
        .expect("run the demo");
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("failed to export trace spans"), "{stderr}");
    assert!(
        stderr.contains(&format!("{endpoint}/v1/traces")),
        "{stderr}"
    );
}
