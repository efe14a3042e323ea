//! The guard's side of the shared backend: asking Redis for the head's
//! token, following the pause and upload breaker other containers report,
//! and switching between Redis and the local share.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use super::{GuardState, Permit, QuotaGuard, Ticket, Turn};
use crate::quota::breaker::Admission;
use crate::quota::budget::next_midnight;
use crate::quota::clock::{lock, QuotaClock};
use crate::quota::error::QuotaError;
use crate::quota::guard::CallCost;
use crate::quota::settings::QuotaSettings;
use crate::quota::shared::{Decision, SharedQuota};

impl<K: QuotaClock> QuotaGuard<K> {
    /// Returns the backend when Redis enforces the limits now, after taking
    /// over the shared pause. At the start of a fallback, the local budget
    /// is raised to this container's share of the day's shared count, so
    /// the shares together do not spend the key's budget twice.
    pub(super) fn follow_shared(
        &self,
        state: &mut GuardState<K::Rate>,
        now: Instant,
        utc_now: DateTime<Utc>,
    ) -> Option<&Arc<SharedQuota>> {
        let backend = self.shared.as_ref()?;
        let active = backend.is_active();
        let view = backend.view();
        if state.shared_was_active && !active {
            if let Some(used) = view.used_on(utc_now.date_naive()) {
                let containers = u64::from(backend.settings().fallback_containers);
                state.budget.seed(used.div_ceil(containers), utc_now);
            }
            state.shared_ready_at = None;
        }
        state.shared_was_active = active;
        if !active {
            return None;
        }

        if let Some(until) = view.paused_until.filter(|until| *until > now) {
            if state.paused_until.is_none_or(|current| current < until) {
                state.paused_until = Some(until);
            }
        }
        Some(backend)
    }

    /// Follows the upload breaker kept in Redis: opens the local one when
    /// another container reported the quota used up, and closes it again
    /// once a later read finds the breaker gone (another container's upload
    /// succeeded, or the day turned). A breaker this container opened itself
    /// closes only by its own probe or the day's end.
    ///
    /// NOTE: probes are not coordinated, so while the breaker is open each
    /// container sends its own probe upload every `probe_interval`.
    pub(super) fn follow_shared_uploads(
        &self,
        state: &mut GuardState<K::Rate>,
        now: Instant,
        utc_now: DateTime<Utc>,
    ) {
        let Some(backend) = self.shared.as_ref().filter(|backend| backend.is_active()) else {
            return;
        };
        let view = backend.view();
        let closed_in_redis = view
            .uploads_closed_until
            .is_some_and(|until| until > utc_now);
        let locally_open = state.submissions.rejected_until(utc_now).is_some();
        if closed_in_redis && !locally_open {
            state.submissions.open_for_peer(now, utc_now);
            state.uploads_closed_by_peer_at = Some(now);
        }
        let reopened_since = state
            .uploads_closed_by_peer_at
            .zip(view.read_at)
            .is_some_and(|(opened_at, read_at)| read_at > opened_at);
        if !closed_in_redis && reopened_since {
            state.submissions.close();
            state.uploads_closed_by_peer_at = None;
        }
    }

    /// Asks Redis for the token of the head of the queue, and for its file
    /// scan, then decides the waiter's turn from the reply.
    pub(super) async fn shared_turn(
        &self,
        backend: &SharedQuota,
        ticket: &Ticket<'_, K::Rate>,
        cost: CallCost,
        deadline: Instant,
    ) -> Turn {
        let day = self.clock.utc_now().date_naive();
        let Some(decision) = backend.acquire(cost, day).await else {
            return Turn::Retry;
        };
        let now = self.clock.now();
        let utc_now = self.clock.utc_now();
        let mut state = lock(&self.state);
        let state = &mut *state;

        match decision {
            Decision::Granted { .. } => {
                state.shared_ready_at = None;
                // The outage breaker may have opened during the round trip.
                let admission = state.outage.admission(now);
                if let Admission::Reject(until) = admission {
                    state.counters.breaker_rejections += 1;
                    return state.fail(ticket.key, QuotaError::breaker_open(until, now));
                }
                let probe = admission == Admission::Probe;
                if probe {
                    state.outage.start_probe(now);
                }
                state.leave(ticket.key);
                let file_scan = cost == CallCost::FileScan;
                Turn::Granted(Permit {
                    cost,
                    counted_on: file_scan.then_some(day),
                    counted_in_redis: file_scan,
                    probe,
                })
            }
            Decision::Wait(wait) => {
                let ready_at = now + wait;
                state.shared_ready_at = Some(ready_at);
                if ready_at > deadline {
                    state.counters.deadline_errors += 1;
                    return state.fail(ticket.key, QuotaError::deadline_too_close(ready_at, now));
                }
                Turn::WaitUntil(self.jittered(ready_at, deadline))
            }
            Decision::Paused(left) => {
                let until = now + left;
                if state.paused_until.is_none_or(|current| current < until) {
                    state.paused_until = Some(until);
                }
                if until > deadline {
                    state.counters.deadline_errors += 1;
                    return state.fail(ticket.key, QuotaError::paused(until, now));
                }
                Turn::WaitUntil(self.jittered(until, deadline))
            }
            Decision::BudgetSpent { .. } => {
                state.counters.budget_rejections += 1;
                let until = next_midnight(utc_now);
                state.fail(ticket.key, QuotaError::BudgetExhausted { until })
            }
        }
    }
}

impl<R: governor::clock::Clock> GuardState<R> {
    /// Returns the earliest time a waiter with `ahead` waiters before it
    /// could get a shared token: none comes before the time Redis last gave,
    /// and then at most one per interval. It errs early, because waiters
    /// ahead may leave the queue before their turn.
    pub(super) fn shared_earliest_turn(
        &self,
        ahead: usize,
        now: Instant,
        limits: &QuotaSettings,
    ) -> Instant {
        let Some(ready_at) = self.shared_ready_at.filter(|ready_at| *ready_at > now) else {
            return now;
        };
        if limits.requests_per_minute == 0 {
            return now;
        }
        let interval = std::time::Duration::from_secs(60) / limits.requests_per_minute;
        let ahead = u32::try_from(ahead).unwrap_or(u32::MAX);
        ready_at + interval.saturating_mul(ahead)
    }
}
