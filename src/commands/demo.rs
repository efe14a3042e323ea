//! `demo`: the whole service against both embedded simulators, over real
//! HTTP on 127.0.0.1, on real files.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use serde_json::{json, Value};

use intezer_dynamic::config::environment::DEFAULT_SERVICE_API_KEY;
use intezer_dynamic::config::Environment;
use intezer_dynamic::runtime::{self, ServeOptions};
use intezer_dynamic::simulator::intezer::{
    DefaultOptions, IntezerBehaviour, IntezerSimulator, RecordedCall,
};
use intezer_dynamic::simulator::service_server::{
    CompletionKind, ServiceServerOptions, ServiceServerSimulator, SimFile, SimReport,
};

use super::scan::result_summary;
use super::{run_system, UsageError};
use crate::cli::DemoArgs;

/// Programs analysed when no path is given, besides this binary; those
/// missing on the machine are skipped.
const DEFAULT_PROGRAMS: &[&str] = &[
    "/usr/bin/ls",
    "/usr/bin/cat",
    "/usr/bin/env",
    "/usr/bin/sort",
    "/usr/bin/true",
    "/usr/bin/head",
];

/// Longest wait for the service-server simulator to see every answer after
/// the service stopped.
const COMPLETION_WAIT: Duration = Duration::from_secs(10);

pub fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let paths = if args.paths.is_empty() {
        default_paths()
    } else {
        args.paths.clone()
    };
    let mut files = Vec::new();
    for path in &paths {
        files.push(sim_file(path)?);
    }
    if files.is_empty() {
        return Err(UsageError("no files to analyse".to_string()).into());
    }
    if let Some(dir) = &args.output_dir {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create output folder {}", dir.display()))?;
    }
    let work_dir = tempfile::tempdir().context("cannot make a temporary folder")?;

    run_system(async move {
        let intezer =
            IntezerSimulator::start(IntezerBehaviour::Default(DefaultOptions::default()), 0)
                .await
                .context("cannot start the Intezer simulator")?;
        let task_count = files.len();
        let mut options = ServiceServerOptions {
            files,
            ask_missing_files: true,
            ..ServiceServerOptions::default()
        };
        options.config_overrides = json!({
            "base_url": intezer.base_url(),
            "api_key": "demo-api-key",
            "polling_period_in_seconds": 1,
            "analysis_timeout_in_seconds": 30,
        })
        .as_object()
        .cloned()
        .unwrap_or_default();
        let server = ServiceServerSimulator::start(options, 0)
            .await
            .context("cannot start the service-server simulator")?;

        let host = server.base_url();
        let tasking_dir = work_dir.path().display().to_string();
        let limit = task_count.to_string();
        // The one setting taken from the real environment: a Redis to share
        // the quota through, so the demo can show the shared-quota metrics.
        let quota_redis_url = std::env::var("QUOTA_REDIS_URL").ok();
        let env = Environment::from_lookup(|name| match name {
            "SERVICE_API_HOST" => Some(host.clone()),
            "SERVICE_API_KEY" => Some(DEFAULT_SERVICE_API_KEY.to_string()),
            "HOSTNAME" => Some("intezer-dynamic-demo".to_string()),
            "AL_SERVICE_TASK_LIMIT" => Some(limit.clone()),
            "TASK_REQUEST_TIMEOUT" => Some("1".to_string()),
            "TASKING_DIR" => Some(tasking_dir.clone()),
            "QUOTA_REDIS_URL" => quota_redis_url.clone(),
            _ => None,
        })?;
        let options = ServeOptions {
            concurrency: args.concurrency,
            metrics_addr: args.metrics_addr,
            ..ServeOptions::default()
        };
        runtime::serve(env, options, std::future::pending()).await?;

        let report = server.wait_until_all_completed(COMPLETION_WAIT).await;
        let submitted = submitted_hashes(&intezer.calls());
        print_table(&report, &paths, &submitted);
        if let Some(dir) = &args.output_dir {
            write_outputs(dir, &report)?;
        }
        if args.linger > 0 {
            if let Some(addr) = args.metrics_addr {
                println!(
                    "serving http://{addr}/metrics for {} s more (/readyz answers 503: the \
                     demo takes no more tasks); Ctrl-C ends it sooner",
                    args.linger
                );
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(args.linger)) => {}
                () = super::shutdown_signal() => {}
            }
        }
        let complete = report.completions.len() == task_count
            && report.lost.is_empty()
            && report.completed_twice.is_empty()
            && report.protocol_errors.is_empty();
        if !complete {
            eprintln!(
                "demo failed: {} of {task_count} tasks answered, lost {:?}, answered twice {:?}, protocol errors {:?}",
                report.completions.len(),
                report.lost,
                report.completed_twice,
                report.protocol_errors
            );
        }
        server.stop().await;
        intezer.stop().await;
        Ok(if complete {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    })
}

/// This binary and the default programs that exist here.
fn default_paths() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::env::current_exe().into_iter().collect();
    paths.extend(
        DEFAULT_PROGRAMS
            .iter()
            .map(PathBuf::from)
            .filter(|path| path.is_file()),
    );
    paths
}

/// Reads a file into a simulator task, with an AL file type guessed from
/// its first bytes.
pub fn sim_file(path: &Path) -> anyhow::Result<SimFile> {
    let bytes = std::fs::read(path)
        .map_err(|err| UsageError(format!("cannot read {}: {err}", path.display())))?;
    let file_type = if bytes.starts_with(b"\x7fELF") {
        "executable/linux/elf64"
    } else if bytes.starts_with(b"MZ") {
        "executable/windows/pe32"
    } else {
        "unknown"
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".to_string());
    Ok(SimFile {
        name,
        bytes: bytes.into(),
        file_type: file_type.to_string(),
    })
}

/// SHA-256 of every file uploaded to the Intezer simulator.
fn submitted_hashes(calls: &[RecordedCall]) -> Vec<String> {
    calls
        .iter()
        .flat_map(|call| call.form_fields.iter())
        .filter(|(name, _)| name == "file")
        .filter_map(|(_, value)| value.split("sha256 ").nth(1))
        .map(|hash| hash.trim_end_matches(')').to_string())
        .collect()
}

fn print_table(report: &SimReport, paths: &[PathBuf], submitted: &[String]) {
    println!(
        "{:<64}  {:<10}  {:<16}  {:>6}  {:<34}  file",
        "sha256", "intezer", "verdict", "score", "outcome"
    );
    for completion in &report.completions {
        let (verdict, score, outcome) = match completion.kind {
            CompletionKind::Result => {
                let (verdict, score, sections) = result_summary(&completion.body);
                let extracted = completion
                    .body
                    .pointer("/response/extracted")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                (
                    verdict,
                    score,
                    format!("result, {sections} sections, {extracted} extracted"),
                )
            }
            CompletionKind::Error => {
                let status = completion
                    .body
                    .pointer("/response/status")
                    .and_then(Value::as_str)
                    .unwrap_or("error");
                ("-".to_string(), 0, status.to_string())
            }
        };
        let file = paths
            .iter()
            .find(|path| {
                std::fs::read(path)
                    .ok()
                    .is_some_and(|bytes| sha256_hex(&bytes) == completion.sha256)
            })
            .map(|path| path.display().to_string())
            .unwrap_or_default();
        let intezer = if submitted.contains(&completion.sha256) {
            "submitted"
        } else {
            "known"
        };
        println!(
            "{:<64}  {:<10}  {:<16}  {:>6}  {:<34}  {file}",
            completion.sha256, intezer, verdict, score, outcome
        );
        if let Some(kinds) = section_kinds(&completion.body) {
            println!("    {kinds}");
        }
    }
    println!(
        "intezer: known = found by hash lookup, submitted = uploaded and polled until the analysis \
         finished; verdict none = empty result (Intezer trusts the file)"
    );
    println!(
        "{} tasks handed out, {} answered, {} lost, {} answered twice",
        report.tasks_handed_out,
        report.completions.len(),
        report.lost.len(),
        report.completed_twice.len()
    );
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Writes `<sha256>.result.json` or `<sha256>.error.json` per answer.
fn write_outputs(dir: &Path, report: &SimReport) -> anyhow::Result<()> {
    for completion in &report.completions {
        let suffix = match completion.kind {
            CompletionKind::Result => "result",
            CompletionKind::Error => "error",
        };
        let path = dir.join(format!("{}.{suffix}.json", completion.sha256));
        std::fs::write(&path, serde_json::to_string_pretty(&completion.body)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// The kinds of section in a result, with counts, for one line under its
/// row: `Signatures: 8, Subanalysis report: 3, …`.
fn section_kinds(result: &Value) -> Option<String> {
    let sections = result.pointer("/result/sections")?.as_array()?;
    let mut kinds: Vec<(String, usize)> = Vec::new();
    for section in sections {
        let title = section
            .get("title_text")
            .and_then(Value::as_str)
            .unwrap_or("");
        let kind = if title.starts_with("Signature: ") {
            "Signatures".to_string()
        } else if title.starts_with("Subanalysis report for") {
            "Subanalysis report".to_string()
        } else if title.starts_with("String Family: ") || title == "Signatures" {
            continue;
        } else {
            title.to_string()
        };
        match kinds.iter_mut().find(|(name, _)| *name == kind) {
            Some((_, count)) => *count += 1,
            None => kinds.push((kind, 1)),
        }
    }
    if kinds.is_empty() {
        return None;
    }
    let parts: Vec<String> = kinds
        .into_iter()
        .map(|(name, count)| {
            if count > 1 {
                format!("{name}: {count}")
            } else {
                name
            }
        })
        .collect();
    Some(parts.join(", "))
}
