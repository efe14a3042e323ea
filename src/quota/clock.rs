//! The clocks a [`QuotaGuard`](super::QuotaGuard) reads and sleeps on.
//!
//! A guard needs three views of time: governor's clock for the request rate,
//! a monotonic [`Instant`] for deadlines, pauses and breakers, and the UTC
//! date for the daily budget. [`QuotaClock`] supplies all three from one
//! source so they cannot drift apart. [`SystemClock`] follows tokio's clock;
//! [`ManualClock`] moves only when a test calls [`ManualClock::advance`].

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use chrono::{DateTime, Utc};
use governor::clock::{Clock, FakeRelativeClock, Reference};
use governor::nanos::Nanos;
use tokio::time::Instant;

/// Time source of a quota guard.
pub trait QuotaClock: Send + Sync + 'static {
    /// The clock handed to governor's rate limiter. It must advance together
    /// with [`QuotaClock::now`].
    type Rate: Clock + Send + Sync + 'static;

    /// Returns a handle to the rate clock that shares this clock's time.
    fn rate_clock(&self) -> Self::Rate;

    /// Returns the current monotonic time, comparable with callers' deadlines.
    fn now(&self) -> Instant;

    /// Returns the current wall-clock time, used for the 00:00 UTC reset.
    fn utc_now(&self) -> DateTime<Utc>;

    /// Completes once [`QuotaClock::now`] has reached `at`.
    fn sleep_until(&self, at: Instant) -> impl Future<Output = ()> + Send;
}

// === impl SystemClock ===

/// The production clock: tokio's [`Instant`] and sleep, and the system's UTC
/// time. Under tokio's paused test clock the rate clock pauses too, because
/// it is derived from tokio's time.
#[derive(Debug, Clone)]
pub struct SystemClock {
    rate: TokioRateClock,
}

impl SystemClock {
    pub fn new() -> Self {
        SystemClock {
            rate: TokioRateClock {
                origin: Instant::now(),
            },
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

impl QuotaClock for SystemClock {
    type Rate = TokioRateClock;

    fn rate_clock(&self) -> TokioRateClock {
        self.rate.clone()
    }

    fn now(&self) -> Instant {
        Instant::now()
    }

    fn utc_now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep_until(&self, at: Instant) -> impl Future<Output = ()> + Send {
        tokio::time::sleep_until(at)
    }
}

/// Governor clock that counts nanoseconds since `origin` on tokio's clock.
#[derive(Debug, Clone)]
pub struct TokioRateClock {
    origin: Instant,
}

impl Clock for TokioRateClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        Nanos::from(Instant::now().saturating_duration_since(self.origin))
    }
}

// === impl ManualClock ===

/// A clock that does not move until [`ManualClock::advance`] moves it, for
/// deterministic tests and simulations. Clones share the same time.
///
/// Its rate clock is governor's [`FakeRelativeClock`]; the monotonic and UTC
/// times are fixed origins plus the time that clock has advanced.
#[derive(Debug, Clone)]
pub struct ManualClock {
    inner: Arc<ManualInner>,
}

#[derive(Debug)]
struct ManualInner {
    rate: FakeRelativeClock,
    origin: Instant,
    utc_origin: DateTime<Utc>,
    sleepers: Mutex<Vec<Waker>>,
}

impl ManualClock {
    /// Creates a clock whose wall-clock time starts at `utc_origin`.
    pub fn new(utc_origin: DateTime<Utc>) -> Self {
        ManualClock {
            inner: Arc::new(ManualInner {
                rate: FakeRelativeClock::default(),
                origin: Instant::now(),
                utc_origin,
                sleepers: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Moves time forward by `by` and wakes every sleeper so it can check
    /// whether its time has come.
    pub fn advance(&self, by: Duration) {
        self.inner.rate.advance(by);
        let sleepers = std::mem::take(&mut *lock(&self.inner.sleepers));
        for waker in sleepers {
            waker.wake();
        }
    }

    /// Returns the time advanced since the clock was created.
    pub fn elapsed(&self) -> Duration {
        let now = self.inner.rate.now();
        now.duration_since(Nanos::from(0)).into()
    }
}

impl QuotaClock for ManualClock {
    type Rate = FakeRelativeClock;

    fn rate_clock(&self) -> FakeRelativeClock {
        self.inner.rate.clone()
    }

    fn now(&self) -> Instant {
        self.inner.origin + self.elapsed()
    }

    fn utc_now(&self) -> DateTime<Utc> {
        let elapsed = chrono::Duration::from_std(self.elapsed()).unwrap_or(chrono::Duration::MAX);
        self.inner.utc_origin + elapsed
    }

    fn sleep_until(&self, at: Instant) -> impl Future<Output = ()> + Send {
        ManualSleep {
            clock: self.clone(),
            at,
        }
    }
}

/// Future of [`ManualClock::sleep_until`].
struct ManualSleep {
    clock: ManualClock,
    at: Instant,
}

impl Future for ManualSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.clock.now() >= self.at {
            return Poll::Ready(());
        }
        lock(&self.clock.inner.sleepers).push(cx.waker().clone());
        Poll::Pending
    }
}

/// Locks `mutex` even when a holder panicked. The guarded values are counters
/// and small state machines, so using them as they are beats failing every
/// later call.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
