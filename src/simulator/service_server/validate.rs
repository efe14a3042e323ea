//! Checks of register, result and error bodies.
//!
//! The checks follow what the Python and Rust Assemblyline service servers
//! reject (model validation plus the Python server's missing-key failures),
//! so a body the simulator accepts is accepted by both. Each error message
//! starts with the path of the offending field in the posted JSON, e.g.
//! `result.result.sections[2].title_text`.
//!
//! One check goes further than the real servers: a section body in a
//! structured format (anything but TEXT and MEMORY_DUMP) must be JSON text,
//! because the Assemblyline UI cannot render it otherwise.

use serde_json::{Map, Value};

use super::task::is_sha256;

/// Section body formats a result may use. DIVIDER is valid only inside a
/// MULTI body, so it is not listed.
const BODY_FORMATS: &[&str] = &[
    "TEXT",
    "MEMORY_DUMP",
    "GRAPH_DATA",
    "URL",
    "JSON",
    "KEY_VALUE",
    "PROCESS_TREE",
    "TABLE",
    "IMAGE",
    "MULTI",
    "ORDERED_KEY_VALUE",
    "TIMELINE",
    "SANDBOX",
];

/// Body formats whose body is plain text rather than JSON text.
const TEXT_BODY_FORMATS: &[&str] = &["TEXT", "MEMORY_DUMP"];

const PROMOTE_TO: &[&str] = &["SCREENSHOT", "ENTROPY", "URI_PARAMS"];

const ERROR_STATUSES: &[&str] = &["FAIL_RECOVERABLE", "FAIL_NONRECOVERABLE"];

const ERROR_TYPES: &[&str] = &[
    "UNKNOWN",
    "EXCEPTION",
    "MAX DEPTH REACHED",
    "MAX FILES REACHED",
    "MAX RETRY REACHED",
    "SERVICE BUSY",
    "SERVICE DOWN",
    "TASK PRE-EMPTED",
];

const ERROR_SEVERITIES: &[&str] = &["error", "warning"];

const SUBMISSION_PARAM_TYPES: &[&str] = &["str", "int", "list", "bool"];

/// The task a result or error must belong to.
pub(super) struct Expected<'a> {
    pub sha256: &'a str,
    pub service_name: &'a str,
}

// === Field helpers ===

fn as_object<'a>(value: Option<&'a Value>, path: &str) -> Result<&'a Map<String, Value>, String> {
    match value {
        None => Err(format!("{path} is missing")),
        Some(Value::Object(object)) => Ok(object),
        Some(other) => Err(format!("{path} must be an object, got {}", kind(other))),
    }
}

fn as_array<'a>(value: Option<&'a Value>, path: &str) -> Result<&'a Vec<Value>, String> {
    match value {
        None => Err(format!("{path} is missing")),
        Some(Value::Array(items)) => Ok(items),
        Some(other) => Err(format!("{path} must be a list, got {}", kind(other))),
    }
}

fn non_empty_string<'a>(value: Option<&'a Value>, path: &str) -> Result<&'a str, String> {
    match value {
        None => Err(format!("{path} is missing")),
        Some(Value::String(text)) if text.is_empty() => {
            Err(format!("{path} must not be an empty string"))
        }
        Some(Value::String(text)) => Ok(text),
        Some(other) => Err(format!("{path} must be a string, got {}", kind(other))),
    }
}

/// Accepts an absent field, null, or a non-empty string.
fn optional_non_empty_string(value: Option<&Value>, path: &str) -> Result<(), String> {
    match value {
        None | Some(Value::Null) => Ok(()),
        Some(_) => non_empty_string(value, path).map(|_| ()),
    }
}

fn one_of<'a>(value: Option<&'a Value>, path: &str, allowed: &[&str]) -> Result<&'a str, String> {
    let text = non_empty_string(value, path)?;
    if allowed.contains(&text) {
        Ok(text)
    } else {
        Err(format!(
            "{path} must be one of {}, got {text:?}",
            allowed.join(", ")
        ))
    }
}

fn optional_one_of(value: Option<&Value>, path: &str, allowed: &[&str]) -> Result<(), String> {
    match value {
        None | Some(Value::Null) => Ok(()),
        Some(_) => one_of(value, path, allowed).map(|_| ()),
    }
}

fn optional_bool(value: Option<&Value>, path: &str) -> Result<(), String> {
    match value {
        None | Some(Value::Bool(_)) => Ok(()),
        Some(other) => Err(format!("{path} must be a boolean, got {}", kind(other))),
    }
}

fn integer(value: Option<&Value>, path: &str) -> Result<i64, String> {
    match value {
        None => Err(format!("{path} is missing")),
        Some(Value::Number(number)) => number
            .as_i64()
            .ok_or_else(|| format!("{path} must be an integer, got {number}")),
        Some(other) => Err(format!("{path} must be an integer, got {}", kind(other))),
    }
}

fn optional_integer(value: Option<&Value>, path: &str) -> Result<(), String> {
    match value {
        None | Some(Value::Null) => Ok(()),
        Some(_) => integer(value, path).map(|_| ()),
    }
}

/// Accepts an absent field, null, or an object whose values are integers.
fn optional_integer_map(value: Option<&Value>, path: &str) -> Result<(), String> {
    match value {
        None | Some(Value::Null) => Ok(()),
        Some(_) => {
            for (key, item) in as_object(value, path)? {
                integer(Some(item), &format!("{path}.{key}"))?;
            }
            Ok(())
        }
    }
}

fn sha256_field<'a>(value: Option<&'a Value>, path: &str) -> Result<&'a str, String> {
    let text = non_empty_string(value, path)?;
    if is_sha256(text) {
        Ok(text)
    } else {
        Err(format!(
            "{path} must be a SHA-256 in 64 lowercase hex digits, got {text:?}"
        ))
    }
}

/// Names a JSON value's type for error messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

// === Posted task ===

/// Checks the echoed task of a result or error POST and returns its sid.
pub(super) fn check_echoed_task(task: Option<&Value>) -> Result<&str, String> {
    let task = as_object(task, "task")?;
    let sid = non_empty_string(task.get("sid"), "task.sid")?;
    let fileinfo = as_object(task.get("fileinfo"), "task.fileinfo")?;
    sha256_field(fileinfo.get("sha256"), "task.fileinfo.sha256")?;
    non_empty_string(task.get("service_name"), "task.service_name")?;
    Ok(sid)
}

// === Result ===

/// Checks a posted `result` object against the task it belongs to.
/// `freshen` is the POST's flag: with it set, the Python server reads
/// `response.extracted` and `response.supplementary` without defaults.
pub(super) fn check_result(
    result: &Value,
    freshen: bool,
    expected: &Expected,
) -> Result<(), String> {
    let result = as_object(Some(result), "result")?;

    non_empty_string(result.get("classification"), "result.classification")?;
    let sha256 = sha256_field(result.get("sha256"), "result.sha256")?;
    if sha256 != expected.sha256 {
        return Err(format!(
            "result.sha256 {sha256} does not match the task's file {}",
            expected.sha256
        ));
    }
    optional_non_empty_string(result.get("type"), "result.type")?;
    optional_integer(result.get("size"), "result.size")?;
    optional_bool(result.get("drop_file"), "result.drop_file")?;
    optional_bool(result.get("partial"), "result.partial")?;
    if let Some(data) = result.get("temp_submission_data") {
        as_object(Some(data), "result.temp_submission_data")?;
    }

    check_response(result.get("response"), freshen, expected)?;

    let body = as_object(result.get("result"), "result.result")?;
    optional_integer(body.get("score"), "result.result.score")?;
    let sections = as_array(body.get("sections"), "result.result.sections")?;
    for (index, section) in sections.iter().enumerate() {
        check_section(section, &format!("result.result.sections[{index}]"))?;
    }
    Ok(())
}

fn check_response(
    response: Option<&Value>,
    freshen: bool,
    expected: &Expected,
) -> Result<(), String> {
    let response = as_object(response, "result.response")?;

    let service_name =
        non_empty_string(response.get("service_name"), "result.response.service_name")?;
    if service_name != expected.service_name {
        return Err(format!(
            "result.response.service_name {service_name:?} does not match the task's service {:?}",
            expected.service_name
        ));
    }
    non_empty_string(
        response.get("service_version"),
        "result.response.service_version",
    )?;
    for key in [
        "service_tool_version",
        "service_context",
        "service_debug_info",
    ] {
        optional_non_empty_string(response.get(key), &format!("result.response.{key}"))?;
    }

    if let Some(milestones) = response.get("milestones").filter(|value| !value.is_null()) {
        let milestones = as_object(Some(milestones), "result.response.milestones")?;
        for key in ["service_started", "service_completed"] {
            non_empty_string(
                milestones.get(key),
                &format!("result.response.milestones.{key}"),
            )?;
        }
    }

    for list in ["extracted", "supplementary"] {
        let path = format!("result.response.{list}");
        match response.get(list) {
            None if !freshen => {}
            entries => {
                for (index, entry) in as_array(entries, &path)?.iter().enumerate() {
                    check_file_entry(entry, &format!("{path}[{index}]"))?;
                }
            }
        }
    }
    Ok(())
}

fn check_file_entry(entry: &Value, path: &str) -> Result<(), String> {
    let entry = as_object(Some(entry), path)?;
    non_empty_string(entry.get("name"), &format!("{path}.name"))?;
    sha256_field(entry.get("sha256"), &format!("{path}.sha256"))?;
    non_empty_string(entry.get("description"), &format!("{path}.description"))?;
    non_empty_string(
        entry.get("classification"),
        &format!("{path}.classification"),
    )?;
    for key in [
        "is_section_image",
        "is_supplementary",
        "allow_dynamic_recursion",
    ] {
        optional_bool(entry.get(key), &format!("{path}.{key}"))?;
    }
    optional_non_empty_string(
        entry.get("parent_relation"),
        &format!("{path}.parent_relation"),
    )?;
    Ok(())
}

fn check_section(section: &Value, path: &str) -> Result<(), String> {
    let section = as_object(Some(section), path)?;

    non_empty_string(section.get("title_text"), &format!("{path}.title_text"))?;
    let format = one_of(
        section.get("body_format"),
        &format!("{path}.body_format"),
        BODY_FORMATS,
    )?;
    non_empty_string(
        section.get("classification"),
        &format!("{path}.classification"),
    )?;
    let depth = integer(section.get("depth"), &format!("{path}.depth"))?;
    if depth < 0 {
        return Err(format!("{path}.depth must be 0 or more, got {depth}"));
    }
    as_object(section.get("tags"), &format!("{path}.tags"))?;

    check_section_body(section.get("body"), format, &format!("{path}.body"))?;
    match section.get("body_config") {
        None | Some(Value::Null) | Some(Value::Object(_)) => {}
        Some(other) => {
            return Err(format!(
                "{path}.body_config must be an object or null, got {}",
                kind(other)
            ))
        }
    }
    optional_one_of(
        section.get("promote_to"),
        &format!("{path}.promote_to"),
        PROMOTE_TO,
    )?;
    for key in [
        "auto_collapse",
        "zeroize_on_tag_safe",
        "zeroize_on_sig_safe",
    ] {
        optional_bool(section.get(key), &format!("{path}.{key}"))?;
    }

    match section.get("heuristic") {
        None | Some(Value::Null) => Ok(()),
        heuristic => check_section_heuristic(heuristic, &format!("{path}.heuristic")),
    }
}

fn check_section_body(body: Option<&Value>, format: &str, path: &str) -> Result<(), String> {
    match body {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(text)) if text.is_empty() => Err(format!(
            "{path} must not be an empty string (send null for an empty body)"
        )),
        Some(Value::String(text)) => {
            if TEXT_BODY_FORMATS.contains(&format) {
                return Ok(());
            }
            serde_json::from_str::<Value>(text)
                .map(|_| ())
                .map_err(|error| format!("{path} of a {format} section must be JSON text: {error}"))
        }
        Some(other) => Err(format!(
            "{path} must be a string or null, got {} (structured bodies are sent as JSON text)",
            kind(other)
        )),
    }
}

fn check_section_heuristic(heuristic: Option<&Value>, path: &str) -> Result<(), String> {
    let heuristic = as_object(heuristic, path)?;
    match heuristic.get("heur_id") {
        Some(Value::Number(_)) => {}
        Some(Value::String(id)) if !id.is_empty() => {}
        Some(other) => {
            return Err(format!(
                "{path}.heur_id must be an integer or a non-empty string, got {}",
                kind(other)
            ))
        }
        None => return Err(format!("{path}.heur_id is missing")),
    }
    match heuristic.get("attack_ids") {
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        attack_ids => {
            for (index, id) in as_array(attack_ids, &format!("{path}.attack_ids"))?
                .iter()
                .enumerate()
            {
                non_empty_string(Some(id), &format!("{path}.attack_ids[{index}]"))?;
            }
        }
    }
    optional_integer_map(heuristic.get("signatures"), &format!("{path}.signatures"))?;
    optional_integer_map(heuristic.get("score_map"), &format!("{path}.score_map"))?;
    optional_integer(heuristic.get("frequency"), &format!("{path}.frequency"))?;
    optional_integer(heuristic.get("score"), &format!("{path}.score"))?;
    Ok(())
}

/// Returns the SHA-256 of every extracted and supplementary file a result
/// lists. Call it on a result that passed [`check_result`].
pub(super) fn listed_files(result: &Value) -> Vec<String> {
    let mut files = Vec::new();
    for list in ["extracted", "supplementary"] {
        let entries = result["response"][list].as_array().into_iter().flatten();
        for entry in entries {
            if let Some(sha256) = entry["sha256"].as_str() {
                files.push(sha256.to_string());
            }
        }
    }
    files
}

// === Error ===

/// Checks a posted `error` object against the task it belongs to.
pub(super) fn check_error(error: &Value, expected: &Expected) -> Result<(), String> {
    let error = as_object(Some(error), "error")?;

    let response = as_object(error.get("response"), "error.response")?;
    non_empty_string(response.get("message"), "error.response.message")?;
    let service_name =
        non_empty_string(response.get("service_name"), "error.response.service_name")?;
    if service_name != expected.service_name {
        return Err(format!(
            "error.response.service_name {service_name:?} does not match the task's service {:?}",
            expected.service_name
        ));
    }
    non_empty_string(
        response.get("service_version"),
        "error.response.service_version",
    )?;
    optional_non_empty_string(
        response.get("service_tool_version"),
        "error.response.service_tool_version",
    )?;
    optional_non_empty_string(
        response.get("service_debug_info"),
        "error.response.service_debug_info",
    )?;
    one_of(
        response.get("status"),
        "error.response.status",
        ERROR_STATUSES,
    )?;

    let sha256 = sha256_field(error.get("sha256"), "error.sha256")?;
    if sha256 != expected.sha256 {
        return Err(format!(
            "error.sha256 {sha256} does not match the task's file {}",
            expected.sha256
        ));
    }
    one_of(error.get("type"), "error.type", ERROR_TYPES)?;
    optional_one_of(error.get("severity"), "error.severity", ERROR_SEVERITIES)?;
    Ok(())
}

// === Manifest ===

/// Checks a registered manifest: the keys registration needs, the
/// heuristics and the submission parameters.
pub(super) fn check_manifest(manifest: &Value, service_name: &str) -> Result<(), String> {
    let manifest = as_object(Some(manifest), "manifest")?;

    let name = non_empty_string(manifest.get("name"), "name")?;
    if name != service_name {
        return Err(format!(
            "name {name:?} does not match the service name {service_name:?} of this server"
        ));
    }
    non_empty_string(manifest.get("version"), "version")?;
    let docker_config = as_object(manifest.get("docker_config"), "docker_config")?;
    non_empty_string(docker_config.get("image"), "docker_config.image")?;
    as_object(manifest.get("config"), "config")?;
    optional_integer(manifest.get("timeout"), "timeout")?;
    optional_bool(manifest.get("file_required"), "file_required")?;
    optional_non_empty_string(manifest.get("tool_version"), "tool_version")?;

    let heuristics = as_array(manifest.get("heuristics"), "heuristics")?;
    for (index, heuristic) in heuristics.iter().enumerate() {
        check_heuristic_definition(heuristic, name, &format!("heuristics[{index}]"))?;
    }

    if let Some(params) = manifest.get("submission_params") {
        for (index, param) in as_array(Some(params), "submission_params")?
            .iter()
            .enumerate()
        {
            let path = format!("submission_params[{index}]");
            let param = as_object(Some(param), &path)?;
            non_empty_string(param.get("name"), &format!("{path}.name"))?;
            one_of(
                param.get("type"),
                &format!("{path}.type"),
                SUBMISSION_PARAM_TYPES,
            )?;
            for key in ["value", "default"] {
                if !param.contains_key(key) {
                    return Err(format!("{path}.{key} is missing"));
                }
            }
        }
    }
    Ok(())
}

/// Checks one manifest heuristic. Errors read like the real server's
/// `<name> has an invalid heuristic (<id>): ...`.
fn check_heuristic_definition(
    heuristic: &Value,
    service_name: &str,
    path: &str,
) -> Result<(), String> {
    let heuristic = as_object(Some(heuristic), path)?;
    let id = match heuristic.get("heur_id") {
        Some(Value::Number(number)) => number.to_string(),
        Some(Value::String(id)) if !id.is_empty() => id.clone(),
        _ => {
            return Err(format!(
                "{path}.heur_id must be an integer or a non-empty string"
            ))
        }
    };
    let invalid =
        |reason: String| format!("{service_name} has an invalid heuristic ({id}): {reason}");

    non_empty_string(heuristic.get("name"), &format!("{path}.name")).map_err(invalid)?;
    integer(heuristic.get("score"), &format!("{path}.score")).map_err(invalid)?;
    non_empty_string(heuristic.get("filetype"), &format!("{path}.filetype")).map_err(invalid)?;
    non_empty_string(heuristic.get("description"), &format!("{path}.description"))
        .map_err(invalid)?;
    optional_integer(heuristic.get("max_score"), &format!("{path}.max_score")).map_err(invalid)?;
    optional_integer_map(
        heuristic.get("signature_score_map"),
        &format!("{path}.signature_score_map"),
    )
    .map_err(invalid)?;
    Ok(())
}

/// Returns the prefixed ids (`<NAME_UPPER>.<heur_id>`) of heuristics in
/// `manifest` that are new or changed compared with `previous`.
pub(super) fn new_heuristics(manifest: &Value, previous: Option<&Value>) -> Vec<String> {
    let prefix = manifest["name"].as_str().unwrap_or_default().to_uppercase();
    let previous: Vec<&Value> = previous
        .and_then(|old| old["heuristics"].as_array())
        .map(|list| list.iter().collect())
        .unwrap_or_default();

    let mut ids = Vec::new();
    for heuristic in manifest["heuristics"].as_array().into_iter().flatten() {
        if previous.contains(&heuristic) {
            continue;
        }
        let id = match &heuristic["heur_id"] {
            Value::String(id) => id.clone(),
            other => other.to_string(),
        };
        ids.push(format!("{prefix}.{id}"));
    }
    ids
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SHA: &str = "28e1d4e21fc452b3bf7c0d5058ed2a01325c376a9ec7585fa54b223c15574711";

    fn expected() -> Expected<'static> {
        Expected {
            sha256: SHA,
            service_name: "IntezerDynamic",
        }
    }

    fn valid_result() -> Value {
        json!({
            "classification": "TLP:C",
            "sha256": SHA,
            "response": {
                "service_name": "IntezerDynamic",
                "service_version": "4.6.0.1",
                "service_tool_version": null,
                "extracted": [],
                "supplementary": [],
            },
            "result": {"score": 0, "sections": [{
                "title_text": "Intezer analysis report",
                "body_format": "KEY_VALUE",
                "body": "{\"verdict\": \"malicious\"}",
                "classification": "TLP:C",
                "depth": 0,
                "tags": {},
                "heuristic": {"heur_id": 1, "signatures": {}, "frequency": 1},
            }]},
        })
    }

    #[test]
    fn valid_result_passes() {
        assert_eq!(check_result(&valid_result(), true, &expected()), Ok(()));
    }

    /// Changes one field of a valid result.
    type Damage = Box<dyn Fn(&mut Value)>;

    #[test]
    fn result_defects_name_their_field() {
        let cases: Vec<(&str, Damage)> = vec![
            (
                "sections[0].title_text",
                Box::new(|r| r["result"]["sections"][0]["title_text"] = json!("")),
            ),
            (
                "sections[0].body",
                Box::new(|r| r["result"]["sections"][0]["body"] = json!({"a": 1})),
            ),
            (
                "sections[0].body",
                Box::new(|r| r["result"]["sections"][0]["body"] = json!("")),
            ),
            (
                "sections[0].body",
                Box::new(|r| r["result"]["sections"][0]["body"] = json!("not json")),
            ),
            (
                "sections[0].body_format",
                Box::new(|r| r["result"]["sections"][0]["body_format"] = json!("DIVIDER")),
            ),
            (
                "sections[0].tags",
                Box::new(|r| {
                    r["result"]["sections"][0]
                        .as_object_mut()
                        .unwrap()
                        .remove("tags");
                }),
            ),
            (
                "sections[0].depth",
                Box::new(|r| r["result"]["sections"][0]["depth"] = json!(-1)),
            ),
            (
                "sections[0].heuristic.heur_id",
                Box::new(|r| {
                    r["result"]["sections"][0]["heuristic"]
                        .as_object_mut()
                        .unwrap()
                        .remove("heur_id");
                }),
            ),
            (
                "result.sections",
                Box::new(|r| {
                    r["result"].as_object_mut().unwrap().remove("sections");
                }),
            ),
            (
                "service_tool_version",
                Box::new(|r| r["response"]["service_tool_version"] = json!("")),
            ),
            (
                "service_context",
                Box::new(|r| r["response"]["service_context"] = json!("")),
            ),
            (
                "response.service_name",
                Box::new(|r| r["response"]["service_name"] = json!("Other")),
            ),
            (
                "response.extracted",
                Box::new(|r| {
                    r["response"].as_object_mut().unwrap().remove("extracted");
                }),
            ),
            ("result.sha256", Box::new(|r| r["sha256"] = json!("ABC"))),
            (
                "result.classification",
                Box::new(|r| {
                    r.as_object_mut().unwrap().remove("classification");
                }),
            ),
        ];
        for (field, damage) in cases {
            let mut result = valid_result();
            damage(&mut result);
            let message = check_result(&result, true, &expected()).expect_err(field);
            assert!(message.contains(field), "{field}: {message}");
        }
    }

    #[test]
    fn missing_file_lists_allowed_without_freshen() {
        let mut result = valid_result();
        result["response"]
            .as_object_mut()
            .unwrap()
            .remove("extracted");
        assert_eq!(check_result(&result, false, &expected()), Ok(()));
    }

    #[test]
    fn error_defects_name_their_field() {
        let valid = json!({
            "response": {"message": "boom", "service_name": "IntezerDynamic",
                         "service_version": "4.6.0.1", "status": "FAIL_RECOVERABLE"},
            "sha256": SHA, "type": "EXCEPTION",
        });
        assert_eq!(check_error(&valid, &expected()), Ok(()));

        for (pointer, value, field) in [
            ("/response/message", json!(""), "error.response.message"),
            ("/response/status", json!("FAILED"), "error.response.status"),
            ("/type", json!("CRASH"), "error.type"),
            ("/sha256", json!(SHA.replace('2', "3")), "error.sha256"),
        ] {
            let mut error = valid.clone();
            *error.pointer_mut(pointer).unwrap() = value;
            let message = check_error(&error, &expected()).expect_err(field);
            assert!(message.contains(field), "{field}: {message}");
        }
    }

    #[test]
    fn manifest_needs_heuristics_and_docker_config() {
        let manifest = json!({
            "name": "IntezerDynamic", "version": "4.6.0.1", "config": {},
            "docker_config": {"image": "example/intezer:4.6.0.1"},
            "heuristics": [{"heur_id": 1, "name": "Malicious", "score": 1000,
                            "filetype": ".*", "description": "Verdict is malicious"}],
        });
        assert_eq!(check_manifest(&manifest, "IntezerDynamic"), Ok(()));

        let mut without_docker = manifest.clone();
        without_docker
            .as_object_mut()
            .unwrap()
            .remove("docker_config");
        assert!(check_manifest(&without_docker, "IntezerDynamic")
            .unwrap_err()
            .contains("docker_config"));

        let mut bad_heuristic = manifest.clone();
        bad_heuristic["heuristics"][0]["score"] = json!("high");
        assert!(check_manifest(&bad_heuristic, "IntezerDynamic")
            .unwrap_err()
            .starts_with("IntezerDynamic has an invalid heuristic (1)"));

        assert!(check_manifest(&manifest, "Other")
            .unwrap_err()
            .contains("name"));
    }

    #[test]
    fn new_heuristics_lists_only_changed_ones() {
        let old = json!({"name": "IntezerDynamic", "heuristics": [
            {"heur_id": 1, "score": 1000}, {"heur_id": 2, "score": 0}]});
        let new = json!({"name": "IntezerDynamic", "heuristics": [
            {"heur_id": 1, "score": 1000}, {"heur_id": 2, "score": 5}, {"heur_id": "x", "score": 1}]});

        assert_eq!(
            new_heuristics(&new, Some(&old)),
            vec!["INTEZERDYNAMIC.2", "INTEZERDYNAMIC.x"]
        );
        assert_eq!(new_heuristics(&old, None).len(), 2);
    }
}
