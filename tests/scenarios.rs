//! Replays the Intezer scenarios (scripted API answers for real sample
//! binaries) through `scan`'s pipeline and checks each outcome, and that
//! the service never makes more quota-counted calls than the Python
//! service did on the same scenario.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use common::replay::{replay_scenario, Replay};
use intezer_dynamic::runtime::ScanOutcome;

/// What the service must produce for a scenario.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// A result whose top-level sections raise these (section title,
    /// heuristic id) pairs, in this order. The parity test checks the
    /// sections below them.
    Result(&'static [(&'static str, u32)]),
    /// A result without sections.
    Empty,
    /// An error with this status.
    Error(&'static str),
    /// A partial result whose only section has this title.
    PartialNote(&'static str),
}

const RESULTS: &str = "Intezer Results";
const REPORT: &str = "Intezer analysis report";
const SUB_VERDICT: &str = "Intezer sub-verdict";

fn expectations() -> HashMap<&'static str, Expect> {
    let malicious: &'static [(&str, u32)] = &[(RESULTS, 20), (REPORT, 1), (SUB_VERDICT, 13)];
    HashMap::from([
        ("01_known_malicious_family", Expect::Result(malicious)),
        ("02_trusted_hit", Expect::Empty),
        ("03_miss_submit_poll_malicious", Expect::Result(malicious)),
        ("04_miss_dynamic_submit_param_false", Expect::Empty),
        (
            "05_miss_submit_failed_analysis",
            Expect::Error("FAIL_NONRECOVERABLE"),
        ),
        ("06_submit_415_unsupported", Expect::Empty),
        ("08_lookup_410_gone", Expect::Result(malicious)),
        ("10_iocs_403_community", Expect::Result(malicious)),
        (
            "12_network_iocs",
            Expect::Result(&[(RESULTS, 20), (REPORT, 2), (SUB_VERDICT, 15)]),
        ),
        (
            "13_subverdict_suspicious_probably_packed",
            Expect::Result(&[(RESULTS, 20), (REPORT, 3)]),
        ),
        ("16_extraction_info_process_tree", Expect::Result(malicious)),
        ("17_strings_results", Expect::Result(malicious)),
        ("18_analysis_id_param", Expect::Result(malicious)),
        ("21_strings_in_progress", Expect::Result(malicious)),
        (
            "24_administration_tool_not_scored",
            Expect::Result(&[(RESULTS, 20), (REPORT, 3)]),
        ),
        (
            "26_submit_403_insufficient_quota",
            Expect::PartialNote("Not submitted to Intezer"),
        ),
        (
            "28_lookup_429_rate_limited",
            Expect::Error("FAIL_RECOVERABLE"),
        ),
        ("31_on_premise_skips_ttps", Expect::Result(malicious)),
    ])
}

/// Runs one scenario the way `scan --scenario FILE` does.
async fn replay(path: &Path) -> Replay {
    replay_scenario(path, &[]).await
}

/// Runs one scenario with configuration overrides, like `--set`.
async fn replay_with(path: &Path, overrides: &[(&str, Value)]) -> Replay {
    replay_scenario(path, overrides).await
}

fn sections(result: &Value) -> Vec<(String, Option<u64>)> {
    result["result"]["sections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["title_text"].as_str().unwrap().to_string(),
                s["heuristic"]["heur_id"].as_u64(),
            )
        })
        .collect()
}

fn check(name: &str, expect: Expect, replay: &Replay) {
    match (expect, &replay.outcome) {
        (Expect::Result(wanted), ScanOutcome::Result(result)) => {
            let found = sections(result);
            let top_level = [RESULTS, REPORT, SUB_VERDICT];
            let with_heuristic: Vec<(String, u32)> = found
                .iter()
                .filter(|(title, _)| top_level.contains(&title.as_str()))
                .filter_map(|(title, id)| id.map(|id| (title.clone(), id as u32)))
                .collect();
            let wanted: Vec<(String, u32)> =
                wanted.iter().map(|(t, id)| (t.to_string(), *id)).collect();
            assert_eq!(with_heuristic, wanted, "{name}: heuristics of {found:?}");
        }
        (Expect::Empty, ScanOutcome::Result(result)) => {
            assert_eq!(sections(result), vec![], "{name}: expected an empty result");
        }
        (Expect::PartialNote(title), ScanOutcome::Result(result)) => {
            assert_eq!(result["partial"], true, "{name}: the result is partial");
            let titles: Vec<String> = sections(result)
                .into_iter()
                .map(|(title, _)| title)
                .collect();
            assert_eq!(titles, vec![title.to_string()], "{name}: sections");
        }
        (Expect::Error(status), ScanOutcome::Error(error)) => {
            assert_eq!(error["response"]["status"], status, "{name}: {error:#}");
            assert!(!error["response"]["message"].as_str().unwrap().is_empty());
        }
        (expect, outcome) => panic!("{name}: expected {expect:?}, got {outcome:#?}"),
    }
}

/// Calls Intezer counts against the quota: hash lookups, uploads and
/// downloads. A request answered 429 was refused before any scan, and a
/// download that was not answered 2xx delivered no sample, so neither is
/// counted.
fn is_quota_counted(method: &str, path: &str, status: u64) -> bool {
    let path = path.trim_end_matches('/');
    if method == "GET" && path.ends_with("/download") {
        return (200..300).contains(&status);
    }
    let counted_call = (method == "GET" && path.contains("/files/"))
        || (method == "POST" && path.ends_with("/analyze"));
    counted_call && status != 429
}

/// Quota-counted calls in a Python service's recorded call log.
fn python_quota_calls(calls_file: &Path) -> Option<usize> {
    let text = std::fs::read_to_string(calls_file).ok()?;
    Some(
        text.lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|call| {
                let method = call["method"].as_str().unwrap_or("");
                is_quota_counted(
                    method,
                    call["path"].as_str().unwrap_or(""),
                    call["status"].as_u64().unwrap_or(0),
                )
            })
            .count(),
    )
}

fn scenario_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
}

async fn replay_folder(dir: &Path, calls_dir: &Path) {
    let expectations = expectations();
    let files = scenario_files(dir);
    assert!(!files.is_empty(), "no scenario in {}", dir.display());
    for file in files {
        let name = file.file_stem().unwrap().to_string_lossy().into_owned();
        let replay = replay(&file).await;
        match expectations.get(name.as_str()) {
            Some(expect) => check(&name, *expect, &replay),
            None => eprintln!(
                "{name}: no expectation recorded; it completed with {:?}",
                replay.outcome
            ),
        }
        let ours = replay
            .calls
            .iter()
            .filter(|c| is_quota_counted(&c.method, &c.path, u64::from(c.status)))
            .count();
        if let Some(python) = python_quota_calls(&calls_dir.join(format!("{name}.calls.jsonl"))) {
            assert!(
                ours <= python,
                "{name}: {ours} quota-counted calls, the Python service made {python}"
            );
        }
    }
}

#[actix_rt::test]
async fn fixture_scenarios_give_expected_outcomes() {
    let dir = common::fixtures().join("scenarios");
    replay_folder(&dir, &dir.join("python-service-calls")).await;
}

#[actix_rt::test]
async fn shared_scenarios_give_expected_outcomes() {
    let Some(dir) = common::shared_scenarios() else {
        eprintln!("skipped: ../shared/scenarios is absent");
        return;
    };
    replay_folder(&dir, &dir.join("python-service-results")).await;
}

/// Scenario 18: the analysis_id parameter reads that analysis and never
/// looks the hash up.
#[actix_rt::test]
async fn analysis_id_param_skips_hash_lookup() {
    let replay = replay(&common::fixtures().join("scenarios/18_analysis_id_param.json")).await;
    assert!(
        replay.calls.iter().all(|c| !c.path.contains("/files/")),
        "{:#?}",
        replay.calls
    );
    assert!(replay.calls.iter().any(|c| c
        .path
        .ends_with("/analyses/5d1a3c0e-7b42-4f7e-9c1a-000000000018")));
}

/// Scenario 04: dynamic_submit=false means no upload.
#[actix_rt::test]
async fn dynamic_submit_false_never_uploads() {
    let replay =
        replay(&common::fixtures().join("scenarios/04_miss_dynamic_submit_param_false.json")).await;
    assert!(replay.calls.iter().all(|c| !c.path.ends_with("/analyze")));
}

/// Scenario 02: a trusted verdict stops after the lookup.
#[actix_rt::test]
async fn trusted_hit_calls_only_token_and_lookup() {
    let replay = replay(&common::fixtures().join("scenarios/02_trusted_hit.json")).await;
    let endpoints: Vec<&str> = replay.calls.iter().map(|c| c.endpoint.as_str()).collect();
    assert_eq!(endpoints, ["get-access-token", "files.latest-analysis"]);
}

/// Scenario 31: on premise, the lookup body has no private-only flag.
#[actix_rt::test]
async fn on_premise_lookup_sends_empty_body() {
    let replay = replay(&common::fixtures().join("scenarios/31_on_premise_skips_ttps.json")).await;
    let lookup = replay
        .calls
        .iter()
        .find(|c| c.endpoint == "files.latest-analysis")
        .unwrap();
    assert_eq!(lookup.body_json, Some(serde_json::json!({})));
}

/// Scenario 12: IPs and the domain are tagged; the URL IOC is listed only.
#[actix_rt::test]
async fn network_iocs_are_tagged() {
    let replay = replay(&common::fixtures().join("scenarios/12_network_iocs.json")).await;
    let ScanOutcome::Result(result) = &replay.outcome else {
        panic!("expected a result")
    };
    let network = result["result"]["sections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["title_text"] == "Network Communication Observed")
        .unwrap();
    assert_eq!(network["depth"], 1);
    assert_eq!(
        network["tags"]["network"]["dynamic"]["ip"],
        serde_json::json!(["192.0.2.44", "198.51.100.23"])
    );
    assert_eq!(
        network["tags"]["network"]["dynamic"]["domain"],
        serde_json::json!(["beacon.example.com"])
    );
    assert!(network["body"]
        .as_str()
        .unwrap()
        .contains("IOC: https://beacon.example.com/api/v1/ping"));
}

/// Whether a request path belongs to one family of calls.
type CallFilter = fn(&str) -> bool;

/// Each fetch switch turned off removes exactly its calls.
#[actix_rt::test]
async fn fetch_switches_remove_their_calls() {
    let scenario = common::fixtures().join("scenarios/17_strings_results.json");
    let all = replay(&scenario).await;
    let cases: [(&str, CallFilter); 4] = [
        ("fetch_iocs", |path| path.ends_with("/iocs")),
        ("fetch_ttps", |path| path.ends_with("/dynamic-ttps")),
        ("fetch_sub_analyses", |path| path.contains("/sub-analyses")),
        ("fetch_strings", |path| path.contains("/strings")),
    ];
    for (switch, is_its_call) in cases {
        assert!(
            all.calls.iter().any(|c| is_its_call(&c.path)),
            "{switch}: the scenario makes such calls"
        );
        let without = replay_with(&scenario, &[(switch, Value::Bool(false))]).await;
        assert!(
            !without.calls.iter().any(|c| is_its_call(&c.path)),
            "{switch}=false still calls"
        );
        let others_before = all.calls.iter().filter(|c| !is_its_call(&c.path)).count();
        let others_after = without
            .calls
            .iter()
            .filter(|c| !is_its_call(&c.path))
            .count();
        assert_eq!(
            others_before, others_after,
            "{switch}=false changed other calls"
        );
        assert!(
            matches!(without.outcome, ScanOutcome::Result(_)),
            "{switch}=false still gives a result"
        );
    }
}
