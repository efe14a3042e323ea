//! `scan`: the service's analysis on local files, without Assemblyline.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use serde_json::{Map, Value};

use intezer_dynamic::config::{Environment, Secret, ServiceConfig, SubmissionParams};
use intezer_dynamic::runtime::{self, ScanInput, ScanOutcome, ScanReport, ScanSettings};
use intezer_dynamic::simulator::intezer::{DefaultOptions, IntezerBehaviour, IntezerSimulator};
use intezer_dynamic::simulator::scenario::Scenario;

use super::{config_overrides, run_system, UsageError};
use crate::cli::{ScanArgs, ScanFormat};

/// API key sent to the embedded simulator, which accepts any key.
const SIMULATOR_API_KEY: &str = "simulator-key";

pub fn run(args: ScanArgs) -> anyhow::Result<ExitCode> {
    let env = Environment::from_process()?;
    let manifest = runtime::load_manifest(&env, None)?;

    let scenario = match &args.scenario {
        Some(path) => Some(Scenario::load(path).map_err(|err| UsageError(err.to_string()))?),
        None => None,
    };
    let mut files = args.files.clone();
    if files.is_empty() {
        match scenario.as_ref().and_then(Scenario::sample_path) {
            Some(sample) => files.push(sample),
            None => {
                return Err(
                    UsageError("no FILE given; name at least one file to scan".to_string()).into(),
                )
            }
        }
    }
    for file in &files {
        if !file.is_file() {
            return Err(UsageError(format!("{} is not a readable file", file.display())).into());
        }
    }

    let mut params = Map::new();
    if let Some(scenario) = &scenario {
        params.extend(scenario.submission_params.clone());
    }
    for option in &args.param {
        let (name, value) = SubmissionParams::parse_override(option)?;
        params.insert(name, value);
    }
    if let Some(dir) = &args.output_dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create output folder {}", dir.display()))?;
    }

    let scenario_config = scenario
        .as_ref()
        .map(|s| s.config.clone())
        .unwrap_or_default();
    let overrides = config_overrides(&args.set)?;
    let format = args.format.unwrap_or_else(|| {
        use std::io::IsTerminal;
        if std::io::stdout().is_terminal() {
            ScanFormat::Tree
        } else {
            ScanFormat::Line
        }
    });
    let use_simulator = args.simulator || scenario.is_some();

    run_system(async move {
        let simulator = if use_simulator {
            let behaviour = match scenario {
                Some(scenario) => IntezerBehaviour::Scenario(scenario),
                None => IntezerBehaviour::Default(DefaultOptions::default()),
            };
            Some(
                IntezerSimulator::start(behaviour, 0)
                    .await
                    .context("cannot start the Intezer simulator")?,
            )
        } else {
            None
        };

        let mut config =
            ServiceConfig::from_layers([&manifest.config, &scenario_config, &overrides])?;
        if let Some(simulator) = &simulator {
            config.base_url = simulator.base_url();
            config.api_key = Secret::new(SIMULATOR_API_KEY);
        }
        if let Some(base_url) = &args.base_url {
            config.base_url = base_url.clone();
        }
        if let Some(api_key) = &args.api_key {
            config.api_key = api_key.clone();
        }

        let extract_dir = args.output_dir.as_ref().map(|dir| dir.join("extracted"));
        if let Some(dir) = &extract_dir {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        if !use_simulator && config.require_api_key().is_err() {
            return Err(UsageError(
                "no Intezer API key: pass --api-key KEY or set INTEZER_API_KEY (the manifest's \
                 placeholder sample_api_key is not accepted), or use --simulator"
                    .to_string(),
            )
            .into());
        }
        let settings = ScanSettings {
            manifest,
            config,
            params,
            concurrency: args.concurrency,
            extract_dir,
        };
        let inputs = files.into_iter().map(|path| ScanInput { path }).collect();
        let reports = runtime::scan(settings, inputs).await?;
        for report in &reports {
            let written = match &args.output_dir {
                Some(dir) => Some(write_report(dir, report)?),
                None => None,
            };
            match format {
                ScanFormat::Line => println!("{}", summary_line(report, written.as_deref())),
                ScanFormat::Tree => {
                    println!("{}", summary_line(report, written.as_deref()));
                    print!("{}", render_tree(report));
                }
                ScanFormat::Json => {
                    let json = match &report.outcome {
                        ScanOutcome::Result(json) | ScanOutcome::Error(json) => json,
                    };
                    println!("{}", serde_json::to_string_pretty(json)?);
                }
            }
        }
        if let Some(simulator) = simulator {
            simulator.stop().await;
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Writes the result or error JSON and returns its path.
fn write_report(dir: &Path, report: &ScanReport) -> anyhow::Result<PathBuf> {
    let name = if report.sha256.is_empty() {
        "unreadable".to_string()
    } else {
        report.sha256.clone()
    };
    let (path, json) = match &report.outcome {
        ScanOutcome::Result(json) => (dir.join(format!("{name}.result.json")), json),
        ScanOutcome::Error(json) => (dir.join(format!("{name}.error.json")), json),
    };
    let text = serde_json::to_string_pretty(json)?;
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// One line per file: sha256, path, then the verdict, score and number of
/// sections of a result, or the status and message of an error, and where
/// the JSON went when it was written.
pub fn summary_line(report: &ScanReport, written: Option<&Path>) -> String {
    let sha256 = if report.sha256.is_empty() {
        "-".to_string()
    } else {
        report.sha256.clone()
    };
    let file = report.path.display();
    let mut line = match &report.outcome {
        ScanOutcome::Result(json) => {
            let (verdict, score, sections) = result_summary(json);
            format!("{sha256}  {file}  verdict={verdict}  score={score}  sections={sections}")
        }
        ScanOutcome::Error(json) => {
            let status = json
                .pointer("/response/status")
                .and_then(Value::as_str)
                .unwrap_or("error");
            let message = json
                .pointer("/response/message")
                .and_then(Value::as_str)
                .unwrap_or("");
            format!("{sha256}  {file}  error={status}  message={message:?}")
        }
    };
    if let Some(path) = written {
        line.push_str(&format!("  json={}", path.display()));
    }
    line
}

/// Verdict, score and section count of a result JSON. The verdict comes
/// from the "Intezer Results" section; a result without it is "none".
pub fn result_summary(json: &Value) -> (String, i64, usize) {
    let sections = json
        .pointer("/result/sections")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let score = json
        .pointer("/result/score")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let verdict = sections
        .iter()
        .find(|s| s.get("title_text").and_then(Value::as_str) == Some("Intezer Results"))
        .and_then(|s| s.get("body").and_then(Value::as_str))
        .and_then(|body| serde_json::from_str::<Value>(body).ok())
        .and_then(|body| {
            body.get("verdict")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| "none".to_string());
    (verdict, score, sections.len())
}

/// The result as an indented tree: one line per section with its heuristic
/// and score, then its tags; extracted files last.
pub fn render_tree(report: &ScanReport) -> String {
    let mut out = String::new();
    let json = match &report.outcome {
        ScanOutcome::Error(json) => {
            let message = json
                .pointer("/response/message")
                .and_then(Value::as_str)
                .unwrap_or("");
            out.push_str(&format!("  error: {message}\n"));
            return out;
        }
        ScanOutcome::Result(json) => json,
    };
    let sections = json
        .pointer("/result/sections")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if sections.is_empty() {
        out.push_str("  (empty result)\n");
    }
    for section in &sections {
        let depth = section.get("depth").and_then(Value::as_u64).unwrap_or(0) as usize;
        let indent = "  ".repeat(depth + 1);
        let title = section
            .get("title_text")
            .and_then(Value::as_str)
            .unwrap_or("");
        let heuristic = match section.get("heuristic").filter(|h| !h.is_null()) {
            Some(h) => format!(
                "  [heuristic {} score {}]",
                h.get("heur_id").map(Value::to_string).unwrap_or_default(),
                h.get("score").map(Value::to_string).unwrap_or_default()
            ),
            None => String::new(),
        };
        out.push_str(&format!("{indent}{title}{heuristic}\n"));
        let mut tags = Vec::new();
        flatten_tags("", section.get("tags").unwrap_or(&Value::Null), &mut tags);
        for (name, value) in tags {
            out.push_str(&format!("{indent}    tag {name}: {value}\n"));
        }
    }
    let extracted = json
        .pointer("/response/extracted")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for file in &extracted {
        let name = file.get("name").and_then(Value::as_str).unwrap_or("");
        out.push_str(&format!("  extracted {name}\n"));
    }
    out
}

/// Flat `name: value` pairs of a nested tags object.
fn flatten_tags(prefix: &str, tags: &Value, out: &mut Vec<(String, String)>) {
    match tags {
        Value::Object(map) => {
            for (key, value) in map {
                let name = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten_tags(&name, value, out);
            }
        }
        Value::Array(values) => {
            for value in values {
                let text = value
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| value.to_string());
                out.push((prefix.to_string(), text));
            }
        }
        _ => {}
    }
}
