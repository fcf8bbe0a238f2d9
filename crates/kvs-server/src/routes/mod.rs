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

mod compat;
mod extract;
mod openapi;
mod ops;
mod resource;
mod revision;
mod txn;
mod unread;
mod values;
mod watch;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use tower_http::LatencyUnit;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::{Level, Span};
use utoipa_axum::router::OpenApiRouter;

use crate::auth::{Tokens, require_token};
use crate::error::ApiError;
use crate::metrics::Metrics;
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
}

/// What every request is held to before it reaches a route.
pub(crate) struct Guards {
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    /// `None`: the API is open.
    pub tokens: Option<Arc<Tokens>>,
}

/// The whole HTTP API.
pub(crate) fn router(state: AppState, guards: Guards) -> Router {
    // In the order the document lists them.
    let data = resource::routes()
        .merge(txn::routes())
        .merge(compat::routes())
        .merge(watch::routes())
        .route_layer(middleware::from_fn_with_state(state.clone(), replayed));
    // The routes and their documentation, apart: what serves a request is
    // the plain router, as if it had been built without the document.
    let (api, document) = OpenApiRouter::with_openapi(openapi::base())
        .merge(data)
        .merge(ops::routes())
        .split_for_parts();
    ops::serve_document(&document);
    // Where a person lands first: the docs page.
    let to_docs = get(|| async { Redirect::to(DOCS_PATH) });
    let api = Router::new()
        .nest(BASE_PATH, api)
        .route("/", to_docs.clone())
        .route("/kvs/v1-0-0", to_docs.clone())
        .route("/kvs/v1-0-0/", to_docs)
        .fallback(|| async {
            ApiError::not_found("no such route; the API lives under /kvs/v1-0-0, its routes are listed at /kvs/v1-0-0/docs")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "this route does not take that method; see /kvs/v1-0-0/docs",
            )
        })
        .layer(DefaultBodyLimit::max(guards.max_body_bytes));
    // Tokens are checked before any route reads a body; refusals are timed
    // and counted like every other answer.
    let api = match guards.tokens {
        Some(tokens) => api.layer(middleware::from_fn_with_state(tokens, require_token)),
        None => api,
    };
    let max_body = guards.max_body_bytes;
    api.layer(middleware::from_fn_with_state(
        guards.request_timeout,
        time_limit,
    ))
    .layer(middleware::from_fn_with_state(
        state.clone(),
        move |s, req, next| track(s, max_body, req, next),
    ))
    // Outermost, so that everything a request logs is inside its span. A
    // 5xx is logged where its cause is known (`ApiError`'s conversions),
    // not again here. The span, statuses and latencies are debug: a span
    // recorded for every request cost GET about a tenth of its throughput
    // (PUT 4% to 25%, in noisy runs).
    .layer(
        TraceLayer::new_for_http()
            .make_span_with(request_span)
            .on_request(())
            .on_response(
                DefaultOnResponse::new()
                    .level(Level::DEBUG)
                    .latency_unit(LatencyUnit::Micros),
            )
            .on_failure(()),
    )
    .with_state(state)
}

/// A request's span: its method and route pattern (never the path, which
/// holds keys), so that what it logs says which request it was.
fn request_span(req: &Request) -> Span {
    let route = req.extensions().get::<MatchedPath>();
    let route = route.map_or("unmatched", |r| r.as_str());
    tracing::debug_span!("request", method = %req.method(), route)
}

/// Answers 408 for a request that is not done in time, most often because
/// its body arrives too slowly. A write that was already applied stays
/// applied (its answer is what is lost), as when a client gives up.
/// tower-http's timeout layer would answer an empty 408; this one answers
/// in the API's problem format and names the flag to change. A watch is
/// exempt: it is meant to last (its heartbeats keep the connection alive).
async fn time_limit(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>();
    if route.is_some_and(|r| r.as_str().strip_prefix(BASE_PATH) == Some(watch::PATH)) {
        return next.run(req).await;
    }
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request was not done within {} s (--request-timeout)",
                limit.as_secs()
            ),
        )
        .into_response(),
    }
}

/// Data routes wait for the start-up replay; reads go on while the log is
/// down, writes find out for themselves. Every answer says the store's
/// revision; routes that know a more exact one (a write's own) say it
/// themselves.
async fn replayed(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let mut resp = if s.store.journal.replayed() {
        next.run(req).await
    } else {
        ApiError::from(crate::store::JournalError::Replaying).into_response()
    };
    let headers = resp.headers_mut();
    if !headers.contains_key(&revision::REVISION) {
        let visible = s.store.journal.visible();
        headers.insert(revision::REVISION.clone(), visible.into());
    }
    resp
}

/// Counts every request by route pattern and status; closes the
/// connection after an answer that left the body unread. A body declared
/// larger than `max_body` is refused before anything reads it, so that
/// `Expect: 100-continue` gets the 413 rather than an invitation to send.
async fn track(State(s): State<AppState>, max_body: usize, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let (req, body_read) = unread::watch(req);
    let mut resp = if unread::declared_over(&req, max_body) {
        ApiError::body_too_large().into_response()
    } else {
        next.run(req).await
    };
    unread::close_if_unread(&mut resp, body_read);
    let route = route.as_ref().map_or("unmatched", |r| r.as_str());
    s.metrics
        .request(&method, route, resp.status().as_u16(), started.elapsed());
    resp
}

/// The middleware stack through the router itself, without a socket.
#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Method, header};
    use tower::ServiceExt;

    use super::*;
    use crate::store::{Db, Durability, Journal, Limits};
    use crate::watch::{Bounds, History};

    /// The API over a store still replaying its log; `tokens`, when given,
    /// are the only ones let in.
    fn app(max_body_bytes: usize, tokens: Option<Tokens>) -> Router {
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
        router(
            AppState {
                store,
                metrics,
                max_txn_ops: 1,
                watchers,
            },
            Guards {
                max_body_bytes,
                request_timeout: Duration::from_secs(30),
                tokens: tokens.map(Arc::new),
            },
        )
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
}
