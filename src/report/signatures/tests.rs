use serde_json::json;

use super::*;
use crate::report::ioc_extract::IOC_TABLE_TITLE;

/// The signature table as the reference mapping lists it, with the
/// ATT&CK corrections applied: name, category, heuristic, ATT&CK ids.
const EXPECTED_TABLE: &[(&str, &str, u32, &[&str])] = &[
    ("InjectionInterProcess", "Defense Evasion", 7, &["T1055"]),
    (
        "process_creation_suspicious_location",
        "Execution",
        9,
        &["T1106"],
    ),
    (
        "infostealer_browser",
        "Credential Access",
        6,
        &["T1552.001"],
    ),
    ("recon_fingerprint", "Discovery", 8, &["T1082"]),
    ("enumerates_running_processes", "Discovery", 8, &["T1057"]),
    ("process_interest", "Discovery", 8, &["T1057"]),
    (
        "injection_createremotethread",
        "Defense Evasion",
        7,
        &["T1055"],
    ),
    (
        "InjectionCreateRemoteThread",
        "Defense Evasion",
        7,
        &["T1055"],
    ),
    (
        "stealth_hidden_extension",
        "Defense Evasion",
        7,
        &["T1562.006"],
    ),
    ("dropper", "Execution", 9, &["T1129"]),
    (
        "network_cnc_https_generic",
        "Command And Control",
        5,
        &["T1573"],
    ),
    ("office_cve2017_11882", "Execution", 9, &["T1203"]),
    (
        "powershell_network_connection",
        "Execution",
        9,
        &["T1059.001"],
    ),
    ("wmi_create_process", "Execution", 9, &["T1047"]),
    ("wmi_script_process", "Execution", 9, &["T1047"]),
    (
        "powershell_variable_obfuscation",
        "Execution",
        9,
        &["T1059.001"],
    ),
    ("office_macro_autoexecution", "Execution", 9, &["T1059.005"]),
    ("persistence_autorun", "Persistence", 10, &["T1547.001"]),
    (
        "persistence_autorun_tasks",
        "Persistence",
        10,
        &["T1053.005"],
    ),
    ("office_martian_children", "Execution", 9, &["T1059"]),
    ("office_cve2017_11882_network", "Execution", 9, &["T1203"]),
    ("infostealer_ftp", "Credential Access", 6, &["T1552.001"]),
    ("infostealer_im", "Collection", 11, &["T1005"]),
    ("spawns_dev_util", "Defense Evasion", 7, &["T1127"]),
    (
        "uses_windows_utilities_to_create_scheduled_task",
        "Execution",
        9,
        &["T1053"],
    ),
    (
        "windows_defender_powershell",
        "Defense Evasion",
        7,
        &["T1562.001"],
    ),
    (
        "pe_compile_timestomping",
        "Defense Evasion",
        7,
        &["T1070.006"],
    ),
    ("creates_largekey", "Defense Evasion", 7, &["T1112"]),
    (
        "registry_credential_store_access",
        "Credential Access",
        6,
        &["T1003"],
    ),
    (
        "powershell_command_suspicious",
        "Execution",
        9,
        &["T1059.001"],
    ),
    ("infostealer_cookies", "Credential Access", 6, &["T1539"]),
    ("infostealer_mail", "Collection", 11, &["T1005"]),
    ("recon_programs", "Discovery", 8, &["T1518"]),
    ("antivm_generic_cpu", "Discovery", 8, &["T1012"]),
    ("infostealer_bitcoin", "Collection", 11, &["T1005"]),
];

fn ttp(name: &str, severity: Option<i64>, data: Value) -> Ttp {
    serde_json::from_value(json!({
        "name": name,
        "description": format!("{name} description"),
        "severity": severity,
        "data": data,
    }))
    .unwrap()
}

/// Builds the one signature section of `ttp`, with an empty safelist.
fn section_of(ttp: Ttp) -> Section {
    section_with_safelist(ttp, &Safelist::empty())
}

fn section_with_safelist(ttp: Ttp, safelist: &Safelist) -> Section {
    let mut container = signatures_section(&[ttp], safelist).unwrap();
    assert_eq!(container.children.len(), 1);
    container.children.remove(0)
}

fn body_lines(section: &Section) -> Vec<String> {
    match &section.body {
        Some(Value::String(text)) => text.lines().map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

fn ioc_table(section: &Section) -> Option<&Section> {
    section
        .children
        .iter()
        .find(|child| child.title == IOC_TABLE_TITLE)
}

fn tags(section: &Section, name: &str) -> Vec<String> {
    section.tags.get(name).cloned().unwrap_or_default()
}

// === signature table ===

#[test]
fn table_has_35_signatures() {
    assert_eq!(known_signatures().count(), 35);
    assert_eq!(EXPECTED_TABLE.len(), 35);
}

#[test]
fn table_rows_have_category_heuristic_and_attack_ids() {
    for (name, category, heuristic, attack_ids) in EXPECTED_TABLE {
        let info = signature_info(name);
        assert_eq!(info.category, *category, "{name}");
        assert_eq!(info.heuristic, *heuristic, "{name}");
        assert_eq!(info.attack_ids, *attack_ids, "{name}");
    }
}

#[test]
fn table_corrects_doubtful_attack_ids() {
    let corrected = [
        ("powershell_network_connection", "T1059.001"),
        ("powershell_variable_obfuscation", "T1059.001"),
        ("powershell_command_suspicious", "T1059.001"),
        ("office_macro_autoexecution", "T1059.005"),
        ("persistence_autorun_tasks", "T1053.005"),
    ];
    for (name, attack_id) in corrected {
        assert_eq!(signature_info(name).attack_ids, [attack_id], "{name}");
    }
}

#[test]
fn table_marks_only_process_enumeration_silent() {
    for name in known_signatures() {
        let expected = name == "enumerates_running_processes";
        assert_eq!(signature_info(name).silent, expected, "{name}");
    }
}

#[test]
fn unknown_signature_is_generic() {
    let info = signature_info("blah");
    assert_eq!(info.heuristic, 4);
    assert_eq!(info.category, GENERIC_CATEGORY);
    assert!(info.attack_ids.is_empty());
    assert!(!info.silent);
}

#[test]
fn signature_names_match_case_sensitively() {
    assert_eq!(signature_info("injectioninterprocess").heuristic, 4);
    assert_eq!(signature_info("DROPPER").heuristic, 4);
}

// === severity ===

#[test]
fn severity_maps_to_score() {
    let cases = [
        (Some(1), 10),
        (Some(2), 100),
        (Some(3), 250),
        (Some(0), 10),
        (Some(-5), 10),
        (Some(i64::MIN), 10),
        (Some(4), 250),
        (Some(i64::MAX), 250),
        (None, 10),
    ];
    for (severity, expected) in cases {
        assert_eq!(severity_score(severity), expected, "{severity:?}");
    }
}

// === sections ===

#[test]
fn no_ttps_give_no_section() {
    assert_eq!(signatures_section(&[], &Safelist::empty()), None);
}

#[test]
fn container_has_no_body_and_keeps_api_order() {
    let ttps = [
        ttp("recon_fingerprint", Some(1), json!([])),
        ttp("blah", Some(2), json!([])),
        ttp("dropper", Some(3), json!([])),
    ];
    let container = signatures_section(&ttps, &Safelist::empty()).unwrap();

    assert_eq!(container.title, "Signatures");
    assert_eq!(container.format, BodyFormat::Text);
    assert_eq!(container.body, None);
    let titles: Vec<&str> = container
        .children
        .iter()
        .map(|c| c.title.as_str())
        .collect();
    assert_eq!(
        titles,
        [
            "Signature: recon_fingerprint",
            "Signature: blah",
            "Signature: dropper"
        ]
    );
}

#[test]
fn unknown_signature_section_has_heuristic_4() {
    let section = section_of(ttp("blah", Some(1), json!([])));
    let heuristic = section.heuristic.as_ref().unwrap();

    assert_eq!(section.title, "Signature: blah");
    assert_eq!(body_lines(&section), ["blah description"]);
    assert_eq!(heuristic.heur_id, 4);
    assert_eq!(heuristic.signatures, [("blah".to_string(), 1)]);
    assert_eq!(heuristic.score_map.get("blah"), Some(&10));
    assert!(heuristic.attack_ids.is_empty());
}

#[test]
fn known_signature_section_has_attack_ids() {
    let section = section_of(ttp("InjectionInterProcess", Some(3), json!([])));
    let heuristic = section.heuristic.as_ref().unwrap();

    assert_eq!(heuristic.heur_id, 7);
    assert_eq!(heuristic.attack_ids, ["T1055"]);
    assert_eq!(heuristic.score_map.get("InjectionInterProcess"), Some(&250));
}

#[test]
fn odd_severity_still_scores() {
    let section = section_of(ttp("dropper", Some(7), json!([])));
    let heuristic = section.heuristic.as_ref().unwrap();
    assert_eq!(heuristic.score_map.get("dropper"), Some(&250));
}

#[test]
fn silent_signature_hides_marks() {
    let section = section_of(ttp(
        "enumerates_running_processes",
        Some(1),
        json!([{"IP": "blah 2.2.2.2 blah"}, {"command": "tasklist.exe"}]),
    ));
    let heuristic = section.heuristic.as_ref().unwrap();

    assert_eq!(heuristic.heur_id, 8);
    assert_eq!(heuristic.attack_ids, ["T1057"]);
    assert_eq!(
        body_lines(&section),
        ["enumerates_running_processes description"]
    );
    assert!(section.children.is_empty());
    assert!(section.tags.is_empty());
}

#[test]
fn missing_description_leaves_only_mark_lines() {
    let ttp: Ttp = serde_json::from_value(json!({
        "name": "dropper",
        "data": [{"file": "C:\\drop.exe"}]
    }))
    .unwrap();
    let section = section_of(ttp);
    assert_eq!(body_lines(&section), ["\tfile: C:\\drop.exe"]);
}

#[test]
fn empty_name_gets_no_signature_id() {
    let section = section_of(ttp("", Some(2), json!([])));
    let heuristic = section.heuristic.as_ref().unwrap();
    assert_eq!(heuristic.heur_id, 4);
    assert!(heuristic.signatures.is_empty());
}

// === marks ===

#[test]
fn each_mark_kind_gets_its_tag() {
    let cases = [
        ("IP", "192.0.2.10", "network.dynamic.ip"),
        (
            "command",
            "cmd.exe /c whoami",
            "dynamic.process.command_line",
        ),
        ("cmdline", "whoami /all", "dynamic.process.command_line"),
        (
            "Commandline executed",
            "net user",
            "dynamic.process.command_line",
        ),
        (
            "DeletedFile",
            "C:\\Temp\\a.exe",
            "dynamic.process.file_name",
        ),
        ("file", "C:\\Temp\\b.exe", "dynamic.process.file_name"),
        ("binary", "C:\\Temp\\c.exe", "dynamic.process.file_name"),
        ("copy", "C:\\Temp\\d.exe", "dynamic.process.file_name"),
        (
            "service path",
            "C:\\Temp\\e.exe",
            "dynamic.process.file_name",
        ),
        (
            "office_martian",
            "C:\\Temp\\f.exe",
            "dynamic.process.file_name",
        ),
        (
            "File executed",
            "C:\\Temp\\g.exe",
            "dynamic.process.file_name",
        ),
        (
            "key",
            "HKEY_CURRENT_USER\\Software\\A",
            "dynamic.registry_key",
        ),
        (
            "regkey",
            "HKEY_CURRENT_USER\\Software\\B",
            "dynamic.registry_key",
        ),
        (
            "regkeyval",
            "HKEY_CURRENT_USER\\Software\\C",
            "dynamic.registry_key",
        ),
        ("domain", "c2.example.org", "network.dynamic.domain"),
    ];
    for (key, value, tag) in cases {
        let section = section_of(ttp("blah", Some(1), json!([{ key: value }])));
        assert_eq!(tags(&section, tag), [value], "{key}");
        assert_eq!(section.tags.len(), 1, "{key}");
    }
}

#[test]
fn url_marks_are_only_scanned() {
    let keys = [
        "http_request",
        "url",
        "suspicious_request",
        "network_http",
        "request",
        "http_downloadurl",
        "uri",
    ];
    for key in keys {
        let section = section_of(ttp(
            "blah",
            Some(1),
            json!([{ key: "GET http://c2.example.org/gate" }]),
        ));
        let table = ioc_table(&section);
        assert!(section.tags.is_empty(), "{key}");
        assert_eq!(
            table.map(|t| tags(t, "network.dynamic.uri")),
            Some(vec!["http://c2.example.org/gate".to_string()]),
            "{key}"
        );
    }
}

#[test]
fn other_mark_keys_are_shown_untagged() {
    let section = section_of(ttp("blah", Some(1), json!([{"mutex": "Global\\x"}])));
    assert_eq!(body_lines(&section)[1], "\tmutex: Global\\x");
    assert!(section.tags.is_empty());
    assert!(section.children.is_empty());
}

#[test]
fn mark_keys_are_case_sensitive() {
    let section = section_of(ttp("blah", Some(1), json!([{"ip": "192.0.2.10"}])));
    assert!(section.tags.is_empty());
}

#[test]
fn only_the_first_key_of_a_mark_counts() {
    let section = section_of(ttp(
        "blah",
        Some(1),
        json!([{"regkey": "HKLM\\Software\\A", "IP": "192.0.2.10"}]),
    ));
    assert_eq!(body_lines(&section)[1..], ["\tregkey: HKLM\\Software\\A"]);
    assert_eq!(
        tags(&section, "dynamic.registry_key"),
        ["HKLM\\Software\\A"]
    );
    assert!(!section.tags.contains_key("network.dynamic.ip"));
}

#[test]
fn ip_mark_with_text_goes_to_ioc_table() {
    let section = section_of(ttp("blah", Some(1), json!([{"IP": "blah 2.2.2.2 blah"}])));
    let table = ioc_table(&section).unwrap();

    assert_eq!(body_lines(&section)[1..], ["\tIP: blah 2.2.2.2 blah"]);
    assert!(!section.tags.contains_key("network.dynamic.ip"));
    assert_eq!(
        table.body,
        Some(json!([{"ioc_type": "ip", "ioc": "2.2.2.2"}]))
    );
    assert_eq!(tags(table, "network.dynamic.ip"), ["2.2.2.2"]);
}

#[test]
fn bare_ip_mark_gets_no_ioc_table() {
    let section = section_of(ttp("blah", Some(1), json!([{"IP": "2.2.2.2"}])));
    assert_eq!(tags(&section, "network.dynamic.ip"), ["2.2.2.2"]);
    assert!(ioc_table(&section).is_none());
}

#[test]
fn safelisted_ip_mark_is_not_tagged_anywhere() {
    let safelist =
        Safelist::from_api(&json!({"match": {"network.dynamic.ip": ["192.0.2.10"]}})).unwrap();
    let section = section_with_safelist(
        ttp("blah", Some(1), json!([{"IP": "192.0.2.10"}])),
        &safelist,
    );

    assert_eq!(body_lines(&section)[1..], ["\tIP: 192.0.2.10"]);
    assert!(section.tags.is_empty());
    assert!(ioc_table(&section).is_none());
}

#[test]
fn safelisted_command_line_is_not_tagged() {
    let safelist = Safelist::from_api(
        &json!({"regex": {"dynamic.process.command_line": ["C:\\\\Windows\\\\.*"]}}),
    )
    .unwrap();
    let section = section_with_safelist(
        ttp(
            "blah",
            Some(1),
            json!([{"command": "C:\\Windows\\explorer.exe"}]),
        ),
        &safelist,
    );
    assert!(section.tags.is_empty());
}

#[test]
fn command_mark_is_tagged_and_scanned() {
    let section = section_of(ttp(
        "blah",
        Some(1),
        json!([{"command": "curl http://192.0.2.7/a.sh"}]),
    ));
    let table = ioc_table(&section).unwrap();

    assert_eq!(
        tags(&section, "dynamic.process.command_line"),
        ["curl http://192.0.2.7/a.sh"]
    );
    assert_eq!(tags(table, "network.dynamic.ip"), ["192.0.2.7"]);
    assert_eq!(
        tags(table, "network.dynamic.uri"),
        ["http://192.0.2.7/a.sh"]
    );
    assert_eq!(tags(table, "network.dynamic.uri_path"), ["/a.sh"]);
}

#[test]
fn invalid_domain_mark_is_shown_untagged() {
    let section = section_of(ttp("blah", Some(1), json!([{"domain": "not a domain"}])));
    assert_eq!(body_lines(&section)[1..], ["\tdomain: not a domain"]);
    assert!(section.tags.is_empty());
}

#[test]
fn duplicate_lines_are_shown_once() {
    let section = section_of(ttp(
        "blah",
        Some(1),
        json!([{"domain": "blah.com"}, {"domain": "blah.com"}]),
    ));
    assert_eq!(body_lines(&section)[1..], ["\tdomain: blah.com"]);
}

#[test]
fn dedup_compares_whole_lines() {
    let section = section_of(ttp(
        "blah",
        Some(1),
        json!([{"IP": "1.1.1.10"}, {"IP": "1.1.1.1"}]),
    ));
    assert_eq!(
        body_lines(&section)[1..],
        ["\tIP: 1.1.1.10", "\tIP: 1.1.1.1"]
    );
}

#[test]
fn empty_values_are_skipped() {
    let section = section_of(ttp(
        "blah",
        Some(1),
        json!([{"domain": ""}, {"file": "   "}, {"key": null}, {"url": []}, {"copy": {}}, {}]),
    ));
    assert_eq!(body_lines(&section), ["blah description"]);
    assert!(section.tags.is_empty());
}

#[test]
fn long_value_is_cut_to_512_characters() {
    let value = "A".repeat(600);
    let section = section_of(ttp("blah", Some(1), json!([{"command": value}])));
    let expected = format!("{}...", "A".repeat(512));

    assert_eq!(body_lines(&section)[1], format!("\tcommand: {expected}"));
    assert_eq!(tags(&section, "dynamic.process.command_line"), [expected]);
}

#[test]
fn long_multibyte_value_is_cut_by_characters() {
    let value = "é".repeat(600);
    let section = section_of(ttp("blah", Some(1), json!([{"mutex": value}])));
    let expected = format!("\tmutex: {}...", "é".repeat(512));
    assert_eq!(body_lines(&section)[1], expected);
}

#[test]
fn value_of_512_characters_is_not_cut() {
    let value = "B".repeat(512);
    let section = section_of(ttp("blah", Some(1), json!([{"mutex": value.clone()}])));
    assert_eq!(body_lines(&section)[1], format!("\tmutex: {value}"));
}

#[test]
fn ioc_after_the_cut_is_still_found() {
    let value = format!("{} 192.0.2.99", "x".repeat(600));
    let section = section_of(ttp("blah", Some(1), json!([{"url": value}])));
    let table = ioc_table(&section).unwrap();
    assert_eq!(tags(table, "network.dynamic.ip"), ["192.0.2.99"]);
}

#[test]
fn non_string_values_are_shown_as_text() {
    let section = section_of(ttp(
        "blah",
        Some(1),
        json!([{"pid": 4242}, {"ok": false}, {"info": {"a": 1}}, {"list": [1, "x"]}]),
    ));
    assert_eq!(
        body_lines(&section)[1..],
        [
            "\tpid: 4242",
            "\tok: false",
            "\tinfo: {\"a\":1}",
            "\tlist: [1,\"x\"]"
        ]
    );
}

#[test]
fn number_in_ip_mark_is_not_tagged() {
    let section = section_of(ttp("blah", Some(1), json!([{"IP": 3232235777_u64}])));
    assert_eq!(body_lines(&section)[1], "\tIP: 3232235777");
    assert!(section.tags.is_empty());
    assert!(section.children.is_empty());
}

#[test]
fn marks_of_one_signature_share_one_ioc_table() {
    let section = section_of(ttp(
        "blah",
        Some(1),
        json!([
            {"IP": "blah 2.2.2.2 blah"},
            {"url": "http://blah.com/blah"},
            {"command": "ping 2.2.2.2"},
        ]),
    ));
    let table = ioc_table(&section).unwrap();

    assert_eq!(section.children.len(), 1);
    assert_eq!(
        table.body,
        Some(json!([
            {"ioc_type": "ip", "ioc": "2.2.2.2"},
            {"ioc_type": "domain", "ioc": "blah.com"},
            {"ioc_type": "uri", "ioc": "http://blah.com/blah"},
            {"ioc_type": "uri_path", "ioc": "/blah"},
        ]))
    );
}

/// The mark list of the Python service's own mark-processing test, with
/// the expected lines, tags and IOC rows.
#[test]
fn upstream_mark_list_gives_same_report() {
    let long = "A".repeat(600);
    let section = section_of(ttp(
        "blah",
        Some(1),
        json!([
            {"IP": "1.1.1.1"},
            {"IP": "blah 2.2.2.2 blah"},
            {"command": "do bad thing"},
            {"DeletedFile": "blah.exe"},
            {"key": "HKEY\\Registry\\Key"},
            {"domain": "blah.ca"},
            {"domain": "blah.ca"},
            {"url": "http://blah.com/blah"},
            {"file": ""},
            {"blah": long},
        ]),
    ));
    let table = ioc_table(&section).unwrap();

    assert_eq!(
        body_lines(&section),
        [
            "blah description".to_string(),
            "\tIP: 1.1.1.1".to_string(),
            "\tIP: blah 2.2.2.2 blah".to_string(),
            "\tcommand: do bad thing".to_string(),
            "\tDeletedFile: blah.exe".to_string(),
            "\tkey: HKEY\\Registry\\Key".to_string(),
            "\tdomain: blah.ca".to_string(),
            "\turl: http://blah.com/blah".to_string(),
            format!("\tblah: {}...", "A".repeat(512)),
        ]
    );
    assert_eq!(tags(&section, "network.dynamic.ip"), ["1.1.1.1"]);
    assert_eq!(
        tags(&section, "dynamic.process.command_line"),
        ["do bad thing"]
    );
    assert_eq!(tags(&section, "dynamic.process.file_name"), ["blah.exe"]);
    assert_eq!(
        tags(&section, "dynamic.registry_key"),
        ["HKEY\\Registry\\Key"]
    );
    assert_eq!(tags(&section, "network.dynamic.domain"), ["blah.ca"]);
    assert_eq!(
        table.body,
        Some(json!([
            {"ioc_type": "ip", "ioc": "2.2.2.2"},
            {"ioc_type": "domain", "ioc": "blah.com"},
            {"ioc_type": "uri", "ioc": "http://blah.com/blah"},
            {"ioc_type": "uri_path", "ioc": "/blah"},
        ]))
    );
}
