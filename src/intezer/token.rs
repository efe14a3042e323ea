//! The access token that authenticates every API call but `is-available`.
//!
//! `POST /get-access-token` exchanges the API key for a bearer token with an
//! optional expiry. The cache fetches it on first use, renews it when less
//! than [`RENEW_WINDOW`] is left, and lets one caller at a time refresh it
//! while the others wait for the result.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::endpoint;
use super::error::IntezerError;
use super::response::{invalid, status_error, take_field, Reply};
use super::retry::{Delivery, Resend};
use super::transport::{ApiRequest, Failure, RequestBody, Sink, Transport};
use crate::config::Secret;

/// A token with less time than this left is renewed before use, as Intezer's
/// Python SDK does.
pub(crate) const RENEW_WINDOW: Duration = Duration::from_secs(20);

pub(super) struct AccessToken {
    bearer: Secret,
    /// Wall-clock expiry from `expire_at`. It is `None` when the server sent
    /// none, and then only a 401 renews the token.
    expires_at: Option<SystemTime>,
}

impl AccessToken {
    pub(super) fn is_fresh(&self, now: SystemTime) -> bool {
        match self.expires_at {
            None => true,
            Some(expires_at) => expires_at
                .duration_since(now)
                .is_ok_and(|left| left >= RENEW_WINDOW),
        }
    }
}

/// The current access token, shared by every call of one client.
pub(crate) struct TokenCache {
    api_key: Secret,
    current: Mutex<Option<AccessToken>>,
}

impl TokenCache {
    pub fn new(api_key: Secret) -> Self {
        TokenCache {
            api_key,
            current: Mutex::new(None),
        }
    }

    /// Returns a token with at least [`RENEW_WINDOW`] left, fetching a new
    /// one first when needed. Waiting for another caller's refresh counts
    /// against `deadline`.
    pub async fn bearer(
        &self,
        transport: &Transport,
        deadline: Instant,
    ) -> Result<Secret, Failure> {
        let mut current = tokio::time::timeout_at(deadline, self.current.lock())
            .await
            .map_err(|_| {
                Failure::not_sent(IntezerError::DeadlineExceeded {
                    endpoint: endpoint::ACCESS_TOKEN,
                })
            })?;
        if let Some(token) = current
            .as_ref()
            .filter(|token| token.is_fresh(SystemTime::now()))
        {
            return Ok(token.bearer.clone());
        }

        let renewing = current.is_some();
        let token = self.fetch(transport, deadline).await?;
        tracing::debug!(
            endpoint = endpoint::ACCESS_TOKEN,
            renewing,
            expires_in_secs = token
                .expires_at
                .and_then(|at| at.duration_since(SystemTime::now()).ok())
                .map(|left| left.as_secs()),
            "Intezer access token fetched"
        );
        let bearer = token.bearer.clone();
        *current = Some(token);
        Ok(bearer)
    }

    /// Drops `rejected` after a 401, unless a concurrent caller already
    /// replaced it, so that the next [`TokenCache::bearer`] fetches a new one.
    pub async fn discard(&self, rejected: &Secret) {
        let mut current = self.current.lock().await;
        if current
            .as_ref()
            .is_some_and(|token| token.bearer == *rejected)
        {
            *current = None;
        }
    }

    async fn fetch(
        &self,
        transport: &Transport,
        deadline: Instant,
    ) -> Result<AccessToken, Failure> {
        let request = ApiRequest {
            endpoint: endpoint::ACCESS_TOKEN,
            method: Method::POST,
            path: "/get-access-token".to_string(),
            body: RequestBody::Json(json!({ "api_key": self.api_key.expose() })),
            sink: Sink::Memory,
            resend: Resend::Idempotent,
        };
        // The caller's request is not sent when the token fails, so every
        // failure here leaves it safe to resend.
        let reply = transport
            .send(&request, None, deadline)
            .await
            .map_err(|failure| Failure::not_sent(failure.error))?;

        let error = match reply.status {
            StatusCode::OK => None,
            StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED => {
                Some(IntezerError::InvalidApiKey {
                    status: reply.status.as_u16(),
                })
            }
            _ => Some(status_error(endpoint::ACCESS_TOKEN, &reply)),
        };
        if let Some(error) = error {
            return Err(Failure {
                error,
                delivery: Delivery::NotSent,
            });
        }

        parse_access_token(&reply).map_err(Failure::not_sent)
    }
}

/// Reads the token and its optional expiry from a 200 response of
/// `POST /get-access-token`.
pub(super) fn parse_access_token(reply: &Reply) -> Result<AccessToken, IntezerError> {
    let mut body = reply.json_object(endpoint::ACCESS_TOKEN)?;
    let bearer: String = take_field(endpoint::ACCESS_TOKEN, &mut body, "result")?;
    if bearer.is_empty() {
        return Err(invalid(endpoint::ACCESS_TOKEN, "empty `result` token"));
    }
    let expires_at = body
        .get("expire_at")
        .and_then(serde_json::Value::as_f64)
        .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
        .and_then(|since_epoch| UNIX_EPOCH.checked_add(since_epoch));
    Ok(AccessToken {
        bearer: Secret::new(bearer),
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token_expiring_in(seconds: u64) -> AccessToken {
        AccessToken {
            bearer: Secret::new("t"),
            expires_at: Some(SystemTime::now() + Duration::from_secs(seconds)),
        }
    }

    #[test]
    fn token_without_expiry_stays_fresh() {
        let token = AccessToken {
            bearer: Secret::new("t"),
            expires_at: None,
        };

        assert!(token.is_fresh(SystemTime::now()));
    }

    #[test]
    fn token_inside_renew_window_is_stale() {
        assert!(!token_expiring_in(19).is_fresh(SystemTime::now()));
    }

    #[test]
    fn token_outside_renew_window_is_fresh() {
        assert!(token_expiring_in(600).is_fresh(SystemTime::now()));
    }

    #[test]
    fn expired_token_is_stale() {
        let token = AccessToken {
            bearer: Secret::new("t"),
            expires_at: Some(SystemTime::now() - Duration::from_secs(5)),
        };

        assert!(!token.is_fresh(SystemTime::now()));
    }
}
