//! The Grafana dashboard and the alert rules in dashboards/: they load
//! without editing, use only metrics the service exports, and pass
//! Prometheus's own checks (`promtool`, from Debian's `prometheus` package,
//! which CI installs; the promtool tests say they skipped without it).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use intezer_dynamic::telemetry::metrics::metrics;

fn dashboards() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards")
}

fn dashboard() -> Value {
    let text = std::fs::read_to_string(dashboards().join("intezer-dynamic.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn panels() -> Vec<Value> {
    dashboard()["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] != "row")
        .cloned()
        .collect()
}

fn expressions() -> Vec<String> {
    panels()
        .iter()
        .flat_map(|panel| panel["targets"].as_array().cloned().unwrap_or_default())
        .map(|target| target["expr"].as_str().unwrap().to_string())
        .collect()
}

fn promtool() -> Option<PathBuf> {
    let found = Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "promtool is missing in CI; .ci/run installs the prometheus package"
        );
        eprintln!("skipped: promtool is not installed (apt-get install prometheus)");
    }
    found.then(|| PathBuf::from("promtool"))
}

#[test]
fn dashboard_uses_datasource_variable() {
    let text = std::fs::read_to_string(dashboards().join("intezer-dynamic.json")).unwrap();
    assert!(
        !text.contains("DS_PROMETHEUS"),
        "the import-only ${{DS_PROMETHEUS}} does not provision"
    );
    let variables = dashboard()["templating"]["list"]
        .as_array()
        .unwrap()
        .clone();
    assert!(variables
        .iter()
        .any(|v| v["name"] == "datasource" && v["type"] == "datasource"));
    for panel in panels() {
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "panel {}",
            panel["title"]
        );
    }
}

#[test]
fn panels_have_units_and_descriptions() {
    for panel in panels() {
        let title = panel["title"].as_str().unwrap();
        assert!(
            panel["fieldConfig"]["defaults"]["unit"].is_string(),
            "{title} has no unit"
        );
        assert!(
            !panel["description"].as_str().unwrap_or("").is_empty(),
            "{title} has no description"
        );
    }
}

#[test]
fn rates_use_rate_interval() {
    for expr in expressions() {
        if expr.contains("rate(") {
            assert!(expr.contains("[$__rate_interval]"), "{expr}");
            assert!(!expr.contains("[5m]"), "{expr}");
        }
    }
}

/// Renders every metric, labelled ones included: a labelled metric shows
/// only once it has a label set.
fn render_all_metrics() -> String {
    let metrics = metrics();
    metrics
        .tasks_completed
        .with_label_values(&["result"])
        .inc_by(0);
    metrics.lookups.with_label_values(&["found"]).inc_by(0);
    metrics
        .submissions
        .with_label_values(&["accepted"])
        .inc_by(0);
    metrics.verdicts.with_label_values(&["malicious"]).inc_by(0);
    metrics
        .extracted_files
        .with_label_values(&["intezer"])
        .inc_by(0);
    metrics
        .intezer_requests
        .with_label_values(&["analyze", "2xx"])
        .inc_by(0);
    metrics
        .intezer_request_duration
        .with_label_values(&["analyze"])
        .observe(0.1);
    metrics
        .service_server_requests
        .with_label_values(&["get task", "200"])
        .inc_by(0);
    metrics.heuristics.with_label_values(&["1"]).inc_by(0);
    metrics
        .quota_breaker_state
        .with_label_values(&["outage"])
        .set(0);
    metrics.quota_events.with_label_values(&["wait"]).inc_by(0);
    metrics.render()
}

/// Every metric a panel or rule reads is one the service exports.
#[test]
fn queries_read_exported_metrics() {
    let exported = metrics().family_names();
    let rules = std::fs::read_to_string(dashboards().join("alerts.yml")).unwrap();
    let mut sources = expressions();
    sources.push(rules);
    for source in sources {
        for name in source.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if !name.starts_with("intezer_dynamic_") {
                continue;
            }
            let base = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert!(
                exported.iter().any(|family| family == base),
                "{name} is not exported"
            );
        }
    }
}

#[test]
fn alert_rules_pass_promtool() {
    let Some(promtool) = promtool() else { return };
    for args in [
        vec!["check", "rules", "alerts.yml"],
        vec!["test", "rules", "alerts_test.yml"],
    ] {
        let output = Command::new(&promtool)
            .args(&args)
            .current_dir(dashboards())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "promtool {args:?}: {}",
            String::from_utf8_lossy(&output.stdout)
        );
    }
}

#[test]
fn metrics_pass_promtool_check() {
    let Some(promtool) = promtool() else { return };
    let text = render_all_metrics();
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
