//! One error type for the whole API, answered as `application/problem+json`.
//!
//! Every error is the client's to act on (4xx) or a temporary refusal (503);
//! nothing a request does ends in a 500.

use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kvs_core::{KeyError, ValueError};

use crate::store::{JournalError, LimitError};

/// Seconds a client is asked to wait after a 503.
const RETRY_AFTER_SECS: &str = "1";

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    detail: String,
}

impl ApiError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            detail: detail.into(),
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, detail)
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// A request body over `--max-body-bytes`, declared or found so.
    pub fn body_too_large() -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body is larger than the server's limit (--max-body-bytes)",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "type": "about:blank",
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        let mut resp = (self.status, body.to_string()).into_response();
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        let (name, value) = match self.status {
            StatusCode::SERVICE_UNAVAILABLE => (header::RETRY_AFTER, RETRY_AFTER_SECS),
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
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
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
