//! HTTP client for the Intezer Analyze API.
//!
//! NOTE: placeholder so the crate builds on the simulator branch; the client
//! branch replaces this file whole, so take its side when merging.

/// Placeholder for the Intezer API client.
pub struct IntezerClient;

/// Placeholder for the client's settings.
pub struct IntezerSettings;

/// Placeholder for the client's retry policy.
pub struct RetryPolicy;
