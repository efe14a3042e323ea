//! The shared quota backend: one API key's request rate, daily file-scan
//! budget, 429 pause and upload breaker kept in Redis, so that every
//! container using the key draws from one budget.
//!
//! A [`QuotaGuard`](super::QuotaGuard) built with
//! [`QuotaGuard::shared`](super::QuotaGuard::shared) keeps its local queue
//! and requests from Redis only the token of the head of that queue: one
//! Lua script run (one round trip) per token, see `scripts`. A task spawned at
//! start connects, reads the shared pause and upload breaker every
//! [`SharedQuotaSettings::sync_interval`], and reconnects every
//! [`SharedQuotaSettings::reconnect_interval`] while Redis is unreachable.
//!
//! When a command fails or times out, the backend drops its connection and
//! the guard enforces this container's share of the limits locally
//! (fallback) until the task has reconnected. Each change of state is
//! logged once. On reconnection the day's shared count is raised to the
//! highest count this container saw, plus the file scans it granted in
//! fallback, so a restarted Redis that lost its data does not hand out the
//! day's budget again.

mod scripts;
mod settings;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;
use tokio::sync::watch;
use tokio::time::Instant;

use super::clock::lock;
use super::error::QuotaError;
use super::guard::CallCost;
use super::settings::QuotaSettings;
use scripts::{Scripts, SyncReply, SCANS_KEY_TTL_SECS};

pub(crate) use scripts::Decision;
pub use settings::{
    key_namespace, redact_url, SharedQuotaSettings, DEFAULT_COMMAND_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_RECONNECT_INTERVAL, DEFAULT_SYNC_INTERVAL,
};

/// State of the shared backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedState {
    /// The first connection attempt has not finished; the local share
    /// applies meanwhile.
    Connecting,
    /// Redis enforces the key's limits for every container.
    Shared,
    /// Redis is unreachable, so this container enforces its share of the
    /// limits locally until Redis returns.
    Fallback,
}

/// The shared backend's state and figures at one moment, for metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedSnapshot {
    pub state: SharedState,
    /// Request tokens in the shared bucket, as last read; `None` when the
    /// rate is unlimited or nothing was read yet.
    pub tokens_left: Option<u32>,
    /// File scans counted in Redis today (UTC), as last read; `None` until
    /// the first read of the day.
    pub file_scans_used_today: Option<u64>,
    /// File scans left in the shared budget today; `None` when unlimited or
    /// unknown.
    pub file_scans_left_today: Option<u64>,
}

/// The shared state as last read from Redis.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SharedView {
    /// End of a pause after HTTP 429 that any container reported.
    pub(crate) paused_until: Option<Instant>,
    /// Next 00:00 UTC while Intezer reports the quota used up for uploads.
    pub(crate) uploads_closed_until: Option<DateTime<Utc>>,
    /// File scans counted on a UTC day.
    pub(crate) used: Option<(NaiveDate, u64)>,
    pub(crate) tokens_left: Option<u32>,
    /// When the last background read of the shared state finished.
    pub(crate) read_at: Option<Instant>,
}

impl SharedView {
    /// Returns the count of `day`, when the last read was of that day.
    pub(crate) fn used_on(&self, day: NaiveDate) -> Option<u64> {
        self.used
            .and_then(|(read_day, used)| (read_day == day).then_some(used))
    }
}

/// The key-wide limits the scripts enforce.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// GCRA emission interval in µs, rounded up; 0 without a rate limit.
    interval_us: u64,
    burst: u32,
    file_scans_per_day: u64,
}

/// One connection and the number that distinguishes it from the
/// connections made before and after it.
struct Link {
    generation: u64,
    connection: MultiplexedConnection,
}

#[derive(Default)]
struct Status {
    view: SharedView,
    /// File scans granted locally while Redis was unreachable, added to the
    /// shared count on reconnection.
    fallback_scans: Option<(NaiveDate, u64)>,
}

/// Connection to Redis and the shared state of one API key. Built by
/// [`QuotaGuard::shared`](super::QuotaGuard::shared); the guard and the
/// background task hold it.
pub struct SharedQuota {
    settings: SharedQuotaSettings,
    limits: Limits,
    client: redis::Client,
    scripts: Scripts,
    link: Mutex<Option<Link>>,
    generations: AtomicU64,
    status: Mutex<Status>,
    state: watch::Sender<SharedState>,
}

// === impl SharedQuota: construction and state ===

impl SharedQuota {
    /// Checks the URL and starts the background task that connects. Fails
    /// on a URL the Redis client rejects, naming it with its password
    /// redacted, and outside a Tokio runtime.
    pub(crate) fn start(
        settings: SharedQuotaSettings,
        limits: &QuotaSettings,
    ) -> Result<Arc<SharedQuota>, QuotaError> {
        let client = redis::Client::open(settings.url.expose()).map_err(|err| {
            QuotaError::InvalidSettings(format!(
                "invalid quota_redis_url {}: {}",
                settings.redacted_url(),
                settings.scrub(&err.to_string())
            ))
        })?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            QuotaError::InvalidSettings(
                "the shared quota backend must be started inside a Tokio runtime".to_string(),
            )
        })?;
        let interval_us = match limits.requests_per_minute {
            0 => 0,
            rate => 60_000_000_u64.div_ceil(u64::from(rate)),
        };
        let (state, _) = watch::channel(SharedState::Connecting);
        let quota = Arc::new(SharedQuota {
            limits: Limits {
                interval_us,
                burst: limits.burst.max(1),
                file_scans_per_day: limits.file_scans_per_day,
            },
            settings,
            client,
            scripts: Scripts::new(),
            link: Mutex::new(None),
            generations: AtomicU64::new(0),
            status: Mutex::new(Status::default()),
            state,
        });
        runtime.spawn(keep_in_sync(Arc::downgrade(&quota)));
        Ok(quota)
    }

    pub fn settings(&self) -> &SharedQuotaSettings {
        &self.settings
    }

    pub fn state(&self) -> SharedState {
        *self.state.borrow()
    }

    /// Waits until `condition` holds for the state, or `timeout` passes.
    /// Returns the state then.
    pub async fn wait_for_state(
        &self,
        timeout: Duration,
        mut condition: impl FnMut(SharedState) -> bool,
    ) -> SharedState {
        let mut changes = self.state.subscribe();
        let _ = tokio::time::timeout(timeout, changes.wait_for(|state| condition(*state))).await;
        self.state()
    }

    /// Returns whether Redis enforces the limits now.
    pub(crate) fn is_active(&self) -> bool {
        self.state() == SharedState::Shared
    }

    pub(crate) fn view(&self) -> SharedView {
        lock(&self.status).view
    }

    pub(crate) fn snapshot(&self, today: NaiveDate) -> SharedSnapshot {
        let view = self.view();
        let used = view.used_on(today);
        let limit = self.limits.file_scans_per_day;
        SharedSnapshot {
            state: self.state(),
            tokens_left: view.tokens_left,
            file_scans_used_today: used,
            file_scans_left_today: used
                .filter(|_| limit > 0)
                .map(|used| limit.saturating_sub(used)),
        }
    }

    /// Counts a file scan granted by the local share, to add to the shared
    /// count once Redis is back.
    pub(crate) fn note_fallback_scan(&self, day: NaiveDate) {
        let mut status = lock(&self.status);
        status.fallback_scans = match status.fallback_scans {
            Some((noted_day, count)) if noted_day == day => Some((day, count + 1)),
            _ => Some((day, 1)),
        };
    }

    /// Records a state and logs the change, once per change.
    fn set_state(&self, next: SharedState, error: Option<&str>) {
        let changed = self.state.send_if_modified(|state| {
            let changed = *state != next;
            *state = next;
            changed
        });
        if !changed {
            return;
        }
        let redis = self.settings.redacted_url();
        match next {
            SharedState::Shared => tracing::info!(
                %redis,
                "quota shared through Redis with every container using this API key"
            ),
            SharedState::Fallback => tracing::warn!(
                %redis,
                error = error.unwrap_or("unknown"),
                containers = self.settings.fallback_containers,
                "Redis unreachable: this container enforces 1/containers of the quota until it returns"
            ),
            SharedState::Connecting => {}
        }
    }
}

// === impl SharedQuota: the connection ===

impl SharedQuota {
    fn link(&self) -> Option<(u64, MultiplexedConnection)> {
        lock(&self.link)
            .as_ref()
            .map(|link| (link.generation, link.connection.clone()))
    }

    /// Drops the connection of `generation` after a failed command and
    /// falls back, unless a newer connection replaced it meanwhile.
    fn fail(&self, generation: u64, message: &str) {
        let message = self.settings.scrub(message);
        let mut link = lock(&self.link);
        if link.as_ref().map(|link| link.generation) != Some(generation) {
            return;
        }
        // Leave the shared state before dropping the connection, so a guard
        // that finds Redis active always finds a connection too.
        self.set_state(SharedState::Fallback, Some(&message));
        *link = None;
    }

    /// Connects, restores the day's count, and shares again. Returns whether
    /// it connected.
    async fn connect(&self) -> bool {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.settings.connect_timeout))
            .set_response_timeout(Some(self.settings.command_timeout));
        let limit = self.settings.connect_timeout + self.settings.command_timeout;
        let attempt = self
            .client
            .get_multiplexed_async_connection_with_config(&config);
        let mut connection = match tokio::time::timeout(limit, attempt).await {
            Ok(Ok(connection)) => connection,
            Ok(Err(err)) => {
                let message = self.settings.scrub(&err.to_string());
                self.set_state(SharedState::Fallback, Some(&message));
                return false;
            }
            Err(_) => {
                let message = format!("connection timed out after {limit:?}");
                self.set_state(SharedState::Fallback, Some(&message));
                return false;
            }
        };
        if let Err(err) = self.restore_count(&mut connection).await {
            let message = self.settings.scrub(&err.to_string());
            self.set_state(SharedState::Fallback, Some(&message));
            return false;
        }

        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        *lock(&self.link) = Some(Link {
            generation,
            connection,
        });
        self.set_state(SharedState::Shared, None);
        true
    }

    /// Raises today's shared count to the highest count this container saw,
    /// then adds the file scans it granted while disconnected.
    async fn restore_count(
        &self,
        connection: &mut MultiplexedConnection,
    ) -> Result<(), redis::RedisError> {
        let today = Utc::now().date_naive();
        let (floor, extra) = {
            let status = lock(&self.status);
            let extra = match status.fallback_scans {
                Some((day, count)) if day == today => count,
                _ => 0,
            };
            (status.view.used_on(today).unwrap_or(0), extra)
        };
        if floor == 0 && extra == 0 {
            return Ok(());
        }
        let count: u64 = self
            .scripts
            .raise_count
            .key(self.scans_key(today))
            .arg(floor)
            .arg(extra)
            .arg(SCANS_KEY_TTL_SECS)
            .invoke_async(connection)
            .await?;
        let mut status = lock(&self.status);
        status.fallback_scans = None;
        status.view.used = Some((today, count));
        if extra > 0 {
            tracing::info!(
                fallback_scans = extra,
                used_today = count,
                "added the file scans taken without Redis to the shared count"
            );
        }
        Ok(())
    }

    /// Reads the shared pause, upload breaker and counters into the view.
    async fn sync(&self, generation: u64, connection: &mut MultiplexedConnection) {
        let today = Utc::now().date_naive();
        let reply = self
            .scripts
            .sync
            .key(self.key("tat"))
            .key(self.key("pause"))
            .key(self.scans_key(today))
            .key(self.key("uploads-closed"))
            .arg(self.limits.interval_us)
            .arg(self.limits.burst)
            .invoke_async::<(i64, i64, i64, i64)>(connection)
            .await;
        let reply = match reply {
            Ok(reply) => SyncReply::from_reply(reply),
            Err(err) => return self.fail(generation, &err.to_string()),
        };
        let now = Instant::now();
        let utc_now = Utc::now();
        let mut status = lock(&self.status);
        status.view = SharedView {
            paused_until: (!reply.pause_left.is_zero()).then(|| now + reply.pause_left),
            uploads_closed_until: reply.uploads_closed_for.and_then(|left| {
                chrono::Duration::from_std(left)
                    .ok()
                    .map(|left| utc_now + left)
            }),
            used: Some((today, reply.used_today)),
            tokens_left: reply.tokens_left,
            read_at: Some(now),
        };
    }
}

/// Keeps the backend connected and its view fresh for as long as the
/// backend exists.
async fn keep_in_sync(backend: Weak<SharedQuota>) {
    loop {
        let Some(quota) = backend.upgrade() else {
            return;
        };
        let next_tick = match quota.link() {
            Some((generation, mut connection)) => {
                quota.sync(generation, &mut connection).await;
                quota.settings.sync_interval
            }
            None if quota.connect().await => {
                if let Some((generation, mut connection)) = quota.link() {
                    quota.sync(generation, &mut connection).await;
                }
                quota.settings.sync_interval
            }
            None => quota.settings.reconnect_interval,
        };
        drop(quota);
        tokio::time::sleep(next_tick).await;
    }
}

// === impl SharedQuota: operations ===

impl SharedQuota {
    fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.settings.namespace)
    }

    fn scans_key(&self, day: NaiveDate) -> String {
        format!(
            "{}:scans:{}",
            self.settings.namespace,
            day.format("%Y-%m-%d")
        )
    }

    /// Asks Redis for one token, and for a file scan counted on `day`.
    /// Returns `None` when Redis did not reply: the backend has fallen back,
    /// and the caller uses the local share.
    pub(crate) async fn acquire(&self, cost: CallCost, day: NaiveDate) -> Option<Decision> {
        let (generation, mut connection) = self.link()?;
        let cost_code = match cost {
            CallCost::Free => 0,
            CallCost::FileScan => 1,
        };
        let reply = self
            .scripts
            .acquire
            .key(self.key("tat"))
            .key(self.key("pause"))
            .key(self.scans_key(day))
            .arg(cost_code)
            .arg(self.limits.interval_us)
            .arg(self.limits.burst)
            .arg(self.limits.file_scans_per_day)
            .arg(SCANS_KEY_TTL_SECS)
            .invoke_async::<(i64, i64, i64)>(&mut connection)
            .await;
        let reply = match reply {
            Ok(reply) => reply,
            Err(err) => {
                self.fail(generation, &err.to_string());
                return None;
            }
        };
        let Some(decision) = Decision::from_reply(reply) else {
            self.fail(generation, &format!("unexpected reply {reply:?}"));
            return None;
        };

        let mut status = lock(&self.status);
        match decision {
            Decision::Granted {
                tokens_left,
                used_today,
            } => {
                status.view.tokens_left = tokens_left;
                status.view.used = Some((day, used_today));
            }
            Decision::Wait(_) => status.view.tokens_left = Some(0),
            Decision::Paused(left) => status.view.paused_until = Some(Instant::now() + left),
            Decision::BudgetSpent { used_today } => status.view.used = Some((day, used_today)),
        }
        Some(decision)
    }

    /// Shares a pause of `length` after HTTP 429 with the other containers.
    pub(crate) fn publish_pause(self: &Arc<Self>, length: Duration) {
        let micros = u64::try_from(length.as_micros()).unwrap_or(u64::MAX);
        self.spawn_write("pause", move |quota, mut connection| async move {
            quota
                .scripts
                .pause
                .key(quota.key("pause"))
                .arg(micros)
                .invoke_async::<i64>(&mut connection)
                .await
                .map(|_| ())
        });
    }

    /// Stops the other containers' uploads for `length` (until 00:00 UTC)
    /// after Intezer responded to an upload with insufficient quota.
    pub(crate) fn publish_uploads_closed(self: &Arc<Self>, length: Duration) {
        let millis = u64::try_from(length.as_millis()).unwrap_or(u64::MAX).max(1);
        self.spawn_write("upload breaker", move |quota, mut connection| async move {
            redis::cmd("SET")
                .arg(quota.key("uploads-closed"))
                .arg(1)
                .arg("PX")
                .arg(millis)
                .query_async::<()>(&mut connection)
                .await
        });
    }

    /// Lets every container upload again after an upload succeeded.
    pub(crate) fn publish_uploads_reopened(self: &Arc<Self>) {
        self.spawn_write("upload breaker", move |quota, mut connection| async move {
            redis::cmd("DEL")
                .arg(quota.key("uploads-closed"))
                .query_async::<()>(&mut connection)
                .await
        });
    }

    /// Raises the shared count of `day` to `used`, Intezer's own figure.
    pub(crate) fn publish_seed(self: &Arc<Self>, day: NaiveDate, used: u64) {
        {
            let mut status = lock(&self.status);
            let seen = status.view.used_on(day).unwrap_or(0);
            status.view.used = Some((day, seen.max(used)));
        }
        self.spawn_write("file-scan count", move |quota, mut connection| async move {
            quota
                .scripts
                .raise_count
                .key(quota.scans_key(day))
                .arg(used)
                .arg(0)
                .arg(SCANS_KEY_TTL_SECS)
                .invoke_async::<u64>(&mut connection)
                .await
                .map(|_| ())
        });
    }

    /// Gives back a file scan counted in Redis on `day`.
    pub(crate) fn publish_refund(self: &Arc<Self>, day: NaiveDate) {
        self.spawn_write(
            "file-scan refund",
            move |quota, mut connection| async move {
                quota
                    .scripts
                    .refund
                    .key(quota.scans_key(day))
                    .invoke_async::<u64>(&mut connection)
                    .await
                    .map(|_| ())
            },
        );
    }

    /// Runs `write` on the current connection in a task of its own, so the
    /// caller never waits on Redis. Without a connection, or outside a Tokio
    /// runtime, the write is skipped: the change still holds locally.
    fn spawn_write<F, Fut>(self: &Arc<Self>, operation: &'static str, write: F)
    where
        F: FnOnce(Arc<SharedQuota>, MultiplexedConnection) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<(), redis::RedisError>> + Send,
    {
        let Some((generation, connection)) = self.link() else {
            tracing::debug!(operation, "not shared: Redis is unreachable");
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::debug!(operation, "not shared: no Tokio runtime");
            return;
        };
        let quota = Arc::clone(self);
        runtime.spawn(async move {
            if let Err(err) = write(Arc::clone(&quota), connection).await {
                quota.fail(generation, &err.to_string());
            }
        });
    }
}
