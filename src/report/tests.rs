use serde_json::json;

use super::*;
use crate::assemblyline::BodyFormat;

const SHA: &str = "2db11b8dd647844e7d70448e6d553fdb7f9ba32715f3306d108f3027df5ac0bc";

static EMPTY_SAFELIST: std::sync::LazyLock<Safelist> = std::sync::LazyLock::new(Safelist::empty);

fn input<'a>(analysis: &'a Analysis, iocs: Option<&'a Iocs>) -> ReportInput<'a> {
    ReportInput {
        sha256: SHA,
        analysis,
        iocs,
        ttps: &[],
        sub_analyses: &[],
        safelist: &EMPTY_SAFELIST,
    }
}

fn analysis(value: Value) -> Analysis {
    serde_json::from_value(value).unwrap()
}

fn malicious() -> Analysis {
    analysis(json!({
        "analysis_id": "id-1",
        "analysis_time": "Tue, 14 May 2024 09:12:44 GMT",
        "analysis_url": "https://analyze.example.com/analyses/id-1",
        "is_private": true,
        "sha256": SHA,
        "sub_verdict": "malicious",
        "verdict": "malicious",
        "family_name": "ExampleRAT",
        "family_id": "f-1",
        "file_name": "setup.exe"
    }))
}

fn iocs(value: Value) -> Iocs {
    serde_json::from_value(value).unwrap()
}

fn titles(result: &ServiceResult) -> Vec<&str> {
    result.sections.iter().map(|s| s.title.as_str()).collect()
}

#[test]
fn malicious_hit_has_three_sections() {
    let analysis = malicious();
    let result = build_result(&input(&analysis, None), &ServiceConfig::default());
    assert_eq!(
        titles(&result),
        [
            "Intezer Results",
            "Intezer analysis report",
            "Intezer sub-verdict"
        ]
    );
    assert_eq!(result.sections[0].heuristic.as_ref().unwrap().heur_id, 20);
    assert_eq!(result.sections[1].heuristic.as_ref().unwrap().heur_id, 1);
    assert_eq!(result.sections[2].heuristic.as_ref().unwrap().heur_id, 13);
}

#[test]
fn summary_keeps_verdict_family_and_link() {
    let analysis = malicious();
    let result = build_result(&input(&analysis, None), &ServiceConfig::default());
    let body = result.sections[0].body.clone().unwrap();
    assert_eq!(
        body,
        json!({"analysis_id": "id-1", "verdict": "malicious", "sub_verdict": "malicious",
               "family_name": "ExampleRAT", "analysis_url": "https://analyze.example.com/analyses/id-1"})
    );
}

#[test]
fn report_body_drops_listed_keys() {
    let analysis = malicious();
    let result = build_result(&input(&analysis, None), &ServiceConfig::default());
    let body = result.sections[1].body.clone().unwrap();
    assert_eq!(
        body,
        json!({"analysis_id": "id-1", "analysis_time": "Tue, 14 May 2024 09:12:44 GMT",
               "family_name": "ExampleRAT", "file_name": "setup.exe"})
    );
    let sub = result.sections[2].body.clone().unwrap();
    assert_eq!(sub, json!({"sub_verdict": "malicious"}));
}

#[test]
fn family_is_tagged_as_implant_and_actor() {
    let analysis = malicious();
    let result = build_result(&input(&analysis, None), &ServiceConfig::default());
    let tags = &result.sections[1].tags;
    assert_eq!(tags["attribution.implant"], ["ExampleRAT"]);
    assert_eq!(tags["attribution.actor"], ["ExampleRAT"]);
}

#[test]
fn placeholder_families_are_not_tagged() {
    for family in ["Generic Malware", "Not Applicable", "Not Available", ""] {
        let mut analysis = malicious();
        analysis.family_name = Some(family.to_string());
        let result = build_result(&input(&analysis, None), &ServiceConfig::default());
        assert!(
            result.sections[1].tags.is_empty(),
            "family {family:?} was tagged"
        );
    }
}

#[test]
fn administration_tool_family_is_not_tagged() {
    let mut analysis = malicious();
    analysis.verdict = Some("suspicious".into());
    analysis.sub_verdict = Some("known_administration_tool".into());
    let result = build_result(&input(&analysis, None), &ServiceConfig::default());
    let report = result
        .sections
        .iter()
        .find(|s| s.title == "Intezer analysis report")
        .unwrap();
    assert!(report.tags.is_empty());
    assert_eq!(report.heuristic.as_ref().unwrap().heur_id, 2);
}

#[test]
fn trusted_verdict_gives_empty_result() {
    let mut analysis = malicious();
    analysis.verdict = Some("trusted".into());
    analysis.sub_verdict = Some("known_trusted".into());
    let result = build_result(&input(&analysis, None), &ServiceConfig::default());
    assert!(result.is_empty());
}

#[test]
fn network_iocs_become_tagged_lines() {
    let analysis = malicious();
    let iocs = iocs(json!({
        "files": [],
        "network": [
            {"ioc": "192.0.2.44", "type": "ip"},
            {"ioc": "beacon.example.com", "type": "domain"},
            {"ioc": "not-an-ip", "type": "ip"},
            {"ioc": "https://beacon.example.com/x", "type": "url"}
        ]
    }));
    let result = build_result(&input(&analysis, Some(&iocs)), &ServiceConfig::default());
    let network = &result.sections[1].children[0];
    assert_eq!(network.title, "Network Communication Observed");
    assert_eq!(network.format, BodyFormat::Text);
    assert_eq!(
        network.body,
        Some(json!("IOC: 192.0.2.44\nIOC: beacon.example.com\nIOC: not-an-ip\nIOC: https://beacon.example.com/x"))
    );
    assert_eq!(network.tags["network.dynamic.ip"], ["192.0.2.44"]);
    assert_eq!(
        network.tags["network.dynamic.domain"],
        ["beacon.example.com"]
    );
    assert_eq!(network.tags.len(), 2);
}

#[test]
fn unknown_verdict_takes_file_ioc_verdict() {
    let mut analysis = malicious();
    analysis.verdict = Some("unknown".into());
    analysis.sub_verdict = Some("no_genes".into());
    let iocs = iocs(json!({"files": [{"sha256": SHA, "verdict": "malicious"}], "network": []}));
    let result = build_result(&input(&analysis, Some(&iocs)), &ServiceConfig::default());
    let report = result
        .sections
        .iter()
        .find(|s| s.title == "Intezer analysis report")
        .unwrap();
    assert_eq!(report.heuristic.as_ref().unwrap().heur_id, 1);
}

#[test]
fn black_box_off_scores_nothing_for_intezer_verdicts() {
    let analysis = malicious();
    let config = ServiceConfig {
        use_black_box_verdicts: false,
        ..ServiceConfig::default()
    };
    let result = build_result(&input(&analysis, None), &config);
    assert_eq!(titles(&result), ["Intezer Results"]);
}

#[test]
fn probably_packed_raises_three_and_no_sub_verdict_section() {
    let mut analysis = malicious();
    analysis.verdict = Some("suspicious".into());
    analysis.sub_verdict = Some("probably_packed".into());
    let result = build_result(&input(&analysis, None), &ServiceConfig::default());
    assert_eq!(
        titles(&result),
        ["Intezer Results", "Intezer analysis report"]
    );
    assert_eq!(result.sections[1].heuristic.as_ref().unwrap().heur_id, 3);
}

#[test]
fn indicators_shown_by_name_and_gene_count_renamed() {
    let source = json!({"indicators": [{"name": "packed", "classification": "neutral"}], "reused_gene_count": 4, "x": null})
        .as_object()
        .unwrap()
        .clone();
    let cleaned = clean_key_values(&source, &[]);
    assert_eq!(
        Value::Object(cleaned),
        json!({"indicators": ["packed"], "reused_code_count": 4})
    );
}

/// Verdict, sub-verdict, black-box switch, administration-tool switch, and
/// the expected main and sub-verdict heuristics.
type VerdictCase = (
    &'static str,
    &'static str,
    bool,
    bool,
    Option<u32>,
    Option<u32>,
);

/// Verdict × sub-verdict × switches → the main and sub-verdict heuristics.
#[test]
fn verdict_table_with_switches() {
    let cases: &[VerdictCase] = &[
        ("malicious", "malicious", true, true, Some(1), Some(13)),
        (
            "malicious",
            "known_malicious",
            true,
            true,
            Some(1),
            Some(14),
        ),
        ("malicious", "malicious", false, true, None, None),
        ("suspicious", "suspicious", true, true, Some(2), Some(15)),
        ("suspicious", "suspicious", false, true, None, None),
        (
            "suspicious",
            "administration_tool",
            true,
            true,
            Some(2),
            Some(18),
        ),
        (
            "suspicious",
            "administration_tool",
            true,
            false,
            Some(3),
            None,
        ),
        (
            "suspicious",
            "known_administration_tool",
            true,
            false,
            Some(3),
            None,
        ),
        ("suspicious", "probably_packed", true, true, Some(3), None),
        ("suspicious", "probably_packed", false, true, Some(3), None),
        ("unknown", "unique", true, true, None, Some(16)),
        ("trusted", "known_trusted", true, true, None, None),
        (
            "not_supported",
            "file_type_not_supported",
            true,
            true,
            None,
            None,
        ),
    ];
    for (verdict, sub_verdict, black_box, admin, main, sub) in cases {
        let mut analysis = malicious();
        analysis.verdict = Some(verdict.to_string());
        analysis.sub_verdict = Some(sub_verdict.to_string());
        let config = ServiceConfig {
            use_black_box_verdicts: *black_box,
            score_administration_tools: *admin,
            ..ServiceConfig::default()
        };
        let result = build_result(&input(&analysis, None), &config);
        let heuristic_of = |title: &str| {
            result
                .sections
                .iter()
                .find(|s| s.title == title)
                .and_then(|s| s.heuristic.as_ref())
                .map(|h| h.heur_id)
        };
        let case = format!("{verdict}/{sub_verdict} black_box={black_box} admin={admin}");
        assert_eq!(
            heuristic_of("Intezer analysis report"),
            *main,
            "main heuristic for {case}"
        );
        assert_eq!(
            heuristic_of("Intezer sub-verdict"),
            *sub,
            "sub-verdict heuristic for {case}"
        );
    }
}
