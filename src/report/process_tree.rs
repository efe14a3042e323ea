//! "Spawned Process Tree": the processes Intezer lists in the extraction
//! info of sub-analyses, linked into one tree by parent process id, with
//! Assemblyline's process tags.
//!
//! Intezer gives a process id, a parent process id, the process image path
//! and the path of the module the sub-analysis file was found in. It gives
//! no command line, so none is made up: a module that differs from the image
//! (a DLL run by `rundll32.exe`) is listed in a "Process modules" table and
//! tagged as a file name.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use regex::{NoExpand, Regex};
use serde_json::{json, Map, Value};

use super::safelist::Safelist;
use super::tags::add_tag;
use super::SubAnalysisReport;
use crate::assemblyline::{BodyFormat, Section};
use crate::intezer::SubAnalysis;

const FILE_NAME_TAG: &str = "dynamic.process.file_name";
const COMMAND_LINE_TAG: &str = "dynamic.process.command_line";
const PROCESS_TREE_ID_TAG: &str = "dynamic.processtree_id";

/// Maximum nesting of process nodes in the body. Each node adds two JSON
/// levels (the node and its `children` array), and serde_json rejects
/// input nested more than 128 levels by default, so a deeper process
/// starts a new top-level branch instead.
// NOTE: which JSON parser AL's Rust service server uses for section bodies
// was not checked. The limit keeps the body readable by serde_json.
const MAX_TREE_DEPTH: usize = 60;

/// Returns the `processes` list of a sub-analysis's extraction info, or
/// an empty slice when there is no extraction info or no such list.
pub(crate) fn extraction_processes(sub: &SubAnalysis) -> &[Value] {
    sub.extraction_info
        .as_ref()
        .and_then(|info| info.get("processes"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// Builds "Spawned Process Tree" from the processes of every sub-analysis,
/// or returns `None` when no process has a usable pid. Processes that
/// several sub-analyses list are merged by pid. Tags: the normalised image
/// paths from the root down to each process (`dynamic.processtree_id`) and
/// every image and module path (`dynamic.process.file_name`), each through
/// the safelist.
pub fn process_tree_section(subs: &[SubAnalysisReport], safelist: &Safelist) -> Option<Section> {
    let mut processes = ProcessList::default();
    for report in subs {
        for entry in extraction_processes(&report.sub) {
            processes.add(entry);
        }
    }
    if processes.order.is_empty() {
        return None;
    }

    let tree = processes.into_tree();
    let mut section = Section::new("Spawned Process Tree", BodyFormat::ProcessTree);
    section.body = Some(Value::Array(tree.body(safelist)));

    for tree_id in tree.tree_ids() {
        add_tag(&mut section, PROCESS_TREE_ID_TAG, &tree_id, safelist);
    }
    for path in &tree.processes.file_names {
        add_tag(&mut section, FILE_NAME_TAG, path, safelist);
    }
    for pid in &tree.processes.order {
        if let Some(command_line) = &tree.processes.by_pid[pid].command_line {
            add_tag(&mut section, COMMAND_LINE_TAG, command_line, safelist);
        }
    }

    if let Some(modules) = modules_section(&tree.processes) {
        section.children.push(modules);
    }
    Some(section)
}

/// Normalises a Windows path as `Process._normalize_path` does in
/// assemblyline-v4-service (`common/dynamic_service_helper.py`), so the
/// same image gets the same `dynamic.processtree_id` across services. The
/// path is lower-cased, then well-known locations become placeholders
/// (`?sys32`, `?sys64`, `?pf86`, `?pf64`, `?usrtmp`, `?usr`, `?win`, `?c`).
/// A path that names `syswow64` or `program files (x86)` is taken to come
/// from a 64-bit Windows, where `syswow64` contains the 32-bit system files.
pub fn normalize_path(path: &str) -> String {
    static USER_TEMP: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"c:\\users\\[^\\]+\\appdata\\local\\temp\\").expect("valid pattern")
    });
    static USER_HOME: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"c:\\users\\[^\\]+\\").expect("valid pattern"));

    let mut path = path.to_lowercase();
    let is_64_bit = path.contains("program files (x86)") || path.contains("syswow64");

    // The order matters: the longer, more specific locations go first.
    if is_64_bit {
        path = replace_if_prefix(&path, r"c:\windows\syswow64", "?sys32");
        path = replace_if_prefix(&path, r"c:\windows\system32", "?sys64");
        path = replace_if_prefix(&path, r"c:\program files (x86)", "?pf86");
        path = replace_if_prefix(&path, r"c:\program files", "?pf64");
    } else {
        path = replace_if_prefix(&path, r"c:\windows\system32", "?sys32");
        path = replace_if_prefix(&path, r"c:\program files", "?pf86");
    }
    path = USER_TEMP
        .replace_all(&path, NoExpand(r"?usrtmp\"))
        .into_owned();
    path = USER_HOME
        .replace_all(&path, NoExpand(r"?usr\"))
        .into_owned();
    path = replace_if_prefix(&path, r"c:\windows\", r"?win\");
    replace_if_prefix(&path, r"c:\", r"?c\")
}

/// Replaces every occurrence of `pattern` when the path starts with it,
/// as the Assemblyline helper applies its fixed-location rules.
fn replace_if_prefix(path: &str, pattern: &str, replacement: &str) -> String {
    if path.starts_with(pattern) {
        path.replace(pattern, replacement)
    } else {
        path.to_string()
    }
}

/// One process, merged from every record Intezer gave for its pid.
#[derive(Debug)]
struct Process {
    pid: i64,
    ppid: Option<i64>,
    image: String,
    /// Only what Intezer itself reports; never built from paths.
    command_line: Option<String>,
    /// Module paths that differ from the image, in first-seen order.
    modules: Vec<String>,
}

/// Processes by pid, in first-seen order, and every path to tag.
#[derive(Debug, Default)]
struct ProcessList {
    order: Vec<i64>,
    by_pid: HashMap<i64, Process>,
    file_names: Vec<String>,
}

impl ProcessList {
    /// Adds one extraction-info record. A record without a usable pid or
    /// image path still has its paths tagged but adds no node.
    fn add(&mut self, entry: &Value) {
        let Some(entry) = entry.as_object() else {
            tracing::debug!("extraction info process is not an object");
            return;
        };
        let image = string_field(entry, "process_path");
        let module = string_field(entry, "module_path");
        let command_line = string_field(entry, "command_line");
        for path in [image, module].into_iter().flatten() {
            if !self.file_names.iter().any(|known| known == path) {
                self.file_names.push(path.to_string());
            }
        }

        let pid = entry.get("process_id").and_then(integer);
        let (Some(pid), Some(image)) = (pid, image.or(module)) else {
            tracing::debug!(
                pid = ?entry.get("process_id"),
                "extraction info process has no pid or path"
            );
            return;
        };
        let ppid = entry.get("parent_process_id").and_then(integer);
        let module = module.filter(|module| !module.eq_ignore_ascii_case(image));

        let process = self.by_pid.entry(pid).or_insert_with(|| {
            self.order.push(pid);
            Process {
                pid,
                ppid,
                image: image.to_string(),
                command_line: None,
                modules: Vec::new(),
            }
        });
        if process.ppid.is_none() {
            process.ppid = ppid;
        }
        if process.command_line.is_none() {
            process.command_line = command_line.map(str::to_string);
        }
        if let Some(module) = module {
            if !process.modules.iter().any(|known| known == module) {
                process.modules.push(module.to_string());
            }
        }
    }

    /// Links each process to its parent, cutting parent links that would
    /// close a cycle, so that every process ends up in exactly one tree.
    fn into_tree(self) -> ProcessTree {
        let mut parent: HashMap<i64, i64> = HashMap::new();
        for pid in &self.order {
            if let Some(ppid) = self.by_pid[pid].ppid {
                if ppid != *pid && self.by_pid.contains_key(&ppid) {
                    parent.insert(*pid, ppid);
                }
            }
        }

        // Walk up from each process. On reaching a process already on the
        // walk, the first-listed member of that cycle becomes a root.
        let position: HashMap<i64, usize> = self
            .order
            .iter()
            .enumerate()
            .map(|(index, pid)| (*pid, index))
            .collect();
        for pid in &self.order {
            let mut walk = vec![*pid];
            let mut current = *pid;
            while let Some(&next) = parent.get(&current) {
                if let Some(start) = walk.iter().position(|seen| *seen == next) {
                    let first = walk[start..]
                        .iter()
                        .copied()
                        .min_by_key(|member| position[member])
                        .unwrap_or(next);
                    tracing::debug!(pid = first, "cut a cycle in parent process ids");
                    parent.remove(&first);
                    break;
                }
                walk.push(next);
                current = next;
            }
        }

        let mut children: HashMap<i64, Vec<i64>> = HashMap::new();
        let mut roots = Vec::new();
        for pid in &self.order {
            match parent.get(pid) {
                Some(ppid) => children.entry(*ppid).or_default().push(*pid),
                None => roots.push(*pid),
            }
        }
        ProcessTree {
            processes: self,
            parent,
            children,
            roots,
        }
    }
}

/// Processes linked into a forest: no cycles, every pid in one tree.
#[derive(Debug)]
struct ProcessTree {
    processes: ProcessList,
    parent: HashMap<i64, i64>,
    children: HashMap<i64, Vec<i64>>,
    roots: Vec<i64>,
}

impl ProcessTree {
    /// Builds the PROCESS_TREE body: one node per root, children nested.
    fn body(&self, safelist: &Safelist) -> Vec<Value> {
        let mut nodes = Vec::new();
        let mut pending: Vec<i64> = self.roots.clone();
        let mut next = 0;
        while next < pending.len() {
            let root = pending[next];
            next += 1;
            nodes.push(self.node(root, 1, safelist, &mut pending));
        }
        nodes
    }

    /// Builds one node and its children. Children below `MAX_TREE_DEPTH`
    /// go to `detached` and become top-level nodes.
    fn node(&self, pid: i64, depth: usize, safelist: &Safelist, detached: &mut Vec<i64>) -> Value {
        let process = &self.processes.by_pid[&pid];
        let child_pids = self.children.get(&pid).map(Vec::as_slice).unwrap_or(&[]);
        let children: Vec<Value> = if depth >= MAX_TREE_DEPTH {
            detached.extend_from_slice(child_pids);
            Vec::new()
        } else {
            child_pids
                .iter()
                .map(|child| self.node(*child, depth + 1, safelist, detached))
                .collect()
        };

        // A node is safelisted only when its image and every child are, so
        // a safelisted node never covers a process that is not.
        let safelisted = safelist.is_safelisted(FILE_NAME_TAG, &process.image)
            && children.iter().all(|child| child["safelisted"] == true);

        json!({
            "process_pid": process.pid,
            "process_name": process.image,
            // The protocol types `command_line` as a string and Intezer
            // reports none, so the image path is used in its place.
            "command_line": process.command_line.as_deref().unwrap_or(&process.image),
            "signatures": {},
            "children": children,
            "network_count": 0,
            "file_count": 0,
            "registry_count": 0,
            "safelisted": safelisted,
        })
    }

    /// Lists the `dynamic.processtree_id` of each process, in first-seen
    /// order: the normalised image paths from its root down to it, joined
    /// by `|`.
    fn tree_ids(&self) -> Vec<String> {
        let mut tree_ids = Vec::new();
        let mut seen = HashSet::new();
        for pid in &self.processes.order {
            let mut chain = vec![normalize_path(&self.processes.by_pid[pid].image)];
            let mut current = *pid;
            while let Some(ppid) = self.parent.get(&current) {
                chain.push(normalize_path(&self.processes.by_pid[ppid].image));
                current = *ppid;
            }
            chain.reverse();
            let tree_id = chain.join("|");
            if seen.insert(tree_id.clone()) {
                tree_ids.push(tree_id);
            }
        }
        tree_ids
    }
}

/// Builds "Process modules": the modules that differ from their process
/// image.
fn modules_section(processes: &ProcessList) -> Option<Section> {
    let rows: Vec<Value> = processes
        .order
        .iter()
        .map(|pid| &processes.by_pid[pid])
        .flat_map(|process| {
            process.modules.iter().map(|module| {
                json!({
                    "process_pid": process.pid,
                    "process_name": process.image,
                    "module_path": module,
                })
            })
        })
        .collect();
    if rows.is_empty() {
        return None;
    }
    let mut section = Section::new("Process modules", BodyFormat::Table);
    section.body = Some(Value::Array(rows));
    section.body_config.insert(
        "column_order".to_string(),
        json!(["process_pid", "process_name", "module_path"]),
    );
    Some(section)
}

fn string_field<'a>(entry: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    entry
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

/// Reads a pid given as a JSON integer or as a decimal string.
fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(processes: Value) -> SubAnalysisReport {
        SubAnalysisReport {
            sub: SubAnalysis {
                sub_analysis_id: "sub-1".to_string(),
                source: Some("dynamic_unpacking".to_string()),
                extraction_info: Some(json!({ "processes": processes })),
                ..SubAnalysis::default()
            },
            ..SubAnalysisReport::default()
        }
    }

    fn process(pid: Value, ppid: Value, image: &str, module: &str) -> Value {
        json!({
            "process_id": pid,
            "parent_process_id": ppid,
            "process_path": image,
            "module_path": module,
        })
    }

    fn chain() -> SubAnalysisReport {
        report(json!([
            process(
                json!(100),
                json!(4),
                r"C:\Users\analyst\Desktop\setup.exe",
                r"C:\Users\analyst\Desktop\setup.exe"
            ),
            process(
                json!(200),
                json!(100),
                r"C:\Windows\System32\cmd.exe",
                r"C:\Windows\System32\cmd.exe"
            ),
            process(
                json!(300),
                json!(200),
                r"C:\Windows\System32\svchost.exe",
                r"C:\Windows\System32\svchost.exe"
            ),
        ]))
    }

    fn tree(subs: &[SubAnalysisReport]) -> Section {
        process_tree_section(subs, &Safelist::empty()).expect("tree has processes")
    }

    fn tags<'a>(section: &'a Section, name: &str) -> Vec<&'a str> {
        section
            .tags
            .get(name)
            .map(|values| values.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// (pid, depth) of every node, depth-first.
    fn shape(body: &Value) -> Vec<(i64, usize)> {
        fn walk(nodes: &Value, depth: usize, out: &mut Vec<(i64, usize)>) {
            for node in nodes.as_array().unwrap() {
                out.push((node["process_pid"].as_i64().unwrap(), depth));
                walk(&node["children"], depth + 1, out);
            }
        }
        let mut out = Vec::new();
        walk(body, 0, &mut out);
        out
    }

    #[test]
    fn normalize_path_cases() {
        let cases = [
            (r"C:\Windows\System32\cmd.exe", r"?sys32\cmd.exe"),
            (r"C:\Windows\SysWOW64\rundll32.exe", r"?sys32\rundll32.exe"),
            (r"C:\Program Files\App\app.exe", r"?pf86\app\app.exe"),
            (r"C:\Program Files (x86)\App\app.exe", r"?pf86\app\app.exe"),
            (
                r"C:\Users\analyst\AppData\Local\Temp\nsx1.tmp\payload.dll",
                r"?usrtmp\nsx1.tmp\payload.dll",
            ),
            (
                r"C:\Users\analyst\Desktop\setup.exe",
                r"?usr\desktop\setup.exe",
            ),
            (r"C:\Windows\explorer.exe", r"?win\explorer.exe"),
            (r"C:\tools\a.exe", r"?c\tools\a.exe"),
            (r"D:\tools\a.exe", r"d:\tools\a.exe"),
            ("payload.exe", "payload.exe"),
            ("", ""),
        ];
        for (path, expected) in cases {
            assert_eq!(normalize_path(path), expected, "{path}");
        }
    }

    #[test]
    fn normalize_path_on_64_bit_windows() {
        // `syswow64` elsewhere in the path marks a 64-bit system, where
        // system32 contains the 64-bit files. A prefix rule replaces every
        // occurrence of its location.
        assert_eq!(
            normalize_path(r"C:\Windows\System32\cmd.exe /c C:\Windows\SysWOW64\a.exe"),
            r"?sys64\cmd.exe /c c:\windows\syswow64\a.exe"
        );
        assert_eq!(
            normalize_path(r"C:\Program Files\x\y.exe C:\Program Files (x86)"),
            r"?pf64\x\y.exe ?pf64 (x86)"
        );
    }

    #[test]
    fn three_processes_nest_by_parent_pid() {
        let section = tree(&[chain()]);
        assert_eq!(
            shape(section.body.as_ref().unwrap()),
            [(100, 0), (200, 1), (300, 2)]
        );
    }

    #[test]
    fn node_has_protocol_fields() {
        let section = tree(&[chain()]);
        let root = &section.body.as_ref().unwrap()[0];
        let keys: Vec<&str> = root
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "process_pid",
                "process_name",
                "command_line",
                "signatures",
                "children",
                "network_count",
                "file_count",
                "registry_count",
                "safelisted"
            ]
        );
        assert_eq!(root["process_name"], r"C:\Users\analyst\Desktop\setup.exe");
        assert_eq!(root["signatures"], json!({}));
        assert_eq!(root["safelisted"], false);
    }

    #[test]
    fn tree_ids_use_normalised_paths() {
        let section = tree(&[chain()]);
        assert_eq!(
            tags(&section, PROCESS_TREE_ID_TAG),
            [
                r"?usr\desktop\setup.exe",
                r"?usr\desktop\setup.exe|?sys32\cmd.exe",
                r"?usr\desktop\setup.exe|?sys32\cmd.exe|?sys32\svchost.exe",
            ]
        );
    }

    #[test]
    fn every_path_is_tagged_as_file_name() {
        let section = tree(&[chain()]);
        assert_eq!(
            tags(&section, FILE_NAME_TAG),
            [
                r"C:\Users\analyst\Desktop\setup.exe",
                r"C:\Windows\System32\cmd.exe",
                r"C:\Windows\System32\svchost.exe",
            ]
        );
    }

    #[test]
    fn parents_link_across_sub_analyses() {
        let first = report(json!([process(
            json!(10),
            json!(1),
            r"C:\a.exe",
            r"C:\a.exe"
        )]));
        let second = report(json!([process(
            json!(11),
            json!(10),
            r"C:\b.exe",
            r"C:\b.exe"
        )]));
        let section = tree(&[first, second]);
        assert_eq!(shape(section.body.as_ref().unwrap()), [(10, 0), (11, 1)]);
    }

    #[test]
    fn module_path_is_not_a_command_line() {
        let sub = report(json!([process(
            json!(4388),
            json!(4120),
            r"C:\Windows\SysWOW64\rundll32.exe",
            r"C:\Users\analyst\AppData\Local\Temp\payload.dll,Start"
        )]));
        let section = tree(&[sub]);
        let node = &section.body.as_ref().unwrap()[0];
        assert_eq!(node["command_line"], r"C:\Windows\SysWOW64\rundll32.exe");
        assert!(tags(&section, COMMAND_LINE_TAG).is_empty());
    }

    #[test]
    fn module_path_is_listed_and_tagged() {
        let sub = report(json!([process(
            json!(4388),
            json!(4120),
            r"C:\Windows\SysWOW64\rundll32.exe",
            r"C:\Users\analyst\AppData\Local\Temp\payload.dll"
        )]));
        let section = tree(&[sub]);
        assert!(tags(&section, FILE_NAME_TAG)
            .contains(&r"C:\Users\analyst\AppData\Local\Temp\payload.dll"));
        let modules = &section.children[0];
        assert_eq!(modules.title, "Process modules");
        assert_eq!(
            modules.body,
            Some(json!([{
                "process_pid": 4388,
                "process_name": r"C:\Windows\SysWOW64\rundll32.exe",
                "module_path": r"C:\Users\analyst\AppData\Local\Temp\payload.dll",
            }]))
        );
    }

    #[test]
    fn same_module_as_image_is_not_listed() {
        let section = tree(&[chain()]);
        assert!(section.children.is_empty());
    }

    #[test]
    fn intezer_command_line_is_used_and_tagged() {
        let mut entry = process(
            json!(5),
            json!(1),
            r"C:\Windows\System32\cmd.exe",
            r"C:\Windows\System32\cmd.exe",
        );
        entry["command_line"] = json!("cmd.exe /c whoami");
        let section = tree(&[report(json!([entry]))]);
        assert_eq!(
            section.body.as_ref().unwrap()[0]["command_line"],
            "cmd.exe /c whoami"
        );
        assert_eq!(tags(&section, COMMAND_LINE_TAG), ["cmd.exe /c whoami"]);
    }

    #[test]
    fn duplicate_pid_is_merged() {
        let first = report(json!([
            process(json!(100), json!(4), r"C:\a.exe", r"C:\a.exe"),
            process(
                json!(200),
                json!(100),
                r"C:\Windows\SysWOW64\rundll32.exe",
                r"C:\x.dll"
            ),
        ]));
        let second = report(json!([
            process(
                json!(200),
                json!(100),
                r"C:\Windows\SysWOW64\rundll32.exe",
                r"C:\y.dll"
            ),
            process(json!(300), json!(200), r"C:\c.exe", r"C:\c.exe"),
        ]));
        let section = tree(&[first, second]);
        assert_eq!(
            shape(section.body.as_ref().unwrap()),
            [(100, 0), (200, 1), (300, 2)]
        );
        let modules = section.children[0]
            .body
            .as_ref()
            .unwrap()
            .as_array()
            .unwrap();
        assert_eq!(modules.len(), 2);
    }

    #[test]
    fn duplicate_pid_fills_missing_parent() {
        let sub = report(json!([
            process(json!(1), json!(null), r"C:\a.exe", r"C:\a.exe"),
            process(json!(2), json!(null), r"C:\b.exe", r"C:\b.exe"),
            process(json!(2), json!(1), r"C:\b.exe", r"C:\b.exe"),
        ]));
        let section = tree(&[sub]);
        assert_eq!(shape(section.body.as_ref().unwrap()), [(1, 0), (2, 1)]);
    }

    #[test]
    fn cycle_is_cut_at_first_listed_process() {
        let sub = report(json!([
            process(json!(1), json!(3), r"C:\a.exe", r"C:\a.exe"),
            process(json!(2), json!(1), r"C:\b.exe", r"C:\b.exe"),
            process(json!(3), json!(2), r"C:\c.exe", r"C:\c.exe"),
        ]));
        let section = tree(&[sub]);
        assert_eq!(
            shape(section.body.as_ref().unwrap()),
            [(1, 0), (2, 1), (3, 2)]
        );
        assert_eq!(
            tags(&section, PROCESS_TREE_ID_TAG),
            [
                r"?c\a.exe",
                r"?c\a.exe|?c\b.exe",
                r"?c\a.exe|?c\b.exe|?c\c.exe"
            ]
        );
    }

    #[test]
    fn own_pid_as_parent_makes_root() {
        let sub = report(json!([process(
            json!(7),
            json!(7),
            r"C:\a.exe",
            r"C:\a.exe"
        )]));
        let section = tree(&[sub]);
        assert_eq!(shape(section.body.as_ref().unwrap()), [(7, 0)]);
    }

    #[test]
    fn string_pids_are_read() {
        let sub = report(json!([
            process(json!("10"), json!("1"), r"C:\a.exe", r"C:\a.exe"),
            process(json!("11"), json!(10), r"C:\b.exe", r"C:\b.exe"),
        ]));
        let section = tree(&[sub]);
        assert_eq!(shape(section.body.as_ref().unwrap()), [(10, 0), (11, 1)]);
    }

    #[test]
    fn record_without_pid_is_tagged_not_shown() {
        let sub = report(json!([
            process(json!("n/a"), json!(1), r"C:\lost.exe", r"C:\lost.exe"),
            process(json!(2), json!(1), r"C:\b.exe", r"C:\b.exe"),
            json!("not an object"),
            json!({"process_id": 3}),
        ]));
        let section = tree(&[sub]);
        assert_eq!(shape(section.body.as_ref().unwrap()), [(2, 0)]);
        assert!(tags(&section, FILE_NAME_TAG).contains(&r"C:\lost.exe"));
    }

    #[test]
    fn no_processes_give_no_section() {
        let without_info = SubAnalysisReport::default();
        let empty_list = report(json!([]));
        let mut no_list = report(json!([]));
        no_list.sub.extraction_info = Some(json!({"note": "no processes key"}));
        let subs = [without_info, empty_list, no_list];
        assert_eq!(process_tree_section(&subs, &Safelist::empty()), None);
    }

    #[test]
    fn safelisted_path_is_not_tagged() {
        let safelist = Safelist::from_api(&json!({
            "match": {FILE_NAME_TAG: [r"C:\Windows\System32\svchost.exe"]},
            "regex": {PROCESS_TREE_ID_TAG: [r".*\?sys32\\svchost\.exe"]}
        }))
        .unwrap();
        let section = process_tree_section(&[chain()], &safelist).unwrap();
        assert!(!tags(&section, FILE_NAME_TAG).contains(&r"C:\Windows\System32\svchost.exe"));
        assert_eq!(tags(&section, PROCESS_TREE_ID_TAG).len(), 2);
    }

    #[test]
    fn safelisted_leaf_is_marked() {
        let safelist = Safelist::from_api(&json!({
            "match": {FILE_NAME_TAG: [r"C:\Windows\System32\svchost.exe"]},
            "regex": {}
        }))
        .unwrap();
        let section = process_tree_section(&[chain()], &safelist).unwrap();
        let root = &section.body.as_ref().unwrap()[0];
        let leaf = &root["children"][0]["children"][0];
        assert_eq!(leaf["safelisted"], true);
        assert_eq!(root["safelisted"], false);
    }

    #[test]
    fn deep_chain_is_split_into_branches() {
        let processes: Vec<Value> = (1..=150)
            .map(|pid| process(json!(pid), json!(pid - 1), r"C:\a.exe", r"C:\a.exe"))
            .collect();
        let section = tree(&[report(Value::Array(processes))]);
        let shape = shape(section.body.as_ref().unwrap());
        assert_eq!(shape.len(), 150);
        assert!(shape.iter().all(|(_, depth)| *depth < MAX_TREE_DEPTH));
        let body = serde_json::to_string(section.body.as_ref().unwrap()).unwrap();
        assert!(serde_json::from_str::<Value>(&body).is_ok());
    }
}
