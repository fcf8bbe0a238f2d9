//! Resource-style routes: `/{type}/{key}`, map fields, set members, key
//! listing.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use kvs_core::value::{MapValue, SetValue, check_text, parse_int};
use kvs_core::{Key, ValueType};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiPath, ApiQuery, Body};
use super::openapi::params::{
    FieldPath, KeyPath, Listing, MemberPath, ReadConditions, Ttl, TypeKeyPath, WriteConditions,
};
use super::openapi::responses::{
    AnyValue, BadRequest, Conflict, DeleteResult, IsMember, KeyPage, MemberAdded, NotModified,
    PayloadTooLarge, PreconditionFailed, ReadErrors, Replaying, RequestTimeout, Stored,
    Unauthorized, UnknownType, WriteErrors,
};
use super::openapi::schemas::IntText;
use super::revision::{Conditions, Unmet, not_modified, stamped};
use super::values::{self, DELETED, absent, flagged, text};
use super::{AppState, based};
use crate::error::ApiError;
use crate::store::{Found, Read, ValueRef, Written};

/// Set on a set-member PUT that added a new member.
static ADDED: HeaderName = HeaderName::from_static("added");
/// On a key listing: `true` on the last page, `false` when more follow.
static LAST_PAGE: HeaderName = HeaderName::from_static("kvs-last-page");
/// On a key listing that is not the last page: the `after` of the next.
static NEXT_AFTER: HeaderName = HeaderName::from_static("kvs-next-after");

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(based(routes!(value_get, value_put, value_delete)))
        .routes(based(routes!(incr)))
        .routes(based(routes!(map_get, map_put, map_delete)))
        .routes(based(routes!(set_contains, set_add, set_remove)))
        .routes(based(routes!(list_keys)))
}

pub(super) fn value_type(name: &str) -> Result<ValueType, ApiError> {
    name.parse()
        .map_err(|e: kvs_core::ValueError| ApiError::not_found(e.to_string()))
}

#[utoipa::path(
    get,
    path = "/{type}/{key}",
    operation_id = "getValue",
    tag = "values",
    summary = "Read a value",
    params(TypeKeyPath, ReadConditions),
    responses(
        (status = 200, response = AnyValue),
        (status = 304, response = NotModified),
        (status = 412, response = PreconditionFailed),
        ReadErrors,
    )
)]
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

#[utoipa::path(
    put,
    path = "/{type}/{key}",
    operation_id = "putValue",
    tag = "values",
    summary = "Store a value",
    description = "Replaces any value of that type under the key. With `ttl`, the key expires that many seconds from now (the answer says when, in `KVS-Expires-At`); without it, the key is permanent.",
    params(TypeKeyPath, Ttl, WriteConditions),
    request_body(
        description = "The value in the form of `{type}`: decimal text for `int`, `uint` and `float`, UTF-8 text for `str`, a JSON object of strings for `map`, a JSON array of strings for `set`.",
        content(
            (String = "text/plain", example = json!("42")),
            (super::openapi::schemas::MapOrSet = "application/json", example = json!({"name": "Ada"})),
        )
    ),
    responses(
        (status = 200, response = inline(Stored)),
        (status = 400, response = BadRequest),
        (status = 404, response = UnknownType),
        (status = 412, response = PreconditionFailed),
        (status = 413, response = PayloadTooLarge),
        WriteErrors,
    )
)]
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

#[utoipa::path(
    delete,
    path = "/{type}/{key}",
    operation_id = "deleteValue",
    tag = "values",
    summary = "Delete a value",
    params(TypeKeyPath, WriteConditions),
    responses(
        (status = 200, response = DeleteResult),
        (status = 400, response = BadRequest),
        (status = 404, response = UnknownType),
        (status = 412, response = PreconditionFailed),
        WriteErrors,
    )
)]
async fn value_delete(
    State(s): State<AppState>,
    ApiPath((ty, key)): ApiPath<(String, String)>,
    conditions: Conditions,
) -> Result<Response, ApiError> {
    values::delete(s, value_type(&ty)?, key, conditions).await
}

/// Adds the body's amount (1 when empty); answers the value after.
#[utoipa::path(
    post,
    path = "/int/{key}/incr",
    operation_id = "incrInt",
    tag = "values",
    summary = "Increment an int, returning the value after",
    params(KeyPath),
    request_body(
        description = "Optional decimal `i32` amount (default 1).",
        content(("text/plain", example = json!("5")))
    ),
    responses(
        (status = 200, description = "The value AFTER the increment (an absent key counts as 0).", body = IntText, content_type = "text/plain"),
        (status = 400, response = BadRequest),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        WriteErrors,
    )
)]
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

#[utoipa::path(
    get,
    path = "/map/{key}/{field}",
    operation_id = "getMapField",
    tag = "maps",
    summary = "Read one map field",
    description = "404 when the map or the field is absent.",
    params(FieldPath, ReadConditions),
    responses(
        (status = 200, description = "The field's value.", body = String, content_type = "text/plain; charset=utf-8"),
        (status = 304, response = NotModified),
        (status = 412, response = PreconditionFailed),
        ReadErrors,
    )
)]
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

#[utoipa::path(
    put,
    path = "/map/{key}/{field}",
    operation_id = "putMapField",
    tag = "maps",
    summary = "Set one map field",
    description = "Creates the map when absent.",
    params(FieldPath, WriteConditions),
    request_body(
        description = "The field's value, as UTF-8 text.",
        content((String = "text/plain; charset=utf-8", example = json!("Ada")))
    ),
    responses(
        (status = 200, response = super::openapi::responses::Ok),
        (status = 400, response = BadRequest),
        (status = 412, response = PreconditionFailed),
        (status = 413, response = PayloadTooLarge),
        WriteErrors,
    )
)]
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

#[utoipa::path(
    delete,
    path = "/map/{key}/{field}",
    operation_id = "deleteMapField",
    tag = "maps",
    summary = "Remove one map field",
    description = "A map left empty stays (empty).",
    params(FieldPath, WriteConditions),
    responses(
        (status = 200, response = DeleteResult),
        (status = 400, response = BadRequest),
        (status = 412, response = PreconditionFailed),
        WriteErrors,
    )
)]
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

#[utoipa::path(
    get,
    path = "/set/{key}/{member}",
    operation_id = "getSetMember",
    tag = "sets",
    summary = "Test set membership",
    description = "404 when the set or the member is absent.",
    params(MemberPath, ReadConditions),
    responses(
        (status = 200, response = inline(IsMember)),
        (status = 304, response = NotModified),
        (status = 412, response = PreconditionFailed),
        ReadErrors,
    )
)]
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

#[utoipa::path(
    put,
    path = "/set/{key}/{member}",
    operation_id = "addSetMember",
    tag = "sets",
    summary = "Add a member to a set",
    description = "Creates the set when absent.",
    params(MemberPath, WriteConditions),
    responses(
        (status = 200, response = inline(MemberAdded)),
        (status = 400, response = BadRequest),
        (status = 412, response = PreconditionFailed),
        (status = 413, response = PayloadTooLarge),
        WriteErrors,
    )
)]
async fn set_add(
    State(s): State<AppState>,
    ApiPath((key, member)): ApiPath<(String, String)>,
    conditions: Conditions,
) -> Result<Response, ApiError> {
    let key = Key::parse(&key)?;
    check_text("a set member", &member)?;
    set_change(s, key, member, true, conditions).await
}

#[utoipa::path(
    delete,
    path = "/set/{key}/{member}",
    operation_id = "removeSetMember",
    tag = "sets",
    summary = "Remove a member from a set",
    params(MemberPath, WriteConditions),
    responses(
        (status = 200, response = DeleteResult),
        (status = 400, response = BadRequest),
        (status = 412, response = PreconditionFailed),
        WriteErrors,
    )
)]
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

pub(super) const DEFAULT_LIMIT: usize = 1000;
pub(super) const MAX_LIMIT: usize = 10_000;

/// One page of keys in key order, all as of one revision; its headers say
/// whether it is the last and, if not, where the next starts.
#[utoipa::path(
    get,
    path = "/keys/{type}",
    operation_id = "listKeys",
    tag = "keys",
    summary = "List keys of a type",
    description = "Keys of `{type}` starting with `prefix`, greater than `after`, at most `limit` of them, in ascending order. Each page is as of one revision; `KVS-Last-Page` says whether it is the last, and `KVS-Next-After` where the next starts.",
    params(Listing),
    responses(
        (status = 200, response = inline(KeyPage)),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = UnknownType),
        (status = 408, response = RequestTimeout),
        (status = 503, response = Replaying),
    )
)]
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
