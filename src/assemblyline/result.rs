//! The result and error documents a service posts, built as a tree of
//! sections and serialised to the flat JSON form the service server expects.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use super::task::Task;

/// Display format of a section's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    Text,
    KeyValue,
    Table,
    ProcessTree,
}

impl BodyFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            BodyFormat::Text => "TEXT",
            BodyFormat::KeyValue => "KEY_VALUE",
            BodyFormat::Table => "TABLE",
            BodyFormat::ProcessTree => "PROCESS_TREE",
        }
    }
}

/// A heuristic raised by a section, with the bare id of the manifest.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Heuristic {
    pub heur_id: u32,
    pub attack_ids: Vec<String>,
    /// Signature name → hit count, in the order they were added.
    pub signatures: Vec<(String, u64)>,
    /// Signature name → score chosen at run time.
    pub score_map: BTreeMap<String, i64>,
}

impl Heuristic {
    pub fn new(heur_id: u32) -> Heuristic {
        Heuristic {
            heur_id,
            ..Heuristic::default()
        }
    }

    /// Adds one hit of `signature`, scored `score` when given.
    pub fn add_signature(&mut self, signature: &str, score: Option<i64>) {
        match self
            .signatures
            .iter_mut()
            .find(|(name, _)| name == signature)
        {
            Some((_, count)) => *count += 1,
            None => self.signatures.push((signature.to_string(), 1)),
        }
        if let Some(score) = score {
            self.score_map.insert(signature.to_string(), score);
        }
    }

    /// The score the server will compute, given the manifest's default
    /// score of this heuristic.
    pub fn score(&self, default_score: i64) -> i64 {
        if self.signatures.is_empty() {
            return default_score;
        }
        self.signatures
            .iter()
            .map(|(name, count)| {
                self.score_map.get(name).copied().unwrap_or(default_score) * *count as i64
            })
            .sum()
    }

    fn to_json(&self, default_score: i64) -> Value {
        let signatures: Map<String, Value> = self
            .signatures
            .iter()
            .map(|(name, count)| (name.clone(), json!(count)))
            .collect();
        json!({
            "heur_id": self.heur_id,
            "attack_ids": self.attack_ids,
            "signatures": signatures,
            "frequency": if self.signatures.is_empty() { 1 } else { 0 },
            "score_map": self.score_map,
            "score": self.score(default_score),
        })
    }
}

/// One result section and its children.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    pub title: String,
    pub format: BodyFormat,
    /// The decoded body: text for TEXT, a JSON value for the other formats.
    pub body: Option<Value>,
    pub body_config: Map<String, Value>,
    pub heuristic: Option<Heuristic>,
    /// Flat tag name (`network.dynamic.ip`) → values, without duplicates.
    pub tags: BTreeMap<String, Vec<String>>,
    pub auto_collapse: bool,
    pub children: Vec<Section>,
}

impl Section {
    pub fn new(title: impl Into<String>, format: BodyFormat) -> Section {
        Section {
            title: title.into(),
            format,
            body: None,
            body_config: Map::new(),
            heuristic: None,
            tags: BTreeMap::new(),
            auto_collapse: false,
            children: Vec::new(),
        }
    }

    pub fn text(title: impl Into<String>, lines: &[String]) -> Section {
        let mut section = Section::new(title, BodyFormat::Text);
        if !lines.is_empty() {
            section.body = Some(Value::String(lines.join("\n")));
        }
        section
    }

    pub fn key_value(title: impl Into<String>, body: Map<String, Value>) -> Section {
        let mut section = Section::new(title, BodyFormat::KeyValue);
        section.body = Some(Value::Object(body));
        section
    }

    /// Adds `value` under the flat tag name `tag` unless it is already there.
    pub fn add_tag(&mut self, tag: &str, value: impl Into<String>) {
        let value = value.into();
        let values = self.tags.entry(tag.to_string()).or_default();
        if !values.contains(&value) {
            values.push(value);
        }
    }

    /// Checks whether this section or a child raises a heuristic.
    pub fn has_heuristic(&self) -> bool {
        self.heuristic.is_some() || self.children.iter().any(Section::has_heuristic)
    }

    fn body_json(&self) -> Value {
        match &self.body {
            None => Value::Null,
            Some(Value::String(text)) if self.format == BodyFormat::Text => {
                if text.is_empty() {
                    Value::Null
                } else {
                    Value::String(text.clone())
                }
            }
            Some(value) => {
                let empty = match value {
                    Value::Object(map) => map.is_empty(),
                    Value::Array(items) => items.is_empty(),
                    Value::String(text) => text.is_empty(),
                    Value::Null => true,
                    _ => false,
                };
                if empty {
                    Value::Null
                } else {
                    Value::String(value.to_string())
                }
            }
        }
    }

    /// Appends this section and its children, depth-first, to `out`.
    fn flatten_into(&self, depth: usize, context: &RenderContext, out: &mut Vec<Value>) {
        let heuristic = self
            .heuristic
            .as_ref()
            .map(|h| h.to_json(context.default_score(h.heur_id)));
        out.push(json!({
            "title_text": self.title,
            "body_format": self.format.as_str(),
            "body": self.body_json(),
            "body_config": self.body_config,
            "classification": context.classification,
            "depth": depth,
            "heuristic": heuristic,
            "tags": nest_tags(&self.tags),
            "zeroize_on_tag_safe": false,
            "auto_collapse": self.auto_collapse,
            "promote_to": Value::Null,
        }));
        for child in &self.children {
            child.flatten_into(depth + 1, context, out);
        }
    }

    fn total_score(&self, context: &RenderContext) -> i64 {
        let own = self
            .heuristic
            .as_ref()
            .map_or(0, |h| h.score(context.default_score(h.heur_id)));
        own + self
            .children
            .iter()
            .map(|child| child.total_score(context))
            .sum::<i64>()
    }
}

/// Turns flat tag names into the nested form services send:
/// `network.dynamic.ip` → `{"network": {"dynamic": {"ip": [...]}}}`.
pub fn nest_tags(tags: &BTreeMap<String, Vec<String>>) -> Value {
    let mut root = Map::new();
    for (name, values) in tags {
        if values.is_empty() {
            continue;
        }
        let mut parts: Vec<&str> = name.split('.').collect();
        let leaf = parts.pop().unwrap_or_default();
        let mut node = &mut root;
        for part in parts {
            let entry = node
                .entry(part.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            node = entry
                .as_object_mut()
                .expect("entry was just made an object");
        }
        node.insert(leaf.to_string(), json!(values));
    }
    Value::Object(root)
}

/// A file the result adds to the submission.
#[derive(Debug, Clone, PartialEq)]
pub struct FileEntry {
    pub name: String,
    pub sha256: String,
    pub description: String,
    pub path: std::path::PathBuf,
}

/// Findings of the service, before they are rendered for one task.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceResult {
    pub sections: Vec<Section>,
    pub extracted: Vec<FileEntry>,
    /// The result is incomplete and must not be cached as final.
    pub partial: bool,
}

impl ServiceResult {
    pub fn is_empty(&self) -> bool {
        self.sections.is_empty() && self.extracted.is_empty()
    }
}

/// Identity of the service in every posted document.
#[derive(Debug, Clone)]
pub struct ServiceIdentity {
    pub name: String,
    pub version: String,
    pub tool_version: Option<String>,
    pub heuristic_scores: HashMap<u32, i64>,
}

struct RenderContext<'a> {
    classification: &'a str,
    scores: &'a HashMap<u32, i64>,
}

impl RenderContext<'_> {
    fn default_score(&self, heur_id: u32) -> i64 {
        self.scores.get(&heur_id).copied().unwrap_or(0)
    }
}

/// Timestamps of one task's processing.
#[derive(Debug, Clone, Copy)]
pub struct Milestones {
    pub started: DateTime<Utc>,
    pub completed: DateTime<Utc>,
}

fn iso(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

impl ServiceResult {
    /// Renders the result JSON posted as `result` for `task`.
    pub fn to_json(
        &self,
        task: &Task,
        identity: &ServiceIdentity,
        milestones: Milestones,
    ) -> Value {
        let context = RenderContext {
            classification: &task.min_classification,
            scores: &identity.heuristic_scores,
        };
        let mut sections = Vec::new();
        for section in &self.sections {
            section.flatten_into(0, &context, &mut sections);
        }
        let score: i64 = self.sections.iter().map(|s| s.total_score(&context)).sum();
        let extracted: Vec<Value> = self
            .extracted
            .iter()
            .map(|file| {
                json!({
                    "name": file.name,
                    "sha256": file.sha256,
                    "description": file.description,
                    "classification": task.min_classification,
                    "is_section_image": false,
                    "is_supplementary": false,
                    "parent_relation": "EXTRACTED",
                    "allow_dynamic_recursion": false,
                })
            })
            .collect();
        json!({
            "classification": task.min_classification,
            "sha256": task.sha256,
            "type": task.file_type,
            "size": task.size,
            "drop_file": false,
            "partial": self.partial,
            "temp_submission_data": {},
            "response": {
                "milestones": {
                    "service_started": iso(milestones.started),
                    "service_completed": iso(milestones.completed),
                },
                "service_name": task.service_name,
                "service_version": identity.version,
                "service_tool_version": identity.tool_version,
                "service_context": service_context(milestones.completed),
                "service_debug_info": Value::Null,
                "extracted": extracted,
                "supplementary": [],
            },
            "result": {"score": score, "sections": sections},
        })
    }
}

/// The `service_context` that makes AL's result cache turn over daily,
/// because Intezer's verdicts change as its database grows.
pub fn service_context(now: DateTime<Utc>) -> String {
    format!("Engine Update: {}", now.format("%Y-%m-%d"))
}

/// Status of a failed task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorStatus {
    /// AL retries the task (at most three attempts in all).
    Recoverable,
    /// AL records the error and does not retry.
    NonRecoverable,
}

impl ErrorStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorStatus::Recoverable => "FAIL_RECOVERABLE",
            ErrorStatus::NonRecoverable => "FAIL_NONRECOVERABLE",
        }
    }
}

/// A task error: its status and a message an analyst can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFailure {
    pub status: ErrorStatus,
    pub message: String,
}

impl TaskFailure {
    pub fn recoverable(message: impl Into<String>) -> TaskFailure {
        TaskFailure {
            status: ErrorStatus::Recoverable,
            message: message.into(),
        }
    }

    pub fn nonrecoverable(message: impl Into<String>) -> TaskFailure {
        TaskFailure {
            status: ErrorStatus::NonRecoverable,
            message: message.into(),
        }
    }

    /// Renders the error JSON posted as `error`. `sha256` and `service_name`
    /// come from the raw task so that tasks which failed to parse still
    /// get an error posted.
    pub fn to_json(&self, sha256: &str, service_name: &str, identity: &ServiceIdentity) -> Value {
        let message = if self.message.trim().is_empty() {
            "unknown error"
        } else {
            &self.message
        };
        json!({
            "response": {
                "message": message,
                "service_name": service_name,
                "service_version": identity.version,
                "service_tool_version": identity.tool_version,
                "service_debug_info": Value::Null,
                "status": self.status.as_str(),
            },
            "sha256": sha256,
            "type": "EXCEPTION",
            "severity": "error",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> ServiceIdentity {
        ServiceIdentity {
            name: "IntezerDynamic".into(),
            version: "4.0.0.dev0".into(),
            tool_version: Some("v2-0".into()),
            heuristic_scores: HashMap::from([(1, 1000), (4, 0), (20, 0)]),
        }
    }

    fn task() -> Task {
        Task::local(
            &"a".repeat(64),
            "sample.exe",
            10,
            "IntezerDynamic",
            Map::new(),
        )
    }

    fn milestones() -> Milestones {
        let now = Utc::now();
        Milestones {
            started: now,
            completed: now,
        }
    }

    #[test]
    fn tags_are_nested() {
        let mut section = Section::new("s", BodyFormat::Text);
        section.add_tag("network.dynamic.ip", "192.0.2.1");
        section.add_tag("network.dynamic.ip", "192.0.2.1");
        section.add_tag("network.dynamic.domain", "example.net");
        let nested = nest_tags(&section.tags);
        assert_eq!(
            nested,
            json!({"network": {"dynamic": {"domain": ["example.net"], "ip": ["192.0.2.1"]}}})
        );
    }

    #[test]
    fn sections_flatten_depth_first_with_depth() {
        let mut root = Section::key_value("root", Map::from_iter([("k".to_string(), json!("v"))]));
        let mut child = Section::text("child", &["line".to_string()]);
        child
            .children
            .push(Section::text("grandchild", &["x".to_string()]));
        root.children.push(child);
        root.children
            .push(Section::text("second", &["y".to_string()]));
        let result = ServiceResult {
            sections: vec![root],
            ..Default::default()
        };
        let json = result.to_json(&task(), &identity(), milestones());
        let sections = json["result"]["sections"].as_array().unwrap();
        let order: Vec<(&str, u64)> = sections
            .iter()
            .map(|s| {
                (
                    s["title_text"].as_str().unwrap(),
                    s["depth"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            order,
            vec![("root", 0), ("child", 1), ("grandchild", 2), ("second", 1)]
        );
        assert_eq!(sections[0]["body"], "{\"k\":\"v\"}");
        assert_eq!(sections[1]["body"], "line");
    }

    #[test]
    fn empty_bodies_become_null() {
        let section = Section::key_value("kv", Map::new());
        let result = ServiceResult {
            sections: vec![section, Section::text("t", &[])],
            ..Default::default()
        };
        let json = result.to_json(&task(), &identity(), milestones());
        assert_eq!(json["result"]["sections"][0]["body"], Value::Null);
        assert_eq!(json["result"]["sections"][1]["body"], Value::Null);
    }

    #[test]
    fn score_uses_manifest_and_score_map() {
        let mut main = Section::text("main", &[]);
        main.heuristic = Some(Heuristic::new(1));
        let mut signature = Section::text("sig", &[]);
        let mut heuristic = Heuristic::new(4);
        heuristic.add_signature("a", Some(250));
        heuristic.add_signature("b", Some(10));
        heuristic.add_signature("b", Some(10));
        signature.heuristic = Some(heuristic);
        main.children.push(signature);
        let result = ServiceResult {
            sections: vec![main],
            ..Default::default()
        };
        let json = result.to_json(&task(), &identity(), milestones());
        assert_eq!(json["result"]["score"], 1000 + 250 + 20);
        let posted = &json["result"]["sections"][1]["heuristic"];
        assert_eq!(posted["signatures"], json!({"a": 1, "b": 2}));
        assert_eq!(posted["frequency"], 0);
    }

    #[test]
    fn response_carries_identity_and_context() {
        let json = ServiceResult::default().to_json(&task(), &identity(), milestones());
        assert_eq!(json["response"]["service_name"], "IntezerDynamic");
        assert_eq!(json["response"]["service_tool_version"], "v2-0");
        assert!(json["response"]["service_context"]
            .as_str()
            .unwrap()
            .starts_with("Engine Update: "));
        assert_eq!(json["result"]["sections"], json!([]));
    }

    #[test]
    fn error_json_has_status_and_message() {
        let failure = TaskFailure::recoverable("Intezer timed out");
        let json = failure.to_json(&"b".repeat(64), "IntezerDynamic", &identity());
        assert_eq!(json["response"]["status"], "FAIL_RECOVERABLE");
        assert_eq!(json["response"]["message"], "Intezer timed out");
        assert_eq!(json["type"], "EXCEPTION");
    }
}
