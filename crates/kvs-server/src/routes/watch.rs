//! `GET /watch`: the store's durable changes as Server-Sent Events, one
//! event per revision, from a past revision or from now on.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, StatusCode};
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::ApiQuery;
use super::openapi::params::WatchFilter;
use super::openapi::responses::{
    BadRequest, Events, HistoryGone, Unauthorized, UnknownType, WatchUnavailable,
};
use super::resource::value_type;
use super::{AppState, based};
use crate::error::ApiError;
use crate::watch::stream::stream;
use crate::watch::{Filter, Gone, Refused};

/// The route, under the base path; the request timeout leaves it alone:
/// a watch lasts.
pub(super) const PATH: &str = "/watch";

/// What EventSource sends on reconnecting: the id of the last event it got.
static LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(based(routes!(watch)))
}

#[derive(Deserialize)]
struct WatchQuery {
    #[serde(rename = "type")]
    ty: Option<String>,
    #[serde(default)]
    prefix: String,
    since: Option<u64>,
}

#[utoipa::path(
    get,
    path = PATH,
    operation_id = "watch",
    tag = "watch",
    summary = "Watch changes as Server-Sent Events",
    description = include_str!("watch.md"),
    params(WatchFilter),
    responses(
        (status = 200, response = inline(Events)),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = UnknownType),
        (status = 410, response = HistoryGone),
        (status = 503, response = WatchUnavailable),
    )
)]
async fn watch(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<WatchQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let ty = q.ty.as_deref().map(value_type).transpose()?;
    let resumed = headers
        .get(&LAST_EVENT_ID)
        .map(|id| {
            id.to_str()
                .ok()
                .and_then(|id| id.trim().parse().ok())
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "Last-Event-ID must be the revision of an event (a number)",
                    )
                })
        })
        .transpose()?;
    let since = resumed
        .or(q.since)
        .unwrap_or_else(|| s.store.journal.visible());
    s.store.history.check(since).map_err(gone)?;
    let seat = s.watchers.join().map_err(refused)?;
    let filter = Filter {
        ty,
        prefix: q.prefix,
    };
    let events = stream(Arc::clone(&s.store.history), seat, filter, since);
    let heartbeat = KeepAlive::new().interval(s.watchers.heartbeat);
    // The revision the stream starts after: a client that loses it before
    // the first event resumes from there, missing nothing.
    let resp = Sse::new(events).keep_alive(heartbeat).into_response();
    Ok(super::revision::stamped(resp, since, None))
}

/// 410: the history no longer holds (or never held) the changes after
/// `since`.
fn gone(Gone { oldest }: Gone) -> ApiError {
    ApiError::new(
        StatusCode::GONE,
        format!(
            "the changes asked for are no longer kept: watching may start after revision {oldest} at the earliest; list the keys again, then watch from the listing's KVS-Revision"
        ),
    )
    .with("oldest", oldest.into())
}

fn refused(why: Refused) -> ApiError {
    let detail = match why {
        Refused::Full => {
            "the server has as many watchers as it may (--max-watchers); retry shortly"
        }
        Refused::ShuttingDown => "the server is shutting down",
    };
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, detail)
}
