//! Scenario files: scripted responses of a fake Intezer API for one task.
//!
//! A scenario is a JSON object whose `routes` map `"METHOD /path"` (relative
//! to the API root `/api/v2-0`) to one response or to a list served in
//! order. `docs/simulators.md` describes the format. This module parses and
//! checks it at load time, so an error names the file and the wrong key
//! before any request is served.

use std::collections::HashSet;
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

/// Top-level keys a scenario may have. `require_authorization` is our
/// extension of the shared format.
const SCENARIO_KEYS: &[&str] = &[
    "name",
    "description",
    "sample",
    "config",
    "submission_params",
    "expect",
    "routes",
    "require_authorization",
];

/// Keys a response entry may have. `delay_ms` is our extension of the shared
/// format.
const RESPONSE_KEYS: &[&str] = &[
    "status", "body", "text", "file", "headers", "times", "delay_ms",
];

/// Longest `delay_ms` accepted, so that a typo cannot hang a test for hours.
const MAX_DELAY_MS: u64 = 10 * 60 * 1000;

/// One scenario file, checked and ready to replay.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    /// File name under the scenario folder's `samples/`.
    pub sample: Option<String>,
    /// Service configuration overrides (manifest `config:` keys).
    pub config: Map<String, Value>,
    pub submission_params: Map<String, Value>,
    /// One line on what the Python service did with this scenario.
    pub expect: Option<String>,
    /// Routes in file order. The first route that matches a request serves it.
    pub routes: Vec<Route>,
    /// When true, the simulator returns 401 to every request that lacks a
    /// token it issued, except `POST /get-access-token` and
    /// `GET /is-available`. When false it only records whether the token
    /// was there.
    pub require_authorization: bool,
    /// Folder the file came from, which `file` paths and `sample` resolve against.
    pub base_dir: PathBuf,
}

/// One `"METHOD /path"` entry of `routes`.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// HTTP method as written, such as `GET`.
    pub method: String,
    /// Path template as written, relative to the API root, such as
    /// `/files/{sha256}`.
    pub path: String,
    /// Responses in order. The last one repeats forever.
    pub responses: Vec<RouteResponse>,
    segments: Vec<Segment>,
}

/// One scripted response.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteResponse {
    pub status: u16,
    pub body: ResponseBody,
    /// Extra response headers, in file order. A `Content-Type` here replaces
    /// the one implied by the body kind.
    pub headers: Vec<(String, String)>,
    /// How many requests this entry serves before the next entry takes
    /// over. Ignored on the last entry, which repeats forever.
    pub times: u32,
    /// Wait before responding (`delay_ms`).
    pub delay: Duration,
}

/// Body of a scripted response.
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseBody {
    /// No `body`, `text` or `file` key: an empty body.
    Empty,
    /// `body`: sent as `application/json`.
    Json(Value),
    /// `text`: sent as `text/plain; charset=utf-8`.
    Text(String),
    /// `file`: the raw bytes of this file, sent as `application/octet-stream`.
    /// The path is already resolved against the scenario folder.
    File(PathBuf),
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(String),
    Any,
}

/// Error loading a scenario.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("failed to read scenario file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("scenario file {} is not valid JSON: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// `origin` is `scenario file <path>` or `inline scenario`, and `key` is
    /// the path of the bad value, such as `routes["GET /files/{sha}"][1].times`.
    #[error("{origin}: invalid `{key}`: {reason}")]
    Invalid {
        origin: String,
        key: String,
        reason: String,
    },
}

// === impl Scenario ===

impl Scenario {
    /// Reads, parses and checks a scenario file. Duplicate keys anywhere in
    /// the JSON are an error, because the second one would silently replace
    /// the first.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let value =
            parse_rejecting_duplicate_keys(&text).map_err(|source| ScenarioError::Json {
                path: path.to_path_buf(),
                source,
            })?;

        let base_dir = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let default_name = path
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_default();
        let origin = format!("scenario file {}", path.display());
        parse_scenario(value, &base_dir, &origin, default_name)
    }

    /// Checks a scenario already parsed as JSON. `base_dir` is the folder that
    /// `file` paths and `sample` resolve against. A missing `name` becomes
    /// the empty string.
    pub fn from_json(value: Value, base_dir: &Path) -> Result<Scenario, ScenarioError> {
        parse_scenario(value, base_dir, "inline scenario", String::new())
    }

    /// Path of the sample file: `base_dir/samples/<sample>`. The file is not
    /// checked for existence.
    pub fn sample_path(&self) -> Option<PathBuf> {
        self.sample
            .as_ref()
            .map(|sample| self.base_dir.join("samples").join(sample))
    }

    /// Finds the first route, in file order, that matches the request.
    pub fn find_route(&self, method: &str, path: &str) -> Option<(usize, &Route)> {
        self.routes
            .iter()
            .enumerate()
            .find(|(_, route)| route.matches(method, path))
    }
}

// === impl Route ===

impl Route {
    /// Returns the route as written in the file: `"GET /files/{sha256}"`.
    pub fn key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// Returns whether the route serves this request. `path` is relative to the API
    /// root and has no query string. A `{name}` segment matches any single
    /// non-empty segment.
    pub fn matches(&self, method: &str, path: &str) -> bool {
        if method != self.method {
            return false;
        }
        let mut request_segments = path.split('/');
        for segment in &self.segments {
            let Some(actual) = request_segments.next() else {
                return false;
            };
            let matched = match segment {
                Segment::Literal(expected) => expected == actual,
                Segment::Any => !actual.is_empty(),
            };
            if !matched {
                return false;
            }
        }
        request_segments.next().is_none()
    }

    /// Returns the response for the request that finds `served` earlier
    /// requests already served by this route.
    pub fn response_for(&self, served: u64) -> &RouteResponse {
        let mut first_of_next = 0u64;
        let (last, earlier) = self
            .responses
            .split_last()
            .expect("a checked route has at least one response");
        for response in earlier {
            first_of_next += u64::from(response.times);
            if served < first_of_next {
                return response;
            }
        }
        last
    }

    /// Returns whether every request this route matches is also matched by
    /// `earlier`, so that `self` can never serve one when `earlier` comes first.
    fn is_shadowed_by(&self, earlier: &Route) -> bool {
        self.method == earlier.method
            && self.segments.len() == earlier.segments.len()
            && self
                .segments
                .iter()
                .zip(&earlier.segments)
                .all(|(mine, theirs)| match (theirs, mine) {
                    (Segment::Any, _) => true,
                    (Segment::Literal(a), Segment::Literal(b)) => a == b,
                    (Segment::Literal(_), Segment::Any) => false,
                })
    }
}

// === parsing ===

/// Context of one parse, so that every error names where it came from.
struct Checker<'a> {
    origin: &'a str,
    base_dir: &'a Path,
}

impl Checker<'_> {
    fn invalid(&self, key: impl Into<String>, reason: impl Into<String>) -> ScenarioError {
        ScenarioError::Invalid {
            origin: self.origin.to_string(),
            key: key.into(),
            reason: reason.into(),
        }
    }
}

fn parse_scenario(
    value: Value,
    base_dir: &Path,
    origin: &str,
    default_name: String,
) -> Result<Scenario, ScenarioError> {
    let checker = Checker { origin, base_dir };
    let Value::Object(mut top) = value else {
        return Err(checker.invalid(
            "(top level)",
            format!("expected a JSON object, found {}", kind_of(&value)),
        ));
    };

    if let Some(unknown) = top
        .keys()
        .find(|key| !SCENARIO_KEYS.contains(&key.as_str()))
    {
        return Err(checker.invalid(
            unknown.clone(),
            format!("unknown key; expected one of {}", SCENARIO_KEYS.join(", ")),
        ));
    }

    let name = optional_string(&checker, &top, "name")?.unwrap_or(default_name);
    let description = optional_string(&checker, &top, "description")?.unwrap_or_default();
    let sample = optional_string(&checker, &top, "sample")?;
    let expect = optional_string(&checker, &top, "expect")?;
    let config = optional_object(&checker, &mut top, "config")?;
    let submission_params = optional_object(&checker, &mut top, "submission_params")?;
    let require_authorization = match top.get("require_authorization") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(flag)) => *flag,
        Some(other) => {
            return Err(checker.invalid(
                "require_authorization",
                format!("expected true or false, found {}", kind_of(other)),
            ))
        }
    };

    let routes = match top.remove("routes") {
        Some(Value::Object(routes)) => parse_routes(&checker, routes)?,
        Some(other) => {
            return Err(checker.invalid(
                "routes",
                format!(
                    "expected an object of \"METHOD /path\" keys, found {}",
                    kind_of(&other)
                ),
            ))
        }
        None => return Err(checker.invalid("routes", "missing; every scenario needs routes")),
    };

    Ok(Scenario {
        name,
        description,
        sample,
        config,
        submission_params,
        expect,
        routes,
        require_authorization,
        base_dir: base_dir.to_path_buf(),
    })
}

fn parse_routes(
    checker: &Checker,
    routes: Map<String, Value>,
) -> Result<Vec<Route>, ScenarioError> {
    let mut parsed: Vec<Route> = Vec::with_capacity(routes.len());
    for (key, value) in routes {
        let key_path = format!("routes[{key:?}]");
        let (method, path, segments) = parse_route_key(checker, &key, &key_path)?;

        let responses = match value {
            Value::Array(entries) if entries.is_empty() => {
                return Err(checker.invalid(key_path, "the list of responses is empty"))
            }
            Value::Array(entries) => entries
                .into_iter()
                .enumerate()
                .map(|(index, entry)| {
                    parse_response(checker, entry, &format!("{key_path}[{index}]"))
                })
                .collect::<Result<Vec<_>, _>>()?,
            entry => vec![parse_response(checker, entry, &key_path)?],
        };

        let route = Route {
            method,
            path,
            responses,
            segments,
        };
        if let Some(earlier) = parsed.iter().find(|earlier| route.is_shadowed_by(earlier)) {
            return Err(checker.invalid(
                key_path,
                format!(
                    "never matched, because the earlier route {:?} matches every path it matches \
                     and the first match wins; move it above that route",
                    earlier.key()
                ),
            ));
        }
        parsed.push(route);
    }
    Ok(parsed)
}

fn parse_route_key(
    checker: &Checker,
    key: &str,
    key_path: &str,
) -> Result<(String, String, Vec<Segment>), ScenarioError> {
    let Some((method, path)) = key.split_once(' ') else {
        return Err(checker.invalid(
            key_path,
            "expected \"METHOD /path\", such as \"GET /files/{sha256}\"",
        ));
    };
    if method.is_empty() || !method.bytes().all(|byte| byte.is_ascii_uppercase()) {
        return Err(checker.invalid(
            key_path,
            format!("method {method:?} is not an upper-case HTTP method such as GET or POST"),
        ));
    }
    if !path.starts_with('/') || path.contains(char::is_whitespace) {
        return Err(checker.invalid(
            key_path,
            format!("path {path:?} must start with / and contain no spaces"),
        ));
    }
    if path.contains('?') || path.contains('#') {
        return Err(checker.invalid(
            key_path,
            "query strings and fragments are not matched; write the path only",
        ));
    }

    // The leading "/" yields an empty first segment, which matches the empty
    // first segment of every request path.
    let mut segments = Vec::new();
    for segment in path.split('/') {
        let is_template = segment.len() > 2 && segment.starts_with('{') && segment.ends_with('}');
        if is_template && !segment[1..segment.len() - 1].contains(['{', '}']) {
            segments.push(Segment::Any);
        } else if segment.contains(['{', '}']) {
            return Err(checker.invalid(
                key_path,
                format!("segment {segment:?} must be a whole {{name}} or contain no braces"),
            ));
        } else {
            segments.push(Segment::Literal(segment.to_string()));
        }
    }
    Ok((method.to_string(), path.to_string(), segments))
}

fn parse_response(
    checker: &Checker,
    entry: Value,
    key_path: &str,
) -> Result<RouteResponse, ScenarioError> {
    let Value::Object(mut fields) = entry else {
        return Err(checker.invalid(
            key_path,
            format!("expected a response object, found {}", kind_of(&entry)),
        ));
    };
    if let Some(unknown) = fields
        .keys()
        .find(|key| !RESPONSE_KEYS.contains(&key.as_str()))
    {
        return Err(checker.invalid(
            format!("{key_path}.{unknown}"),
            format!("unknown key; expected one of {}", RESPONSE_KEYS.join(", ")),
        ));
    }

    let status = match fields.get("status") {
        None => 200,
        Some(value) => match value.as_u64() {
            Some(code @ 200..=599) => code as u16,
            _ => {
                return Err(checker.invalid(
                    format!("{key_path}.status"),
                    format!("expected an HTTP status from 200 to 599, found {value}"),
                ))
            }
        },
    };

    let body_keys: Vec<&str> = ["body", "text", "file"]
        .into_iter()
        .filter(|key| fields.contains_key(*key))
        .collect();
    if body_keys.len() > 1 {
        return Err(checker.invalid(
            format!("{key_path}.{}", body_keys[1]),
            format!(
                "a response has at most one of body, text and file, found {}",
                body_keys.join(" and ")
            ),
        ));
    }
    let body = if let Some(json) = fields.remove("body") {
        ResponseBody::Json(json)
    } else if let Some(text) = fields.remove("text") {
        match text {
            Value::String(text) => ResponseBody::Text(text),
            other => {
                return Err(checker.invalid(
                    format!("{key_path}.text"),
                    format!("expected a string, found {}", kind_of(&other)),
                ))
            }
        }
    } else if let Some(file) = fields.remove("file") {
        ResponseBody::File(resolve_file(checker, &file, &format!("{key_path}.file"))?)
    } else {
        ResponseBody::Empty
    };

    let headers = match fields.get("headers") {
        None => Vec::new(),
        Some(value) => parse_headers(checker, value, &format!("{key_path}.headers"))?,
    };

    let times = match fields.get("times") {
        None => 1,
        Some(value) => match value.as_u64().and_then(|times| u32::try_from(times).ok()) {
            Some(times) if times >= 1 => times,
            _ => {
                return Err(checker.invalid(
                    format!("{key_path}.times"),
                    format!("expected a whole number of at least 1, found {value}"),
                ))
            }
        },
    };

    let delay = match fields.get("delay_ms") {
        None => Duration::ZERO,
        Some(value) => match value.as_u64() {
            Some(millis) if millis <= MAX_DELAY_MS => Duration::from_millis(millis),
            _ => {
                return Err(checker.invalid(
                    format!("{key_path}.delay_ms"),
                    format!("expected milliseconds from 0 to {MAX_DELAY_MS}, found {value}"),
                ))
            }
        },
    };

    Ok(RouteResponse {
        status,
        body,
        headers,
        times,
        delay,
    })
}

/// Resolves a `file` value against the scenario folder and checks that the
/// file exists, so that a wrong path fails at load time, not mid-test.
fn resolve_file(
    checker: &Checker,
    value: &Value,
    key_path: &str,
) -> Result<PathBuf, ScenarioError> {
    let Some(relative) = value.as_str() else {
        return Err(checker.invalid(
            key_path,
            format!("expected a path string, found {}", kind_of(value)),
        ));
    };
    let relative_path = Path::new(relative);
    let escapes = relative_path
        .components()
        .any(|component| !matches!(component, Component::Normal(_) | Component::CurDir));
    if relative.is_empty() || escapes {
        return Err(checker.invalid(
            key_path,
            format!(
                "{relative:?} must be a path inside the scenario folder, without .. or a leading /"
            ),
        ));
    }
    let resolved = checker.base_dir.join(relative_path);
    if !resolved.is_file() {
        return Err(checker.invalid(key_path, format!("file {} not found", resolved.display())));
    }
    Ok(resolved)
}

fn parse_headers(
    checker: &Checker,
    value: &Value,
    key_path: &str,
) -> Result<Vec<(String, String)>, ScenarioError> {
    let Value::Object(headers) = value else {
        return Err(checker.invalid(
            key_path,
            format!(
                "expected an object of header names to strings, found {}",
                kind_of(value)
            ),
        ));
    };
    let mut parsed = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let header_path = format!("{key_path}[{name:?}]");
        let Some(text) = value.as_str() else {
            return Err(checker.invalid(
                header_path,
                format!("expected a string, found {}", kind_of(value)),
            ));
        };
        if actix_web::http::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(checker.invalid(header_path, "not a valid HTTP header name"));
        }
        if actix_web::http::header::HeaderValue::from_str(text).is_err() {
            return Err(checker.invalid(
                header_path,
                format!("{text:?} is not a valid HTTP header value"),
            ));
        }
        parsed.push((name.clone(), text.to_string()));
    }
    Ok(parsed)
}

fn optional_string(
    checker: &Checker,
    top: &Map<String, Value>,
    key: &str,
) -> Result<Option<String>, ScenarioError> {
    match top.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(other) => {
            Err(checker.invalid(key, format!("expected a string, found {}", kind_of(other))))
        }
    }
}

fn optional_object(
    checker: &Checker,
    top: &mut Map<String, Value>,
    key: &str,
) -> Result<Map<String, Value>, ScenarioError> {
    match top.remove(key) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(object)) => Ok(object),
        Some(other) => Err(checker.invalid(
            key,
            format!("expected an object, found {}", kind_of(&other)),
        )),
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

// === duplicate-key check ===

/// Parses JSON like `serde_json::from_str`, but fails on an object with the
/// same key twice. serde_json keeps only the last of them, which would hide a
/// copied route whose path was not edited.
fn parse_rejecting_duplicate_keys(text: &str) -> Result<Value, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let UniqueKeys(value) = UniqueKeys::deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

struct UniqueKeys(Value);

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(UniqueKeysVisitor)
            .map(UniqueKeys)
    }
}

struct UniqueKeysVisitor;

impl<'de> Visitor<'de> for UniqueKeysVisitor {
    type Value = Value;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_string()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(UniqueKeys(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        let mut seen = HashSet::new();
        while let Some(key) = access.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            let UniqueKeys(value) = access.next_value()?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn route(key: &str) -> Route {
        let scenario =
            Scenario::from_json(json!({ "routes": { key: {} } }), Path::new(".")).unwrap();
        scenario.routes.into_iter().next().unwrap()
    }

    #[test]
    fn template_segment_matches_one_segment() {
        let route = route("GET /files/{sha256}");
        assert!(route.matches("GET", "/files/abc"));
        assert!(!route.matches("GET", "/files/abc/download"));
        assert!(!route.matches("GET", "/files/"));
        assert!(!route.matches("GET", "/files"));
        assert!(!route.matches("POST", "/files/abc"));
    }

    #[test]
    fn literal_route_needs_the_exact_path() {
        let route = route("POST /analyze");
        assert!(route.matches("POST", "/analyze"));
        assert!(!route.matches("POST", "/analyze/"));
        assert!(!route.matches("POST", "/analyzer"));
    }

    #[test]
    fn response_for_counts_times_then_repeats_last() {
        let scenario = Scenario::from_json(
            json!({ "routes": { "GET /x": [
                { "status": 202, "times": 2 },
                { "status": 203 },
                { "status": 200 }
            ] } }),
            Path::new("."),
        )
        .unwrap();
        let statuses: Vec<u16> = (0..6)
            .map(|served| scenario.routes[0].response_for(served).status)
            .collect();
        assert_eq!(statuses, [202, 202, 203, 200, 200, 200]);
    }

    #[test]
    fn duplicate_keys_are_rejected_with_their_name() {
        let error = parse_rejecting_duplicate_keys(r#"{"routes": {"GET /a": {}, "GET /a": {}}}"#)
            .unwrap_err();
        assert!(
            error.to_string().contains("duplicate key \"GET /a\""),
            "{error}"
        );
    }

    #[test]
    fn unique_keys_parse_like_serde_json() {
        let text = r#"{"a": [1, -2, 3.5, "x", null, true], "b": {"c": {}}}"#;
        let expected: Value = serde_json::from_str(text).unwrap();
        assert_eq!(parse_rejecting_duplicate_keys(text).unwrap(), expected);
    }
}
