//! The request-rate limiter that guards one Intezer API key.
//!
//! One [`Limiter`] is shared by every actor that calls Intezer, so the
//! configured rate holds for the whole process whatever the number of tasks
//! in flight. Waiting is asynchronous and bounded by the caller's deadline.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::DefaultClock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Jitter, Quota, RateLimiter};
use tokio::time::Instant;

/// Why a caller did not get a token.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum QuotaError {
    #[error("the request rate limit leaves no token before the task deadline")]
    DeadlineTooClose,
    #[error("invalid rate limit: {0}")]
    InvalidLimit(String),
}

/// Request-rate limiter for one API key: `requests_per_minute` with bursts of
/// up to `burst` requests. A rate of 0 means unlimited.
pub struct Limiter {
    inner: Option<RateLimiter<NotKeyed, InMemoryState, DefaultClock, NoOpMiddleware>>,
}

impl Limiter {
    pub fn new(requests_per_minute: u32, burst: u32) -> Result<Self, QuotaError> {
        let Some(rate) = NonZeroU32::new(requests_per_minute) else {
            return Ok(Limiter::unlimited());
        };
        let burst = NonZeroU32::new(burst.max(1))
            .ok_or_else(|| QuotaError::InvalidLimit(format!("burst {burst}")))?;
        let quota = Quota::per_minute(rate).allow_burst(burst);
        Ok(Limiter {
            inner: Some(RateLimiter::direct(quota)),
        })
    }

    pub fn unlimited() -> Self {
        Limiter { inner: None }
    }

    /// Waits for one token, with a little jitter so that waiting callers do
    /// not wake together, or fails when the deadline comes first.
    pub async fn acquire(&self, deadline: Instant) -> Result<(), QuotaError> {
        let Some(limiter) = &self.inner else {
            return Ok(());
        };
        let jitter = Jitter::up_to(Duration::from_millis(50));
        tokio::time::timeout_at(deadline, limiter.until_ready_with_jitter(jitter))
            .await
            .map_err(|_| QuotaError::DeadlineTooClose)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unlimited_never_waits() {
        let limiter = Limiter::new(0, 0).unwrap();
        for _ in 0..1000 {
            limiter.acquire(Instant::now()).await.unwrap();
        }
    }

    #[tokio::test]
    async fn burst_then_deadline_error() {
        let limiter = Limiter::new(1, 2).unwrap();
        let deadline = Instant::now() + Duration::from_millis(200);
        assert_eq!(limiter.acquire(deadline).await, Ok(()));
        assert_eq!(limiter.acquire(deadline).await, Ok(()));
        assert_eq!(
            limiter.acquire(deadline).await,
            Err(QuotaError::DeadlineTooClose)
        );
    }
}
