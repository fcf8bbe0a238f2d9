//! Keys with a TTL: when they expire, what reads and writes see, and that
//! expiry survives a restart.

use std::path::Path;
use std::time::{Duration, SystemTime};

use kvs_testkit::process::KvsProcess;
use kvs_testkit::wait_until;
use reqwest::{Response, StatusCode};

use crate::helpers::{TestApp, assert_problem};

/// Long enough for any machine.
const PATIENT: Duration = Duration::from_secs(60);

fn expires_at(resp: &Response) -> Option<SystemTime> {
    let text = resp.headers().get("kvs-expires-at")?.to_str().unwrap();
    Some(humantime::parse_rfc3339(text).unwrap_or_else(|e| panic!("{text}: {e}")))
}

/// Waits until the wall clock is past `when`.
async fn wait_past(when: SystemTime) {
    wait_until("the deadline passed", PATIENT, || SystemTime::now() > when).await;
}

/// A PUT `ttl` seconds long; answers when the key expires.
async fn put_ttl(app: &TestApp, path: &str, body: &str, ttl: u64) -> SystemTime {
    let before = SystemTime::now();
    let resp = app.put(&format!("{path}?ttl={ttl}"), body.to_owned()).await;
    let after = SystemTime::now();
    assert_eq!(resp.status(), StatusCode::OK);
    let at = expires_at(&resp).expect("a PUT with a ttl says when it expires");
    // Milliseconds: the header may round down below `before`'s fraction.
    let ttl = Duration::from_secs(ttl);
    assert!(
        at + Duration::from_millis(1) >= before + ttl && at <= after + ttl,
        "{at:?}"
    );
    at
}

#[tokio::test]
async fn a_key_with_a_ttl_is_gone_once_its_time_passes_and_is_expired_by_the_server() {
    let app = TestApp::spawn(&[]).await;
    let at = put_ttl(&app, "/str/session", "token", 1).await;
    let got = app.get("/str/session").await;
    assert_eq!(got.status(), StatusCode::OK);
    assert_eq!(expires_at(&got), Some(at));
    app.put_ok("/str/other", "stays").await;
    wait_past(at).await;
    // Absent at once, whether or not the expirer has run yet.
    assert_eq!(
        app.get("/str/session").await.status(),
        StatusCode::NOT_FOUND
    );
    let keys: Vec<String> = app.get("/keys/str").await.json().await.unwrap();
    assert_eq!(keys, ["other"]);
    // The server logs the expiry by itself, without a read asking.
    let deadline = std::time::Instant::now() + PATIENT;
    loop {
        let metrics = app.get_ok("/metrics").await;
        if metrics.lines().any(|l| l == "kvs_expired_keys_total 1") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not expired: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_put_without_ttl_makes_a_key_permanent_and_entry_changes_keep_the_ttl() {
    let app = TestApp::spawn(&[]).await;
    let at = put_ttl(&app, "/int/k", "1", 1).await;
    let resp = app.put("/int/k", "2").await;
    assert!(expires_at(&resp).is_none());
    let set_at = put_ttl(&app, "/set/s", r#"["a"]"#, 3600).await;
    assert_eq!(app.put("/set/s/b", "").await.status(), StatusCode::OK);
    assert_eq!(expires_at(&app.get("/set/s").await), Some(set_at));
    wait_past(at).await;
    assert_eq!(app.get_ok("/int/k").await, "2");
    assert!(expires_at(&app.get("/int/k").await).is_none());
}

#[tokio::test]
async fn an_expired_key_is_absent_to_writes_too() {
    let app = TestApp::spawn(&[]).await;
    let at = put_ttl(&app, "/set/s", r#"["old"]"#, 1).await;
    wait_past(at).await;
    // A member added to an expired set starts a new one.
    assert_eq!(app.put("/set/s/new", "").await.status(), StatusCode::OK);
    assert_eq!(app.get_ok("/set/s").await, r#"["new"]"#);
    let at = put_ttl(&app, "/str/lock", "a", 1).await;
    wait_past(at).await;
    let created = app
        .client
        .put(app.url("/str/lock"))
        .header("if-none-match", "*")
        .body("b")
        .send()
        .await
        .unwrap();
    assert_eq!(
        created.status(),
        StatusCode::OK,
        "create-only over an expired key"
    );
}

#[tokio::test]
async fn a_ttl_that_is_not_a_whole_number_of_seconds_in_range_is_a_400() {
    let app = TestApp::spawn(&[]).await;
    for ttl in ["0", "-1", "1.5", "abc", "315360001"] {
        assert_problem(
            app.put(&format!("/int/k?ttl={ttl}"), "1").await,
            StatusCode::BAD_REQUEST,
            "ttl",
        )
        .await;
    }
    assert_eq!(app.get("/int/k").await.status(), StatusCode::NOT_FOUND);
}

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_kvs-server"))
}

async fn start(data_dir: &Path) -> KvsProcess {
    let args = ["--data-dir".to_owned(), data_dir.display().to_string()];
    KvsProcess::start(binary(), &args).await
}

#[tokio::test]
async fn expiry_times_survive_a_restart_and_a_key_due_meanwhile_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let api = &server.api;
    let before = SystemTime::now();
    assert_eq!(api.put("/str/short?ttl=1", "s").await, StatusCode::OK);
    assert_eq!(api.put("/str/long?ttl=3600", "l").await, StatusCode::OK);
    server.kill();
    wait_past(before + Duration::from_secs(2)).await;

    let server = start(dir.path()).await;
    assert_eq!(server.api.get("/str/short").await.0, StatusCode::NOT_FOUND);
    let client = kvs_testkit::http::client();
    let long = client
        .get(server.api.url("/str/long"))
        .send()
        .await
        .unwrap();
    assert_eq!(long.status(), StatusCode::OK);
    let at = expires_at(&long).expect("the TTL was replayed");
    assert!(at > before + Duration::from_secs(3000), "{at:?}");
}

#[tokio::test]
async fn a_transactions_put_may_have_a_ttl_and_a_bad_one_fails_it_whole() {
    let app = TestApp::spawn(&[]).await;
    let body = serde_json::json!({
        "success": [
            {"op": "put", "type": "str", "key": "a", "value": "x", "ttl": 3600},
            {"op": "put", "type": "str", "key": "b", "value": "y"}
        ]
    });
    let resp = app.post("/txn", body.to_string()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(expires_at(&app.get("/str/a").await).is_some());
    assert!(expires_at(&app.get("/str/b").await).is_none());
    let bad = serde_json::json!({
        "success": [
            {"op": "put", "type": "str", "key": "c", "value": "z"},
            {"op": "put", "type": "str", "key": "d", "value": "w", "ttl": 0}
        ]
    });
    assert_problem(
        app.post("/txn", bad.to_string()).await,
        StatusCode::BAD_REQUEST,
        "ttl",
    )
    .await;
    assert_eq!(app.get("/str/c").await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_expiry_is_a_watch_event_of_its_own() {
    let app = TestApp::spawn(&[]).await;
    let mut watch = crate::helpers::Watch::open(&app.client, &app.base, "?type=str", None).await;
    let at = put_ttl(&app, "/str/gone", "v", 1).await;
    let put = watch.event().await;
    assert_eq!(
        (put.kind.as_str(), &put.data["key"]),
        ("put", &serde_json::json!("gone"))
    );
    wait_past(at).await;
    let expired = watch.event().await;
    assert_eq!(expired.kind, "expire");
    assert_eq!(
        expired.data,
        serde_json::json!({"type": "str", "key": "gone", "revision": expired.id.unwrap()})
    );
    assert!(expired.id > put.id);
}
