//! The original service's routes, exactly as its clients call them.

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{delete, get, post, put};
use kvs_core::value::parse_int;
use kvs_core::{Key, ValueType};
use serde::Deserialize;

use super::extract::{ApiPath, ApiQuery, Body};
use super::revision::{Conditions, stamped};
use super::values::{self, DELETED, flagged, text};
use super::{API_VERSION, AppState};
use crate::error::ApiError;

/// The original's path for each type's put, get and delete.
const TYPED: [(ValueType, &str, &str, &str); 6] = [
    (
        ValueType::Int,
        "/int-put/{key}",
        "/int-get/{key}",
        "/int-del/{key}",
    ),
    (
        ValueType::Uint,
        "/uint/put/{key}",
        "/uint/get/{key}",
        "/uint/del/{key}",
    ),
    (
        ValueType::Float,
        "/float-put/{key}",
        "/float-get/{key}",
        "/float-del/{key}",
    ),
    (
        ValueType::Str,
        "/str-put/{key}",
        "/str-get/{key}",
        "/str-del/{key}",
    ),
    (
        ValueType::Map,
        "/map-put/{key}",
        "/map-get/{key}",
        "/map-del/{key}",
    ),
    (
        ValueType::Set,
        "/set-put/{key}",
        "/set-get/{key}",
        "/set-del/{key}",
    ),
];

pub(crate) fn routes() -> Router<AppState> {
    let mut router = Router::new()
        .route("/echo", post(echo))
        .route("/hello", post(hello))
        .route("/fibo", post(fibo))
        .route("/int-incr/{key}", put(incr))
        .route("/int-incrby/{key}", put(incr_by))
        .route("/del/{key}", delete(delete_everywhere));
    for (ty, put_path, get_path, del_path) in TYPED {
        router = router
            .route(
                put_path,
                put(
                    move |State(s): State<AppState>,
                          ApiPath(key): ApiPath<String>,
                          Body(body): Body| async move {
                        values::put(s, ty, key, &body, Conditions::NONE, None).await
                    },
                ),
            )
            .route(
                get_path,
                get(
                    move |State(s): State<AppState>, ApiPath(key): ApiPath<String>| {
                        values::get(s, ty, key, Conditions::NONE)
                    },
                ),
            )
            .route(
                del_path,
                delete(
                    move |State(s): State<AppState>, ApiPath(key): ApiPath<String>| {
                        values::delete(s, ty, key, Conditions::NONE)
                    },
                ),
            );
    }
    router
}

/// Swaps the case of every letter; letters whose case change is longer
/// (`ß` to `SS`) take their full mapping.
async fn echo(Body(body): Body) -> Result<Response, ApiError> {
    let text_in =
        std::str::from_utf8(&body).map_err(|_| ApiError::bad_request("body is not valid UTF-8"))?;
    let mut out = String::with_capacity(text_in.len());
    for c in text_in.chars() {
        if c.is_lowercase() {
            out.extend(c.to_uppercase());
        } else if c.is_uppercase() {
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    Ok(text(out))
}

async fn hello() -> Response {
    text(format!("Hello from kvs {API_VERSION}!"))
}

#[derive(Deserialize)]
struct FiboQuery {
    n: Option<String>,
}

/// The largest `n` whose Fibonacci number fits in 64 bits.
const MAX_FIBO: u32 = 93;

async fn fibo(ApiQuery(q): ApiQuery<FiboQuery>) -> Result<Response, ApiError> {
    let raw =
        q.n.ok_or_else(|| ApiError::bad_request("query parameter n is required, e.g. /fibo?n=10"))?;
    let n: u32 = raw.parse().ok().filter(|n| *n <= MAX_FIBO).ok_or_else(|| {
        ApiError::bad_request(format!(
            "n must be a whole number from 0 to {MAX_FIBO}; got {raw:?}"
        ))
    })?;
    let (mut a, mut b) = (0u64, 1u64);
    for _ in 0..n {
        (a, b) = (b, a.wrapping_add(b));
    }
    Ok(text(a.to_string()))
}

async fn incr(
    State(s): State<AppState>,
    ApiPath(key): ApiPath<String>,
) -> Result<Response, ApiError> {
    let key = Key::parse(&key)?;
    let written = values::increment(&s, &key, 1).await?;
    let revision = written.revision;
    Ok(stamped(
        text(written.out.0.to_string()),
        revision,
        Some(revision),
    ))
}

async fn incr_by(
    State(s): State<AppState>,
    ApiPath(key): ApiPath<String>,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let key = Key::parse(&key)?;
    let by = parse_int(&body)?;
    let written = values::increment(&s, &key, by).await?;
    let revision = written.revision;
    Ok(stamped(
        text(written.out.0.to_string()),
        revision,
        Some(revision),
    ))
}

async fn delete_everywhere(
    State(s): State<AppState>,
    ApiPath(key): ApiPath<String>,
) -> Result<Response, ApiError> {
    let key = Key::parse(&key)?;
    let removed = s
        .store
        .write(&key, |tx| {
            let mut any = false;
            for ty in ValueType::ALL {
                any |= tx.delete(ty);
            }
            Ok::<_, ApiError>(any)
        })
        .await?;
    Ok(stamped(
        flagged(&DELETED, removed.out),
        removed.revision,
        None,
    ))
}
