//! kvs-server: a REST API over typed in-memory stores, with every write
//! recorded in a transaction log that is replayed at start-up.
//!
//! A request enters in `routes/`, its value is stored in `store/db.rs`,
//! `store/write.rs` changes the table and queues the write on the journal
//! (`store/journal.rs`), and `store/committer.rs` makes it durable (group
//! commit).
//!
//! - `startup.rs`: builds the service, replays the log, serves until told
//!   to stop.
//! - `routes/`: one module per family of routes. Each route is documented
//!   where it is registered, and the OpenAPI document is made from the
//!   routes at start-up; `routes/openapi/` holds the parts they share.
//! - `store/`: the tables, the write path, the journal and its committer,
//!   the limits, and the log kept by txn-server.
//! - `replica.rs`: standbys and followers: following txn-server's change
//!   stream, the write lease, and redirecting writes to the primary.
//! - `watch.rs`: watchers, `GET /watch`: the recent durable changes and
//!   the stream of events each watcher is sent.
//! - `listener.rs`: connections: TLS, the connection cap, draining.
//! - `auth.rs`: bearer tokens, read-only and read-write.
//! - `config.rs`, `metrics.rs`, `error.rs`: flags, counters and the API's
//!   error format.
//!
//! Outside the crate, only what the binary and embedding tests use is
//! public: [`Config`], and [`spawn`], [`spawn_with`] or [`run`].

mod auth;
mod config;
mod error;
mod listener;
mod metrics;
mod replica;
mod routes;
mod startup;
mod store;
mod watch;

pub use config::Config;
pub use startup::{Running, StartupError, run, spawn, spawn_with};
