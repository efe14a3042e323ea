//! A task handed out by the service server. The raw JSON is kept and echoed
//! back unchanged; a typed view holds what the service reads.

use serde_json::{Map, Value};

/// Why a task cannot be processed.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("task JSON is not an object")]
    NotAnObject,
    #[error("task JSON lacks {0}")]
    MissingField(&'static str),
    #[error("task field {field} has an invalid value {value:?}: {expected}")]
    InvalidField {
        field: &'static str,
        value: String,
        expected: &'static str,
    },
}

/// One task: the raw JSON for the echo plus the fields the service uses.
#[derive(Debug, Clone)]
pub struct Task {
    pub raw: Value,
    pub sid: String,
    pub sha256: String,
    pub file_name: String,
    pub file_type: Option<String>,
    pub size: Option<u64>,
    pub service_name: String,
    /// Submission parameters as the task carries them.
    pub service_config: Map<String, Value>,
    pub max_files: u64,
    pub min_classification: String,
    pub priority: i64,
    pub ttl: u64,
}

/// Whether `text` is a SHA-256 in lowercase hex.
pub fn is_sha256(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Task {
    pub fn parse(raw: Value) -> Result<Task, TaskError> {
        let object = raw.as_object().ok_or(TaskError::NotAnObject)?;
        let text = |field: &'static str| -> Result<String, TaskError> {
            object
                .get(field)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or(TaskError::MissingField(field))
        };
        let fileinfo = object
            .get("fileinfo")
            .and_then(Value::as_object)
            .ok_or(TaskError::MissingField("fileinfo"))?;
        let sha256 = fileinfo
            .get("sha256")
            .and_then(Value::as_str)
            .ok_or(TaskError::MissingField("fileinfo.sha256"))?
            .to_string();
        if !is_sha256(&sha256) {
            return Err(TaskError::InvalidField {
                field: "fileinfo.sha256",
                value: sha256.chars().take(80).collect(),
                expected: "64 lowercase hexadecimal characters",
            });
        }
        let service_config = match object.get("service_config") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(map)) => map.clone(),
            Some(other) => {
                return Err(TaskError::InvalidField {
                    field: "service_config",
                    value: other.to_string().chars().take(80).collect(),
                    expected: "an object of submission parameters",
                })
            }
        };
        let sid = text("sid")?;
        let service_name = text("service_name")?;
        let file_name = object
            .get("filename")
            .and_then(Value::as_str)
            .filter(|name| !name.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| sha256.clone());
        Ok(Task {
            sid,
            file_name,
            file_type: fileinfo
                .get("type")
                .and_then(Value::as_str)
                .map(str::to_string),
            size: fileinfo.get("size").and_then(Value::as_u64),
            service_name,
            service_config,
            max_files: object
                .get("max_files")
                .and_then(Value::as_u64)
                .unwrap_or(500),
            min_classification: object
                .get("min_classification")
                .and_then(Value::as_str)
                .unwrap_or("TLP:C")
                .to_string(),
            priority: object.get("priority").and_then(Value::as_i64).unwrap_or(1),
            ttl: object.get("ttl").and_then(Value::as_u64).unwrap_or(0),
            sha256,
            raw,
        })
    }

    /// The sid and SHA-256 of a task that failed to parse, for logs and for
    /// the error posted back. Values that are not strings come back empty.
    pub fn identity_of(raw: &Value) -> (String, String) {
        let sid = raw
            .get("sid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let sha256 = raw
            .pointer("/fileinfo/sha256")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        (sid, sha256)
    }

    /// Builds the task JSON that AL would send for a local file, for `scan`.
    pub fn local(
        sha256: &str,
        file_name: &str,
        size: u64,
        service_name: &str,
        params: Map<String, Value>,
    ) -> Task {
        let raw = serde_json::json!({
            "sid": format!("local-{}", &sha256[..16]),
            "metadata": {},
            "min_classification": "TLP:C",
            "fileinfo": {"sha256": sha256, "size": size, "type": "unknown", "magic": "", "md5": "", "sha1": ""},
            "filename": file_name,
            "service_name": service_name,
            "service_config": params,
            "depth": 0,
            "max_files": 500,
            "ttl": 0,
            "priority": 1,
        });
        Task::parse(raw).expect("a locally built task is valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task_json() -> Value {
        json!({
            "sid": "5aRt3LmQx8VbN2cKp0ZyWe",
            "fileinfo": {"sha256": "28e1d4e21fc452b3bf7c0d5058ed2a01325c376a9ec7585fa54b223c15574711", "size": 73802, "type": "executable/windows/pe32"},
            "filename": "invoice.exe",
            "service_name": "IntezerDynamic",
            "service_config": {"dynamic_submit": false},
            "max_files": 100,
            "min_classification": "TLP:C",
            "priority": 150,
            "future_field": {"kept": true}
        })
    }

    #[test]
    fn parse_reads_fields_and_keeps_raw() {
        let task = Task::parse(task_json()).unwrap();
        assert_eq!(task.sid, "5aRt3LmQx8VbN2cKp0ZyWe");
        assert_eq!(task.file_name, "invoice.exe");
        assert_eq!(task.max_files, 100);
        assert_eq!(task.priority, 150);
        assert_eq!(task.raw["future_field"]["kept"], true);
    }

    #[test]
    fn uppercase_sha256_is_rejected() {
        let mut raw = task_json();
        raw["fileinfo"]["sha256"] =
            json!("28E1D4E21FC452B3BF7C0D5058ED2A01325C376A9EC7585FA54B223C15574711");
        let err = Task::parse(raw).unwrap_err();
        assert!(err.to_string().contains("fileinfo.sha256"));
    }

    #[test]
    fn missing_sid_is_named() {
        let mut raw = task_json();
        raw.as_object_mut().unwrap().remove("sid");
        assert!(Task::parse(raw).unwrap_err().to_string().contains("sid"));
    }

    #[test]
    fn missing_fileinfo_is_named() {
        let mut raw = task_json();
        raw.as_object_mut().unwrap().remove("fileinfo");
        assert!(Task::parse(raw)
            .unwrap_err()
            .to_string()
            .contains("fileinfo"));
    }
}
