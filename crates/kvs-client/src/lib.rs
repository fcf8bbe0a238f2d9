//! An async Rust client for KVS, the typed key-value store served over
//! HTTP: one typed method per operation of its REST API (`docs/api.md`).
//!
//! ```no_run
//! use kvs_client::{Client, MapValue, ValueType};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), kvs_client::Error> {
//!     // The server's root; the client adds the base path /kvs/v1-0-0.
//!     let kvs = Client::new("http://127.0.0.1:8080")?;
//!
//!     kvs.int_put("counter", 5).await?;
//!     assert_eq!(kvs.int_incr("counter", 1).await?, 6); // the value after
//!     assert_eq!(kvs.int_get("counter").await?, Some(6));
//!     assert_eq!(kvs.int_get("missing").await?, None); // absent is None
//!
//!     let user = MapValue::from([("name".to_owned(), "ada".to_owned())]);
//!     kvs.map_put("user", &user).await?;
//!     kvs.map_field_put("user", "lang", "fr").await?;
//!     assert_eq!(kvs.map_field_get("user", "lang").await?.as_deref(), Some("fr"));
//!
//!     assert!(kvs.set_add("tags", "a").await?); // newly added
//!     assert!(kvs.set_contains("tags", "a").await?);
//!
//!     let keys = kvs.keys(ValueType::Int, Some("count"), None, Some(10)).await?;
//!     assert_eq!(keys, ["counter"]);
//!     assert!(kvs.int_delete("counter").await?); // it existed
//!
//!     // Errors keep the HTTP status and the server's sentence.
//!     kvs.int_put("top", i32::MAX).await?;
//!     let err = kvs.int_incr("top", 1).await.unwrap_err();
//!     assert!(err.is_conflict(), "{err}");
//!     Ok(())
//! }
//! ```
//!
//! # Types
//!
//! | API type | Rust type |
//! |---|---|
//! | `int` | `i32` |
//! | `uint` | `u32` |
//! | `float` | `f32` (finite; NaN and infinities are refused before sending) |
//! | `str` | `String` (any UTF-8, the empty string included) |
//! | `map` | [`MapValue`] = `BTreeMap<String, String>`: sorted, like the server's answers |
//! | `set` | [`SetValue`] = `BTreeSet<String>` |
//!
//! The wire formats are the domain crate's ([`Value::render`] and
//! [`Value::parse`]), the same code the server uses, so the two cannot
//! disagree. Keys are checked with [`Key::parse`] before any request.
//!
//! # Revisions and conditional writes
//!
//! Every change to the store gets the next revision of one store-wide
//! counter. [`Client::get_revised`] reads a value with the revision of its
//! last change (and, for a key with a TTL, when it expires); the `_if`
//! writes ([`Client::put_if`], [`Client::delete_if`],
//! [`Client::map_field_put_if`], [`Client::map_field_delete_if`],
//! [`Client::set_add_if`], [`Client::set_remove_if`]) apply only if their
//! [`Precondition`] holds, and otherwise fail with
//! [`Error::PreconditionFailed`], which names the key's current revision:
//!
//! ```no_run
//! # async fn run(kvs: kvs_client::Client) -> Result<(), kvs_client::Error> {
//! use kvs_client::{Error, Precondition, Value, ValueType};
//!
//! // Create only: fails if the key exists.
//! kvs.put_if("balance", &Value::Int(100), Precondition::Absent).await?;
//! // Compare-and-set: read, compute, write only if nobody wrote meanwhile.
//! loop {
//!     let read = kvs.get_revised(ValueType::Int, "balance").await?.expect("created");
//!     let Value::Int(n) = read.value else { unreachable!() };
//!     let next = Value::Int(n - 10);
//!     match kvs.put_if("balance", &next, Precondition::Revision(read.revision)).await {
//!         Ok(_new_revision) => break,
//!         Err(Error::PreconditionFailed { .. }) => continue, // someone else wrote: again
//!         Err(e) => return Err(e),
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Listing, expiry, transactions, watch
//!
//! - [`Client::keys_page`] reads one page of keys and says whether another
//!   follows and where ([`Page`]); [`Client::all_keys`] reads every page.
//! - [`Client::put_with_ttl`] stores a key that disappears after a whole
//!   number of seconds; [`Client::put_with`] takes a TTL and a condition
//!   together ([`PutOptions`]).
//! - [`Client::txn`] builds a multi-key transaction ([`Txn`]): compares
//!   ([`Compare`]), then its `success` or `failure` operations
//!   ([`TxnOp`]), atomically, at one revision ([`TxnOutcome`]).
//! - [`Client::watch`] streams the changes that match a [`WatchFilter`],
//!   one [`Event`] per revision, and resumes by itself after a dropped
//!   connection, with no gap and no duplicate; a revision older than the
//!   server's history ends it with [`Error::Compacted`].
//!
//! # Errors
//!
//! Every method returns [`Error`]: a client-side refusal
//! ([`Error::InvalidKey`], [`Error::InvalidValue`], [`Error::InvalidArgument`]),
//! a failed exchange ([`Error::Transport`], timeouts and TLS failures
//! ([`Error::is_tls`]) included), an error
//! answer ([`Error::Status`], classified by [`Error::is_bad_request`],
//! [`Error::is_unauthorized`], [`Error::is_forbidden`],
//! [`Error::is_conflict`], [`Error::is_payload_too_large`],
//! [`Error::is_unavailable`] with [`Error::retry_after`], ...), a
//! condition that did not hold ([`Error::PreconditionFailed`]), a watch
//! from before the server's history ([`Error::Compacted`]), a write
//! whose outcome the server could not learn ([`Error::OutcomeUnknown`]), or
//! an answer that does not parse ([`Error::Decode`]). An absent key, map
//! field or set member is not an error: getters return `None`,
//! `set_contains` `false`, deletes `false`.
//!
//! The client never retries. A 503 ([`Error::is_unavailable`]) applied
//! nothing and may be retried as it is; after [`Error::OutcomeUnknown`]
//! the write may have been applied, so read the key before retrying one
//! that is not idempotent, such as an increment.
//!
//! # Tokens and TLS
//!
//! A server started with `--http-tls-cert` and `--http-tls-key` serves
//! HTTPS; one started with `--auth-tokens` or `--auth-tokens-file` wants
//! `Authorization: Bearer TOKEN` on everything but `healthz`. Give the
//! client the CA that signed the server's certificate and a token:
//!
//! ```no_run
//! # async fn run() -> Result<(), kvs_client::Error> {
//! let kvs = kvs_client::Client::builder()
//!     .base_url("https://kvs.internal:8080")
//!     .ca_file("certs/ca.crt") // without it: the public CAs Mozilla includes
//!     .token("s3cr3t")
//!     .build()?; // a CA file that cannot be read fails here
//!
//! match kvs.int_put("counter", 1).await {
//!     Ok(()) => {}
//!     Err(e) if e.is_unauthorized() => eprintln!("401: no token, or an unknown one"),
//!     Err(e) if e.is_forbidden() => eprintln!("403: a read-only token cannot write"),
//!     Err(e) if e.is_tls() => eprintln!("the server's certificate does not verify"),
//!     Err(e) => return Err(e),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! TLS is rustls with the ring provider; the client brings its own
//! configuration and needs no process-wide crypto provider.
//!
//! # Followers, redirects and reading your own writes
//!
//! A kvs-server started as a follower serves reads, listings and watches
//! from what the primary has made durable, and answers every write
//! `307 Temporary Redirect` to the primary. The client follows 307 and 308
//! by itself, with the same method, body and headers, up to
//! [`MAX_REDIRECTS`] times ([`Error::TooManyRedirects`] past that), and
//! nothing else: reqwest's own redirects are off. The token goes along,
//! since a follower and its primary are hosts of one service, but never
//! from `https` down to `http` (see [`ClientBuilder::token`]).
//!
//! A follower is a moment behind the primary, so a read sent to it right
//! after a write may not see the write yet. With
//! [`ClientBuilder::read_your_writes`], the client sends the revision of
//! its last write with its reads (`KVS-Min-Revision`), and the follower
//! answers only once it has applied it, or 503 with `Retry-After`
//! ([`Error::is_unavailable`]):
//!
//! ```no_run
//! # async fn run() -> Result<(), kvs_client::Error> {
//! let kvs = kvs_client::Client::builder()
//!     .base_url("http://kvs-follower:8080")
//!     .read_your_writes(true)
//!     .build()?;
//! kvs.int_put("counter", 5).await?; // redirected to the primary
//! assert_eq!(kvs.int_get("counter").await?, Some(5)); // the follower, once it has it
//! # Ok(())
//! # }
//! ```
//!
//! The client needs a Tokio runtime, as reqwest does.

mod builder;
mod client;
mod error;
mod redirect;
mod revision;
mod session;
mod txn;
mod watch;

pub use builder::{ClientBuilder, DEFAULT_BASE_URL, DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT};
pub use client::{Client, Page};
pub use error::{Error, Result};
pub use kvs_core::value::{MapValue, SetValue};
pub use kvs_core::{Key, KeyError, Value, ValueError, ValueType};
pub use redirect::MAX_REDIRECTS;
pub use revision::{Precondition, PutOptions, Revised, Written};
pub use txn::{Compare, Txn, TxnOp, TxnOutcome, TxnResult};
pub use watch::{Change, Event, WATCH_IDLE_TIMEOUT, WatchFilter};

/// The path every route is under: service `kvs`, API version `v1.0.0`.
pub const BASE_PATH: &str = "/kvs/v1-0-0";
