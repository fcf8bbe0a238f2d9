//! kvs-server over real HTTP. One test binary, a module per feature.

mod access;
mod compat;
mod durability;
mod expiry;
mod helpers;
mod idle;
mod limits;
mod ops;
mod resource;
mod revisions;
mod txn;
mod watch;
