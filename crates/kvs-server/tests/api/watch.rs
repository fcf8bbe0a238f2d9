//! `GET /watch`: durable changes as Server-Sent Events.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::durability;
use crate::helpers::{Event, Sent, TestApp, Watch, assert_problem};

impl TestApp {
    async fn watch(&self, query: &str) -> Watch {
        Watch::open(&self.client, &self.base, query, None).await
    }

    async fn resume(&self, query: &str, last_id: u64) -> Watch {
        Watch::open(&self.client, &self.base, query, Some(last_id)).await
    }

    /// A write that must answer 200; returns the revision it answered.
    async fn write(&self, method: &str, path: &str, body: &str) -> u64 {
        let resp = self
            .client
            .request(method.parse().unwrap(), self.url(path))
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{method} {path}");
        resp.headers()["kvs-revision"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    }
}

/// The next `n` events.
async fn events(watch: &mut Watch, n: usize) -> Vec<Event> {
    let mut got = Vec::with_capacity(n);
    for _ in 0..n {
        got.push(watch.event().await);
    }
    got
}

fn ids(events: &[Event]) -> Vec<u64> {
    events.iter().map(|e| e.id.expect("an id")).collect()
}

#[tokio::test]
async fn changes_arrive_in_revision_order_with_their_data_and_filtered() {
    let app = TestApp::spawn(&[]).await;
    let mut all = app.watch("").await;
    let mut ints = app.watch("?type=int").await;
    let mut a = app.watch("?prefix=a").await;

    let r1 = app.write("PUT", "/int/a", "1").await;
    let r2 = app.write("PUT", "/set/s/x", "").await;
    let r3 = app.write("PUT", "/map/m/f", "v").await;
    let r4 = app.write("DELETE", "/map/m/f", "").await;
    let r5 = app.write("PUT", "/str/ab", "x\ny").await;
    let r6 = app.write("DELETE", "/int/a", "").await;
    let r7 = app.write("DELETE", "/set/s/x", "").await;
    let r8 = app.write("PUT", "/set/b", r#"["p","q"]"#).await;
    let r9 = app.write("POST", "/int/c/incr", "2").await;

    let expected = [
        (
            "put",
            json!({"type": "int", "key": "a", "value": 1, "revision": r1}),
        ),
        (
            "member",
            json!({"type": "set", "key": "s", "member": "x", "present": true, "revision": r2}),
        ),
        (
            "field",
            json!({"type": "map", "key": "m", "field": "f", "value": "v", "revision": r3}),
        ),
        (
            "field",
            json!({"type": "map", "key": "m", "field": "f", "value": null, "revision": r4}),
        ),
        (
            "put",
            json!({"type": "str", "key": "ab", "value": "x\ny", "revision": r5}),
        ),
        ("delete", json!({"type": "int", "key": "a", "revision": r6})),
        (
            "member",
            json!({"type": "set", "key": "s", "member": "x", "present": false, "revision": r7}),
        ),
        (
            "put",
            json!({"type": "set", "key": "b", "value": ["p", "q"], "revision": r8}),
        ),
        // An increment is the put of its result.
        (
            "put",
            json!({"type": "int", "key": "c", "value": 2, "revision": r9}),
        ),
    ];
    let got = events(&mut all, expected.len()).await;
    for (event, (kind, data)) in got.iter().zip(&expected) {
        assert_eq!((event.kind.as_str(), &event.data), (*kind, data));
        assert_eq!(event.id, data["revision"].as_u64());
    }
    assert_eq!(ids(&events(&mut ints, 3).await), [r1, r6, r9]);
    assert_eq!(ids(&events(&mut a, 3).await), [r1, r5, r6]);

    // Nothing in between was left for the filtered ones: the next write
    // each sees is the next one sent.
    let r10 = app.write("PUT", "/int/a10", "10").await;
    assert_eq!(ints.event().await.id, Some(r10));
    assert_eq!(a.event().await.id, Some(r10));
    assert_eq!(all.event().await.id, Some(r10));
}

#[tokio::test]
async fn a_watcher_that_reconnects_with_its_last_event_id_misses_nothing_and_sees_nothing_twice() {
    let app = TestApp::spawn(&[]).await;
    let mut watch = app.watch("").await;
    for i in 0..3 {
        app.write("PUT", &format!("/int/k{i}"), &i.to_string())
            .await;
    }
    let seen = events(&mut watch, 3).await;
    let last = seen[2].id.unwrap();
    drop(watch);

    let mut missed = Vec::new();
    for i in 3..6 {
        missed.push(
            app.write("PUT", &format!("/int/k{i}"), &i.to_string())
                .await,
        );
    }
    let mut watch = app.resume("", last).await;
    let got = events(&mut watch, 3).await;
    assert_eq!(ids(&got), missed);
    assert_eq!(got[0].data["key"], "k3");
    let next = app.write("PUT", "/int/k6", "6").await;
    assert_eq!(watch.event().await.id, Some(next), "no duplicate, no gap");

    // `since` starts at the same place; Last-Event-ID wins over it.
    let mut since = app.watch(&format!("?since={last}")).await;
    assert_eq!(since.event().await.id, Some(missed[0]));
    let mut both = app.resume("?since=0", missed[1]).await;
    assert_eq!(both.event().await.id, Some(missed[2]));
}

#[tokio::test]
async fn a_delete_across_types_is_one_changes_event_and_ids_only_increase() {
    let app = TestApp::spawn(&[]).await;
    let mut watch = app.watch("").await;
    let mut strs = app.watch("?type=str").await;
    app.write("PUT", "/int/k", "1").await;
    app.write("PUT", "/str/k", "s").await;
    app.write("PUT", "/int/other", "2").await;
    let del = app.write("DELETE", "/del/k", "").await;
    let after = app.write("PUT", "/int/k", "3").await;

    let got = events(&mut watch, 5).await;
    let ids = ids(&got);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let changes = &got[3];
    assert_eq!(changes.kind, "changes");
    assert_eq!(changes.id, Some(del));
    let mut parts = changes.data["changes"].as_array().unwrap().clone();
    parts.sort_by_key(|c| c["type"].as_str().unwrap().to_owned());
    assert_eq!(
        changes.data,
        json!({"revision": del, "changes": changes.data["changes"]})
    );
    assert_eq!(
        parts,
        [
            json!({"kind": "delete", "type": "int", "key": "k", "revision": del}),
            json!({"kind": "delete", "type": "str", "key": "k", "revision": del}),
        ]
    );
    assert_eq!(got[4].id, Some(after));

    // A watcher of one type sees its part alone, as a delete.
    let only = events(&mut strs, 2).await;
    assert_eq!(only[1].kind, "delete");
    assert_eq!(only[1].id, Some(del));
}

#[tokio::test]
async fn a_since_older_than_the_history_is_410_and_one_in_the_future_waits() {
    let app = TestApp::spawn(&["--watch-history", "2"]).await;
    let mut revisions = Vec::new();
    for i in 0..5 {
        revisions.push(app.write("PUT", "/int/k", &i.to_string()).await);
    }
    let oldest = revisions[2];
    let resp = app.get("/watch?since=0").await;
    assert_eq!(resp.status(), StatusCode::GONE);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["oldest"], oldest);
    assert_problem(
        app.get(&format!("/watch?since={}", oldest - 1)).await,
        StatusCode::GONE,
        &format!("after revision {oldest}"),
    )
    .await;
    let resp = app
        .client
        .get(app.url("/watch"))
        .header("last-event-id", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::GONE);

    let mut from_oldest = app.watch(&format!("?since={oldest}")).await;
    assert_eq!(ids(&events(&mut from_oldest, 2).await), &revisions[3..]);

    let head = revisions[4];
    let mut future = app.watch(&format!("?since={}", head + 1)).await;
    app.write("PUT", "/int/k", "5").await;
    let wanted = app.write("PUT", "/int/k", "6").await;
    assert_eq!(future.event().await.id, Some(wanted));
}

#[tokio::test]
async fn a_watcher_that_stops_reading_is_cut_off_and_the_others_go_on() {
    // Events of 256 KiB, many more than socket buffers hold, through a
    // history of a few: the one that stops reading falls out of it.
    let app = TestApp::spawn(&["--watch-history", "4"]).await;
    let value = "x".repeat(256 << 10);
    let mut slow = app.watch("").await;
    let mut reader = app.watch("").await;
    const WRITES: usize = 100;
    let mut written = Vec::new();
    for i in 0..WRITES {
        written.push(app.write("PUT", &format!("/str/k{i}"), &value).await);
        // In step with the writes: this one never falls behind.
        assert_eq!(reader.event().await.id, written.last().copied());
    }

    let mut got = Vec::new();
    let last = loop {
        match slow.next().await {
            Some(Sent::Event(e)) if e.kind == "error" => break e,
            Some(Sent::Event(e)) => got.push(e.id.unwrap()),
            Some(Sent::Comment(_)) => {}
            None => panic!("the stream ended without saying why"),
        }
    };
    assert!(
        slow.next().await.is_none(),
        "the stream ends after the error"
    );
    assert_eq!(
        last.id, None,
        "a reconnect resumes after the last change sent"
    );
    assert!(got.len() < WRITES, "it kept up after all: {}", got.len());
    assert_eq!(got, written[..got.len()], "what it got, it got in order");
    let detail = last.data["detail"].as_str().unwrap();
    assert!(detail.contains("fell behind"), "{detail}");
    let oldest = last.data["oldest"].as_u64().unwrap();
    assert!(oldest > *got.last().unwrap_or(&0), "{last:?}");

    // Resuming where it was cut off is 410; the server serves on.
    let resume = app
        .client
        .get(app.url("/watch"))
        .header("last-event-id", got.last().unwrap_or(&0).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resume.status(), StatusCode::GONE);
    let next = app.write("PUT", "/int/after", "1").await;
    assert_eq!(reader.event().await.id, Some(next));
    let metrics = app.get_ok("/metrics").await;
    assert!(
        metrics.contains("kvs_watch_disconnected_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn watchers_over_the_cap_are_503_and_a_closed_stream_frees_its_place() {
    let app = TestApp::spawn(&["--max-watchers", "1", "--watch-heartbeat-secs", "1"]).await;
    let first = app.watch("").await;
    let resp = app.get("/watch").await;
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_problem(resp, StatusCode::SERVICE_UNAVAILABLE, "--max-watchers").await;
    let metrics = app.get_ok("/metrics").await;
    assert!(metrics.contains("kvs_watchers 1"), "{metrics}");
    drop(first);
    // The server learns of the close when a heartbeat finds it gone.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut again = None;
    while again.is_none() && std::time::Instant::now() < deadline {
        let resp = app.get("/watch").await;
        if resp.status() == StatusCode::OK {
            again = Some(resp);
        } else {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert!(again.is_some(), "the closed watcher's place was not freed");
}

#[tokio::test]
async fn bad_requests_are_problems() {
    let app = TestApp::spawn(&[]).await;
    assert_problem(
        app.get("/watch?type=bool").await,
        StatusCode::NOT_FOUND,
        "bool",
    )
    .await;
    assert_problem(
        app.get("/watch?since=x").await,
        StatusCode::BAD_REQUEST,
        "since",
    )
    .await;
    let resp = app
        .client
        .get(app.url("/watch"))
        .header("last-event-id", "abc")
        .send()
        .await
        .unwrap();
    assert_problem(resp, StatusCode::BAD_REQUEST, "Last-Event-ID").await;
}

#[tokio::test]
async fn a_watch_outlives_the_request_timeout_and_the_idle_limit_on_its_heartbeats() {
    // A connection silent for 6 s (the request timeout and a grace) is
    // closed; heartbeats come at most a request timeout apart, whatever
    // --watch-heartbeat-secs says.
    let app = TestApp::spawn(&["--request-timeout", "1", "--watch-heartbeat-secs", "3600"]).await;
    let mut watch = app.watch("").await;
    let started = std::time::Instant::now();
    // A write here could itself outlast so short a request timeout on a
    // busy machine: the heartbeats alone say that the stream is open.
    while started.elapsed() < Duration::from_secs(7) {
        match watch.next().await {
            Some(Sent::Comment(_)) => {}
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn graceful_shutdown_ends_open_watch_streams() {
    let dir = tempfile::tempdir().unwrap();
    // Were the streams left open, stopping would wait out this grace.
    let server = kvs_server::spawn_with(dir.path(), &["--shutdown-timeout", "3600"])
        .await
        .unwrap();
    let base = format!("{}/kvs/v1-0-0", server.url());
    let client = kvs_testkit::http::client();
    let mut watch = Watch::open(&client, &base, "", None).await;
    let resp = client
        .put(format!("{base}/int/k"))
        .body("1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(watch.event().await.data["key"], "k");

    tokio::time::timeout(Duration::from_secs(60), server.stop())
        .await
        .expect("stopped promptly")
        .unwrap();
    let mut rest = Vec::new();
    while let Some(sent) = watch.next().await {
        rest.push(sent);
    }
    assert_eq!(rest, [Sent::Comment("the server is shutting down".into())]);
}

#[tokio::test]
async fn watching_is_a_read_for_tokens() {
    let tokens =
        "read-only:a-read-only-token-long-enough,read-write:a-read-write-token-long-enough";
    let app = TestApp::spawn(&["--auth-tokens", tokens]).await;
    assert_eq!(app.get("/watch").await.status(), StatusCode::UNAUTHORIZED);
    let reader = kvs_testkit::http::client_builder()
        .default_headers(
            [(
                reqwest::header::AUTHORIZATION,
                "Bearer a-read-only-token-long-enough".parse().unwrap(),
            )]
            .into_iter()
            .collect(),
        )
        .build()
        .unwrap();
    Watch::open(&reader, &app.base, "", None).await;
}

#[tokio::test]
async fn a_watcher_resumes_across_a_kill_and_restart_with_no_gap_and_no_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let server = durability::start(dir.path(), &[]).await;
    let api = server.api.clone();
    let mut watch = Watch::open(&api.client, &api.base, "", None).await;
    for i in 0..3 {
        assert_eq!(api.put(&format!("/int/k{i}"), "1").await, StatusCode::OK);
    }
    // One revision of two changes, then one more the watcher will miss.
    assert_eq!(api.put("/str/k1", "s").await, StatusCode::OK);
    assert!(api.delete("/del/k1").await);
    assert_eq!(api.put("/int/k9", "9").await, StatusCode::OK);
    // The watcher took only the first event when the server was killed.
    let first = watch.event().await;
    assert_eq!(first.data["key"], "k0");
    server.kill();

    let server = durability::start(dir.path(), &[]).await;
    let api = server.api.clone();
    let mut watch = Watch::open(&api.client, &api.base, "", first.id).await;
    assert_eq!(api.put("/int/k3", "3").await, StatusCode::OK);
    let rest = events(&mut watch, 6).await;
    let seen: Vec<(String, String)> = rest
        .iter()
        .map(|e| {
            (
                e.kind.clone(),
                e.data.get("key").map_or(String::new(), |k| k.to_string()),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("put".into(), "\"k1\"".into()),
            ("put".into(), "\"k2\"".into()),
            ("put".into(), "\"k1\"".into()),
            ("changes".into(), String::new()),
            ("put".into(), "\"k9\"".into()),
            ("put".into(), "\"k3\"".into()),
        ],
        "replayed, then live: {rest:?}"
    );
    let ids: Vec<u64> = rest.iter().map(|e| e.id.unwrap()).collect();
    let after = first.id.unwrap();
    assert_eq!(
        ids,
        (after + 1..=after + 6).collect::<Vec<_>>(),
        "no gap, no duplicate"
    );
    assert_eq!(rest[3].data["changes"].as_array().unwrap().len(), 2);
    server.kill();
}

#[tokio::test]
async fn in_async_mode_changes_are_sent_once_durable_in_revision_order() {
    let app = TestApp::spawn(&["--durability", "async"]).await;
    let mut watch = app.watch("").await;
    let mut written = Vec::new();
    for i in 0..50 {
        written.push(
            app.write("PUT", &format!("/int/k{}", i % 7), &i.to_string())
                .await,
        );
    }
    let got = events(&mut watch, written.len()).await;
    assert_eq!(ids(&got), written);
    assert_eq!(got[49].data["value"], 49);
}

#[tokio::test]
async fn a_watch_says_the_revision_it_starts_after() {
    let app = TestApp::spawn(&[]).await;
    let head = app.write("PUT", "/int/a", "1").await;
    app.write("PUT", "/int/b", "2").await;
    let started = |query: &'static str| {
        let app = &app;
        async move {
            let resp = app.get(&format!("/watch{query}")).await;
            assert_eq!(resp.status(), StatusCode::OK);
            resp.headers()["kvs-revision"]
                .to_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        }
    };
    // From now: the store's revision, not one taken as the answer leaves.
    assert_eq!(started("").await, head + 1);
    assert_eq!(started("?since=1").await, 1);
    assert_eq!(started("?since=99").await, 99, "in the future");
}
