//! Errors of a quota guard: the reason a call was not let through, or an
//! invalid setting.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

/// Why a caller did not get a [`Permit`](super::Permit), or why settings
/// were rejected. The `wait` fields give the time from the moment the error
/// was made to `until` or `ready_at`, because an [`Instant`] cannot be shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    /// The daily file-scan budget is used up until the next 00:00 UTC.
    #[error("quota budget exhausted until {until}")]
    BudgetExhausted { until: DateTime<Utc> },

    /// The wait for a request token would pass the caller's deadline.
    #[error("no request token before the deadline: the earliest is {wait:?} away")]
    DeadlineTooClose { ready_at: Instant, wait: Duration },

    /// A pause after HTTP 429 lasts past the caller's deadline.
    #[error("requests are paused after HTTP 429 for {wait:?}, past the deadline")]
    Paused { until: Instant, wait: Duration },

    /// The outage breaker is open, so calls fail fast until the next probe.
    #[error("Intezer calls fail fast after repeated transient failures; next probe in {wait:?}")]
    BreakerOpen { until: Instant, wait: Duration },

    /// Intezer responded to an upload with insufficient quota, so uploads are
    /// rejected until `until` (the next 00:00 UTC) or a successful probe.
    #[error("uploads rejected: Intezer reported insufficient quota; retry after {until} or a successful probe")]
    QuotaExhausted { until: DateTime<Utc> },

    /// A setting is out of range; the message names it and its value.
    #[error("invalid quota settings: {0}")]
    InvalidSettings(String),

    /// The tier name is not a preset.
    #[error("unknown quota tier {tier:?}; known tiers: {known}")]
    UnknownTier { tier: String, known: String },
}

impl QuotaError {
    pub(crate) fn deadline_too_close(ready_at: Instant, now: Instant) -> Self {
        QuotaError::DeadlineTooClose {
            ready_at,
            wait: ready_at.saturating_duration_since(now),
        }
    }

    pub(crate) fn paused(until: Instant, now: Instant) -> Self {
        QuotaError::Paused {
            until,
            wait: until.saturating_duration_since(now),
        }
    }

    pub(crate) fn breaker_open(until: Instant, now: Instant) -> Self {
        QuotaError::BreakerOpen {
            until,
            wait: until.saturating_duration_since(now),
        }
    }
}
