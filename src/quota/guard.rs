//! The quota guard: one per Intezer API key, shared by every caller.
//!
//! A caller asks for a [`Permit`] before each request. The guard grants it
//! when the outage breaker is closed, no 429 pause is running, a request
//! token is free and, for a [`CallCost::FileScan`], the daily budget has a
//! scan left. Waiters queue by priority, then by arrival, and only the head
//! of the queue takes tokens. Every wait ends by the caller's deadline, and a
//! wait that cannot fit is rejected at once.
//!
//! A guard built with [`QuotaGuard::shared`] enforces the key's limits in
//! Redis for every container that uses the key: the head of the queue
//! requests its token from Redis (see `shared_turn`), and while Redis is unreachable
//! the guard enforces this container's share of the limits locally.

mod shared_turn;

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use rand::Rng;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::breaker::{Admission, BreakerState, CallOutcome, OutageBreaker, SubmissionBreaker};
use super::budget::{next_midnight, DailyBudget};
use super::clock::{lock, QuotaClock, SystemClock};
use super::error::QuotaError;
use super::rate::{RateGate, TokenCheck};
use super::settings::QuotaSettings;
use super::shared::{SharedQuota, SharedQuotaSettings, SharedSnapshot, SharedState};

/// Maximum sleep of a waiter while a shared backend is configured, so that
/// it notices a pause, a spent budget or a change between Redis and the
/// local share within this time.
const SHARED_RECHECK: Duration = Duration::from_secs(1);

/// Cost of a call against the account's quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallCost {
    /// Not counted: token requests, analysis reads, quota reads.
    Free,
    /// One file scan: a lookup by hash, an upload or a download.
    FileScan,
}

/// Leave to send one request, returned by [`QuotaGuard::acquire`].
#[derive(Debug)]
#[must_use = "a permit stands for a request about to be sent"]
pub struct Permit {
    cost: CallCost,
    /// UTC day the file scan was counted on, for [`QuotaGuard::refund`].
    counted_on: Option<NaiveDate>,
    /// Whether the file scan was counted in Redis rather than locally.
    counted_in_redis: bool,
    probe: bool,
}

impl Permit {
    pub fn cost(&self) -> CallCost {
        self.cost
    }

    /// Returns whether this request is the one probe of an open outage breaker. Its
    /// outcome, passed to [`QuotaGuard::record`], decides whether the breaker
    /// closes.
    pub fn is_probe(&self) -> bool {
        self.probe
    }
}

/// The guard's state at one moment, for metrics.
///
/// The token and file-scan figures are those of the limiter in effect: the
/// shared one while Redis enforces the limits (as last read from Redis),
/// this container's otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaSnapshot {
    /// Estimated request tokens available now; `None` when unlimited.
    pub tokens_left: Option<u32>,
    pub file_scans_used_today: u64,
    /// File scans left until 00:00 UTC; `None` when unlimited.
    pub file_scans_left_today: Option<u64>,
    /// The shared backend, when the guard has one.
    pub shared: Option<SharedSnapshot>,
    /// End of the running 429 pause.
    pub paused_until: Option<Instant>,
    pub outage_breaker: BreakerState,
    /// When the outage breaker lets its next probe through, while not closed.
    pub outage_next_probe_at: Option<Instant>,
    pub submission_breaker: BreakerState,
    /// When uploads are accepted again at the latest, while the submission
    /// breaker is not closed.
    pub submissions_rejected_until: Option<DateTime<Utc>>,
    /// Callers in the queue now.
    pub waiting: usize,
    /// Acquisitions that had to wait, since the guard was built.
    pub waits: u64,
    /// HTTP 429 responses reported through [`QuotaGuard::pause_until`].
    pub rate_limited: u64,
    /// Acquisitions rejected because the wait would pass the deadline,
    /// including those rejected because a pause would.
    pub deadline_errors: u64,
    /// FileScan acquisitions rejected by the daily budget.
    pub budget_rejections: u64,
    /// Acquisitions rejected by the open outage breaker.
    pub breaker_rejections: u64,
}

/// Rate, budget, pause and breaker state for one API key. Send + Sync:
/// share it in an [`Arc`].
///
/// `K` supplies the time; [`QuotaGuard::new`] uses [`SystemClock`], and tests
/// pass a [`ManualClock`](super::ManualClock) to [`QuotaGuard::with_clock`].
pub struct QuotaGuard<K: QuotaClock = SystemClock> {
    /// The limits of the API key. Without a shared backend they are also
    /// the local ones; with it, the local limits are their share.
    settings: QuotaSettings,
    clock: K,
    state: Mutex<GuardState<K::Rate>>,
    shared: Option<Arc<SharedQuota>>,
}

struct GuardState<R: governor::clock::Clock> {
    rate: RateGate<R>,
    /// Waiters by priority, highest first, then arrival. Each entry's
    /// [`Notify`] wakes its waiter when it becomes the head.
    queue: BTreeMap<QueueKey, Arc<Notify>>,
    next_sequence: u64,
    paused_until: Option<Instant>,
    budget: DailyBudget,
    outage: OutageBreaker,
    submissions: SubmissionBreaker,
    counters: Counters,
    /// When the next shared token is due according to Redis's last reply,
    /// until one is granted.
    shared_ready_at: Option<Instant>,
    /// Whether Redis enforced the limits at the previous turn, to notice
    /// the start of a fallback.
    shared_was_active: bool,
    /// When the submission breaker was opened because another container
    /// reported the quota used up, rather than this one.
    uploads_closed_by_peer_at: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct QueueKey {
    priority: Reverse<i64>,
    sequence: u64,
}

#[derive(Debug, Default)]
struct Counters {
    waits: u64,
    rate_limited: u64,
    deadline_errors: u64,
    budget_rejections: u64,
    breaker_rejections: u64,
}

/// Next step of a waiter.
enum Turn {
    Granted(Permit),
    Failed(QuotaError),
    WaitUntil(Instant),
    /// The waiter is the head and Redis decides: see `shared_turn`.
    AskShared,
    /// Redis did not reply, so decide again with the local share.
    Retry,
}

// === impl QuotaGuard: construction ===

impl QuotaGuard<SystemClock> {
    /// Builds a guard on the system clock, or names the invalid setting.
    pub fn new(settings: QuotaSettings) -> Result<Self, QuotaError> {
        QuotaGuard::with_clock(settings, SystemClock::new())
    }

    /// Builds a guard whose `settings` are the limits of the whole API key,
    /// enforced in Redis for every container whose guard uses the same
    /// Redis and key. While Redis is unreachable, this guard enforces
    /// [`QuotaSettings::share`] of them for `shared.fallback_containers`.
    ///
    /// Must be called inside a Tokio runtime, where a task connects to Redis
    /// and keeps reading the shared state. Until its first attempt ends, the
    /// local share applies. Fails on an invalid setting or Redis URL.
    pub fn shared(
        settings: QuotaSettings,
        shared: SharedQuotaSettings,
    ) -> Result<Self, QuotaError> {
        settings.validate()?;
        let local = settings.share(shared.fallback_containers);
        let backend = SharedQuota::start(shared, &settings)?;
        let mut guard = QuotaGuard::with_clock(local, SystemClock::new())?;
        guard.settings = settings;
        guard.shared = Some(backend);
        Ok(guard)
    }
}

impl<K: QuotaClock> QuotaGuard<K> {
    /// Builds a guard that reads and sleeps on `clock`.
    pub fn with_clock(settings: QuotaSettings, clock: K) -> Result<Self, QuotaError> {
        settings.validate()?;
        let now = clock.now();
        let state = GuardState {
            rate: RateGate::new(&settings, clock.rate_clock(), now),
            queue: BTreeMap::new(),
            next_sequence: 0,
            paused_until: None,
            budget: DailyBudget::new(settings.file_scans_per_day, clock.utc_now()),
            outage: OutageBreaker::new(settings.outage_threshold, settings.probe_interval),
            submissions: SubmissionBreaker::new(settings.probe_interval),
            counters: Counters::default(),
            shared_ready_at: None,
            shared_was_active: false,
            uploads_closed_by_peer_at: None,
        };
        Ok(QuotaGuard {
            settings,
            clock,
            state: Mutex::new(state),
            shared: None,
        })
    }

    /// Returns the API key's limits (see [`QuotaGuard::shared`]).
    pub fn settings(&self) -> &QuotaSettings {
        &self.settings
    }

    pub fn clock(&self) -> &K {
        &self.clock
    }

    /// Returns the shared backend, when the guard has one.
    pub fn shared_backend(&self) -> Option<&Arc<SharedQuota>> {
        self.shared.as_ref()
    }
}

// === impl QuotaGuard: acquiring permits ===

impl<K: QuotaClock> QuotaGuard<K> {
    /// Waits for a request token, and for a file-scan unit when `cost` is
    /// [`CallCost::FileScan`].
    ///
    /// When tokens are scarce, a higher `priority` is served first and equal
    /// priorities are served in arrival order. A lower-priority waiter can
    /// therefore wait until its deadline while higher ones keep arriving,
    /// but never past it. Fails at once, without waiting, when the outage
    /// breaker is open, the daily budget is used up, or the wait surely
    /// passes `deadline`. Dropping the future leaves the queue.
    pub async fn acquire(
        &self,
        cost: CallCost,
        priority: i64,
        deadline: Instant,
    ) -> Result<Permit, QuotaError> {
        let ticket = self.enqueue(priority);
        let mut waited = false;
        loop {
            let mut turn = self.next_turn(&ticket, cost, deadline);
            if let (Turn::AskShared, Some(shared)) = (&turn, &self.shared) {
                turn = self.shared_turn(shared, &ticket, cost, deadline).await;
            }
            let wake_at = match turn {
                Turn::Granted(permit) => return Ok(permit),
                Turn::Failed(err) => return Err(err),
                Turn::WaitUntil(at) if self.shared.is_some() => {
                    at.min(self.clock.now() + SHARED_RECHECK)
                }
                Turn::WaitUntil(at) => at,
                Turn::AskShared | Turn::Retry => continue,
            };
            if !waited {
                waited = true;
                lock(&self.state).counters.waits += 1;
            }

            // Wake when the time comes, or earlier when this waiter becomes
            // the head of the queue.
            let became_head = ticket.notify.notified();
            tokio::select! {
                biased;
                () = became_head => {}
                () = self.clock.sleep_until(wake_at) => {}
            }
        }
    }

    fn enqueue(&self, priority: i64) -> Ticket<'_, K::Rate> {
        let mut state = lock(&self.state);
        let key = QueueKey {
            priority: Reverse(priority),
            sequence: state.next_sequence,
        };
        state.next_sequence += 1;
        let notify = Arc::new(Notify::new());
        state.queue.insert(key, Arc::clone(&notify));
        Ticket {
            state: &self.state,
            key,
            notify,
        }
    }

    /// Decides, under the lock, whether the waiter of `ticket` gets its
    /// permit now, fails, or waits.
    fn next_turn(&self, ticket: &Ticket<'_, K::Rate>, cost: CallCost, deadline: Instant) -> Turn {
        let now = self.clock.now();
        let utc_now = self.clock.utc_now();
        let mut state = lock(&self.state);
        let state = &mut *state;
        let shared = self.follow_shared(state, now, utc_now);

        // Fail fast while Intezer looks down or the budget is spent. Redis
        // checks the shared budget itself.
        let admission = state.outage.admission(now);
        if let Admission::Reject(until) = admission {
            state.counters.breaker_rejections += 1;
            return state.fail(ticket.key, QuotaError::breaker_open(until, now));
        }
        if cost == CallCost::FileScan && shared.is_none() {
            if let Some(until) = state.budget.exhausted_until(utc_now) {
                state.counters.budget_rejections += 1;
                return state.fail(ticket.key, QuotaError::BudgetExhausted { until });
            }
        }

        // After a 429 no waiter gets a token until the pause ends.
        if let Some(until) = state.paused_until.filter(|until| *until > now) {
            if until > deadline {
                state.counters.deadline_errors += 1;
                return state.fail(ticket.key, QuotaError::paused(until, now));
            }
            return Turn::WaitUntil(self.jittered(until, deadline));
        }

        // Only the head takes tokens. The others wait until they become the
        // head, unless even the earliest turn they could get is too late.
        let ahead = state.queue.range(..ticket.key).count();
        if ahead > 0 {
            let earliest = match shared {
                Some(_) => state.shared_earliest_turn(ahead, now, &self.settings),
                None => state.rate.earliest_turn(ahead, now),
            };
            if earliest > deadline || now >= deadline {
                state.counters.deadline_errors += 1;
                let ready_at = earliest.max(now);
                return state.fail(ticket.key, QuotaError::deadline_too_close(ready_at, now));
            }
            return Turn::WaitUntil(deadline);
        }
        if shared.is_some() {
            return Turn::AskShared;
        }

        match state.rate.try_take(now) {
            TokenCheck::ReadyAt(ready_at) if ready_at > deadline => {
                state.counters.deadline_errors += 1;
                state.fail(ticket.key, QuotaError::deadline_too_close(ready_at, now))
            }
            TokenCheck::ReadyAt(ready_at) => Turn::WaitUntil(self.jittered(ready_at, deadline)),
            TokenCheck::Granted => {
                let counted_on = match cost {
                    CallCost::Free => None,
                    // The budget was checked above under the same lock.
                    CallCost::FileScan => state.budget.take(utc_now).ok(),
                };
                if let (Some(day), Some(backend)) = (counted_on, &self.shared) {
                    backend.note_fallback_scan(day);
                }
                let probe = admission == Admission::Probe;
                if probe {
                    state.outage.start_probe(now);
                }
                state.leave(ticket.key);
                Turn::Granted(Permit {
                    cost,
                    counted_on,
                    counted_in_redis: false,
                    probe,
                })
            }
        }
    }

    /// Returns `at` plus a random delay of up to `max_jitter`, but no later
    /// than `deadline`.
    fn jittered(&self, at: Instant, deadline: Instant) -> Instant {
        let max_nanos = u64::try_from(self.settings.max_jitter.as_nanos()).unwrap_or(u64::MAX);
        if max_nanos == 0 {
            return at;
        }
        let jitter = Duration::from_nanos(rand::rng().random_range(0..=max_nanos));
        (at + jitter).min(deadline).max(at)
    }
}

// === impl QuotaGuard: feedback from responses ===

impl<K: QuotaClock> QuotaGuard<K> {
    /// Stops every token until `until`, after an HTTP 429. A later `until`
    /// extends a running pause; an earlier one leaves it as it is.
    pub fn pause_until(&self, until: Instant) {
        let now = self.clock.now();
        let mut state = lock(&self.state);
        state.counters.rate_limited += 1;
        if until <= now || state.paused_until.is_some_and(|current| current >= until) {
            return;
        }
        tracing::warn!(
            pause = ?until.saturating_duration_since(now),
            "pausing Intezer requests after HTTP 429"
        );
        state.paused_until = Some(until);
        drop(state);
        if let Some(backend) = &self.shared {
            backend.publish_pause(until.saturating_duration_since(now));
        }
    }

    /// Feeds the outage breaker the outcome of a sent request: success or
    /// any non-transient response closes it, and `outage_threshold` transient
    /// failures in a row open it.
    pub fn record(&self, outcome: CallOutcome) {
        let now = self.clock.now();
        lock(&self.state).outage.record(outcome, now);
    }

    /// Rejects uploads until the next 00:00 UTC, after Intezer responded to one
    /// with insufficient quota. A probe upload is let through every
    /// `probe_interval`; [`QuotaGuard::record_submission_success`] closes it.
    /// With a shared backend, the other containers stop their uploads too.
    pub fn open_submission_breaker(&self) {
        let now = self.clock.now();
        let utc_now = self.clock.utc_now();
        {
            let mut state = lock(&self.state);
            state.submissions.open(now, utc_now);
            state.uploads_closed_by_peer_at = None;
        }
        if let Some(backend) = &self.shared {
            let left = (next_midnight(utc_now) - utc_now)
                .to_std()
                .unwrap_or_default();
            backend.publish_uploads_closed(left);
        }
    }

    /// Checks whether an upload may be sent. While the submission breaker is
    /// open this fails with [`QuotaError::QuotaExhausted`], except that it
    /// lets one probe through when a probe is due.
    pub fn submissions_allowed(&self) -> Result<(), QuotaError> {
        let now = self.clock.now();
        let utc_now = self.clock.utc_now();
        let mut state = lock(&self.state);
        self.follow_shared_uploads(&mut state, now, utc_now);
        state
            .submissions
            .allow(now, utc_now)
            .map_err(|until| QuotaError::QuotaExhausted { until })
    }

    /// Closes the submission breaker after an upload succeeded, in every
    /// container when the backend is shared.
    pub fn record_submission_success(&self) {
        {
            let mut state = lock(&self.state);
            state.submissions.close();
            state.uploads_closed_by_peer_at = None;
        }
        if let Some(backend) = &self.shared {
            backend.publish_uploads_reopened();
        }
    }

    /// Raises today's count of used file scans to `used`, as read from
    /// Intezer's current-quota-usage response. The count is never lowered,
    /// because scans in flight may not show in Intezer's number yet.
    ///
    /// With a shared backend, `used` raises the shared count, and the local
    /// share counts this container's part of it, `used / containers`.
    ///
    /// NOTE: Intezer's quota may be daily, weekly or monthly (its `type`
    /// field), while this budget is daily; seed only from a daily quota.
    pub fn seed_used_today(&self, used: u64) {
        let utc_now = self.clock.utc_now();
        let Some(backend) = &self.shared else {
            lock(&self.state).budget.seed(used, utc_now);
            return;
        };
        let containers = u64::from(backend.settings().fallback_containers);
        lock(&self.state)
            .budget
            .seed(used.div_ceil(containers), utc_now);
        backend.publish_seed(utc_now.date_naive(), used);
    }

    /// Gives back the file scan of a permit whose request was not sent, or
    /// that Intezer did not count. A permit from an earlier UTC day changes
    /// nothing. The request token is not given back.
    pub fn refund(&self, permit: Permit) {
        let Some(day) = permit.counted_on else {
            return;
        };
        if let (true, Some(backend)) = (permit.counted_in_redis, &self.shared) {
            backend.publish_refund(day);
            return;
        }
        let utc_now = self.clock.utc_now();
        lock(&self.state).budget.refund(day, utc_now);
    }

    /// Returns the current state, for metrics.
    pub fn snapshot(&self) -> QuotaSnapshot {
        let now = self.clock.now();
        let utc_now = self.clock.utc_now();
        let mut state = lock(&self.state);
        // Take over a pause another container reported, as a turn would.
        self.follow_shared(&mut state, now, utc_now);
        let paused_until = state.paused_until.filter(|until| *until > now);
        let mut tokens_left = state.rate.tokens_at(now);
        let mut file_scans_used_today = state.budget.used(utc_now);
        let mut file_scans_left_today = state.budget.remaining(utc_now);
        let shared = self
            .shared
            .as_ref()
            .map(|backend| backend.snapshot(utc_now.date_naive()));
        if let Some(shared) = shared
            .as_ref()
            .filter(|shared| shared.state == SharedState::Shared)
        {
            // Redis enforces the limits, so its figures are the ones in effect.
            tokens_left = shared.tokens_left.or(tokens_left);
            if let Some(used) = shared.file_scans_used_today {
                file_scans_used_today = used;
                file_scans_left_today = shared.file_scans_left_today;
            }
        }
        QuotaSnapshot {
            tokens_left: tokens_left.map(|tokens| if paused_until.is_some() { 0 } else { tokens }),
            file_scans_used_today,
            file_scans_left_today,
            shared,
            paused_until,
            outage_breaker: state.outage.state(),
            outage_next_probe_at: state.outage.next_probe_at(),
            submission_breaker: state.submissions.state(utc_now),
            submissions_rejected_until: state.submissions.rejected_until(utc_now),
            waiting: state.queue.len(),
            waits: state.counters.waits,
            rate_limited: state.counters.rate_limited,
            deadline_errors: state.counters.deadline_errors,
            budget_rejections: state.counters.budget_rejections,
            breaker_rejections: state.counters.breaker_rejections,
        }
    }
}

// === impl GuardState ===

impl<R: governor::clock::Clock> GuardState<R> {
    fn fail(&mut self, key: QueueKey, err: QuotaError) -> Turn {
        self.leave(key);
        Turn::Failed(err)
    }

    /// Removes a waiter and, when it was the head, wakes the next one.
    fn leave(&mut self, key: QueueKey) {
        let was_head = self
            .queue
            .first_key_value()
            .is_some_and(|(head, _)| *head == key);
        if self.queue.remove(&key).is_none() || !was_head {
            return;
        }
        if let Some((_, next)) = self.queue.first_key_value() {
            next.notify_one();
        }
    }
}

/// A waiter's place in the queue. Dropping it leaves the queue, so a caller
/// that gives up (a dropped future) does not block the others.
struct Ticket<'a, R: governor::clock::Clock> {
    state: &'a Mutex<GuardState<R>>,
    key: QueueKey,
    notify: Arc<Notify>,
}

impl<R: governor::clock::Clock> Drop for Ticket<'_, R> {
    fn drop(&mut self) {
        lock(self.state).leave(self.key);
    }
}
