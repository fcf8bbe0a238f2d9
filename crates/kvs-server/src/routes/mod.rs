//! Where a request enters: the router, its shared state and middleware.
//!
//! - [`compat`]: the original service's routes, unchanged.
//! - [`resource`]: `/{type}/{key}`, map fields, set members, key listing.
//! - [`ops`]: health, readiness, metrics, OpenAPI document and docs page.
//! - [`values`]: the operations both route families share.
//! - [`extract`]: extractors that answer in the API's error format.
//! - [`unread`]: bodies declared too large, and `Connection: close` on
//!   answers given before the body was read.

mod compat;
mod extract;
mod ops;
mod resource;
mod unread;
mod values;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::auth::{Tokens, require_token};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::store::Store;

/// Every route lives under this path: service `kvs`, API version `v1.0.0`.
pub const BASE_PATH: &str = "/kvs/v1-0-0";
/// The version of the API, the original service's; the binaries have a
/// version of their own (`--version`, the workspace's).
pub const API_VERSION: &str = "v1.0.0";
/// The docs page, where `/` and the base path itself lead.
const DOCS_PATH: &str = "/kvs/v1-0-0/docs";

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    pub metrics: Arc<Metrics>,
}

/// What every request is held to before it reaches a route.
pub struct Guards {
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    /// `None`: the API is open.
    pub tokens: Option<Arc<Tokens>>,
}

/// The whole HTTP API.
pub fn router(state: AppState, guards: Guards) -> Router {
    let data = compat::routes()
        .merge(resource::routes())
        .route_layer(middleware::from_fn_with_state(state.clone(), replayed));
    let api = data.merge(ops::routes());
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
    .with_state(state)
}

/// Answers 408 for a request that is not done in time, most often because
/// its body arrives too slowly. A write that was already applied stays
/// applied (its answer is what is lost), as when a client gives up.
async fn time_limit(State(limit): State<Duration>, req: Request, next: Next) -> Response {
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
/// down, writes find out for themselves.
async fn replayed(State(s): State<AppState>, req: Request, next: Next) -> Response {
    if s.store.journal.replayed() {
        next.run(req).await
    } else {
        ApiError::from(crate::store::JournalError::Replaying).into_response()
    }
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
