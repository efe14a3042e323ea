//! AL's tag safelist: exact values and regular expressions per tag type,
//! from `GET /api/v1/safelist/`. A safelisted value is never tagged.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use regex::Regex;
use serde_json::Value;

/// A safelist answer that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SafelistError {
    #[error("safelist answer is not an object with match and regex maps")]
    InvalidShape,
    #[error("safelist regex for {tag} is invalid: {pattern:?}: {message}")]
    InvalidRegex {
        tag: String,
        pattern: String,
        message: String,
    },
}

/// Safelisted tag values, by tag type (`network.dynamic.domain`).
#[derive(Debug, Clone, Default)]
pub struct Safelist {
    exact: HashMap<String, HashSet<String>>,
    patterns: HashMap<String, Vec<Regex>>,
}

impl Safelist {
    /// An empty safelist: nothing is safelisted.
    pub fn empty() -> Safelist {
        Safelist::default()
    }

    /// Reads the `api_response` of `GET /api/v1/safelist/`:
    /// `{"match": {tag: [values]}, "regex": {tag: [patterns]}}`. Patterns
    /// are anchored at both ends, as AL matches them against whole values.
    pub fn from_api(value: &Value) -> Result<Safelist, SafelistError> {
        let object = value.as_object().ok_or(SafelistError::InvalidShape)?;
        let mut safelist = Safelist::default();
        if let Some(matches) = object.get("match").and_then(Value::as_object) {
            for (tag, values) in matches {
                let set = safelist.exact.entry(tag.clone()).or_default();
                for value in values
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    set.insert(value.to_string());
                }
            }
        }
        if let Some(regexes) = object.get("regex").and_then(Value::as_object) {
            for (tag, patterns) in regexes {
                for pattern in patterns
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    let anchored = format!("^(?:{pattern})$");
                    let regex =
                        Regex::new(&anchored).map_err(|err| SafelistError::InvalidRegex {
                            tag: tag.clone(),
                            pattern: pattern.to_string(),
                            message: err.to_string(),
                        })?;
                    safelist
                        .patterns
                        .entry(tag.clone())
                        .or_default()
                        .push(regex);
                }
            }
        }
        Ok(safelist)
    }

    /// Whether `value` is safelisted for the tag type `tag`.
    pub fn is_safelisted(&self, tag: &str, value: &str) -> bool {
        let exact = self
            .exact
            .get(tag)
            .is_some_and(|values| values.contains(value));
        exact
            || self
                .patterns
                .get(tag)
                .is_some_and(|patterns| patterns.iter().any(|regex| regex.is_match(value)))
    }

    /// Number of exact values and patterns, for logs.
    pub fn len(&self) -> usize {
        self.exact.values().map(HashSet::len).sum::<usize>()
            + self.patterns.values().map(Vec::len).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The current safelist, shared by the service and replaced whenever it is
/// read again from the service server.
#[derive(Debug, Clone, Default)]
pub struct SharedSafelist(Arc<RwLock<Arc<Safelist>>>);

impl SharedSafelist {
    /// The safelist in force now.
    pub fn current(&self) -> Arc<Safelist> {
        self.0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub fn replace(&self, safelist: Safelist) {
        *self
            .0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(safelist);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn safelist() -> Safelist {
        Safelist::from_api(&json!({
            "match": {"network.dynamic.domain": ["safe.example.com"]},
            "regex": {"network.dynamic.ip": ["10\\..*"], "network.dynamic.uri": ["https?://update\\.example\\.org/.*"]}
        }))
        .unwrap()
    }

    #[test]
    fn exact_values_match_whole_value() {
        let safelist = safelist();
        assert!(safelist.is_safelisted("network.dynamic.domain", "safe.example.com"));
        assert!(!safelist.is_safelisted("network.dynamic.domain", "notsafe.example.com"));
        assert!(!safelist.is_safelisted("network.static.domain", "safe.example.com"));
    }

    #[test]
    fn patterns_are_anchored() {
        let safelist = safelist();
        assert!(safelist.is_safelisted("network.dynamic.ip", "10.1.2.3"));
        assert!(!safelist.is_safelisted("network.dynamic.ip", "110.1.2.3"));
        assert!(safelist.is_safelisted("network.dynamic.uri", "https://update.example.org/x"));
    }

    #[test]
    fn invalid_regex_is_named() {
        let err = Safelist::from_api(
            &json!({"match": {}, "regex": {"network.dynamic.ip": ["(unclosed"]}}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("(unclosed"));
    }

    #[test]
    fn non_object_is_rejected() {
        assert!(Safelist::from_api(&json!([])).is_err());
    }
}
