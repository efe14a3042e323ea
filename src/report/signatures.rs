//! The "Signatures" section: one child per dynamic TTP that Intezer
//! reported for the file's execution, with its heuristic, ATT&CK ids, score,
//! marks and the IOCs found in them.
//!
//! Each child `Signature: <name>` starts with the TTP's description. Its
//! heuristic comes from the signature's category ([`signature_info`]), and
//! the signature `<name>` is scored from the TTP's severity
//! ([`severity_score`]). Then every mark adds one line `\t<key>: <value>`
//! and, by its key, a tag or an IOC scan (see [`MarkKind`]). The IOCs found
//! go into one "IOCs found in signature marks" table under the child.
//! Silent signatures show no marks and no table.
//!
//! This differs from the Python service in four ways. A severity outside 1
//! to 3 and a mark value that is not a string are handled instead of
//! failing the task. Duplicate mark lines are found by whole line, not by
//! substring. The safelist also applies to the IOC table. Some ATT&CK ids
//! are corrected (see [`SIGNATURES`]).

use std::borrow::Cow;
use std::collections::{BTreeSet, HashSet};

use serde_json::{Map, Value};

use super::ioc_extract::{extract_iocs, ioc_table_section, IocKind};
use super::safelist::Safelist;
use super::tags::add_tag;
use crate::assemblyline::{BodyFormat, Heuristic, Section};
use crate::intezer::Ttp;

/// Characters of a mark value that are shown or tagged. Longer values are
/// cut there and get `...` appended.
pub const MAX_MARK_VALUE_CHARS: usize = 512;

/// Heuristic of signatures that are not in [`SIGNATURES`].
pub const GENERIC_HEURISTIC: u32 = 4;

/// Category reported for signatures that are not in [`SIGNATURES`].
pub const GENERIC_CATEGORY: &str = "Generic";

/// Signatures whose marks are not shown, because they list every process
/// the sample saw and are of no use to an analyst on their own.
const SILENT_SIGNATURES: &[&str] = &["enumerates_running_processes"];

/// Report settings of one signature: its category, heuristic, ATT&CK ids
/// and whether its marks are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignatureInfo {
    /// ATT&CK tactic the signature belongs to, or [`GENERIC_CATEGORY`].
    pub category: &'static str,
    /// Manifest heuristic id: 5 to 11 by category, [`GENERIC_HEURISTIC`]
    /// for unknown signatures.
    pub heuristic: u32,
    pub attack_ids: &'static [&'static str],
    /// Whether the marks and their IOCs are left out of the section.
    pub silent: bool,
}

/// ATT&CK tactic of a signature, each with its own heuristic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Category {
    CommandAndControl,
    CredentialAccess,
    DefenseEvasion,
    Discovery,
    Execution,
    Persistence,
    Collection,
}

impl Category {
    fn name(self) -> &'static str {
        match self {
            Category::CommandAndControl => "Command And Control",
            Category::CredentialAccess => "Credential Access",
            Category::DefenseEvasion => "Defense Evasion",
            Category::Discovery => "Discovery",
            Category::Execution => "Execution",
            Category::Persistence => "Persistence",
            Category::Collection => "Collection",
        }
    }

    /// Returns the manifest heuristic that signatures of this category raise.
    fn heuristic(self) -> u32 {
        match self {
            Category::CommandAndControl => 5,
            Category::CredentialAccess => 6,
            Category::DefenseEvasion => 7,
            Category::Discovery => 8,
            Category::Execution => 9,
            Category::Persistence => 10,
            Category::Collection => 11,
        }
    }
}

use Category::*;

/// Intezer's dynamic signature names with their category and ATT&CK ids,
/// as the Python service maps them. Names are matched exactly, including
/// case.
///
/// Corrected rows, with the reason:
/// * `powershell_network_connection`, `powershell_variable_obfuscation` and
///   `powershell_command_suspicious`: T1059.004 → T1059.001, because
///   T1059.004 is "Unix Shell" and T1059.001 is "PowerShell".
/// * `office_macro_autoexecution`: T1059.004 → T1059.005, because Office
///   macros are VBA, and T1059.005 is "Visual Basic".
/// * `persistence_autorun_tasks`: T1543 → T1053.005 ("Scheduled Task/Job:
///   Scheduled Task"), because the name points to Windows scheduled tasks,
///   while T1543 "Create or Modify System Process" covers services. Intezer
///   does not document the signature, so this follows from its name.
const SIGNATURES: &[(&str, Category, &[&str])] = &[
    ("InjectionInterProcess", DefenseEvasion, &["T1055"]),
    (
        "process_creation_suspicious_location",
        Execution,
        &["T1106"],
    ),
    ("infostealer_browser", CredentialAccess, &["T1552.001"]),
    ("recon_fingerprint", Discovery, &["T1082"]),
    ("enumerates_running_processes", Discovery, &["T1057"]),
    ("process_interest", Discovery, &["T1057"]),
    ("injection_createremotethread", DefenseEvasion, &["T1055"]),
    ("InjectionCreateRemoteThread", DefenseEvasion, &["T1055"]),
    ("stealth_hidden_extension", DefenseEvasion, &["T1562.006"]),
    ("dropper", Execution, &["T1129"]),
    ("network_cnc_https_generic", CommandAndControl, &["T1573"]),
    ("office_cve2017_11882", Execution, &["T1203"]),
    ("powershell_network_connection", Execution, &["T1059.001"]),
    ("wmi_create_process", Execution, &["T1047"]),
    ("wmi_script_process", Execution, &["T1047"]),
    ("powershell_variable_obfuscation", Execution, &["T1059.001"]),
    ("office_macro_autoexecution", Execution, &["T1059.005"]),
    ("persistence_autorun", Persistence, &["T1547.001"]),
    ("persistence_autorun_tasks", Persistence, &["T1053.005"]),
    ("office_martian_children", Execution, &["T1059"]),
    ("office_cve2017_11882_network", Execution, &["T1203"]),
    ("infostealer_ftp", CredentialAccess, &["T1552.001"]),
    ("infostealer_im", Collection, &["T1005"]),
    ("spawns_dev_util", DefenseEvasion, &["T1127"]),
    (
        "uses_windows_utilities_to_create_scheduled_task",
        Execution,
        &["T1053"],
    ),
    (
        "windows_defender_powershell",
        DefenseEvasion,
        &["T1562.001"],
    ),
    ("pe_compile_timestomping", DefenseEvasion, &["T1070.006"]),
    ("creates_largekey", DefenseEvasion, &["T1112"]),
    (
        "registry_credential_store_access",
        CredentialAccess,
        &["T1003"],
    ),
    ("powershell_command_suspicious", Execution, &["T1059.001"]),
    ("infostealer_cookies", CredentialAccess, &["T1539"]),
    ("infostealer_mail", Collection, &["T1005"]),
    ("recon_programs", Discovery, &["T1518"]),
    ("antivm_generic_cpu", Discovery, &["T1012"]),
    ("infostealer_bitcoin", Collection, &["T1005"]),
];

/// Names of every signature with a known category, in table order.
pub fn known_signatures() -> impl Iterator<Item = &'static str> {
    SIGNATURES.iter().map(|(name, _, _)| *name)
}

/// Looks up the category, heuristic and ATT&CK ids of a signature. Unknown
/// names get [`GENERIC_HEURISTIC`], no ATT&CK id, and are not silent.
pub fn signature_info(name: &str) -> SignatureInfo {
    let silent = SILENT_SIGNATURES.contains(&name);
    match SIGNATURES.iter().find(|(known, _, _)| *known == name) {
        Some((_, category, attack_ids)) => SignatureInfo {
            category: category.name(),
            heuristic: category.heuristic(),
            attack_ids,
            silent,
        },
        None => SignatureInfo {
            category: GENERIC_CATEGORY,
            heuristic: GENERIC_HEURISTIC,
            attack_ids: &[],
            silent,
        },
    }
}

/// Converts an Intezer TTP severity to a signature score: 1 → 10, 2 → 100,
/// 3 → 250. A severity below 1 or missing scores 10 and one above 3 scores
/// 250, with a debug log, so an unexpected value still gets a score.
pub fn severity_score(severity: Option<i64>) -> i64 {
    match severity {
        Some(1) => 10,
        Some(2) => 100,
        Some(3) => 250,
        Some(other) if other > 3 => {
            tracing::debug!(severity = other, "TTP severity above 3, scored as 3");
            250
        }
        Some(other) => {
            tracing::debug!(severity = other, "TTP severity below 1, scored as 1");
            10
        }
        None => {
            tracing::debug!("TTP has no severity, scored as 1");
            10
        }
    }
}

/// Builds the "Signatures" container (TEXT, no body) with one child
/// "Signature: <name>" per TTP in API order. Returns `None` when there are
/// no TTPs.
pub fn signatures_section(ttps: &[Ttp], safelist: &Safelist) -> Option<Section> {
    if ttps.is_empty() {
        return None;
    }
    let mut container = Section::new("Signatures", BodyFormat::Text);
    container.children = ttps
        .iter()
        .map(|ttp| signature_section(ttp, safelist))
        .collect();
    Some(container)
}

/// Builds the section of one TTP.
fn signature_section(ttp: &Ttp, safelist: &Safelist) -> Section {
    let info = signature_info(&ttp.name);
    let mut section = Section::new(format!("Signature: {}", ttp.name), BodyFormat::Text);

    let mut heuristic = Heuristic::new(info.heuristic);
    if ttp.name.trim().is_empty() {
        tracing::debug!("TTP has no name, so its heuristic has no signature");
    } else {
        heuristic.add_signature(&ttp.name, Some(severity_score(ttp.severity)));
    }
    heuristic.attack_ids = info.attack_ids.iter().map(|id| id.to_string()).collect();
    section.heuristic = Some(heuristic);

    let mut lines = Vec::new();
    if let Some(description) = ttp.description.as_deref() {
        if !description.trim().is_empty() {
            lines.push(description.to_string());
        }
    }

    if !info.silent {
        let mut marks = MarkReport::default();
        for mark in &ttp.data {
            marks.add(mark, &mut section, safelist);
        }
        lines.extend(marks.lines);
        let iocs: Vec<(IocKind, String)> = marks.iocs.into_iter().collect();
        if let Some(table) = ioc_table_section(&iocs, safelist) {
            section.children.push(table);
        }
    }

    if !lines.is_empty() {
        section.body = Some(Value::String(lines.join("\n")));
    }
    section
}

// === marks ===

/// Meaning of a mark's value, read from its key, which decides its tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MarkKind {
    /// `IP`: tagged as `network.dynamic.ip` when the value is a bare IP
    /// that is not safelisted, otherwise scanned for IOCs.
    Ip,
    /// A command line: tagged as `dynamic.process.command_line` and scanned
    /// for IOCs.
    CommandLine,
    /// A file path: tagged as `dynamic.process.file_name`.
    File,
    /// A URL or an HTTP request: scanned for IOCs only.
    Url,
    /// A registry key: tagged as `dynamic.registry_key`.
    RegistryKey,
    /// `domain`: tagged as `network.dynamic.domain`.
    Domain,
    /// Shown, not tagged.
    Other,
}

impl MarkKind {
    /// Reads the kind from a mark key; keys are case-sensitive.
    fn of_key(key: &str) -> MarkKind {
        match key {
            "IP" => MarkKind::Ip,
            "command" | "cmdline" | "Commandline executed" => MarkKind::CommandLine,
            "DeletedFile" | "file" | "binary" | "copy" | "service path" | "office_martian"
            | "File executed" => MarkKind::File,
            "http_request" | "url" | "suspicious_request" | "network_http" | "request"
            | "http_downloadurl" | "uri" => MarkKind::Url,
            "key" | "regkey" | "regkeyval" => MarkKind::RegistryKey,
            "domain" => MarkKind::Domain,
            _ => MarkKind::Other,
        }
    }
}

/// The lines and IOCs collected from the marks of one signature.
#[derive(Debug, Default)]
struct MarkReport {
    lines: Vec<String>,
    seen_lines: HashSet<String>,
    iocs: BTreeSet<(IocKind, String)>,
}

impl MarkReport {
    /// Tags `section` from one mark, scans it for IOCs when its kind calls
    /// for a scan, and adds its line unless the same line is already there.
    /// Only the first key of a mark is read, and a mark with no key or an
    /// empty value is skipped.
    fn add(&mut self, mark: &Map<String, Value>, section: &mut Section, safelist: &Safelist) {
        let Some((key, value)) = mark.iter().next() else {
            return;
        };
        let Some(text) = mark_value_text(value) else {
            return;
        };
        // IOCs are scanned in the whole value, and only the line and the
        // tags are cut.
        let truncated = truncate_value(&text);

        match MarkKind::of_key(key) {
            MarkKind::Ip => {
                if !add_tag(section, "network.dynamic.ip", &truncated, safelist) {
                    self.iocs.extend(extract_iocs(&text));
                }
            }
            MarkKind::CommandLine => {
                add_tag(
                    section,
                    "dynamic.process.command_line",
                    &truncated,
                    safelist,
                );
                self.iocs.extend(extract_iocs(&text));
            }
            MarkKind::File => {
                add_tag(section, "dynamic.process.file_name", &truncated, safelist);
            }
            MarkKind::Url => self.iocs.extend(extract_iocs(&text)),
            MarkKind::RegistryKey => {
                add_tag(section, "dynamic.registry_key", &truncated, safelist);
            }
            MarkKind::Domain => {
                add_tag(section, "network.dynamic.domain", &truncated, safelist);
            }
            MarkKind::Other => {}
        }

        let line = format!("\t{key}: {truncated}");
        if self.seen_lines.insert(line.clone()) {
            self.lines.push(line);
        }
    }
}

/// Turns a mark value of any JSON type into text: strings as they are,
/// other values as compact JSON. Returns `None` for null, empty or blank
/// strings, and empty arrays and objects.
fn mark_value_text(value: &Value) -> Option<String> {
    let text = match value {
        Value::Null => return None,
        Value::String(text) => text.clone(),
        Value::Array(items) if items.is_empty() => return None,
        Value::Object(fields) if fields.is_empty() => return None,
        other => other.to_string(),
    };
    if text.trim().is_empty() {
        None
    } else {
        Some(text)
    }
}

/// Cuts `text` to [`MAX_MARK_VALUE_CHARS`] characters and appends `...`
/// when it was longer.
fn truncate_value(text: &str) -> Cow<'_, str> {
    match text.char_indices().nth(MAX_MARK_VALUE_CHARS) {
        Some((cut, _)) => Cow::Owned(format!("{}...", &text[..cut])),
        None => Cow::Borrowed(text),
    }
}

#[cfg(test)]
mod tests;
