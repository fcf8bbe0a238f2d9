//! The original service's routes, exactly as its clients call them.

use axum::extract::State;
use axum::response::Response;
use axum::routing::{MethodRouter, delete, get, put};
use kvs_core::value::parse_int;
use kvs_core::{Key, ValueType};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa::openapi::path::{HttpMethod, Operation, OperationBuilder, PathItem, Paths};
use utoipa::openapi::response::ResponsesBuilder;
use utoipa::openapi::{Ref, RefOr};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

use super::extract::{ApiPath, ApiQuery, Body};
use super::openapi::bodies;
use super::openapi::params::{FiboN, KeyPath};
use super::openapi::responses::{
    BadRequest, Conflict, DeleteResult, Forbidden, PayloadTooLarge, ReadErrors, Replaying,
    RequestTimeout, Unauthorized, WriteErrors, value_of,
};
use super::openapi::schemas::IntText;
use super::revision::{Conditions, stamped};
use super::values::{self, DELETED, flagged, text};
use super::{API_VERSION, AppState, based};
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

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    let mut router = OpenApiRouter::new()
        .routes(based(routes!(echo)))
        .routes(based(routes!(hello)))
        .routes(based(routes!(fibo)))
        .routes(based(routes!(incr)))
        .routes(based(routes!(incr_by)))
        .routes(based(routes!(delete_everywhere)));
    for (ty, put_path, get_path, del_path) in TYPED {
        let put_value = put(
            move |State(s): State<AppState>, ApiPath(key): ApiPath<String>, Body(body): Body| async move {
                values::put(s, ty, key, &body, Conditions::NONE, None).await
            },
        );
        let get_value = get(
            move |State(s): State<AppState>, ApiPath(key): ApiPath<String>| {
                values::get(s, ty, key, Conditions::NONE)
            },
        );
        let delete_value = delete(
            move |State(s): State<AppState>, ApiPath(key): ApiPath<String>| {
                values::delete(s, ty, key, Conditions::NONE)
            },
        );
        router = router
            .routes(typed(put_path, HttpMethod::Put, put_op(ty), put_value))
            .routes(typed(get_path, HttpMethod::Get, get_op(ty), get_value))
            .routes(typed(
                del_path,
                HttpMethod::Delete,
                delete_op(ty),
                delete_value,
            ));
    }
    router
}

/// A route of one type's put, get or delete under the base path, and its
/// documentation: the handlers are closures over the type, which
/// `#[utoipa::path]` cannot describe, so their operations are built here.
fn typed(
    path: &str,
    method: HttpMethod,
    operation: OperationBuilder,
    handler: MethodRouter<AppState>,
) -> UtoipaMethodRouter<AppState> {
    let operation: Operation = operation
        .tag("compatibility")
        .parameters(Some(KeyPath::into_params(|| None)))
        .build();
    let mut paths = Paths::new();
    paths
        .paths
        .insert(path.to_owned(), PathItem::new(method, operation));
    based((Vec::new(), paths, handler))
}

fn named(response: &str) -> RefOr<utoipa::openapi::response::Response> {
    Ref::from_response_name(response).into()
}

/// `int` is the one type name read with a vowel.
fn article(ty: ValueType) -> &'static str {
    if ty == ValueType::Int { "an" } else { "a" }
}

fn put_op(ty: ValueType) -> OperationBuilder {
    OperationBuilder::new()
        .operation_id(Some(format!("{}Put", ty.name())))
        .summary(Some(format!("Store {} {ty} value", article(ty))))
        .request_body(Some(bodies::value(ty)))
        .responses(
            ResponsesBuilder::new()
                .response("200", named("Ok"))
                .response("400", named("BadRequest"))
                .response("413", named("PayloadTooLarge"))
                .responses_from_into_responses::<WriteErrors>()
                .build(),
        )
}

fn get_op(ty: ValueType) -> OperationBuilder {
    OperationBuilder::new()
        .operation_id(Some(format!("{}Get", ty.name())))
        .summary(Some(format!("Read {} {ty} value", article(ty))))
        .responses(
            ResponsesBuilder::new()
                .response("200", named(value_of(ty)))
                .responses_from_into_responses::<ReadErrors>()
                .build(),
        )
}

fn delete_op(ty: ValueType) -> OperationBuilder {
    OperationBuilder::new()
        .operation_id(Some(format!("{}Del", ty.name())))
        .summary(Some(format!("Delete {} {ty} value", article(ty))))
        .responses(
            ResponsesBuilder::new()
                .response("200", named("DeleteResult"))
                .response("400", named("BadRequest"))
                .responses_from_into_responses::<WriteErrors>()
                .build(),
        )
}

/// Swaps the case of every letter; letters whose case change is longer
/// (`ß` to `SS`) take their full mapping.
#[utoipa::path(
    post,
    path = "/echo",
    operation_id = "echo",
    tag = "compatibility",
    summary = "Echo text with letter case swapped",
    description = "Answers 400 when the body is not UTF-8.",
    request_body(
        description = "Any UTF-8 text.",
        content((String = "text/plain; charset=utf-8", example = json!("Hello From the Client")))
    ),
    responses(
        (status = 200, description = "The text with the case of every letter swapped (Unicode aware).", body = String, content_type = "text/plain; charset=utf-8"),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 408, response = RequestTimeout),
        (status = 413, response = PayloadTooLarge),
        (status = 503, response = Replaying),
    )
)]
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

#[utoipa::path(
    post,
    path = "/hello",
    operation_id = "hello",
    tag = "compatibility",
    summary = "Greeting",
    responses(
        (status = 200, description = "A greeting naming the service and version.", body = String, content_type = "text/plain; charset=utf-8"),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 408, response = RequestTimeout),
        (status = 503, response = Replaying),
    )
)]
async fn hello() -> Response {
    text(format!("Hello from kvs {API_VERSION}!"))
}

#[derive(Deserialize)]
struct FiboQuery {
    n: Option<String>,
}

/// The largest `n` whose Fibonacci number fits in 64 bits.
pub(super) const MAX_FIBO: u32 = 93;

#[utoipa::path(
    post,
    path = "/fibo",
    operation_id = "fibo",
    tag = "compatibility",
    summary = "Fibonacci number F(n)",
    description = "Computed in O(n). Answers 400 when `n` is missing, not a number or over 93.",
    params(FiboN),
    responses(
        (status = 200, response = inline(super::openapi::responses::Fibonacci)),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 408, response = RequestTimeout),
        (status = 503, response = Replaying),
    )
)]
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

#[utoipa::path(
    put,
    path = "/int-incr/{key}",
    operation_id = "intIncr",
    tag = "compatibility",
    summary = "Increment an int by 1, returning the value before",
    params(KeyPath),
    responses(
        (status = 200, description = "The value BEFORE the increment (absent key: 0, and 1 is stored).", body = IntText, content_type = "text/plain"),
        (status = 400, response = BadRequest),
        (status = 409, response = Conflict),
        WriteErrors,
    )
)]
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

#[utoipa::path(
    put,
    path = "/int-incrby/{key}",
    operation_id = "intIncrBy",
    tag = "compatibility",
    summary = "Increment an int by an amount, returning the value before",
    params(KeyPath),
    request_body(
        description = bodies::INT,
        content((String = "text/plain", example = json!("42")))
    ),
    responses(
        (status = 200, description = "The value BEFORE the increment (absent key: 0, and the amount is stored).", body = IntText, content_type = "text/plain"),
        (status = 400, response = BadRequest),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        WriteErrors,
    )
)]
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

#[utoipa::path(
    delete,
    path = "/del/{key}",
    operation_id = "delAll",
    tag = "compatibility",
    summary = "Delete a key from every type",
    description = "Removes the key from the store of every type that holds it; `Deleted: true` when at least one was removed.",
    params(KeyPath),
    responses(
        (status = 200, response = DeleteResult),
        (status = 400, response = BadRequest),
        WriteErrors,
    )
)]
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
