//! The request bodies of the routes that store a whole value, by type.

use kvs_core::ValueType;
use serde_json::json;
use utoipa::openapi::Required;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::request_body::{RequestBody, RequestBodyBuilder};

use super::schemas::{string, to};

/// What an `int` body may be; also `PUT /int-incrby/{key}`'s amount.
pub(crate) const INT: &str = "A decimal `i32`; surrounding ASCII whitespace is ignored.";

/// The body that stores a value of type `ty`.
pub(crate) fn value(ty: ValueType) -> RequestBody {
    let (description, content_type, schema, example) = match ty {
        ValueType::Int => (INT, "text/plain", string().into(), json!("42")),
        ValueType::Uint => (
            "A decimal `u32`; surrounding ASCII whitespace is ignored.",
            "text/plain",
            string().into(),
            json!("42"),
        ),
        ValueType::Float => (
            "A finite decimal `f32` such as `1.5` or `-2e3`.",
            "text/plain",
            string().into(),
            json!("1.5"),
        ),
        ValueType::Str => (
            "UTF-8 text, stored exactly; an empty body stores the empty string.",
            "text/plain; charset=utf-8",
            string().into(),
            json!("hello"),
        ),
        ValueType::Map => (
            "A JSON object of string to string.",
            "application/json",
            to("StringMap"),
            json!({"name": "Ada"}),
        ),
        ValueType::Set => (
            "A JSON array of strings; duplicates collapse.",
            "application/json",
            to("StringSet"),
            json!(["red", "blue"]),
        ),
    };
    RequestBodyBuilder::new()
        .description(Some(description))
        .required(Some(Required::True))
        .content(
            content_type,
            ContentBuilder::new()
                .schema(Some(schema))
                .example(Some(example))
                .build(),
        )
        .build()
}
