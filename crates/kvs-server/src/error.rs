//! One error type for the whole API, answered as `application/problem+json`.
//!
//! Every error is the client's to act on (4xx), a temporary refusal that
//! applied nothing (503), or a write whose outcome the server could not learn
//! (504, "outcome unknown"); nothing a request does ends in a 500.

use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kvs_core::error::chain;
use kvs_core::{KeyError, ValueError};

use crate::store::{JournalError, LimitError};

/// Seconds a client is asked to wait after a 503.
const RETRY_AFTER_SECS: &str = "1";

/// The header that marks a write that may or may not have been applied, for
/// clients that look at headers only.
const OUTCOME_HEADER: &str = "kvs-outcome";
/// The problem type of a 504: a URI that names it, not a page.
const OUTCOME_UNKNOWN_TYPE: &str = "urn:kvs:problem:outcome-unknown";

#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    detail: String,
    /// Members the problem has beyond the standard ones.
    extra: Vec<(&'static str, serde_json::Value)>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            detail: detail.into(),
            extra: Vec::new(),
        }
    }

    /// The same problem with the member `name` (RFC 9457's extension
    /// members), for what a client acts on without parsing the detail.
    pub(crate) fn with(mut self, name: &'static str, value: serde_json::Value) -> ApiError {
        self.extra.push((name, value));
        self
    }

    /// The same problem, its detail prefixed with `context` (where in the
    /// request it arose).
    pub(crate) fn within(mut self, context: &str) -> ApiError {
        self.detail = format!("{context}: {}", self.detail);
        self
    }

    pub(crate) fn bad_request(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, detail)
    }

    pub(crate) fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, detail)
    }

    /// A request body over `--max-body-bytes`, declared or found so.
    pub(crate) fn body_too_large() -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body is larger than the server's limit (--max-body-bytes)",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // A 504 is only ever "outcome unknown": a type of its own, so that
        // no one reads it as the 503 that promises nothing was applied.
        let (kind, title) = match self.status {
            StatusCode::GATEWAY_TIMEOUT => (OUTCOME_UNKNOWN_TYPE, "Outcome Unknown"),
            status => ("about:blank", status.canonical_reason().unwrap_or("Error")),
        };
        let mut body = serde_json::json!({
            "type": kind,
            "title": title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        for (name, value) in self.extra {
            body[name] = value;
        }
        let mut resp = (self.status, body.to_string()).into_response();
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        let (name, value) = match self.status {
            StatusCode::SERVICE_UNAVAILABLE => (header::RETRY_AFTER, RETRY_AFTER_SECS),
            StatusCode::GATEWAY_TIMEOUT => (HeaderName::from_static(OUTCOME_HEADER), "unknown"),
            StatusCode::UNAUTHORIZED => (header::WWW_AUTHENTICATE, r#"Bearer realm="kvs""#),
            StatusCode::FORBIDDEN => (
                header::WWW_AUTHENTICATE,
                r#"Bearer realm="kvs", error="insufficient_scope""#,
            ),
            _ => return resp,
        };
        headers.insert(name, HeaderValue::from_static(value));
        resp
    }
}

impl From<KeyError> for ApiError {
    fn from(e: KeyError) -> ApiError {
        ApiError::bad_request(format!("bad key: {e}"))
    }
}

impl From<ValueError> for ApiError {
    fn from(e: ValueError) -> ApiError {
        ApiError::bad_request(e.to_string())
    }
}

impl From<JournalError> for ApiError {
    fn from(e: JournalError) -> ApiError {
        // A data route's 5xx comes from here: logged with its cause, in
        // the request's span (the cap's and /readyz's 503s are not errors).
        let cause = chain(&e);
        let status = match e {
            JournalError::OutcomeUnknown(_) => {
                tracing::error!(status = 504, error = %cause, "answered: outcome unknown");
                StatusCode::GATEWAY_TIMEOUT
            }
            _ => {
                tracing::warn!(status = 503, error = %cause, "answered: write not applied");
                StatusCode::SERVICE_UNAVAILABLE
            }
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<LimitError> for ApiError {
    fn from(e: LimitError) -> ApiError {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
    }
}

/// Extractor rejections keep their status (400, 413, ...) in our format.
macro_rules! from_rejection {
    ($($t:ty),*) => {$(
        impl From<$t> for ApiError {
            fn from(r: $t) -> ApiError {
                match r.status() {
                    StatusCode::PAYLOAD_TOO_LARGE => ApiError::body_too_large(),
                    _ => ApiError::new(r.status(), r.body_text()),
                }
            }
        }
    )*};
}
from_rejection!(BytesRejection, PathRejection, QueryRejection);

#[cfg(test)]
mod tests {
    use super::*;

    async fn answer(e: JournalError) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
        let resp = ApiError::from(e).into_response();
        let (parts, body) = resp.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        (
            parts.status,
            parts.headers,
            serde_json::from_slice(&body).unwrap(),
        )
    }

    #[tokio::test]
    async fn an_unknown_outcome_is_a_504_of_its_own_type_and_not_a_503() {
        let (status, headers, problem) =
            answer(JournalError::OutcomeUnknown("the log is away".into())).await;
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(headers[OUTCOME_HEADER], "unknown");
        assert!(headers.get(header::RETRY_AFTER).is_none());
        assert_eq!(problem["type"], OUTCOME_UNKNOWN_TYPE);
        assert_eq!(problem["title"], "Outcome Unknown");
        assert_eq!(problem["status"], 504);

        let (status, headers, problem) =
            answer(JournalError::Unavailable("the log is away".into())).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(headers.get(OUTCOME_HEADER).is_none());
        assert_eq!(headers[header::RETRY_AFTER], RETRY_AFTER_SECS);
        assert_eq!(problem["type"], "about:blank");
    }
}
