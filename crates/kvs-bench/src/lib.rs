//! kvs-bench: the load generator and measurements of KVS.
//!
//! - [`workload`]: what to send (operations, key space, distribution) and the
//!   deterministic per-connection request generator (rand and rand_distr
//!   beneath it).
//! - [`client`]: the load itself, one hyper HTTP/1.1 connection per task.
//! - [`stats`] and [`report`]: HDR histograms, counts, the table and JSON.
//! - [`replay`] and [`memory`]: start-up time on a filled log, and resident
//!   memory of a filled server, each on a kvs-server child ([`server`]).
//! - [`cli`]: the command line.

pub mod cli;
pub mod client;
pub mod memory;
pub mod replay;
pub mod report;
pub mod server;
pub mod stats;
pub mod workload;

pub use client::{BenchConfig, BenchError, Limit, RunResult, Target};
pub use report::Report;
pub use workload::{KeyDist, ValueKind, WorkloadKind, WorkloadSpec};
