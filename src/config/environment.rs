//! The environment variables an AL service container receives.

use std::path::PathBuf;
use std::time::Duration;

use super::secret::Secret;
use super::ConfigError;

/// Settings read from the container's environment. Built by a pure function
/// of a variable lookup so tests need not touch the process environment.
#[derive(Debug, Clone)]
pub struct Environment {
    /// `SERVICE_API_HOST`: base URL of the service server, no trailing slash.
    pub service_api_host: String,
    /// `SERVICE_API_KEY`, sent as `X-APIKey`.
    pub service_api_key: Secret,
    /// `HOSTNAME`: the container's name, the base of every `Container-ID`.
    pub hostname: String,
    /// `REGISTER_ONLY`: register the manifest and exit.
    pub register_only: bool,
    /// `TASK_REQUEST_TIMEOUT`: the long-poll wait sent in the `Timeout` header.
    pub task_request_timeout: Duration,
    /// `FILE_REQUEST_TIMEOUT`: HTTP timeout of file downloads and uploads.
    pub file_request_timeout: Duration,
    /// `AL_SERVICE_TASK_LIMIT`: exit cleanly after this many tasks.
    pub task_limit: Option<u64>,
    /// `SERVICE_SERVER_ROOT_CA_PATH`: CA bundle for an HTTPS service server.
    pub root_ca_path: Option<PathBuf>,
    /// `TASKING_DIR`: where downloaded files are kept while a task runs.
    pub tasking_dir: PathBuf,
    /// `SERVICE_TAG`: substituted for `$SERVICE_TAG` in the manifest.
    pub service_tag: String,
    /// `QUOTA_REDIS_URL`: replaces the `quota_redis_url` configuration key,
    /// so the Redis password can come from a Kubernetes secret.
    pub quota_redis_url: Option<Secret>,
}

/// Reads a boolean environment value: true, false, 1, 0, yes or no.
fn parse_flag(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

/// The service-server key the reference client uses when none is set.
pub const DEFAULT_SERVICE_API_KEY: &str = "ThisIsARandomAuthKey...ChangeMe!";

/// The version used when `SERVICE_TAG` is unset, as the reference client does.
pub const DEFAULT_SERVICE_TAG: &str = "4.0.0.dev0";

/// The container path where AL mounts its internal root CA.
const AL_ROOT_CA_PATH: &str = "/etc/assemblyline/ssl/al_root-ca.crt";

impl Environment {
    /// Reads the environment through `lookup`, which returns a variable's
    /// value or `None` when it is unset.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Environment, ConfigError> {
        let text = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let seconds = |name: &'static str, default: u64| -> Result<Duration, ConfigError> {
            match text(name) {
                None => Ok(Duration::from_secs(default)),
                Some(value) => value
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s >= 0.0)
                    .map(Duration::from_secs_f64)
                    .ok_or(ConfigError::InvalidEnvironment {
                        name,
                        value,
                        expected: "a number of seconds",
                    }),
            }
        };
        let task_limit =
            match text("AL_SERVICE_TASK_LIMIT") {
                None => None,
                Some(value) if value.trim().eq_ignore_ascii_case("inf") => None,
                Some(value) => Some(value.trim().parse::<u64>().map_err(|_| {
                    ConfigError::InvalidEnvironment {
                        name: "AL_SERVICE_TASK_LIMIT",
                        value: value.clone(),
                        expected: "a whole number of tasks",
                    }
                })?),
            };
        let root_ca_path = match text("SERVICE_SERVER_ROOT_CA_PATH") {
            Some(path) => Some(PathBuf::from(path)),
            None => Some(PathBuf::from(AL_ROOT_CA_PATH)).filter(|path| path.exists()),
        };
        let service_api_host = text("SERVICE_API_HOST")
            .unwrap_or_else(|| "http://localhost:5003".to_string())
            .trim_end_matches('/')
            .to_string();
        let host_is_url = url::Url::parse(&service_api_host)
            .is_ok_and(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some());
        if !host_is_url {
            return Err(ConfigError::InvalidEnvironment {
                name: "SERVICE_API_HOST",
                value: service_api_host,
                expected: "an http or https URL such as http://al-service-server:5003",
            });
        }
        Ok(Environment {
            service_api_host,
            service_api_key: Secret::new(
                text("SERVICE_API_KEY").unwrap_or_else(|| DEFAULT_SERVICE_API_KEY.to_string()),
            ),
            hostname: text("HOSTNAME").unwrap_or_else(|| "dev-service".to_string()),
            register_only: match text("REGISTER_ONLY") {
                None => false,
                Some(value) => parse_flag(&value).ok_or(ConfigError::InvalidEnvironment {
                    name: "REGISTER_ONLY",
                    value,
                    expected: "true or false",
                })?,
            },
            task_request_timeout: seconds("TASK_REQUEST_TIMEOUT", 30)?,
            file_request_timeout: seconds("FILE_REQUEST_TIMEOUT", 180)?,
            task_limit,
            root_ca_path,
            tasking_dir: text("TASKING_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(std::env::temp_dir),
            service_tag: text("SERVICE_TAG").unwrap_or_else(|| DEFAULT_SERVICE_TAG.to_string()),
            quota_redis_url: text("QUOTA_REDIS_URL").map(Secret::new),
        })
    }

    /// Reads the process environment.
    pub fn from_process() -> Result<Environment, ConfigError> {
        Environment::from_lookup(|name| std::env::var(name).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Result<Environment, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Environment::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_match_reference_client() {
        let env = env(&[]).unwrap();
        assert_eq!(env.service_api_host, "http://localhost:5003");
        assert_eq!(env.task_request_timeout, Duration::from_secs(30));
        assert_eq!(env.file_request_timeout, Duration::from_secs(180));
        assert_eq!(env.task_limit, None);
        assert!(!env.register_only);
        assert_eq!(env.service_tag, DEFAULT_SERVICE_TAG);
    }

    #[test]
    fn values_are_read_and_trimmed() {
        let env = env(&[
            ("SERVICE_API_HOST", "https://al:5003/"),
            ("REGISTER_ONLY", "True"),
            ("AL_SERVICE_TASK_LIMIT", "12"),
            ("TASK_REQUEST_TIMEOUT", "0.5"),
            ("HOSTNAME", "alsvc-intezer-1"),
        ])
        .unwrap();
        assert_eq!(env.service_api_host, "https://al:5003");
        assert!(env.register_only);
        assert_eq!(env.task_limit, Some(12));
        assert_eq!(env.task_request_timeout, Duration::from_millis(500));
        assert_eq!(env.hostname, "alsvc-intezer-1");
    }

    #[test]
    fn quota_redis_url_is_read_as_secret() {
        let env = env(&[("QUOTA_REDIS_URL", "redis://:hunter2@redis:6379")]).unwrap();
        let url = env.quota_redis_url.expect("the variable is set");
        assert_eq!(url.expose(), "redis://:hunter2@redis:6379");
        assert_eq!(format!("{url:?}"), "<redacted>");
    }

    #[test]
    fn blank_quota_redis_url_is_unset() {
        let env = env(&[("QUOTA_REDIS_URL", "  ")]).unwrap();
        assert_eq!(env.quota_redis_url, None);
    }

    #[test]
    fn invalid_task_limit_names_variable() {
        let err = env(&[("AL_SERVICE_TASK_LIMIT", "many")]).unwrap_err();
        assert!(err.to_string().contains("AL_SERVICE_TASK_LIMIT"));
        assert!(err.to_string().contains("many"));
    }

    #[test]
    fn register_only_accepts_usual_flags() {
        assert!(env(&[("REGISTER_ONLY", "1")]).unwrap().register_only);
        assert!(!env(&[("REGISTER_ONLY", "False")]).unwrap().register_only);
        let err = env(&[("REGISTER_ONLY", "maybe")]).unwrap_err();
        assert!(err.to_string().contains("REGISTER_ONLY"));
    }

    #[test]
    fn service_api_host_must_be_url() {
        let err = env(&[("SERVICE_API_HOST", "not-a-url")]).unwrap_err();
        assert!(err.to_string().contains("SERVICE_API_HOST"));
        assert!(err.to_string().contains("not-a-url"));
    }

    #[test]
    fn debug_hides_service_api_key() {
        let env = env(&[("SERVICE_API_KEY", "service-key-1618")]).unwrap();
        assert_eq!(env.service_api_key.expose(), "service-key-1618");

        let printed = format!("{env:?}");

        assert!(!printed.contains("service-key-1618"), "{printed}");
        assert!(printed.contains("<redacted>"), "{printed}");
    }

    #[test]
    fn invalid_timeout_names_variable() {
        let err = env(&[("FILE_REQUEST_TIMEOUT", "-3")]).unwrap_err();
        assert!(err.to_string().contains("FILE_REQUEST_TIMEOUT"));
    }
}
