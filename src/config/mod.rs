//! Service configuration: the manifest's `config:` keys, the submission
//! parameters of a task, and the container's environment variables.

pub mod environment;
pub mod params;
pub mod secret;
pub mod service;

pub use environment::Environment;
pub use params::SubmissionParams;
pub use secret::Secret;
pub use service::ServiceConfig;

/// A configuration value that cannot be used. Each message names the value
/// and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown configuration key {key:?}; the known keys are: {known}")]
    UnknownKey { key: String, known: String },
    #[error("configuration key {key:?} expects {expected}, got {value}")]
    InvalidType {
        key: String,
        expected: &'static str,
        value: String,
    },
    #[error("invalid override {0:?}: expected KEY=VALUE")]
    MalformedOverride(String),
    #[error(
        "no Intezer API key is configured: set api_key in the service's configuration in \
         Assemblyline (Administration > Services > IntezerDynamic), or pass --set api_key=KEY"
    )]
    MissingApiKey,
    #[error("unknown submission parameter {name:?}; the known parameters are: {known}")]
    UnknownParameter { name: String, known: String },
    #[error("submission parameter {name:?} expects {expected}, got {value}")]
    InvalidParameter {
        name: String,
        expected: &'static str,
        value: String,
    },
    #[error("environment variable {name} has an invalid value {value:?}: expected {expected}")]
    InvalidEnvironment {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("invalid service manifest: {0}")]
    InvalidManifest(String),
    #[error("cannot read {path}: {message}")]
    Unreadable { path: String, message: String },
}
