//! Access control: bearer tokens (read-only, read-write) and HTTPS.

use kvs_testkit::certs::Certs;
use kvs_testkit::http::{client, client_builder};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue, WWW_AUTHENTICATE};
use reqwest::{Client, StatusCode};

use crate::helpers::{TestApp, assert_problem, tls_trusting};

const RW: &str = "rw-0123456789abcdef";
const RO: &str = "ro-0123456789abcdef";

fn with_token(token: &str) -> Client {
    let mut headers = HeaderMap::new();
    let mut value = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
    value.set_sensitive(true);
    headers.insert(AUTHORIZATION, value);
    client_builder().default_headers(headers).build().unwrap()
}

#[tokio::test]
async fn without_a_valid_token_only_the_health_check_answers() {
    let tokens = format!("read-write:{RW},read-only:{RO}");
    let anon = TestApp::spawn(&["--auth-tokens", &tokens]).await;
    assert_eq!(anon.get_ok("/healthz").await, "ok");
    for path in [
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/str/k",
        "/str-get/k",
    ] {
        let resp = anon.get(path).await;
        assert_eq!(
            resp.headers()[WWW_AUTHENTICATE].to_str().unwrap(),
            r#"Bearer realm="kvs""#,
            "{path}"
        );
        assert_problem(resp, StatusCode::UNAUTHORIZED, "bearer token").await;
    }
    assert_problem(
        anon.put("/str/k", "v").await,
        StatusCode::UNAUTHORIZED,
        "Authorization: Bearer",
    )
    .await;

    let wrong = anon.with_client(with_token("rw-0123456789abcdeX"));
    assert_problem(
        wrong.get("/str/k").await,
        StatusCode::UNAUTHORIZED,
        "not accepted",
    )
    .await;
    let rw = anon.with_client(with_token(RW));
    assert_eq!(rw.get_ok("/readyz").await, "ready");
}

#[tokio::test]
async fn a_read_only_token_reads_and_a_read_write_token_also_writes() {
    let tokens = format!("read-write:{RW},read-only:{RO}");
    let app = TestApp::spawn(&["--auth-tokens", &tokens]).await;
    let (ro, rw) = (
        app.with_client(with_token(RO)),
        app.with_client(with_token(RW)),
    );

    for resp in [
        ro.put("/str/k", "v").await,
        ro.put("/str-put/k", "v").await,
        ro.post("/int/n/incr", "").await,
        ro.delete("/str/k").await,
    ] {
        assert!(
            resp.headers()[WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .contains("insufficient_scope")
        );
        assert_problem(resp, StatusCode::FORBIDDEN, "may only read").await;
    }
    assert_eq!(ro.get("/str/k").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(ro.get("/int/n").await.status(), StatusCode::NOT_FOUND);

    rw.put_ok("/str/k", "v").await;
    assert_eq!(ro.get_ok("/str/k").await, "v");
    assert_eq!(ro.get_ok("/str-get/k").await, "v");
    assert_eq!(ro.get_ok("/keys/str").await, r#"["k"]"#);
}

#[tokio::test]
async fn tokens_come_from_a_file_and_a_bad_file_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens");
    std::fs::write(
        &file,
        format!("# clients\nread-write:{RW}\n\nread-only:{RO}\n"),
    )
    .unwrap();
    let file_arg = file.to_str().unwrap();
    let app = TestApp::spawn(&["--auth-tokens-file", file_arg]).await;
    assert_eq!(app.get("/str/k").await.status(), StatusCode::UNAUTHORIZED);
    app.with_client(with_token(RW)).put_ok("/str/k", "v").await;
    assert_eq!(
        app.with_client(with_token(RO))
            .put("/str/k", "w")
            .await
            .status(),
        StatusCode::FORBIDDEN
    );

    let data = tempfile::tempdir().unwrap();
    let err = kvs_server::spawn_with(data.path(), &["--auth-tokens", " , "])
        .await
        .err()
        .expect("tokens set but empty must stop the start");
    assert!(err.to_string().contains("holds no token"), "{err}");

    for (text, says) in [
        ("# nothing here\n\n", "holds no token"),
        ("read-write:short\n", "shorter than 16"),
        ("writer:0123456789abcdef0\n", "read-write or read-only"),
    ] {
        std::fs::write(&file, text).unwrap();
        let data = tempfile::tempdir().unwrap();
        let err = kvs_server::spawn_with(data.path(), &["--auth-tokens-file", file_arg])
            .await
            .err()
            .expect("the server must refuse to start");
        let msg = err.to_string();
        assert!(msg.contains(says) && msg.contains(file_arg), "{msg}");
    }
}

/// An HTTPS client that trusts only the CA in `ca`, or nothing at all.
fn trusting(ca: Option<&std::path::Path>) -> Client {
    client_builder()
        .use_preconfigured_tls(tls_trusting(ca))
        .build()
        .unwrap()
}

#[tokio::test]
async fn https_serves_with_the_configured_certificate() {
    let certs = Certs::new();
    let (cert, key) = (certs.path("server.crt"), certs.path("server.key"));
    let app = TestApp::spawn(&[
        "--http-tls-cert",
        cert.to_str().unwrap(),
        "--http-tls-key",
        key.to_str().unwrap(),
    ])
    .await;
    assert!(app.base.starts_with("https://127.0.0.1:"), "{}", app.base);
    let tls = app.with_client(trusting(Some(&certs.path("ca.crt"))));
    tls.put_ok("/str/k", "over TLS").await;
    assert_eq!(tls.get_ok("/str/k").await, "over TLS");

    // A client that does not trust the CA, and one speaking plain HTTP.
    let err = trusting(None)
        .get(app.url("/healthz"))
        .send()
        .await
        .expect_err("an unknown CA must fail the handshake");
    assert!(err.is_connect(), "{err:?}");
    let plain = app.url("/healthz").replacen("https://", "http://", 1);
    assert!(
        client()
            .get(plain)
            .send()
            .await
            .is_err_and(|e| !e.is_status()),
        "plain HTTP must not be served on the TLS port"
    );
}

#[tokio::test]
async fn https_needs_both_a_certificate_and_a_key() {
    let certs = Certs::new();
    let data = tempfile::tempdir().unwrap();
    let cert = certs.path("server.crt");
    let err = kvs_server::spawn_with(data.path(), &["--http-tls-cert", cert.to_str().unwrap()])
        .await
        .err()
        .expect("a certificate without its key must be refused");
    assert!(err.to_string().contains("--http-tls-key"), "{err}");

    let missing = certs.path("missing.key");
    let err = kvs_server::spawn_with(
        data.path(),
        &[
            "--http-tls-cert",
            cert.to_str().unwrap(),
            "--http-tls-key",
            missing.to_str().unwrap(),
        ],
    )
    .await
    .err()
    .expect("a missing key file must be refused");
    assert!(err.to_string().contains("missing.key"), "{err}");
}

#[tokio::test]
async fn a_refused_body_closes_the_connection_instead_of_breaking_the_next_request() {
    let tokens = format!("read-write:{RW},read-only:{RO}");
    let app = TestApp::spawn(&["--auth-tokens", &tokens]).await;
    let ro = app.with_client(with_token(RO));
    // Refused before their bodies were read: the connection cannot be
    // reused, and the answer must say so, or the next request on it fails.
    for round in 0..50 {
        let resp = ro.put("/str/k", "x".repeat(64 * 1024)).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "round {round}");
        assert_eq!(resp.headers()["connection"], "close", "round {round}");
        let resp = app.put("/str/k", "body").await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "round {round}");
        assert_eq!(
            ro.get("/str/k").await.status(),
            StatusCode::NOT_FOUND,
            "round {round}"
        );
    }
    // A refusal of a request without a body keeps the connection.
    let resp = app.get("/str/k").await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(!resp.headers().contains_key("connection"));
}

#[tokio::test]
async fn a_read_only_token_may_call_the_original_computing_routes() {
    let app = TestApp::spawn(&["--auth-tokens", &format!("read-only:{RO}")]).await;
    let ro = app.with_client(with_token(RO));
    let resp = ro.post("/echo", "hi").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.text().await.unwrap(), "HI");
    assert_eq!(ro.post("/fibo?n=10", "").await.status(), StatusCode::OK);
    assert_eq!(
        ro.post("/int/n/incr", "").await.status(),
        StatusCode::FORBIDDEN
    );
}
