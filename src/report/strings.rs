//! Strings tables of one sub-analysis: how many of its strings Intezer
//! attributes to each family, and the strings themselves per software type.
//! Both raise heuristic 21, and strings of ordinary software (`common`) are
//! left out.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::assemblyline::{BodyFormat, Heuristic, Section};
use crate::intezer::StringEntry;

/// Heuristic "Intezer found malicious strings".
const STRINGS_HEURISTIC: u32 = 21;

/// Software type (and group name) Intezer gives strings that ordinary
/// software contains too. They are not reported.
const COMMON: &str = "common";

/// Stand-in for a string without a software type.
const UNKNOWN_SOFTWARE_TYPE: &str = "unknown";

const SUMMARY_COLUMNS: &[&str] = &["Family Name", "String Count"];
const DETAIL_COLUMNS: &[&str] = &["String Value", "Families", "Tags"];

/// Builds "Total String Count per Family" (heuristic 21), with one
/// auto-collapsed "String Family: <software_type>" child (heuristic 21) per
/// software type. A string counts for the first family Intezer names, or
/// for its software type when it names none (a missing or empty `families`
/// list). Returns `None` when there are no strings or only common ones.
pub fn strings_section(strings: &[StringEntry]) -> Option<Section> {
    let summary_rows = summary_rows(strings);
    let details = detail_sections(strings);
    if summary_rows.is_empty() && details.is_empty() {
        return None;
    }

    let mut summary = table(
        "Total String Count per Family",
        summary_rows,
        SUMMARY_COLUMNS,
    );
    summary.heuristic = Some(Heuristic::new(STRINGS_HEURISTIC));
    summary.children = details;
    Some(summary)
}

/// Counts the strings per group, one row per group sorted by name in
/// code-point order, without `common`.
fn summary_rows(strings: &[StringEntry]) -> Vec<Value> {
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for entry in strings {
        *counts.entry(group_name(entry)).or_default() += 1;
    }
    counts
        .into_iter()
        .filter(|(name, _)| *name != COMMON)
        .map(|(name, count)| json!({"Family Name": name, "String Count": count}))
        .collect()
}

/// Builds one table per software type, in order of first appearance,
/// without `common`. Rows keep the input order.
fn detail_sections(strings: &[StringEntry]) -> Vec<Section> {
    let mut software_types: Vec<&str> = Vec::new();
    for entry in strings {
        let software_type = software_type(entry);
        if software_type != COMMON && !software_types.contains(&software_type) {
            software_types.push(software_type);
        }
    }

    software_types
        .into_iter()
        .map(|software_type| {
            let rows = strings
                .iter()
                .filter(|entry| self::software_type(entry) == software_type)
                .map(detail_row)
                .collect();
            let mut section = table(
                format!("String Family: {software_type}"),
                rows,
                DETAIL_COLUMNS,
            );
            section.auto_collapse = true;
            section.heuristic = Some(Heuristic::new(STRINGS_HEURISTIC));
            section
        })
        .collect()
}

fn detail_row(entry: &StringEntry) -> Value {
    let families = family_names(entry);
    let families = if families.is_empty() {
        software_type(entry).to_string()
    } else {
        families.join(", ")
    };
    json!({
        "String Value": entry.string_value.as_deref().unwrap_or_default(),
        "Families": families,
        "Tags": entry.tags.join(", "),
    })
}

/// Returns the summary group of a string: its first family, else its
/// software type.
fn group_name(entry: &StringEntry) -> &str {
    family_names(entry)
        .first()
        .copied()
        .unwrap_or_else(|| software_type(entry))
}

/// Lists the family names in Intezer's order, skipping entries without a
/// name.
fn family_names(entry: &StringEntry) -> Vec<&str> {
    entry
        .families
        .iter()
        .flatten()
        .filter_map(|family| family.get("family_name").and_then(Value::as_str))
        .collect()
}

fn software_type(entry: &StringEntry) -> &str {
    entry
        .software_type
        .as_deref()
        .filter(|software_type| !software_type.is_empty())
        .unwrap_or(UNKNOWN_SOFTWARE_TYPE)
}

/// Builds a TABLE section with an explicit column order, so the order
/// does not depend on the key order of any row.
fn table(title: impl Into<String>, rows: Vec<Value>, columns: &[&str]) -> Section {
    let mut section = Section::new(title, BodyFormat::Table);
    section.body = Some(Value::Array(rows));
    section
        .body_config
        .insert("column_order".to_string(), json!(columns));
    section
}

/// Builds a strings entry as Intezer returns it, for tests in this module
/// and its siblings.
#[cfg(test)]
pub(crate) fn string_entry(
    value: &str,
    software_type: &str,
    families: Option<&[&str]>,
    tags: &[&str],
) -> StringEntry {
    StringEntry {
        string_value: Some(value.to_string()),
        software_type: Some(software_type.to_string()),
        tags: tags.iter().map(|tag| tag.to_string()).collect(),
        families: families.map(|names| {
            names
                .iter()
                .map(|name| {
                    let mut family = serde_json::Map::new();
                    family.insert("family_id".to_string(), json!("f-0"));
                    family.insert("family_name".to_string(), json!(name));
                    family
                })
                .collect()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    fn body(section: &Section) -> &Value {
        section.body.as_ref().expect("table has a body")
    }

    fn mixed_strings() -> Vec<StringEntry> {
        vec![
            string_entry("rat_mutex", "malware", Some(&["ExampleRAT"]), &["mutex"]),
            string_entry(
                "Global\\Sync",
                "malware",
                Some(&["ExampleRAT", "ExampleLoader"]),
                &["mutex", "synchronization"],
            ),
            string_entry("/gate.php", "malware", Some(&["ExampleLoader"]), &[]),
            string_entry("GetProcAddress", "common", None, &[]),
            string_entry("session %d", "administration_tool", None, &[]),
        ]
    }

    #[test]
    fn summary_counts_first_family() {
        let section = strings_section(&mixed_strings()).unwrap();
        assert_eq!(
            body(&section),
            &json!([
                {"Family Name": "ExampleLoader", "String Count": 1},
                {"Family Name": "ExampleRAT", "String Count": 2},
                {"Family Name": "administration_tool", "String Count": 1},
            ])
        );
    }

    #[test]
    fn summary_raises_heuristic_21() {
        let section = strings_section(&mixed_strings()).unwrap();
        assert_eq!(section.title, "Total String Count per Family");
        assert_eq!(section.heuristic, Some(Heuristic::new(21)));
    }

    #[test]
    fn summary_column_order_is_set() {
        let section = strings_section(&mixed_strings()).unwrap();
        assert_eq!(
            section.body_config["column_order"],
            json!(["Family Name", "String Count"])
        );
    }

    #[test]
    fn details_follow_first_appearance() {
        let section = strings_section(&mixed_strings()).unwrap();
        let titles: Vec<&str> = section.children.iter().map(|c| c.title.as_str()).collect();
        assert_eq!(
            titles,
            [
                "String Family: malware",
                "String Family: administration_tool"
            ]
        );
    }

    #[test]
    fn detail_rows_join_families_and_tags() {
        let section = strings_section(&mixed_strings()).unwrap();
        assert_eq!(
            body(&section.children[0]),
            &json!([
                {"String Value": "rat_mutex", "Families": "ExampleRAT", "Tags": "mutex"},
                {"String Value": "Global\\Sync", "Families": "ExampleRAT, ExampleLoader",
                 "Tags": "mutex, synchronization"},
                {"String Value": "/gate.php", "Families": "ExampleLoader", "Tags": ""},
            ])
        );
    }

    #[test]
    fn detail_tables_collapse_with_heuristic_21() {
        let section = strings_section(&mixed_strings()).unwrap();
        for child in &section.children {
            assert!(child.auto_collapse, "{} is collapsed", child.title);
            assert_eq!(child.heuristic, Some(Heuristic::new(21)), "{}", child.title);
            assert_eq!(
                child.body_config["column_order"],
                json!(["String Value", "Families", "Tags"]),
                "{}",
                child.title
            );
        }
    }

    #[test]
    fn detail_without_families_shows_software_type() {
        let section = strings_section(&mixed_strings()).unwrap();
        assert_eq!(
            body(&section.children[1]),
            &json!([{"String Value": "session %d", "Families": "administration_tool", "Tags": ""}])
        );
    }

    #[test]
    fn empty_list_gives_no_section() {
        assert_eq!(strings_section(&[]), None);
    }

    #[test]
    fn only_common_strings_give_no_section() {
        let strings = vec![
            string_entry("GetProcAddress", "common", None, &[]),
            string_entry("kernel32.dll", "common", Some(&[]), &["library"]),
        ];
        assert_eq!(strings_section(&strings), None);
    }

    #[test]
    fn empty_families_group_by_software_type() {
        let strings = vec![string_entry("beacon", "malware", Some(&[]), &["network"])];
        let section = strings_section(&strings).unwrap();
        assert_eq!(
            body(&section),
            &json!([{"Family Name": "malware", "String Count": 1}])
        );
        assert_eq!(
            body(&section.children[0]),
            &json!([{"String Value": "beacon", "Families": "malware", "Tags": "network"}])
        );
    }

    #[test]
    fn common_group_is_left_out_of_summary() {
        let strings = vec![
            string_entry("GetProcAddress", "common", None, &[]),
            string_entry("beacon", "malware", Some(&["ExampleRAT"]), &[]),
        ];
        let section = strings_section(&strings).unwrap();
        assert_eq!(
            body(&section),
            &json!([{"Family Name": "ExampleRAT", "String Count": 1}])
        );
        assert_eq!(section.children.len(), 1);
    }

    #[test]
    fn summary_sorts_by_code_point() {
        let strings = vec![
            string_entry("a", "malware", Some(&["beta"]), &[]),
            string_entry("b", "malware", Some(&["Zeta"]), &[]),
            string_entry("c", "malware", Some(&["Alpha"]), &[]),
        ];
        let section = strings_section(&strings).unwrap();
        let names: Vec<&str> = body(&section)
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row["Family Name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Alpha", "Zeta", "beta"]);
    }

    #[test]
    fn missing_fields_do_not_panic() {
        let entry = StringEntry {
            string_value: None,
            software_type: None,
            tags: Vec::new(),
            families: Some(vec![Map::new()]),
        };
        let section = strings_section(&[entry]).unwrap();
        assert_eq!(
            body(&section.children[0]),
            &json!([{"String Value": "", "Families": "unknown", "Tags": ""}])
        );
    }
}
