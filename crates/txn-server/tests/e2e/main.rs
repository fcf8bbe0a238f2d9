//! txn-server end to end: the real binaries as processes, a real
//! PostgreSQL, real certificates. One test binary, a module per feature.

mod auth;
mod binaries;
mod error_kinds;
mod expiry;
mod faults;
mod fence;
mod full_loop;
mod mtls;
mod outcome;
mod refused;
mod relay;
mod replay;
mod revisions;
mod stack;
mod streams;
mod tables;
mod token_lifetime;
mod transactions;
mod writers;
