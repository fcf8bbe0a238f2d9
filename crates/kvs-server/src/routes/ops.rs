//! Routes for operators: health, readiness, metrics and the API's own
//! documentation.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::openapi;
use super::openapi::responses::{Healthy, NotReady, Ready, RequestTimeout, Unauthorized};
use super::values::text;
use super::{AppState, based};
use crate::error::ApiError;

const DOCS: &str = include_str!("../../assets/docs.html");

/// The OpenAPI document, as `GET /openapi.json` serves it: made once, from
/// the routes, by [`serve_document`].
static DOCUMENT: OnceLock<Bytes> = OnceLock::new();

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(based(routes!(healthz)))
        .routes(based(routes!(readyz)))
        .routes(based(routes!(metrics)))
        .routes(based(routes!(openapi)))
        .routes(based(routes!(docs)))
}

/// Keeps the document that `GET /openapi.json` answers. Every router of
/// the process is made by the same code, so the first document is theirs
/// too.
pub(super) fn serve_document(document: &utoipa::openapi::OpenApi) {
    DOCUMENT.get_or_init(|| openapi::to_json(document).into());
}

#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "operations",
    summary = "Liveness",
    security(),
    responses((status = 200, response = inline(Healthy)))
)]
async fn healthz() -> Response {
    text("ok".to_owned())
}

#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "operations",
    summary = "Readiness",
    description = "503 while the log is replaying or unreachable. A standby or follower that follows the log is ready: it serves reads and redirects writes to the primary.",
    responses(
        (status = 200, response = inline(Ready)),
        (status = 401, response = Unauthorized),
        (status = 408, response = RequestTimeout),
        (status = 503, response = NotReady),
    )
)]
async fn readyz(State(s): State<AppState>) -> Result<Response, ApiError> {
    if s.store.journal.is_up() {
        Ok(text("ready".to_owned()))
    } else if s.store.journal.is_following() {
        Ok(text(
            "ready: following the log (reads here, writes redirected to the primary)".to_owned(),
        ))
    } else {
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            s.store.journal.not_ready_reason(),
        ))
    }
}

#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    summary = "Prometheus metrics",
    responses(
        (status = 200, description = "Metrics in the OpenMetrics text format (which Prometheus scrapes): request counts and latency histograms by route, log append time and batch size, keys by type, replay totals.", body = String, content_type = crate::metrics::CONTENT_TYPE),
        (status = 401, response = Unauthorized),
        (status = 408, response = RequestTimeout),
    )
)]
async fn metrics(State(s): State<AppState>) -> Response {
    let body = s
        .metrics
        .render(s.store.db.counts(), s.store.journal.is_up());
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], body).into_response()
}

#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "getOpenApi",
    tag = "operations",
    summary = "This OpenAPI document",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document of this API.", body = Object, content_type = "application/json"),
        (status = 401, response = Unauthorized),
        (status = 408, response = RequestTimeout),
    )
)]
async fn openapi() -> Response {
    let document = DOCUMENT.get().expect("the router keeps its document");
    (
        [(header::CONTENT_TYPE, "application/json")],
        document.clone(),
    )
        .into_response()
}

#[utoipa::path(
    get,
    path = "/docs",
    operation_id = "getDocs",
    tag = "operations",
    summary = "Browsable API documentation",
    responses(
        (status = 200, description = "A self-contained HTML page rendering this document (works offline).", body = String, content_type = "text/html"),
        (status = 401, response = Unauthorized),
        (status = 408, response = RequestTimeout),
    )
)]
async fn docs() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], DOCS).into_response()
}
