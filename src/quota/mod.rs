//! Quota guard for one Intezer API key: request rate, daily file-scan
//! budget, 429 pauses and circuit breakers, shared by every caller.
//!
//! Layout:
//! * `guard` contains [`QuotaGuard`], its queue of waiters and its feedback
//!   methods (pause, outcomes, submission breaker, seeding);
//! * `rate` wraps governor's limiter for the request rate;
//! * `budget` counts file scans per UTC day;
//! * `breaker` holds the outage and submission breakers;
//! * `clock` supplies time, real ([`SystemClock`]) or test ([`ManualClock`]);
//! * `settings` and `tiers` build [`QuotaSettings`], the latter from the
//!   presets in `config/quota-tiers.yml`;
//! * `limiter` keeps the plain [`Limiter`] the HTTP client uses;
//! * `shared` keeps one key's limits in Redis for every container that uses
//!   the key, with [`QuotaGuard::shared`].

mod breaker;
mod budget;
mod clock;
mod error;
mod guard;
mod limiter;
mod rate;
mod settings;
pub mod shared;
mod tiers;

pub use breaker::{BreakerState, CallOutcome};
pub use clock::{ManualClock, QuotaClock, SystemClock, TokioRateClock};
pub use error::QuotaError;
pub use guard::{CallCost, Permit, QuotaGuard, QuotaSnapshot};
pub use limiter::Limiter;
pub use settings::{
    QuotaSettings, DEFAULT_MAX_JITTER, DEFAULT_OUTAGE_THRESHOLD, DEFAULT_PROBE_INTERVAL,
};
pub use shared::{SharedQuotaSettings, SharedSnapshot, SharedState};
pub use tiers::{QuotaOverrides, CUSTOM_TIER, TIER_PRESETS_YAML};

tokio::task_local! {
    /// The AL priority of the task a request is made for; higher is served
    /// first when tokens are scarce. Requests made outside a scope use 0.
    pub static TASK_PRIORITY: i64;
}

/// The priority of the current task, or 0 outside [`TASK_PRIORITY`].
pub fn current_priority() -> i64 {
    TASK_PRIORITY.try_with(|priority| *priority).unwrap_or(0)
}
