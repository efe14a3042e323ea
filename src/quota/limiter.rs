//! The request-rate limiter the HTTP client takes a token from before each
//! request, kept for callers that need no priorities, budget or breakers.

use tokio::time::Instant;

use super::error::QuotaError;
use super::guard::{CallCost, QuotaGuard};
use super::settings::QuotaSettings;

/// Request-rate limiter for one API key: `requests_per_minute` with bursts of
/// up to `burst` requests. A rate of 0 means unlimited, and a burst of 0 is
/// taken as 1. One limiter is shared by every caller, so the rate holds for
/// the whole process whatever the number of tasks in flight.
pub struct Limiter {
    guard: QuotaGuard,
}

impl Limiter {
    pub fn new(requests_per_minute: u32, burst: u32) -> Result<Self, QuotaError> {
        let settings = QuotaSettings {
            requests_per_minute,
            burst: burst.max(1),
            ..QuotaSettings::default()
        };
        Ok(Limiter {
            guard: QuotaGuard::new(settings)?,
        })
    }

    pub fn unlimited() -> Self {
        Limiter {
            guard: QuotaGuard::new(QuotaSettings::default())
                .expect("the default quota settings are valid"),
        }
    }

    /// Waits for one token, with a little jitter so that waiting callers do
    /// not wake together. Fails at once when the token cannot come before
    /// `deadline`.
    pub async fn acquire(&self, deadline: Instant) -> Result<(), QuotaError> {
        let _permit = self.guard.acquire(CallCost::Free, 0, deadline).await?;
        Ok(())
    }

    /// Returns the guard underneath, for its snapshot.
    pub fn guard(&self) -> &QuotaGuard {
        &self.guard
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
        let third = limiter.acquire(deadline).await;
        assert!(
            matches!(third, Err(QuotaError::DeadlineTooClose { .. })),
            "{third:?}"
        );
    }

    #[tokio::test]
    async fn zero_burst_allows_one_request() {
        let limiter = Limiter::new(1, 0).unwrap();
        let deadline = Instant::now() + Duration::from_millis(200);
        assert_eq!(limiter.acquire(deadline).await, Ok(()));
        assert!(limiter.acquire(deadline).await.is_err());
    }
}
