//! Submission parameters: the per-submission switches a user sets in AL.

use serde_json::{Map, Value};

use super::service::{parse_typed, KeyType};
use super::ConfigError;

/// The submission parameters this service declares, with their types.
pub const PARAMETERS: &[(&str, KeyType)] = &[
    ("dynamic_submit", KeyType::Bool),
    ("analysis_id", KeyType::String),
];

/// The submission parameters of one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmissionParams {
    /// Upload the file when Intezer does not know it; only effective when
    /// the administrator's `allow_dynamic_submit` is also true.
    pub dynamic_submit: bool,
    /// Use this Intezer analysis instead of looking the file's hash up.
    pub analysis_id: Option<String>,
}

impl SubmissionParams {
    /// Resolves the parameters from `layers`, lowest precedence first:
    /// manifest defaults, the server's defaults, then the task's values.
    /// Keys this service does not declare are ignored, because AL may send
    /// parameters of other versions.
    pub fn resolve<'a>(
        layers: impl IntoIterator<Item = &'a Map<String, Value>>,
    ) -> Result<SubmissionParams, ConfigError> {
        let mut params = SubmissionParams {
            dynamic_submit: true,
            analysis_id: None,
        };
        for layer in layers {
            if let Some(value) = layer.get("dynamic_submit") {
                params.dynamic_submit = read_bool("dynamic_submit", value)?;
            }
            if let Some(value) = layer.get("analysis_id") {
                params.analysis_id = read_analysis_id(value)?;
            }
        }
        Ok(params)
    }

    /// Parses one `--param KEY=VALUE` from the command line.
    pub fn parse_override(text: &str) -> Result<(String, Value), ConfigError> {
        let (name, raw) = text
            .split_once('=')
            .ok_or_else(|| ConfigError::MalformedOverride(text.to_string()))?;
        let name = name.trim();
        let kind = PARAMETERS
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, kind)| *kind)
            .ok_or_else(|| ConfigError::UnknownParameter {
                name: name.to_string(),
                known: PARAMETERS
                    .iter()
                    .map(|(known, _)| *known)
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let value = parse_typed(name, raw, kind).map_err(|_| ConfigError::InvalidParameter {
            name: name.to_string(),
            expected: kind.name(),
            value: raw.to_string(),
        })?;
        Ok((name.to_string(), value))
    }
}

fn read_bool(name: &str, value: &Value) -> Result<bool, ConfigError> {
    match value {
        Value::Bool(flag) => Ok(*flag),
        // AL's UI stores some booleans as strings.
        Value::String(text) if text.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(text) if text.eq_ignore_ascii_case("false") => Ok(false),
        other => Err(ConfigError::InvalidParameter {
            name: name.to_string(),
            expected: KeyType::Bool.name(),
            value: other.to_string(),
        }),
    }
}

fn read_analysis_id(value: &Value) -> Result<Option<String>, ConfigError> {
    let invalid = |value: &Value| ConfigError::InvalidParameter {
        name: "analysis_id".to_string(),
        expected: "an Intezer analysis id: letters, digits and '-' only",
        value: value.to_string(),
    };
    match value {
        Value::Null => Ok(None),
        Value::String(text) if text.trim().is_empty() => Ok(None),
        Value::String(text) => {
            let id = text.trim();
            let valid =
                id.len() <= 128 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
            if valid {
                Ok(Some(id.to_string()))
            } else {
                Err(invalid(value))
            }
        }
        other => Err(invalid(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn layer(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn task_values_override_defaults() {
        let defaults = layer(json!({"dynamic_submit": true, "analysis_id": ""}));
        let task = layer(json!({"dynamic_submit": false, "analysis_id": "abc-123"}));
        let params = SubmissionParams::resolve([&defaults, &task]).unwrap();
        assert!(!params.dynamic_submit);
        assert_eq!(params.analysis_id.as_deref(), Some("abc-123"));
    }

    #[test]
    fn empty_analysis_id_means_none() {
        let params = SubmissionParams::resolve([&layer(json!({"analysis_id": "  "}))]).unwrap();
        assert_eq!(params.analysis_id, None);
    }

    #[test]
    fn analysis_id_with_path_characters_is_rejected() {
        let err = SubmissionParams::resolve([&layer(json!({"analysis_id": "../x"}))]).unwrap_err();
        assert!(err.to_string().contains("analysis_id"));
    }

    #[test]
    fn wrong_type_for_dynamic_submit_is_rejected() {
        let err = SubmissionParams::resolve([&layer(json!({"dynamic_submit": 3}))]).unwrap_err();
        assert!(err.to_string().contains("dynamic_submit"));
    }

    #[test]
    fn param_override_checks_name_and_type() {
        assert_eq!(
            SubmissionParams::parse_override("dynamic_submit=false")
                .unwrap()
                .1,
            json!(false)
        );
        assert!(SubmissionParams::parse_override("dynamic=false").is_err());
        assert!(SubmissionParams::parse_override("dynamic_submit=maybe").is_err());
    }
}
