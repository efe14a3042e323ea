//! Intezer Analyze API client and its response types.
//!
//! - `client`: [`IntezerClient`], one method per endpoint, and the retry loop.
//! - `settings`: [`IntezerSettings`] and [`RetryPolicy`].
//! - `transport`: one HTTP exchange with timeouts and the response size cap.
//! - `token`: the shared access token and its renewal.
//! - `retry`: which failures may be retried, and the backoff.
//! - `response`: status codes and bodies mapped to values or [`IntezerError`].
//! - `endpoint`: the endpoint names carried by errors and logs.
//! - `fuzzing`: entry points of the fuzz targets in `fuzz/`, built only
//!   with the `fuzzing` feature.

pub mod client;
pub mod endpoint;
pub mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod response;
mod retry;
mod settings;
mod token;
mod transport;
pub mod types;

pub use client::{
    IntezerClient, IntezerSettings, RetryPolicy, DEFAULT_API_VERSION, DEFAULT_BASE_URL,
};
pub use error::{IntezerError, RateLimitInfo};
pub use types::*;
