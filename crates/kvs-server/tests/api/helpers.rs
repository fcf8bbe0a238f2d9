//! An in-process server on an ephemeral port, with its own data directory,
//! and request helpers named for what they do.

use std::sync::Arc;

use reqwest::{Response, StatusCode};

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    _dir: Arc<tempfile::TempDir>,
    /// Dropping the last handle shuts the server down.
    _server: Arc<kvs_server::Running>,
}

impl TestApp {
    /// A ready server on an ephemeral port with the default settings plus
    /// `args`.
    pub async fn spawn(args: &[&str]) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = kvs_server::spawn_with(dir.path(), args)
            .await
            .expect("server failed to start");
        TestApp {
            base: format!("{}/kvs/v1-0-0", server.url()),
            client: kvs_testkit::http::client(),
            _dir: Arc::new(dir),
            _server: Arc::new(server),
        }
    }

    /// The same server, reached through `client` (another token, a CA).
    pub fn with_client(&self, client: reqwest::Client) -> TestApp {
        TestApp {
            base: self.base.clone(),
            client,
            _dir: self._dir.clone(),
            _server: self._server.clone(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn put(&self, path: &str, body: impl Into<reqwest::Body>) -> Response {
        self.client
            .put(self.url(path))
            .body(body)
            .send()
            .await
            .expect("PUT")
    }

    pub async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> Response {
        self.client
            .post(self.url(path))
            .body(body)
            .send()
            .await
            .expect("POST")
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.client
            .delete(self.url(path))
            .send()
            .await
            .expect("DELETE")
    }

    /// The body of a GET that must answer 200.
    pub async fn get_ok(&self, path: &str) -> String {
        let resp = self.get(path).await;
        assert_eq!(resp.status(), StatusCode::OK, "GET {path}");
        resp.text().await.unwrap()
    }

    /// A PUT that must answer 200.
    pub async fn put_ok(&self, path: &str, body: &str) {
        let resp = self.put(path, body.to_owned()).await;
        let status = resp.status();
        assert_eq!(
            status,
            StatusCode::OK,
            "PUT {path} {body:?}: {}",
            resp.text().await.unwrap()
        );
    }
}

/// Asserts an error answer: its status, the problem+json format, and a
/// detail that mentions `needle`.
pub async fn assert_problem(resp: Response, status: StatusCode, needle: &str) {
    assert_eq!(resp.status(), status);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert_eq!(ct, "application/problem+json");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["status"], status.as_u16());
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains(needle),
        "detail {detail:?} lacks {needle:?}"
    );
}

/// Whether a DELETE answered 200 with `Deleted: true`.
pub fn deleted(resp: &Response) -> bool {
    assert_eq!(resp.status(), StatusCode::OK);
    resp.headers().get("deleted").is_some_and(|v| v == "true")
}

/// TLS settings that trust only the CA in `ca`, or nothing at all.
pub fn tls_trusting(ca: Option<&std::path::Path>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in ca
        .map(|ca| kvs_service::pem::read_certs(ca).unwrap())
        .unwrap_or_default()
    {
        roots.add(cert).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// What a watch stream sends: an event, or a comment (a heartbeat).
#[derive(Debug, Clone, PartialEq)]
pub enum Sent {
    Event(Event),
    Comment(String),
}

/// One Server-Sent Event, its data parsed as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: Option<u64>,
    pub kind: String,
    pub data: serde_json::Value,
}

/// Long enough for any machine: a watch test that waits this long for
/// an event has failed.
const PATIENT: std::time::Duration = std::time::Duration::from_secs(60);

/// A watch stream read as the SSE format says: `field: value` lines, an
/// event ended by a blank line, `:` starting a comment.
pub struct Watch {
    resp: Response,
    buf: Vec<u8>,
}

impl Watch {
    /// `GET {base}/watch{query}`, resuming after `last_id` when given; it
    /// must answer a stream.
    pub async fn open(
        client: &reqwest::Client,
        base: &str,
        query: &str,
        last_id: Option<u64>,
    ) -> Watch {
        let mut req = client.get(format!("{base}/watch{query}"));
        if let Some(id) = last_id {
            req = req.header("last-event-id", id.to_string());
        }
        let resp = req.send().await.expect("GET /watch");
        assert_eq!(resp.status(), StatusCode::OK, "GET /watch{query}");
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        Watch {
            resp,
            buf: Vec::new(),
        }
    }

    /// What comes next; `None` once the stream ended.
    pub async fn next(&mut self) -> Option<Sent> {
        let (mut id, mut kind, mut data, mut comment) = (None, None, Vec::new(), None);
        loop {
            let Some(end) = self.buf.iter().position(|&b| b == b'\n') else {
                let chunk = tokio::time::timeout(PATIENT, self.resp.chunk())
                    .await
                    .expect("nothing sent for a minute");
                match chunk {
                    Ok(Some(chunk)) => {
                        self.buf.extend_from_slice(&chunk);
                        continue;
                    }
                    Ok(None) | Err(_) => return None,
                }
            };
            let line: Vec<u8> = self.buf.drain(..=end).collect();
            let line = String::from_utf8(line).expect("UTF-8");
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if let Some(c) = comment.take() {
                    return Some(Sent::Comment(c));
                }
                if !data.is_empty() {
                    let data = serde_json::from_str(&data.join("\n")).expect("JSON data");
                    let kind = kind.unwrap_or_else(|| "message".to_owned());
                    return Some(Sent::Event(Event { id, kind, data }));
                }
                continue;
            }
            if let Some(c) = line.strip_prefix(':') {
                comment = Some(c.trim().to_owned());
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => id = Some(value.parse().expect("a revision")),
                "event" => kind = Some(value.to_owned()),
                "data" => data.push(value.to_owned()),
                other => panic!("unexpected SSE field {other:?}"),
            }
        }
    }

    /// The next event, past any heartbeat; panics at the stream's end.
    pub async fn event(&mut self) -> Event {
        loop {
            match self.next().await {
                Some(Sent::Event(e)) => return e,
                Some(Sent::Comment(_)) => {}
                None => panic!("the watch stream ended"),
            }
        }
    }
}
