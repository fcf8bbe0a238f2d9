//! An answer given before its request's body was read to the end closes
//! the connection, and says so.
//!
//! HTTP/1.1 cannot carry the next request behind a body nobody read, so
//! hyper closes such a connection after the answer. Without
//! `Connection: close` in that answer, a client's keep-alive pool learns
//! it only when its next request on the connection fails. This covers
//! every early answer in one place: a refused token, a body over the
//! limit, a route that takes no body, a replay still running, a timeout.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::body::{Body, HttpBody};
use axum::extract::Request;
use axum::http::{HeaderValue, Version, header};
use axum::response::Response;
use bytes::Bytes;
use http_body::{Frame, SizeHint};

/// A request body that records when it was read to its end.
struct Watched {
    inner: Body,
    read: Arc<AtomicBool>,
}

impl HttpBody for Watched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.read.store(true, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether the request comes with a body over HTTP/1.x (HTTP/2 frames
/// each request, so an unread body does not end the connection there).
fn has_body(req: &Request) -> bool {
    req.version() < Version::HTTP_2
        && (req.headers().contains_key(header::TRANSFER_ENCODING)
            || req
                .headers()
                .get(header::CONTENT_LENGTH)
                .is_some_and(|len| len.as_bytes() != b"0"))
}

/// Whether `req` declares a body longer than `max` bytes.
pub(super) fn declared_over(req: &Request, max: usize) -> bool {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .is_some_and(|n| n > max as u64)
}

/// Watches the body of `req`, when it has one; hand the result to
/// [`close_if_unread`] with the answer.
pub(super) fn watch(req: Request) -> (Request, Option<Arc<AtomicBool>>) {
    if !has_body(&req) {
        return (req, None);
    }
    let read = Arc::new(AtomicBool::new(false));
    let req = req.map(|inner| {
        Body::new(Watched {
            inner,
            read: read.clone(),
        })
    });
    (req, Some(read))
}

/// Adds `Connection: close` to an answer whose request body was not read
/// to its end.
pub(super) fn close_if_unread(resp: &mut Response, read: Option<Arc<AtomicBool>>) {
    if read.is_some_and(|read| !read.load(Ordering::Relaxed)) {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
}
