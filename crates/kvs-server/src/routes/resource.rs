//! Resource-style routes: `/{type}/{key}`, map fields, set members, key
//! listing.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use kvs_core::value::{MapValue, SetValue, check_text, parse_int};
use kvs_core::{Key, ValueType};
use serde::Deserialize;

use super::AppState;
use super::extract::{ApiPath, ApiQuery, Body};
use super::values::{self, DELETED, absent, flagged, text};
use crate::error::ApiError;
use crate::store::ValueRef;

/// Set on a set-member PUT that added a new member.
static ADDED: HeaderName = HeaderName::from_static("added");

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

fn value_type(name: &str) -> Result<ValueType, ApiError> {
    name.parse()
        .map_err(|e: kvs_core::ValueError| ApiError::not_found(e.to_string()))
}

async fn value_get(
    State(s): State<AppState>,
    ApiPath((ty, key)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    values::get(s, value_type(&ty)?, key).await
}

async fn value_put(
    State(s): State<AppState>,
    ApiPath((ty, key)): ApiPath<(String, String)>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    values::put(s, value_type(&ty)?, key, &body).await
}

async fn value_delete(
    State(s): State<AppState>,
    ApiPath((ty, key)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    values::delete(s, value_type(&ty)?, key).await
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
    let (_, after) = values::increment(&s, &key, by).await?;
    Ok(text(after.to_string()))
}

fn map_of(value: Option<ValueRef<'_>>) -> Option<&MapValue> {
    match value {
        Some(ValueRef::Map(m)) => Some(m),
        _ => None,
    }
}

fn set_of(value: Option<ValueRef<'_>>) -> Option<&SetValue> {
    match value {
        Some(ValueRef::Set(s)) => Some(s),
        _ => None,
    }
}

async fn map_get(
    State(s): State<AppState>,
    ApiPath((key, field)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let key = Key::parse(&key)?;
    let found = s.store.db.view(ValueType::Map, key.as_str(), |v| {
        map_of(v).map(|map| map.get(&field).cloned())
    });
    let found = found.ok_or_else(|| absent(ValueType::Map, &key))?;
    let value = found
        .ok_or_else(|| ApiError::not_found(format!("map key {key} has no field {field:?}")))?;
    s.store.audit_read(ValueType::Map, &key);
    Ok(text(value))
}

async fn map_put(
    State(s): State<AppState>,
    ApiPath((key, field)): ApiPath<(String, String)>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let key = Key::parse(&key)?;
    let value = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::bad_request("map field value is not valid UTF-8"))?;
    check_text("a map field", &field)?;
    check_text("a map value", &value)?;
    s.store
        .write(&key, |tx| {
            Ok::<_, ApiError>(tx.map_field(&field, Some(value))?)
        })
        .await?;
    Ok(StatusCode::OK.into_response())
}

async fn map_delete(
    State(s): State<AppState>,
    ApiPath((key, field)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let key = Key::parse(&key)?;
    let removed = s
        .store
        .write(&key, |tx| Ok::<_, ApiError>(tx.map_field(&field, None)?))
        .await?;
    Ok(flagged(&DELETED, removed))
}

async fn set_contains(
    State(s): State<AppState>,
    ApiPath((key, member)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let key = Key::parse(&key)?;
    let found = s.store.db.view(ValueType::Set, key.as_str(), |v| {
        set_of(v).map(|set| set.contains(&member))
    });
    let found = found.ok_or_else(|| absent(ValueType::Set, &key))?;
    if !found {
        return Err(ApiError::not_found(format!(
            "set key {key} has no member {member:?}"
        )));
    }
    s.store.audit_read(ValueType::Set, &key);
    Ok(text("true".to_owned()))
}

async fn set_add(
    State(s): State<AppState>,
    ApiPath((key, member)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let key = Key::parse(&key)?;
    check_text("a set member", &member)?;
    let added = s
        .store
        .write(&key, |tx| Ok::<_, ApiError>(tx.set_member(&member, true)?))
        .await?;
    Ok(flagged(&ADDED, added))
}

async fn set_remove(
    State(s): State<AppState>,
    ApiPath((key, member)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let key = Key::parse(&key)?;
    let removed = s
        .store
        .write(&key, |tx| Ok::<_, ApiError>(tx.set_member(&member, false)?))
        .await?;
    Ok(flagged(&DELETED, removed))
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

async fn list_keys(
    State(s): State<AppState>,
    ApiPath(ty): ApiPath<String>,
    ApiQuery(q): ApiQuery<KeysQuery>,
) -> Result<Json<Vec<String>>, ApiError> {
    let ty = value_type(&ty)?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if limit > MAX_LIMIT {
        return Err(ApiError::bad_request(format!(
            "limit must be at most {MAX_LIMIT}; got {limit}"
        )));
    }
    let keys = s.store.db.keys(ty, &q.prefix, q.after.as_deref(), limit);
    Ok(Json(keys.into_iter().map(|k| k.to_string()).collect()))
}
