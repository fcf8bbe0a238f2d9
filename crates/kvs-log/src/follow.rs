//! The change stream's source: the durable changes after a revision, and a
//! wake-up whenever more may have become durable.
//!
//! A [`ChangeFeed`] is what txn-server's `Follow` reads: whole revisions in
//! the order they were appended (revision order, with one writer at a time),
//! up to a bound per read, with the log's head. A log keeps the changes of
//! its last revisions only (`keep` of them, counted by revision number); a
//! read from further back is [`FollowError::TooOld`], and its reader
//! re-syncs with a whole replay. Changes without a revision (the original
//! protocol's, [`kvs_core::change::UNSTAMPED`]) have no place in revision
//! order and are left out: followers see them at their next re-sync.
//!
//! [`Window`] is the file and memory backends' feed, in memory; the
//! PostgreSQL backend keeps its own in a table.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;

use kvs_core::Change;
use kvs_core::change::UNSTAMPED;
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::LogError;

/// The revisions a log keeps for followers unless told otherwise.
pub const DEFAULT_KEEP: u64 = 100_000;

/// What one read of a feed found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    /// Whole revisions after the one asked for, in order; empty when there
    /// are none yet.
    pub changes: Vec<Change>,
    /// The highest revision durable in the log when it was read.
    pub head: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// The changes right after `after` are no longer kept.
    #[error(
        "the log keeps the changes after revision {oldest} only, and revision {after} is \
         older: replay the log with ReadTransactions, then follow from the head its trailers give"
    )]
    TooOld { after: u64, oldest: u64 },
    #[error(transparent)]
    Log(#[from] LogError),
}

/// The durable changes of a log, read by revision while appends go on.
/// Cloneable: each follower has a clone.
pub trait ChangeFeed: Clone + Send + Sync + 'static {
    /// The whole revisions after `after`, in order, stopping at the first
    /// revision boundary at or past `max` transactions (one revision larger
    /// than that comes whole).
    fn read_after(
        &self,
        after: u64,
        max: usize,
    ) -> impl Future<Output = Result<Page, FollowError>> + Send;

    /// Marked changed whenever changes may have become durable since the
    /// last look: a follower that read everything waits on it.
    fn woken(&self) -> watch::Receiver<()>;
}

/// The last `keep` revisions of changes, in memory, filled by each
/// successful append.
#[derive(Clone)]
pub struct Window {
    recent: Arc<Mutex<Recent>>,
    wake: Arc<watch::Sender<()>>,
}

struct Recent {
    keep: u64,
    /// Stamped changes, in revision order.
    changes: VecDeque<Change>,
    /// Every durable change after this revision is in `changes`.
    from: u64,
    head: u64,
}

impl Recent {
    /// Drops the revisions that `keep` no longer covers.
    fn trim(&mut self) {
        let cut = self.head.saturating_sub(self.keep);
        while self.changes.front().is_some_and(|c| c.revision <= cut) {
            self.changes.pop_front();
        }
        self.from = self.from.max(cut);
    }
}

impl Window {
    /// An empty window that keeps the last `keep` revisions.
    pub fn new(keep: u64) -> Window {
        Window {
            recent: Arc::new(Mutex::new(Recent {
                keep,
                changes: VecDeque::new(),
                from: 0,
                head: 0,
            })),
            wake: Arc::new(watch::Sender::new(())),
        }
    }

    /// Adds the stamped changes of `batch`, just made durable, and wakes
    /// the followers.
    pub fn push(&self, batch: &[Change]) {
        {
            let mut recent = self.recent.lock();
            for c in batch {
                // Only forward: a revision behind the head cannot be placed
                // in order (writers that do not share one counter).
                if c.revision != UNSTAMPED && c.revision >= recent.head {
                    recent.head = c.revision;
                    recent.changes.push_back(c.clone());
                }
            }
            recent.trim();
        }
        self.wake.send_replace(());
    }

    /// Forgets every change: what the log held up to `revision` is no
    /// longer whole (a compaction folded it), and followers further back
    /// must re-sync.
    pub fn restart_at(&self, revision: u64) {
        let mut recent = self.recent.lock();
        recent.changes.clear();
        recent.from = revision;
        recent.head = recent.head.max(revision);
    }

    /// Raises the head to `head` without adding changes: revisions the log
    /// gave changes it keeps out of the window (those numbered at replay).
    pub fn raise_head(&self, head: u64) {
        let mut recent = self.recent.lock();
        recent.head = recent.head.max(head);
        recent.trim();
    }
}

impl ChangeFeed for Window {
    async fn read_after(&self, after: u64, max: usize) -> Result<Page, FollowError> {
        let recent = self.recent.lock();
        if after < recent.from {
            return Err(FollowError::TooOld {
                after,
                oldest: recent.from,
            });
        }
        let start = recent.changes.partition_point(|c| c.revision <= after);
        let mut changes: Vec<Change> = Vec::new();
        for c in recent.changes.range(start..) {
            if changes.len() >= max && changes.last().is_some_and(|l| l.revision != c.revision) {
                break;
            }
            changes.push(c.clone());
        }
        Ok(Page {
            changes,
            head: recent.head,
        })
    }

    fn woken(&self) -> watch::Receiver<()> {
        self.wake.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use kvs_core::{Key, Txn, Value};

    use super::*;

    fn put(revision: u64) -> Change {
        Change::new(
            revision,
            Txn::Put {
                key: Key::parse("k").unwrap(),
                value: Value::Int(revision as i32),
            },
        )
    }

    fn revisions(page: &Page) -> Vec<u64> {
        page.changes.iter().map(|c| c.revision).collect()
    }

    #[tokio::test]
    async fn a_read_stops_at_a_revision_boundary_and_keeps_a_large_revision_whole() {
        let window = Window::new(100);
        window.push(&[put(1), put(2), put(2), put(2), put(3)]);
        let page = window.read_after(0, 2).await.unwrap();
        assert_eq!(revisions(&page), [1, 2, 2, 2]);
        assert_eq!(page.head, 3);
        let page = window.read_after(2, 2).await.unwrap();
        assert_eq!(revisions(&page), [3]);
        assert!(window.read_after(3, 2).await.unwrap().changes.is_empty());
    }

    #[tokio::test]
    async fn unstamped_and_backward_changes_are_left_out() {
        let window = Window::new(100);
        window.push(&[put(UNSTAMPED), put(4), put(UNSTAMPED)]);
        window.push(&[put(3), put(5)]);
        assert_eq!(revisions(&window.read_after(0, 10).await.unwrap()), [4, 5]);
    }

    #[tokio::test]
    async fn only_the_last_keep_revisions_are_kept_and_older_reads_are_too_old() {
        let window = Window::new(3);
        let mut woken = window.woken();
        window.push(&(1..=10).map(put).collect::<Vec<_>>());
        assert!(woken.has_changed().unwrap());
        woken.mark_unchanged();
        assert_eq!(
            revisions(&window.read_after(7, 10).await.unwrap()),
            [8, 9, 10]
        );
        match window.read_after(6, 10).await {
            Err(FollowError::TooOld {
                after: 6,
                oldest: 7,
            }) => {}
            other => panic!("{other:?}"),
        }
        window.restart_at(20);
        assert!(window.read_after(19, 10).await.is_err());
        assert_eq!(window.read_after(20, 10).await.unwrap().head, 20);
    }
}
