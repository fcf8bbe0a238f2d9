//! Where writes go: the primary's URL, as the lease names it, and the
//! answer to a write sent to a node that does not take writes.

use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use parking_lot::RwLock;

use crate::error::ApiError;

pub(crate) struct Routing {
    /// This node's base URL (`--advertise-url`).
    own: Arc<str>,
    /// The primary's base URL, while one holds the lease.
    primary: RwLock<Option<Arc<str>>>,
}

impl Routing {
    pub(crate) fn new(own: &str) -> Routing {
        Routing {
            own: own.trim_end_matches('/').into(),
            primary: RwLock::new(None),
        }
    }

    /// This node's base URL.
    pub(crate) fn own(&self) -> &str {
        &self.own
    }

    /// This node is the primary.
    pub(crate) fn lead(&self) {
        *self.primary.write() = Some(self.own.clone());
    }

    /// The lease names `url` as the primary's, or (`None`) nobody holds it.
    pub(crate) fn learn(&self, url: Option<&str>) {
        let url = url.map(|u| u.trim_end_matches('/'));
        let mut primary = self.primary.write();
        if primary.as_deref() != url {
            tracing::info!(primary = url, "the primary changed");
            *primary = url.map(Arc::from);
        }
    }

    /// The answer to a write this node does not take: a redirect to the
    /// same path and query on the primary, or 503 while there is none
    /// (or this node is the one taking over).
    pub(crate) fn redirect(&self, uri: &Uri) -> Response {
        let primary = self.primary.read().clone();
        let Some(primary) = primary.filter(|p| *p != self.own) else {
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "this node follows the log and no other node holds the write lease now; retry shortly",
            )
            .into_response();
        };
        let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
        let target = format!("{primary}{path}");
        let Ok(location) = HeaderValue::try_from(target.as_str()) else {
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "this node follows the log, and the primary's URL cannot be sent as a header",
            )
            .into_response();
        };
        let mut resp = ApiError::new(
            StatusCode::TEMPORARY_REDIRECT,
            format!("this node follows the log; writes go to the primary, {primary}"),
        )
        .into_response();
        resp.headers_mut().insert(header::LOCATION, location);
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_goes_to_the_same_path_on_the_primary_and_nowhere_without_one() {
        let routing = Routing::new("http://b:8080/");
        let uri: Uri = "/kvs/v1-0-0/str/k?ttl=5".parse().unwrap();
        assert_eq!(routing.redirect(&uri).status(), 503);
        routing.learn(Some("http://a:8080/"));
        let resp = routing.redirect(&uri);
        assert_eq!(resp.status(), 307);
        assert_eq!(
            resp.headers()[header::LOCATION],
            "http://a:8080/kvs/v1-0-0/str/k?ttl=5"
        );
        // The node taking over never sends writes to itself.
        routing.lead();
        assert_eq!(routing.redirect(&uri).status(), 503);
        routing.learn(None);
        assert_eq!(routing.redirect(&uri).status(), 503);
    }
}
