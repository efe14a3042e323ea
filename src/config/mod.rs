//! Service configuration: the manifest's `config:` keys, submission
//! parameters, and the container environment.

pub mod secret;

pub use secret::Secret;
