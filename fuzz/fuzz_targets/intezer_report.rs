//! Fuzzes the mapping of Intezer data to an Assemblyline result: the typed
//! analysis, IOCs, TTPs and sub-analyses are read from one JSON document,
//! turned into result sections with `build_result`, and rendered as the
//! result JSON the service posts.
//!
//! Input: a JSON object with `analysis` (required), and optionally `iocs`,
//! `ttps`, `sub_analyses` (objects with `sub`, `code_reuse`, `metadata` and
//! `strings`), `safelist` (AL's safelist API response), `config` (manifest
//! configuration keys) and `sha256` (the task's file). A part that does not
//! deserialise is left out, as the service leaves out a response it cannot
//! parse.

#![no_main]

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use intezer_dynamic::assemblyline::result::Milestones;
use intezer_dynamic::assemblyline::task::is_sha256;
use intezer_dynamic::assemblyline::{Manifest, ServiceIdentity, Task};
use intezer_dynamic::config::ServiceConfig;
use intezer_dynamic::intezer::{Analysis, Iocs, Ttp};
use intezer_dynamic::report::safelist::Safelist;
use intezer_dynamic::report::sub_analysis::extraction_candidates;
use intezer_dynamic::report::{build_result, ReportInput, SubAnalysisReport};
use intezer_dynamic::runtime::service_identity;
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// SHA-256 of the task's file when the input names no valid one.
const TASK_SHA256: &str = "2db11b8dd647844e7d70448e6d553fdb7f9ba32715f3306d108f3027df5ac0bc";

static IDENTITY: LazyLock<ServiceIdentity> = LazyLock::new(|| {
    service_identity(&Manifest::embedded("4.0.0.dev0").expect("embedded manifest parses"))
});

/// Fixed processing times, so that a crash reproduces.
fn milestones() -> Milestones {
    let time = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).expect("valid timestamp");
    Milestones {
        started: time,
        completed: time,
    }
}

fn typed<T: DeserializeOwned>(document: &Value, key: &str) -> Option<T> {
    let value = document.get(key)?.clone();
    serde_json::from_value(value).ok()
}

fn sub_analysis_report(value: &Value) -> Option<SubAnalysisReport> {
    Some(SubAnalysisReport {
        sub: typed(value, "sub")?,
        code_reuse: typed(value, "code_reuse"),
        metadata: value
            .get("metadata")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        strings: typed(value, "strings"),
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(document) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Some(analysis) = typed::<Analysis>(&document, "analysis") else {
        return;
    };
    let iocs = typed::<Iocs>(&document, "iocs");
    let ttps = typed::<Vec<Ttp>>(&document, "ttps").unwrap_or_default();
    let sub_analyses: Vec<SubAnalysisReport> = document
        .get("sub_analyses")
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(sub_analysis_report).collect())
        .unwrap_or_default();
    let safelist = document
        .get("safelist")
        .and_then(|value| Safelist::from_api(value).ok())
        .unwrap_or_else(Safelist::empty);
    let sha256 = document
        .get("sha256")
        .and_then(Value::as_str)
        .filter(|sha256| is_sha256(sha256))
        .unwrap_or(TASK_SHA256);
    let task = Task::local(sha256, "sample.exe", 1024, "IntezerDynamic", Map::new());

    let mut configs = vec![ServiceConfig::default()];
    if let Some(layer) = document.get("config").and_then(Value::as_object) {
        if let Ok(config) = ServiceConfig::from_layers([layer]) {
            configs.push(config);
        }
    }
    for config in &configs {
        let input = ReportInput {
            sha256: &task.sha256,
            analysis: &analysis,
            iocs: iocs.as_ref(),
            ttps: &ttps,
            sub_analyses: &sub_analyses,
            safelist: &safelist,
        };
        let result = build_result(&input, config);
        let json = result.to_json(&task, &IDENTITY, milestones());
        serde_json::to_vec(&json).expect("result JSON serialises");
    }

    // Extracted sub-files are stored as `<sha256>.sample` in the task's
    // folder, so a candidate must never be anything but a hash.
    for (candidate, _) in extraction_candidates(&sub_analyses, &task.sha256) {
        assert!(
            is_sha256(&candidate),
            "extraction candidate {candidate:?} is not a lowercase SHA-256"
        );
    }
});
