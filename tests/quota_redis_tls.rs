//! The shared quota backend over `rediss://` with a password, against a
//! real `redis-server` serving TLS only, with a test CA made by the
//! `openssl` command. The CA reaches the client through `SSL_CERT_FILE`,
//! which the Redis client's rustls trust store reads, so this test has a
//! binary of its own and no other test reads the variable.

mod common;

use std::time::Duration;

use intezer_dynamic::config::Secret;
use intezer_dynamic::quota::{
    CallCost, QuotaGuard, QuotaSettings, SharedQuotaSettings, SharedState,
};
use tokio::time::Instant;

use common::redis_server::{make_test_certificates, RedisServer};

#[tokio::test]
async fn rediss_url_with_password_shares_quota() {
    let certificates = tempfile::tempdir().unwrap();
    let Some((ca, certificate, key)) = make_test_certificates(certificates.path()) else {
        return;
    };
    let password = "tls-horse-battery";
    let args: Vec<String> = [
        "--tls-cert-file",
        &certificate.display().to_string(),
        "--tls-key-file",
        &key.display().to_string(),
        "--tls-ca-cert-file",
        &ca.display().to_string(),
        "--tls-auth-clients",
        "no",
        "--requirepass",
        password,
    ]
    .into_iter()
    .map(String::from)
    .collect();
    let Some(redis) = RedisServer::start_with(&args, true) else {
        return;
    };
    std::env::set_var("SSL_CERT_FILE", &ca);

    let url = format!("rediss://:{password}@127.0.0.1:{}", redis.port());
    let limits = QuotaSettings {
        requests_per_minute: 60,
        burst: 1,
        ..QuotaSettings::default()
    };
    let shared = SharedQuotaSettings::new(Secret::new(url), &Secret::new("tls-test-key"), 2);
    let guard = QuotaGuard::shared(limits, shared).unwrap();
    let backend = guard.shared_backend().unwrap();
    let state = backend
        .wait_for_state(Duration::from_secs(10), |state| {
            state != SharedState::Connecting
        })
        .await;
    assert_eq!(state, SharedState::Shared);

    let deadline = Instant::now() + Duration::from_secs(5);
    let first = guard.acquire(CallCost::Free, 0, deadline).await;
    assert!(first.is_ok(), "{first:?}");
    let snapshot = guard.snapshot();
    assert_eq!(snapshot.tokens_left, Some(0));
    assert_eq!(snapshot.shared.unwrap().state, SharedState::Shared);
}
