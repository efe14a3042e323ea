//! Compares our result with the result the Python Intezer service produced
//! for the same scripted Intezer answers, section by section, after
//! removing what changes from run to run (timestamps, versions,
//! classification). Every difference must be one of those listed here, each
//! with the reason it is intended; the README lists them too.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use common::replay::replay_scenario;
use intezer_dynamic::runtime::ScanOutcome;

/// One section, reduced to what an analyst sees and AL scores.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Shown {
    /// Titles from the top section down to this one, with the position
    /// among same-titled siblings, so that the many "Code reuse detected"
    /// sections are told apart by their parent.
    path: Vec<String>,
    depth: u64,
    title: String,
    heuristic: Option<u64>,
    signatures: BTreeSet<String>,
    tags: BTreeSet<(String, String)>,
    body: Option<String>,
}

fn tag_pairs(prefix: &str, tags: &Value, out: &mut BTreeSet<(String, String)>) {
    match tags {
        Value::Object(map) => {
            for (key, value) in map {
                let name = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                tag_pairs(&name, value, out);
            }
        }
        Value::Array(values) => {
            for value in values {
                out.insert((
                    prefix.to_string(),
                    value.as_str().unwrap_or_default().to_uppercase(),
                ));
            }
        }
        _ => {}
    }
}

/// Bodies are compared as parsed JSON (key order and spacing aside).
fn canonical_body(section: &Value) -> Option<String> {
    let body = section["body"].as_str()?;
    if section["body_format"] == "TEXT" {
        return Some(body.to_string());
    }
    let parsed: Value = serde_json::from_str(body).ok()?;
    Some(sorted(&parsed).to_string())
}

fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&map[k])))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

fn shown(result: &Value) -> Vec<Shown> {
    let mut stack: Vec<String> = Vec::new();
    let mut seen: std::collections::HashMap<Vec<String>, usize> = std::collections::HashMap::new();
    result["result"]["sections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|section| {
            let depth = section["depth"].as_u64().unwrap() as usize;
            stack.truncate(depth);
            let title = section["title_text"].as_str().unwrap().to_string();
            let mut key = stack.clone();
            key.push(title.clone());
            let count = seen.entry(key).or_default();
            *count += 1;
            stack.push(format!("{title}#{count}"));
            let path = stack.clone();
            let mut tags = BTreeSet::new();
            tag_pairs("", &section["tags"], &mut tags);
            let heuristic = section["heuristic"].get("heur_id").and_then(Value::as_u64);
            let signatures = section["heuristic"]
                .get("signatures")
                .and_then(Value::as_object)
                .map(|s| s.keys().cloned().collect())
                .unwrap_or_default();
            Shown {
                path,
                depth: section["depth"].as_u64().unwrap(),
                title: section["title_text"].as_str().unwrap().to_string(),
                heuristic,
                signatures,
                tags,
                body: canonical_body(section),
            }
        })
        .collect()
}

fn extracted(result: &Value) -> BTreeSet<String> {
    result["response"]["extracted"]
        .as_array()
        .map(|files| {
            files
                .iter()
                .map(|f| f["name"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

async fn our_result(scenario_path: &Path) -> ScanOutcome {
    replay_scenario(scenario_path, &[]).await.outcome
}

/// A section present on one side only, or present on both with different
/// content, that is intended.
struct Difference {
    scenario: &'static str,
    title: &'static str,
    why: &'static str,
}

/// Sections that differ on purpose. The summary section's body always
/// differs: ours shows the analysis id, verdict, sub-verdict, family and
/// report link instead of removing them.
const DIFFERENCES: &[Difference] = &[
    Difference { scenario: "*", title: "Intezer Results", why: "the summary shows the verdict, family and link" },
    Difference {
        scenario: "*",
        title: "Sub-files not extracted",
        why: "a sub-file that could not be downloaded is named in the result instead of only in the logs",
    },
    Difference {
        scenario: "16_extraction_info_process_tree",
        title: "Spawned Process Tree",
        why: "no command line is made up from a process path and a module path",
    },
    Difference {
        scenario: "16_extraction_info_process_tree",
        title: "Process modules",
        why: "modules loaded from another path are listed instead of glued into a command line",
    },
    Difference {
        scenario: "18_analysis_id_param",
        title: "Intezer",
        why: "the analysis_id parameter reports that analysis; the Python service returned nothing",
    },
    Difference {
        scenario: "24_administration_tool_not_scored",
        title: "Intezer sub-verdict",
        why: "score_administration_tools=false also stops the administration-tool sub-verdict heuristic",
    },
];

fn is_intended(scenario: &str, title: &str) -> bool {
    DIFFERENCES
        .iter()
        .any(|d| (d.scenario == "*" || d.scenario == scenario) && title.starts_with(d.title))
}

async fn compare(scenario_path: &Path, python_result: &Path) -> Vec<String> {
    let name = scenario_path
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let python: Value =
        serde_json::from_str(&std::fs::read_to_string(python_result).unwrap()).unwrap();
    let ScanOutcome::Result(ours) = our_result(scenario_path).await else {
        return vec![format!("{name}: ours is an error, Python's a result")];
    };
    let (ours_shown, python_shown) = (shown(&ours), shown(&python));
    let mut problems = Vec::new();
    for section in &python_shown {
        if is_intended(&name, &section.title) {
            continue;
        }
        match ours_shown.iter().find(|s| s.path == section.path) {
            None => problems.push(format!("{name}: missing section {:?}", section.title)),
            Some(ours) if ours != section => problems.push(format!(
                "{name}: section {:?} differs:\n  ours   {ours:?}\n  python {section:?}",
                section.title
            )),
            Some(_) => {}
        }
    }
    for section in &ours_shown {
        let in_python = python_shown.iter().any(|s| s.path == section.path);
        if !in_python && !is_intended(&name, &section.title) {
            problems.push(format!("{name}: extra section {:?}", section.title));
        }
    }
    if extracted(&ours) != extracted(&python) && !is_intended(&name, "extracted files") {
        problems.push(format!(
            "{name}: extracted {:?}, Python {:?}",
            extracted(&ours),
            extracted(&python)
        ));
    }
    problems
}

async fn compare_folder(scenarios: &Path, results: &Path) {
    let mut problems = Vec::new();
    let mut compared = 0;
    let mut entries: Vec<_> = std::fs::read_dir(results)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for result in entries {
        let file = result.file_name().unwrap().to_string_lossy().into_owned();
        let Some(name) = file.strip_suffix(".result.json") else {
            continue;
        };
        let scenario = scenarios.join(format!("{name}.json"));
        problems.extend(compare(&scenario, &result).await);
        compared += 1;
    }
    assert!(compared > 0);
    assert!(
        problems.is_empty(),
        "{} differences not listed as intended:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[actix_rt::test]
async fn fixture_results_match_python_service() {
    let dir = common::fixtures().join("scenarios");
    compare_folder(&dir, &dir.join("python-service-results")).await;
}

#[actix_rt::test]
async fn shared_results_match_python_service() {
    let Some(dir) = common::shared_scenarios() else {
        eprintln!("skipped: ../shared/scenarios is absent");
        return;
    };
    compare_folder(&dir, &dir.join("python-service-results")).await;
}

#[test]
fn every_difference_states_its_reason() {
    for difference in DIFFERENCES {
        assert!(
            !difference.why.trim().is_empty(),
            "{} has no reason",
            difference.title
        );
    }
}
