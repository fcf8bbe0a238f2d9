//! Revisions over HTTP's own headers: a value's `ETag` is the revision of
//! its last change, `KVS-Create-Revision` that of its creation,
//! `KVS-Revision` the store's revision an answer reflects, and `If-Match` / `If-None-Match` make a request conditional on
//! the key's revision (compare-and-set, create-only, 304 Not Modified).
//!
//! Conditions are evaluated as RFC 9110 orders them: `If-Match` first
//! (strong comparison), then `If-None-Match` (weak comparison). A tag KVS
//! never gives (not a number) is a tag no value has.

use std::fmt::Write;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use kvs_core::{Key, ValueType};

use crate::error::ApiError;

/// The store's revision an answer reflects.
pub(crate) static REVISION: HeaderName = HeaderName::from_static("kvs-revision");
/// The revision a value was created at: what made its key exist after it
/// was absent.
pub(crate) static CREATE_REVISION: HeaderName = HeaderName::from_static("kvs-create-revision");

/// A request's `KVS-Min-Revision`: answer only once this node has reached
/// that revision (a client reading its own writes on a follower).
pub(crate) static MIN_REVISION: HeaderName = HeaderName::from_static("kvs-min-revision");

/// The revision a request's `KVS-Min-Revision` asks for, if any.
pub(crate) fn min_revision(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(&MIN_REVISION) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad_request("KVS-Min-Revision must be a revision: a whole number, 0 or more")
        })
}

/// The tags of one precondition header.
#[derive(Debug, Clone, PartialEq)]
enum Tags {
    /// `*`: any current value.
    Any,
    /// The listed tags: a revision each (`None`: one KVS never gives), and
    /// whether it is weak (`W/"7"`).
    List(Vec<(Option<u64>, bool)>),
}

impl Tags {
    fn parse(name: &HeaderName, value: &HeaderValue) -> Result<Tags, ApiError> {
        let text = value
            .to_str()
            .map_err(|_| ApiError::bad_request(format!("{name} is not ASCII")))?
            .trim();
        if text == "*" {
            return Ok(Tags::Any);
        }
        let mut tags = Vec::new();
        for item in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (weak, quoted) = match item.strip_prefix("W/") {
                Some(rest) => (true, rest),
                None => (false, item),
            };
            let inner = quoted
                .strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "{name} must be * or quoted entity tags such as \"12\"; got {item}"
                    ))
                })?;
            tags.push((inner.parse().ok(), weak));
        }
        Ok(Tags::List(tags))
    }

    /// Whether a value at `current` (`None`: absent) is one of the tags.
    fn matches(&self, current: Option<u64>, weak: bool) -> bool {
        match (self, current) {
            (_, None) => false,
            (Tags::Any, Some(_)) => true,
            (Tags::List(tags), Some(rev)) => tags
                .iter()
                .any(|&(tag, is_weak)| tag == Some(rev) && (weak || !is_weak)),
        }
    }
}

/// A request's preconditions on the key it names.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Conditions {
    if_match: Option<Tags>,
    if_none_match: Option<Tags>,
}

/// Why a conditional request did not act.
pub(crate) enum Unmet {
    /// A GET whose `If-None-Match` holds the current tag: 304.
    NotModified,
    /// 412, naming what the key is at.
    Failed(ApiError),
}

impl Conditions {
    /// None: what the original service's routes are given.
    pub(crate) const NONE: Conditions = Conditions {
        if_match: None,
        if_none_match: None,
    };

    fn from_headers(headers: &HeaderMap) -> Result<Conditions, ApiError> {
        let read = |name: &HeaderName| headers.get(name).map(|v| Tags::parse(name, v)).transpose();
        Ok(Conditions {
            if_match: read(&header::IF_MATCH)?,
            if_none_match: read(&header::IF_NONE_MATCH)?,
        })
    }

    /// Checks the conditions of a write against the key's revision as type
    /// `ty` (`None`: absent).
    pub(crate) fn check(
        &self,
        ty: ValueType,
        key: &Key,
        current: Option<u64>,
    ) -> Result<(), ApiError> {
        match self.evaluate(current, false) {
            Ok(()) => Ok(()),
            Err(_) => Err(failed(ty, key, current)),
        }
    }

    /// Checks the conditions of a read: a tag that is current in
    /// `If-None-Match` is a 304.
    pub(crate) fn check_read(
        &self,
        ty: ValueType,
        key: &Key,
        current: Option<u64>,
    ) -> Result<(), Unmet> {
        match self.evaluate(current, true) {
            Ok(()) => Ok(()),
            Err(Which::NoneMatch) if current.is_some() => Err(Unmet::NotModified),
            Err(_) => Err(Unmet::Failed(failed(ty, key, current))),
        }
    }

    fn evaluate(&self, current: Option<u64>, read: bool) -> Result<(), Which> {
        if let Some(tags) = &self.if_match
            && !tags.matches(current, false)
        {
            return Err(Which::Match);
        }
        // A write compares strongly; a GET weakly.
        if let Some(tags) = &self.if_none_match
            && tags.matches(current, read)
        {
            return Err(Which::NoneMatch);
        }
        Ok(())
    }
}

/// The header whose condition failed.
enum Which {
    Match,
    NoneMatch,
}

/// 412, naming the revision the key is at (or that it is absent), in the
/// problem's `revision` member (`null` when absent).
fn failed(ty: ValueType, key: &Key, current: Option<u64>) -> ApiError {
    let detail = match current {
        Some(rev) => {
            format!("{ty} key {key} is at revision {rev}; the request's precondition does not hold")
        }
        None => format!("there is no {ty} key {key}; the request's precondition does not hold"),
    };
    ApiError::new(StatusCode::PRECONDITION_FAILED, detail).with("revision", current.into())
}

impl<S: Send + Sync> FromRequestParts<S> for Conditions {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Conditions, ApiError> {
        Conditions::from_headers(&parts.headers)
    }
}

/// The `ETag` of a value last changed at `revision`, written straight
/// into the header's own buffer.
pub(crate) fn etag(revision: u64) -> HeaderValue {
    // Quotes and the 20 digits of the largest u64.
    let mut tag = BytesMut::with_capacity(22);
    write!(tag, "\"{revision}\"").expect("a BytesMut grows");
    HeaderValue::from_maybe_shared(tag.freeze()).expect("digits and quotes")
}

/// Marks `resp` with the store's `revision` and, for a key that exists
/// after the request, its `ETag`.
pub(crate) fn stamped(mut resp: Response, revision: u64, tag: Option<u64>) -> Response {
    let headers = resp.headers_mut();
    headers.insert(REVISION.clone(), HeaderValue::from(revision));
    if let Some(tag) = tag {
        headers.insert(header::ETAG, etag(tag));
    }
    resp
}

/// 304 for a value still at `tag`.
pub(crate) fn not_modified(revision: u64, tag: Option<u64>) -> Response {
    stamped(StatusCode::NOT_MODIFIED.into_response(), revision, tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conditions(if_match: Option<&str>, if_none_match: Option<&str>) -> Conditions {
        let mut headers = HeaderMap::new();
        if let Some(v) = if_match {
            headers.insert(header::IF_MATCH, HeaderValue::from_str(v).unwrap());
        }
        if let Some(v) = if_none_match {
            headers.insert(header::IF_NONE_MATCH, HeaderValue::from_str(v).unwrap());
        }
        Conditions::from_headers(&headers).unwrap()
    }

    fn key() -> Key {
        Key::parse("k").unwrap()
    }

    fn write_ok(c: &Conditions, current: Option<u64>) -> bool {
        c.check(ValueType::Int, &key(), current).is_ok()
    }

    #[test]
    fn if_match_compares_strongly_with_the_current_revision() {
        let c = conditions(Some(r#""5""#), None);
        assert!(write_ok(&c, Some(5)));
        assert!(!write_ok(&c, Some(6)));
        assert!(!write_ok(&c, None), "an absent key matches no tag");
        let list = conditions(Some(r#""3", "5""#), None);
        assert!(write_ok(&list, Some(5)));
        assert!(
            !write_ok(&conditions(Some(r#"W/"5""#), None), Some(5)),
            "weak"
        );
        assert!(!write_ok(&conditions(Some(r#""abc""#), None), Some(5)));
        let any = conditions(Some("*"), None);
        assert!(write_ok(&any, Some(1)) && !write_ok(&any, None));
    }

    #[test]
    fn if_none_match_star_is_create_only_and_a_current_tag_is_a_304_on_reads() {
        let create = conditions(None, Some("*"));
        assert!(write_ok(&create, None));
        assert!(!write_ok(&create, Some(1)));
        let seen = conditions(None, Some(r#"W/"7""#));
        assert!(matches!(
            seen.check_read(ValueType::Int, &key(), Some(7)),
            Err(Unmet::NotModified)
        ));
        assert!(seen.check_read(ValueType::Int, &key(), Some(8)).is_ok());
        assert!(write_ok(&seen, Some(7)), "a write compares strongly");
        assert!(!write_ok(&conditions(None, Some(r#""7""#)), Some(7)));
    }

    #[test]
    fn an_etag_is_the_revision_quoted() {
        assert_eq!(etag(0), "\"0\"");
        assert_eq!(etag(u64::MAX), "\"18446744073709551615\"");
        let tag = conditions(Some(etag(42).to_str().unwrap()), None);
        assert!(write_ok(&tag, Some(42)));
    }

    #[test]
    fn a_tag_that_is_not_quoted_is_a_400() {
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_MATCH, HeaderValue::from_static("5"));
        let e = Conditions::from_headers(&headers).unwrap_err();
        assert_eq!(e.into_response().status(), StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn a_failed_precondition_names_the_current_revision() {
        let e = conditions(Some(r#""5""#), None)
            .check(ValueType::Int, &key(), Some(9))
            .unwrap_err();
        let resp = e.into_response();
        assert_eq!(resp.status(), StatusCode::PRECONDITION_FAILED);
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["revision"], 9);
        assert!(problem["detail"].as_str().unwrap().contains("revision 9"));
    }
}
