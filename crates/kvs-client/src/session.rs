//! Read-your-writes: the highest revision the client's own writes were
//! answered with, sent as `KVS-Min-Revision` on its reads, so that a
//! follower answers them only once it has applied those writes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use reqwest::header::{HeaderName, HeaderValue};
use reqwest::{Method, Request, Response};

/// The header a read names the revision it must reflect with.
const MIN_REVISION: HeaderName = HeaderName::from_static("kvs-min-revision");
/// The header naming the revision an answer reflects.
const REVISION: &str = "kvs-revision";

/// The revision a client's reads must reflect, shared by its clones.
#[derive(Debug, Clone, Default)]
pub(crate) struct Session {
    /// `None` when read-your-writes is off; 0 until a write is answered.
    written: Option<Arc<AtomicU64>>,
}

impl Session {
    pub(crate) fn new(read_your_writes: bool) -> Session {
        Session {
            written: read_your_writes.then(Arc::default),
        }
    }

    /// Adds `KVS-Min-Revision` to a read, once a write has been answered.
    pub(crate) fn before(&self, req: &mut Request) {
        let Some(written) = &self.written else {
            return;
        };
        let revision = written.load(Ordering::Relaxed);
        if is_read(req.method()) && revision > 0 {
            req.headers_mut()
                .insert(MIN_REVISION, HeaderValue::from(revision));
        }
    }

    /// Keeps the revision of a write's successful answer, if it is the
    /// highest yet.
    pub(crate) fn after(&self, method: &Method, resp: &Response) {
        let Some(written) = &self.written else {
            return;
        };
        if is_read(method) || !resp.status().is_success() {
            return;
        }
        let revision = resp
            .headers()
            .get(REVISION)
            .and_then(|v| v.to_str().ok()?.trim().parse().ok());
        if let Some(revision) = revision {
            written.fetch_max(revision, Ordering::Relaxed);
        }
    }
}

fn is_read(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD)
}
