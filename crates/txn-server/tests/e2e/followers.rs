//! Followers: kvs-server nodes that follow the log another node writes,
//! through txn-server on PostgreSQL. They converge to what a fresh replay
//! of the log gives, tell their watchers every change in order, answer a
//! client that reads its own writes, and send writes to the primary.

use std::time::Duration;

use kvs_testkit::process::KvsProcess;
use kvs_testkit::stack::{Stack, kvs_args};
use kvs_testkit::watch::Watch;
use reqwest::StatusCode;
use reqwest::header::LOCATION;

/// Long enough for any machine: a wait this long has failed.
pub const PATIENT: Duration = Duration::from_secs(60);

/// txn-server on a fresh PostgreSQL, and no kvs-server yet.
pub async fn shared_log() -> Stack {
    let mut stack = Stack::database_only().await;
    stack.start_txn();
    stack
}

/// A kvs-server in `role` on `stack`'s txn-server, with a lease of
/// `lease_ms` checked every `check_ms`, and `extra` flags.
pub async fn node(
    stack: &Stack,
    role: &str,
    (lease_ms, check_ms): (u64, u64),
    extra: &[&str],
) -> KvsProcess {
    let mut args = kvs_args(&stack.certs, &stack.txn_addr());
    args.extend([
        "--role".into(),
        role.into(),
        "--lease-ms".into(),
        lease_ms.to_string(),
        "--lease-check-ms".into(),
        check_ms.to_string(),
    ]);
    args.extend(extra.iter().map(|s| s.to_string()));
    KvsProcess::start(&kvs_testkit::binary("kvs-server"), &args).await
}

/// What `/readyz` says: "ready" on the primary, "ready: following ..." on
/// a node that follows.
pub async fn readiness(node: &KvsProcess) -> Option<String> {
    let resp = node.api.client.get(node.api.url("/readyz")).send().await;
    resp.ok()?.text().await.ok()
}

/// Waits until `node` is the primary.
pub async fn wait_primary(node: &KvsProcess) {
    let deadline = tokio::time::Instant::now() + PATIENT;
    while readiness(node).await.as_deref() != Some("ready") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} did not become the primary; output:\n{}",
            node.api.base,
            node.output()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A client that never follows a redirect, to look at one.
pub fn unredirected() -> reqwest::Client {
    kvs_testkit::http::client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The base URL of a node's API without the API's path: what it
/// advertises by default.
pub fn origin(node: &KvsProcess) -> String {
    format!("http://{}", node.server.addr)
}

fn revision_of(resp: &reqwest::Response) -> u64 {
    resp.headers()["kvs-revision"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// A GET of `path` on `node` once it has reached `revision`: asked with
/// `KVS-Min-Revision`, and asked again while the node answers that it has
/// not reached it yet.
async fn read_at(node: &KvsProcess, path: &str, revision: u64) -> (StatusCode, String) {
    let deadline = tokio::time::Instant::now() + PATIENT;
    loop {
        let resp = node
            .api
            .client
            .get(node.api.url(path))
            .header("kvs-min-revision", revision.to_string())
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body = resp.text().await.unwrap();
        if status != StatusCode::SERVICE_UNAVAILABLE || !body.contains("KVS-Min-Revision") {
            return (status, body);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} did not reach revision {revision}",
            node.api.base
        );
    }
}

/// Writes through `via` (following its redirects): per writer, puts of
/// its own keys and increments of a shared counter, and a transaction of
/// two puts. Returns every revision answered, each a change.
async fn write_load(via: &KvsProcess, writers: usize, rounds: usize) -> Vec<u64> {
    let mut tasks = Vec::new();
    for w in 0..writers {
        let api = via.api.clone();
        tasks.push(tokio::spawn(async move {
            let mut revisions = Vec::new();
            for i in 0..rounds {
                let (request, body) = match i % 3 {
                    0 => (
                        api.client.put(api.url(&format!("/str/w{w}_{}", i % 7))),
                        format!("v{i}"),
                    ),
                    1 => (api.client.put(api.url("/int-incr/counter")), String::new()),
                    _ => (
                        api.client.post(api.url("/txn")),
                        format!(
                            r#"{{"success":[{{"op":"put","type":"int","key":"t{w}","value":{i}}},{{"op":"put","type":"set","key":"s{w}","value":["m{i}"]}}]}}"#
                        ),
                    ),
                };
                let resp = request.body(body).send().await.unwrap();
                assert_eq!(resp.status(), StatusCode::OK, "write {i} of writer {w}");
                revisions.push(revision_of(&resp));
            }
            revisions
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    all
}

#[tokio::test]
async fn followers_under_write_load_converge_to_a_fresh_replay_and_their_watchers_see_every_change_in_order()
 {
    let stack = shared_log().await;
    let lease = (5000, 500);
    let primary = node(&stack, "standby", lease, &[]).await;
    wait_primary(&primary).await;
    let follower = node(&stack, "follower", lease, &[]).await;
    let mut watch = Watch::open(&follower.api.client, &follower.api.base, "?since=0", None).await;

    // Half the load through the follower, which redirects it.
    let (direct, redirected) =
        tokio::join!(write_load(&primary, 2, 60), write_load(&follower, 2, 60));
    let mut revisions: Vec<u64> = direct.into_iter().chain(redirected).collect();
    revisions.sort_unstable();
    revisions.dedup();
    let last = *revisions.last().unwrap();

    let (status, _) = read_at(&follower, "/int/counter", last).await;
    assert_eq!(status, StatusCode::OK);
    let written = primary.api.dump().await;
    assert_eq!(
        follower.api.dump().await,
        written,
        "the follower equals the primary"
    );
    let fresh = node(&stack, "follower", lease, &[]).await;
    let (status, _) = read_at(&fresh, "/int/counter", last).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        fresh.api.dump().await,
        written,
        "a fresh replay equals both"
    );
    assert_eq!(written[&("int".to_owned(), "counter".to_owned())], "80");

    let mut seen = Vec::new();
    while seen.last() != Some(&last) {
        let event = tokio::time::timeout(PATIENT, watch.event())
            .await
            .expect("the follower's watcher is told every change");
        seen.push(event.id.expect("an id"));
    }
    assert_eq!(seen, revisions, "every revision once, in order");
}

#[tokio::test]
async fn a_follower_redirects_writes_to_the_primary_and_waits_for_the_revision_a_client_asks_for() {
    let stack = shared_log().await;
    let lease = (5000, 500);
    let primary = node(&stack, "standby", lease, &[]).await;
    wait_primary(&primary).await;
    let follower = node(
        &stack,
        "follower",
        lease,
        &["--min-revision-wait-ms", "300"],
    )
    .await;

    let client = unredirected();
    let resp = client
        .put(follower.api.url("/str/k?ttl=600"))
        .body("v")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TEMPORARY_REDIRECT);
    let primary_path = format!("{}/kvs/v1-0-0/str/k?ttl=600", origin(&primary));
    assert_eq!(resp.headers()[LOCATION], primary_path.as_str());
    let (status, _) = read_at(&follower, "/str/k", 0).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a redirect writes nothing");
    // Reads are the follower's own.
    let resp = client
        .get(follower.api.url("/keys/str"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    // Followed, the redirect writes on the primary; the follower answers
    // the write once it has it.
    let resp = follower
        .api
        .client
        .put(follower.api.url("/str/k"))
        .body("v")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let written = revision_of(&resp);
    assert_eq!(
        read_at(&follower, "/str/k", written).await,
        (StatusCode::OK, "v".to_owned())
    );

    // A revision the log has not reached: 503 after the wait, and a bad
    // one is the client's mistake.
    let resp = client
        .get(follower.api.url("/str/k"))
        .header("kvs-min-revision", (written + 1000).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.headers()["retry-after"], "1");
    let problem: serde_json::Value = resp.json().await.unwrap();
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("KVS-Min-Revision"), "{detail}");
    let resp = client
        .get(follower.api.url("/str/k"))
        .header("kvs-min-revision", "soon")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}
