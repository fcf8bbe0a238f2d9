//! A log that keeps nothing: for caches, where losing everything on restart
//! is fine, and for measuring the server without a disk.

use kvs_core::Txn;

use crate::{Log, LogError, ReplayStats};

#[derive(Debug, Default)]
pub struct MemoryLog;

impl Log for MemoryLog {
    async fn replay(
        &mut self,
        _visit: impl FnMut(Txn) + Send + 'static,
    ) -> Result<ReplayStats, LogError> {
        Ok(ReplayStats::default())
    }

    async fn append(&mut self, _batch: &[Txn]) -> Result<(), LogError> {
        Ok(())
    }

    async fn recover(&mut self) -> Result<(), LogError> {
        Ok(())
    }
}
