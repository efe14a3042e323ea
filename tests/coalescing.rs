//! Tasks that ask Intezer the same thing at once share one request, and a
//! found analysis answers repeats from the cache, so concurrency never
//! multiplies quota-counted calls.

mod common;

use std::sync::Arc;
use std::time::Duration;

use actix::Actor;
use futures_util::future::join_all;
use serde_json::json;
use tokio::time::Instant;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use common::intezer_mock::{api_path, client, mount_token, ANALYSIS_ID, SHA256};
use intezer_dynamic::actors::intezer_lookup::{IntezerLookup, LookupHash, LookupOutcome};
use intezer_dynamic::actors::submitter::{SubmitFile, Submitted, Submitter};

fn lookup(deadline: Instant) -> LookupHash {
    LookupHash {
        sha256: SHA256.to_string(),
        private_only: false,
        deadline,
        priority: 1,
        span: tracing::Span::none(),
    }
}

async fn mount_found(server: &MockServer, calls: u64) {
    let body =
        json!({"result": {"analysis_id": ANALYSIS_ID, "sha256": SHA256, "verdict": "malicious"}});
    Mock::given(method("GET"))
        .and(path(api_path(&format!("/files/{SHA256}"))))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(body)
                .set_delay(Duration::from_millis(200)),
        )
        .expect(calls)
        .mount(server)
        .await;
}

/// Twenty tasks looking up one hash at once make one lookup.
#[actix_rt::test]
async fn concurrent_lookups_share_one_request() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    mount_found(&server, 1).await;
    let actor = IntezerLookup::new(Arc::new(client(&server)), 64, Duration::ZERO).start();
    let deadline = Instant::now() + Duration::from_secs(10);

    let answers = join_all((0..20).map(|_| actor.send(lookup(deadline)))).await;

    for answer in answers {
        let outcome = answer.unwrap().unwrap().unwrap();
        assert!(matches!(outcome, LookupOutcome::Found(_)), "{outcome:?}");
    }
}

/// A found analysis serves a later lookup of the same hash from the cache.
#[actix_rt::test]
async fn repeated_lookup_uses_cache() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    mount_found(&server, 1).await;
    let actor = IntezerLookup::new(Arc::new(client(&server)), 64, Duration::from_secs(600)).start();
    let deadline = Instant::now() + Duration::from_secs(10);

    let first = actor
        .send(lookup(deadline))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let second = actor
        .send(lookup(deadline))
        .await
        .unwrap()
        .unwrap()
        .unwrap();

    assert_eq!(first, second);
}

/// With the cache off, every lookup after the first one ended is sent.
#[actix_rt::test]
async fn cache_off_sends_every_lookup() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    mount_found(&server, 2).await;
    let actor = IntezerLookup::new(Arc::new(client(&server)), 64, Duration::ZERO).start();
    let deadline = Instant::now() + Duration::from_secs(10);

    actor
        .send(lookup(deadline))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    actor
        .send(lookup(deadline))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// Five tasks submitting the same unknown file at once make one upload.
#[actix_rt::test]
async fn concurrent_submissions_share_one_upload() {
    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    Mock::given(method("POST"))
        .and(path(api_path("/analyze")))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"result_url": format!("/analyses/{ANALYSIS_ID}")}))
                .set_delay(Duration::from_millis(200)),
        )
        .expect(1)
        .mount(&server)
        .await;
    let actor = Submitter::new(Arc::new(client(&server)), 64).start();
    let sample = common::sample("elf_true");
    let deadline = Instant::now() + Duration::from_secs(10);
    let submit = || SubmitFile {
        path: sample.clone(),
        file_name: "true".to_string(),
        sha256: SHA256.to_string(),
        deadline,
        priority: 1,
        span: tracing::Span::none(),
    };

    let answers = join_all((0..5).map(|_| actor.send(submit()))).await;

    for answer in answers {
        let submitted = answer.unwrap().unwrap().unwrap();
        assert_eq!(
            submitted,
            Submitted::Created {
                analysis_id: ANALYSIS_ID.to_string()
            }
        );
    }
}

/// After Intezer refuses an upload for quota, fifty more unknown files make
/// no further upload attempt: the submission breaker keeps them back.
#[actix_rt::test]
async fn quota_refusal_stops_later_uploads() {
    use intezer_dynamic::intezer::IntezerError;
    use intezer_dynamic::quota::{QuotaGuard, QuotaSettings};

    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    Mock::given(method("POST"))
        .and(path(api_path("/analyze")))
        .respond_with(
            ResponseTemplate::new(403).set_body_json(json!({"error": "Insufficient quota"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let guard = Arc::new(QuotaGuard::new(QuotaSettings::default()).unwrap());
    let actor = Submitter::new(Arc::new(client(&server).with_quota(guard)), 64).start();
    let sample = common::sample("elf_true");
    let deadline = Instant::now() + Duration::from_secs(10);

    for index in 0..51u32 {
        let message = SubmitFile {
            path: sample.clone(),
            file_name: format!("file-{index}"),
            sha256: format!("{index:064x}"),
            deadline,
            priority: 1,
            span: tracing::Span::none(),
        };
        let answer = actor.send(message).await.unwrap().unwrap();
        assert!(
            matches!(answer, Err(IntezerError::InsufficientQuota { .. })),
            "upload {index}: {answer:?}"
        );
    }
}

/// A 429 with `Retry-After: 1` pauses every caller of the key. A request
/// for another analysis, started as soon as the pause begins, is not sent
/// until the pause is over, about 1 s later. The limited request is retried
/// once the pause is over too.
#[actix_rt::test]
async fn rate_limit_pauses_every_caller() {
    use intezer_dynamic::quota::{QuotaGuard, QuotaSettings};

    let server = MockServer::start().await;
    mount_token(&server, 1).await;
    let first = "11111111-0000-4000-8000-000000000001";
    let second = "22222222-0000-4000-8000-000000000002";
    let finished = |id: &str| json!({"status": "succeeded", "result": {"analysis_id": id, "verdict": "malicious"}});
    Mock::given(method("GET"))
        .and(path(api_path(&format!("/analyses/{first}"))))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(api_path(&format!("/analyses/{first}"))))
        .respond_with(ResponseTemplate::new(200).set_body_json(finished(first)))
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(api_path(&format!("/analyses/{second}"))))
        .respond_with(ResponseTemplate::new(200).set_body_json(finished(second)))
        .mount(&server)
        .await;
    let guard = Arc::new(QuotaGuard::new(QuotaSettings::default()).unwrap());
    let client = Arc::new(client(&server).with_quota(guard.clone()));
    let deadline = Instant::now() + Duration::from_secs(10);

    let limited = {
        let client = client.clone();
        actix_rt::spawn(async move { client.analysis(first, deadline).await })
    };
    let paused_until = loop {
        if let Some(until) = guard.snapshot().paused_until {
            break until;
        }
        tokio::task::yield_now().await;
    };
    let during_pause = client.analysis(second, deadline).await;
    let answered_at = tokio::time::Instant::now();
    let after_retry = limited.await.unwrap();

    assert!(during_pause.is_ok(), "{during_pause:?}");
    assert!(after_retry.is_ok(), "{after_retry:?}");
    assert!(
        answered_at >= paused_until,
        "answered {:?} before the pause ended",
        paused_until - answered_at
    );
    let order: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|request| request.url.path().to_string())
        .filter(|path| path.contains("/analyses/"))
        .collect();
    let sent = |id: &str| {
        order
            .iter()
            .filter(|path| **path == api_path(&format!("/analyses/{id}")))
            .count()
    };
    assert_eq!(
        sent(first),
        2,
        "the limited request is retried once: {order:?}"
    );
    assert_eq!(sent(second), 1, "{order:?}");
}
