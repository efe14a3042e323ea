//! Sections for Intezer's sub-analyses: one "Subanalysis report for …" per
//! reported sub-analysis, with its strings tables, code reuse and family
//! details, and one "Spawned Process Tree" for all of them.
//!
//! The family rules also update the per-file verdict map, which gives
//! each extracted file its verdict heuristic and can replace an unknown
//! verdict of the task's own file.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::process_tree::{extraction_processes, process_tree_section};
use super::safe_families::is_safe_family;
use super::safelist::Safelist;
use super::strings::strings_section;
use super::verdict::{group, verdict_heuristic, VerdictGroup};
use super::{clean_key_values, SubAnalysisReport};
use crate::assemblyline::{BodyFormat, Heuristic, Section};
use crate::config::ServiceConfig;
use crate::intezer::{CodeReuse, SubAnalysis};

/// SHA-256 (lower-case) → verdict, filled from the IOCs by the caller and
/// updated by the family rules.
pub type FileVerdicts = HashMap<String, String>;

/// Heuristic "Reused Malware Genes".
const REUSED_GENES_HEURISTIC: u32 = 12;

/// Keys left out of a sub-analysis section: the section title names the
/// file, and hashes and sizes are already on the file in AL.
const METADATA_REMOVED_KEYS: &[&str] = &[
    "source",
    "file_type",
    "md5",
    "sha1",
    "sha256",
    "size_in_bytes",
    "ssdeep",
];

/// Columns of "Family Details", in display order. Other keys of a family
/// follow them.
const FAMILY_COLUMNS: &[&str] = &[
    "family_name",
    "family_type",
    "reused_code_count",
    "gene_percentage",
];

/// Family types whose code reuse marks a file malicious. By its name, a
/// `malicious_packer` is a packer Intezer classes as malicious, so it
/// counts as malware does.
const MALICIOUS_FAMILY_TYPES: &[&str] = &["malware", "malicious_packer"];

/// Family types whose code reuse makes a file "of interest", unless the
/// family is in the safe list.
const INTERESTING_FAMILY_TYPES: &[&str] = &["administration_tool", "packer"];

const MALICIOUS: &str = "malicious";
const INTERESTING: &str = "interesting";

/// Extraction method shown for a sub-analysis without a `source`.
const UNKNOWN_METHOD: &str = "unknown method";

/// Sections built by [`sub_analysis_sections`], for the caller to place
/// under "Intezer analysis report".
#[derive(Debug, Clone, PartialEq)]
pub struct SubAnalysisSections {
    /// One "Subanalysis report for <sha256>[, extracted via <method>]"
    /// KEY_VALUE section per reported sub-analysis, in API order, with its
    /// children.
    pub sections: Vec<Section>,
    /// "Spawned Process Tree" PROCESS_TREE section, or `None` when no
    /// sub-analysis had processes.
    pub process_tree: Option<Section>,
}

/// Returns whether a sub-analysis is reported: it lists extraction-info
/// processes, or at least one of its code-reuse families reuses more than
/// one gene. A single reused gene is most likely a false positive, but it
/// does not hide the processes of a sub-analysis. The caller fetches
/// metadata and strings only for reported sub-analyses.
pub fn is_reported(sub: &SubAnalysis, code_reuse: Option<&CodeReuse>) -> bool {
    !extraction_processes(sub).is_empty() || code_reuse.is_some_and(has_strong_family)
}

/// Builds the sections of the reported sub-analyses and applies the family
/// rules to `verdicts`. An extracted file's section gets the verdict
/// heuristic of its map entry. The section of the task's own file
/// (`task_sha256`) gets none, because the main section carries its verdict.
pub fn sub_analysis_sections(
    subs: &[SubAnalysisReport],
    task_sha256: &str,
    verdicts: &mut FileVerdicts,
    config: &ServiceConfig,
    safelist: &Safelist,
) -> SubAnalysisSections {
    let reported: Vec<&SubAnalysisReport> = subs
        .iter()
        .filter(|report| is_reported(&report.sub, report.code_reuse.as_ref()))
        .collect();

    // All rules run before any heuristic is chosen, so a file listed by
    // several sub-analyses gets the same heuristic in each section.
    for report in &reported {
        apply_family_rules(report, verdicts, config);
    }

    let sections = reported
        .iter()
        .map(|report| report_section(report, task_sha256, verdicts, config))
        .collect();
    SubAnalysisSections {
        sections,
        process_tree: process_tree_section(subs, safelist),
    }
}

/// Lists the files the caller may extract, as (SHA-256, extraction method)
/// with the method worded for the file's description ("static
/// extraction"). Only reported sub-analyses count, the task's own file and
/// invalid SHA-256 values are skipped, and each file appears once, in API
/// order, with its SHA-256 lower-cased.
pub fn extraction_candidates(
    subs: &[SubAnalysisReport],
    task_sha256: &str,
) -> Vec<(String, String)> {
    let mut candidates: Vec<(String, String)> = Vec::new();
    for report in subs {
        if !is_reported(&report.sub, report.code_reuse.as_ref()) {
            continue;
        }
        let Some(sha256) = file_sha256(&report.sub) else {
            continue;
        };
        if !is_sha256(&sha256) || sha256.eq_ignore_ascii_case(task_sha256) {
            continue;
        }
        if candidates.iter().any(|(known, _)| *known == sha256) {
            continue;
        }
        let method = extraction_method(&report.sub).unwrap_or_else(|| UNKNOWN_METHOD.to_string());
        candidates.push((sha256, method));
    }
    candidates
}

/// Builds "Subanalysis report for …" with its strings, code reuse and
/// family details.
fn report_section(
    report: &SubAnalysisReport,
    task_sha256: &str,
    verdicts: &FileVerdicts,
    config: &ServiceConfig,
) -> Section {
    let sha256 = file_sha256(&report.sub);
    let mut section = Section::key_value(
        section_title(report),
        clean_key_values(&report.metadata, METADATA_REMOVED_KEYS),
    );

    if let Some(strings) = report.strings.as_deref().and_then(strings_section) {
        section.children.push(strings);
    }
    if let Some(code_reuse) = &report.code_reuse {
        if let Some(summary) = code_reuse_section(code_reuse) {
            section.children.push(summary);
        }
        if let Some(families) = family_details_section(code_reuse) {
            section.children.push(families);
        }
    }

    let is_task_file = sha256
        .as_deref()
        .is_some_and(|sha256| sha256.eq_ignore_ascii_case(task_sha256));
    if !is_task_file {
        section.heuristic = sha256
            .and_then(|sha256| verdicts.get(&sha256))
            .and_then(|verdict| verdict_heuristic(verdict, config.score_administration_tools))
            .map(Heuristic::new);
    }
    section
}

/// Formats `Subanalysis report for <sha256>`, followed by `, extracted via
/// <method>` for every file but the root. A sub-analysis without a SHA-256
/// is named by the metadata's SHA-256, else by its sub-analysis id.
fn section_title(report: &SubAnalysisReport) -> String {
    let name = file_sha256(&report.sub)
        .or_else(|| {
            report
                .metadata
                .get("sha256")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| report.sub.sub_analysis_id.clone());
    match extraction_method(&report.sub).as_deref() {
        Some("root") => format!("Subanalysis report for {name}"),
        Some(method) => format!("Subanalysis report for {name}, extracted via {method}"),
        None => format!("Subanalysis report for {name}, extracted via {UNKNOWN_METHOD}"),
    }
}

/// Turns the sub-analysis `source` into words (`static_extraction` →
/// `static extraction`), or returns `None` when Intezer gave no source.
fn extraction_method(sub: &SubAnalysis) -> Option<String> {
    sub.source
        .as_deref()
        .map(str::trim)
        .filter(|source| !source.is_empty())
        .map(|source| source.replace('_', " "))
}

/// Builds "Code reuse detected": the code-reuse report without its
/// families, as Intezer sent it. Returns `None` when nothing else is left.
fn code_reuse_section(code_reuse: &CodeReuse) -> Option<Section> {
    let mut body = Map::new();
    if let Some(gene_count) = &code_reuse.gene_count {
        body.insert("gene_count".to_string(), gene_count.clone());
    }
    for (key, value) in &code_reuse.extra {
        body.insert(key.clone(), value.clone());
    }
    if body.is_empty() {
        return None;
    }
    Some(Section::key_value("Code reuse detected", body))
}

/// Builds "Family Details" with one row per family, or returns `None` when
/// there are no families. Heuristic 12 gets one gene-count signature per
/// malicious family, but only when a family of the sub-analysis reuses
/// more than one gene, the same condition as for the family rules.
fn family_details_section(code_reuse: &CodeReuse) -> Option<Section> {
    if code_reuse.families.is_empty() {
        return None;
    }
    let total_genes = code_reuse.gene_count.as_ref().and_then(count);
    let rows: Vec<Value> = code_reuse
        .families
        .iter()
        .map(|family| Value::Object(family_row(family, total_genes)))
        .collect();

    let mut section = Section::new("Family Details", BodyFormat::Table);
    section
        .body_config
        .insert("column_order".to_string(), json!(column_order(&rows)));
    section.body = Some(Value::Array(rows));

    if has_strong_family(code_reuse) {
        for family in &code_reuse.families {
            if !MALICIOUS_FAMILY_TYPES.contains(&family_type(family)) {
                continue;
            }
            // A count that is missing or not a whole number fits no bucket.
            if let Some(genes) = reused_genes(family) {
                section
                    .heuristic
                    .get_or_insert_with(|| Heuristic::new(REUSED_GENES_HEURISTIC))
                    .add_signature(gene_bucket(genes), None);
            }
        }
    }
    Some(section)
}

/// Turns a family into a table row: `family_id` is left out,
/// `reused_gene_count` becomes `reused_code_count`, and `gene_percentage`
/// is added when both counts are known and the total is not zero.
fn family_row(family: &Map<String, Value>, total_genes: Option<u64>) -> Map<String, Value> {
    let mut cleaned = clean_key_values(family, &["family_id"]);
    let percentage = match (reused_genes(family), total_genes) {
        (Some(reused), Some(total)) if total > 0 => Some(gene_percentage(reused, total)),
        _ => None,
    };
    if let Some(percentage) = percentage {
        cleaned.insert("gene_percentage".to_string(), Value::String(percentage));
    }

    let mut row = Map::new();
    for column in FAMILY_COLUMNS {
        if let Some(value) = cleaned.remove(*column) {
            row.insert(column.to_string(), value);
        }
    }
    row.extend(cleaned);
    row
}

/// Lists the known columns that any row has, then other keys in first-seen
/// order.
fn column_order(rows: &[Value]) -> Vec<String> {
    let mut columns: Vec<String> = FAMILY_COLUMNS
        .iter()
        .filter(|column| rows.iter().any(|row| row.get(**column).is_some()))
        .map(|column| column.to_string())
        .collect();
    for key in rows.iter().filter_map(Value::as_object).flat_map(Map::keys) {
        if !columns.contains(key) {
            columns.push(key.clone());
        }
    }
    columns
}

/// Formats `reused / total × 100` rounded to two decimals, with at least
/// one decimal and no trailing zeros: `6.06%`, `25.0%`, `100.0%`. Rust's
/// `{:.2}` and Python's `round(x, 2)` both round the exact binary value
/// with ties to even, so the text matches the Python service's.
fn gene_percentage(reused: u64, total: u64) -> String {
    let percentage = reused as f64 / total as f64 * 100.0;
    let mut text = format!("{percentage:.2}");
    while text.ends_with('0') && !text.ends_with(".0") {
        text.pop();
    }
    format!("{text}%")
}

/// Picks the heuristic 12 signature for a family's reused gene count. The
/// buckets are fixed and do not follow `min_malware_genes`.
fn gene_bucket(genes: u64) -> &'static str {
    match genes {
        0..=4 => "less_than_5",
        5..=9 => "between_5_and_10",
        10..=24 => "between_10_and_25",
        25..=49 => "between_25_and_50",
        _ => "50_or_more",
    }
}

/// Marks the sub-analysis file `malicious` for enough reused malware genes,
/// or `interesting` for an administration tool or packer that is not in
/// the safe list. Families that reuse at most one gene change nothing when
/// no family of the file reuses more.
fn apply_family_rules(
    report: &SubAnalysisReport,
    verdicts: &mut FileVerdicts,
    config: &ServiceConfig,
) {
    let Some(code_reuse) = &report.code_reuse else {
        return;
    };
    if !has_strong_family(code_reuse) {
        return;
    }
    let Some(sha256) = file_sha256(&report.sub) else {
        tracing::debug!(
            sub_analysis_id = %report.sub.sub_analysis_id,
            "sub-analysis has no sha256, so its families set no verdict"
        );
        return;
    };

    for family in &code_reuse.families {
        let family_type = family_type(family);
        let current = verdicts.get(&sha256).map(String::as_str);
        if MALICIOUS_FAMILY_TYPES.contains(&family_type) {
            let genes = reused_genes(family).unwrap_or(0);
            if genes >= config.min_malware_genes && current != Some(MALICIOUS) {
                verdicts.insert(sha256.clone(), MALICIOUS.to_string());
            }
        } else if INTERESTING_FAMILY_TYPES.contains(&family_type)
            && !is_safe_family(family_type, family_name(family))
            && may_become_interesting(current)
        {
            verdicts.insert(sha256.clone(), INTERESTING.to_string());
        }
    }
}

/// Returns whether an `interesting` entry would hide nothing stronger.
/// Malicious and suspicious verdicts score higher, `testing` replaces
/// Intezer's own malicious or suspicious verdict, and an entry already of
/// interest (such as `probably_packed`) is more specific.
fn may_become_interesting(current: Option<&str>) -> bool {
    current.is_none_or(|verdict| {
        !matches!(
            group(verdict),
            VerdictGroup::Malicious
                | VerdictGroup::Suspicious
                | VerdictGroup::Testing
                | VerdictGroup::OfInterest
        )
    })
}

fn has_strong_family(code_reuse: &CodeReuse) -> bool {
    code_reuse
        .families
        .iter()
        .any(|family| reused_genes(family).is_some_and(|genes| genes > 1))
}

/// Returns the sub-analysis SHA-256, trimmed and lower-cased like the map
/// keys.
fn file_sha256(sub: &SubAnalysis) -> Option<String> {
    sub.sha256
        .as_deref()
        .map(str::trim)
        .filter(|sha256| !sha256.is_empty())
        .map(str::to_ascii_lowercase)
}

fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|byte| byte.is_ascii_hexdigit())
}

fn family_type(family: &Map<String, Value>) -> &str {
    family
        .get("family_type")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn family_name(family: &Map<String, Value>) -> &str {
    family
        .get("family_name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn reused_genes(family: &Map<String, Value>) -> Option<u64> {
    family.get("reused_gene_count").and_then(count)
}

/// Reads a gene count given as a whole JSON number (`22` or `22.0`) or a
/// decimal string (`"66"`). Negative, fractional and non-numeric values
/// give `None`.
fn count(value: &Value) -> Option<u64> {
    match value {
        Value::Number(number) => number.as_u64().or_else(|| {
            number
                .as_f64()
                .filter(|float| float.fract() == 0.0 && *float >= 0.0 && *float <= u64::MAX as f64)
                .map(|float| float as u64)
        }),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
