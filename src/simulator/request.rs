//! Request intake of the Intezer simulator: the API path, the bearer token,
//! a JSON body or multipart form fields, and the endpoint name that the
//! recorded calls use.

use actix_multipart::Multipart;
use actix_web::http::header;
use actix_web::{web, HttpRequest};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Prefix of every API path: the service's base URL ends in `/api/` and it
/// appends the API version `v2-0`.
pub(crate) const API_ROOT: &str = "/api/v2-0";

/// Largest request body read. A larger one gets 413, the status Intezer uses
/// for a file that is too large.
pub(crate) const MAX_BODY_BYTES: usize = 128 * 1024 * 1024;

/// A request, read whole.
#[derive(Debug)]
pub(crate) struct IncomingRequest {
    pub method: String,
    /// Full path without the query string, such as `/api/v2-0/files/<sha>`.
    pub path: String,
    /// Path relative to [`API_ROOT`], such as `/files/<sha>`, or `None` when
    /// the request is outside the API.
    pub api_path: Option<String>,
    /// Token of an `Authorization: Bearer <token>` header.
    pub bearer_token: Option<String>,
    /// The body parsed as JSON, when it is JSON.
    pub body_json: Option<Value>,
    /// Multipart fields in order: text fields as they came, file parts as
    /// `"<filename> (<n> bytes, sha256 <hex>)"`.
    pub form_fields: Vec<(String, String)>,
    /// The multipart part named `file`, when there is one.
    pub upload: Option<UploadedFile>,
    /// Reason the body could not be read, for a 400 or 413 response.
    pub body_problem: Option<BodyProblem>,
}

/// A file part of a multipart upload.
#[derive(Debug, Clone)]
pub(crate) struct UploadedFile {
    pub file_name: String,
    pub bytes: Bytes,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum BodyProblem {
    TooLarge,
    /// The body could not be read, or its multipart form is malformed.
    Invalid(String),
}

impl IncomingRequest {
    /// Reads the whole request body and parses it as multipart form data or
    /// JSON, whichever the request carries.
    pub async fn read(request: &HttpRequest, payload: web::Payload) -> IncomingRequest {
        let path = request.path().to_string();
        let api_path = path
            .strip_prefix(API_ROOT)
            .filter(|rest| rest.starts_with('/'))
            .map(str::to_string);
        let bearer_token = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(|token| token.trim().to_string());

        let mut incoming = IncomingRequest {
            method: request.method().as_str().to_string(),
            path,
            api_path,
            bearer_token,
            body_json: None,
            form_fields: Vec::new(),
            upload: None,
            body_problem: None,
        };

        let body = match payload.to_bytes_limited(MAX_BODY_BYTES).await {
            Ok(Ok(body)) => body,
            Ok(Err(error)) => {
                incoming.body_problem = Some(BodyProblem::Invalid(error.to_string()));
                return incoming;
            }
            Err(_) => {
                incoming.body_problem = Some(BodyProblem::TooLarge);
                return incoming;
            }
        };

        if is_multipart(request) {
            if let Err(problem) = incoming.read_multipart(request, body).await {
                incoming.body_problem = Some(BodyProblem::Invalid(problem));
            }
        } else if !body.is_empty() {
            incoming.body_json = serde_json::from_slice(&body).ok();
        }
        incoming
    }

    async fn read_multipart(&mut self, request: &HttpRequest, body: Bytes) -> Result<(), String> {
        let stream = futures_util::stream::once(async move { Ok(body) });
        let mut multipart = Multipart::new(request.headers(), stream);
        while let Some(field) = multipart.next().await {
            let mut field = field.map_err(|error| error.to_string())?;
            let name = field.name().unwrap_or_default().to_string();
            let file_name = field
                .content_disposition()
                .and_then(|disposition| disposition.get_filename())
                .map(str::to_string);
            let bytes = match field.bytes(MAX_BODY_BYTES).await {
                Ok(Ok(bytes)) => bytes,
                Ok(Err(error)) => return Err(error.to_string()),
                Err(_) => return Err(format!("field {name:?} exceeds {MAX_BODY_BYTES} bytes")),
            };

            match file_name {
                Some(file_name) => {
                    let sha256 = hex::encode(Sha256::digest(&bytes));
                    let summary = format!("{file_name} ({} bytes, sha256 {sha256})", bytes.len());
                    self.form_fields.push((name.clone(), summary));
                    if name == "file" && self.upload.is_none() {
                        self.upload = Some(UploadedFile {
                            file_name,
                            bytes,
                            sha256,
                        });
                    }
                }
                None => {
                    let text = String::from_utf8_lossy(&bytes).into_owned();
                    self.form_fields.push((name, text));
                }
            }
        }
        Ok(())
    }
}

fn is_multipart(request: &HttpRequest) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/")
        })
}

/// An API endpoint the service calls, with the path segments it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint<'a> {
    GetAccessToken,
    IsAvailable,
    CurrentQuotaUsage,
    Analyze,
    LatestAnalysis {
        hash: &'a str,
    },
    Download {
        hash: &'a str,
    },
    AnalysisStatus {
        analysis_id: &'a str,
    },
    Iocs {
        analysis_id: &'a str,
    },
    DynamicTtps {
        analysis_id: &'a str,
    },
    SubAnalyses {
        analysis_id: &'a str,
    },
    CodeReuse {
        analysis_id: &'a str,
        sub_analysis_id: &'a str,
    },
    Metadata {
        analysis_id: &'a str,
        sub_analysis_id: &'a str,
    },
    StringsRequest {
        analysis_id: &'a str,
        sub_analysis_id: &'a str,
    },
    StringsResult {
        analysis_id: &'a str,
        sub_analysis_id: &'a str,
        operation_id: &'a str,
    },
    Unknown,
}

impl<'a> Endpoint<'a> {
    /// Classifies a request by method and path relative to the API root.
    pub fn parse(method: &str, api_path: Option<&'a str>) -> Endpoint<'a> {
        let Some(api_path) = api_path else {
            return Endpoint::Unknown;
        };
        let segments: Vec<&str> = api_path.trim_start_matches('/').split('/').collect();
        if segments.iter().any(|segment| segment.is_empty()) {
            return Endpoint::Unknown;
        }
        match (method, segments.as_slice()) {
            ("POST", ["get-access-token"]) => Endpoint::GetAccessToken,
            ("GET", ["is-available"]) => Endpoint::IsAvailable,
            ("GET", ["current-quota-usage"]) => Endpoint::CurrentQuotaUsage,
            ("POST", ["analyze"]) => Endpoint::Analyze,
            ("GET", ["files", hash]) => Endpoint::LatestAnalysis { hash },
            ("GET", ["files", hash, "download"]) => Endpoint::Download { hash },
            ("GET", ["analyses", analysis_id]) => Endpoint::AnalysisStatus { analysis_id },
            ("GET", ["analyses", analysis_id, "iocs"]) => Endpoint::Iocs { analysis_id },
            ("GET", ["analyses", analysis_id, "dynamic-ttps"]) => {
                Endpoint::DynamicTtps { analysis_id }
            }
            ("GET", ["analyses", analysis_id, "sub-analyses"]) => {
                Endpoint::SubAnalyses { analysis_id }
            }
            ("GET", ["analyses", analysis_id, "sub-analyses", sub_analysis_id, "code-reuse"]) => {
                Endpoint::CodeReuse {
                    analysis_id,
                    sub_analysis_id,
                }
            }
            ("GET", ["analyses", analysis_id, "sub-analyses", sub_analysis_id, "metadata"]) => {
                Endpoint::Metadata {
                    analysis_id,
                    sub_analysis_id,
                }
            }
            ("POST", ["analyses", analysis_id, "sub-analyses", sub_analysis_id, "strings"]) => {
                Endpoint::StringsRequest {
                    analysis_id,
                    sub_analysis_id,
                }
            }
            (
                "GET",
                ["analyses", analysis_id, "sub-analyses", sub_analysis_id, "strings", operation_id],
            ) => Endpoint::StringsResult {
                analysis_id,
                sub_analysis_id,
                operation_id,
            },
            _ => Endpoint::Unknown,
        }
    }

    /// Name used in recorded calls, the same names as the calls recorded
    /// from the Python service: `files.latest-analysis`, `analyses.status`…
    pub fn name(&self) -> &'static str {
        match self {
            Endpoint::GetAccessToken => "get-access-token",
            Endpoint::IsAvailable => "is-available",
            Endpoint::CurrentQuotaUsage => "current-quota-usage",
            Endpoint::Analyze => "analyze",
            Endpoint::LatestAnalysis { .. } => "files.latest-analysis",
            Endpoint::Download { .. } => "files.download",
            Endpoint::AnalysisStatus { .. } => "analyses.status",
            Endpoint::Iocs { .. } => "analyses.iocs",
            Endpoint::DynamicTtps { .. } => "analyses.dynamic-ttps",
            Endpoint::SubAnalyses { .. } => "analyses.sub-analyses",
            Endpoint::CodeReuse { .. } => "sub-analysis.code-reuse",
            Endpoint::Metadata { .. } => "sub-analysis.metadata",
            Endpoint::StringsRequest { .. } => "sub-analysis.strings.request",
            Endpoint::StringsResult { .. } => "sub-analysis.strings.result",
            Endpoint::Unknown => "unknown",
        }
    }

    /// Returns the route template of the endpoint, which the default
    /// scenario records as the route that served a call.
    pub fn route_template(&self) -> Option<&'static str> {
        let template = match self {
            Endpoint::GetAccessToken => "POST /get-access-token",
            Endpoint::IsAvailable => "GET /is-available",
            Endpoint::CurrentQuotaUsage => "GET /current-quota-usage",
            Endpoint::Analyze => "POST /analyze",
            Endpoint::LatestAnalysis { .. } => "GET /files/{hash}",
            Endpoint::Download { .. } => "GET /files/{hash}/download",
            Endpoint::AnalysisStatus { .. } => "GET /analyses/{analysis_id}",
            Endpoint::Iocs { .. } => "GET /analyses/{analysis_id}/iocs",
            Endpoint::DynamicTtps { .. } => "GET /analyses/{analysis_id}/dynamic-ttps",
            Endpoint::SubAnalyses { .. } => "GET /analyses/{analysis_id}/sub-analyses",
            Endpoint::CodeReuse { .. } => {
                "GET /analyses/{analysis_id}/sub-analyses/{sub_analysis_id}/code-reuse"
            }
            Endpoint::Metadata { .. } => {
                "GET /analyses/{analysis_id}/sub-analyses/{sub_analysis_id}/metadata"
            }
            Endpoint::StringsRequest { .. } => {
                "POST /analyses/{analysis_id}/sub-analyses/{sub_analysis_id}/strings"
            }
            Endpoint::StringsResult { .. } => {
                "GET /analyses/{analysis_id}/sub-analyses/{sub_analysis_id}/strings/{operation_id}"
            }
            Endpoint::Unknown => return None,
        };
        Some(template)
    }

    /// Returns whether a request may reach this endpoint without a bearer
    /// token, as on the real API.
    pub fn is_open(&self) -> bool {
        matches!(self, Endpoint::GetAccessToken | Endpoint::IsAvailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_names_follow_recorded_calls() {
        let cases = [
            ("POST", "/get-access-token", "get-access-token"),
            ("GET", "/files/abc", "files.latest-analysis"),
            ("GET", "/files/abc/download", "files.download"),
            ("POST", "/analyze", "analyze"),
            ("GET", "/analyses/a1", "analyses.status"),
            ("GET", "/analyses/a1/iocs", "analyses.iocs"),
            ("GET", "/analyses/a1/dynamic-ttps", "analyses.dynamic-ttps"),
            ("GET", "/analyses/a1/sub-analyses", "analyses.sub-analyses"),
            (
                "GET",
                "/analyses/a1/sub-analyses/root/code-reuse",
                "sub-analysis.code-reuse",
            ),
            (
                "GET",
                "/analyses/a1/sub-analyses/root/metadata",
                "sub-analysis.metadata",
            ),
            (
                "POST",
                "/analyses/a1/sub-analyses/root/strings",
                "sub-analysis.strings.request",
            ),
            (
                "GET",
                "/analyses/a1/sub-analyses/root/strings/op",
                "sub-analysis.strings.result",
            ),
            ("GET", "/is-available", "is-available"),
            ("GET", "/current-quota-usage", "current-quota-usage"),
            ("GET", "/files//download", "unknown"),
            ("DELETE", "/files/abc", "unknown"),
        ];
        for (method, path, expected) in cases {
            assert_eq!(
                Endpoint::parse(method, Some(path)).name(),
                expected,
                "{method} {path}"
            );
        }
    }

    #[test]
    fn path_outside_the_api_is_unknown() {
        assert_eq!(Endpoint::parse("GET", None), Endpoint::Unknown);
    }
}
