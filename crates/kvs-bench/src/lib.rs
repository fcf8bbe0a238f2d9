//! kvs-bench: the load of KVS that wrk cannot express: mixed and zipfian
//! workloads over every value type, with latency percentiles of reads and
//! writes apart. Its library is also the soak test's load.
//!
//! - [`workload`]: what to send (operations, key space, distribution) and the
//!   deterministic per-connection request generator (rand and rand_distr
//!   beneath it).
//! - [`client`]: the load itself, one hyper HTTP/1.1 connection per task.
//! - [`stats`] and [`report`]: HDR histograms, counts, the table and JSON.
//! - [`cli`]: the command line.
//!
//! `examples/bare-axum.rs` is not KVS: it is the plain HTTP ceiling
//! scripts/bench.sh measures KVS's GET against (axum and a
//! `RwLock<HashMap>`, nothing else).

pub mod cli;
pub mod client;
pub mod report;
pub mod stats;
pub mod workload;
