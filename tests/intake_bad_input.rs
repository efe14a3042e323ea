//! Tasks and files that are wrong in some way still get exactly one answer
//! each, and the service keeps taking tasks. The service server here is a
//! wiremock stand-in, so the test controls every byte it sends.

mod common;

use serde_json::{json, Value};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use intezer_dynamic::runtime::{self, ServeExit, ServeOptions};

const ELF_TRUE: &str = "elf_true";

fn envelope(response: Value) -> Value {
    json!({"api_response": response, "api_error_message": "", "api_server_version": "4.7.4.25", "api_status_code": 200})
}

fn task(sid: &str, sha256: &str) -> Value {
    json!({
        "sid": sid,
        "metadata": {},
        "min_classification": "TLP:C",
        "fileinfo": {"sha256": sha256, "size": 35664, "type": "executable/linux/pie64", "magic": "ELF", "md5": "", "sha1": ""},
        "filename": "true",
        "service_name": "IntezerDynamic",
        "service_config": {"dynamic_submit": false},
        "max_files": 500,
        "ttl": 0,
        "priority": 1
    })
}

/// Mounts registration, result posts and the "no task" reply that follows the scripted tasks.
async fn mount_service_server(server: &MockServer, intezer_base: &str) {
    let service_config = json!({
        "keep_alive": true,
        "new_heuristics": [],
        "service_config": {"timeout": 30, "config": {"api_key": "test-intezer-key", "base_url": intezer_base, "retry_forever": false}}
    });
    Mock::given(method("PUT"))
        .and(path("/api/v1/service/register/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(envelope(service_config)))
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v1/task/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(envelope(json!({"success": true}))))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/task/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(envelope(json!({"task": false}))))
        .with_priority(10)
        .mount(server)
        .await;
}

/// Starts an Intezer stand-in that has no analysis of any file.
async fn intezer_knowing_nothing() -> MockServer {
    let intezer = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v2-0/get-access-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"result": "token"})))
        .mount(&intezer)
        .await;
    Mock::given(method("GET"))
        .and(path_regex("^/api/v2-0/files/[0-9a-f]{64}$"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"error": "not found"})))
        .mount(&intezer)
        .await;
    intezer
}

fn hand_out_once(task: Value, priority: u8) -> Mock {
    Mock::given(method("GET"))
        .and(path("/api/v1/task/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(envelope(json!({"task": task}))))
        .up_to_n_times(1)
        .with_priority(priority)
}

async fn run_serve(server: &MockServer, task_limit: u64, dir: &std::path::Path) -> ServeExit {
    let env = common::environment(&[
        ("SERVICE_API_HOST", server.uri()),
        ("AL_SERVICE_TASK_LIMIT", task_limit.to_string()),
        ("TASK_REQUEST_TIMEOUT", "0.2".to_string()),
        ("TASKING_DIR", dir.display().to_string()),
        ("HOSTNAME", "test-host".to_string()),
    ]);
    let options = ServeOptions {
        concurrency: 1,
        ..ServeOptions::default()
    };
    runtime::serve(env, options, std::future::pending())
        .await
        .expect("serve runs")
}

/// Bodies of every POST /api/v1/task/, in order.
async fn posted(server: &MockServer) -> Vec<Value> {
    let requests: Vec<Request> = server.received_requests().await.unwrap_or_default();
    requests
        .iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path() == "/api/v1/task/")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

/// A task without `fileinfo` gets a non-recoverable error naming the
/// field, and the next, valid task is still processed.
#[actix_rt::test]
async fn malformed_task_gets_error_and_service_continues() {
    let intezer = intezer_knowing_nothing().await;
    let server = MockServer::start().await;
    mount_service_server(&server, &format!("{}/api/", intezer.uri())).await;
    let bytes = std::fs::read(common::sample(ELF_TRUE)).unwrap();
    let sha256 = common::sha256_hex(&bytes);
    let mut broken = task("broken-sid", &sha256);
    broken.as_object_mut().unwrap().remove("fileinfo");
    hand_out_once(broken, 1).mount(&server).await;
    hand_out_once(task("good-sid", &sha256), 2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/api/v1/file/{sha256}/")))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(bytes))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();

    let exit = run_serve(&server, 2, dir.path()).await;

    assert!(matches!(exit, ServeExit::Finished(summary) if summary.tasks == 2));
    let posts = posted(&server).await;
    assert_eq!(posts.len(), 2, "one answer per task: {posts:#?}");
    let error = &posts[0]["error"];
    assert_eq!(error["response"]["status"], "FAIL_NONRECOVERABLE");
    assert!(error["response"]["message"]
        .as_str()
        .unwrap()
        .contains("fileinfo"));
    assert_eq!(posts[1]["task"]["sid"], "good-sid");
    assert!(posts[1].get("result").is_some(), "second task got a result");
}

/// A task whose SHA-256 is not 64 lowercase hex digits is answered with an
/// error and never downloaded.
#[actix_rt::test]
async fn invalid_sha256_task_gets_error() {
    let intezer = intezer_knowing_nothing().await;
    let server = MockServer::start().await;
    mount_service_server(&server, &format!("{}/api/", intezer.uri())).await;
    hand_out_once(task("bad-hash", "NOT-A-HASH"), 1)
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();

    run_serve(&server, 1, dir.path()).await;

    let posts = posted(&server).await;
    assert_eq!(posts.len(), 1);
    assert_eq!(
        posts[0]["error"]["response"]["status"],
        "FAIL_NONRECOVERABLE"
    );
    assert!(posts[0]["error"]["response"]["message"]
        .as_str()
        .unwrap()
        .contains("fileinfo.sha256"));
    let requests = server.received_requests().await.unwrap();
    assert!(
        !requests
            .iter()
            .any(|r| r.url.path().starts_with("/api/v1/file/")),
        "no download was attempted"
    );
}

/// A download whose bytes never match the task's SHA-256 is retried, then
/// the task gets a recoverable error.
#[actix_rt::test]
async fn wrong_hash_download_retried_then_recoverable_error() {
    let intezer = intezer_knowing_nothing().await;
    let server = MockServer::start().await;
    mount_service_server(&server, &format!("{}/api/", intezer.uri())).await;
    let sha256 = common::sha256_hex(&std::fs::read(common::sample(ELF_TRUE)).unwrap());
    hand_out_once(task("mismatch", &sha256), 1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/api/v1/file/{sha256}/")))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(b"not the file".to_vec()))
        .expect(3)
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();

    run_serve(&server, 1, dir.path()).await;

    let posts = posted(&server).await;
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0]["error"]["response"]["status"], "FAIL_RECOVERABLE");
    assert!(posts[0]["error"]["response"]["message"]
        .as_str()
        .unwrap()
        .contains("SHA-256"));
}

/// A file the service server does not have is a non-recoverable error.
#[actix_rt::test]
async fn missing_file_is_nonrecoverable() {
    let intezer = intezer_knowing_nothing().await;
    let server = MockServer::start().await;
    mount_service_server(&server, &format!("{}/api/", intezer.uri())).await;
    let sha256 = "a".repeat(64);
    hand_out_once(task("gone", &sha256), 1).mount(&server).await;
    Mock::given(method("GET"))
        .and(path(format!("/api/v1/file/{sha256}/")))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"api_response": {}, "api_error_message": "The file was not found in the system.", "api_status_code": 404})))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();

    run_serve(&server, 1, dir.path()).await;

    let posts = posted(&server).await;
    assert_eq!(posts.len(), 1);
    assert_eq!(
        posts[0]["error"]["response"]["status"],
        "FAIL_NONRECOVERABLE"
    );
}

/// Intezer answering the lookup with something that is not JSON still
/// completes the task, with a recoverable error.
#[actix_rt::test]
async fn intezer_garbage_gives_recoverable_error() {
    let intezer = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v2-0/get-access-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"result": "token"})))
        .mount(&intezer)
        .await;
    Mock::given(method("GET"))
        .and(path_regex("^/api/v2-0/files/[0-9a-f]{64}$"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>proxy error</html>"))
        .mount(&intezer)
        .await;
    let server = MockServer::start().await;
    mount_service_server(&server, &format!("{}/api/", intezer.uri())).await;
    let bytes = std::fs::read(common::sample(ELF_TRUE)).unwrap();
    let sha256 = common::sha256_hex(&bytes);
    hand_out_once(task("garbage", &sha256), 1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/api/v1/file/{sha256}/")))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(bytes))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();

    run_serve(&server, 1, dir.path()).await;

    let posts = posted(&server).await;
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0]["error"]["response"]["status"], "FAIL_RECOVERABLE");
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "working folders are removed"
    );
}
