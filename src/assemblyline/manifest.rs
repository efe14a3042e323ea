//! The service manifest (`service_manifest.yml`), which is registered with
//! the service server and supplies every default.

use std::collections::HashMap;
use std::fmt;

use serde_json::{Map, Value};

use crate::config::secret::redact_json;
use crate::config::ConfigError;

/// The manifest shipped with the service, embedded so the binary runs
/// anywhere.
pub const EMBEDDED_MANIFEST: &str = include_str!("../../service_manifest.yml");

/// A parsed manifest after `$SERVICE_TAG` substitution. `Debug` hides
/// `api_key`, because an operator's manifest file may set a real key.
#[derive(Clone)]
pub struct Manifest {
    /// The whole manifest as JSON: the register call's body.
    pub raw: Value,
    pub name: String,
    /// Version with `stable` removed, as the server stores it and expects it
    /// in `Service-Version`.
    pub version: String,
    pub tool_version: Option<String>,
    /// Task timeout in seconds.
    pub timeout: u64,
    /// The `config:` map: defaults of every configuration key.
    pub config: Map<String, Value>,
    /// Submission parameter defaults, by name.
    pub param_defaults: Map<String, Value>,
    /// Heuristic default scores, by id.
    pub heuristic_scores: HashMap<u32, i64>,
}

impl fmt::Debug for Manifest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manifest")
            .field("raw", &redact_json(&self.raw))
            .field("name", &self.name)
            .field("version", &self.version)
            .field("tool_version", &self.tool_version)
            .field("timeout", &self.timeout)
            .field("config", &redact_json(&Value::Object(self.config.clone())))
            .field("param_defaults", &self.param_defaults)
            .field("heuristic_scores", &self.heuristic_scores)
            .finish()
    }
}

impl Manifest {
    /// Parses manifest text, replacing every `$SERVICE_TAG` with `service_tag`.
    pub fn parse(text: &str, service_tag: &str) -> Result<Manifest, ConfigError> {
        let substituted = text.replace("$SERVICE_TAG", service_tag);
        let yaml: serde_yaml::Value = serde_yaml::from_str(&substituted)
            .map_err(|err| ConfigError::InvalidManifest(err.to_string()))?;
        let raw: Value = serde_json::to_value(yaml)
            .map_err(|err| ConfigError::InvalidManifest(err.to_string()))?;
        Manifest::from_json(raw)
    }

    /// The embedded manifest.
    pub fn embedded(service_tag: &str) -> Result<Manifest, ConfigError> {
        Manifest::parse(EMBEDDED_MANIFEST, service_tag)
    }

    fn from_json(raw: Value) -> Result<Manifest, ConfigError> {
        let invalid = |what: &str| ConfigError::InvalidManifest(what.to_string());
        let object = raw.as_object().ok_or_else(|| invalid("not a mapping"))?;
        let text = |key: &str| object.get(key).and_then(Value::as_str).map(str::to_string);
        let name = text("name").ok_or_else(|| invalid("missing name"))?;
        let version = text("version")
            .ok_or_else(|| invalid("missing version"))?
            .replace("stable", "");
        let timeout = object.get("timeout").and_then(Value::as_u64).unwrap_or(60);
        let config = object
            .get("config")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();

        let mut param_defaults = Map::new();
        for param in object
            .get("submission_params")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = param
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("submission parameter without name"))?;
            param_defaults.insert(
                name.to_string(),
                param.get("default").cloned().unwrap_or(Value::Null),
            );
        }

        let mut heuristic_scores = HashMap::new();
        for heuristic in object
            .get("heuristics")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let id = heuristic
                .get("heur_id")
                .and_then(Value::as_u64)
                .ok_or_else(|| invalid("heuristic without numeric heur_id"))?;
            let score = heuristic.get("score").and_then(Value::as_i64).unwrap_or(0);
            heuristic_scores.insert(id as u32, score);
        }

        Ok(Manifest {
            tool_version: text("tool_version"),
            raw,
            name,
            version,
            timeout,
            config,
            param_defaults,
            heuristic_scores,
        })
    }

    /// Submission parameter defaults from a register response's
    /// `service_config.submission_params`, which an administrator may have
    /// changed.
    pub fn server_param_defaults(service_config: &Value) -> Map<String, Value> {
        let mut defaults = Map::new();
        let params = service_config
            .get("submission_params")
            .and_then(Value::as_array);
        for param in params.into_iter().flatten() {
            if let (Some(name), Some(default)) = (
                param.get("name").and_then(Value::as_str),
                param.get("default"),
            ) {
                defaults.insert(name.to_string(), default.clone());
            }
        }
        defaults
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServiceConfig;

    #[test]
    fn embedded_manifest_substitutes_service_tag() {
        let manifest = Manifest::embedded("4.6.0.stable7").unwrap();
        assert_eq!(manifest.name, "IntezerDynamic");
        assert_eq!(manifest.version, "4.6.0.7");
        assert_eq!(manifest.raw["version"], "4.6.0.stable7");
        assert!(!manifest.raw.to_string().contains("$SERVICE_TAG"));
    }

    #[test]
    fn manifest_config_equals_code_defaults() {
        let manifest = Manifest::embedded("4.0.0.dev0").unwrap();
        let from_manifest = ServiceConfig::from_layers([&manifest.config]).unwrap();
        assert_eq!(from_manifest, ServiceConfig::default());
        for (key, _) in crate::config::service::CONFIG_KEYS {
            assert!(
                manifest.config.contains_key(*key),
                "manifest lacks config key {key}"
            );
        }
    }

    #[test]
    fn manifest_declares_heuristics_one_to_twenty_one() {
        let manifest = Manifest::embedded("4.0.0.dev0").unwrap();
        for id in 1..=21 {
            assert!(
                manifest.heuristic_scores.contains_key(&id),
                "heuristic {id} missing"
            );
        }
        assert_eq!(manifest.heuristic_scores[&1], 1000);
        assert_eq!(manifest.heuristic_scores[&16], 50);
    }

    #[test]
    fn manifest_debug_hides_api_key() {
        let text = EMBEDDED_MANIFEST.replace("api_key: sample_api_key", "api_key: real-key-3141");
        let manifest = Manifest::parse(&text, "4.0.0.dev0").unwrap();
        assert_eq!(manifest.config["api_key"], "real-key-3141");

        let printed = format!("{manifest:?}");

        assert!(!printed.contains("real-key-3141"), "{printed}");
        assert!(printed.contains("<redacted>"), "{printed}");
    }

    #[test]
    fn manifest_declares_submission_params() {
        let manifest = Manifest::embedded("4.0.0.dev0").unwrap();
        assert_eq!(manifest.param_defaults["dynamic_submit"], true);
        assert_eq!(manifest.param_defaults["analysis_id"], "");
    }
}
