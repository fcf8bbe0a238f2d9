//! The response headers the routes answer.

use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat};

use super::Json;
use super::schemas::{integer, string};

fn header(description: &str, schema: ObjectBuilder) -> Header {
    HeaderBuilder::new()
        .description(Some(description))
        .schema(schema)
        .build()
}

pub(super) fn etag() -> Header {
    header(
        "The key's revision: that of its last change, quoted (`\"41\"`). Send it back in `If-Match` to compare and set, or `If-None-Match` to revalidate.",
        string().pattern(Some("^\"[0-9]+\"$")),
    )
}

pub(super) fn revision() -> Header {
    header(
        "The store's revision this answer reflects: a write's own, or the durable revision a read was served at.",
        integer().minimum(Some(0)),
    )
}

pub(super) fn txn_revision() -> Header {
    header(
        "The transaction's revision (the store's, if it changed nothing).",
        integer().minimum(Some(0)),
    )
}

pub(super) fn create_revision() -> Header {
    header(
        "The revision at which the key was created: its last change that found it absent.",
        integer().minimum(Some(0)),
    )
}

pub(super) fn expires_at() -> Header {
    header(
        "When the key expires (RFC 3339, UTC, milliseconds), present only for a key with a TTL.",
        string().format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
    )
}

pub(super) fn deleted() -> Header {
    header(
        "`true`, present only when something was removed.",
        string().enum_values(Some(["true"])),
    )
}

pub(super) fn added() -> Header {
    header(
        "`true`, present only when the member was not in the set before.",
        string().enum_values(Some(["true"])),
    )
}

pub(super) fn retry_after() -> Header {
    header(
        "Seconds to wait before trying again.",
        integer().minimum(Some(0)),
    )
}

pub(super) fn outcome() -> Header {
    header(
        "`unknown`: the write may or may not have been applied.",
        string().enum_values(Some(["unknown"])),
    )
}

pub(super) fn last_page() -> Header {
    header(
        "`true` on the last page of a listing; `false` when more keys follow.",
        string().enum_values(Some(["true", "false"])),
    )
}

pub(super) fn next_after() -> Header {
    header(
        "On a page that is not the last: the `after` of the next page.",
        string(),
    )
}

pub(super) fn www_authenticate(description: &str) -> Header {
    header(description, string())
}

/// The headers that every answer listing them carries.
const REQUIRED: [&str; 3] = ["Retry-After", "KVS-Outcome", "KVS-Last-Page"];

/// Marks the [`REQUIRED`] headers of every answer in the document as
/// required: utoipa's `Header` has no `required`, so it is set on the
/// document's JSON.
pub(super) fn mark_required(document: &mut Json) {
    match document {
        Json::Object(object) => {
            for (name, value) in object.iter_mut() {
                match (name.as_str(), value) {
                    ("headers", Json::Object(headers)) => {
                        for name in REQUIRED {
                            if let Some(Json::Object(header)) = headers.get_mut(name) {
                                header.insert("required".to_owned(), Json::Other(true.into()));
                            }
                        }
                    }
                    (_, value) => mark_required(value),
                }
            }
        }
        Json::Array(items) => items.iter_mut().for_each(mark_required),
        Json::Other(_) => {}
    }
}
