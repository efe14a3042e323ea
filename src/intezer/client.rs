//! HTTP client for the Intezer Analyze API.
