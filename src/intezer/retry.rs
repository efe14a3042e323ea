//! Retry decisions: which failures may be sent again, and how long to wait.

use std::time::Duration;

use rand::Rng;

use super::error::IntezerError;
use super::settings::RetryPolicy;

/// How far a failed attempt got, which decides whether a request that is
/// not idempotent may be sent again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// The request never left: the access token or the connection failed.
    NotSent,
    /// The request may have reached the server, but no status came back,
    /// for example after a read timeout.
    Unknown,
    /// The server returned a status code.
    Answered,
}

/// Whether a request may be sent again after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resend {
    /// Reads: any transient failure may be retried.
    Idempotent,
    /// Uploads: sending twice may start two counted analyses, so a request
    /// that may have arrived without a response is never sent again.
    UnlessMaybeReceived,
}

/// Returns whether `error`, after an attempt that got as far as `delivery`,
/// allows another attempt of a request with the `resend` rule.
pub(crate) fn may_retry(error: &IntezerError, delivery: Delivery, resend: Resend) -> bool {
    if !error.is_transient() {
        return false;
    }
    match resend {
        Resend::Idempotent => true,
        Resend::UnlessMaybeReceived => delivery != Delivery::Unknown,
    }
}

/// Returns whether the policy allows an attempt after `attempts_done`
/// attempts, leaving the deadline aside.
pub(crate) fn attempts_left(policy: &RetryPolicy, attempts_done: u32) -> bool {
    policy.retry_forever || attempts_done < policy.max_attempts.max(1)
}

/// Upper bound of the wait after attempt number `attempt` (1-based):
/// `initial_backoff` doubled per earlier attempt, capped at `max_backoff`.
pub(crate) fn backoff_bound(policy: &RetryPolicy, attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(31);
    policy
        .initial_backoff
        .saturating_mul(1u32 << doublings)
        .min(policy.max_backoff)
}

/// Draws a wait uniformly between zero and the backoff bound ("full
/// jitter"), so that clients failing together do not retry together.
pub(crate) fn backoff_with_jitter(policy: &RetryPolicy, attempt: u32) -> Duration {
    let bound = backoff_bound(policy, attempt);
    let nanos = u64::try_from(bound.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rand::rng().random_range(0..=nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(initial_ms: u64, max_ms: u64) -> RetryPolicy {
        RetryPolicy {
            retry_forever: false,
            max_attempts: 3,
            initial_backoff: Duration::from_millis(initial_ms),
            max_backoff: Duration::from_millis(max_ms),
        }
    }

    #[test]
    fn backoff_bound_doubles_then_caps() {
        let policy = policy(500, 3_000);

        let bounds: Vec<u128> = (1..=5)
            .map(|n| backoff_bound(&policy, n).as_millis())
            .collect();

        assert_eq!(bounds, vec![500, 1_000, 2_000, 3_000, 3_000]);
    }

    #[test]
    fn backoff_bound_survives_huge_attempt_numbers() {
        let policy = policy(500, 10_000);

        assert_eq!(backoff_bound(&policy, u32::MAX), Duration::from_secs(10));
    }

    #[test]
    fn jittered_backoff_stays_within_bound() {
        let policy = policy(100, 1_000);

        for attempt in 1..50 {
            assert!(backoff_with_jitter(&policy, attempt) <= backoff_bound(&policy, attempt));
        }
    }

    #[test]
    fn attempts_are_limited_unless_forever() {
        let mut policy = policy(1, 1);
        assert!(attempts_left(&policy, 2));
        assert!(!attempts_left(&policy, 3));

        policy.retry_forever = true;
        assert!(attempts_left(&policy, 1_000));
    }

    #[test]
    fn zero_max_attempts_still_allows_one() {
        let mut policy = policy(1, 1);
        policy.max_attempts = 0;

        assert!(attempts_left(&policy, 0));
        assert!(!attempts_left(&policy, 1));
    }

    #[test]
    fn upload_is_not_resent_after_read_timeout() {
        let timeout = IntezerError::Timeout {
            endpoint: "analyze",
        };

        assert!(!may_retry(
            &timeout,
            Delivery::Unknown,
            Resend::UnlessMaybeReceived
        ));
        assert!(may_retry(&timeout, Delivery::Unknown, Resend::Idempotent));
    }

    #[test]
    fn upload_is_resent_after_refused_connection() {
        let refused = IntezerError::Transport {
            endpoint: "analyze",
            message: "connection refused".into(),
        };

        assert!(may_retry(
            &refused,
            Delivery::NotSent,
            Resend::UnlessMaybeReceived
        ));
    }

    #[test]
    fn upload_is_resent_after_server_error() {
        let server = IntezerError::Server {
            endpoint: "analyze",
            status: 503,
        };

        assert!(may_retry(
            &server,
            Delivery::Answered,
            Resend::UnlessMaybeReceived
        ));
    }

    #[test]
    fn permanent_errors_are_never_retried() {
        let not_found = IntezerError::NotFound {
            endpoint: "analyses.get",
        };

        assert!(!may_retry(
            &not_found,
            Delivery::Answered,
            Resend::Idempotent
        ));
    }
}
