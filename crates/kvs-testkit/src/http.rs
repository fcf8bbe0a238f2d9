//! Requests the tests make of a kvs-server, by base URL.

use std::collections::BTreeMap;

use reqwest::StatusCode;

/// A reqwest client builder for tests. reqwest is built without a crypto
/// provider of its own, so a process-wide one (ring, as everywhere in the
/// project) is installed first.
pub fn client_builder() -> reqwest::ClientBuilder {
    // Err only means a provider is already installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

/// A plain reqwest client for tests.
pub fn client() -> reqwest::Client {
    client_builder().build().expect("building a reqwest client")
}

/// The six value types, as routes name them.
pub const TYPES: [&str; 6] = ["int", "uint", "float", "str", "map", "set"];

/// A kvs-server's API by base URL, through one client, so that a test's
/// requests share connections instead of setting up a client each.
#[derive(Clone)]
pub struct Api {
    /// `http://host:port/kvs/v1-0-0`.
    pub base: String,
    pub client: reqwest::Client,
}

/// Keys asked for per page by [`Api::dump`].
const PAGE: usize = 1000;

impl Api {
    pub fn new(base: String) -> Api {
        Api {
            base,
            client: client(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn put(&self, path: &str, body: &str) -> StatusCode {
        self.client
            .put(self.url(path))
            .body(body.to_owned())
            .send()
            .await
            .unwrap_or_else(|e| panic!("PUT {path}: {e:?}"))
            .status()
    }

    pub async fn get(&self, path: &str) -> (StatusCode, String) {
        let resp = self
            .client
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e:?}"));
        (resp.status(), resp.text().await.unwrap())
    }

    /// A DELETE; true when it answered `Deleted: true`.
    pub async fn delete(&self, path: &str) -> bool {
        let resp = self
            .client
            .delete(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("DELETE {path}: {e:?}"));
        assert_eq!(resp.status(), StatusCode::OK, "DELETE {path}");
        resp.headers().get("deleted").is_some_and(|v| v == "true")
    }

    /// A transaction (`POST /txn`): its status and JSON answer, or the
    /// error of a request that got none (a killed server).
    pub async fn txn(
        &self,
        body: &serde_json::Value,
    ) -> Result<(StatusCode, serde_json::Value), reqwest::Error> {
        let resp = self.client.post(self.url("/txn")).json(body).send().await?;
        let status = resp.status();
        Ok((status, resp.json().await?))
    }

    /// Every key of every type with its value, as the server answers them,
    /// listed page by page to the end.
    pub async fn dump(&self) -> BTreeMap<(String, String), String> {
        let mut all = BTreeMap::new();
        for ty in TYPES {
            let mut after = String::new();
            loop {
                let (status, body) = self
                    .get(&format!("/keys/{ty}?limit={PAGE}&after={after}"))
                    .await;
                assert_eq!(status, StatusCode::OK, "listing {ty} after {after:?}");
                let keys: Vec<String> = serde_json::from_str(&body).unwrap();
                for key in &keys {
                    let (status, value) = self.get(&format!("/{ty}/{key}")).await;
                    assert_eq!(status, StatusCode::OK, "{ty}/{key}");
                    all.insert((ty.to_owned(), key.clone()), value);
                }
                match keys.last() {
                    Some(last) if keys.len() == PAGE => after.clone_from(last),
                    _ => break,
                }
            }
        }
        all
    }
}
