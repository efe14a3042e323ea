//! A string that never shows in logs, errors or `Debug` output, and the
//! redaction of secrets in configuration JSON.

use std::convert::Infallible;
use std::fmt;
use std::str::FromStr;

use serde_json::Value;

/// Replacement text of a secret in any output.
pub const REDACTED: &str = "<redacted>";

/// Configuration keys whose values are secrets, at any depth of a JSON
/// document: the Intezer key of the manifest's `config:`.
const SECRET_JSON_KEYS: &[&str] = &["api_key"];

/// An API key or password. `Debug` and `Display` print `<redacted>`; the
/// value is only reachable through [`Secret::expose`].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// Returns the value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Lets command-line parsers read a secret directly, so that the parsed
/// arguments never hold it as a plain string.
impl FromStr for Secret {
    type Err = Infallible;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(Secret::new(value))
    }
}

/// Returns a copy of `value` in which the value of every `api_key` field,
/// at any depth, is replaced by `<redacted>`. For `Debug` output of JSON
/// that carries a service configuration.
pub fn redact_json(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, item)| {
                    let item = if SECRET_JSON_KEYS.contains(&key.as_str()) {
                        Value::String(REDACTED.to_string())
                    } else {
                        redact_json(item)
                    };
                    (key.clone(), item)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact_json).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_value() {
        let secret = Secret::new("0123-secret-key");
        assert_eq!(format!("{secret:?}"), "<redacted>");
        assert_eq!(format!("{secret}"), "<redacted>");
        assert_eq!(secret.expose(), "0123-secret-key");
    }

    #[test]
    fn redact_json_replaces_api_key_at_any_depth() {
        let value = serde_json::json!({
            "api_key": "top-level-key",
            "service_config": {"config": {"api_key": "nested-key", "private_only": true}},
            "list": [{"api_key": "listed-key"}]
        });

        let redacted = redact_json(&value);

        let text = redacted.to_string();
        assert!(!text.contains("top-level-key"), "{text}");
        assert!(!text.contains("nested-key"), "{text}");
        assert!(!text.contains("listed-key"), "{text}");
        assert_eq!(redacted["service_config"]["config"]["api_key"], REDACTED);
        assert_eq!(redacted["service_config"]["config"]["private_only"], true);
    }

    #[test]
    fn secret_parses_from_str() {
        let secret: Secret = "cli-key-42".parse().unwrap();
        assert_eq!(secret.expose(), "cli-key-42");
    }
}
