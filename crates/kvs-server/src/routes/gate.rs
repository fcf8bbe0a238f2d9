//! What every request passes before and after its route, in one layer:
//! its span, the body limit, the token check, the time limit, the replay
//! gate, the `KVS-Revision` of data answers, `Connection: close` after an
//! unread body, and its count in the metrics.
//!
//! One layer, because each layer of a router is a boxed service cloned
//! for every request; and each route's facts (its metrics, whether it
//! serves data, whether it is the watch) are looked up once, in a table
//! made with the router, rather than worked out per request.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use super::{AppState, revision, unread};
use crate::auth::Tokens;
use crate::error::ApiError;
use crate::metrics::RouteSeries;

/// What every request is held to before it reaches a route.
pub(crate) struct Guards {
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    /// `None`: the API is open.
    pub tokens: Option<Tokens>,
    /// How long a request with `KVS-Min-Revision` waits for it.
    pub min_revision_wait: Duration,
}

/// What a route is, for the layer.
pub(super) struct Route {
    series: RouteSeries,
    /// A data route: it waits for the replay, and its answers say the
    /// store's revision.
    data: bool,
    /// The watch: exempt from the time limit.
    watch: bool,
}

impl Route {
    pub(super) fn new(pattern: &'static str, data: bool, watch: bool) -> Route {
        Route {
            series: RouteSeries::new(pattern),
            data,
            watch,
        }
    }
}

/// The layer's state: the guards and every route of the router, by
/// pattern.
pub(super) struct Gate {
    pub state: AppState,
    pub guards: Guards,
    pub routes: HashMap<&'static str, Route>,
    /// Requests no route matched.
    pub unmatched: Route,
}

impl Gate {
    fn route(&self, req: &Request) -> &Route {
        let pattern = req.extensions().get::<MatchedPath>();
        pattern
            .and_then(|p| self.routes.get(p.as_str()))
            .unwrap_or(&self.unmatched)
    }
}

/// The layer. A body declared larger than the limit is refused before
/// anything reads it, so that `Expect: 100-continue` gets the 413 rather
/// than an invitation to send; tokens are checked next, before any route
/// reads a body. Refusals are timed and counted like every other answer.
pub(super) async fn gate(State(gate): State<Arc<Gate>>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = gate.route(&req);
    // Everything a request logs is inside its span: its method and route
    // pattern (never the path, which holds keys). A 5xx is logged where
    // its cause is known (`ApiError`'s conversions), not again here.
    let span =
        tracing::debug_span!("request", method = %req.method(), route = route.series.route());
    async {
        let max_body = gate.guards.max_body_bytes;
        DefaultBodyLimit::max(max_body).apply(&mut req);
        let method = req.method().clone();
        let (req, body_read) = unread::watch(req);
        let mut resp = if unread::declared_over(&req, max_body) {
            ApiError::body_too_large().into_response()
        } else if let Some(refusal) = gate.guards.tokens.as_ref().and_then(|t| t.refusal(&req)) {
            refusal.into_response()
        } else if route.watch {
            answer(&gate, route, req, next).await
        } else {
            let limit = gate.guards.request_timeout;
            match tokio::time::timeout(limit, answer(&gate, route, req, next)).await {
                Ok(resp) => resp,
                Err(_) => timed_out(limit),
            }
        };
        unread::close_if_unread(&mut resp, body_read);
        let took = started.elapsed();
        let status = resp.status().as_u16();
        gate.state
            .metrics
            .request(&route.series, &method, status, took);
        tracing::debug!(status, latency_us = took.as_micros() as u64, "answered");
        resp
    }
    .instrument(span)
    .await
}

/// The route's answer. Data routes wait for the start-up replay; on a
/// node that follows the log, writes are sent to the primary; a request
/// with `KVS-Min-Revision` waits until this node has reached it; reads go
/// on while the log is down, writes find out for themselves. Every data
/// answer says the store's revision; routes that know a more exact one (a
/// write's own) say it themselves.
async fn answer(gate: &Gate, route: &Route, req: Request, next: Next) -> Response {
    let s = &gate.state;
    if !route.data {
        return next.run(req).await;
    }
    let journal = &s.store.journal;
    let mut resp = if !journal.replayed() {
        ApiError::from(crate::store::JournalError::Replaying).into_response()
    } else if !is_read(req.method()) && journal.is_following() {
        s.routing.redirect(req.uri())
    } else {
        match revision::min_revision(req.headers()) {
            Err(e) => e.into_response(),
            Ok(Some(min)) if !journal.wait_visible(min, gate.guards.min_revision_wait).await => {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "this node has reached revision {}, not yet {min} (KVS-Min-Revision); retry shortly, or ask the primary",
                        journal.visible()
                    ),
                )
                .into_response()
            }
            Ok(_) => next.run(req).await,
        }
    };
    let headers = resp.headers_mut();
    if !headers.contains_key(&revision::REVISION) {
        let visible = journal.visible();
        headers.insert(revision::REVISION.clone(), visible.into());
    }
    resp
}

/// Whether a request only reads: every other one is a write, which only
/// the primary takes (a transaction of reads alone too: the primary
/// answers it as well).
fn is_read(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// 408 for a request that is not done in time, most often because its
/// body arrives too slowly. A write that was already applied stays applied
/// (its answer is what is lost), as when a client gives up. tower-http's
/// timeout layer would answer an empty 408; this one answers in the API's
/// problem format and names the flag to change. A watch is exempt: it is
/// meant to last (its heartbeats keep the connection alive).
fn timed_out(limit: Duration) -> Response {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        format!(
            "the request was not done within {} s (--request-timeout)",
            limit.as_secs()
        ),
    )
    .into_response()
}
