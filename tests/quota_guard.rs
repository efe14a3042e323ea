//! Behaviour of the quota guard on a manual clock: rate and burst, the daily
//! budget, priorities, deadlines, 429 pauses and both breakers.
//!
//! Every test drives time with `ManualClock::advance` and polls the acquire
//! futures by hand, once per step, so no test sleeps or depends on timing.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use futures_util::FutureExt;
use tokio::time::Instant;

use intezer_dynamic::quota::{
    BreakerState, CallCost, CallOutcome, ManualClock, Permit, QuotaClock, QuotaError, QuotaGuard,
    QuotaSettings,
};

const SECOND: Duration = Duration::from_secs(1);
const MILLI: Duration = Duration::from_millis(1);

type Acquire<'a> = Pin<Box<dyn Future<Output = Result<Permit, QuotaError>> + 'a>>;

fn utc(hour: u32, minute: u32, second: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 9, hour, minute, second)
        .unwrap()
}

fn midnight() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 10, 0, 0, 0).unwrap()
}

/// Settings without jitter, so a waiter wakes exactly when its token is due.
fn settings(requests_per_minute: u32, burst: u32, file_scans_per_day: u64) -> QuotaSettings {
    QuotaSettings {
        requests_per_minute,
        burst,
        file_scans_per_day,
        outage_threshold: 3,
        probe_interval: Duration::from_secs(30),
        max_jitter: Duration::ZERO,
    }
}

fn guard_at(settings: QuotaSettings, start: DateTime<Utc>) -> QuotaGuard<ManualClock> {
    QuotaGuard::with_clock(settings, ManualClock::new(start)).unwrap()
}

/// Builds a guard that allows one request a second with bursts of `burst`.
fn per_second_guard(burst: u32) -> QuotaGuard<ManualClock> {
    guard_at(settings(60, burst, 0), utc(12, 0, 0))
}

fn acquire(
    guard: &QuotaGuard<ManualClock>,
    cost: CallCost,
    priority: i64,
    deadline: Instant,
) -> Acquire<'_> {
    Box::pin(guard.acquire(cost, priority, deadline))
}

/// Polls an acquire future once; `None` while it still waits.
fn poll(acquire: &mut Acquire<'_>) -> Option<Result<Permit, QuotaError>> {
    acquire.as_mut().now_or_never()
}

fn in_secs(guard: &QuotaGuard<ManualClock>, seconds: u64) -> Instant {
    guard.clock().now() + Duration::from_secs(seconds)
}

/// Returns a permit that must be granted without waiting.
fn permit_now(guard: &QuotaGuard<ManualClock>, cost: CallCost) -> Permit {
    let deadline = in_secs(guard, 60);
    let mut call = acquire(guard, cost, 0, deadline);
    poll(&mut call).expect("granted without waiting").unwrap()
}

/// Takes a permit that must be granted without waiting, as a sent request.
fn take_now(guard: &QuotaGuard<ManualClock>, cost: CallCost) {
    let _sent = permit_now(guard, cost);
}

fn is_granted(outcome: &Option<Result<Permit, QuotaError>>) -> bool {
    matches!(outcome, Some(Ok(_)))
}

// === rate and burst ===

#[test]
fn burst_is_granted_at_once() {
    let guard = per_second_guard(3);
    for _ in 0..3 {
        take_now(&guard, CallCost::Free);
    }
    assert_eq!(guard.snapshot().tokens_left, Some(0));
}

#[test]
fn refill_follows_configured_rate() {
    let guard = per_second_guard(3);
    for _ in 0..3 {
        take_now(&guard, CallCost::Free);
    }
    let mut call = acquire(&guard, CallCost::Free, 0, in_secs(&guard, 10));

    assert!(poll(&mut call).is_none());
    guard.clock().advance(SECOND - MILLI);
    assert!(poll(&mut call).is_none());
    guard.clock().advance(MILLI);
    assert!(is_granted(&poll(&mut call)));
}

#[test]
fn refill_grants_one_token_per_interval() {
    let guard = guard_at(settings(30, 1, 0), utc(12, 0, 0));
    take_now(&guard, CallCost::Free);
    let mut granted = 0;
    for _ in 0..10 {
        guard.clock().advance(SECOND);
        let mut call = acquire(&guard, CallCost::Free, 0, guard.clock().now());
        if is_granted(&poll(&mut call)) {
            granted += 1;
        }
    }
    assert_eq!(granted, 5);
}

#[test]
fn unlimited_rate_never_waits() {
    let guard = guard_at(settings(0, 0, 0), utc(12, 0, 0));
    for _ in 0..1000 {
        take_now(&guard, CallCost::Free);
    }
    assert_eq!(guard.snapshot().tokens_left, None);
}

#[test]
fn jitter_never_passes_deadline() {
    let guard = guard_at(
        QuotaSettings {
            max_jitter: Duration::from_millis(50),
            ..settings(60, 1, 0)
        },
        utc(12, 0, 0),
    );
    take_now(&guard, CallCost::Free);
    let mut call = acquire(&guard, CallCost::Free, 0, in_secs(&guard, 1));

    assert!(poll(&mut call).is_none());
    guard.clock().advance(SECOND);
    assert!(is_granted(&poll(&mut call)));
}

// === daily budget ===

#[test]
fn budget_stops_file_scans() {
    let guard = guard_at(settings(0, 1, 2), utc(12, 0, 0));
    take_now(&guard, CallCost::FileScan);
    take_now(&guard, CallCost::FileScan);
    let mut call = acquire(&guard, CallCost::FileScan, 0, in_secs(&guard, 60));
    let outcome = poll(&mut call).expect("rejected without waiting");
    assert_eq!(
        outcome.unwrap_err(),
        QuotaError::BudgetExhausted { until: midnight() }
    );
}

#[test]
fn budget_error_names_reset_time() {
    let err = QuotaError::BudgetExhausted { until: midnight() };
    assert_eq!(
        err.to_string(),
        "quota budget exhausted until 2024-03-10 00:00:00 UTC"
    );
}

#[test]
fn budget_leaves_free_calls_alone() {
    let guard = guard_at(settings(0, 1, 1), utc(12, 0, 0));
    take_now(&guard, CallCost::FileScan);
    let permit = permit_now(&guard, CallCost::Free);
    assert_eq!(permit.cost(), CallCost::Free);
}

#[test]
fn budget_resets_at_midnight() {
    let guard = guard_at(settings(0, 1, 1), utc(23, 59, 0));
    take_now(&guard, CallCost::FileScan);

    guard.clock().advance(Duration::from_secs(59));
    let mut before = acquire(&guard, CallCost::FileScan, 0, in_secs(&guard, 60));
    assert!(matches!(
        poll(&mut before),
        Some(Err(QuotaError::BudgetExhausted { .. }))
    ));

    guard.clock().advance(SECOND);
    let mut after = acquire(&guard, CallCost::FileScan, 0, in_secs(&guard, 60));
    assert!(is_granted(&poll(&mut after)));
}

#[test]
fn budget_counts_in_snapshot() {
    let guard = guard_at(settings(0, 1, 5), utc(12, 0, 0));
    take_now(&guard, CallCost::FileScan);
    take_now(&guard, CallCost::Free);
    let snapshot = guard.snapshot();
    assert_eq!(snapshot.file_scans_used_today, 1);
    assert_eq!(snapshot.file_scans_left_today, Some(4));
}

#[test]
fn seeded_usage_lowers_budget() {
    let guard = guard_at(settings(0, 1, 10), utc(12, 0, 0));
    guard.seed_used_today(9);
    take_now(&guard, CallCost::FileScan);
    let mut call = acquire(&guard, CallCost::FileScan, 0, in_secs(&guard, 60));
    assert!(matches!(
        poll(&mut call),
        Some(Err(QuotaError::BudgetExhausted { .. }))
    ));
}

#[test]
fn refund_returns_file_scan() {
    let guard = guard_at(settings(0, 1, 1), utc(12, 0, 0));
    let permit = permit_now(&guard, CallCost::FileScan);
    guard.refund(permit);
    assert_eq!(guard.snapshot().file_scans_left_today, Some(1));
}

// === priorities and deadlines ===

#[test]
fn later_high_priority_is_served_first() {
    let guard = per_second_guard(1);
    take_now(&guard, CallCost::Free);
    let deadline = in_secs(&guard, 10);
    let mut low = acquire(&guard, CallCost::Free, 0, deadline);
    let mut high = acquire(&guard, CallCost::Free, 5, deadline);
    assert!(poll(&mut low).is_none());
    assert!(poll(&mut high).is_none());

    guard.clock().advance(SECOND);
    assert!(poll(&mut low).is_none());
    assert!(is_granted(&poll(&mut high)));
    assert!(poll(&mut low).is_none());

    guard.clock().advance(SECOND);
    assert!(is_granted(&poll(&mut low)));
}

#[test]
fn equal_priorities_are_served_in_arrival_order() {
    let guard = per_second_guard(1);
    take_now(&guard, CallCost::Free);
    let deadline = in_secs(&guard, 10);
    let mut first = acquire(&guard, CallCost::Free, 1, deadline);
    let mut second = acquire(&guard, CallCost::Free, 1, deadline);
    let mut third = acquire(&guard, CallCost::Free, 1, deadline);
    for call in [&mut first, &mut second, &mut third] {
        assert!(poll(call).is_none());
    }

    guard.clock().advance(SECOND);
    assert!(poll(&mut third).is_none());
    assert!(poll(&mut second).is_none());
    assert!(is_granted(&poll(&mut first)));

    guard.clock().advance(SECOND);
    assert!(poll(&mut third).is_none());
    assert!(is_granted(&poll(&mut second)));

    guard.clock().advance(SECOND);
    assert!(is_granted(&poll(&mut third)));
}

/// A steady stream of higher-priority callers keeps a low-priority caller
/// waiting, but it still ends at its deadline with an error instead of hanging.
#[test]
fn low_priority_gets_deadline_error_under_load() {
    let guard = per_second_guard(1);
    take_now(&guard, CallCost::Free);
    let mut low = acquire(&guard, CallCost::Free, 0, in_secs(&guard, 3));
    assert!(poll(&mut low).is_none());

    let mut outcome = None;
    for _ in 0..3 {
        let mut high = acquire(&guard, CallCost::Free, 9, in_secs(&guard, 10));
        assert!(poll(&mut high).is_none());
        guard.clock().advance(SECOND);
        assert!(is_granted(&poll(&mut high)));
        outcome = poll(&mut low);
        if outcome.is_some() {
            break;
        }
    }
    assert!(
        matches!(outcome, Some(Err(QuotaError::DeadlineTooClose { .. }))),
        "{outcome:?}"
    );
}

#[test]
fn low_priority_is_served_when_load_stops() {
    let guard = per_second_guard(1);
    take_now(&guard, CallCost::Free);
    let mut low = acquire(&guard, CallCost::Free, 0, in_secs(&guard, 10));
    let mut high = acquire(&guard, CallCost::Free, 9, in_secs(&guard, 10));
    assert!(poll(&mut low).is_none());
    assert!(poll(&mut high).is_none());

    guard.clock().advance(SECOND);
    assert!(is_granted(&poll(&mut high)));
    assert!(poll(&mut low).is_none());
    guard.clock().advance(SECOND);
    assert!(is_granted(&poll(&mut low)));
}

#[test]
fn deadline_error_is_immediate_when_token_is_late() {
    let guard = per_second_guard(1);
    take_now(&guard, CallCost::Free);
    let expected_ready = guard.clock().now() + SECOND;
    let deadline = guard.clock().now() + Duration::from_millis(500);
    let mut call = acquire(&guard, CallCost::Free, 0, deadline);
    let outcome = poll(&mut call).expect("rejected without waiting");
    assert_eq!(
        outcome.unwrap_err(),
        QuotaError::DeadlineTooClose {
            ready_at: expected_ready,
            wait: SECOND
        }
    );
}

#[test]
fn deadline_error_is_immediate_behind_queue() {
    let guard = per_second_guard(1);
    take_now(&guard, CallCost::Free);
    let mut queued: Vec<Acquire<'_>> = (0..3)
        .map(|_| acquire(&guard, CallCost::Free, 0, in_secs(&guard, 10)))
        .collect();
    for call in &mut queued {
        assert!(poll(call).is_none());
    }

    let mut late = acquire(&guard, CallCost::Free, 0, in_secs(&guard, 2));
    let outcome = poll(&mut late);
    assert!(
        matches!(outcome, Some(Err(QuotaError::DeadlineTooClose { .. }))),
        "{outcome:?}"
    );
}

/// A waiter whose turn fits its deadline on arrival, but is pushed back by a
/// later, higher-priority arrival, fails at its deadline and not after.
#[test]
fn queued_waiter_fails_at_its_deadline() {
    let guard = per_second_guard(1);
    take_now(&guard, CallCost::Free);
    let mut head = acquire(&guard, CallCost::Free, 5, in_secs(&guard, 10));
    let mut queued = acquire(&guard, CallCost::Free, 0, in_secs(&guard, 2));
    assert!(poll(&mut head).is_none());
    assert!(poll(&mut queued).is_none());

    guard.clock().advance(Duration::from_millis(500));
    let mut later = acquire(&guard, CallCost::Free, 5, in_secs(&guard, 10));
    assert!(poll(&mut later).is_none());

    guard.clock().advance(Duration::from_millis(500));
    assert!(is_granted(&poll(&mut head)));
    assert!(poll(&mut queued).is_none());

    guard.clock().advance(SECOND);
    assert!(matches!(
        poll(&mut queued),
        Some(Err(QuotaError::DeadlineTooClose { .. }))
    ));
}

#[test]
fn dropped_waiter_leaves_queue() {
    let guard = per_second_guard(1);
    take_now(&guard, CallCost::Free);
    let deadline = in_secs(&guard, 10);
    let mut first = acquire(&guard, CallCost::Free, 0, deadline);
    let mut second = acquire(&guard, CallCost::Free, 0, deadline);
    assert!(poll(&mut first).is_none());
    assert!(poll(&mut second).is_none());

    drop(first);
    guard.clock().advance(SECOND);
    assert!(is_granted(&poll(&mut second)));
    assert_eq!(guard.snapshot().waiting, 0);
}

#[test]
fn waits_are_counted_once_per_acquisition() {
    let guard = per_second_guard(1);
    take_now(&guard, CallCost::Free);
    let mut call = acquire(&guard, CallCost::Free, 0, in_secs(&guard, 10));
    assert!(poll(&mut call).is_none());
    assert!(poll(&mut call).is_none());
    guard.clock().advance(SECOND);
    assert!(is_granted(&poll(&mut call)));
    assert_eq!(guard.snapshot().waits, 1);
}

// === 429 pauses ===

#[test]
fn pause_blocks_everyone_until_it_ends() {
    let guard = per_second_guard(5);
    guard.pause_until(in_secs(&guard, 10));
    let deadline = in_secs(&guard, 20);
    let mut lookup = acquire(&guard, CallCost::FileScan, 9, deadline);
    let mut read = acquire(&guard, CallCost::Free, 0, deadline);
    assert!(poll(&mut lookup).is_none());
    assert!(poll(&mut read).is_none());

    guard.clock().advance(Duration::from_secs(10) - MILLI);
    assert!(poll(&mut lookup).is_none());
    assert!(poll(&mut read).is_none());

    guard.clock().advance(MILLI);
    assert!(is_granted(&poll(&mut lookup)));
    assert!(is_granted(&poll(&mut read)));
}

#[test]
fn pause_past_deadline_fails_immediately() {
    let guard = per_second_guard(5);
    let until = in_secs(&guard, 10);
    guard.pause_until(until);
    let mut call = acquire(&guard, CallCost::Free, 0, in_secs(&guard, 5));
    let outcome = poll(&mut call).expect("rejected without waiting");
    assert_eq!(
        outcome.unwrap_err(),
        QuotaError::Paused {
            until,
            wait: Duration::from_secs(10)
        }
    );
}

#[test]
fn shorter_pause_keeps_longer_one() {
    let guard = per_second_guard(5);
    let until = in_secs(&guard, 10);
    guard.pause_until(until);
    guard.pause_until(in_secs(&guard, 2));
    assert_eq!(guard.snapshot().paused_until, Some(until));
}

#[test]
fn pause_counts_rate_limited_responses() {
    let guard = per_second_guard(5);
    guard.pause_until(in_secs(&guard, 10));
    guard.pause_until(in_secs(&guard, 2));
    let snapshot = guard.snapshot();
    assert_eq!(snapshot.rate_limited, 2);
    assert_eq!(snapshot.tokens_left, Some(0));
}

#[test]
fn pause_ends_and_requests_resume() {
    let guard = per_second_guard(5);
    guard.pause_until(in_secs(&guard, 10));
    guard.clock().advance(Duration::from_secs(10));
    take_now(&guard, CallCost::Free);
    assert_eq!(guard.snapshot().paused_until, None);
}

// === outage breaker ===

fn fail_times(guard: &QuotaGuard<ManualClock>, times: u32) {
    for _ in 0..times {
        guard.record(CallOutcome::Transient);
    }
}

fn breaker_rejects(guard: &QuotaGuard<ManualClock>) -> bool {
    let mut call = acquire(guard, CallCost::Free, 0, in_secs(guard, 60));
    matches!(poll(&mut call), Some(Err(QuotaError::BreakerOpen { .. })))
}

#[test]
fn outage_breaker_stays_closed_below_threshold() {
    let guard = per_second_guard(5);
    fail_times(&guard, 2);
    take_now(&guard, CallCost::Free);
    assert_eq!(guard.snapshot().outage_breaker, BreakerState::Closed);
}

#[test]
fn outage_breaker_opens_at_threshold() {
    let guard = per_second_guard(5);
    fail_times(&guard, 3);
    assert!(breaker_rejects(&guard));
    assert_eq!(guard.snapshot().outage_breaker, BreakerState::Open);
}

#[test]
fn outage_breaker_error_gives_probe_time() {
    let guard = per_second_guard(5);
    fail_times(&guard, 3);
    let probe_at = in_secs(&guard, 30);
    let mut call = acquire(&guard, CallCost::Free, 0, in_secs(&guard, 60));
    let outcome = poll(&mut call).expect("rejected without waiting");
    assert_eq!(
        outcome.unwrap_err(),
        QuotaError::BreakerOpen {
            until: probe_at,
            wait: Duration::from_secs(30)
        }
    );
}

#[test]
fn other_outcome_resets_failure_run() {
    let guard = per_second_guard(5);
    fail_times(&guard, 2);
    guard.record(CallOutcome::Other);
    fail_times(&guard, 2);
    take_now(&guard, CallCost::Free);
}

#[test]
fn outage_breaker_lets_one_probe_through() {
    let guard = per_second_guard(5);
    fail_times(&guard, 3);
    guard.clock().advance(Duration::from_secs(30));

    let probe = permit_now(&guard, CallCost::Free);
    assert!(probe.is_probe());
    assert!(breaker_rejects(&guard));
    assert_eq!(guard.snapshot().outage_breaker, BreakerState::Probing);
}

#[test]
fn outage_breaker_closes_on_probe_success() {
    let guard = per_second_guard(5);
    fail_times(&guard, 3);
    guard.clock().advance(Duration::from_secs(30));
    let _probe = permit_now(&guard, CallCost::Free);

    guard.record(CallOutcome::Success);
    let permit = permit_now(&guard, CallCost::Free);
    assert!(!permit.is_probe());
    assert_eq!(guard.snapshot().outage_breaker, BreakerState::Closed);
}

#[test]
fn outage_breaker_reopens_on_probe_failure() {
    let guard = per_second_guard(5);
    fail_times(&guard, 3);
    guard.clock().advance(Duration::from_secs(30));
    let _probe = permit_now(&guard, CallCost::Free);

    guard.record(CallOutcome::Transient);
    assert!(breaker_rejects(&guard));
    assert_eq!(guard.snapshot().outage_breaker, BreakerState::Open);
    guard.clock().advance(Duration::from_secs(30));
    assert!(permit_now(&guard, CallCost::Free).is_probe());
}

#[test]
fn outage_probe_without_outcome_is_replaced() {
    let guard = per_second_guard(5);
    fail_times(&guard, 3);
    guard.clock().advance(Duration::from_secs(30));
    let _lost_probe = permit_now(&guard, CallCost::Free);

    guard.clock().advance(Duration::from_secs(30));
    assert!(permit_now(&guard, CallCost::Free).is_probe());
}

#[test]
fn outage_breaker_counts_rejections() {
    let guard = per_second_guard(5);
    fail_times(&guard, 3);
    assert!(breaker_rejects(&guard));
    assert!(breaker_rejects(&guard));
    assert_eq!(guard.snapshot().breaker_rejections, 2);
}

// === submission breaker ===

#[test]
fn submission_breaker_rejects_uploads() {
    let guard = per_second_guard(5);
    guard.open_submission_breaker();
    assert_eq!(
        guard.submissions_allowed(),
        Err(QuotaError::QuotaExhausted { until: midnight() })
    );
    assert_eq!(guard.snapshot().submission_breaker, BreakerState::Open);
}

#[test]
fn submission_breaker_leaves_lookups_alone() {
    let guard = per_second_guard(5);
    guard.open_submission_breaker();
    take_now(&guard, CallCost::FileScan);
}

#[test]
fn submission_breaker_lets_one_probe_through() {
    let guard = per_second_guard(5);
    guard.open_submission_breaker();
    guard.clock().advance(Duration::from_secs(30));
    assert_eq!(guard.submissions_allowed(), Ok(()));
    assert!(guard.submissions_allowed().is_err());
}

#[test]
fn submission_breaker_closes_on_success() {
    let guard = per_second_guard(5);
    guard.open_submission_breaker();
    guard.clock().advance(Duration::from_secs(30));
    guard.submissions_allowed().unwrap();

    guard.record_submission_success();
    assert_eq!(guard.submissions_allowed(), Ok(()));
    assert_eq!(guard.snapshot().submission_breaker, BreakerState::Closed);
}

#[test]
fn submission_breaker_reopens_on_failed_probe() {
    let guard = per_second_guard(5);
    guard.open_submission_breaker();
    guard.clock().advance(Duration::from_secs(30));
    guard.submissions_allowed().unwrap();

    guard.open_submission_breaker();
    guard.clock().advance(Duration::from_secs(29));
    assert!(guard.submissions_allowed().is_err());
    guard.clock().advance(SECOND);
    assert_eq!(guard.submissions_allowed(), Ok(()));
}

#[test]
fn submission_breaker_resets_at_midnight() {
    let settings = QuotaSettings {
        probe_interval: Duration::from_secs(3600),
        ..settings(60, 5, 0)
    };
    let guard = guard_at(settings, utc(23, 59, 0));
    guard.open_submission_breaker();
    guard.clock().advance(Duration::from_secs(59));
    assert!(guard.submissions_allowed().is_err());

    guard.clock().advance(SECOND);
    assert_eq!(guard.submissions_allowed(), Ok(()));
    assert_eq!(guard.snapshot().submission_breaker, BreakerState::Closed);
}

// === construction ===

#[test]
fn guard_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<QuotaGuard>();
    assert_send_sync::<QuotaGuard<ManualClock>>();
}

#[test]
fn invalid_settings_are_rejected() {
    let result = QuotaGuard::new(settings(60, 0, 0));
    assert!(matches!(result, Err(QuotaError::InvalidSettings(_))));
}

#[test]
fn tier_preset_builds_guard() {
    let settings = QuotaSettings::from_tier("enterprise").unwrap();
    assert!(QuotaGuard::new(settings).is_ok());
}

#[test]
fn unknown_tier_lists_known_tiers() {
    let message = QuotaSettings::from_tier("gold").unwrap_err().to_string();
    assert_eq!(
        message,
        "unknown quota tier \"gold\"; known tiers: community, starter, business, enterprise, on_premise, custom"
    );
}

// === tasks on a runtime ===

/// Waiters spawned as tasks are woken by the clock and by the queue, not only
/// by hand polling.
#[tokio::test]
async fn spawned_waiters_wake_in_priority_order() {
    let guard = std::sync::Arc::new(per_second_guard(1));
    take_now(&guard, CallCost::Free);
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    for priority in [0, 9] {
        let guard = std::sync::Arc::clone(&guard);
        let sender = sender.clone();
        let deadline = in_secs(&guard, 10);
        tokio::spawn(async move {
            let result = guard.acquire(CallCost::Free, priority, deadline).await;
            sender.send((priority, result.is_ok())).unwrap();
        });
        tokio::task::yield_now().await;
    }

    for _ in 0..2 {
        guard.clock().advance(SECOND);
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }
    assert_eq!(receiver.try_recv(), Ok((9, true)));
    assert_eq!(receiver.try_recv(), Ok((0, true)));
}
