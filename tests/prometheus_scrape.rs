//! A real Prometheus (Debian's `prometheus` package) scrapes the service's
//! `/metrics` on loopback every second while the demo runs, then every
//! query of the dashboard and every alert expression is evaluated through
//! Prometheus's HTTP API. Skips, saying so, when `prometheus` is missing.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use intezer_dynamic::quota::shared::key_namespace;
use redis::AsyncCommands;
use serde_json::Value;

use common::redis_server::RedisServer;

/// Longest wait for Prometheus to start and to scrape the service.
const WAIT_LIMIT: Duration = Duration::from_secs(60);

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn query(http: &reqwest::Client, port: u16, expr: &str) -> Value {
    let url = format!(
        "http://127.0.0.1:{port}/api/v1/query?query={}",
        url::form_urlencoded::byte_serialize(expr.as_bytes()).collect::<String>()
    );
    match http.get(url).send().await {
        Ok(response) => response.json::<Value>().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

/// Queries of the dashboard and expressions of the alert rules.
fn expressions(root: &Path) -> Vec<String> {
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("dashboards/intezer-dynamic.json")).unwrap(),
    )
    .unwrap();
    let mut exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|panel| panel["targets"].as_array().cloned().unwrap_or_default())
        .map(|target| {
            target["expr"]
                .as_str()
                .unwrap()
                .replace("$instance", ".*")
                .replace("$__rate_interval", "1m")
        })
        .collect();
    let rules: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(root.join("dashboards/alerts.yml")).unwrap())
            .unwrap();
    for group in rules["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            exprs.push(rule["expr"].as_str().unwrap().to_string());
        }
    }
    exprs
}

fn prometheus_installed() -> bool {
    if Command::new("prometheus")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "prometheus is missing in CI; .ci/run installs it"
        );
        eprintln!("skipped: prometheus is not installed (apt-get install prometheus)");
        return false;
    }
    true
}

/// Starts Prometheus on a free port, in `dir`, scraping
/// 127.0.0.1:`metrics_port` every second. Returns it and its port.
fn start_prometheus(dir: &Path, metrics_port: u16) -> (Killed, u16) {
    let prometheus_port = common::free_port();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: intezer-dynamic\n    static_configs:\n      - targets: ['127.0.0.1:{metrics_port}']\n"
    );
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();

    let prometheus = Killed(
        Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prometheus_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus starts"),
    );
    (prometheus, prometheus_port)
}

/// Starts the demo on three sample files, serving metrics on
/// `metrics_port` for 60 s after it finishes, with `environment` added.
fn start_demo(root: &Path, metrics_port: u16, environment: &[(&str, String)]) -> Killed {
    let binary = env!("CARGO_BIN_EXE_intezer-dynamic");
    let samples = root.join("tests/fixtures/scenarios/samples");
    Killed(
        Command::new(binary)
            .args([
                "demo",
                "--metrics-addr",
                &format!("127.0.0.1:{metrics_port}"),
                "--linger",
                "60",
            ])
            .arg(samples.join("elf_true"))
            .arg(samples.join("elf_libxau.so"))
            .arg(samples.join("pe_nsis_stub.exe"))
            .envs(environment.iter().map(|(name, value)| (*name, value)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the demo starts"),
    )
}

/// Returns the first value of `expr` in Prometheus, once it is `wanted`,
/// or fails after [`WAIT_LIMIT`].
async fn wait_for_value(
    http: &reqwest::Client,
    port: u16,
    expr: &str,
    mut wanted: impl FnMut(&str) -> bool,
) -> String {
    let start = Instant::now();
    loop {
        let answer = query(http, port, expr).await;
        let value = answer["data"]["result"][0]["value"][1]
            .as_str()
            .unwrap_or("")
            .to_string();
        if wanted(&value) {
            return value;
        }
        assert!(
            start.elapsed() < WAIT_LIMIT,
            "{expr} did not reach the expected value: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_and_evaluates_every_query() {
    if !prometheus_installed() {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let metrics_port = common::free_port();
    let (_prometheus, prometheus_port) = start_prometheus(dir.path(), metrics_port);
    let _demo = start_demo(root, metrics_port, &[]);

    // Wait until Prometheus holds samples of the finished demo.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let start = Instant::now();
    loop {
        let answer = query(
            &http,
            prometheus_port,
            "sum(intezer_dynamic_tasks_completed_total)",
        )
        .await;
        let value = answer["data"]["result"][0]["value"][1]
            .as_str()
            .unwrap_or("0")
            .to_string();
        if value == "3" {
            break;
        }
        assert!(
            start.elapsed() < WAIT_LIMIT,
            "Prometheus did not scrape the demo's 3 tasks: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Two more scrapes, so rates over the last minute have points.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let target = query(&http, prometheus_port, "up{job=\"intezer-dynamic\"}").await;
    assert_eq!(target["data"]["result"][0]["value"][1], "1", "{target}");
    let mut with_data = 0;
    for expr in expressions(root) {
        let answer = query(&http, prometheus_port, &expr).await;
        assert_eq!(answer["status"], "success", "{expr}: {answer}");
        if answer["data"]["result"]
            .as_array()
            .is_some_and(|result| !result.is_empty())
        {
            with_data += 1;
        }
    }
    assert!(with_data >= 10, "only {with_data} queries returned data");
}

/// Queries of the dashboard panel titled `title`, for any container.
fn panel_queries(root: &Path, title: &str) -> Vec<String> {
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("dashboards/intezer-dynamic.json")).unwrap(),
    )
    .unwrap();
    let panel = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|panel| panel["title"] == title)
        .unwrap_or_else(|| panic!("no panel titled {title}"))
        .clone();
    panel["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|target| target["expr"].as_str().unwrap().replace("$instance", ".*"))
        .collect()
}

/// With `QUOTA_REDIS_URL` set to a real redis-server, the demo shares its
/// quota through Redis, and the "Shared budget (Redis)" panel shows the
/// file scans Redis counted, while no container is in fallback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_shared_budget_with_redis() {
    if !prometheus_installed() {
        return;
    }
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let metrics_port = common::free_port();
    let (_prometheus, prometheus_port) = start_prometheus(dir.path(), metrics_port);
    let _demo = start_demo(root, metrics_port, &[("QUOTA_REDIS_URL", redis.url())]);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();

    wait_for_value(
        &http,
        prometheus_port,
        "sum(intezer_dynamic_tasks_completed_total)",
        |value| value == "3",
    )
    .await;
    wait_for_value(
        &http,
        prometheus_port,
        "max(intezer_dynamic_quota_backend_state)",
        |value| value == "1",
    )
    .await;

    // The demo's API key is "demo-api-key"; its tasks are done, so the
    // count in Redis no longer changes.
    let mut connection = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let scans_key = format!(
        "{}:scans:{}",
        key_namespace("demo-api-key"),
        chrono::Utc::now().date_naive().format("%Y-%m-%d")
    );
    let counted: u64 = connection.get(&scans_key).await.unwrap();
    assert!(counted >= 3, "Redis counted {counted} file scans");

    let queries = panel_queries(root, "Shared budget (Redis)");
    let used_query = &queries[0];
    assert!(
        used_query.contains("shared_file_scans_used_today"),
        "{used_query}"
    );
    let shown = wait_for_value(&http, prometheus_port, used_query, |value| {
        value == counted.to_string()
    })
    .await;
    assert_eq!(shown, counted.to_string());
    for expr in &queries {
        let answer = query(&http, prometheus_port, expr).await;
        assert_eq!(answer["status"], "success", "{expr}: {answer}");
    }
    let fallback = query(&http, prometheus_port, &queries[3]).await;
    assert_eq!(
        fallback["data"]["result"],
        serde_json::json!([]),
        "{fallback}"
    );
}
