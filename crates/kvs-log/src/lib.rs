//! The KVS transaction log: where a write becomes durable.
//!
//! The log has two kinds of callers, and a trait for each:
//!
//! - [`Log`]: what kvs-server's journal uses. It replays the log at
//!   start-up, appends batches and recovers after a failed append; a
//!   kvs-server is the log's only writer, so it needs no writer marks.
//!   The file and memory backends implement it, and so does kvs-server's
//!   remote log (a txn-server).
//! - [`WriterLog`]: what txn-server's backends offer its committer and its
//!   service. Many writers share the log, so each batch goes with their
//!   [`WriterMark`]s, which tell a resent batch from a new one; the log
//!   answers a writer's durable sequence, forgets idle writers, and hands
//!   out a [`LogReader`] that streams it to clients while appends go on,
//!   and a [`ChangeFeed`] that reads its latest changes by revision for
//!   followers. The file, PostgreSQL and memory backends implement it.
//!
//! The modules:
//!
//! - [`codec`]: the checksummed binary records of the file backend.
//! - [`file`]: the append-only file backend, with torn-tail handling and
//!   background compaction.
//! - [`follow`]: the changes after a revision and the wake-up on new ones,
//!   as followers read them; the in-memory window of the file backend.
//! - `live`: the live set compaction writes in place of the history.
//! - [`memory`]: a backend that keeps nothing, for caches and tests.
//! - [`stream`]: a log read by a task of its own, and how that read ended.
//! - `postgres` (feature `postgres`): the original service's per-type tables.

pub mod codec;
pub mod file;
pub mod follow;
mod live;
pub mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod stream;

use std::future::Future;
use std::time::Duration;

use kvs_core::{Change, Key};

pub use file::{FileLog, FileOptions, FileReader};
pub use follow::{ChangeFeed, FollowError, Page, Window};
pub use memory::MemoryLog;
pub use stream::{Chunks, ReplayStream};

/// What a replay went through.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayStats {
    /// Transactions handed to the caller.
    pub records: u64,
    /// The highest revision the log has given, whether or not a record of
    /// it is left (a delete compacted away leaves none): where the store's
    /// revisions go on after the replay.
    pub head: u64,
    /// Every change after this revision is in the replay as it happened,
    /// none folded away (a compaction folds what came before it): where a
    /// watcher may resume from after a restart. A log that keeps no
    /// history gives its head.
    pub history_from: u64,
    /// Bytes of the log read.
    pub bytes: u64,
    /// Bytes of a torn last record dropped (a crash in the middle of a write).
    pub torn_bytes: u64,
    /// Bytes dropped at a corrupt record, when asked to truncate there.
    pub corrupt_bytes: u64,
    /// Records left out because they cannot be replayed (a PostgreSQL row
    /// whose value the original service never wrote, say); each is named in
    /// the log of whoever skipped it.
    pub skipped: u64,
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
    #[error("row {id} of table {table} cannot be replayed: {reason}")]
    BadRow {
        table: String,
        id: i64,
        reason: String,
    },
    /// A table as a whole cannot be read (a column KVS needs has another
    /// type than KVS reads).
    #[error("table {table} cannot be replayed: {reason}")]
    BadTable { table: String, reason: String },
    #[error("transaction too large for the log: {0} bytes")]
    TooLarge(usize),
    /// The log cannot be reached now; the text says where and why (those
    /// who show it say "unavailable" once, in their own words).
    #[error("{0}")]
    Unavailable(String),
    /// The log holds what cannot be read, as a remote log reports it.
    #[error("{0}")]
    DataLoss(String),
    /// The log is set up wrong: its address, its credentials, its schema.
    #[error("{0}")]
    Misconfigured(String),
    /// A transaction the log does not take, as a remote log reports it.
    #[error("{0}")]
    Refused(String),
    /// An append whose epoch is not the write lease's current one (see
    /// [`LogLease`]): another writer holds the lease. The text starts
    /// with "fenced:".
    #[error("{0}")]
    Fenced(String),
    /// A bug: the log refused what KVS should never have asked of it.
    #[error("{0}")]
    Internal(String),
}

/// What kind of failure a [`LogError`] is: whether trying again can help,
/// and if not, what must change first. It is what crosses the gRPC boundary
/// between kvs-server and txn-server, as the status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Passes by itself (the log unreachable, restarting, out of space):
    /// try again.
    Unavailable,
    /// The log is damaged; an operator must repair it.
    DataLoss,
    /// The log is set up wrong; an operator must fix the setting.
    Misconfigured,
    /// The batch is not in the log and never will be; the log is fine.
    Refused,
    /// The batch is not in the log and never will be: its writer's epoch
    /// is not the write lease's current one, so another writer holds it.
    Fenced,
    /// A bug in KVS.
    Internal,
}

impl LogError {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> LogError {
        let context = context.into();
        move |source| LogError::Io { context, source }
    }

    /// An error of `kind` that says `message`: how a kind is told to more
    /// than one waiter, or arrives from a remote log.
    pub fn new(kind: ErrorKind, message: String) -> LogError {
        match kind {
            ErrorKind::Unavailable => LogError::Unavailable(message),
            ErrorKind::DataLoss => LogError::DataLoss(message),
            ErrorKind::Misconfigured => LogError::Misconfigured(message),
            ErrorKind::Refused => LogError::Refused(message),
            ErrorKind::Fenced => LogError::Fenced(message),
            ErrorKind::Internal => LogError::Internal(message),
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            // A full disk, a lost file handle: the file log's recovery
            // retries them.
            LogError::Io { .. } | LogError::Unavailable(_) => ErrorKind::Unavailable,
            LogError::Corrupt { .. }
            | LogError::BadRow { .. }
            | LogError::BadTable { .. }
            | LogError::DataLoss(_) => ErrorKind::DataLoss,
            LogError::Misconfigured(_) => ErrorKind::Misconfigured,
            LogError::TooLarge(_) | LogError::Refused(_) => ErrorKind::Refused,
            LogError::Fenced(_) => ErrorKind::Fenced,
            LogError::Internal(_) => ErrorKind::Internal,
        }
    }

    /// Whether trying the same again later may succeed.
    pub fn is_temporary(&self) -> bool {
        self.kind() == ErrorKind::Unavailable
    }
}

/// A writer's progress: every batch it sent up to `sequence` is durable.
/// Stored with the batches themselves, so that a batch resent after a lost
/// answer is recognised and not applied twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterMark {
    pub writer: Key,
    pub sequence: u64,
}

/// A durable, ordered record of transactions, as kvs-server's journal
/// uses it.
///
/// Callers hand it batches: one durable write per batch is how many
/// concurrent requests share one fsync or one network round trip.
pub trait Log: Send + 'static {
    /// Feeds every live transaction to `visit`, in the order it must be
    /// applied, each with its revision (given by [`kvs_core::Revisions`]
    /// when logged without one). Called once at start-up, before the first
    /// append.
    fn replay(
        &mut self,
        visit: impl FnMut(Change) + Send + 'static,
    ) -> impl Future<Output = Result<ReplayStats, LogError>> + Send;

    /// Makes `batch` durable, in order; on `Ok` all of it survives a crash.
    /// The transactions of one revision are kept whole: after a crash the
    /// log holds all of them or none.
    fn append(&mut self, batch: &[Change]) -> impl Future<Output = Result<(), LogError>> + Send;

    /// After a failed append, brings the log back to a known state. Returns
    /// the transactions of the failed batch that turned out to be durable
    /// after all (an answer lost on the way back): the caller must apply
    /// them. Every other transaction of the failed batch is not in the log.
    fn recover(&mut self) -> impl Future<Output = Result<Vec<Change>, LogError>> + Send;
}

/// A durable, ordered record of transactions shared by many writers, as
/// txn-server's committer and service use it.
///
/// Callers hand it batches (one COMMIT or one fsync each), each with the
/// marks of the writers whose batches it holds, so that a resent batch is
/// recognised.
pub trait WriterLog: Send + 'static {
    /// What streams the log to a client (txn-server's `ReadTransactions`).
    type Reader: LogReader;

    /// A handle that streams the log while appends go on.
    fn reader(&self) -> Self::Reader;

    /// What followers read the latest changes from (txn-server's `Follow`).
    type Feed: ChangeFeed;

    /// A handle that reads the log's latest changes while appends go on.
    fn feed(&self) -> Self::Feed;

    /// What txn-server's `Lease` asks of the write lease.
    type Lease: LogLease;

    /// A handle on the write lease that never waits behind an append.
    fn lease(&self) -> Self::Lease;

    /// Makes `batch` durable, in order, together with `marks`, if `epoch`
    /// is the write lease's current one (0: the writer holds no lease,
    /// taken while nobody holds one); [`LogError::Fenced`] otherwise, with
    /// nothing of the batch logged. On `Ok` all of it survives a crash,
    /// and after a crash each revision's transactions are there whole or
    /// not at all.
    fn append_marked(
        &mut self,
        batch: &[Change],
        marks: &[WriterMark],
        epoch: u64,
    ) -> impl Future<Output = Result<(), LogError>> + Send;

    /// After a failed append, brings the log back to a known state. Whether
    /// the failed batch is durable after all, its writers learn from their
    /// marks ([`WriterLog::writer_sequence`]).
    fn recover(&mut self) -> impl Future<Output = Result<(), LogError>> + Send;

    /// The durable sequence of `writer` (0 for one never seen).
    fn writer_sequence(
        &mut self,
        writer: &Key,
    ) -> impl Future<Output = Result<u64, LogError>> + Send;

    /// Forgets the marks of writers that have logged nothing for `idle`, and
    /// returns how many. A writer forgotten is one never seen again: a batch
    /// it sends later is taken only as its first (see txn-server's
    /// committer). Backends that cannot tell a mark's age keep every mark.
    fn forget_writers(
        &mut self,
        idle: Duration,
    ) -> impl Future<Output = Result<u64, LogError>> + Send {
        let _ = idle;
        async { Ok(0) }
    }
}

/// What a writer asks of the write lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseAsk {
    /// Who asks.
    pub holder: Key,
    /// Where the asker takes writes.
    pub url: String,
    /// The epoch the asker holds the lease at; 0: none.
    pub epoch: u64,
    /// Renew the lease if the asker holds it at `epoch`, or take it at the
    /// next epoch if it lapsed (or was never taken); false: only read it.
    pub take: bool,
    /// How long a lease taken or renewed lasts, by the log's clock.
    pub ttl: Duration,
}

/// The write lease as a [`LeaseAsk`] left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseState {
    /// Empty, with epoch 0, if never taken.
    pub holder: String,
    pub url: String,
    pub epoch: u64,
    /// What the lease has left, by the log's clock; zero once it lapsed.
    pub remaining: Duration,
    /// Whether the asker holds it, at the epoch it asked with or was just
    /// given.
    pub held: bool,
}

/// The write lease of a [`WriterLog`]: the right to append with an epoch,
/// held by one writer at a time. Each change of holder raises the epoch,
/// and the log refuses appends of any other epoch.
pub trait LogLease: Send + Sync + 'static {
    fn ask(&self, ask: LeaseAsk) -> impl Future<Output = Result<LeaseState, LogError>> + Send;
}

/// The lease of a backend that has none: every ask is refused, and the
/// backend takes appends of epoch 0 only.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoLease;

impl NoLease {
    /// What such a backend answers an append of `epoch`.
    pub fn fence(epoch: u64) -> Result<(), LogError> {
        if epoch == 0 {
            return Ok(());
        }
        Err(LogError::Fenced(format!(
            "fenced: epoch {epoch}, where this backend has no lease and takes epoch 0 only"
        )))
    }
}

impl LogLease for NoLease {
    async fn ask(&self, _ask: LeaseAsk) -> Result<LeaseState, LogError> {
        Err(LogError::Misconfigured(
            "the lease needs the PostgreSQL backend".into(),
        ))
    }
}

/// Streams a [`WriterLog`] as it is when asked.
pub trait LogReader: Send + Sync + 'static {
    /// Every live transaction, in order, read by a task of its own; the
    /// stream's end says whether the whole log was read.
    fn stream(&self) -> ReplayStream;
}
