//! kvs-server over real HTTP. One test binary, a module per feature.

mod compat;
mod durability;
mod helpers;
mod ops;
mod resource;
