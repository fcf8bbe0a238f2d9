//! Where a request enters: the router, its shared state and middleware.
//!
//! - [`compat`]: the original service's routes, unchanged.
//! - [`resource`]: `/{type}/{key}`, map fields, set members, key listing.
//! - [`ops`]: health, readiness, metrics, OpenAPI document and docs page.
//! - [`values`]: the operations both route families share.
//! - [`extract`]: extractors that answer in the API's error format.

mod compat;
mod extract;
mod ops;
mod resource;
mod values;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::store::Store;

/// Every route lives under this path: service `kvs`, API version `v1.0.0`.
pub const BASE_PATH: &str = "/kvs/v1-0-0";
/// How the service names itself in greetings and logs.
pub const NAME_AND_VERSION: &str = "kvs v1.0.0";

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    pub metrics: Arc<Metrics>,
}

/// The whole HTTP API.
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    let data = compat::routes()
        .merge(resource::routes())
        .route_layer(middleware::from_fn_with_state(state.clone(), replayed));
    let api = data.merge(ops::routes());
    Router::new()
        .nest(BASE_PATH, api)
        .fallback(|| async {
            ApiError::not_found("no such route; the API lives under /kvs/v1-0-0")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "this route does not take that method; see /kvs/v1-0-0/docs",
            )
        })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
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

/// Counts every request by route pattern and status.
async fn track(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let resp = next.run(req).await;
    let route = route.as_ref().map_or("unmatched", |r| r.as_str());
    s.metrics
        .request(&method, route, resp.status().as_u16(), started.elapsed());
    resp
}
