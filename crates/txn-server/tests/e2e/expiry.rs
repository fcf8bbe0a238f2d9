//! Keys with a TTL and the revisions of values, kept by txn-server on
//! either backend: after kvs-server restarts, each value has its ETag, its
//! creation and each deadline its time, and a key whose time passed
//! meanwhile is gone.

use std::time::{Duration, Instant, SystemTime};

use kvs_testkit::stack::Stack;
use reqwest::StatusCode;

/// The ETag, the creation and the expiry time of `path`, as GET answers
/// them.
async fn tags(stack: &Stack, path: &str) -> (StatusCode, [Option<String>; 3]) {
    let api = stack.api();
    let resp = api.client.get(api.url(path)).send().await.unwrap();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let names = ["etag", "kvs-create-revision", "kvs-expires-at"];
    (resp.status(), names.map(header))
}

async fn check(mut stack: Stack) {
    let api = stack.api();
    let start = SystemTime::now();
    assert_eq!(api.put("/str/long?ttl=3600", "l").await, StatusCode::OK);
    assert_eq!(api.put("/set/s?ttl=3600", r#"["a"]"#).await, StatusCode::OK);
    assert_eq!(api.put("/set/s/b", "").await, StatusCode::OK);
    assert_eq!(
        api.put("/int/permanent?ttl=3600", "1").await,
        StatusCode::OK
    );
    assert_eq!(api.put("/int/permanent", "2").await, StatusCode::OK);
    assert_eq!(api.put("/str/short?ttl=1", "s").await, StatusCode::OK);
    // Made again after a delete, then changed.
    assert_eq!(api.put("/uint/again", "1").await, StatusCode::OK);
    assert!(api.delete("/uint/again").await);
    assert_eq!(api.put("/uint/again", "2").await, StatusCode::OK);
    assert_eq!(api.put("/uint/again", "3").await, StatusCode::OK);
    let paths = ["/str/long", "/set/s", "/int/permanent", "/uint/again"];
    let mut before = Vec::new();
    for path in paths {
        before.push(tags(&stack, path).await);
    }
    let expires: Vec<bool> = before.iter().map(|(_, t)| t[2].is_some()).collect();
    assert_eq!(expires, [true, true, false, false]);
    // Created before their last change, all but the first.
    let number =
        |h: &Option<String>| -> u64 { h.as_deref().unwrap().trim_matches('"').parse().unwrap() };
    let earlier: Vec<bool> = before
        .iter()
        .map(|(_, t)| number(&t[1]) < number(&t[0]))
        .collect();
    assert_eq!(earlier, [false, true, true, true], "{before:?}");

    assert!(stack.kvs.take().unwrap().terminate().success());
    // Past the short key's time before kvs-server is back.
    let deadline = Instant::now() + Duration::from_secs(60);
    while SystemTime::now() < start + Duration::from_secs(2) {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stack.start_kvs(&[]).await;
    let mut after = Vec::new();
    for path in paths {
        after.push(tags(&stack, path).await);
    }
    assert_eq!(
        after, before,
        "ETags, creations and expiry times after a restart"
    );
    assert_eq!(stack.api().get("/set/s").await.1, r#"["a","b"]"#);
    assert_eq!(stack.api().get("/str/short").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn etags_creations_and_expiry_times_survive_a_restart_on_postgres() {
    check(Stack::postgres().await).await;
}

#[tokio::test]
async fn etags_creations_and_expiry_times_survive_a_restart_on_the_file_backend() {
    check(Stack::file().await).await;
}
