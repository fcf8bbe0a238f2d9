//! Routes for operators: health, readiness, metrics and the API's own
//! documentation.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use super::values::text;
use crate::error::ApiError;

const OPENAPI: &str = include_str!("../../assets/openapi.json");
const DOCS: &str = include_str!("../../assets/docs.html");

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { text("ok".to_owned()) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(
            "/openapi.json",
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }),
        )
        .route(
            "/docs",
            get(|| async { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], DOCS) }),
        )
}

async fn readyz(State(s): State<AppState>) -> Result<Response, ApiError> {
    if s.store.journal.is_up() {
        Ok(text("ready".to_owned()))
    } else {
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            s.store.journal.not_ready_reason(),
        ))
    }
}

async fn metrics(State(s): State<AppState>) -> Response {
    let body = s
        .metrics
        .render(s.store.db.counts(), s.store.journal.is_up());
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], body).into_response()
}
