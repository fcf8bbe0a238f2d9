//! txn-server end to end: the real binaries as processes, a real
//! PostgreSQL, real certificates. One test binary, a module per feature.
//!
//! The processes are kvs-testkit's `stack::Stack`; the fake txn-server of
//! `replay` is its `fake_txn`. Besides the features:
//!
//! - `mix`: one value of each type, written and read back.
//! - `wire`: transactions and appends as they go to txn-server.
//! - `relay`: a TCP relay between kvs-server and txn-server that can hold
//!   back txn-server's answers.

mod auth;
mod binaries;
mod error_kinds;
mod expiry;
mod failover;
mod faults;
mod fence;
mod follow;
mod followers;
mod full_loop;
mod health;
mod lease;
mod mix;
mod mtls;
mod outcome;
mod refused;
mod relay;
mod replay;
mod revisions;
mod streams;
mod tables;
mod token_lifetime;
mod transactions;
mod wire;
mod writers;
