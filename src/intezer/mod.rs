//! Intezer Analyze API client and its response types.

pub mod client;
pub mod error;
pub mod types;

pub use client::{IntezerClient, IntezerSettings, RetryPolicy};
pub use error::{IntezerError, RateLimitInfo};
pub use types::*;
