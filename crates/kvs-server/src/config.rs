//! Settings: every one a command-line flag and an environment variable.

use std::path::PathBuf;

use clap::Parser;

use crate::store::Durability;

/// The largest body limit: the file log refuses records over 64 MiB.
const MAX_BODY_LIMIT: usize = 64 << 20;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "kvs-server",
    version,
    about = "KVS: a typed key-value store over HTTP whose every write is logged before it is answered",
    after_help = "Every flag can also be set through the environment variable shown beside it.\n\
                  The API is served under /kvs/v1-0-0; its OpenAPI document is at /kvs/v1-0-0/openapi.json \
                  and a browsable page at /kvs/v1-0-0/docs."
)]
pub struct Config {
    /// Address to serve HTTP on (port 0 picks a free port).
    #[arg(long, env = "KVS_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,

    /// Directory of the embedded transaction log (the file `kvs.log` in it).
    #[arg(long, env = "KVS_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// When a write is answered: `sync` after its transaction is durable
    /// (fsynced; concurrent writes share one fsync), `async` at once, with the
    /// log written in the background through a bounded queue.
    #[arg(long, env = "KVS_DURABILITY", value_enum, default_value = "sync")]
    pub durability: Durability,

    /// Keep no log at all: every value is lost when the server stops. For
    /// caches and measurements.
    #[arg(long, env = "KVS_MEMORY_ONLY")]
    pub memory_only: bool,

    /// Largest request body accepted, in bytes; larger ones get 413.
    #[arg(long, env = "KVS_MAX_BODY_BYTES", default_value_t = 1 << 20,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=MAX_BODY_LIMIT as u64))]
    pub max_body_bytes: usize,

    /// Writes that may wait in the log queue; in `async` mode a full queue
    /// makes writers wait instead of growing memory.
    #[arg(long, env = "KVS_QUEUE_CAPACITY", default_value_t = 65_536,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1 << 24))]
    pub queue_capacity: usize,

    /// Compact the log file once it is larger than this many bytes and twice
    /// its size after the last compaction.
    #[arg(long, env = "KVS_COMPACT_MIN_BYTES", default_value_t = 64 << 20)]
    pub compact_min_bytes: u64,

    /// At start-up, cut the log at a corrupt record (dropping it and all
    /// after it) instead of refusing to start. Take a copy of the file first.
    #[arg(long, env = "KVS_TRUNCATE_CORRUPT")]
    pub truncate_corrupt: bool,

    /// Also log every successful read, as the original service did (an audit
    /// trail; replay skips these records).
    #[arg(long, env = "KVS_AUDIT_READS")]
    pub audit_reads: bool,

    /// What to log: a level (error, warn, info, debug, trace) or a tracing
    /// filter such as `info,kvs_server=debug`.
    #[arg(long, env = "KVS_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Log as human-readable text or as one JSON object per line.
    #[arg(long, env = "KVS_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: crate::telemetry::LogFormat,

    /// Seconds that in-flight requests get to finish at shutdown.
    #[arg(long, env = "KVS_SHUTDOWN_TIMEOUT", default_value_t = 10)]
    pub shutdown_timeout: u64,
}

impl Config {
    /// Where the embedded log lives.
    pub fn log_path(&self) -> PathBuf {
        self.data_dir.join("kvs.log")
    }
}
