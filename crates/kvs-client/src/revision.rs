//! Revisions: what a read says about its value ([`Revised`]), what a
//! conditional write asks of its key ([`Precondition`]), and what a write
//! answers ([`Written`]).

use std::time::{Duration, SystemTime};

use kvs_core::{Key, Value, ValueType};
use reqwest::header::{ETAG, HeaderValue, IF_MATCH, IF_NONE_MATCH};
use reqwest::{RequestBuilder, Response};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::client::value_of;
use crate::{Client, Error, Result};

/// The store's revision an answer reflects.
const REVISION: &str = "kvs-revision";
/// When a key with a TTL expires.
const EXPIRES_AT: &str = "kvs-expires-at";
/// The revision a value was created at.
const CREATE_REVISION: &str = "kvs-create-revision";

/// A value read with its revision.
#[derive(Debug, Clone, PartialEq)]
pub struct Revised<T> {
    /// The value.
    pub value: T,
    /// The revision of the value's last change (its `ETag`): the revision
    /// a [`Precondition::Revision`] names to change it only if nobody else
    /// has.
    pub revision: u64,
    /// The revision the value was created at (its key made after it was
    /// absent), where the answer says (a GET does; a transaction's result
    /// does not).
    pub created: Option<u64>,
    /// When the key expires, for a key stored with a TTL.
    pub expires_at: Option<SystemTime>,
}

/// What a conditional write asks of its key's current state. For a map
/// field or a set member, the condition is on the whole map or set key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// The key is at this revision (`If-Match: "N"`): compare-and-set.
    Revision(u64),
    /// The key is absent (`If-None-Match: *`): create only.
    Absent,
    /// The key exists, at any revision (`If-Match: *`).
    Present,
}

impl Precondition {
    /// `req` with the header that states `condition`, if any.
    pub(crate) fn apply(condition: Option<Precondition>, req: RequestBuilder) -> RequestBuilder {
        match condition {
            None => req,
            Some(Precondition::Revision(rev)) => req.header(IF_MATCH, format!("\"{rev}\"")),
            Some(Precondition::Absent) => req.header(IF_NONE_MATCH, HeaderValue::from_static("*")),
            Some(Precondition::Present) => req.header(IF_MATCH, HeaderValue::from_static("*")),
        }
    }
}

/// How [`Client::put_with`] stores a value: on a condition, for a time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutOptions {
    pub(crate) condition: Option<Precondition>,
    ttl: Option<Duration>,
}

impl PutOptions {
    /// Stores only if `condition` holds.
    pub fn condition(mut self, condition: Precondition) -> PutOptions {
        self.condition = Some(condition);
        self
    }

    /// Stores the value until `ttl` has passed: a whole, positive number of
    /// seconds, as the server takes it.
    pub fn ttl(mut self, ttl: Duration) -> PutOptions {
        self.ttl = Some(ttl);
        self
    }

    /// The TTL in seconds; a TTL the server cannot take is refused here.
    pub(crate) fn ttl_seconds(&self) -> Result<Option<u64>> {
        self.ttl.map(ttl_seconds).transpose()
    }
}

/// `ttl` in whole seconds, which it must be, and at least one.
pub(crate) fn ttl_seconds(ttl: Duration) -> Result<u64> {
    if ttl.subsec_nanos() != 0 || ttl.is_zero() {
        return Err(Error::InvalidArgument(format!(
            "a TTL must be a whole, positive number of seconds; got {ttl:?}"
        )));
    }
    Ok(ttl.as_secs())
}

/// What a conditional write of part of a key (or a delete) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// The store's revision the answer reflects: the write's own when it
    /// changed something.
    pub revision: u64,
    /// The key's revision after the write (`None`: absent), for the next
    /// [`Precondition::Revision`].
    pub key_revision: Option<u64>,
    /// Whether the write changed something: the key or field existed (a
    /// delete), the member was new (an add) or there (a remove).
    pub changed: bool,
}

impl Written {
    /// The answer `resp` to a write that `changed` something or not.
    pub(crate) fn of(resp: &Response, changed: bool) -> Result<Written> {
        Ok(Written {
            revision: revision_of(resp)?,
            key_revision: etag_of(resp)?,
            changed,
        })
    }
}

/// The `KVS-Revision` of an answer, which every data answer carries.
pub(crate) fn revision_of(resp: &Response) -> Result<u64> {
    let value = resp
        .headers()
        .get(REVISION)
        .ok_or_else(|| Error::Decode(format!("the answer has no {REVISION}")))?;
    number(REVISION, value.as_bytes())
}

/// The revision in the answer's `ETag` (`"N"`), if it has one.
fn etag_of(resp: &Response) -> Result<Option<u64>> {
    let Some(value) = resp.headers().get(ETAG) else {
        return Ok(None);
    };
    let tag = value.as_bytes();
    let tag = tag.strip_prefix(b"W/").unwrap_or(tag);
    let inner = tag
        .strip_prefix(b"\"")
        .and_then(|t| t.strip_suffix(b"\""))
        .ok_or_else(|| Error::Decode(format!("ETag {value:?} is not a quoted revision")))?;
    number("ETag", inner).map(Some)
}

/// The answer's `KVS-Expires-At` (RFC 3339), if it has one.
fn expires_at_of(resp: &Response) -> Result<Option<SystemTime>> {
    let Some(value) = resp.headers().get(EXPIRES_AT) else {
        return Ok(None);
    };
    let bad = || Error::Decode(format!("{EXPIRES_AT} {value:?} is not an RFC 3339 time"));
    let text = value.to_str().map_err(|_| bad())?;
    let at = OffsetDateTime::parse(text, &Rfc3339).map_err(|_| bad())?;
    Ok(Some(at.into()))
}

fn number(name: &str, text: &[u8]) -> Result<u64> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .ok_or_else(|| {
            Error::Decode(format!(
                "{name} must be a revision number, got {:?}",
                String::from_utf8_lossy(text)
            ))
        })
}

impl Client {
    /// `GET /{type}/{key}` with the value's revision (its `ETag`), that of
    /// its creation and, for a key stored with a TTL, when it expires;
    /// `None` when it is absent.
    pub async fn get_revised(&self, ty: ValueType, key: &str) -> Result<Option<Revised<Value>>> {
        let url = self.url(&[ty.name(), Key::parse(key)?.as_str()]);
        let Some(resp) = self.send_found(self.http.get(url)).await? else {
            return Ok(None);
        };
        let revision = etag_of(&resp)?
            .ok_or_else(|| Error::Decode("a value's answer must carry its ETag".to_owned()))?;
        let expires_at = expires_at_of(&resp)?;
        let created = match resp.headers().get(CREATE_REVISION) {
            Some(v) => Some(number(CREATE_REVISION, v.as_bytes())?),
            None => None,
        };
        Ok(Some(Revised {
            value: value_of(ty, resp).await?,
            revision,
            created,
            expires_at,
        }))
    }
}
