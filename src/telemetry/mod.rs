//! What the service shows about itself: logs, trace spans, Prometheus
//! metrics, and the health endpoints.

pub mod logging;
pub mod metrics;
pub mod server;
pub mod traces;

pub use logging::{init, LogFormat};
