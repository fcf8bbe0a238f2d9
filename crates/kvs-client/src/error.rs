//! The one error type of every client method.

use std::error::Error as StdError;
use std::time::Duration;

use kvs_core::error::cause;
use kvs_core::{KeyError, ValueError};

/// What went wrong with a call.
///
/// Errors that the client detects itself ([`Error::InvalidKey`],
/// [`Error::InvalidValue`], [`Error::InvalidArgument`]) are returned before
/// anything is sent. An error answer from the server is [`Error::Status`],
/// that keeps the HTTP status and the server's sentence; the `is_*` helpers
/// name the cases that the API documents. The one answer after which the
/// client cannot know whether its write was applied has a variant of its
/// own, [`Error::OutcomeUnknown`], so that no handler of error statuses
/// takes it for a refusal.
///
/// The client never retries by itself.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The key breaks the key rules (`[0-9A-Za-z_]`, 1 to 256 bytes); no
    /// request was sent.
    #[error("invalid key: {0}")]
    InvalidKey(#[from] KeyError),

    /// The value is one that the server would refuse (a float that is NaN
    /// or infinite); no request was sent.
    #[error("invalid value: {0}")]
    InvalidValue(ValueError),

    /// Another argument the API cannot carry: a base URL that is not an
    /// `http` or `https` URL, a token that cannot be a header value, a CA
    /// file that cannot be read or holds no certificate, or a map field or
    /// set member that cannot be a path segment (`""`, `"."` or `".."`). No
    /// request was sent.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// The request could not be made or its answer not read: connection
    /// refused or reset, timeout, a server certificate that does not verify
    /// ([`Error::is_tls`]), and the like. Its text says every cause
    /// (`Connection refused`, the TLS alert).
    #[error("request failed: {}", kvs_core::error::chain(.0))]
    Transport(reqwest::Error),

    /// The server answered with an error status, or with a redirect other
    /// than 307 and 308 (which the client follows): a 301, 302 or 303 would
    /// turn a write into a GET, so it is not followed.
    #[error("server answered {status}: {detail}")]
    Status {
        /// The HTTP status code (400, 401, 403, 404, 409, 413, 503, ...);
        /// never 504, which is [`Error::OutcomeUnknown`], nor 412, which is
        /// [`Error::PreconditionFailed`].
        status: u16,
        /// The server's explanation: the `detail` of its
        /// `application/problem+json` answer, or the start of the body when
        /// the answer is not in that format.
        detail: String,
        /// How long the server asked the client to wait before trying again
        /// (the `Retry-After` header in seconds), sent with 503.
        retry_after: Option<Duration>,
    },

    /// 504: the write may or may not have been applied. Its batch was sent
    /// to the transaction log and the server could not learn in time
    /// whether it became durable; if it did, the server applies it once the
    /// log is back. Retrying a write that is not idempotent (an increment,
    /// a set add whose answer matters) may apply it twice: read the key
    /// first. A gateway's own 504 means the same and is this error too.
    #[error("outcome unknown, the write may have been applied: {detail}")]
    OutcomeUnknown {
        /// The server's explanation, as for [`Error::Status`].
        detail: String,
    },

    /// 412: the write's [`crate::Precondition`] did not hold, so nothing was
    /// changed. `current` is the key's revision now (`None`: absent): read
    /// the key again, decide, and send the write with that revision.
    #[error("precondition failed: {detail}")]
    PreconditionFailed {
        /// The key's current revision, `None` when it is absent.
        current: Option<u64>,
        /// The server's explanation, as for [`Error::Status`].
        detail: String,
    },

    /// 410 to a watch: the server no longer keeps the changes after the
    /// revision the watch asked to resume from. List the keys again (they
    /// reflect every change) and watch from the revision of that listing.
    #[error("the server's history starts at revision {oldest}: {detail}")]
    Compacted {
        /// The oldest revision the server's history still holds.
        oldest: u64,
        /// The server's explanation, as for [`Error::Status`].
        detail: String,
    },

    /// A server redirected the call more than [`crate::MAX_REDIRECTS`]
    /// times in a row (307 or 308): a loop, such as two followers that each
    /// take the other for the primary. A write was not applied by any of
    /// the servers that redirected it.
    #[error("gave up after {hops} redirects; the last pointed to {location}")]
    TooManyRedirects {
        /// How many redirects were followed.
        hops: usize,
        /// Where the redirect that was not followed pointed.
        location: String,
    },

    /// A success answer whose body is not what the operation returns (for
    /// example a non-numeric body for an int), or a redirect without a
    /// usable `Location`; the string says what was expected and what came.
    #[error("unexpected answer from the server: {0}")]
    Decode(String),
}

impl Error {
    /// The HTTP status of an error answer; `None` for every other error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Status { status, .. } => Some(*status),
            Error::OutcomeUnknown { .. } => Some(504),
            Error::PreconditionFailed { .. } => Some(412),
            Error::Compacted { .. } => Some(410),
            _ => None,
        }
    }

    /// The server's explanation of an error answer.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Error::Status { detail, .. }
            | Error::OutcomeUnknown { detail }
            | Error::PreconditionFailed { detail, .. }
            | Error::Compacted { detail, .. } => Some(detail),
            _ => None,
        }
    }

    /// How long the server asked to wait before retrying (503 answers).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// 400: the server refused the request (a body that does not parse as
    /// the type, a bad query parameter, `fibo` past 93, ...).
    pub fn is_bad_request(&self) -> bool {
        self.status() == Some(400)
    }

    /// 401: the server wants a token and got none, or one it does not know
    /// (see [`crate::ClientBuilder::token`]).
    pub fn is_unauthorized(&self) -> bool {
        self.status() == Some(401)
    }

    /// 403: the token is read-only and the call writes; nothing was changed.
    pub fn is_forbidden(&self) -> bool {
        self.status() == Some(403)
    }

    /// 404 where the operation does not treat it as "absent" (for example a
    /// base URL that does not lead to a KVS server).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// 409: an increment would overflow `i32`; the value was left unchanged.
    pub fn is_conflict(&self) -> bool {
        self.status() == Some(409)
    }

    /// 412 ([`Error::PreconditionFailed`]): a conditional write found the
    /// key at another revision than the one it names; nothing was changed.
    pub fn is_precondition_failed(&self) -> bool {
        matches!(self, Error::PreconditionFailed { .. })
    }

    /// 410 to a watch ([`Error::Compacted`]): the revision to resume from is
    /// older than the server's history.
    pub fn is_compacted(&self) -> bool {
        matches!(self, Error::Compacted { .. })
    }

    /// 413: the request body is over the server's `--max-body-bytes`.
    pub fn is_payload_too_large(&self) -> bool {
        self.status() == Some(413)
    }

    /// 503: the server is replaying its log or cannot make writes durable,
    /// or it is a follower that has not yet reached the `KVS-Min-Revision`
    /// of a read (see [`crate::ClientBuilder::read_your_writes`]); nothing
    /// was applied, so trying again after [`Error::retry_after`] is safe.
    pub fn is_unavailable(&self) -> bool {
        self.status() == Some(503)
    }

    /// 504 ([`Error::OutcomeUnknown`]): the write may have been applied;
    /// read the key before retrying it.
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(self, Error::OutcomeUnknown { .. })
    }

    /// A request or connect timeout (see [`crate::ClientBuilder::timeout`]).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Transport(e) if e.is_timeout())
    }

    /// A failed TLS handshake: the server's certificate is not from a
    /// trusted CA ([`crate::ClientBuilder::ca_file`]) or not for its host,
    /// or the server does not speak TLS.
    pub fn is_tls(&self) -> bool {
        let Error::Transport(e) = self else {
            return false;
        };
        // rustls's errors reach reqwest wrapped in `io::Error`s.
        std::iter::successors(Some(e as &(dyn StdError + 'static)), |&e| cause(e))
            .any(|e| e.is::<rustls::Error>())
    }

    /// Whether the client refused the call itself, before sending anything.
    pub fn is_client_side(&self) -> bool {
        matches!(
            self,
            Error::InvalidKey(_) | Error::InvalidValue(_) | Error::InvalidArgument(_)
        )
    }
}

impl From<reqwest::Error> for Error {
    fn from(e: reqwest::Error) -> Error {
        Error::Transport(e)
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
