//! Turns an Intezer analysis into AL result sections, heuristics and tags.
//!
//! The layout follows the Python Intezer service so analysts see the same
//! sections: "Intezer Results" (heuristic 20), "Intezer analysis report"
//! with the verdict heuristic, family tags and the network IOCs, then
//! "Intezer sub-verdict" with heuristics 13 to 19.

pub mod ioc_extract;
pub mod process_tree;
pub mod safe_families;
pub mod safelist;
pub mod signatures;
pub mod strings;
pub mod sub_analysis;
pub mod tags;
pub mod verdict;

use serde_json::{Map, Value};

use crate::assemblyline::{Heuristic, Section, ServiceResult};
use crate::config::ServiceConfig;
use crate::intezer::{Analysis, CodeReuse, Iocs, StringEntry, SubAnalysis, Ttp};
use safelist::Safelist;
use sub_analysis::FileVerdicts;
use tags::add_tag;
use verdict::{
    apply_black_box, effective_verdict, group, sub_verdict_heuristic, verdict_heuristic,
    VerdictGroup,
};

/// Family names that say nothing about the file and are never tagged.
const UNTAGGED_FAMILIES: &[&str] = &["Generic Malware", "Not Applicable", "Not Available"];

/// Keys left out of the "Intezer analysis report" body, because other
/// sections show them or they only matter to Intezer.
const REPORT_REMOVED_KEYS: &[&str] = &[
    "analysis_url",
    "is_private",
    "sha256",
    "verdict",
    "family_id",
    "sub_verdict",
];

/// Keys left out of the "Intezer sub-verdict" body.
const SUB_VERDICT_REMOVED_KEYS: &[&str] = &[
    "analysis_id",
    "analysis_time",
    "analysis_url",
    "family_id",
    "family_name",
    "file_name",
    "is_private",
    "sha256",
    "verdict",
];

/// Keys of the "Intezer Results" summary, in display order.
const SUMMARY_KEYS: &[&str] = &[
    "analysis_id",
    "verdict",
    "sub_verdict",
    "family_name",
    "analysis_url",
];

/// What Intezer returned for one file.
#[derive(Debug, Clone)]
pub struct ReportInput<'a> {
    /// SHA-256 of the task's file.
    pub sha256: &'a str,
    pub analysis: &'a Analysis,
    /// `None` when Intezer had no IOCs (404), the plan does not include them
    /// (403), or `fetch_iocs` is off.
    pub iocs: Option<&'a Iocs>,
    /// Dynamic TTPs; empty when there are none or they were not fetched.
    pub ttps: &'a [Ttp],
    /// The sub-analyses that are reported, with their details.
    pub sub_analyses: &'a [SubAnalysisReport],
    pub safelist: &'a Safelist,
}

/// One sub-analysis with the details fetched for it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubAnalysisReport {
    pub sub: SubAnalysis,
    /// `None` when Intezer has no code-reuse report for it (409).
    pub code_reuse: Option<CodeReuse>,
    /// Empty when the metadata call failed.
    pub metadata: Map<String, Value>,
    /// `None` when strings were not fetched or not available.
    pub strings: Option<Vec<StringEntry>>,
}

/// The verdict after the verdict rules, or `None` when the result is empty.
pub fn main_verdict(analysis: &Analysis, config: &ServiceConfig) -> Option<String> {
    let verdict = effective_verdict(analysis.verdict.as_deref(), analysis.sub_verdict.as_deref())?;
    Some(apply_black_box(&verdict, config.use_black_box_verdicts))
}

/// Builds the result for one analysis. Trusted, unsupported and verdict-less
/// analyses give an empty result.
pub fn build_result(input: &ReportInput<'_>, config: &ServiceConfig) -> ServiceResult {
    let Some(mut verdict) = main_verdict(input.analysis, config) else {
        return ServiceResult::default();
    };
    let analysis = input.analysis.to_json_map();
    let mut verdicts = file_verdicts(input.iocs, config);

    let mut sections = vec![summary_section(&analysis)];

    let mut report = Section::key_value(
        "Intezer analysis report",
        clean_key_values(&analysis, REPORT_REMOVED_KEYS),
    );
    add_family_tags(&mut report, input.analysis, &verdict, input.safelist);
    if let Some(network) = input
        .iocs
        .and_then(|iocs| network_section(iocs, input.safelist))
    {
        report.children.push(network);
    }
    if let Some(signatures) = signatures::signatures_section(input.ttps, input.safelist) {
        report.children.push(signatures);
    }
    let subs = sub_analysis::sub_analysis_sections(
        input.sub_analyses,
        input.sha256,
        &mut verdicts,
        config,
        input.safelist,
    );
    report.children.extend(subs.sections);
    if let Some(tree) = subs.process_tree {
        report.children.push(tree);
    }

    // Intezer's verdict for the file may be "unknown" while its IOCs or its
    // code reuse say more; the file's own entry then decides.
    if matches!(
        group(&verdict),
        VerdictGroup::Unknown | VerdictGroup::Testing
    ) {
        if let Some(found) = verdicts.get(input.sha256) {
            if !matches!(group(found), VerdictGroup::Unknown | VerdictGroup::Testing) {
                verdict = found.clone();
            }
        }
    }

    report.heuristic =
        verdict_heuristic(&verdict, config.score_administration_tools).map(Heuristic::new);
    if report.heuristic.is_some() || !report.children.is_empty() {
        sections.push(report);
    }

    if let Some(sub_verdict) = input.analysis.sub_verdict.as_deref() {
        let heuristic = sub_verdict_heuristic(
            sub_verdict,
            config.use_black_box_verdicts,
            config.score_administration_tools,
        );
        if let Some(heuristic) = heuristic {
            let mut section = Section::key_value(
                "Intezer sub-verdict",
                clean_key_values(&analysis, SUB_VERDICT_REMOVED_KEYS),
            );
            section.heuristic = Some(Heuristic::new(heuristic));
            sections.push(section);
        }
    }

    ServiceResult {
        sections,
        ..ServiceResult::default()
    }
}

/// "Intezer Results": the verdict, family and link an analyst reads first.
fn summary_section(analysis: &Map<String, Value>) -> Section {
    let body: Map<String, Value> = SUMMARY_KEYS
        .iter()
        .filter_map(|key| {
            analysis
                .get(*key)
                .filter(|v| !v.is_null())
                .map(|v| (key.to_string(), v.clone()))
        })
        .collect();
    let mut section = Section::key_value("Intezer Results", body);
    section.heuristic = Some(Heuristic::new(20));
    section
}

/// Tags the family as implant and actor, except for placeholder family
/// names and administration tools.
fn add_family_tags(section: &mut Section, analysis: &Analysis, verdict: &str, safelist: &Safelist) {
    let Some(family) = analysis.family_name.as_deref().map(str::trim) else {
        return;
    };
    if family.is_empty()
        || UNTAGGED_FAMILIES.contains(&family)
        || verdict::is_administration_tool(verdict)
    {
        return;
    }
    add_tag(section, "attribution.implant", family, safelist);
    add_tag(section, "attribution.actor", family, safelist);
}

/// SHA-256 → verdict for every file Intezer's IOCs list. With black-box
/// verdicts off, malicious and suspicious entries become `testing`.
fn file_verdicts(iocs: Option<&Iocs>, config: &ServiceConfig) -> FileVerdicts {
    let mut verdicts = FileVerdicts::new();
    for file in iocs.map(|iocs| iocs.files.as_slice()).unwrap_or_default() {
        if let (Some(sha256), Some(verdict)) = (&file.sha256, &file.verdict) {
            verdicts.insert(
                sha256.to_lowercase(),
                apply_black_box(verdict, config.use_black_box_verdicts),
            );
        }
    }
    verdicts
}

/// "Network Communication Observed": one line per network IOC; IPs and
/// domains are tagged when AL would accept them.
fn network_section(iocs: &Iocs, safelist: &Safelist) -> Option<Section> {
    if iocs.network.is_empty() {
        return None;
    }
    let lines: Vec<String> = iocs
        .network
        .iter()
        .map(|ioc| format!("IOC: {}", ioc.ioc))
        .collect();
    let mut section = Section::text("Network Communication Observed", &lines);
    for ioc in &iocs.network {
        match ioc.kind.as_deref() {
            Some("ip") => {
                add_tag(&mut section, "network.dynamic.ip", &ioc.ioc, safelist);
            }
            Some("domain") => {
                add_tag(&mut section, "network.dynamic.domain", &ioc.ioc, safelist);
            }
            other => tracing::debug!(ioc_type = ?other, "network IOC type is not tagged"),
        }
    }
    Some(section)
}

/// Copies `source` without the `removed` keys, shows indicator objects by
/// name, and renames `reused_gene_count` to `reused_code_count`.
pub fn clean_key_values(source: &Map<String, Value>, removed: &[&str]) -> Map<String, Value> {
    let mut cleaned = Map::new();
    for (key, value) in source {
        if removed.contains(&key.as_str()) || value.is_null() {
            continue;
        }
        let value = match (key.as_str(), value) {
            ("indicators", Value::Array(items)) => Value::Array(
                items
                    .iter()
                    .map(|item| item.get("name").cloned().unwrap_or_else(|| item.clone()))
                    .collect(),
            ),
            _ => value.clone(),
        };
        let key = if key == "reused_gene_count" {
            "reused_code_count".to_string()
        } else {
            key.clone()
        };
        cleaned.insert(key, value);
    }
    cleaned
}

#[cfg(test)]
mod tests;
