//! The journal: the queue from writers to the committer, the gate between
//! them, and the state that decides whether a write is taken.
//!
//! Writers queue their transactions on a channel while they still hold their
//! shard's lock ([`super::write`]); one committer task makes them durable
//! ([`super::committer`]). The state is read on every write, so it is an
//! atomic, never a lock.
//!
//! The journal also keeps the store's revisions: the highest given (a
//! writer takes the next one and queues under one short lock, so the queue
//! holds revisions in order) and the highest durable, which reads wait for
//! ([`super::read`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use kvs_core::{Change, Txn};
use parking_lot::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use tokio::sync::{Notify, mpsc, oneshot, watch};

use crate::metrics::Metrics;

/// When a write is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Durability {
    /// After its transaction is durable.
    Sync,
    /// At once; the transaction is logged in the background.
    Async,
}

/// Why a write was not accepted.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum JournalError {
    #[error("the server is still replaying its transaction log")]
    Replaying,
    /// The write was not applied, and is not in the log.
    #[error("the transaction log is unavailable: {0}")]
    Unavailable(String),
    /// The write's batch may or may not be in the log; if it is, the server
    /// applies it once the log is back.
    #[error(
        "the transaction log did not tell whether the write is durable ({0}); it may have been applied: read the key before retrying"
    )]
    OutcomeUnknown(String),
    #[error("the server is shutting down")]
    Closed,
    #[error(
        "the committer stopped, so no write can become durable; the server is stopping (restart it to replay the log)"
    )]
    Halted,
    /// This node follows the log: writes go to the primary (the routes
    /// redirect them; this is for one that raced a change of role).
    #[error("this node is not the primary now; send writes to the primary")]
    NotPrimary,
}

/// Where the journal is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Phase {
    /// The start-up replay is running: no writes yet.
    Replaying,
    Up,
    /// An append failed; the committer retries the log.
    Down,
    Closed,
    /// The committer is gone.
    Halted,
    /// The node follows the log another node writes: reads only.
    Following,
}

impl Phase {
    /// Indexed by discriminant.
    const ALL: [Phase; 6] = [
        Phase::Replaying,
        Phase::Up,
        Phase::Down,
        Phase::Closed,
        Phase::Halted,
        Phase::Following,
    ];
}

/// A [`Phase`] kept as its discriminant, so that reading it takes no lock.
struct AtomicPhase(AtomicU8);

impl AtomicPhase {
    fn new(phase: Phase) -> AtomicPhase {
        AtomicPhase(AtomicU8::new(phase as u8))
    }

    fn get(&self) -> Phase {
        // Only `set` and `shift` store, and only discriminants.
        Phase::ALL[usize::from(self.0.load(Ordering::Acquire))]
    }

    fn set(&self, phase: Phase) {
        self.0.store(phase as u8, Ordering::Release);
    }

    /// Moves from `from` to `to`; any other phase stays.
    fn shift(&self, from: Phase, to: Phase) {
        let _ = self
            .0
            .compare_exchange(from as u8, to as u8, Ordering::AcqRel, Ordering::Acquire);
    }
}

/// Where the committer answers a `sync` writer.
pub(super) type Answer = oneshot::Sender<Result<(), JournalError>>;

/// One write's transactions on their way to the log.
pub(super) struct Pending {
    /// The write's revision: that of every one of its transactions.
    pub(super) revision: u64,
    pub(super) txns: Vec<Txn>,
    /// The inverse changes, applied newest first to undo the write.
    pub(super) undo: Vec<Change>,
    pub(super) done: Option<Answer>,
}

/// The committer's end of the queue.
pub(crate) struct Queue(pub(super) mpsc::Receiver<Pending>);

pub(crate) struct Journal {
    pub(super) tx: mpsc::Sender<Pending>,
    /// Writers hold it shared from their state check until their
    /// transaction is queued; the committer holds it exclusively to fail
    /// everything queued at once.
    gate: RwLock<()>,
    phase: AtomicPhase,
    /// Why the log is down, for the 503s meanwhile.
    down_reason: RwLock<String>,
    /// The highest revision given. Held while a writer takes the next and
    /// queues its write, so that the queue is in revision order.
    head: Mutex<u64>,
    /// Every revision up to this one is durable, or was undone.
    durable: watch::Sender<u64>,
    /// How many times queued writes were undone: a read that waited for a
    /// batch that then failed must look again.
    undone: AtomicU64,
    pub(super) mode: Durability,
    pub(super) audit_reads: bool,
    /// How long the writers of a failed batch wait for its outcome.
    pub(super) outcome_timeout: Duration,
    /// Tells the committer to flush and stop.
    pub(super) finish: Notify,
    /// Whether the node shares the log under a lease (`--role standby`):
    /// a fenced append then makes it a follower instead of stopping it.
    pub(crate) replica: bool,
    /// Told when a fenced append made the node a follower.
    pub(crate) fenced: Notify,
    pub(crate) metrics: Arc<Metrics>,
}

impl Journal {
    /// A journal in the replaying state; `capacity` bounds the queue, which
    /// is what pushes back on writers in `async` mode; `outcome_timeout` is
    /// how long after a failed append its writers may wait to learn whether
    /// it is durable.
    pub(crate) fn new(
        mode: Durability,
        capacity: usize,
        audit_reads: bool,
        outcome_timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> (Journal, Queue) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let journal = Journal {
            tx,
            gate: RwLock::new(()),
            phase: AtomicPhase::new(Phase::Replaying),
            down_reason: RwLock::new(String::new()),
            head: Mutex::new(0),
            durable: watch::Sender::new(0),
            undone: AtomicU64::new(0),
            mode,
            audit_reads,
            outcome_timeout,
            finish: Notify::new(),
            replica: false,
            fenced: Notify::new(),
            metrics,
        };
        (journal, Queue(rx))
    }

    pub(crate) fn is_up(&self) -> bool {
        self.phase.get() == Phase::Up
    }

    /// The start-up replay is over (the log may since have gone down).
    pub(crate) fn replayed(&self) -> bool {
        self.phase.get() != Phase::Replaying
    }

    /// Why the journal takes no writes right now.
    pub(crate) fn not_ready_reason(&self) -> String {
        match self.check() {
            Ok(()) => "ready".to_owned(),
            Err(e) => e.to_string(),
        }
    }

    /// Whether a write may start now.
    pub(super) fn check(&self) -> Result<(), JournalError> {
        match self.phase.get() {
            Phase::Up => Ok(()),
            Phase::Replaying => Err(JournalError::Replaying),
            Phase::Down => Err(JournalError::Unavailable(self.down_reason())),
            Phase::Closed => Err(JournalError::Closed),
            Phase::Halted => Err(JournalError::Halted),
            Phase::Following => Err(JournalError::NotPrimary),
        }
    }

    /// Whether the node follows the log rather than writing it.
    pub(crate) fn is_following(&self) -> bool {
        self.phase.get() == Phase::Following
    }

    /// Why the log last failed.
    pub(crate) fn down_reason(&self) -> String {
        self.down_reason.read().clone()
    }

    pub(super) fn set_down_reason(&self, reason: String) {
        *self.down_reason.write() = reason;
    }

    /// Held by a writer from its state check until its transaction is queued.
    pub(super) fn gate(&self) -> RwLockReadGuard<'_, ()> {
        self.gate.read()
    }

    /// Held while no writer may be between its state check and its queueing.
    pub(super) fn shut_gate(&self) -> RwLockWriteGuard<'_, ()> {
        self.gate.write()
    }

    /// Replay is over, up to revision `head`: writes may start, with the
    /// revisions after it.
    pub(crate) fn open(&self, head: u64) {
        *self.head.lock() = head;
        self.durable.send_replace(head);
        self.phase.set(Phase::Up);
    }

    /// Replay is over, up to revision `head`, and the node follows the log
    /// from there: reads only.
    pub(crate) fn follow_from(&self, head: u64) {
        let _excl = self.shut_gate();
        *self.head.lock() = head;
        self.durable.send_replace(head);
        self.phase.set(Phase::Following);
    }

    /// The node replays the log afresh (a follower that fell behind, or a
    /// primary that stepped down): data routes wait, as at start-up.
    pub(crate) fn start_over(&self) {
        let _excl = self.shut_gate();
        self.phase.set(Phase::Replaying);
    }

    /// The changes up to `revision`, followed from the log, are applied:
    /// they are durable, and reads may show them.
    pub(crate) fn followed(&self, revision: u64) {
        {
            let mut head = self.head.lock();
            *head = (*head).max(revision);
        }
        self.made_durable(revision);
    }

    /// The node stops writing and follows the log (it lost the lease):
    /// no writer is between its check and its queueing once this returns,
    /// and none starts. Writes already queued are still appended, or fail.
    pub(crate) fn step_down(&self) {
        let _excl = self.shut_gate();
        if matches!(self.phase.get(), Phase::Up | Phase::Down) {
            self.phase.set(Phase::Following);
        }
    }

    /// Waits until every revision given is durable or undone: the
    /// committer has nothing left of this node's writes.
    pub(crate) async fn settled(&self) {
        let head = self.revision();
        let mut rx = self.durable.subscribe();
        let stopped = |j: &Journal| matches!(j.phase.get(), Phase::Halted | Phase::Closed);
        let _ = rx.wait_for(|d| *d >= head || stopped(self)).await;
    }

    /// Waits up to `patience` until reads show revision `revision`; false
    /// if they do not by then.
    pub(crate) async fn wait_visible(&self, revision: u64, patience: Duration) -> bool {
        if self.visible() >= revision {
            return true;
        }
        let mut rx = self.durable.subscribe();
        let reached = |j: &Journal| j.visible() >= revision;
        tokio::time::timeout(patience, rx.wait_for(|_| reached(self)))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Gives a write the next revision and runs `queue` with it, which
    /// stamps the write's values and queues it; nobody else takes a
    /// revision meanwhile.
    pub(super) fn next_revision<R>(&self, queue: impl FnOnce(u64) -> R) -> R {
        let mut head = self.head.lock();
        *head += 1;
        queue(*head)
    }

    /// The highest revision given.
    pub(crate) fn revision(&self) -> u64 {
        *self.head.lock()
    }

    /// The revision reads see: the durable one in `sync` mode, the highest
    /// given in `async` mode.
    pub(crate) fn visible(&self) -> u64 {
        match self.mode {
            Durability::Sync => self.durable(),
            Durability::Async => self.revision(),
        }
    }

    /// Every revision up to this one is durable, or was undone.
    pub(crate) fn durable(&self) -> u64 {
        *self.durable.borrow()
    }

    /// The revisions up to `revision` are durable.
    pub(super) fn made_durable(&self, revision: u64) {
        self.durable.send_if_modified(|d| {
            let raised = revision > *d;
            *d = (*d).max(revision);
            raised
        });
    }

    /// Every write queued was undone (the gate is shut): no revision given
    /// so far is left in memory that is not durable.
    pub(super) fn undid_all(&self) {
        self.undone.fetch_add(1, Ordering::AcqRel);
        self.made_durable(*self.head.lock());
    }

    /// How many times queued writes were undone.
    pub(super) fn undone(&self) -> u64 {
        self.undone.load(Ordering::Acquire)
    }

    /// Waits until revision `revision` is durable (or undone); fails if the
    /// committer stopped first, so that it never will be.
    pub(super) async fn wait_durable(&self, revision: u64) -> Result<(), JournalError> {
        let mut rx = self.durable.subscribe();
        let stopped = |j: &Journal| j.phase.get() == Phase::Halted;
        // `halt` wakes the waiters after it sets the phase.
        let _ = rx.wait_for(|d| *d >= revision || stopped(self)).await;
        if *rx.borrow() >= revision {
            Ok(())
        } else {
            Err(JournalError::Halted)
        }
    }

    /// How many wait in [`Journal::wait_durable`].
    #[cfg(test)]
    pub(super) fn waiting(&self) -> usize {
        self.durable.receiver_count()
    }

    /// An append failed: writes are refused, naming `reason`, until
    /// [`Journal::recovered`]. A close that raced with the failure keeps
    /// the journal closed.
    pub(super) fn went_down(&self, reason: String) {
        self.set_down_reason(reason);
        self.phase.shift(Phase::Up, Phase::Down);
    }

    /// The log takes writes again.
    pub(super) fn recovered(&self) {
        self.phase.shift(Phase::Down, Phase::Up);
    }

    /// The log refused an append because another node holds the lease;
    /// what was queued is undone (the gate is shut). A replica turns
    /// follower and is told; any other node stops.
    pub(super) fn was_fenced(&self) {
        self.phase.shift(Phase::Down, Phase::Following);
        self.fenced.notify_one();
    }

    /// The committer is gone: nothing can become durable any more, and
    /// every write and `/readyz` say so.
    pub(crate) fn halt(&self) {
        let _excl = self.shut_gate();
        self.phase.set(Phase::Halted);
        self.durable.send_modify(|_| {});
    }

    /// Why a write's batch got no answer, or its queue is gone: the
    /// committer ended, after a close or by itself.
    pub(super) fn gone(&self) -> JournalError {
        match self.phase.get() {
            Phase::Closed => JournalError::Closed,
            _ => JournalError::Halted,
        }
    }

    /// Stops taking writes and tells the committer to flush what is queued
    /// and stop.
    pub(crate) fn close(&self) {
        let _excl = self.shut_gate();
        // A halted journal stays halted: that is the reason to give.
        if self.phase.get() != Phase::Halted {
            self.phase.set(Phase::Closed);
        }
        self.finish.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_phase_reads_back_as_it_was_set() {
        let phase = AtomicPhase::new(Phase::Replaying);
        for p in Phase::ALL {
            phase.set(p);
            assert_eq!(phase.get(), p);
        }
    }
}
