//! Whole-value operations, shared by the compatibility and resource routes.

use std::time::{Duration, UNIX_EPOCH};

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kvs_core::{Key, Value, ValueType};

use super::AppState;
use super::revision::{CREATE_REVISION, Conditions, Unmet, not_modified, stamped};
use crate::error::ApiError;
use crate::store::expiry::{MAX_TTL_SECS, deadline_after};
use crate::store::{KeyTx, Read, ValueRef, Written};

/// The header the original clients read to learn that a DELETE removed
/// something.
pub(crate) static DELETED: HeaderName = HeaderName::from_static("deleted");
/// When the key an answer is about expires (RFC 3339, UTC, milliseconds).
static EXPIRES_AT: HeaderName = HeaderName::from_static("kvs-expires-at");

/// 200 with `{name}: true` when `flag` is set.
pub(crate) fn flagged(name: &'static HeaderName, flag: bool) -> Response {
    let mut resp = StatusCode::OK.into_response();
    if flag {
        resp.headers_mut()
            .insert(name.clone(), HeaderValue::from_static("true"));
    }
    resp
}

/// A text answer; axum marks a `String` `text/plain; charset=utf-8` with
/// a header value of its own, not one copied per answer.
pub(crate) fn text(body: String) -> Response {
    body.into_response()
}

pub(crate) fn absent(ty: ValueType, key: &Key) -> ApiError {
    ApiError::not_found(format!("no {ty} key {key}"))
}

pub(crate) async fn get(
    state: AppState,
    ty: ValueType,
    key: String,
    conditions: Conditions,
) -> Result<Response, ApiError> {
    let key = Key::parse(&key)?;
    let Read { found, revision } = state
        .store
        .read(|db| {
            db.view(ty, key.as_str(), |f| {
                f.map(|f| (f.value.to_value(), f.revision, f.created, f.expires_ms))
            })
        })
        .await?;
    match conditions.check_read(ty, &key, found.as_ref().map(|f| f.1)) {
        Ok(()) => {}
        Err(Unmet::NotModified) => return Ok(not_modified(revision, found.map(|f| f.1))),
        Err(Unmet::Failed(e)) => return Err(e),
    }
    let (value, tag, created, expires_ms) = found.ok_or_else(|| absent(ty, &key))?;
    state.store.audit_read(ty, &key);
    let resp = match value {
        // The copy out of the table is the body: a string is not copied again.
        Value::Str(s) => text(s),
        value => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(value.content_type()),
            )],
            value.render(),
        )
            .into_response(),
    };
    let mut resp = expiring(stamped(resp, revision, Some(tag)), expires_ms);
    let created = HeaderValue::from(created);
    resp.headers_mut().insert(CREATE_REVISION.clone(), created);
    Ok(resp)
}

/// Marks `resp` with when the key it is about expires, if it does.
pub(crate) fn expiring(mut resp: Response, expires_ms: Option<u64>) -> Response {
    if let Some(at) = expires_ms {
        let when = UNIX_EPOCH + Duration::from_millis(at);
        let text = humantime::format_rfc3339_millis(when).to_string();
        let value = HeaderValue::from_str(&text).expect("RFC 3339 is ASCII");
        resp.headers_mut().insert(EXPIRES_AT.clone(), value);
    }
    resp
}

/// Stores a value; with `ttl_secs`, one that expires that many seconds
/// from now.
pub(crate) async fn put(
    state: AppState,
    ty: ValueType,
    key: String,
    body: &[u8],
    conditions: Conditions,
    ttl_secs: Option<u64>,
) -> Result<Response, ApiError> {
    let key = Key::parse(&key)?;
    let value = Value::parse(ty, body)?;
    let at_ms = ttl_secs.map(deadline_after);
    let written = state
        .store
        .write(&key, |tx| {
            conditions.check(ty, &key, tx.revision(ty))?;
            tx.put(value, at_ms)?;
            Ok::<_, ApiError>(())
        })
        .await?;
    let revision = written.revision;
    let resp = stamped(StatusCode::OK.into_response(), revision, Some(revision));
    Ok(expiring(resp, at_ms))
}

/// The `ttl` of a PUT: whole seconds, from 1 to ten years.
pub(crate) fn ttl_secs(text: Option<&str>) -> Result<Option<u64>, ApiError> {
    let Some(text) = text else { return Ok(None) };
    let secs = text
        .parse::<u64>()
        .ok()
        .filter(|s| (1..=MAX_TTL_SECS).contains(s));
    secs.map(Some).ok_or_else(|| bad_ttl(text))
}

/// The deadline of a transaction's put with `ttl` seconds, checked as a
/// PUT's is.
pub(crate) fn ttl_deadline(ttl: u64) -> Result<u64, ApiError> {
    if (1..=MAX_TTL_SECS).contains(&ttl) {
        Ok(deadline_after(ttl))
    } else {
        Err(bad_ttl(&ttl.to_string()))
    }
}

fn bad_ttl(text: &str) -> ApiError {
    ApiError::bad_request(format!(
        "ttl must be a whole number of seconds from 1 to {MAX_TTL_SECS}; got {text:?}"
    ))
}

pub(crate) async fn delete(
    state: AppState,
    ty: ValueType,
    key: String,
    conditions: Conditions,
) -> Result<Response, ApiError> {
    let key = Key::parse(&key)?;
    let Written { out, revision, .. } = state
        .store
        .write(&key, |tx| {
            conditions.check(ty, &key, tx.revision(ty))?;
            Ok::<_, ApiError>(tx.delete(ty))
        })
        .await?;
    Ok(stamped(flagged(&DELETED, out), revision, None))
}

/// Adds `by` to an int key (absent counts as 0); returns the value before
/// and after, and the increment's revision. Overflow is a 409 and changes
/// nothing.
pub(crate) async fn increment(
    state: &AppState,
    key: &Key,
    by: i32,
) -> Result<Written<(i32, i32)>, ApiError> {
    state.store.write(key, |tx| add(tx, by)).await
}

/// Adds `by` to the int key of `tx`; returns the value before and after.
pub(crate) fn add(tx: &mut KeyTx<'_>, by: i32) -> Result<(i32, i32), ApiError> {
    let before = match tx.get(ValueType::Int) {
        Some(ValueRef::Int(v)) => v,
        _ => 0,
    };
    let after = before.checked_add(by).ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "adding {by} to int key {} (now {before}) would overflow a 32-bit integer",
                tx.key()
            ),
        )
    })?;
    // An increment keeps the key's TTL, as a member or field change does.
    let deadline = tx.expires(ValueType::Int);
    tx.put(Value::Int(after), deadline)?;
    Ok((before, after))
}
