//! The shared quota backend against a real `redis-server` (Debian's
//! package; see `tests/common/redis_server.rs`) and the embedded Intezer
//! simulator on 127.0.0.1.
//!
//! Several guards in one process, each with its own Redis connection,
//! stand for the containers that share one API key. Tests that need real
//! time (the rate, an outage) run for tens of seconds. The others poll for
//! a state with a time limit, and assert on the state, not on the time.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use intezer_dynamic::config::Secret;
use intezer_dynamic::intezer::{IntezerClient, IntezerSettings, RetryPolicy};
use intezer_dynamic::quota::shared::key_namespace;
use intezer_dynamic::quota::{
    CallCost, QuotaError, QuotaGuard, QuotaSettings, SharedQuotaSettings, SharedState,
};
use intezer_dynamic::simulator::intezer::{
    DefaultOptions, IntezerBehaviour, IntezerSimHandle, IntezerSimulator,
};
use redis::AsyncCommands;
use tokio::time::Instant;

use common::logs::CapturedLogs;
use common::redis_server::RedisServer;

const API_KEY: &str = "shared-quota-test-key";

/// Maximum wait for a guard to reach a backend state.
const STATE_LIMIT: Duration = Duration::from_secs(10);

/// Length of the window Intezer's per-minute rate is counted over.
const WINDOW: Duration = Duration::from_secs(60);

fn key_limits(requests_per_minute: u32, burst: u32, file_scans_per_day: u64) -> QuotaSettings {
    QuotaSettings {
        requests_per_minute,
        burst,
        file_scans_per_day,
        ..QuotaSettings::default()
    }
}

/// Settings of one container's shared quota. The command timeout is longer
/// than the default, so that a stall of a loaded test machine is not taken
/// for a Redis outage, which would make the guard fall back to its local
/// share mid-test.
fn shared_settings(url: &str, containers: u32) -> SharedQuotaSettings {
    SharedQuotaSettings {
        command_timeout: Duration::from_secs(2),
        ..SharedQuotaSettings::new(Secret::new(url), &Secret::new(API_KEY), containers)
    }
}

fn shared_guard(url: &str, limits: QuotaSettings, containers: u32) -> Arc<QuotaGuard> {
    Arc::new(QuotaGuard::shared(limits, shared_settings(url, containers)).unwrap())
}

fn state_of(guard: &QuotaGuard) -> SharedState {
    guard.shared_backend().unwrap().state()
}

/// Waits until every guard's backend is in `wanted`, then checks it.
async fn wait_for_all(guards: &[Arc<QuotaGuard>], wanted: SharedState) {
    for guard in guards {
        let backend = guard.shared_backend().unwrap();
        let state = backend
            .wait_for_state(STATE_LIMIT, |state| state == wanted)
            .await;
        assert_eq!(state, wanted, "backend did not reach {wanted:?}");
    }
}

async fn redis_connection(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

fn scans_key() -> String {
    format!(
        "{}:scans:{}",
        key_namespace(API_KEY),
        Utc::now().date_naive().format("%Y-%m-%d")
    )
}

async fn start_simulator(rate_limit_per_minute: Option<u32>) -> IntezerSimHandle {
    let options = DefaultOptions {
        rate_limit_per_minute,
        ..DefaultOptions::default()
    };
    IntezerSimulator::start(IntezerBehaviour::Default(options), 0)
        .await
        .unwrap()
}

/// Builds a client that makes one attempt per call, so every simulator
/// call is one quota token.
fn client(simulator: &IntezerSimHandle, guard: Arc<QuotaGuard>) -> Arc<IntezerClient> {
    let mut settings = IntezerSettings::new(simulator.base_url(), Secret::new(API_KEY));
    settings.retry = RetryPolicy {
        retry_forever: false,
        max_attempts: 1,
        ..RetryPolicy::default()
    };
    Arc::new(IntezerClient::new(settings).unwrap().with_quota(guard))
}

/// Returns the analysis id container `index` reads, so the simulator's log
/// distinguishes the containers.
fn analysis_id(index: usize) -> String {
    format!("00000000-0000-4000-8000-{index:012}")
}

/// Sends one `GET /analyses/{id}` for container `index` every `every`
/// until `stop`, each call giving up at `call_deadline` after it starts
/// (or at `stop`, whichever is first). Returns the spawned demand.
fn demand(
    client: Arc<IntezerClient>,
    index: usize,
    every: Duration,
    stop: Instant,
    call_deadline: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let id = analysis_id(index);
        let mut calls = Vec::new();
        let mut next = Instant::now();
        while next < stop {
            tokio::time::sleep_until(next).await;
            let (client, id) = (client.clone(), id.clone());
            let deadline = (Instant::now() + call_deadline).min(stop);
            calls.push(tokio::spawn(async move {
                let _ = client.analysis(&id, deadline).await;
            }));
            next += every;
        }
        for call in calls {
            let _ = call.await;
        }
    })
}

/// Times (from the simulator's start) of the calls that cost a token:
/// every call but access-token requests, optionally of one container.
fn token_calls(simulator: &IntezerSimHandle, container: Option<usize>) -> Vec<Duration> {
    let mut times: Vec<Duration> = simulator
        .calls()
        .into_iter()
        .filter(|call| call.endpoint != "get-access-token")
        .filter(|call| container.is_none_or(|index| call.path.contains(&analysis_id(index))))
        .map(|call| call.received_after)
        .collect();
    times.sort();
    times
}

/// Returns the maximum number of calls in a window of length `window` that
/// starts at a call.
fn busiest_window(times: &[Duration], window: Duration) -> usize {
    times
        .iter()
        .enumerate()
        .map(|(index, start)| {
            times[index..]
                .iter()
                .take_while(|at| **at < *start + window)
                .count()
        })
        .max()
        .unwrap_or(0)
}

fn count_between(times: &[Duration], from: Duration, to: Duration) -> usize {
    times.iter().filter(|at| **at >= from && **at < to).count()
}

/// Three containers share a key of 60 requests a minute (burst 1) under a
/// demand of three times that for 60 s. Intezer (the simulator, limited to
/// 60 in any 60 s window like a real key) receives at most 60 calls in any 60 s
/// window and at least 90 % of the budget. With burst `b` the bound would
/// be `60 + b - 1`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_containers_share_one_rate() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let simulator = start_simulator(Some(60)).await;
    let guards: Vec<Arc<QuotaGuard>> = (0..3)
        .map(|_| shared_guard(&redis.url(), key_limits(60, 1, 0), 3))
        .collect();
    wait_for_all(&guards, SharedState::Shared).await;

    // Each container sends one request a second: 180 a minute against 60
    // allowed.
    let stop = Instant::now() + Duration::from_secs(60);
    let runs: Vec<_> = guards
        .iter()
        .enumerate()
        .map(|(index, guard)| {
            let client = client(&simulator, guard.clone());
            demand(client, index, Duration::from_secs(1), stop, WINDOW)
        })
        .collect();
    for run in runs {
        run.await.unwrap();
    }

    let times = token_calls(&simulator, None);
    eprintln!(
        "three containers: {} calls in 60 s, busiest 60 s window {}",
        times.len(),
        busiest_window(&times, WINDOW)
    );
    let rate_limited = simulator
        .calls()
        .iter()
        .filter(|call| call.status == 429)
        .count();
    assert!(
        busiest_window(&times, WINDOW) <= 60,
        "{} calls in one 60 s window",
        busiest_window(&times, WINDOW)
    );
    assert_eq!(rate_limited, 0, "the simulator answered 429");
    assert!(
        times.len() >= 54,
        "only {} calls in 60 s, below 90 % of the budget",
        times.len()
    );
    for guard in &guards {
        assert_eq!(state_of(guard), SharedState::Shared);
    }
}

/// Redis dies mid-run: each container goes on at its share (20 of the 60
/// requests a minute), and once Redis is back on the same port they share
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_falls_back_to_share_and_recovers() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let simulator = start_simulator(None).await;
    let simulator_started = Instant::now();
    let guards: Vec<Arc<QuotaGuard>> = (0..3)
        .map(|_| shared_guard(&redis.url(), key_limits(60, 1, 0), 3))
        .collect();
    wait_for_all(&guards, SharedState::Shared).await;

    let stop = Instant::now() + Duration::from_secs(40);
    let runs: Vec<_> = guards
        .iter()
        .enumerate()
        .map(|(index, guard)| {
            let client = client(&simulator, guard.clone());
            let call_deadline = Duration::from_secs(10);
            demand(
                client,
                index,
                Duration::from_millis(500),
                stop,
                call_deadline,
            )
        })
        .collect();

    tokio::time::sleep(Duration::from_secs(8)).await;
    redis.kill();
    let killed_at = simulator_started.elapsed();
    wait_for_all(&guards, SharedState::Fallback).await;

    tokio::time::sleep(Duration::from_secs(15)).await;
    let restarted_at = simulator_started.elapsed();
    redis.restart();
    wait_for_all(&guards, SharedState::Shared).await;
    let shared_again_at = simulator_started.elapsed();

    for run in runs {
        run.await.unwrap();
    }
    let ended_at = simulator_started.elapsed();

    // During the outage each container keeps sending, at its share of
    // 20 a minute: at most one per 3 s plus its burst of 1.
    let outage_from = killed_at + Duration::from_secs(2);
    let outage = restarted_at.saturating_sub(outage_from);
    let share_bound = (outage.as_secs_f64() / 3.0).floor() as usize + 1;
    for index in 0..3 {
        let times = token_calls(&simulator, Some(index));
        let during_outage = count_between(&times, outage_from, restarted_at);
        eprintln!("container {index}: {during_outage} calls in {outage:?} without Redis (bound {share_bound})");
        assert!(
            during_outage >= 2,
            "container {index} sent {during_outage} calls during the outage"
        );
        assert!(
            during_outage <= share_bound,
            "container {index} sent {during_outage} calls during the outage, over its share of {share_bound}"
        );
    }

    // Shared again: all three together stay within the key's rate.
    let all = token_calls(&simulator, None);
    let shared_from = shared_again_at + Duration::from_secs(1);
    let shared_span = ended_at.saturating_sub(shared_from);
    let after = count_between(&all, shared_from, ended_at);
    let key_bound = shared_span.as_secs() as usize + 2;
    eprintln!("{after} calls in {shared_span:?} after Redis returned (bound {key_bound})");
    assert!(
        after <= key_bound,
        "{after} calls in {shared_span:?} after Redis returned, over the shared {key_bound}"
    );
    let mut connection = redis_connection(&redis).await;
    let tat_key = format!("{}:tat", key_namespace(API_KEY));
    let tat: Option<String> = connection.get(&tat_key).await.unwrap();
    assert!(
        tat.is_some(),
        "no shared rate state in Redis after the restart"
    );
}

/// Five file scans a day for the key: whichever containers take them, the
/// sixth is rejected everywhere, while free calls go on.
#[tokio::test]
async fn shared_budget_stops_every_container() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let guards: Vec<Arc<QuotaGuard>> = (0..3)
        .map(|_| shared_guard(&redis.url(), key_limits(0, 1, 5), 3))
        .collect();
    wait_for_all(&guards, SharedState::Shared).await;
    let deadline = Instant::now() + Duration::from_secs(5);

    for turn in 0..5 {
        let guard = &guards[turn % 3];
        let permit = guard.acquire(CallCost::FileScan, 0, deadline).await;
        assert!(permit.is_ok(), "scan {turn}: {permit:?}");
    }
    for guard in &guards {
        let sixth = guard.acquire(CallCost::FileScan, 0, deadline).await;
        assert!(
            matches!(sixth, Err(QuotaError::BudgetExhausted { .. })),
            "{sixth:?}"
        );
        let free = guard.acquire(CallCost::Free, 0, deadline).await;
        assert!(free.is_ok(), "{free:?}");
    }

    let mut connection = redis_connection(&redis).await;
    let used: u64 = connection.get(scans_key()).await.unwrap();
    assert_eq!(used, 5);
    let snapshot = guards[0].snapshot();
    assert_eq!(snapshot.file_scans_left_today, Some(0));
    assert_eq!(snapshot.shared.unwrap().file_scans_used_today, Some(5));
}

/// A 429 seen by one container pauses the others: their next call fails at
/// once when the pause outlasts its deadline, and an idle container's
/// snapshot shows the pause after its next read of Redis.
#[tokio::test]
async fn pause_reaches_other_containers() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let guards: Vec<Arc<QuotaGuard>> = (0..2)
        .map(|_| shared_guard(&redis.url(), key_limits(0, 1, 0), 2))
        .collect();
    wait_for_all(&guards, SharedState::Shared).await;

    guards[0].pause_until(Instant::now() + Duration::from_secs(30));
    let pause_key = format!("{}:pause", key_namespace(API_KEY));
    let mut connection = redis_connection(&redis).await;
    let written = Instant::now() + STATE_LIMIT;
    while !connection.exists::<_, bool>(&pause_key).await.unwrap() {
        assert!(Instant::now() < written, "the pause never reached Redis");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let deadline = Instant::now() + Duration::from_secs(1);
    let other = guards[1].acquire(CallCost::Free, 0, deadline).await;
    assert!(matches!(other, Err(QuotaError::Paused { .. })), "{other:?}");
    assert!(guards[1].snapshot().paused_until.is_some());

    let idle = shared_guard(&redis.url(), key_limits(0, 1, 0), 2);
    wait_for_all(std::slice::from_ref(&idle), SharedState::Shared).await;
    let seen_by = Instant::now() + STATE_LIMIT;
    while idle.snapshot().paused_until.is_none() {
        assert!(
            Instant::now() < seen_by,
            "an idle container never saw the pause"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `condition` every 50 ms until it holds or [`STATE_LIMIT`] passes.
async fn eventually(mut condition: impl FnMut() -> bool) -> bool {
    let limit = Instant::now() + STATE_LIMIT;
    while Instant::now() < limit {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    condition()
}

/// Intezer's "insufficient quota" response to one container's upload stops
/// the other containers' uploads, and its successful probe upload lets them
/// upload again.
#[tokio::test]
async fn upload_breaker_reaches_other_containers() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let guards: Vec<Arc<QuotaGuard>> = (0..2)
        .map(|_| shared_guard(&redis.url(), key_limits(0, 1, 0), 2))
        .collect();
    wait_for_all(&guards, SharedState::Shared).await;
    assert!(guards[1].submissions_allowed().is_ok());

    guards[0].open_submission_breaker();
    let stopped = eventually(|| guards[1].submissions_allowed().is_err()).await;
    assert!(stopped, "the other container kept uploading");
    let rejected = guards[1].submissions_allowed();
    assert!(
        matches!(rejected, Err(QuotaError::QuotaExhausted { .. })),
        "{rejected:?}"
    );

    guards[0].record_submission_success();
    let reopened = eventually(|| guards[1].submissions_allowed().is_ok()).await;
    assert!(reopened, "uploads stayed stopped after a successful upload");
}

/// Every key the backend writes is under the namespace derived from the API
/// key's hash, and none contains the API key.
#[tokio::test]
async fn redis_keys_never_contain_api_key() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let guard = shared_guard(&redis.url(), key_limits(60, 5, 100), 1);
    wait_for_all(std::slice::from_ref(&guard), SharedState::Shared).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let _scan = guard
        .acquire(CallCost::FileScan, 0, deadline)
        .await
        .unwrap();
    guard.pause_until(Instant::now() + Duration::from_secs(5));
    guard.open_submission_breaker();

    let mut connection = redis_connection(&redis).await;
    let namespace = key_namespace(API_KEY);
    let expected = [
        format!("{namespace}:tat"),
        format!("{namespace}:pause"),
        format!("{namespace}:uploads-closed"),
        scans_key(),
    ];
    let mut keys: Vec<String> = Vec::new();
    let written = Instant::now() + STATE_LIMIT;
    while keys.len() < expected.len() {
        assert!(Instant::now() < written, "keys in Redis: {keys:?}");
        keys = connection.keys("*").await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    keys.sort();
    let mut expected = expected.to_vec();
    expected.sort();
    assert_eq!(keys, expected);
    for key in &keys {
        assert!(!key.contains(API_KEY), "{key}");
    }
}

/// The file scans counted before a Redis crash and those taken in fallback
/// are both in the shared count once an empty Redis is back.
#[tokio::test]
async fn count_survives_redis_restart() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let guard = shared_guard(&redis.url(), key_limits(0, 1, 100), 1);
    wait_for_all(std::slice::from_ref(&guard), SharedState::Shared).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    for _ in 0..4 {
        let _scan = guard
            .acquire(CallCost::FileScan, 0, deadline)
            .await
            .unwrap();
    }

    redis.kill();
    wait_for_all(std::slice::from_ref(&guard), SharedState::Fallback).await;
    for _ in 0..2 {
        let scan = guard.acquire(CallCost::FileScan, 0, deadline).await;
        assert!(scan.is_ok(), "{scan:?}");
    }
    assert_eq!(guard.snapshot().file_scans_used_today, 6);

    redis.restart();
    wait_for_all(std::slice::from_ref(&guard), SharedState::Shared).await;
    let mut connection = redis_connection(&redis).await;
    let used: u64 = connection.get(scans_key()).await.unwrap();
    assert_eq!(used, 6);
}

/// Without Redis at start, the guard enforces its share at once: one
/// request every 3 s of a 60-a-minute key split over 3 containers.
#[tokio::test]
async fn unreachable_redis_enforces_share() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url();
    redis.kill();
    let guard = shared_guard(&url, key_limits(60, 1, 0), 3);
    wait_for_all(std::slice::from_ref(&guard), SharedState::Fallback).await;

    let deadline = Instant::now() + Duration::from_secs(1);
    let first = guard.acquire(CallCost::Free, 0, deadline).await;
    assert!(first.is_ok(), "{first:?}");
    let second = guard.acquire(CallCost::Free, 0, deadline).await;
    let Err(QuotaError::DeadlineTooClose { wait, .. }) = second else {
        panic!("expected a deadline error, got {second:?}");
    };
    assert!(wait > Duration::from_secs(2), "{wait:?}");
    assert_eq!(
        guard.snapshot().shared.unwrap().state,
        SharedState::Fallback
    );
}

/// The ACL rule `docs/quota.md` gives for a dedicated Redis user.
const DOCUMENTED_ACL_RULE: &str =
    "~intezer-dynamic:* +evalsha +eval +script|load +get +set +del +incr +decr +expire +pttl +time";

/// A Redis user limited to the commands and keys `docs/quota.md` lists can
/// run every operation of the backend without one failure.
#[tokio::test]
async fn acl_user_with_documented_rule_shares() {
    let acl_dir = tempfile::tempdir().unwrap();
    let acl_file = acl_dir.path().join("users.acl");
    let rule = format!("user default off\nuser quota on >acl-pass {DOCUMENTED_ACL_RULE}\n");
    std::fs::write(&acl_file, rule).unwrap();
    let args = vec!["--aclfile".to_string(), acl_file.display().to_string()];
    let Some(redis) = RedisServer::start_with(&args, false) else {
        return;
    };
    let logs = CapturedLogs::default();
    let _logging = logs.capture();
    let url = format!("redis://quota:acl-pass@127.0.0.1:{}/0", redis.port());
    let guard = shared_guard(&url, key_limits(60, 5, 100), 2);
    wait_for_all(std::slice::from_ref(&guard), SharedState::Shared).await;

    let deadline = Instant::now() + Duration::from_secs(5);
    let scan = guard
        .acquire(CallCost::FileScan, 0, deadline)
        .await
        .unwrap();
    guard.refund(scan);
    guard.seed_used_today(3);
    guard.pause_until(Instant::now() + Duration::from_millis(100));
    guard.open_submission_breaker();
    guard.record_submission_success();

    // Let the writes and two background reads run. A rejected command
    // switches the backend to fallback, which logs once even when the
    // reconnection that follows succeeds.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let text = logs.text();
    assert!(!text.contains("Redis unreachable"), "{text}");
    assert_eq!(state_of(&guard), SharedState::Shared);
    let shared = guard.snapshot().shared.unwrap();
    assert_eq!(shared.file_scans_used_today, Some(3));
}

/// A wrong Redis password falls back, the right one shares, and neither
/// password shows in any log line, error or `Debug` output.
#[tokio::test]
async fn redis_password_never_shown() {
    let right = "right-horse-battery";
    let wrong = "wrong-horse-staple";
    let args = vec!["--requirepass".to_string(), right.to_string()];
    let Some(redis) = RedisServer::start_with(&args, false) else {
        return;
    };
    let logs = CapturedLogs::default();
    let _logging = logs.capture();

    let wrong_url = format!("redis://:{wrong}@127.0.0.1:{}", redis.port());
    let rejected = shared_guard(&wrong_url, key_limits(60, 1, 0), 2);
    wait_for_all(std::slice::from_ref(&rejected), SharedState::Fallback).await;
    let right_url = format!("redis://:{right}@127.0.0.1:{}", redis.port());
    let accepted = shared_guard(&right_url, key_limits(60, 1, 0), 2);
    wait_for_all(std::slice::from_ref(&accepted), SharedState::Shared).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let _sent = accepted.acquire(CallCost::Free, 0, deadline).await.unwrap();

    let invalid = QuotaGuard::shared(
        key_limits(60, 1, 0),
        shared_settings(&format!("redis://:{wrong}@127.0.0.1:99999999"), 2),
    );
    let invalid = invalid.err().expect("an invalid port is rejected");
    let settings_debug = format!("{:?}", shared_settings(&right_url, 2));

    let text = logs.text();
    assert!(text.contains("Redis unreachable"), "{text}");
    assert!(text.contains("quota shared through Redis"), "{text}");
    assert!(text.contains(":***@127.0.0.1"), "{text}");
    for shown in [text, invalid.to_string(), settings_debug] {
        assert!(!shown.contains(wrong), "{shown}");
        assert!(!shown.contains(right), "{shown}");
    }
}
