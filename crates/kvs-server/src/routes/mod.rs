//! Where a request enters: the router, its shared state and middleware.
//!
//! - [`compat`]: the original service's routes, unchanged.
//! - [`resource`]: `/{type}/{key}`, map fields, set members, key listing.
//! - [`txn`]: multi-key transactions.
//! - [`ops`]: health, readiness, metrics, OpenAPI document and docs page.
//! - [`openapi`]: what the routes' documentation shares, and the OpenAPI
//!   document's own parts; each route documents itself where it is
//!   registered, and the document is made from the routes.
//! - [`values`]: the operations both route families share.
//! - [`extract`]: extractors that answer in the API's error format.
//! - [`revision`]: `ETag`, `KVS-Revision` and the preconditions.
//! - [`watch`](mod@watch): `GET /watch`, the store's changes as they
//!   become durable.
//! - [`unread`]: bodies declared too large, and `Connection: close` on
//!   answers given before the body was read.
//! - [`gate`]: the one layer every request passes, and the guards it
//!   holds requests to.

mod compat;
mod extract;
mod gate;
mod openapi;
mod ops;
mod resource;
mod revision;
mod txn;
mod unread;
mod values;
mod watch;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::Redirect;
use axum::routing::get;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};

pub(crate) use self::gate::Guards;
use self::gate::{Gate, Route};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::replica::routing::Routing;
use crate::store::Store;
use crate::watch::Watchers;

/// Every route lives under this path: service `kvs`, API version `v1.0.0`.
pub(crate) const BASE_PATH: &str = "/kvs/v1-0-0";
/// The version of the API, the original service's; the binaries have a
/// version of their own (`--version`, the workspace's).
pub(crate) const API_VERSION: &str = "v1.0.0";
/// The docs page, where `/` and the base path itself lead.
const DOCS_PATH: &str = "/kvs/v1-0-0/docs";

#[derive(Clone)]
pub(crate) struct AppState {
    pub store: Arc<Store>,
    pub metrics: Arc<Metrics>,
    /// The most compares and operations one transaction may hold.
    pub max_txn_ops: usize,
    pub watchers: Arc<Watchers>,
    /// Where writes go when this node follows the log.
    pub routing: Arc<Routing>,
}

/// A route's methods at its full path, under [`BASE_PATH`]: the router
/// is flat, with no prefix to strip from each request's path (which
/// `Router::nest` would do). The document's paths are below the base,
/// which its server URL names.
fn based(
    (schemas, mut paths, methods): UtoipaMethodRouter<AppState>,
) -> UtoipaMethodRouter<AppState> {
    paths.paths = (paths.paths.into_iter())
        .map(|(path, item)| (format!("{BASE_PATH}{path}"), item))
        .collect();
    (schemas, paths, methods)
}

/// Where a person lands first: the docs page.
const TO_DOCS: [&str; 3] = ["/", BASE_PATH, "/kvs/v1-0-0/"];

/// The whole HTTP API.
pub(crate) fn router(state: AppState, guards: Guards) -> Router {
    // In the order the document lists them.
    let data = resource::routes()
        .merge(txn::routes())
        .merge(compat::routes())
        .merge(watch::routes());
    let ops = ops::routes();
    // Every route the router serves, for the layer to look up; each
    // pattern is leaked once, as a metrics label.
    let mut routes = HashMap::new();
    for (router, data) in [(&data, true), (&ops, false)] {
        for path in router.get_openapi().paths.paths.keys() {
            let pattern: &'static str = Box::leak(path.as_str().into());
            let watch = path.strip_prefix(BASE_PATH) == Some(watch::PATH);
            routes.insert(pattern, Route::new(pattern, data, watch));
        }
    }
    for pattern in TO_DOCS {
        routes.insert(pattern, Route::new(pattern, false, false));
    }
    // The routes and their documentation, apart: what serves a request is
    // the plain router, as if it had been built without the document.
    let (api, mut document) = OpenApiRouter::with_openapi(openapi::base())
        .merge(data)
        .merge(ops)
        .split_for_parts();
    openapi::below_base(&mut document);
    ops::serve_document(&document);
    let to_docs = get(|| async { Redirect::to(DOCS_PATH) });
    let api = TO_DOCS
        .into_iter()
        .fold(api, |r, pattern| r.route(pattern, to_docs.clone()));
    let gate = Gate {
        state: state.clone(),
        guards,
        routes,
        unmatched: Route::new("unmatched", false, false),
    };
    api.fallback(|| async {
            ApiError::not_found("no such route; the API lives under /kvs/v1-0-0, its routes are listed at /kvs/v1-0-0/docs")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "this route does not take that method; see /kvs/v1-0-0/docs",
            )
        })
        .layer(middleware::from_fn_with_state(Arc::new(gate), gate::gate))
        .with_state(state)
}

/// The middleware stack through the router itself, without a socket.
#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::body::Body;
    use axum::extract::Request;
    use axum::http::{Method, header};
    use tower::ServiceExt;
    use tracing::Level;

    use super::*;
    use crate::auth::Tokens;
    use crate::store::{Db, Durability, Journal, Limits};
    use crate::watch::{Bounds, History};

    /// The API over a store still replaying its log; `tokens`, when given,
    /// are the only ones let in.
    fn app(max_body_bytes: usize, tokens: Option<Tokens>) -> Router {
        with_store(max_body_bytes, tokens).0
    }

    /// [`app`], with its store and where it sends writes.
    fn with_store(
        max_body_bytes: usize,
        tokens: Option<Tokens>,
    ) -> (Router, Arc<Store>, Arc<Routing>) {
        let metrics = Arc::new(Metrics::default());
        let (journal, _queue) = Journal::new(
            Durability::Sync,
            1,
            false,
            Duration::from_secs(1),
            metrics.clone(),
        );
        let store = Arc::new(Store {
            db: Arc::new(Db::default()),
            journal,
            limits: Limits::NONE,
            history: Arc::new(History::new(Bounds {
                revisions: 1,
                bytes: 1,
            })),
        });
        let watchers = Arc::new(Watchers::new(1, Duration::from_secs(1), metrics.clone()));
        let routing = Arc::new(Routing::new("http://127.0.0.1:8080"));
        let app = router(
            AppState {
                store: store.clone(),
                metrics,
                max_txn_ops: 1,
                watchers,
                routing: routing.clone(),
            },
            Guards {
                max_body_bytes,
                request_timeout: Duration::from_secs(30),
                tokens,
                min_revision_wait: Duration::ZERO,
            },
        );
        (app, store, routing)
    }

    async fn answer(app: Router, req: Request) -> (StatusCode, header::HeaderMap, String) {
        let resp = app.oneshot(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        (
            parts.status,
            parts.headers,
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }

    fn request(method: Method, path: &str, body: &'static str) -> Request {
        Request::builder()
            .method(method)
            .uri(path)
            .header(header::CONTENT_LENGTH, body.len())
            .body(Body::from(body))
            .unwrap()
    }

    #[tokio::test]
    async fn a_node_that_follows_sends_writes_to_the_primary_and_reads_wait_for_a_revision() {
        let (app, store, routing) = with_store(1024, None);
        store.journal.follow_from(5);
        let put = || request(Method::PUT, "/kvs/v1-0-0/str/k?ttl=9", "v");
        let (status, headers, _) = answer(app.clone(), put()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "no primary yet");
        assert_eq!(headers[header::RETRY_AFTER], "1");
        routing.learn(Some("http://primary:8080"));
        for req in [put(), request(Method::POST, "/kvs/v1-0-0/txn", "{}")] {
            let path = req.uri().to_string();
            let (status, headers, _) = answer(app.clone(), req).await;
            assert_eq!(status, StatusCode::TEMPORARY_REDIRECT);
            assert_eq!(
                headers[header::LOCATION],
                format!("http://primary:8080{path}").as_str()
            );
            assert_eq!(headers["kvs-revision"], "5");
        }

        let get = |min: &str| {
            Request::builder()
                .uri("/kvs/v1-0-0/str/k")
                .header("kvs-min-revision", min)
                .body(Body::empty())
                .unwrap()
        };
        let (status, _, _) = answer(app.clone(), get("5")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "reached: the read runs");
        let (status, headers, body) = answer(app.clone(), get("6")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(headers[header::RETRY_AFTER], "1");
        assert!(body.contains("reached revision 5, not yet 6"), "{body}");
        let (status, _, _) = answer(app.clone(), get("-1")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        store.journal.followed(6);
        let (status, _, _) = answer(app, get("6")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn an_unknown_route_is_a_404_problem_that_points_to_the_docs() {
        let (status, headers, body) =
            answer(app(1024, None), request(Method::GET, "/nowhere", "")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
        assert!(body.contains("/kvs/v1-0-0/docs"), "{body}");
    }

    /// Everything logged in this test binary once a test asked for it. The
    /// subscriber is global: tracing caches, per callsite, whether anyone
    /// listens, so a subscriber of one test's thread would lose that race
    /// to tests running on others.
    #[derive(Clone, Default)]
    struct Logged(Arc<parking_lot::Mutex<Vec<u8>>>);

    impl std::io::Write for Logged {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.0.lock().extend_from_slice(data);
            Ok(data.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged() -> &'static Logged {
        static LOGGED: std::sync::OnceLock<Logged> = std::sync::OnceLock::new();
        LOGGED.get_or_init(|| {
            let logged = Logged::default();
            let writer = logged.clone();
            // Debug, as with `--log-level debug`: requests' spans are debug.
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(Level::DEBUG)
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .finish();
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other global subscriber in these tests (is TEST_LOG set?)");
            logged
        })
    }

    impl Logged {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock()).into_owned()
        }
    }

    #[tokio::test]
    async fn a_write_during_replay_is_a_503_logged_with_its_cause_and_route() {
        let logged = logged();
        let (status, headers, body) = answer(
            app(1024, None),
            request(Method::PUT, "/kvs/v1-0-0/str/k", "value"),
        )
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(headers[header::RETRY_AFTER], "1");
        assert!(body.contains("replaying"), "{body}");
        // The body was never read: the connection cannot carry another request.
        assert_eq!(headers[header::CONNECTION], "close");
        // Other tests log here too: one line must say all of it.
        let log = logged.text();
        let route = r#"route="/kvs/v1-0-0/{type}/{key}""#;
        assert!(
            log.lines().any(|l| l.contains("WARN")
                && l.contains("status=503")
                && l.contains("still replaying")
                && l.contains("method=PUT")
                && l.contains(route)),
            "no 503 logged with its cause, method and route:\n{log}"
        );
    }

    #[tokio::test]
    async fn a_body_declared_over_the_limit_is_refused_before_the_token_check() {
        let tokens = Tokens::parse("read-write:a-token-long-enough-to-pass").unwrap();
        let (status, headers, body) = answer(
            app(4, Some(tokens)),
            request(Method::PUT, "/kvs/v1-0-0/str/k", "too long"),
        )
        .await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(headers[header::CONNECTION], "close");
        assert!(body.contains("--max-body-bytes"), "{body}");
    }

    #[tokio::test]
    async fn a_request_without_a_token_is_401_when_tokens_are_set() {
        let tokens = Tokens::parse("read-write:a-token-long-enough-to-pass").unwrap();
        let (status, headers, _) = answer(
            app(1024, Some(tokens)),
            request(Method::GET, "/kvs/v1-0-0/str/k", ""),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(headers.contains_key(header::WWW_AUTHENTICATE));
    }

    /// Every route of the document, probed through the router over a store
    /// still replaying: data routes answer the replay's 503 with the
    /// store's revision, the others are not held and carry no revision,
    /// and each is counted under its own pattern.
    #[tokio::test]
    async fn every_route_is_counted_under_its_pattern_and_only_data_routes_wait_for_the_replay() {
        let app = app(1024, None);
        let get = |path: &str| request(Method::GET, path, "");
        let (_, _, doc) = answer(app.clone(), get("/kvs/v1-0-0/openapi.json")).await;
        let doc: serde_json::Value = serde_json::from_str(&doc).unwrap();
        let ops = ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"];
        let mut probed = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            let concrete = path
                .replace("{type}", "int")
                .replace("{key}", "k")
                .replace("{field}", "f")
                .replace("{member}", "m");
            for method in item.as_object().unwrap().keys() {
                let method: Method = method.to_uppercase().parse().unwrap();
                let uri = format!("{BASE_PATH}{concrete}");
                let (status, headers, _) = answer(app.clone(), request(method, &uri, "")).await;
                if ops.contains(&path.as_str()) {
                    assert!(!headers.contains_key(&revision::REVISION), "{uri}");
                } else {
                    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{uri}");
                    assert!(headers.contains_key(&revision::REVISION), "{uri}");
                }
            }
            probed.push(format!("{BASE_PATH}{path}"));
        }
        assert!(probed.len() > ops.len(), "{probed:?}");
        let (_, headers, _) = answer(app.clone(), get("/nowhere")).await;
        assert!(!headers.contains_key(&revision::REVISION));
        let (_, _, metrics) = answer(app, get("/kvs/v1-0-0/metrics")).await;
        for route in probed.iter().map(String::as_str).chain(["unmatched"]) {
            let series = format!(r#"route="{route}","#);
            assert!(
                metrics
                    .lines()
                    .any(|l| l.starts_with("kvs_http_requests_total") && l.contains(&series)),
                "{route} not counted:\n{metrics}"
            );
        }
    }
}
