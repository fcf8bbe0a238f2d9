//! kvs-server: a REST API over typed in-memory stores, with every write
//! recorded in a transaction log that is replayed at start-up.
//!
//! - [`startup`]: builds the service, replays the log, serves until told to stop.
//! - [`routes`]: where a request enters; one module per family of routes.
//! - [`store`]: where a value is stored ([`store::db`]) and where a write
//!   becomes durable ([`store::journal`]).
//! - [`listener`]: connections: TLS, the connection cap, draining.
//! - [`auth`]: bearer tokens, read-only and read-write.
//! - [`config`], [`metrics`], [`error`]: flags, counters and the API's
//!   error format.

pub mod auth;
pub mod config;
pub mod error;
pub mod listener;
pub mod metrics;
pub mod routes;
pub mod startup;
pub mod store;

pub use config::Config;
pub use startup::{Running, run, spawn, spawn_with};
