//! Resource-style routes: `/{type}/{key}`, map fields, set members, key
//! listing.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use kvs_core::value::{MapValue, SetValue, check_text, parse_int};
use kvs_core::{Key, ValueType};
use serde::Deserialize;

use super::AppState;
use super::extract::{ApiPath, ApiQuery, Body};
use super::revision::{Conditions, Unmet, not_modified, stamped};
use super::values::{self, DELETED, absent, flagged, text};
use crate::error::ApiError;
use crate::store::{Found, Read, ValueRef, Written};

/// Set on a set-member PUT that added a new member.
static ADDED: HeaderName = HeaderName::from_static("added");
/// On a key listing: `true` on the last page, `false` when more follow.
static LAST_PAGE: HeaderName = HeaderName::from_static("kvs-last-page");
/// On a key listing that is not the last page: the `after` of the next.
static NEXT_AFTER: HeaderName = HeaderName::from_static("kvs-next-after");

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/keys/{type}", get(list_keys))
        .route("/int/{key}/incr", post(incr))
        .route(
            "/map/{key}/{field}",
            get(map_get).put(map_put).delete(map_delete),
        )
        .route(
            "/set/{key}/{member}",
            get(set_contains).put(set_add).delete(set_remove),
        )
        .route(
            "/{type}/{key}",
            get(value_get).put(value_put).delete(value_delete),
        )
}

pub(super) fn value_type(name: &str) -> Result<ValueType, ApiError> {
    name.parse()
        .map_err(|e: kvs_core::ValueError| ApiError::not_found(e.to_string()))
}

async fn value_get(
    State(s): State<AppState>,
    ApiPath((ty, key)): ApiPath<(String, String)>,
    conditions: Conditions,
) -> Result<Response, ApiError> {
    values::get(s, value_type(&ty)?, key, conditions).await
}

#[derive(Deserialize)]
struct PutQuery {
    ttl: Option<String>,
}

async fn value_put(
    State(s): State<AppState>,
    ApiPath((ty, key)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<PutQuery>,
    conditions: Conditions,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let ttl = values::ttl_secs(q.ttl.as_deref())?;
    values::put(s, value_type(&ty)?, key, &body, conditions, ttl).await
}

async fn value_delete(
    State(s): State<AppState>,
    ApiPath((ty, key)): ApiPath<(String, String)>,
    conditions: Conditions,
) -> Result<Response, ApiError> {
    values::delete(s, value_type(&ty)?, key, conditions).await
}

/// Adds the body's amount (1 when empty); answers the value after.
async fn incr(
    State(s): State<AppState>,
    ApiPath(key): ApiPath<String>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let key = Key::parse(&key)?;
    let by = if body.trim_ascii().is_empty() {
        1
    } else {
        parse_int(&body)?
    };
    let Written { out, revision, .. } = values::increment(&s, &key, by).await?;
    Ok(stamped(text(out.1.to_string()), revision, Some(revision)))
}

fn map_of(found: Option<Found<'_>>) -> Option<(&MapValue, u64)> {
    match found {
        Some(Found {
            value: ValueRef::Map(m),
            revision,
            ..
        }) => Some((m, revision)),
        _ => None,
    }
}

fn set_of(found: Option<Found<'_>>) -> Option<(&SetValue, u64)> {
    match found {
        Some(Found {
            value: ValueRef::Set(s),
            revision,
            ..
        }) => Some((s, revision)),
        _ => None,
    }
}

/// A field or member read: `look` finds it in the key's value, and gives
/// the key's revision, which is the answer's `ETag`.
async fn entry_get<T>(
    s: &AppState,
    ty: ValueType,
    key: &Key,
    conditions: &Conditions,
    look: impl Fn(Option<Found<'_>>) -> Option<(T, u64)>,
) -> Result<Result<(T, u64, u64), Response>, ApiError> {
    let Read { found, revision } = s.store.read(|db| db.view(ty, key.as_str(), &look)).await?;
    match conditions.check_read(ty, key, found.as_ref().map(|f| f.1)) {
        Ok(()) => {}
        Err(Unmet::NotModified) => return Ok(Err(not_modified(revision, found.map(|f| f.1)))),
        Err(Unmet::Failed(e)) => return Err(e),
    }
    let (entry, tag) = found.ok_or_else(|| absent(ty, key))?;
    s.store.audit_read(ty, key);
    Ok(Ok((entry, tag, revision)))
}

async fn map_get(
    State(s): State<AppState>,
    ApiPath((key, field)): ApiPath<(String, String)>,
    conditions: Conditions,
) -> Result<Response, ApiError> {
    let key = Key::parse(&key)?;
    let look = |f: Option<Found<'_>>| map_of(f).map(|(map, rev)| (map.get(&field).cloned(), rev));
    let (value, tag, revision) =
        match entry_get(&s, ValueType::Map, &key, &conditions, look).await? {
            Ok(found) => found,
            Err(not_modified) => return Ok(not_modified),
        };
    let value = value
        .ok_or_else(|| ApiError::not_found(format!("map key {key} has no field {field:?}")))?;
    Ok(stamped(text(value), revision, Some(tag)))
}

async fn map_put(
    State(s): State<AppState>,
    ApiPath((key, field)): ApiPath<(String, String)>,
    conditions: Conditions,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let key = Key::parse(&key)?;
    let value = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::bad_request("map field value is not valid UTF-8"))?;
    check_text("a map field", &field)?;
    check_text("a map value", &value)?;
    let written = s
        .store
        .write(&key, |tx| {
            conditions.check(ValueType::Map, &key, tx.revision(ValueType::Map))?;
            tx.map_field(&field, Some(value))?;
            Ok::<_, ApiError>(tx.revision(ValueType::Map))
        })
        .await?;
    Ok(entry_written(StatusCode::OK.into_response(), &written))
}

async fn map_delete(
    State(s): State<AppState>,
    ApiPath((key, field)): ApiPath<(String, String)>,
    conditions: Conditions,
) -> Result<Response, ApiError> {
    let key = Key::parse(&key)?;
    let written = s
        .store
        .write(&key, |tx| {
            conditions.check(ValueType::Map, &key, tx.revision(ValueType::Map))?;
            let removed = tx.map_field(&field, None)?;
            Ok::<_, ApiError>((removed, tx.revision(ValueType::Map)))
        })
        .await?;
    let resp = flagged(&DELETED, written.out.0);
    Ok(entry_written(resp, &written.map(|&(_, tag)| tag)))
}

/// Marks the answer to a field or member change: the store's revision, and
/// the key's `ETag` (its revision before the write, `tag`, if the write
/// changed nothing).
fn entry_written(resp: Response, written: &Written<Option<u64>>) -> Response {
    let tag = if written.changed {
        Some(written.revision)
    } else {
        written.out
    };
    stamped(resp, written.revision, tag)
}

async fn set_contains(
    State(s): State<AppState>,
    ApiPath((key, member)): ApiPath<(String, String)>,
    conditions: Conditions,
) -> Result<Response, ApiError> {
    let key = Key::parse(&key)?;
    let look = |f: Option<Found<'_>>| set_of(f).map(|(set, rev)| (set.contains(&member), rev));
    let (found, tag, revision) =
        match entry_get(&s, ValueType::Set, &key, &conditions, look).await? {
            Ok(found) => found,
            Err(not_modified) => return Ok(not_modified),
        };
    if !found {
        return Err(ApiError::not_found(format!(
            "set key {key} has no member {member:?}"
        )));
    }
    Ok(stamped(text("true".to_owned()), revision, Some(tag)))
}

async fn set_add(
    State(s): State<AppState>,
    ApiPath((key, member)): ApiPath<(String, String)>,
    conditions: Conditions,
) -> Result<Response, ApiError> {
    let key = Key::parse(&key)?;
    check_text("a set member", &member)?;
    set_change(s, key, member, true, conditions).await
}

async fn set_remove(
    State(s): State<AppState>,
    ApiPath((key, member)): ApiPath<(String, String)>,
    conditions: Conditions,
) -> Result<Response, ApiError> {
    let key = Key::parse(&key)?;
    set_change(s, key, member, false, conditions).await
}

/// Adds `member` (`present`) or removes it; the answer's flag says whether
/// that changed the set.
async fn set_change(
    s: AppState,
    key: Key,
    member: String,
    present: bool,
    conditions: Conditions,
) -> Result<Response, ApiError> {
    let written = s
        .store
        .write(&key, |tx| {
            conditions.check(ValueType::Set, &key, tx.revision(ValueType::Set))?;
            let changed = tx.set_member(&member, present)?;
            Ok::<_, ApiError>((changed, tx.revision(ValueType::Set)))
        })
        .await?;
    let flag = if present { &ADDED } else { &DELETED };
    let resp = flagged(flag, written.out.0);
    Ok(entry_written(resp, &written.map(|&(_, tag)| tag)))
}

#[derive(Deserialize)]
struct KeysQuery {
    #[serde(default)]
    prefix: String,
    after: Option<String>,
    limit: Option<usize>,
}

const DEFAULT_LIMIT: usize = 1000;
const MAX_LIMIT: usize = 10_000;

/// One page of keys in key order, all as of one revision; its headers say
/// whether it is the last and, if not, where the next starts.
async fn list_keys(
    State(s): State<AppState>,
    ApiPath(ty): ApiPath<String>,
    ApiQuery(q): ApiQuery<KeysQuery>,
) -> Result<Response, ApiError> {
    let ty = value_type(&ty)?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if limit > MAX_LIMIT {
        return Err(ApiError::bad_request(format!(
            "limit must be at most {MAX_LIMIT}; got {limit}"
        )));
    }
    // One more than the page tells whether another follows.
    let Read {
        found: mut keys,
        revision,
    } = s
        .store
        .read(|db| db.keys(ty, &q.prefix, q.after.as_deref(), limit + 1))
        .await?;
    let last = keys.len() <= limit;
    keys.truncate(limit);
    let next = match (last, keys.last()) {
        (false, Some(k)) => Some(HeaderValue::from_str(k.as_str()).expect("keys are ASCII")),
        _ => None,
    };
    let names: Vec<String> = keys.into_iter().map(|k| k.to_string()).collect();
    let mut resp = stamped(Json(names).into_response(), revision, None);
    let headers = resp.headers_mut();
    headers.insert(
        LAST_PAGE.clone(),
        HeaderValue::from_static(if last { "true" } else { "false" }),
    );
    if let Some(next) = next {
        headers.insert(NEXT_AFTER.clone(), next);
    }
    Ok(resp)
}
