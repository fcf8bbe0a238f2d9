//! Limits that protect the server: value size, map and set entries,
//! request time, and connections.

use std::time::Duration;

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestApp, assert_problem};

#[tokio::test]
async fn values_over_the_byte_limit_get_413_and_change_nothing() {
    let app = TestApp::spawn(&["--max-value-bytes", "8"]).await;
    app.put_ok("/str/k", "12345678").await;
    for (path, body) in [
        ("/str/k", "123456789"),
        ("/str-put/k", "123456789"),
        ("/map/m", r#"{"abcd":"efghi"}"#),
        ("/set/s", r#"["abcd","efghi"]"#),
    ] {
        assert_problem(
            app.put(path, body).await,
            StatusCode::PAYLOAD_TOO_LARGE,
            "--max-value-bytes",
        )
        .await;
    }
    assert_eq!(app.get_ok("/str/k").await, "12345678");
    assert_eq!(app.get("/map/m").await.status(), StatusCode::NOT_FOUND);

    // Growing a map field by field stops at the limit too.
    app.put_ok("/map/m/ab", "cdef").await;
    assert_problem(
        app.put("/map/m/gh", "ijk").await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "would hold 11 bytes",
    )
    .await;
    assert_eq!(app.get_ok("/map/m").await, r#"{"ab":"cdef"}"#);
}

#[tokio::test]
async fn maps_and_sets_over_the_entry_limit_get_413_and_may_still_shrink() {
    let app = TestApp::spawn(&["--max-entries", "2"]).await;
    app.put_ok("/set/s", r#"["a","b"]"#).await;
    assert_problem(
        app.put("/set/s/c", "").await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "--max-entries",
    )
    .await;
    assert_problem(
        app.put("/set-put/t", r#"["a","b","c"]"#).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "would hold 3 entries",
    )
    .await;
    app.put_ok("/map/m/x", "1").await;
    app.put_ok("/map/m/y", "2").await;
    assert_eq!(
        app.put("/map/m/z", "3").await.status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );
    // Replacing a field adds no entry.
    app.put_ok("/map/m/y", "22").await;
    assert_eq!(app.get_ok("/map/m").await, r#"{"x":"1","y":"22"}"#);
    assert_eq!(app.get_ok("/set/s").await, r#"["a","b"]"#);
    assert_eq!(app.get("/set/t").await.status(), StatusCode::NOT_FOUND);
    assert!(
        app.delete("/set/s/a")
            .await
            .headers()
            .contains_key("deleted")
    );
}

/// A raw HTTP/1.1 exchange: sends `request`, returns what the server sent
/// until one whole answer came, the server closed the connection, or
/// `wait` passed.
async fn exchange(stream: &mut TcpStream, request: &str, wait: Duration) -> String {
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + wait;
    while !is_whole_answer(&got) {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// Whether `got` holds an answer's head and the `Content-Length` bytes
/// after it.
fn is_whole_answer(got: &[u8]) -> bool {
    let text = String::from_utf8_lossy(got);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let length = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())?
    });
    length.is_some_and(|n| body.len() >= n)
}

fn addr_of(app: &TestApp) -> String {
    let rest = app.base.strip_prefix("http://").unwrap();
    rest.split('/').next().unwrap().to_owned()
}

#[tokio::test]
async fn a_body_that_comes_too_slowly_gets_408() {
    let app = TestApp::spawn(&["--request-timeout", "1"]).await;
    let mut stream = TcpStream::connect(addr_of(&app)).await.unwrap();
    let started = std::time::Instant::now();
    let answer = exchange(
        &mut stream,
        "PUT /kvs/v1-0-0/str/slow HTTP/1.1\r\nHost: kvs\r\nContent-Length: 10\r\n\r\n12",
        Duration::from_secs(10),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer:?}");
    assert!(answer.contains("--request-timeout"), "{answer:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(app.get("/str/slow").await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn idle_and_half_sent_connections_are_closed_after_the_timeout() {
    let app = TestApp::spawn(&["--request-timeout", "1"]).await;
    let mut idle = TcpStream::connect(addr_of(&app)).await.unwrap();
    let answer = exchange(
        &mut idle,
        "GET /kvs/v1-0-0/healthz HTTP/1.1\r\nHost: kvs\r\n\r\n",
        Duration::from_secs(10),
    )
    .await;
    // Answered, then closed once idle for the timeout (not after 10 s).
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer:?}");
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0))), "{closed:?}");

    let mut half = TcpStream::connect(addr_of(&app)).await.unwrap();
    let answer = exchange(&mut half, "GET /kvs/v1-0-0/hea", Duration::from_secs(5)).await;
    assert!(answer.is_empty() || answer.contains(" 408 "), "{answer:?}");
    let closed = tokio::time::timeout(Duration::from_secs(5), half.read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
}

#[tokio::test]
async fn a_connection_over_the_cap_gets_503_and_a_freed_slot_is_reused() {
    let app = TestApp::spawn(&["--max-connections", "2"]).await;
    let addr = addr_of(&app);
    let request = "GET /kvs/v1-0-0/healthz HTTP/1.1\r\nHost: kvs\r\n\r\n";
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        let answer = exchange(&mut s, request, Duration::from_secs(10)).await;
        assert!(answer.starts_with("HTTP/1.1 200 "), "{answer:?}");
        held.push(s);
    }
    let mut third = TcpStream::connect(&addr).await.unwrap();
    let answer = exchange(&mut third, request, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer:?}");
    let lower = answer.to_ascii_lowercase();
    assert!(
        lower.contains("retry-after: 1") && lower.contains("connection: close"),
        "{answer}"
    );
    assert!(answer.contains("--max-connections"), "{answer}");

    drop(held.pop());
    // The server frees the slot when it notices the close: until then a new
    // connection is refused, each refusal a whole answer.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        let answer = exchange(&mut s, request, Duration::from_secs(10)).await;
        if answer.starts_with("HTTP/1.1 200 ") {
            return;
        }
        assert!(answer.starts_with("HTTP/1.1 503 "), "{answer:?}");
        assert!(
            std::time::Instant::now() < deadline,
            "no slot was freed by closing a connection"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_body_over_the_limit_closes_the_connection_instead_of_breaking_the_next_request() {
    let app = TestApp::spawn(&["--max-body-bytes", "1024"]).await;
    app.put_ok("/str/k", "v").await;
    // Answered before the body was read: the connection cannot be reused,
    // and the answer must say so, or the next request on it fails.
    for round in 0..200 {
        let resp = app.put("/str/big", "x".repeat(64 * 1024)).await;
        assert_eq!(
            resp.status(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "round {round}"
        );
        assert_eq!(resp.headers()["connection"], "close", "round {round}");
        let resp = app.get("/str/k").await;
        assert_eq!(resp.status(), StatusCode::OK, "round {round}");
    }
    // A body that was read, then refused, leaves the connection open.
    let resp = app.put("/int/n", "not a number").await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(!resp.headers().contains_key("connection"));
}

#[tokio::test]
async fn a_body_declared_too_large_is_refused_before_the_client_sends_it() {
    let app = TestApp::spawn(&["--max-body-bytes", "1024"]).await;
    let mut stream = TcpStream::connect(addr_of(&app)).await.unwrap();
    let answer = exchange(
        &mut stream,
        "PUT /kvs/v1-0-0/str/big HTTP/1.1\r\nHost: kvs\r\nContent-Length: 100000\r\nExpect: 100-continue\r\n\r\n",
        Duration::from_secs(10),
    )
    .await;
    // 413 straight away: no "100 Continue" inviting the body first.
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer:?}");
    assert!(answer.contains("--max-body-bytes"), "{answer:?}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer:?}"
    );
}

#[tokio::test]
async fn method_names_of_the_clients_own_add_no_metrics_series() {
    let app = TestApp::spawn(&[]).await;
    for i in 0..50 {
        let method = reqwest::Method::from_bytes(format!("NOSUCH{i}").as_bytes()).unwrap();
        let resp = app
            .client
            .request(method, app.url("/str/k"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
    let metrics = app.get_ok("/metrics").await;
    let rows: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("kvs_http_requests_total{") && l.contains("status=\"405\""))
        .collect();
    assert_eq!(
        rows,
        [
            r#"kvs_http_requests_total{method="OTHER",route="/kvs/v1-0-0/{type}/{key}",status="405"} 50"#
        ],
        "{metrics}"
    );
}
