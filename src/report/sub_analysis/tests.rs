use std::path::PathBuf;

use serde_json::{json, Map, Value};

use super::*;
use crate::intezer::StringEntry;
use crate::report::strings::string_entry;

const TASK_SHA: &str = "2db11b8dd647844e7d70448e6d553fdb7f9ba32715f3306d108f3027df5ac0bc";
const SUB_SHA: &str = "e86eb1f4e1b27f8c112c3815ba180840b44b488dfabccc3de8f17ce3dcb9a261";
const OTHER_SHA: &str = "20233e7909601ff378d9aef528ae8bb0c53e69d716979135755eb43a5f743432";

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("expected an object, got {other}"),
    }
}

fn sub(sha256: &str, source: &str) -> SubAnalysis {
    SubAnalysis {
        sub_analysis_id: format!("sub-{}", &sha256[..8.min(sha256.len())]),
        source: Some(source.to_string()),
        sha256: Some(sha256.to_string()),
        ..SubAnalysis::default()
    }
}

fn with_processes(mut sub: SubAnalysis) -> SubAnalysis {
    sub.extraction_info = Some(json!({"processes": [{
        "process_id": 10,
        "parent_process_id": 1,
        "process_path": r"C:\Windows\System32\cmd.exe",
        "module_path": r"C:\Windows\System32\cmd.exe",
    }]}));
    sub
}

fn family(name: &str, family_type: &str, genes: Value) -> Map<String, Value> {
    object(json!({
        "family_id": "f-1",
        "family_name": name,
        "family_type": family_type,
        "reused_gene_count": genes,
    }))
}

fn code_reuse(gene_count: Value, families: Vec<Map<String, Value>>) -> CodeReuse {
    CodeReuse {
        gene_count: Some(gene_count),
        families,
        extra: object(json!({"gene_type": "native_windows", "unique_gene_count": 12})),
    }
}

fn report(sub: SubAnalysis, code_reuse: Option<CodeReuse>) -> SubAnalysisReport {
    SubAnalysisReport {
        sub,
        code_reuse,
        metadata: Map::new(),
        strings: None,
    }
}

fn sections(subs: &[SubAnalysisReport], verdicts: &mut FileVerdicts) -> SubAnalysisSections {
    sub_analysis_sections(
        subs,
        TASK_SHA,
        verdicts,
        &ServiceConfig::default(),
        &Safelist::empty(),
    )
}

fn family_details(section: &Section) -> &Section {
    section
        .children
        .iter()
        .find(|child| child.title == "Family Details")
        .expect("section has family details")
}

fn signatures(section: &Section) -> Vec<(&str, u64)> {
    section
        .heuristic
        .as_ref()
        .map(|heuristic| {
            heuristic
                .signatures
                .iter()
                .map(|(name, hits)| (name.as_str(), *hits))
                .collect()
        })
        .unwrap_or_default()
}

fn heuristic_id(section: &Section) -> Option<u32> {
    section
        .heuristic
        .as_ref()
        .map(|heuristic| heuristic.heur_id)
}

// === filter ===

#[test]
fn is_reported_cases() {
    let strong = || {
        Some(code_reuse(
            json!(66),
            vec![family("X", "malware", json!(2))],
        ))
    };
    let weak = || {
        Some(code_reuse(
            json!(66),
            vec![family("X", "malware", json!(1))],
        ))
    };
    let mut no_process_list = sub(SUB_SHA, "static_extraction");
    no_process_list.extraction_info = Some(json!({"note": "no processes key"}));
    let mut empty_process_list = sub(SUB_SHA, "static_extraction");
    empty_process_list.extraction_info = Some(json!({"processes": []}));

    let cases = [
        ("nothing", sub(SUB_SHA, "root"), None, false),
        (
            "processes only",
            with_processes(sub(SUB_SHA, "root")),
            None,
            true,
        ),
        (
            "processes and weak families",
            with_processes(sub(SUB_SHA, "root")),
            weak(),
            true,
        ),
        ("weak families only", sub(SUB_SHA, "root"), weak(), false),
        ("strong family", sub(SUB_SHA, "root"), strong(), true),
        (
            "code reuse without families",
            sub(SUB_SHA, "root"),
            Some(code_reuse(json!(66), vec![])),
            false,
        ),
        ("info without processes key", no_process_list, None, false),
        ("empty process list", empty_process_list, None, false),
        (
            "gene count as string",
            sub(SUB_SHA, "root"),
            Some(code_reuse(
                json!(66),
                vec![family("X", "malware", json!("2"))],
            )),
            true,
        ),
        (
            "gene count not a number",
            sub(SUB_SHA, "root"),
            Some(code_reuse(
                json!(66),
                vec![family("X", "malware", json!("many"))],
            )),
            false,
        ),
    ];
    for (case, sub, code_reuse, expected) in cases {
        assert_eq!(is_reported(&sub, code_reuse.as_ref()), expected, "{case}");
    }
}

#[test]
fn unreported_sub_analysis_has_no_section() {
    let subs = [
        report(sub(SUB_SHA, "static_extraction"), None),
        report(with_processes(sub(OTHER_SHA, "dynamic_unpacking")), None),
    ];
    let built = sections(&subs, &mut FileVerdicts::new());
    assert_eq!(built.sections.len(), 1);
    assert!(built.sections[0].title.contains(OTHER_SHA));
}

#[test]
fn weak_families_keep_process_tree() {
    let subs = [report(
        with_processes(sub(SUB_SHA, "dynamic_unpacking")),
        Some(code_reuse(
            json!(66),
            vec![family("X", "malware", json!(1))],
        )),
    )];
    let built = sections(&subs, &mut FileVerdicts::new());
    assert_eq!(built.sections.len(), 1);
    assert!(built.process_tree.is_some());
}

#[test]
fn weak_families_change_no_verdict() {
    let subs = [report(
        with_processes(sub(SUB_SHA, "dynamic_unpacking")),
        Some(code_reuse(json!(66), vec![family("X", "packer", json!(1))])),
    )];
    let mut verdicts = FileVerdicts::new();
    let built = sections(&subs, &mut verdicts);
    assert!(verdicts.is_empty());
    assert_eq!(heuristic_id(family_details(&built.sections[0])), None);
}

// === section and metadata ===

#[test]
fn root_title_has_no_method() {
    let subs = [report(sub(TASK_SHA, "root"), None)];
    assert_eq!(
        section_title(&subs[0]),
        format!("Subanalysis report for {TASK_SHA}")
    );
}

#[test]
fn extracted_title_names_method() {
    let subs = [report(sub(SUB_SHA, "static_extraction"), None)];
    assert_eq!(
        section_title(&subs[0]),
        format!("Subanalysis report for {SUB_SHA}, extracted via static extraction")
    );
}

#[test]
fn title_without_source_says_unknown() {
    let mut without_source = sub(SUB_SHA, "root");
    without_source.source = None;
    assert_eq!(
        section_title(&report(without_source, None)),
        format!("Subanalysis report for {SUB_SHA}, extracted via unknown method")
    );
}

#[test]
fn title_without_sha256_uses_metadata() {
    let mut without_sha = sub(SUB_SHA, "root");
    without_sha.sha256 = None;
    let mut report = report(without_sha, None);
    report.metadata = object(json!({"sha256": OTHER_SHA}));
    assert_eq!(
        section_title(&report),
        format!("Subanalysis report for {OTHER_SHA}")
    );
}

#[test]
fn metadata_is_cleaned() {
    let mut subject = report(
        sub(SUB_SHA, "static_extraction"),
        Some(code_reuse(
            json!(66),
            vec![family("X", "malware", json!(9))],
        )),
    );
    subject.metadata = object(json!({
        "source": "static_extraction",
        "file_type": "pe",
        "md5": "00000000000000000000000000000001",
        "sha1": "0000000000000000000000000000000000000001",
        "sha256": SUB_SHA,
        "size_in_bytes": 838,
        "ssdeep": "12:abc:def",
        "architecture": "i386",
        "indicators": [{"name": "password_protected", "classification": "neutral"}],
    }));
    let built = sections(&[subject], &mut FileVerdicts::new());
    assert_eq!(
        built.sections[0].body,
        Some(json!({"architecture": "i386", "indicators": ["password_protected"]}))
    );
    assert_eq!(built.sections[0].format, BodyFormat::KeyValue);
}

#[test]
fn children_are_strings_code_reuse_families() {
    let mut subject = report(
        sub(SUB_SHA, "static_extraction"),
        Some(code_reuse(
            json!(66),
            vec![family("X", "malware", json!(9))],
        )),
    );
    subject.strings = Some(vec![string_entry("beacon", "malware", Some(&["X"]), &[])]);
    let built = sections(&[subject], &mut FileVerdicts::new());
    let titles: Vec<&str> = built.sections[0]
        .children
        .iter()
        .map(|child| child.title.as_str())
        .collect();
    assert_eq!(
        titles,
        [
            "Total String Count per Family",
            "Code reuse detected",
            "Family Details"
        ]
    );
}

#[test]
fn only_common_strings_add_no_table() {
    let mut subject = report(with_processes(sub(SUB_SHA, "dynamic_unpacking")), None);
    subject.strings = Some(vec![string_entry("GetProcAddress", "common", None, &[])]);
    let built = sections(&[subject], &mut FileVerdicts::new());
    assert!(built.sections[0].children.is_empty());
}

#[test]
fn code_reuse_body_drops_families() {
    let subject = report(
        sub(SUB_SHA, "static_extraction"),
        Some(code_reuse(
            json!("66"),
            vec![family("X", "malware", json!(9))],
        )),
    );
    let built = sections(&[subject], &mut FileVerdicts::new());
    let code_reuse = &built.sections[0].children[0];
    assert_eq!(code_reuse.title, "Code reuse detected");
    assert_eq!(
        code_reuse.body,
        Some(json!({"gene_count": "66", "gene_type": "native_windows", "unique_gene_count": 12}))
    );
}

// === family details ===

#[test]
fn family_row_renames_and_adds_percentage() {
    let row = family_row(&family("ExampleRAT", "malware", json!(4)), Some(66));
    assert_eq!(
        Value::Object(row),
        json!({
            "family_name": "ExampleRAT",
            "family_type": "malware",
            "reused_code_count": 4,
            "gene_percentage": "6.06%",
        })
    );
}

#[test]
fn family_row_keys_follow_columns() {
    let mut unordered = object(json!({"extra_field": true, "reused_gene_count": 3}));
    unordered.insert("family_type".into(), json!("library"));
    unordered.insert("family_name".into(), json!("zlib"));
    let row = family_row(&unordered, Some(10));
    let keys: Vec<&str> = row.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "family_name",
            "family_type",
            "reused_code_count",
            "gene_percentage",
            "extra_field"
        ]
    );
}

#[test]
fn gene_percentage_formats_like_python() {
    let cases = [
        (4, 66, "6.06%"),
        (66, 66, "100.0%"),
        (1, 4, "25.0%"),
        (1, 3, "33.33%"),
        (22, 80, "27.5%"),
        (15, 140, "10.71%"),
        (0, 7, "0.0%"),
        (1, 800, "0.12%"),
    ];
    for (reused, total, expected) in cases {
        assert_eq!(gene_percentage(reused, total), expected, "{reused}/{total}");
    }
}

#[test]
fn gene_percentage_absent_without_total() {
    for total in [Some(json!(0)), Some(json!("zero")), Some(Value::Null), None] {
        let reuse = CodeReuse {
            gene_count: total.clone(),
            families: vec![family("X", "malware", json!(4))],
            extra: Map::new(),
        };
        let section = family_details_section(&reuse).unwrap();
        let row = &section.body.as_ref().unwrap()[0];
        assert!(row.get("gene_percentage").is_none(), "gene_count {total:?}");
    }
}

#[test]
fn gene_percentage_reads_string_total() {
    let reuse = code_reuse(json!("66"), vec![family("X", "malware", json!(4))]);
    let section = family_details_section(&reuse).unwrap();
    assert_eq!(
        section.body.as_ref().unwrap()[0]["gene_percentage"],
        "6.06%"
    );
}

#[test]
fn family_details_column_order_is_set() {
    let reuse = code_reuse(json!(66), vec![family("X", "library", json!(30))]);
    let section = family_details_section(&reuse).unwrap();
    assert_eq!(
        section.body_config["column_order"],
        json!([
            "family_name",
            "family_type",
            "reused_code_count",
            "gene_percentage"
        ])
    );
}

#[test]
fn column_order_skips_absent_percentage() {
    let reuse = CodeReuse {
        gene_count: None,
        families: vec![family("X", "library", json!(30))],
        extra: Map::new(),
    };
    let section = family_details_section(&reuse).unwrap();
    assert_eq!(
        section.body_config["column_order"],
        json!(["family_name", "family_type", "reused_code_count"])
    );
}

#[test]
fn no_families_give_no_table() {
    assert_eq!(family_details_section(&code_reuse(json!(66), vec![])), None);
}

#[test]
fn gene_buckets_at_boundaries() {
    let cases = [
        (0, "less_than_5"),
        (4, "less_than_5"),
        (5, "between_5_and_10"),
        (9, "between_5_and_10"),
        (10, "between_10_and_25"),
        (24, "between_10_and_25"),
        (25, "between_25_and_50"),
        (49, "between_25_and_50"),
        (50, "50_or_more"),
        (66, "50_or_more"),
    ];
    for (genes, expected) in cases {
        assert_eq!(gene_bucket(genes), expected, "{genes} genes");
    }
}

#[test]
fn malware_family_raises_heuristic_12() {
    let reuse = code_reuse(json!(66), vec![family("X", "malware", json!(6))]);
    let section = family_details_section(&reuse).unwrap();
    assert_eq!(heuristic_id(&section), Some(12));
    assert_eq!(signatures(&section), [("between_5_and_10", 1)]);
}

#[test]
fn each_malicious_family_adds_signature() {
    let reuse = code_reuse(
        json!(200),
        vec![
            family("A", "malware", json!(66)),
            family("B", "malicious_packer", json!(3)),
            family("C", "malware", json!(70)),
            family("D", "library", json!(40)),
        ],
    );
    let section = family_details_section(&reuse).unwrap();
    assert_eq!(
        signatures(&section),
        [("50_or_more", 2), ("less_than_5", 1)]
    );
}

#[test]
fn other_families_raise_no_heuristic() {
    let reuse = code_reuse(
        json!(66),
        vec![
            family("blah", "application", json!(4)),
            family("UPX", "packer", json!(20)),
        ],
    );
    let section = family_details_section(&reuse).unwrap();
    assert_eq!(section.heuristic, None);
}

// === family rules ===

/// Family type, family name, reused genes, map entry before, map entry
/// after.
type FamilyRuleCase = (
    &'static str,
    &'static str,
    u64,
    Option<&'static str>,
    Option<&'static str>,
);

#[test]
fn family_rules_cases() {
    let cases: &[FamilyRuleCase] = &[
        ("malware", "X", 5, None, Some("malicious")),
        ("malware", "X", 4, None, None),
        ("malware", "X", 6, Some("testing"), Some("malicious")),
        (
            "malware",
            "X",
            6,
            Some("known_malicious"),
            Some("malicious"),
        ),
        ("malware", "X", 6, Some("suspicious"), Some("malicious")),
        ("malware", "X", 66, Some("malicious"), Some("malicious")),
        ("malicious_packer", "X", 10, None, Some("malicious")),
        ("malicious_packer", "X", 2, None, None),
        ("packer", "blah", 9, None, Some("interesting")),
        ("packer", "blah", 9, Some("unknown"), Some("interesting")),
        ("packer", "blah", 9, Some("malicious"), Some("malicious")),
        (
            "packer",
            "blah",
            9,
            Some("known_malicious"),
            Some("known_malicious"),
        ),
        ("packer", "blah", 9, Some("testing"), Some("testing")),
        ("packer", "blah", 9, Some("suspicious"), Some("suspicious")),
        (
            "packer",
            "blah",
            9,
            Some("administration_tool"),
            Some("administration_tool"),
        ),
        (
            "packer",
            "blah",
            9,
            Some("probably_packed"),
            Some("probably_packed"),
        ),
        ("packer", "UPX", 9, None, None),
        (
            "administration_tool",
            "ExampleRemoteAdmin",
            40,
            None,
            Some("interesting"),
        ),
        ("administration_tool", "TeamViewer GmbH", 40, None, None),
        (
            "administration_tool",
            "RealVNC",
            40,
            Some("unknown"),
            Some("unknown"),
        ),
        ("application", "blah", 30, None, None),
        ("library", "zlib", 30, None, None),
        ("installer", "NSIS", 30, None, None),
        ("", "nameless", 30, None, None),
    ];
    for (family_type, name, genes, before, after) in cases {
        let mut verdicts = FileVerdicts::new();
        if let Some(before) = before {
            verdicts.insert(SUB_SHA.to_string(), before.to_string());
        }
        let subs = [report(
            sub(SUB_SHA, "static_extraction"),
            Some(code_reuse(
                json!(66),
                vec![family(name, family_type, json!(genes))],
            )),
        )];
        sections(&subs, &mut verdicts);
        assert_eq!(
            verdicts.get(SUB_SHA).map(String::as_str),
            *after,
            "{family_type} {name} with {genes} genes over {before:?}"
        );
    }
}

#[test]
fn min_malware_genes_is_configurable() {
    let config = ServiceConfig {
        min_malware_genes: 10,
        ..ServiceConfig::default()
    };
    let subs = [report(
        sub(SUB_SHA, "static_extraction"),
        Some(code_reuse(
            json!(66),
            vec![family("X", "malware", json!(9))],
        )),
    )];
    let mut verdicts = FileVerdicts::new();
    sub_analysis_sections(&subs, TASK_SHA, &mut verdicts, &config, &Safelist::empty());
    assert!(verdicts.is_empty());
}

#[test]
fn upper_case_sha256_uses_lower_case_key() {
    let subs = [report(
        sub(&SUB_SHA.to_uppercase(), "static_extraction"),
        Some(code_reuse(
            json!(66),
            vec![family("X", "malware", json!(9))],
        )),
    )];
    let mut verdicts = FileVerdicts::new();
    let built = sections(&subs, &mut verdicts);
    assert_eq!(verdicts.get(SUB_SHA).map(String::as_str), Some("malicious"));
    assert_eq!(heuristic_id(&built.sections[0]), Some(1));
}

#[test]
fn root_rules_update_map_without_heuristic() {
    let subs = [report(
        sub(TASK_SHA, "root"),
        Some(code_reuse(
            json!(66),
            vec![family("X", "malware", json!(9))],
        )),
    )];
    let mut verdicts = FileVerdicts::new();
    let built = sections(&subs, &mut verdicts);
    assert_eq!(
        verdicts.get(TASK_SHA).map(String::as_str),
        Some("malicious")
    );
    assert_eq!(built.sections[0].heuristic, None);
}

// === verdict heuristic ===

#[test]
fn sub_file_heuristic_follows_map() {
    let cases = [
        ("malicious", Some(1)),
        ("known_malicious", Some(1)),
        ("suspicious", Some(2)),
        ("interesting", Some(3)),
        ("testing", None),
        ("unknown", None),
    ];
    for (verdict, expected) in cases {
        let mut verdicts = FileVerdicts::from([(SUB_SHA.to_string(), verdict.to_string())]);
        let subs = [report(
            with_processes(sub(SUB_SHA, "dynamic_unpacking")),
            None,
        )];
        let built = sections(&subs, &mut verdicts);
        assert_eq!(heuristic_id(&built.sections[0]), expected, "{verdict}");
    }
}

#[test]
fn unscored_administration_tool_raises_3() {
    let config = ServiceConfig {
        score_administration_tools: false,
        ..ServiceConfig::default()
    };
    let mut verdicts =
        FileVerdicts::from([(SUB_SHA.to_string(), "administration_tool".to_string())]);
    let subs = [report(
        with_processes(sub(SUB_SHA, "dynamic_unpacking")),
        None,
    )];
    let built = sub_analysis_sections(&subs, TASK_SHA, &mut verdicts, &config, &Safelist::empty());
    assert_eq!(heuristic_id(&built.sections[0]), Some(3));
}

#[test]
fn file_without_entry_has_no_heuristic() {
    let subs = [report(
        with_processes(sub(SUB_SHA, "dynamic_unpacking")),
        None,
    )];
    let built = sections(&subs, &mut FileVerdicts::new());
    assert_eq!(built.sections[0].heuristic, None);
}

#[test]
fn later_rule_reaches_earlier_section() {
    let subs = [
        report(with_processes(sub(SUB_SHA, "dynamic_unpacking")), None),
        report(
            sub(SUB_SHA, "static_extraction"),
            Some(code_reuse(
                json!(66),
                vec![family("X", "malware", json!(30))],
            )),
        ),
    ];
    let built = sections(&subs, &mut FileVerdicts::new());
    assert_eq!(heuristic_id(&built.sections[0]), Some(1));
    assert_eq!(heuristic_id(&built.sections[1]), Some(1));
}

#[test]
fn no_processes_give_no_tree() {
    let subs = [report(
        sub(SUB_SHA, "static_extraction"),
        Some(code_reuse(
            json!(66),
            vec![family("X", "malware", json!(30))],
        )),
    )];
    assert_eq!(sections(&subs, &mut FileVerdicts::new()).process_tree, None);
}

#[test]
fn odd_inputs_do_not_panic() {
    let mut odd = sub("not-a-sha", "");
    odd.extraction_info = Some(json!({"processes": "not a list"}));
    let subs = [
        report(
            odd,
            Some(CodeReuse {
                gene_count: Some(json!({"nested": true})),
                families: vec![
                    Map::new(),
                    family("X", "malware", json!(-3)),
                    family("Y", "malware", json!(2.5)),
                    family("Z", "malware", json!(7.0)),
                ],
                extra: Map::new(),
            }),
        ),
        report(SubAnalysis::default(), None),
    ];
    let built = sections(&subs, &mut FileVerdicts::new());
    assert_eq!(built.sections.len(), 1);
    assert_eq!(
        signatures(family_details(&built.sections[0])),
        [("between_5_and_10", 1)]
    );
}

// === extraction candidates ===

#[test]
fn candidates_skip_task_file_and_duplicates() {
    let strong = || {
        Some(code_reuse(
            json!(66),
            vec![family("X", "malware", json!(30))],
        ))
    };
    let subs = [
        report(sub(TASK_SHA, "root"), strong()),
        report(sub(&SUB_SHA.to_uppercase(), "static_extraction"), strong()),
        report(with_processes(sub(SUB_SHA, "dynamic_unpacking")), None),
        report(sub("not-a-sha", "static_extraction"), strong()),
        report(with_processes(sub(OTHER_SHA, "dynamic_unpacking")), None),
        report(sub(&"a".repeat(64), "static_extraction"), None),
    ];
    assert_eq!(
        extraction_candidates(&subs, &TASK_SHA.to_uppercase()),
        [
            (SUB_SHA.to_string(), "static extraction".to_string()),
            (OTHER_SHA.to_string(), "dynamic unpacking".to_string()),
        ]
    );
}

// === scenarios ===

/// Builds the sub-analyses of a scenario file as the caller would fetch them:
/// code reuse, metadata and strings from the scenario's routes, `None` or
/// empty where the route fails.
fn scenario_reports(name: &str) -> Vec<SubAnalysisReport> {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests/fixtures/scenarios",
        &format!("{name}.json"),
    ]
    .iter()
    .collect();
    let scenario: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let routes = scenario["routes"].as_object().unwrap();
    let ok_body = |key: &str| -> Option<&Value> {
        let response = routes.get(key)?;
        let status = response
            .get("status")
            .and_then(Value::as_u64)
            .unwrap_or(200);
        (200..300).contains(&status).then(|| &response["body"])
    };

    let (list_key, list) = routes
        .iter()
        .find(|(key, _)| key.starts_with("GET /analyses/") && key.ends_with("/sub-analyses"))
        .unwrap();
    let analysis = list_key
        .trim_start_matches("GET ")
        .trim_end_matches("/sub-analyses");
    list["body"]["sub_analyses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            let sub: SubAnalysis = serde_json::from_value(entry.clone()).unwrap();
            let base = format!("{analysis}/sub-analyses/{}", sub.sub_analysis_id);
            let code_reuse = ok_body(&format!("GET {base}/code-reuse"))
                .map(|body| serde_json::from_value(body.clone()).unwrap());
            let metadata = ok_body(&format!("GET {base}/metadata"))
                .map(|body| object(body.clone()))
                .unwrap_or_default();
            let strings = ok_body(&format!("POST {base}/strings"))
                .and_then(|body| body["result_url"].as_str())
                .and_then(|url| ok_body(&format!("GET {url}")))
                .map(|body| {
                    serde_json::from_value::<Vec<StringEntry>>(body["result"]["strings"].clone())
                        .unwrap()
                });
            SubAnalysisReport {
                sub,
                code_reuse,
                metadata,
                strings,
            }
        })
        .collect()
}

/// Appends a section and its children as (depth, title, body, heuristic id
/// and signatures), depth-first, the way the Python result lists them.
fn flatten(section: &Section, depth: usize, out: &mut Vec<Value>) {
    let heuristic = section.heuristic.as_ref().map(|heuristic| {
        let signatures: Map<String, Value> = heuristic
            .signatures
            .iter()
            .map(|(name, hits)| (name.clone(), json!(hits)))
            .collect();
        json!([heuristic.heur_id, signatures])
    });
    out.push(json!({
        "depth": depth,
        "title": section.title,
        "body": section.body,
        "heuristic": heuristic,
    }));
    for child in &section.children {
        flatten(child, depth + 1, out);
    }
}

fn flatten_all(sections: &[Section]) -> Vec<Value> {
    let mut out = Vec::new();
    for section in sections {
        flatten(section, 1, &mut out);
    }
    out
}

/// Scenario 16 against the Python service's result: the same sections,
/// bodies and heuristics, and the same tree and tags, except that no
/// command line is made up from the rundll32 module path.
#[test]
fn scenario_16_matches_python_sections() {
    let subs = scenario_reports("16_extraction_info_process_tree");
    let mut verdicts = FileVerdicts::new();
    let built = sections(&subs, &mut verdicts);

    let section_title =
        |sha: &str| format!("Subanalysis report for {sha}, extracted via dynamic unpacking");
    assert_eq!(
        flatten_all(&built.sections),
        [
            json!({"depth": 1, "title": section_title(SUB_SHA),
                   "body": {"architecture": "i386"}, "heuristic": [1, {}]}),
            json!({"depth": 2, "title": "Code reuse detected",
                   "body": {"gene_count": 80, "gene_type": "native_windows",
                            "unique_gene_count": 40, "common_gene_count": 10},
                   "heuristic": null}),
            json!({"depth": 2, "title": "Family Details",
                   "body": [{"family_name": "ExampleLoader", "family_type": "malware",
                             "reused_code_count": 22, "gene_percentage": "27.5%"}],
                   "heuristic": [12, {"between_10_and_25": 1}]}),
            json!({"depth": 1, "title": section_title(OTHER_SHA),
                   "body": {"architecture": "i386"}, "heuristic": null}),
        ]
    );
    assert_eq!(verdicts.get(SUB_SHA).map(String::as_str), Some("malicious"));
}

#[test]
fn scenario_16_process_tree_matches_python() {
    let subs = scenario_reports("16_extraction_info_process_tree");
    let tree = sections(&subs, &mut FileVerdicts::new())
        .process_tree
        .unwrap();

    let setup = r"C:\Users\analyst\Desktop\setup_helper.exe";
    let rundll32 = r"C:\Windows\SysWOW64\rundll32.exe";
    let svchost = r"C:\Windows\SysWOW64\svchost.exe";
    let payload = r"C:\Users\analyst\AppData\Local\Temp\nsx1.tmp\payload.dll";
    let node = |pid: u64, image: &str, children: Value| {
        json!({"process_pid": pid, "process_name": image, "command_line": image,
               "signatures": {}, "children": children, "network_count": 0,
               "file_count": 0, "registry_count": 0, "safelisted": false})
    };
    assert_eq!(
        tree.body,
        Some(json!([node(
            4120,
            setup,
            json!([node(
                4388,
                rundll32,
                json!([node(4512, svchost, json!([]))])
            )])
        )]))
    );
    assert_eq!(
        tree.tags["dynamic.processtree_id"],
        [
            r"?usr\desktop\setup_helper.exe",
            r"?usr\desktop\setup_helper.exe|?sys32\rundll32.exe",
            r"?usr\desktop\setup_helper.exe|?sys32\rundll32.exe|?sys32\svchost.exe",
        ]
    );
    let mut file_names = tree.tags["dynamic.process.file_name"].clone();
    file_names.sort();
    let mut python_file_names = [setup, svchost, payload, rundll32];
    python_file_names.sort();
    assert_eq!(file_names, python_file_names);
    assert!(!tree.tags.contains_key("dynamic.process.command_line"));
    assert_eq!(
        tree.children[0].body,
        Some(json!([{"process_pid": 4388, "process_name": rundll32, "module_path": payload}]))
    );
}

/// Scenario 17 against the Python service's result: the root's strings
/// tables, code reuse and family details, with no verdict heuristic on
/// the root.
#[test]
fn scenario_17_matches_python_sections() {
    let subs = scenario_reports("17_strings_results");
    let mut verdicts = FileVerdicts::new();
    let built = sections(&subs, &mut verdicts);

    assert_eq!(
        flatten_all(&built.sections),
        [
            json!({"depth": 1, "title": format!("Subanalysis report for {TASK_SHA}"),
                   "body": {"architecture": "i386"}, "heuristic": null}),
            json!({"depth": 2, "title": "Total String Count per Family",
                   "body": [{"Family Name": "ExampleLoader", "String Count": 1},
                            {"Family Name": "ExampleRAT", "String Count": 2},
                            {"Family Name": "administration_tool", "String Count": 1}],
                   "heuristic": [21, {}]}),
            json!({"depth": 3, "title": "String Family: malware",
                   "body": [{"String Value": "ExampleRAT_mutex_4411", "Families": "ExampleRAT",
                             "Tags": "mutex"},
                            {"String Value": "Global\\ExampleRATSync",
                             "Families": "ExampleRAT, ExampleLoader",
                             "Tags": "mutex, synchronization"},
                            {"String Value": "/gate.php?id=%s&v=%d", "Families": "ExampleLoader",
                             "Tags": "url_path"}],
                   "heuristic": [21, {}]}),
            json!({"depth": 3, "title": "String Family: administration_tool",
                   "body": [{"String Value": "RemoteAssist session %d",
                             "Families": "administration_tool", "Tags": ""}],
                   "heuristic": [21, {}]}),
            json!({"depth": 2, "title": "Code reuse detected",
                   "body": {"gene_count": 140, "gene_type": "native_windows",
                            "unique_gene_count": 30, "common_gene_count": 70},
                   "heuristic": null}),
            json!({"depth": 2, "title": "Family Details",
                   "body": [{"family_name": "ExampleRAT", "family_type": "malware",
                             "reused_code_count": 15, "gene_percentage": "10.71%"}],
                   "heuristic": [12, {"between_10_and_25": 1}]}),
        ]
    );
    assert_eq!(built.process_tree, None);
    assert_eq!(
        verdicts.get(TASK_SHA).map(String::as_str),
        Some("malicious")
    );
}

/// Scenario 13: a safe packer (UPX) leaves its file's entry alone, while
/// an unlisted packer on the root marks the root "of interest".
#[test]
fn scenario_13_packer_rules() {
    let subs = scenario_reports("13_subverdict_suspicious_probably_packed");
    let mut verdicts = FileVerdicts::new();
    let built = sections(&subs, &mut verdicts);
    let titles: Vec<&str> = built.sections.iter().map(|s| s.title.as_str()).collect();
    assert_eq!(
        titles,
        [
            format!("Subanalysis report for {TASK_SHA}"),
            "Subanalysis report for 46b364f13d089636b60c33d3f6a4b1d2cd32e6af8d9bc29339af0b7dadd21703, extracted via static extraction".to_string(),
        ]
    );
    assert_eq!(
        verdicts,
        FileVerdicts::from([(TASK_SHA.to_string(), "interesting".to_string())])
    );
    assert_eq!(built.sections[1].heuristic, None);
}
