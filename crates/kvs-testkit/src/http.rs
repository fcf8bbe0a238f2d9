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

pub async fn put(base: &str, path: &str, body: &str) -> StatusCode {
    client()
        .put(format!("{base}{path}"))
        .body(body.to_owned())
        .send()
        .await
        .unwrap_or_else(|e| panic!("PUT {path}: {e}"))
        .status()
}

pub async fn get(base: &str, path: &str) -> (StatusCode, String) {
    let resp = client()
        .get(format!("{base}{path}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    (resp.status(), resp.text().await.unwrap())
}

/// A DELETE; true when it answered `Deleted: true`.
pub async fn delete(base: &str, path: &str) -> bool {
    let resp = client()
        .delete(format!("{base}{path}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("DELETE {path}: {e}"));
    assert_eq!(resp.status(), StatusCode::OK, "DELETE {path}");
    resp.headers().get("deleted").is_some_and(|v| v == "true")
}

/// Every key of every type with its value, as the server answers them.
pub async fn dump(base: &str) -> BTreeMap<(String, String), String> {
    let mut all = BTreeMap::new();
    for ty in TYPES {
        let (status, body) = get(base, &format!("/keys/{ty}?limit=10000")).await;
        assert_eq!(status, StatusCode::OK);
        let keys: Vec<String> = serde_json::from_str(&body).unwrap();
        for key in keys {
            let (status, value) = get(base, &format!("/{ty}/{key}")).await;
            assert_eq!(status, StatusCode::OK, "{ty}/{key}");
            all.insert((ty.to_owned(), key), value);
        }
    }
    all
}
