use serde_json::json;

use super::*;

fn ioc(kind: IocKind, value: &str) -> (IocKind, String) {
    (kind, value.to_string())
}

fn safelist(value: Value) -> Safelist {
    Safelist::from_api(&value).unwrap()
}

// === extract_iocs ===

#[test]
fn extract_finds_ipv4_in_text() {
    assert_eq!(
        extract_iocs("connects to 192.0.2.10 on start"),
        [ioc(IocKind::Ip, "192.0.2.10")]
    );
}

#[test]
fn extract_rejects_invalid_ipv4() {
    let cases = [
        "999.1.1.1",
        "version 1.2.3.4.5",
        "build 10.0.19041.1",
        "v1.2.3.4",
        "1.2.3.4a",
        "01.2.3.4",
    ];
    for text in cases {
        assert_eq!(extract_iocs(text), [], "{text}");
    }
}

#[test]
fn extract_accepts_ipv4_at_sentence_end() {
    assert_eq!(
        extract_iocs("beacon to 198.51.100.7."),
        [ioc(IocKind::Ip, "198.51.100.7")]
    );
}

#[test]
fn extract_finds_ipv6_in_canonical_form() {
    assert_eq!(
        extract_iocs("peer 2001:DB8:0:0::1 answered"),
        [ioc(IocKind::Ip, "2001:db8::1")]
    );
}

#[test]
fn extract_rejects_ipv6_lookalikes() {
    let cases = [
        "std::vector",
        "Foo::Bar",
        "at 12:30:45",
        "mac 00:1a:2b:3c:4d:5e",
        "::",
    ];
    for text in cases {
        assert_eq!(extract_iocs(text), [], "{text}");
    }
}

#[test]
fn extract_finds_uri_with_port_and_path() {
    let found = extract_iocs("GET http://192.0.2.5:8080/gate.php?id=1 done");
    assert_eq!(
        found,
        [
            ioc(IocKind::Ip, "192.0.2.5"),
            ioc(IocKind::Uri, "http://192.0.2.5:8080/gate.php?id=1"),
            ioc(IocKind::UriPath, "/gate.php"),
        ]
    );
}

#[test]
fn extract_adds_uri_host_as_domain() {
    let found = extract_iocs("http://blah.com/blah");
    assert_eq!(
        found,
        [
            ioc(IocKind::Domain, "blah.com"),
            ioc(IocKind::Uri, "http://blah.com/blah"),
            ioc(IocKind::UriPath, "/blah"),
        ]
    );
}

#[test]
fn extract_cuts_uri_at_comma_space_and_backslash() {
    let cases = [
        (
            "http://a.example.org/x,http://b.example.org/y",
            "http://a.example.org/x",
        ),
        ("http://a.example.org/x more", "http://a.example.org/x"),
        ("http://a.example.org/x\\y", "http://a.example.org/x"),
    ];
    for (text, expected) in cases {
        let uris: Vec<String> = extract_iocs(text)
            .into_iter()
            .filter(|(kind, _)| *kind == IocKind::Uri)
            .map(|(_, value)| value)
            .collect();
        assert_eq!(uris.first().map(String::as_str), Some(expected), "{text}");
    }
}

#[test]
fn extract_scans_text_after_uri() {
    let found = extract_iocs("http://a.example.org/x,https://b.example.org/y");
    assert!(found.contains(&ioc(IocKind::Uri, "https://b.example.org/y")));
    assert!(found.contains(&ioc(IocKind::Domain, "b.example.org")));
}

#[test]
fn extract_drops_sentence_punctuation_after_uri() {
    let found = extract_iocs("see (https://example.org/page).");
    assert!(found.contains(&ioc(IocKind::Uri, "https://example.org/page")));
}

#[test]
fn extract_keeps_balanced_parenthesis_in_uri() {
    let found = extract_iocs("https://example.org/wiki/Foo_(bar)");
    assert!(found.contains(&ioc(IocKind::Uri, "https://example.org/wiki/Foo_(bar)")));
}

#[test]
fn extract_skips_uri_with_invalid_port() {
    let found = extract_iocs("http://a.example.org:99999/x");
    assert!(!found.iter().any(|(kind, _)| *kind == IocKind::Uri));
}

#[test]
fn extract_skips_uri_without_dotted_host() {
    assert_eq!(extract_iocs("http://localhost/admin"), []);
}

#[test]
fn extract_leaves_root_path_out() {
    let found = extract_iocs("https://a.example.org/");
    assert!(!found.iter().any(|(kind, _)| *kind == IocKind::UriPath));
}

#[test]
fn extract_skips_file_extension_tlds() {
    let cases = [
        "payload.zip",
        "loader.js",
        "System.Net",
        "run.sh",
        "update.top",
    ];
    for text in cases {
        assert_eq!(extract_iocs(text), [], "{text}");
    }
}

#[test]
fn extract_keeps_file_extension_tld_of_uri_host() {
    let found = extract_iocs("download http://c2.example.net/a and c2.example.net");
    assert!(found.contains(&ioc(IocKind::Domain, "c2.example.net")));
}

#[test]
fn extract_skips_unknown_tlds() {
    assert_eq!(extract_iocs("C:\\Windows\\System32\\svchost.exe"), []);
}

#[test]
fn extract_skips_example_com() {
    assert_eq!(extract_iocs("example.com"), []);
    assert_eq!(
        extract_iocs("https://example.com/x"),
        [
            ioc(IocKind::Uri, "https://example.com/x"),
            ioc(IocKind::UriPath, "/x"),
        ]
    );
}

#[test]
fn extract_lowercases_domains() {
    assert_eq!(
        extract_iocs("Evil.Example.ORG"),
        [ioc(IocKind::Domain, "evil.example.org")]
    );
}

#[test]
fn extract_removes_duplicates() {
    let found =
        extract_iocs("1.1.1.1 1.1.1.1 blah.com BLAH.com http://blah.com/x http://blah.com/x");
    assert_eq!(
        found,
        [
            ioc(IocKind::Ip, "1.1.1.1"),
            ioc(IocKind::Domain, "blah.com"),
            ioc(IocKind::Uri, "http://blah.com/x"),
            ioc(IocKind::UriPath, "/x"),
        ]
    );
}

#[test]
fn extract_orders_by_kind_then_value() {
    let found = extract_iocs("zeta.example.org 198.51.100.2 alpha.example.org 192.0.2.1");
    assert_eq!(
        found,
        [
            ioc(IocKind::Ip, "192.0.2.1"),
            ioc(IocKind::Ip, "198.51.100.2"),
            ioc(IocKind::Domain, "alpha.example.org"),
            ioc(IocKind::Domain, "zeta.example.org"),
        ]
    );
}

#[test]
fn extract_finds_nothing_in_empty_text() {
    assert_eq!(extract_iocs(""), []);
}

#[test]
fn extract_survives_odd_input() {
    let long = "a.".repeat(100_000);
    let cases = [
        "http://",
        "http://[",
        "http://[::1",
        "http://[::1]x",
        "http://a.example.org:",
        "://a.example.org",
        "ünïcödé.例え.テスト http://例え.テスト/パス",
        long.as_str(),
    ];
    for text in cases {
        let _ = extract_iocs(text);
    }
}

#[test]
fn extract_reads_bracketed_ipv6_host() {
    let found = extract_iocs("http://[2001:db8::5]:443/x");
    assert!(found.contains(&ioc(IocKind::Ip, "2001:db8::5")));
}

// === ioc_table_section ===

#[test]
fn table_has_rows_tags_and_column_order() {
    let iocs = extract_iocs("blah 2.2.2.2 http://blah.com/blah");
    let section = ioc_table_section(&iocs, &Safelist::empty()).unwrap();

    assert_eq!(section.title, IOC_TABLE_TITLE);
    assert_eq!(section.format, BodyFormat::Table);
    assert_eq!(
        section.body,
        Some(json!([
            {"ioc_type": "ip", "ioc": "2.2.2.2"},
            {"ioc_type": "domain", "ioc": "blah.com"},
            {"ioc_type": "uri", "ioc": "http://blah.com/blah"},
            {"ioc_type": "uri_path", "ioc": "/blah"},
        ]))
    );
    assert_eq!(
        section.body_config.get("column_order"),
        Some(&json!(["ioc_type", "ioc"]))
    );
    assert_eq!(section.tags["network.dynamic.ip"], ["2.2.2.2"]);
    assert_eq!(section.tags["network.dynamic.domain"], ["blah.com"]);
    assert_eq!(
        section.tags["network.dynamic.uri"],
        ["http://blah.com/blah"]
    );
    assert_eq!(section.tags["network.dynamic.uri_path"], ["/blah"]);
}

#[test]
fn table_skips_duplicate_rows() {
    let iocs = [ioc(IocKind::Ip, "192.0.2.1"), ioc(IocKind::Ip, "192.0.2.1")];
    let section = ioc_table_section(&iocs, &Safelist::empty()).unwrap();
    assert_eq!(
        section.body,
        Some(json!([{"ioc_type": "ip", "ioc": "192.0.2.1"}]))
    );
}

#[test]
fn table_leaves_out_safelisted_iocs() {
    let safelist = safelist(json!({
        "match": {"network.dynamic.ip": ["192.0.2.1"]},
        "regex": {"network.dynamic.domain": [".*\\.example\\.org"]}
    }));
    let iocs = [
        ioc(IocKind::Ip, "192.0.2.1"),
        ioc(IocKind::Ip, "192.0.2.2"),
        ioc(IocKind::Domain, "safe.example.org"),
    ];
    let section = ioc_table_section(&iocs, &safelist).unwrap();

    assert_eq!(
        section.body,
        Some(json!([{"ioc_type": "ip", "ioc": "192.0.2.2"}]))
    );
    assert_eq!(section.tags["network.dynamic.ip"], ["192.0.2.2"]);
    assert!(!section.tags.contains_key("network.dynamic.domain"));
}

#[test]
fn table_leaves_out_values_al_rejects() {
    let iocs = [ioc(IocKind::Ip, "not an ip")];
    assert_eq!(ioc_table_section(&iocs, &Safelist::empty()), None);
}

#[test]
fn table_is_none_without_iocs() {
    assert_eq!(ioc_table_section(&[], &Safelist::empty()), None);
}
