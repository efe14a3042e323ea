//! Endpoint names that errors and log events carry in their `endpoint`
//! field. They are stable, so callers and dashboards may match on them.

pub const IS_AVAILABLE: &str = "is-available";
pub const ACCESS_TOKEN: &str = "get-access-token";
pub const LATEST_ANALYSIS: &str = "files.latest-analysis";
pub const DOWNLOAD: &str = "files.download";
pub const ANALYZE: &str = "analyze";
pub const ANALYSIS: &str = "analyses.get";
pub const IOCS: &str = "analyses.iocs";
pub const DYNAMIC_TTPS: &str = "analyses.dynamic-ttps";
pub const SUB_ANALYSES: &str = "analyses.sub-analyses";
pub const CODE_REUSE: &str = "sub-analyses.code-reuse";
pub const METADATA: &str = "sub-analyses.metadata";
pub const STRINGS: &str = "sub-analyses.strings";
pub const QUOTA_USAGE: &str = "current-quota-usage";
