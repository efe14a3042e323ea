//! The response the Intezer simulator decided on, before it becomes an
//! actix `HttpResponse`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::http::{header, StatusCode};
use actix_web::HttpResponse;
use bytes::Bytes;
use rand::Rng;
use serde_json::{json, Value};

use super::faults::{self, Fault, Stage};

/// Lifetime stated in `expire_at` of the tokens the simulator issues. The
/// simulator never expires them.
const TOKEN_LIFETIME: Duration = Duration::from_secs(60 * 60);

#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub status: u16,
    pub body: ReplyBody,
    pub headers: Vec<(String, String)>,
    /// Wait before sending the response.
    pub delay: Duration,
    /// Route that served the request, as recorded, or `None` when none matched.
    pub route: Option<String>,
    /// Fault injected in place of, or into, this response.
    pub fault: Option<Fault>,
}

#[derive(Debug, Clone)]
pub(crate) enum ReplyBody {
    Empty,
    Json(Value),
    Text(String),
    Bytes(Bytes),
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            body: ReplyBody::Json(body),
            headers: Vec::new(),
            delay: Duration::ZERO,
            route: None,
            fault: None,
        }
    }

    /// Builds the reply of a fault that replaces the response.
    pub fn fault(fault: Fault) -> Reply {
        Reply {
            status: fault.recorded_status(),
            body: ReplyBody::Empty,
            headers: Vec::new(),
            delay: Duration::ZERO,
            route: None,
            fault: Some(fault),
        }
    }

    /// Builds an error response with the body `{"error": message}`, the
    /// shape Intezer uses.
    pub fn error(status: u16, message: &str) -> Reply {
        Reply::json(status, json!({ "error": message }))
    }

    /// Issues a new random access token that expires in an hour, in the
    /// shape `POST /get-access-token` returns.
    pub fn new_access_token() -> Reply {
        let token = format!("sim-{}", hex::encode(rand::rng().random::<[u8; 16]>()));
        let expire_at = SystemTime::now()
            .checked_add(TOKEN_LIFETIME)
            .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
            .map_or(0.0, |since_epoch| since_epoch.as_secs_f64());
        Reply::json(200, json!({ "result": token, "expire_at": expire_at }))
    }

    pub fn with_route(mut self, route: impl Into<String>) -> Reply {
        self.route = Some(route.into());
        self
    }

    /// Returns the token this response hands out: the string `result` of a
    /// 200 JSON response to `POST /get-access-token`.
    pub fn issued_token(&self) -> Option<&str> {
        match (&self.body, self.status) {
            (ReplyBody::Json(body), 200) => body.get("result").and_then(Value::as_str),
            _ => None,
        }
    }

    /// Builds the HTTP response. Scenario headers come last, so a
    /// `Content-Type` among them replaces the one the body kind implies.
    pub fn into_http_response(mut self) -> HttpResponse {
        let fault = self.fault.take();
        if let Some(fault) = fault.as_ref().filter(|f| f.stage() == Stage::Before) {
            return faults::replacement_response(fault);
        }
        let response = self.into_plain_response();
        match fault {
            Some(fault) => {
                let status = response.status();
                let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
                let body = match actix_web::body::MessageBody::try_into_bytes(response.into_body())
                {
                    Ok(bytes) => bytes,
                    Err(_) => Bytes::new(),
                };
                faults::altered_response(&fault, status, content_type, body)
            }
            None => response,
        }
    }

    fn into_plain_response(self) -> HttpResponse {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut builder = HttpResponse::build(status);
        let content_type = match &self.body {
            ReplyBody::Empty => None,
            ReplyBody::Json(_) => Some("application/json"),
            ReplyBody::Text(_) => Some("text/plain; charset=utf-8"),
            ReplyBody::Bytes(_) => Some("application/octet-stream"),
        };
        if let Some(content_type) = content_type {
            builder.insert_header((header::CONTENT_TYPE, content_type));
        }
        for (name, value) in self.headers {
            builder.insert_header((name, value));
        }

        match self.body {
            ReplyBody::Empty => builder.finish(),
            ReplyBody::Json(value) => builder.body(value.to_string()),
            ReplyBody::Text(text) => builder.body(text),
            ReplyBody::Bytes(bytes) => builder.body(bytes),
        }
    }
}
