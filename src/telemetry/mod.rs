//! What the service shows about itself: logs, Prometheus metrics, and the
//! health endpoints.

pub mod logging;
pub mod metrics;
pub mod server;

pub use logging::{init, LogFormat};
