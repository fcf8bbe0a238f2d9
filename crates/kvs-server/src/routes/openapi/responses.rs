//! The answers the routes give: problems, values and what a write says,
//! each a type that a route's `responses(...)` names. Shared ones are
//! components of the document; the others are written out where used.

use std::collections::BTreeMap;

use kvs_core::ValueType;
use serde_json::json;
use utoipa::IntoResponses;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::{Ref, RefOr};

use super::headers;
use super::schemas::{integer, string, to};

const PROBLEM: &str = "application/problem+json";

fn body(schema: impl Into<RefOr<Schema>>) -> ContentBuilder {
    ContentBuilder::new().schema(Some(schema))
}

fn problem(description: &str) -> ResponseBuilder {
    problem_of(description, to("Problem"))
}

fn problem_of(description: &str, schema: impl Into<RefOr<Schema>>) -> ResponseBuilder {
    ResponseBuilder::new()
        .description(description)
        .content(PROBLEM, body(schema).build())
}

/// A problem that says when to try again.
fn retry(description: &str) -> ResponseBuilder {
    problem(description).header("Retry-After", headers::retry_after())
}

/// A key's value, with what the key's answers carry.
fn value(description: &str, content: &[(&str, RefOr<Schema>)]) -> ResponseBuilder {
    let response = content.iter().fold(
        ResponseBuilder::new().description(description),
        |r, (content_type, schema)| r.content(*content_type, body(schema.clone()).build()),
    );
    response
        .header("ETag", headers::etag())
        .header("KVS-Create-Revision", headers::create_revision())
        .header("KVS-Revision", headers::revision())
        .header("KVS-Expires-At", headers::expires_at())
}

fn text(
    description: &str,
    content_type: &str,
    schema: impl Into<RefOr<Schema>>,
) -> ResponseBuilder {
    ResponseBuilder::new()
        .description(description)
        .content(content_type, body(schema).build())
}

/// Declares each response as a type; `all` lists the shared ones, which
/// the document's components hold and routes refer to.
macro_rules! responses {
    (
        shared { $($shared:ident => $s:expr;)* }
        inline { $($inline:ident => $i:expr;)* }
    ) => {
        $(
            pub(crate) struct $shared;

            impl<'r> utoipa::ToResponse<'r> for $shared {
                fn response() -> (&'r str, RefOr<Response>) {
                    (stringify!($shared), $s.build().into())
                }
            }
        )*
        $(
            pub(crate) struct $inline;

            impl<'r> utoipa::ToResponse<'r> for $inline {
                fn response() -> (&'r str, RefOr<Response>) {
                    (stringify!($inline), $i.build().into())
                }
            }
        )*

        pub(super) fn all() -> Vec<(&'static str, RefOr<Response>)> {
            vec![$(<$shared as utoipa::ToResponse>::response()),*]
        }
    };
}

responses! {
    shared {
        Ok => ResponseBuilder::new()
            .description("Done; empty body.")
            .header("ETag", headers::etag())
            .header("KVS-Revision", headers::revision());
        DeleteResult => ResponseBuilder::new()
            .description("Done (whether or not anything existed); empty body.")
            .header("Deleted", headers::deleted())
            .header("KVS-Revision", headers::revision());
        IntValue => value("The value, a decimal `i32`.", &[("text/plain", to("IntText"))]);
        UintValue => value("The value, a decimal `u32`.", &[("text/plain", to("UintText"))]);
        FloatValue => value(
            "The value, in the shortest text that parses back to the same `f32`.",
            &[("text/plain", to("FloatText"))],
        );
        StrValue => value("The text as stored.", &[("text/plain; charset=utf-8", to("Text"))]);
        MapValue => value("The map.", &[("application/json", to("StringMap"))]);
        SetValue => value("The members, sorted.", &[("application/json", to("StringSet"))]);
        AnyValue => value(
            "The value: `text/plain` for `int`, `uint`, `float` and `str` (`str` with `charset=utf-8`), `application/json` for `map` and `set`.",
            &[
                ("text/plain", string().into()),
                ("application/json", to("MapOrSet")),
            ],
        );
        BadRequest => problem("The request is malformed: the body does not parse as the route's type (text holding U+0000 included), the key is bad, or a query parameter is missing or bad. Nothing was changed.");
        NotFound => problem("The key (or map field, or set member) is absent.");
        UnknownType => problem("`{type}` is not one of the value types (`int`, `uint`, `float`, `str`, `map`, `set`).");
        Conflict => problem("The increment would overflow `i32`; the value is left unchanged.");
        PayloadTooLarge => problem("The body is over the size limit (`--max-body-bytes`, default 1 MiB), or the value would be over the value limits (`--max-value-bytes`, default 1 MiB of text; `--max-entries`, default 100000 fields or members). Nothing was changed.");
        ServiceUnavailable => retry("The server is still replaying its log at start-up, or the write could not be made durable (the log is unreachable); nothing was applied, so sending it again is safe. Try again after `Retry-After`.");
        OutcomeUnknown => problem("Outcome unknown: the write's batch was sent to the transaction log, and the server could not learn within `--outcome-timeout-ms` whether it became durable. It may or may not have been applied; if it was, the server applies it once the log is back. Read the key before retrying a write that is not idempotent (an increment). Unlike a 503, which applied nothing.")
            .header("KVS-Outcome", headers::outcome());
        Replaying => retry("The server is still replaying its log at start-up. Try again after `Retry-After`.");
        NotReady => retry("Not ready: the log is still being replayed, or it is unreachable.");
        Unauthorized => problem("Tokens are required and the request has none, or one the server does not accept.")
            .header("WWW-Authenticate", headers::www_authenticate("`Bearer realm=\"kvs\"`"));
        Forbidden => problem("The token is read-only and the request would write.")
            .header("WWW-Authenticate", headers::www_authenticate("`Bearer realm=\"kvs\", error=\"insufficient_scope\"`"));
        RequestTimeout => problem("The request was not done within the server's request timeout (`--request-timeout`, default 30 s), most often because its body came too slowly.");
        PreconditionFailed => problem_of(
            "A precondition did not hold; nothing changed. The problem's `revision` is the key's current revision (`null` when absent).",
            AllOfBuilder::new().item(to("Problem")).item(
                ObjectBuilder::new().property(
                    "revision",
                    ObjectBuilder::new().schema_type(SchemaType::from_iter([Type::Integer, Type::Null])),
                ),
            ),
        );
        NotModified => ResponseBuilder::new()
            .description("The key is still at the tag given in `If-None-Match`; no body.")
            .header("ETag", headers::etag())
            .header("KVS-Revision", headers::revision());
        HistoryGone => problem_of(
            "The changes after `since` are no longer kept in the server's history (`--watch-history`, `--watch-history-bytes`; after a restart, the history starts at the revision the replay ended at). `oldest` names the oldest revision a watch may start after: list the keys again, then watch from the listing's `KVS-Revision`.",
            AllOfBuilder::new().item(to("Problem")).item(
                ObjectBuilder::new().required("oldest").property(
                    "oldest",
                    integer()
                        .minimum(Some(0))
                        .description(Some("The oldest revision `since` may name.")),
                ),
            ),
        );
        WatchUnavailable => retry("The server is still replaying its log, has as many watchers as it may (`--max-watchers`, default 1024), or is shutting down. Try again after `Retry-After`.");
    }
    inline {
        Stored => ResponseBuilder::new()
            .description("Stored; empty body.")
            .header("ETag", headers::etag())
            .header("KVS-Revision", headers::revision())
            .header("KVS-Expires-At", headers::expires_at());
        MemberAdded => ResponseBuilder::new()
            .description("Done; empty body.")
            .header("Added", headers::added());
        IsMember => text("The member is in the set.", "text/plain", string().enum_values(Some(["true"])));
        KeyPage => text("The matching keys, sorted.", "application/json", to("KeyList"))
            .header("KVS-Last-Page", headers::last_page())
            .header("KVS-Next-After", headers::next_after())
            .header("KVS-Revision", headers::revision());
        TxnDone => ResponseBuilder::new()
            .description("The transaction ran: which list, at what revision, and a result per operation, in order.")
            .header("KVS-Revision", headers::txn_revision())
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(to("TxnAnswer")))
                    .example(Some(json!({
                        "succeeded": true,
                        "revision": 41,
                        "results": [{"revision": 41}, {"deleted": true}, {"absent": true}]
                    })))
                    .build(),
            );
        Fibonacci => text("F(n) in decimal.", "text/plain", string().pattern(Some("^[0-9]+$")));
        Healthy => text("The process serves HTTP.", "text/plain", string().enum_values(Some(["ok"])));
        Ready => text("The log has been replayed and is reachable.", "text/plain", string().enum_values(Some(["ready"])));
        Events => ResponseBuilder::new()
            .description("The stream of events; it lasts until the client leaves, the watcher falls behind, or the server shuts down.")
            .content(
                "text/event-stream",
                ContentBuilder::new()
                    .schema(Some(super::schemas::event()))
                    .example(Some(json!("id: 5\nevent: put\ndata: {\"key\":\"a\",\"revision\":5,\"type\":\"int\",\"value\":1}\n\n")))
                    .build(),
            );
    }
}

/// The shared answer that carries a value of type `ty`.
pub(crate) fn value_of(ty: ValueType) -> &'static str {
    match ty {
        ValueType::Int => "IntValue",
        ValueType::Uint => "UintValue",
        ValueType::Float => "FloatValue",
        ValueType::Str => "StrValue",
        ValueType::Map => "MapValue",
        ValueType::Set => "SetValue",
    }
}

fn refs(list: &[(&str, &str)]) -> BTreeMap<String, RefOr<Response>> {
    list.iter()
        .map(|(status, name)| ((*status).to_owned(), Ref::from_response_name(*name).into()))
        .collect()
}

/// The errors every write can answer besides its own.
pub(crate) struct WriteErrors;

impl IntoResponses for WriteErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        refs(&[
            ("401", "Unauthorized"),
            ("403", "Forbidden"),
            ("408", "RequestTimeout"),
            ("503", "ServiceUnavailable"),
            ("504", "OutcomeUnknown"),
        ])
    }
}

/// The errors every read of a key can answer besides its own.
pub(crate) struct ReadErrors;

impl IntoResponses for ReadErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        refs(&[
            ("400", "BadRequest"),
            ("401", "Unauthorized"),
            ("404", "NotFound"),
            ("408", "RequestTimeout"),
            ("503", "Replaying"),
        ])
    }
}
