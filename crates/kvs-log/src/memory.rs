//! A log that keeps nothing: for caches, where losing everything on restart
//! is fine, and for measuring the server without a disk.

use kvs_core::{Change, Key};

use crate::{
    Log, LogError, LogReader, NoLease, ReplayStats, ReplayStream, Window, WriterLog, WriterMark,
};

#[derive(Debug, Default, Clone, Copy)]
pub struct MemoryLog;

impl Log for MemoryLog {
    async fn replay(
        &mut self,
        _visit: impl FnMut(Change) + Send + 'static,
    ) -> Result<ReplayStats, LogError> {
        Ok(ReplayStats::default())
    }

    async fn append(&mut self, _batch: &[Change]) -> Result<(), LogError> {
        Ok(())
    }

    async fn recover(&mut self) -> Result<Vec<Change>, LogError> {
        Ok(Vec::new())
    }
}

impl WriterLog for MemoryLog {
    type Reader = MemoryLog;

    fn reader(&self) -> MemoryLog {
        MemoryLog
    }

    type Feed = Window;

    /// Keeps nothing for followers either: a window never filled.
    fn feed(&self) -> Window {
        Window::new(0)
    }

    type Lease = NoLease;

    fn lease(&self) -> NoLease {
        NoLease
    }

    async fn append_marked(
        &mut self,
        _batch: &[Change],
        _marks: &[WriterMark],
        epoch: u64,
    ) -> Result<(), LogError> {
        NoLease::fence(epoch)
    }

    async fn recover(&mut self) -> Result<(), LogError> {
        Ok(())
    }

    async fn writer_sequence(&mut self, _writer: &Key) -> Result<u64, LogError> {
        Ok(0)
    }
}

impl LogReader for MemoryLog {
    fn stream(&self) -> ReplayStream {
        ReplayStream::spawn(|_| async { Ok(ReplayStats::default()) })
    }
}
