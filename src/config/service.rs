//! The service configuration: one field per key of the manifest's `config:`
//! map, with the same names, so AL administrators and operators of the
//! Python Intezer service recognise every setting.

use serde_json::{Map, Value};

use super::secret::Secret;
use super::ConfigError;

/// The placeholder API key that the manifest ships with.
pub const PLACEHOLDER_API_KEY: &str = "sample_api_key";

/// The Python service's misspelt analysis timeout key. It is accepted so that
/// old configurations still load, and ignored: `analysis_timeout_in_seconds`
/// is the key this service reads.
pub const LEGACY_ANALYSIS_PERIOD_KEY: &str = "analysis_period_in_seconds";

/// The JSON type a configuration key expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Bool,
    Integer,
    String,
}

impl KeyType {
    pub fn name(self) -> &'static str {
        match self {
            KeyType::Bool => "a boolean (true or false)",
            KeyType::Integer => "a non-negative integer",
            KeyType::String => "a string",
        }
    }
}

/// Every key of the manifest's `config:` map and the type it expects.
pub const CONFIG_KEYS: &[(&str, KeyType)] = &[
    ("base_url", KeyType::String),
    ("api_version", KeyType::String),
    ("api_key", KeyType::String),
    ("private_only", KeyType::Bool),
    ("is_on_premise", KeyType::Bool),
    ("retry_forever", KeyType::Bool),
    ("allow_dynamic_submit", KeyType::Bool),
    ("polling_period_in_seconds", KeyType::Integer),
    ("analysis_timeout_in_seconds", KeyType::Integer),
    ("try_to_download_every_file", KeyType::Bool),
    ("download_subfiles", KeyType::Bool),
    ("min_malware_genes", KeyType::Integer),
    ("score_administration_tools", KeyType::Bool),
    ("use_black_box_verdicts", KeyType::Bool),
    ("requests_per_minute", KeyType::Integer),
    ("requests_burst", KeyType::Integer),
    ("fetch_iocs", KeyType::Bool),
    ("fetch_ttps", KeyType::Bool),
    ("fetch_sub_analyses", KeyType::Bool),
    ("fetch_strings", KeyType::Bool),
    ("lookup_cache_seconds", KeyType::Integer),
    ("quota_tier", KeyType::String),
    ("file_scans_per_day", KeyType::Integer),
    ("quota_redis_url", KeyType::String),
    ("quota_redis_fallback_containers", KeyType::Integer),
    ("tls_verify", KeyType::Bool),
    ("ca_cert_path", KeyType::String),
    ("max_response_mb", KeyType::Integer),
];

/// The service configuration after the manifest defaults, the service
/// server's `service_config` and `--set` overrides have been applied.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceConfig {
    /// Base URL of the Intezer API, ending in `/api/`.
    pub base_url: String,
    pub api_version: String,
    pub api_key: Secret,
    /// Hash lookups return only the account's own analyses.
    pub private_only: bool,
    /// On-premise Intezer: no private-only flag and no dynamic TTPs.
    pub is_on_premise: bool,
    /// Retry transient Intezer failures until the task deadline instead of a
    /// few attempts. Never past the deadline.
    pub retry_forever: bool,
    /// Administrator switch: files unknown to Intezer may be uploaded.
    pub allow_dynamic_submit: bool,
    pub polling_period_in_seconds: u64,
    /// Longest wait for an uploaded file's analysis, capped by the task
    /// deadline.
    pub analysis_timeout_in_seconds: u64,
    pub try_to_download_every_file: bool,
    pub download_subfiles: bool,
    pub min_malware_genes: u64,
    pub score_administration_tools: bool,
    pub use_black_box_verdicts: bool,
    /// Intezer requests per minute for this container; 0 means unlimited.
    pub requests_per_minute: u64,
    pub requests_burst: u64,
    /// Read the analysis's IOCs (network IOCs and file verdicts).
    pub fetch_iocs: bool,
    /// Read dynamic TTPs (the "Signatures" section); never on premise.
    pub fetch_ttps: bool,
    /// Read sub-analyses with their code reuse and metadata; turning this
    /// off also stops strings and sub-file downloads.
    pub fetch_sub_analyses: bool,
    /// Read the strings of reported sub-analyses.
    pub fetch_strings: bool,
    /// Seconds a found analysis answers repeated lookups of the same hash
    /// without a call; 0 turns the cache off.
    pub lookup_cache_seconds: u64,
    /// Preset of request rate and daily budget (`config/quota-tiers.yml`):
    /// community, starter, business, enterprise, on_premise or custom.
    /// Values of `requests_per_minute`, `requests_burst` and
    /// `file_scans_per_day` that differ from their defaults override it.
    pub quota_tier: String,
    /// File scans (lookups, uploads, downloads) per UTC day for this
    /// container; 0 means unlimited.
    pub file_scans_per_day: u64,
    /// Redis URL (`redis://` or `rediss://`, password allowed) where every
    /// container using the API key shares its quota; empty keeps the quota
    /// in each container. When set, the quota settings are the whole key's.
    /// The `QUOTA_REDIS_URL` environment variable replaces it.
    pub quota_redis_url: Secret,
    /// Containers that share the key. While Redis is unreachable, each
    /// container enforces this fraction of the key's limits.
    pub quota_redis_fallback_containers: u64,
    /// Verify the Intezer server's TLS certificate. false accepts any
    /// certificate and logs a warning each time the client is built.
    pub tls_verify: bool,
    /// PEM file with extra root certificates for an on-premise Intezer
    /// server with a private CA. Empty adds none.
    pub ca_cert_path: String,
    /// Maximum size in MiB of one Intezer response body, sample downloads
    /// included. At least 1.
    pub max_response_mb: u64,
}

impl Default for ServiceConfig {
    /// The same values as the manifest's `config:` map; a test keeps the two
    /// equal.
    fn default() -> Self {
        ServiceConfig {
            base_url: "https://analyze.intezer.com/api/".to_string(),
            api_version: "v2-0".to_string(),
            api_key: Secret::new(PLACEHOLDER_API_KEY),
            private_only: false,
            is_on_premise: false,
            retry_forever: true,
            allow_dynamic_submit: true,
            polling_period_in_seconds: 5,
            analysis_timeout_in_seconds: 60,
            try_to_download_every_file: false,
            download_subfiles: true,
            min_malware_genes: 5,
            score_administration_tools: true,
            use_black_box_verdicts: true,
            requests_per_minute: 0,
            requests_burst: 10,
            fetch_iocs: true,
            fetch_ttps: true,
            fetch_sub_analyses: true,
            fetch_strings: true,
            lookup_cache_seconds: 600,
            quota_tier: "custom".to_string(),
            file_scans_per_day: 0,
            quota_redis_url: Secret::default(),
            quota_redis_fallback_containers: 1,
            tls_verify: true,
            ca_cert_path: String::new(),
            max_response_mb: 64,
        }
    }
}

impl ServiceConfig {
    /// Builds the configuration from the defaults overlaid by `layers`, in
    /// order (manifest `config:`, then the server's, then overrides).
    pub fn from_layers<'a>(
        layers: impl IntoIterator<Item = &'a Map<String, Value>>,
    ) -> Result<ServiceConfig, ConfigError> {
        let mut config = ServiceConfig::default();
        for layer in layers {
            for (key, value) in layer {
                config.set(key, value)?;
            }
        }
        Ok(config)
    }

    /// Sets one key from a JSON value, checking the key and its type.
    pub fn set(&mut self, key: &str, value: &Value) -> Result<(), ConfigError> {
        if key == LEGACY_ANALYSIS_PERIOD_KEY {
            return Ok(());
        }
        let expected = key_type(key)?;
        let invalid = || ConfigError::InvalidType {
            key: key.to_string(),
            expected: expected.name(),
            value: redact_if_secret(key, value),
        };
        match expected {
            KeyType::Bool => {
                let flag = value.as_bool().ok_or_else(invalid)?;
                *self.bool_field(key) = flag;
            }
            KeyType::Integer => {
                let number = value.as_u64().ok_or_else(invalid)?;
                if key == "max_response_mb" && number == 0 {
                    return Err(ConfigError::InvalidType {
                        key: key.to_string(),
                        expected: "a whole number of MiB, at least 1",
                        value: value.to_string(),
                    });
                }
                *self.integer_field(key) = number;
            }
            KeyType::String => {
                let text = value.as_str().ok_or_else(invalid)?.to_string();
                match key {
                    "base_url" => self.base_url = text,
                    "api_version" => self.api_version = text,
                    "quota_tier" => self.quota_tier = text,
                    "quota_redis_url" => self.quota_redis_url = Secret::new(text),
                    "ca_cert_path" => self.ca_cert_path = text,
                    _ => self.api_key = Secret::new(text),
                }
            }
        }
        Ok(())
    }

    fn bool_field(&mut self, key: &str) -> &mut bool {
        match key {
            "private_only" => &mut self.private_only,
            "is_on_premise" => &mut self.is_on_premise,
            "retry_forever" => &mut self.retry_forever,
            "allow_dynamic_submit" => &mut self.allow_dynamic_submit,
            "try_to_download_every_file" => &mut self.try_to_download_every_file,
            "download_subfiles" => &mut self.download_subfiles,
            "score_administration_tools" => &mut self.score_administration_tools,
            "fetch_iocs" => &mut self.fetch_iocs,
            "fetch_ttps" => &mut self.fetch_ttps,
            "fetch_sub_analyses" => &mut self.fetch_sub_analyses,
            "fetch_strings" => &mut self.fetch_strings,
            "tls_verify" => &mut self.tls_verify,
            _ => &mut self.use_black_box_verdicts,
        }
    }

    fn integer_field(&mut self, key: &str) -> &mut u64 {
        match key {
            "polling_period_in_seconds" => &mut self.polling_period_in_seconds,
            "analysis_timeout_in_seconds" => &mut self.analysis_timeout_in_seconds,
            "min_malware_genes" => &mut self.min_malware_genes,
            "requests_per_minute" => &mut self.requests_per_minute,
            "lookup_cache_seconds" => &mut self.lookup_cache_seconds,
            "file_scans_per_day" => &mut self.file_scans_per_day,
            "quota_redis_fallback_containers" => &mut self.quota_redis_fallback_containers,
            "max_response_mb" => &mut self.max_response_mb,
            _ => &mut self.requests_burst,
        }
    }

    /// Checks that an Intezer API key is set: not missing, not empty, not the
    /// manifest's placeholder.
    pub fn require_api_key(&self) -> Result<(), ConfigError> {
        if self.api_key.is_empty() || self.api_key.expose() == PLACEHOLDER_API_KEY {
            return Err(ConfigError::MissingApiKey);
        }
        Ok(())
    }
}

/// Returns the expected type of `key`, or an error that lists the known keys.
pub fn key_type(key: &str) -> Result<KeyType, ConfigError> {
    CONFIG_KEYS
        .iter()
        .find(|(name, _)| *name == key)
        .map(|(_, kind)| *kind)
        .ok_or_else(|| ConfigError::UnknownKey {
            key: key.to_string(),
            known: CONFIG_KEYS
                .iter()
                .map(|(name, _)| *name)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Parses one `KEY=VALUE` override; the value is read as the key's type.
pub fn parse_override(text: &str) -> Result<(String, Value), ConfigError> {
    let (key, raw) = text
        .split_once('=')
        .ok_or_else(|| ConfigError::MalformedOverride(text.to_string()))?;
    let key = key.trim();
    if key == LEGACY_ANALYSIS_PERIOD_KEY {
        return Ok((key.to_string(), Value::String(raw.to_string())));
    }
    let value = parse_typed(key, raw, key_type(key)?)?;
    Ok((key.to_string(), value))
}

/// Reads `raw` as a value of `expected`; `key` names the setting in errors.
pub fn parse_typed(key: &str, raw: &str, expected: KeyType) -> Result<Value, ConfigError> {
    let invalid = || ConfigError::InvalidType {
        key: key.to_string(),
        expected: expected.name(),
        value: if is_secret_key(key) {
            "<redacted>".to_string()
        } else {
            raw.to_string()
        },
    };
    match expected {
        KeyType::Bool => match raw.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(invalid()),
        },
        KeyType::Integer => raw
            .trim()
            .parse::<u64>()
            .map(Value::from)
            .map_err(|_| invalid()),
        KeyType::String => Ok(Value::String(raw.to_string())),
    }
}

fn redact_if_secret(key: &str, value: &Value) -> String {
    if is_secret_key(key) {
        "<redacted>".to_string()
    } else {
        value.to_string()
    }
}

/// Keys whose values may hold a password: the API key, and the Redis URL.
fn is_secret_key(key: &str) -> bool {
    matches!(key, "api_key" | "quota_redis_url")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn layer(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn later_layers_override_earlier_ones() {
        let manifest = layer(json!({"api_key": "sample_api_key", "polling_period_in_seconds": 5}));
        let server = layer(json!({"api_key": "real-key", "private_only": true}));
        let config = ServiceConfig::from_layers([&manifest, &server]).unwrap();
        assert_eq!(config.api_key.expose(), "real-key");
        assert!(config.private_only);
        assert_eq!(config.polling_period_in_seconds, 5);
    }

    #[test]
    fn unknown_key_is_named_in_error() {
        let err = ServiceConfig::from_layers([&layer(json!({"polling_period": 5}))]).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("polling_period"), "{message}");
        assert!(message.contains("polling_period_in_seconds"), "{message}");
    }

    #[test]
    fn wrong_type_names_key_and_expected_type() {
        let err = ServiceConfig::from_layers([&layer(json!({"private_only": "yes"}))]).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("private_only"), "{message}");
        assert!(message.contains("boolean"), "{message}");
    }

    #[test]
    fn negative_integer_is_rejected() {
        let err = parse_override("min_malware_genes=-1").unwrap_err();
        assert!(err.to_string().contains("min_malware_genes"));
    }

    #[test]
    fn override_parses_by_key_type() {
        assert_eq!(parse_override("private_only=TRUE").unwrap().1, json!(true));
        assert_eq!(
            parse_override("polling_period_in_seconds=7").unwrap().1,
            json!(7)
        );
        assert_eq!(
            parse_override("base_url=http://x/api/").unwrap().1,
            json!("http://x/api/")
        );
        assert!(parse_override("no_equals_sign").is_err());
    }

    #[test]
    fn legacy_analysis_period_key_is_ignored() {
        let config =
            ServiceConfig::from_layers([&layer(json!({"analysis_period_in_seconds": 180}))])
                .unwrap();
        assert_eq!(config.analysis_timeout_in_seconds, 60);
    }

    #[test]
    fn placeholder_or_empty_api_key_is_rejected() {
        let mut config = ServiceConfig::default();
        assert!(matches!(
            config.require_api_key(),
            Err(ConfigError::MissingApiKey)
        ));
        config.api_key = Secret::new("  ");
        assert!(config.require_api_key().is_err());
        config.api_key = Secret::new("0000-real");
        assert!(config.require_api_key().is_ok());
    }

    #[test]
    fn redis_url_is_a_secret() {
        let config = ServiceConfig::from_layers([&layer(
            json!({"quota_redis_url": "redis://:hunter2@127.0.0.1:6379"}),
        )])
        .unwrap();
        assert_eq!(
            config.quota_redis_url.expose(),
            "redis://:hunter2@127.0.0.1:6379"
        );
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn redis_url_never_in_type_error() {
        let err = ServiceConfig::from_layers([&layer(json!({"quota_redis_url": ["hunter2"]}))])
            .unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn tls_and_size_keys_are_read() {
        let config = ServiceConfig::from_layers([&layer(json!({
            "tls_verify": false,
            "ca_cert_path": "/etc/intezer/ca.pem",
            "max_response_mb": 128
        }))])
        .unwrap();
        assert!(!config.tls_verify);
        assert_eq!(config.ca_cert_path, "/etc/intezer/ca.pem");
        assert_eq!(config.max_response_mb, 128);
    }

    #[test]
    fn tls_and_size_defaults() {
        let config = ServiceConfig::default();
        assert!(config.tls_verify);
        assert_eq!(config.ca_cert_path, "");
        assert_eq!(config.max_response_mb, 64);
    }

    #[test]
    fn zero_max_response_mb_is_rejected() {
        let (key, value) = parse_override("max_response_mb=0").unwrap();
        let mut config = ServiceConfig::default();
        let message = config.set(&key, &value).unwrap_err().to_string();
        assert!(message.contains("max_response_mb"), "{message}");
        assert!(message.contains("at least 1"), "{message}");
    }

    #[test]
    fn debug_hides_api_key() {
        let config = ServiceConfig {
            api_key: Secret::new("config-key-2718"),
            ..ServiceConfig::default()
        };

        let printed = format!("{config:?}");

        assert!(!printed.contains("config-key-2718"), "{printed}");
        assert!(printed.contains("<redacted>"), "{printed}");
    }

    #[test]
    fn api_key_value_never_in_type_error() {
        let err = parse_typed("api_key", "secret-value", KeyType::Bool).unwrap_err();
        assert!(!err.to_string().contains("secret-value"));
    }
}
