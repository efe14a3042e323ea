//! The request-rate part of a quota guard: governor's limiter plus an
//! estimate of its tokens, used to reject a wait that cannot fit a deadline
//! before it starts.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::time::Instant;

use super::settings::QuotaSettings;

type Limiter<C> = RateLimiter<NotKeyed, InMemoryState, C, StateInformationMiddleware>;

/// Result of asking for one token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenCheck {
    Granted,
    /// No token now; the next one is due at this time.
    ReadyAt(Instant),
}

/// Governor's limiter for one key, or nothing when the rate is unlimited.
pub(crate) struct RateGate<C: Clock> {
    bucket: Option<Bucket<C>>,
}

struct Bucket<C: Clock> {
    limiter: Limiter<C>,
    interval: Duration,
    burst: u32,
    estimate: TokenEstimate,
}

/// Tokens the bucket held at `base`, plus one per interval after it, capped
/// at the burst size. Governor does not expose its state without taking a
/// token, so this is rebuilt from the result of each check.
#[derive(Debug, Clone, Copy)]
struct TokenEstimate {
    base: Instant,
    tokens_at_base: u32,
}

impl<C: Clock> RateGate<C> {
    /// Builds the gate; `settings` must have passed validation.
    pub(crate) fn new(settings: &QuotaSettings, clock: C, now: Instant) -> Self {
        let (Some(rate), Some(burst)) = (
            NonZeroU32::new(settings.requests_per_minute),
            NonZeroU32::new(settings.burst),
        ) else {
            return RateGate { bucket: None };
        };
        let quota = Quota::per_minute(rate).allow_burst(burst);
        let limiter = RateLimiter::direct_with_clock(quota, clock).with_middleware();
        RateGate {
            bucket: Some(Bucket {
                limiter,
                interval: quota.replenish_interval(),
                burst: burst.get(),
                estimate: TokenEstimate {
                    base: now,
                    tokens_at_base: burst.get(),
                },
            }),
        }
    }

    /// Takes one token if there is one. `now` must be the same moment as the
    /// limiter clock's current time.
    pub(crate) fn try_take(&mut self, now: Instant) -> TokenCheck {
        let Some(bucket) = &mut self.bucket else {
            return TokenCheck::Granted;
        };
        match bucket.limiter.check() {
            Ok(snapshot) => {
                // The fraction of the next token is unknown, so assume it
                // could arrive right after now.
                let almost_interval = bucket.interval.saturating_sub(Duration::from_nanos(1));
                bucket.estimate = TokenEstimate {
                    base: now.checked_sub(almost_interval).unwrap_or(now),
                    tokens_at_base: snapshot.remaining_burst_capacity(),
                };
                TokenCheck::Granted
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(bucket.limiter.clock().now());
                let ready_at = now + wait;
                bucket.estimate = TokenEstimate {
                    base: ready_at.checked_sub(bucket.interval).unwrap_or(now),
                    tokens_at_base: 0,
                };
                TokenCheck::ReadyAt(ready_at)
            }
        }
    }

    /// Estimates the tokens available at `at`; `None` when unlimited.
    pub(crate) fn tokens_at(&self, at: Instant) -> Option<u32> {
        self.bucket.as_ref().map(|bucket| bucket.tokens_at(at))
    }

    /// Returns the earliest time a waiter with `ahead` waiters before it
    /// could get a token, when no token is taken before `start`. It errs
    /// early, so a wait is only rejected when it surely misses a deadline.
    pub(crate) fn earliest_turn(&self, ahead: usize, start: Instant) -> Instant {
        let Some(bucket) = &self.bucket else {
            return start;
        };
        let needed = u32::try_from(ahead).unwrap_or(u32::MAX).saturating_add(1);
        let available = bucket.tokens_at(start);
        if available >= needed {
            return start;
        }
        if available >= bucket.burst {
            // The bucket is full at `start`, so refills begin when the
            // first of those tokens is taken.
            return start + bucket.interval * (needed - bucket.burst);
        }
        let estimate = bucket.estimate;
        estimate.base + bucket.interval * needed.saturating_sub(estimate.tokens_at_base)
    }
}

impl<C: Clock> Bucket<C> {
    fn tokens_at(&self, at: Instant) -> u32 {
        let elapsed = at.saturating_duration_since(self.estimate.base);
        let refilled = elapsed.as_nanos() / self.interval.as_nanos().max(1);
        let refilled = u32::try_from(refilled).unwrap_or(u32::MAX);
        self.estimate
            .tokens_at_base
            .saturating_add(refilled)
            .min(self.burst)
    }
}
