//! The KVS transaction log: where a write becomes durable.
//!
//! - [`Log`]: what every backend offers (replay, append, recover).
//! - [`codec`]: the checksummed binary record of one transaction.
//! - [`file`]: the append-only file backend, with torn-tail handling and
//!   background compaction.
//! - [`memory`]: a backend that keeps nothing, for caches and tests.

pub mod codec;
pub mod file;
pub mod memory;

use std::future::Future;

use kvs_core::Txn;

pub use file::{FileLog, FileOptions};
pub use memory::MemoryLog;

/// What a replay went through.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayStats {
    /// Transactions handed to the caller.
    pub records: u64,
    /// Bytes of the log read.
    pub bytes: u64,
    /// Bytes of a torn last record dropped (a crash in the middle of a write).
    pub torn_bytes: u64,
    /// Bytes dropped at a corrupt record, when asked to truncate there.
    pub corrupt_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("log {path} is corrupt at byte offset {offset}: {reason}")]
    Corrupt {
        path: String,
        offset: u64,
        reason: String,
    },
    #[error("transaction too large for the log: {0} bytes")]
    TooLarge(usize),
    #[error("transaction log unavailable: {0}")]
    Unavailable(String),
}

impl LogError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> LogError {
        let context = context.into();
        move |source| LogError::Io { context, source }
    }
}

/// A durable, ordered record of transactions.
///
/// Callers hand it batches: one durable write per batch is how many
/// concurrent requests share one fsync or one COMMIT.
pub trait Log: Send + 'static {
    /// Feeds every live transaction to `visit`, in the order it must be
    /// applied. Called once at start-up, before the first append.
    fn replay(
        &mut self,
        visit: impl FnMut(Txn) + Send + 'static,
    ) -> impl Future<Output = Result<ReplayStats, LogError>> + Send;

    /// Makes `batch` durable, in order; on `Ok` every transaction in it
    /// survives a crash.
    fn append(&mut self, batch: &[Txn]) -> impl Future<Output = Result<(), LogError>> + Send;

    /// After a failed append, brings the log back to its last durable state
    /// so that it holds no part of the failed batch.
    fn recover(&mut self) -> impl Future<Output = Result<(), LogError>> + Send;
}
