//! The parameters the routes take, in groups that routes share: each
//! group a type that a route's `params(...)` names.

use utoipa::IntoParams;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::{RefOr, Required};

use super::schemas::{integer, string, to};
use crate::routes::compat::MAX_FIBO;
use crate::routes::resource::{DEFAULT_LIMIT, MAX_LIMIT};
use crate::store::expiry::MAX_TTL_SECS;

fn param(
    name: &str,
    place: ParameterIn,
    schema: impl Into<RefOr<Schema>>,
    description: &str,
) -> Parameter {
    let required = if place == ParameterIn::Path {
        Required::True
    } else {
        Required::False
    };
    ParameterBuilder::new()
        .name(name)
        .parameter_in(place)
        .required(required)
        .schema(Some(schema))
        .description(Some(description))
        .build()
}

fn key() -> Parameter {
    param(
        "key",
        ParameterIn::Path,
        to("Key"),
        "The key: `[0-9A-Za-z_]+`, 1 to 256 bytes.",
    )
}

fn value_type() -> Parameter {
    param(
        "type",
        ParameterIn::Path,
        to("ValueType"),
        "The value type (and key namespace).",
    )
}

fn prefix() -> Parameter {
    param(
        "prefix",
        ParameterIn::Query,
        string().max_length(Some(256)).default(Some("".into())),
        "Only keys starting with this text (default: all keys).",
    )
}

fn if_match() -> Parameter {
    param(
        "If-Match",
        ParameterIn::Header,
        string(),
        "Apply only if the key's revision is one of these quoted tags (`\"41\"`), or with `*`, only if the key exists; otherwise 412 and nothing changes.",
    )
}

/// Declares each group of parameters as a type.
macro_rules! groups {
    ($($(#[$doc:meta])* $name:ident => [$($param:expr),* $(,)?];)*) => {
        $(
            $(#[$doc])*
            pub(crate) struct $name;

            impl IntoParams for $name {
                fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
                    vec![$($param),*]
                }
            }
        )*
    };
}

groups! {
    /// `{key}` alone.
    KeyPath => [key()];
    /// `/{type}/{key}`.
    TypeKeyPath => [value_type(), key()];
    /// `/map/{key}/{field}`.
    FieldPath => [
        key(),
        param(
            "field",
            ParameterIn::Path,
            string().min_length(Some(1)),
            "A map field name; percent-encode anything outside `[0-9A-Za-z_.~-]`.",
        ),
    ];
    /// `/set/{key}/{member}`.
    MemberPath => [
        key(),
        param(
            "member",
            ParameterIn::Path,
            string().min_length(Some(1)),
            "A set member; percent-encode anything outside `[0-9A-Za-z_.~-]`.",
        ),
    ];
    /// What a read of a key may be conditional on.
    ReadConditions => [
        param(
            "If-None-Match",
            ParameterIn::Header,
            string(),
            "Answer 304 without a body while the key's tag is one of these (weak comparison: `W/\"41\"` matches).",
        ),
        if_match(),
    ];
    /// What a write of a key may be conditional on.
    WriteConditions => [
        if_match(),
        param(
            "If-None-Match",
            ParameterIn::Header,
            string(),
            "`*`: apply only if the key is absent (create only); otherwise 412.",
        ),
    ];
    /// A put's expiry.
    Ttl => [param(
        "ttl",
        ParameterIn::Query,
        integer().minimum(Some(1)).maximum(Some(MAX_TTL_SECS)),
        "Seconds until the key expires; without it the key is permanent (a PUT takes a TTL away).",
    )];
    /// One page of a key listing.
    Listing => [
        value_type(),
        prefix(),
        param(
            "after",
            ParameterIn::Query,
            string().max_length(Some(256)),
            "Only keys greater than this one (for paging: the last key of the previous page).",
        ),
        param(
            "limit",
            ParameterIn::Query,
            integer()
                .minimum(Some(0))
                .maximum(Some(MAX_LIMIT as u64))
                .default(Some(DEFAULT_LIMIT.into())),
            &format!("At most this many keys (default {DEFAULT_LIMIT}, at most {MAX_LIMIT})."),
        ),
    ];
    /// Which changes a watch sends, and from where.
    WatchFilter => [
        param(
            "type",
            ParameterIn::Query,
            to("ValueType"),
            "Only changes of this value type (default: every type).",
        ),
        prefix(),
        param(
            "since",
            ParameterIn::Query,
            integer().minimum(Some(0)),
            "Send the changes of the revisions after this one (default: the store's current revision, so only new changes). One the server has not reached yet is waited for.",
        ),
        param(
            "Last-Event-ID",
            ParameterIn::Header,
            integer().minimum(Some(0)),
            "The id of the last event received, which EventSource sends when it reconnects: takes the place of `since`.",
        ),
    ];
    /// `/fibo?n=`.
    FiboN => [
        ParameterBuilder::from(param(
            "n",
            ParameterIn::Query,
            integer().minimum(Some(0)).maximum(Some(MAX_FIBO)),
            "Index of the Fibonacci number (F(0)=0, F(1)=1).",
        ))
        .required(Required::True)
        .build(),
    ];
}
