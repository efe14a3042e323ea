//! Response types of the Intezer Analyze API (v2-0) that the service reads.
//!
//! Every type keeps the fields it does not name in `extra`, because the
//! result sections show the report's other keys as they came and Intezer adds
//! fields over time.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The analysis object returned by `GET /files/{sha256}` and by a finished
/// `GET /analyses/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    pub analysis_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_verdict: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis_time: Option<String>,
    /// Every other key of the object, in the order the server sent it.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Analysis {
    /// Rebuilds the object as the server sent it, typed fields included, in
    /// the server's key order where that is known.
    pub fn to_json_map(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        }
    }
}

/// State of one analysis as `GET /analyses/{id}` reports it.
// One value exists per poll and is consumed at once, so boxing the report to
// shrink `Running` would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum AnalysisState {
    /// HTTP 202, or a status such as `queued` or `in_progress`.
    Running { status: String },
    /// Status `succeeded` (or `finished`) with the report.
    Finished(Analysis),
    /// Status `failed`.
    Failed,
}

/// `GET /analyses/{id}/iocs` → `result`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Iocs {
    #[serde(default)]
    pub files: Vec<FileIoc>,
    #[serde(default)]
    pub network: Vec<NetworkIoc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileIoc {
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub verdict: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkIoc {
    pub ioc: String,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One signature of `GET /analyses/{id}/dynamic-ttps` → `result[]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ttp {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Expected in 1..=3; other values are kept so the caller can decide.
    #[serde(default)]
    pub severity: Option<i64>,
    /// Marks: objects with one key each, such as `{"IP": "192.0.2.10"}`.
    #[serde(default)]
    pub data: Vec<Map<String, Value>>,
}

/// One entry of `GET /analyses/{id}/sub-analyses` → `sub_analyses[]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SubAnalysis {
    pub sub_analysis_id: String,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub extraction_info: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `GET /analyses/{id}/sub-analyses/{sub_id}/code-reuse`, returned unwrapped.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CodeReuse {
    #[serde(default)]
    pub gene_count: Option<Value>,
    #[serde(default)]
    pub families: Vec<Map<String, Value>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Finished strings operation: `result.strings[]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StringEntry {
    #[serde(default)]
    pub string_value: Option<String>,
    #[serde(default)]
    pub software_type: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub families: Option<Vec<Map<String, Value>>>,
}

/// How `POST /analyze` ended when it did not return an analysis id.
#[derive(Debug, Clone, PartialEq)]
pub enum SubmitOutcome {
    /// 201 with `result_url` `/analyses/<id>`.
    Created { analysis_id: String },
    /// 409: the same file is already being analysed under this id.
    AlreadyRunning { analysis_id: String },
}

/// `GET /current-quota-usage` → `result`: use of each kind of quota.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QuotaUsage {
    /// Hash lookups, uploads and downloads.
    #[serde(default)]
    pub file_scans: Option<QuotaCounter>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// One kind of quota: the allowance, what is used, and the period.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QuotaCounter {
    #[serde(default)]
    pub quota: Option<u64>,
    #[serde(default)]
    pub usage: Option<u64>,
    /// `daily`, `weekly` or `monthly`.
    #[serde(rename = "type", default)]
    pub period: Option<String>,
}

impl QuotaCounter {
    /// File scans left in the period, when both numbers are known.
    pub fn remaining(&self) -> Option<u64> {
        Some(self.quota?.saturating_sub(self.usage?))
    }
}
