//! The two circuit breakers of a quota guard.
//!
//! The outage breaker stops every call after `outage_threshold` consecutive
//! transient failures, so a service that is down is not hammered. The
//! submission breaker stops uploads after Intezer responds to one with
//! insufficient quota, until the next 00:00 UTC. Both let one probe through
//! every `probe_interval` while open, and log each state change once.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use super::budget::next_midnight;

/// State of a breaker, for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls are rejected until the next probe is due.
    Open,
    /// One probe is out; other calls are rejected until its outcome arrives.
    Probing,
}

/// Outcome of a sent request, as the outage breaker counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// Intezer responded with success.
    Success,
    /// A 5xx response, a transport error or a timeout: counts toward opening.
    Transient,
    /// Any other response (4xx, including 429). Intezer is reachable, so this
    /// ends a run of transient failures and closes an open breaker.
    Other,
}

/// Whether a call may pass the outage breaker now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    Pass,
    /// The call passes as the one probe of an open breaker.
    Probe,
    /// Rejected until the given time.
    Reject(Instant),
}

// === impl OutageBreaker ===

#[derive(Debug)]
pub(crate) struct OutageBreaker {
    threshold: u32,
    probe_interval: Duration,
    consecutive_failures: u32,
    state: OutageState,
}

#[derive(Debug, Clone, Copy)]
enum OutageState {
    Closed,
    Open {
        probe_at: Instant,
    },
    /// A probe went out at `since`. If no outcome arrives within a probe
    /// interval, the next caller becomes the probe.
    Probing {
        since: Instant,
    },
}

impl OutageBreaker {
    pub(crate) fn new(threshold: u32, probe_interval: Duration) -> Self {
        OutageBreaker {
            threshold,
            probe_interval,
            consecutive_failures: 0,
            state: OutageState::Closed,
        }
    }

    /// Decides whether a call may go now, without changing state.
    pub(crate) fn admission(&self, now: Instant) -> Admission {
        match self.state {
            OutageState::Closed => Admission::Pass,
            OutageState::Open { probe_at } if now >= probe_at => Admission::Probe,
            OutageState::Open { probe_at } => Admission::Reject(probe_at),
            OutageState::Probing { since } => {
                let next_probe = since + self.probe_interval;
                if now >= next_probe {
                    Admission::Probe
                } else {
                    Admission::Reject(next_probe)
                }
            }
        }
    }

    /// Marks a probe as sent at `now`.
    pub(crate) fn start_probe(&mut self, now: Instant) {
        tracing::info!("outage breaker half-open: sending one probe to Intezer");
        self.state = OutageState::Probing { since: now };
    }

    pub(crate) fn record(&mut self, outcome: CallOutcome, now: Instant) {
        match outcome {
            CallOutcome::Success | CallOutcome::Other => self.close(),
            CallOutcome::Transient => self.record_failure(now),
        }
    }

    fn close(&mut self) {
        self.consecutive_failures = 0;
        if !matches!(self.state, OutageState::Closed) {
            tracing::info!("outage breaker closed: Intezer responded");
            self.state = OutageState::Closed;
        }
    }

    fn record_failure(&mut self, now: Instant) {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        let probe_at = now + self.probe_interval;
        match self.state {
            OutageState::Closed if self.consecutive_failures >= self.threshold => {
                tracing::warn!(
                    failures = self.consecutive_failures,
                    retry_in = ?self.probe_interval,
                    "outage breaker opened: Intezer calls fail fast until a probe succeeds"
                );
                self.state = OutageState::Open { probe_at };
            }
            OutageState::Probing { .. } => {
                tracing::warn!(
                    retry_in = ?self.probe_interval,
                    "outage breaker reopened: the probe failed"
                );
                self.state = OutageState::Open { probe_at };
            }
            // Late failures of calls sent before the breaker opened do not
            // move the next probe.
            OutageState::Closed | OutageState::Open { .. } => {}
        }
    }

    pub(crate) fn state(&self) -> BreakerState {
        match self.state {
            OutageState::Closed => BreakerState::Closed,
            OutageState::Open { .. } => BreakerState::Open,
            OutageState::Probing { .. } => BreakerState::Probing,
        }
    }

    /// Returns when the next probe may go, while the breaker is not closed.
    pub(crate) fn next_probe_at(&self) -> Option<Instant> {
        match self.state {
            OutageState::Closed => None,
            OutageState::Open { probe_at } => Some(probe_at),
            OutageState::Probing { since } => Some(since + self.probe_interval),
        }
    }
}

// === impl SubmissionBreaker ===

#[derive(Debug)]
pub(crate) struct SubmissionBreaker {
    probe_interval: Duration,
    state: SubmissionState,
}

#[derive(Debug, Clone, Copy)]
enum SubmissionState {
    Closed,
    Open {
        reset_at: DateTime<Utc>,
        probe_at: Instant,
    },
    Probing {
        reset_at: DateTime<Utc>,
        since: Instant,
    },
}

impl SubmissionBreaker {
    pub(crate) fn new(probe_interval: Duration) -> Self {
        SubmissionBreaker {
            probe_interval,
            state: SubmissionState::Closed,
        }
    }

    /// Opens the breaker until the next 00:00 UTC after `utc_now`.
    pub(crate) fn open(&mut self, now: Instant, utc_now: DateTime<Utc>) {
        let reset_at = next_midnight(utc_now);
        if !matches!(self.state, SubmissionState::Open { .. }) {
            tracing::warn!(
                %reset_at,
                retry_in = ?self.probe_interval,
                "submission breaker opened: Intezer reported insufficient quota for uploads"
            );
        }
        self.set_open(now, reset_at);
    }

    /// Opens the breaker until the next 00:00 UTC because another container
    /// that shares the API key reported insufficient quota.
    pub(crate) fn open_for_peer(&mut self, now: Instant, utc_now: DateTime<Utc>) {
        let reset_at = next_midnight(utc_now);
        tracing::warn!(
            %reset_at,
            retry_in = ?self.probe_interval,
            "submission breaker opened: another container reported insufficient quota for uploads"
        );
        self.set_open(now, reset_at);
    }

    fn set_open(&mut self, now: Instant, reset_at: DateTime<Utc>) {
        self.state = SubmissionState::Open {
            reset_at,
            probe_at: now + self.probe_interval,
        };
    }

    /// Allows an upload when the breaker is closed, when the day has turned,
    /// or as the one probe when it is due. Returns the reset time otherwise.
    pub(crate) fn allow(
        &mut self,
        now: Instant,
        utc_now: DateTime<Utc>,
    ) -> Result<(), DateTime<Utc>> {
        let (reset_at, next_probe) = match self.state {
            SubmissionState::Closed => return Ok(()),
            SubmissionState::Open { reset_at, probe_at } => (reset_at, probe_at),
            SubmissionState::Probing { reset_at, since } => (reset_at, since + self.probe_interval),
        };

        if utc_now >= reset_at {
            tracing::info!("submission breaker closed: the daily quota has reset");
            self.state = SubmissionState::Closed;
            return Ok(());
        }
        if now >= next_probe {
            tracing::info!("submission breaker half-open: letting one upload through as a probe");
            self.state = SubmissionState::Probing {
                reset_at,
                since: now,
            };
            return Ok(());
        }
        Err(reset_at)
    }

    pub(crate) fn close(&mut self) {
        if !matches!(self.state, SubmissionState::Closed) {
            tracing::info!("submission breaker closed: an upload succeeded");
            self.state = SubmissionState::Closed;
        }
    }

    pub(crate) fn state(&self, utc_now: DateTime<Utc>) -> BreakerState {
        match self.state {
            SubmissionState::Closed => BreakerState::Closed,
            SubmissionState::Open { reset_at, .. } | SubmissionState::Probing { reset_at, .. }
                if utc_now >= reset_at =>
            {
                BreakerState::Closed
            }
            SubmissionState::Open { .. } => BreakerState::Open,
            SubmissionState::Probing { .. } => BreakerState::Probing,
        }
    }

    /// Returns the next 00:00 UTC while the breaker is not closed.
    pub(crate) fn rejected_until(&self, utc_now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self.state {
            SubmissionState::Open { reset_at, .. } | SubmissionState::Probing { reset_at, .. }
                if utc_now < reset_at =>
            {
                Some(reset_at)
            }
            _ => None,
        }
    }
}
