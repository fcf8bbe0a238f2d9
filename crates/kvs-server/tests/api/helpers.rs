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

pub use kvs_testkit::watch::{Event, Sent, Watch};
