//! A connection on which nothing moves is closed, whatever state it idles
//! in: before its first byte, after a TLS handshake, as an idle HTTP/2
//! connection, or inside an unfinished HTTP/2 header block. Each server
//! here has `--request-timeout 1`; a silent connection is closed a few
//! seconds after that.

use std::sync::Arc;
use std::time::Duration;

use kvs_testkit::certs::Certs;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestApp, tls_trusting};

/// The HTTP/2 connection preface and an empty SETTINGS frame.
const H2_START: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

fn addr_of(app: &TestApp) -> String {
    let rest = app.base.split_once("://").unwrap().1;
    rest.split('/').next().unwrap().to_owned()
}

/// Reads (and drops) whatever the server sends until it closes the
/// connection; fails if it is still open after a generous bound.
async fn closed_by_the_server(mut stream: impl AsyncRead + Unpin) {
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server kept a silent connection open");
}

#[tokio::test]
async fn a_connection_that_never_sends_a_byte_is_closed_and_frees_its_slot() {
    let app = TestApp::spawn(&["--request-timeout", "1", "--max-connections", "2"]).await;
    let silent = [
        TcpStream::connect(addr_of(&app)).await.unwrap(),
        TcpStream::connect(addr_of(&app)).await.unwrap(),
    ];
    for stream in silent {
        closed_by_the_server(stream).await;
    }
    assert_eq!(app.get_ok("/healthz").await, "ok");
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed() {
    let app = TestApp::spawn(&["--request-timeout", "1"]).await;
    let mut stream = TcpStream::connect(addr_of(&app)).await.unwrap();
    stream.write_all(H2_START).await.unwrap();
    closed_by_the_server(stream).await;
}

#[tokio::test]
async fn an_unfinished_http2_header_block_is_closed() {
    let app = TestApp::spawn(&["--request-timeout", "1"]).await;
    let mut stream = TcpStream::connect(addr_of(&app)).await.unwrap();
    stream.write_all(H2_START).await.unwrap();
    // HEADERS on stream 1, one byte of header block (`:method GET`), and
    // neither END_HEADERS nor a CONTINUATION after it.
    stream
        .write_all(&[0, 0, 1, 0x1, 0x0, 0, 0, 0, 1, 0x82])
        .await
        .unwrap();
    closed_by_the_server(stream).await;
}

#[tokio::test]
async fn a_tls_connection_silent_after_its_handshake_is_closed() {
    let certs = Certs::new();
    let (cert, key) = (certs.path("server.crt"), certs.path("server.key"));
    let app = TestApp::spawn(&[
        "--request-timeout",
        "1",
        "--http-tls-cert",
        cert.to_str().unwrap(),
        "--http-tls-key",
        key.to_str().unwrap(),
    ])
    .await;
    let connector =
        tokio_rustls::TlsConnector::from(Arc::new(tls_trusting(Some(&certs.path("ca.crt")))));
    let tcp = TcpStream::connect(addr_of(&app)).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.expect("the handshake");
    closed_by_the_server(tls).await;
}
