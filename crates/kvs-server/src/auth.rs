//! Bearer tokens for the REST API: who may read, and who may also write.
//!
//! Off unless tokens are configured. With tokens, every request but the
//! health check needs `Authorization: Bearer TOKEN`; a read-only token may
//! only GET (and HEAD).

use std::fmt;
use std::path::Path;

use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use ring::digest::{SHA256, digest};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::routes::BASE_PATH;

/// Shorter tokens are refused: they can be guessed.
pub(crate) const MIN_TOKEN_LEN: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Access {
    ReadOnly,
    ReadWrite,
}

/// The accepted tokens, kept only as SHA-256 digests: comparing digests of
/// one length in constant time tells a guesser neither how much of a guess
/// was right nor how long a token is.
#[derive(Clone, Default)]
pub struct Tokens {
    entries: Vec<([u8; 32], Access)>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tokens({} configured)", self.entries.len())
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    digest(&SHA256, bytes)
        .as_ref()
        .try_into()
        .expect("SHA-256 digests are 32 bytes")
}

impl Tokens {
    /// Parses entries `read-write:TOKEN` or `read-only:TOKEN`, separated by
    /// newlines or commas; blank lines and lines starting with `#` are
    /// skipped. Errors never repeat a token.
    pub(crate) fn parse(text: &str) -> Result<Tokens, String> {
        let mut tokens = Tokens::default();
        let entries = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with('#'))
            .flat_map(|l| l.split(','))
            .map(str::trim)
            .filter(|e| !e.is_empty());
        for (n, entry) in entries.enumerate() {
            let n = n + 1;
            let (role, token) = entry.split_once(':').ok_or_else(|| {
                format!("token entry {n} is not `read-write:TOKEN` or `read-only:TOKEN`")
            })?;
            let access = match role.trim() {
                "read-write" => Access::ReadWrite,
                "read-only" => Access::ReadOnly,
                _ => {
                    return Err(format!(
                        "token entry {n}: the role must be read-write or read-only"
                    ));
                }
            };
            let token = token.trim();
            if token.len() < MIN_TOKEN_LEN {
                return Err(format!(
                    "token entry {n} is shorter than {MIN_TOKEN_LEN} characters (make one with: openssl rand -hex 32)"
                ));
            }
            if !is_b64token(token) {
                return Err(format!(
                    "token entry {n} has characters a bearer token may not hold (letters, digits and -._~+/ then any '=')"
                ));
            }
            tokens.entries.push((sha256(token.as_bytes()), access));
        }
        Ok(tokens)
    }

    /// [`Tokens::parse`] of a file's text.
    pub(crate) fn read(path: &Path) -> Result<Tokens, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Tokens::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub(crate) fn extend(&mut self, other: Tokens) {
        self.entries.extend(other.entries);
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// What `token` may do, if it is one of ours. Every entry is compared,
    /// so the time taken does not depend on which one matched.
    pub(crate) fn access(&self, token: &[u8]) -> Option<Access> {
        let presented = sha256(token);
        let mut found = None;
        for (accepted, access) in &self.entries {
            if bool::from(accepted.ct_eq(&presented)) {
                found = found.max(Some(*access));
            }
        }
        found
    }
}

/// RFC 6750's `b64token`: the characters a bearer token may hold.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// The token of an `Authorization: Bearer TOKEN` header.
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let scheme = value.get(..7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| value[7..].trim_ascii())
}

/// The original service's POST routes that compute an answer and change
/// nothing; a read-only token may call them.
const READING_POSTS: [&str; 3] = ["/echo", "/hello", "/fibo"];

/// Whether a request only reads: GET and HEAD, and the reading POSTs.
fn reads_only(req: &Request) -> bool {
    let method = req.method();
    method == Method::GET
        || method == Method::HEAD
        || (method == Method::POST
            && req
                .uri()
                .path()
                .strip_prefix(BASE_PATH)
                .is_some_and(|p| READING_POSTS.contains(&p)))
}

impl Tokens {
    /// Why a request may not go on, if it may not: it lacks a token
    /// allowed to do what it asks. The health check is open to all, for
    /// load balancers and probes.
    pub(crate) fn refusal(&self, req: &Request) -> Option<ApiError> {
        let health = req.method() == Method::GET
            && req.uri().path().strip_prefix(BASE_PATH) == Some("/healthz");
        if health {
            return None;
        }
        let presented = req.headers().get(header::AUTHORIZATION);
        match presented.and_then(|v| bearer(v.as_bytes())) {
            None => Some(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "this server needs a bearer token: send the header `Authorization: Bearer TOKEN`",
            )),
            Some(token) => match self.access(token) {
                None => Some(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "the bearer token is not accepted",
                )),
                Some(Access::ReadOnly) if !reads_only(req) => Some(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "this token may only read (GET); writing needs a read-write token",
                )),
                Some(_) => None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RW: &str = "rw-token-0123456789";
    const RO: &str = "ro-token-0123456789";

    #[test]
    fn parses_entries_from_lines_and_commas_and_tells_roles_apart() {
        let text = format!("# who may do what\n\nread-write:{RW}\n read-only : {RO} ,\n");
        let tokens = Tokens::parse(&text).unwrap();
        assert_eq!(tokens.len(), 2);
        assert_eq!(tokens.access(RW.as_bytes()), Some(Access::ReadWrite));
        assert_eq!(tokens.access(RO.as_bytes()), Some(Access::ReadOnly));
        assert_eq!(tokens.access(b"rw-token-012345678"), None);
        assert_eq!(tokens.access(b""), None);
        let both = Tokens::parse(&format!("read-only:{RW},read-write:{RW}")).unwrap();
        assert_eq!(both.access(RW.as_bytes()), Some(Access::ReadWrite));
    }

    #[test]
    fn refuses_bad_entries_without_repeating_the_token() {
        for (text, says) in [
            ("admin:abcdefghijklmnopq", "role"),
            ("abcdefghijklmnopq", "is not `read-write:TOKEN`"),
            ("read-only:tiny", "shorter than 16"),
            ("read-only:abcdefgh ijklmnopq", "characters"),
            ("read-only:abcdefgh\"ijklmnopq", "characters"),
        ] {
            let e = Tokens::parse(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
            assert!(!e.contains("abcdefgh") && !e.contains("tiny"), "{e}");
        }
    }

    #[test]
    fn reads_the_bearer_scheme_case_insensitively() {
        assert_eq!(bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"bearer  abc "), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"Bearer"), None);
    }
}
