//! The OpenAPI document. Each route is documented where it is registered
//! (`#[utoipa::path]` on its handler, collected by `routes!`), so a route
//! cannot be served without being described; this module holds what the
//! routes share and what the document says of the whole API.
//!
//! - [`schemas`]: values, keys, problems and transactions.
//! - [`responses`]: problems, values and what a write answers.
//! - [`bodies`]: what a put of a whole value sends, by type.
//! - [`params`]: path, query and header parameters, in shared groups.
//! - [`headers`]: the response headers.

pub(crate) mod bodies;
pub(crate) mod headers;
pub(crate) mod params;
pub(crate) mod responses;
pub(crate) mod schemas;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use utoipa::openapi::info::InfoBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::server::ServerBuilder;
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{ComponentsBuilder, OpenApi, OpenApiBuilder};

use super::BASE_PATH;

/// The document's tags, in the order the docs page shows them.
const TAGS: [(&str, &str); 8] = [
    ("values", "Resource routes: `/{type}/{key}`."),
    ("maps", "One field of a map."),
    ("sets", "One member of a set."),
    ("keys", "Listing keys."),
    ("transactions", "Several keys at once, atomically."),
    ("compatibility", "The original service's routes, unchanged."),
    (
        "operations",
        "Health, readiness, metrics and documentation.",
    ),
    (
        "watch",
        "Changes as they become durable, as Server-Sent Events.",
    ),
];

/// Takes [`BASE_PATH`] out of the paths the routes added, which are their
/// full paths: a path of the document is relative to its server's URL.
pub(super) fn below_base(document: &mut OpenApi) {
    let paths = std::mem::take(&mut document.paths.paths);
    document.paths.paths = paths
        .into_iter()
        .map(|(path, item)| {
            (
                path.strip_prefix(BASE_PATH).unwrap_or(&path).to_owned(),
                item,
            )
        })
        .collect();
}

/// What the document says besides its paths, which the routes add.
pub(super) fn base() -> OpenApi {
    let info = InfoBuilder::new()
        .title("KVS")
        .version(super::API_VERSION.trim_start_matches('v'))
        .description(Some("Keys match `[0-9A-Za-z_]+` and are 1 to 256 bytes long. Each value type (`int`, `uint`, `float`, `str`, `map`, `set`) is its own namespace. Errors answer `application/problem+json`; a client error never changes stored state. Every DELETE answers 200, with `Deleted: true` only when something was removed. Every route except the operations routes answers 503 with `Retry-After` while the server replays its log at start-up. Every data route takes a `KVS-Min-Revision` request header: the request waits until the server has reached that revision (at most `--min-revision-wait-ms`), else it is answered 503 with `Retry-After`; a client reads its own writes on a follower by sending the `KVS-Revision` its write was answered with. A node that follows the log (`--role follower`, or a standby that is not the primary) answers every data request that is not a GET, HEAD or OPTIONS with 307 and `Location` the same path and query on the primary, or 503 with `Retry-After` while no node holds the write lease."))
        // OpenAPI 3.1's `summary`, which utoipa's Info lacks.
        .extensions(Some(
            [("summary", "A key-value service with a durable transaction log.")]
                .into_iter()
                .collect(),
        ))
        .build();
    let bearer = HttpBuilder::new()
        .scheme(HttpAuthScheme::Bearer)
        .description(Some("Off unless the server is started with `--auth-tokens-file` or `--auth-tokens`. A read-write token may do everything; a read-only token may only GET. `GET /healthz` never needs a token."))
        .build();
    let mut components = ComponentsBuilder::new()
        .schemas_from_iter(schemas::all())
        .security_scheme("bearerAuth", SecurityScheme::Http(bearer));
    for (name, response) in responses::all() {
        components = components.response(name, response);
    }
    OpenApiBuilder::new()
        .info(info)
        .servers(Some([ServerBuilder::new()
            .url(BASE_PATH)
            .description(Some("This server"))
            .build()]))
        // Open by default; with tokens, a bearer token.
        .security(Some([
            SecurityRequirement::default(),
            SecurityRequirement::new("bearerAuth", Vec::<String>::new()),
        ]))
        .tags(Some(TAGS.map(|(name, description)| {
            TagBuilder::new()
                .name(name)
                .description(Some(description))
                .build()
        })))
        .components(Some(components.build()))
        .build()
}

/// The document as it is served: JSON text, in the order utoipa writes it
/// (paths and operations in the order of the routes), its required
/// headers marked.
pub(super) fn to_json(document: &OpenApi) -> Vec<u8> {
    let text = serde_json::to_string(document).expect("an OpenAPI document is JSON");
    let mut json: Json = serde_json::from_str(&text).expect("JSON parses");
    headers::mark_required(&mut json);
    serde_json::to_vec_pretty(&json).expect("JSON serializes")
}

/// JSON that keeps the order of objects' members, which
/// `serde_json::Value` sorts.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Json {
    Object(IndexMap<String, Json>),
    Array(Vec<Json>),
    Other(serde_json::Value),
}
