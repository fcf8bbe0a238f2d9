//! The recent durable revisions' changes, kept in memory so that a
//! watcher can start from a past revision, or resume where it left off.
//!
//! Only what is durable is recorded: the committer records a batch once
//! it is durable (and a failed batch once recovery finds it durable), and
//! the start-up replay records what it replays. Revisions arrive in order,
//! so the history is a queue: recorded at the back, dropped from the front
//! when it is over its bounds.
//!
//! The replay passes its changes through a [`Tail`] first, which holds
//! back the newest, as many as the history would keep: a log's older
//! changes are applied without being recorded, copied and dropped.

use std::collections::VecDeque;
use std::sync::Arc;

use kvs_core::{Change, Txn};
use parking_lot::Mutex;
use tokio::sync::watch;

use super::event;

/// How much the history keeps.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    pub(crate) revisions: usize,
    /// Summed over the changes' [`Txn::size`].
    pub(crate) bytes: usize,
}

impl Bounds {
    /// Whether `revisions` revisions of `bytes` must lose their oldest; the
    /// newest stays, even alone over the bounds, so that its watchers are
    /// not cut off.
    fn over(&self, revisions: usize, bytes: usize) -> bool {
        revisions > 1 && (revisions > self.revisions || bytes > self.bytes)
    }
}

/// One durable revision's changes that watchers are told of.
#[derive(Debug, Clone)]
pub(crate) struct Revision {
    pub(crate) revision: u64,
    pub(crate) changes: Vec<Txn>,
    bytes: usize,
}

/// A `since` the history cannot answer: changes after it were dropped, or
/// were never recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gone {
    /// The oldest revision a watcher may start after.
    pub(crate) oldest: u64,
}

/// What [`History::after`] found.
pub(crate) struct After {
    pub(crate) revisions: Vec<Arc<Revision>>,
    /// Everything up to this revision has been handed out.
    pub(crate) upto: u64,
}

#[derive(Default)]
struct Kept {
    revisions: VecDeque<Arc<Revision>>,
    bytes: usize,
    /// Every change after this revision was recorded.
    complete_after: u64,
    /// The newest revision dropped to stay within the bounds.
    dropped: u64,
    /// The highest revision recorded, changes or not.
    recorded: u64,
}

impl Kept {
    /// The oldest revision a watcher may start after.
    fn oldest(&self) -> u64 {
        self.complete_after.max(self.dropped)
    }
}

pub(crate) struct History {
    kept: Mutex<Kept>,
    bounds: Bounds,
    /// [`Kept::recorded`], for watchers to wait on.
    last: watch::Sender<u64>,
}

impl History {
    /// An empty history, complete from the first revision on.
    pub(crate) fn new(bounds: Bounds) -> History {
        History {
            kept: Mutex::default(),
            bounds,
            last: watch::Sender::new(0),
        }
    }

    /// Records durable `changes`, in revision order, and wakes the watchers.
    /// Changes of one revision go together, even over several calls (the
    /// replay records them one by one); what watchers are not told of
    /// ([`event::is_event`]) is left out.
    pub(crate) fn record(&self, changes: impl IntoIterator<Item = Change>) {
        let last = {
            let mut kept = self.kept.lock();
            for Change { revision, txn } in changes {
                kept.recorded = kept.recorded.max(revision);
                if !event::is_event(&txn) {
                    continue;
                }
                let bytes = txn.size();
                kept.bytes += bytes;
                match kept.revisions.back_mut() {
                    Some(back) if back.revision == revision => {
                        let back = Arc::make_mut(back);
                        back.changes.push(txn);
                        back.bytes += bytes;
                    }
                    _ => kept.revisions.push_back(Arc::new(Revision {
                        revision,
                        changes: vec![txn],
                        bytes,
                    })),
                }
                self.trim(&mut kept);
            }
            kept.recorded
        };
        self.last.send_if_modified(|l| {
            let raised = last > *l;
            if raised {
                *l = last;
            }
            raised
        });
    }

    /// Drops the oldest revisions while over the bounds.
    fn trim(&self, kept: &mut Kept) {
        while self.bounds.over(kept.revisions.len(), kept.bytes) {
            let dropped = kept.revisions.pop_front().expect("more than one");
            kept.bytes -= dropped.bytes;
            kept.dropped = dropped.revision;
        }
    }

    /// A tail for the replay to pass its changes through.
    pub(crate) fn tail(&self) -> Tail {
        Tail {
            bounds: self.bounds,
            changes: VecDeque::new(),
            revisions: 0,
            newest: None,
            bytes: 0,
            dropped: 0,
            seen: 0,
        }
    }

    /// Hands `apply` a copy of each change `tail` held back, in order, and
    /// records them, as if every change it took had been recorded.
    pub(crate) fn record_tail(&self, tail: Tail, apply: impl FnMut(Change)) {
        tail.changes.iter().cloned().for_each(apply);
        {
            let mut kept = self.kept.lock();
            kept.dropped = kept.dropped.max(tail.dropped);
            kept.recorded = kept.recorded.max(tail.seen);
        }
        self.record(tail.changes);
    }

    /// Forgets everything: the replay starts over.
    pub(crate) fn clear(&self) {
        *self.kept.lock() = Kept::default();
        self.last.send_replace(0);
    }

    /// Every change after `revision` is recorded (the replay's end says
    /// from where it replayed everything).
    pub(crate) fn complete_after(&self, revision: u64) {
        self.kept.lock().complete_after = revision;
    }

    /// Whether a watcher may start after `since`.
    pub(crate) fn check(&self, since: u64) -> Result<(), Gone> {
        let oldest = self.kept.lock().oldest();
        if since < oldest {
            Err(Gone { oldest })
        } else {
            Ok(())
        }
    }

    /// At most `max` revisions after `since` with changes, oldest first.
    pub(crate) fn after(&self, since: u64, max: usize) -> Result<After, Gone> {
        let kept = self.kept.lock();
        let oldest = kept.oldest();
        if since < oldest {
            return Err(Gone { oldest });
        }
        let start = kept.revisions.partition_point(|r| r.revision <= since);
        let revisions: Vec<_> = kept.revisions.range(start..).take(max).cloned().collect();
        let upto = match revisions.last() {
            Some(r) if revisions.len() == max => r.revision,
            _ => since.max(kept.recorded),
        };
        Ok(After { revisions, upto })
    }

    /// Waits until a revision after `since` is recorded.
    pub(crate) async fn wait_after(&self, since: u64) {
        let mut rx = self.last.subscribe();
        // The sender lives as long as the history, which outlives this wait.
        let _ = rx.wait_for(|last| *last > since).await;
    }
}

/// The newest changes of a replay, within the history's bounds, and what
/// watchers are not told of among them (which must be applied in order
/// with them). A read passes at once: it changes no table, so that a log
/// of audited reads does not pile up behind the newest revision.
pub(crate) struct Tail {
    bounds: Bounds,
    changes: VecDeque<Change>,
    /// Revisions with changes watchers are told of, among `changes`.
    revisions: usize,
    /// The newest of them.
    newest: Option<u64>,
    /// Summed over the changes of those revisions.
    bytes: usize,
    /// The newest revision with events that left the tail.
    dropped: u64,
    /// The highest revision taken, changes or not.
    seen: u64,
}

impl Tail {
    /// Takes `change`, and hands to `out`, in the order they must be
    /// applied, the changes the history would not keep: reads, those that
    /// watchers are not told of once they are the oldest, and the oldest
    /// revision while over the bounds.
    pub(crate) fn push(&mut self, change: Change, mut out: impl FnMut(Change)) {
        self.seen = self.seen.max(change.revision);
        if matches!(change.txn, Txn::Get { .. }) {
            return out(change);
        }
        if event::is_event(&change.txn) {
            if self.newest != Some(change.revision) {
                self.newest = Some(change.revision);
                self.revisions += 1;
            }
            self.bytes += change.txn.size();
        }
        self.changes.push_back(change);
        while let Some(front) = self.changes.front() {
            if event::is_event(&front.txn) {
                if !self.bounds.over(self.revisions, self.bytes) {
                    break;
                }
                let revision = front.revision;
                self.revisions -= 1;
                self.dropped = revision;
                while self.changes.front().is_some_and(|c| c.revision == revision) {
                    self.pass_front(&mut out);
                }
            } else {
                self.pass_front(&mut out);
            }
        }
    }

    fn pass_front(&mut self, out: &mut impl FnMut(Change)) {
        let change = self.changes.pop_front().expect("a change at the front");
        if event::is_event(&change.txn) {
            self.bytes -= change.txn.size();
        }
        out(change);
    }
}

#[cfg(test)]
mod tests {
    use kvs_core::{Key, Value, ValueType};

    use super::*;

    fn put(revision: u64, key: &str, v: i32) -> Change {
        Change::new(
            revision,
            Txn::Put {
                key: Key::parse(key).unwrap(),
                value: Value::Int(v),
            },
        )
    }

    fn revisions(after: &After) -> Vec<(u64, usize)> {
        after
            .revisions
            .iter()
            .map(|r| (r.revision, r.changes.len()))
            .collect()
    }

    #[test]
    fn changes_of_one_revision_go_together_and_reads_are_left_out() {
        let history = History::new(Bounds {
            revisions: 10,
            bytes: usize::MAX,
        });
        let read = Txn::Get {
            ty: ValueType::Int,
            key: Key::parse("a").unwrap(),
        };
        history.record([put(1, "a", 1)]);
        history.record([put(2, "a", 2)]);
        history.record([put(2, "b", 2), Change::new(3, read)]);
        let all = history.after(0, 10).unwrap();
        assert_eq!(revisions(&all), [(1, 1), (2, 2)]);
        assert_eq!(
            all.upto, 3,
            "a read's revision is seen, with nothing to tell"
        );
        let page = history.after(0, 1).unwrap();
        assert_eq!((revisions(&page), page.upto), (vec![(1, 1)], 1));
        assert_eq!(history.after(7, 10).unwrap().upto, 7, "in the future");
    }

    #[test]
    fn a_since_older_than_what_is_kept_is_gone() {
        let history = History::new(Bounds {
            revisions: 2,
            bytes: usize::MAX,
        });
        for r in 1..=4 {
            history.record([put(r, "a", 0)]);
        }
        assert_eq!(history.check(1), Err(Gone { oldest: 2 }));
        assert!(history.after(1, 10).is_err());
        assert_eq!(revisions(&history.after(2, 10).unwrap()), [(3, 1), (4, 1)]);
        history.complete_after(3);
        assert_eq!(history.check(2), Err(Gone { oldest: 3 }));
        assert_eq!(history.check(3), Ok(()));
    }

    #[test]
    fn the_byte_bound_keeps_the_newest_revision_even_alone_over_it() {
        let one = put(1, "a", 0).txn.size();
        let history = History::new(Bounds {
            revisions: 100,
            bytes: 2 * one,
        });
        for r in 1..=3 {
            history.record([put(r, "a", 0)]);
        }
        assert_eq!(history.check(0), Err(Gone { oldest: 1 }));
        let big = Change::new(
            4,
            Txn::Put {
                key: Key::parse("b").unwrap(),
                value: Value::Str("x".repeat(10 * one)),
            },
        );
        history.record([big]);
        assert_eq!(revisions(&history.after(3, 10).unwrap()), [(4, 1)]);
        assert_eq!(history.check(2), Err(Gone { oldest: 3 }));
    }

    #[test]
    fn a_history_fed_through_a_tail_keeps_what_one_fed_every_change_keeps() {
        let read = |revision| {
            let txn = Txn::Get {
                ty: ValueType::Int,
                key: Key::parse("a").unwrap(),
            };
            Change::new(revision, txn)
        };
        let created = |revision| {
            let txn = Txn::Created {
                ty: ValueType::Int,
                key: Key::parse("c").unwrap(),
                revision: 1,
            };
            Change::new(revision, txn)
        };
        let changes = vec![
            read(1),
            put(2, "a", 1),
            put(2, "b", 1),
            read(3),
            created(4),
            put(4, "a", 2),
            read(4),
            put(5, "c", 3),
            put(6, "a", 4),
            put(6, "b", 4),
            created(6),
            put(6, "c", 4),
            read(7),
            read(8),
        ];
        for kept in [1, 2, 3, 4, 100] {
            let bounds = Bounds {
                revisions: kept,
                bytes: usize::MAX,
            };
            let every = History::new(bounds);
            every.record(changes.clone());
            let through = History::new(bounds);
            let mut tail = through.tail();
            let mut passed = Vec::new();
            for change in changes.clone() {
                tail.push(change, |c| passed.push(c));
            }
            passed.extend(tail.changes.iter().cloned());
            let writes = |c: &[Change]| -> Vec<Change> {
                let read = |c: &&Change| matches!(c.txn, Txn::Get { .. });
                c.iter().filter(|c| !read(c)).cloned().collect()
            };
            assert_eq!(passed.len(), changes.len(), "every change, once");
            assert_eq!(writes(&passed), writes(&changes), "reads aside, in order");
            through.record_tail(tail, |_| {});
            for since in 0..=9 {
                let (a, b) = (every.after(since, 100), through.after(since, 100));
                let seen = |r: Result<After, Gone>| r.map(|a| (revisions(&a), a.upto));
                assert_eq!(seen(a), seen(b), "{kept} revisions kept, since {since}");
            }
        }
    }

    #[test]
    fn reads_pass_a_tail_at_once_and_the_byte_bound_holds() {
        let read = Txn::Get {
            ty: ValueType::Int,
            key: Key::parse("a").unwrap(),
        };
        let one = put(1, "a", 0).txn.size();
        let history = History::new(Bounds {
            revisions: 100,
            bytes: 2 * one,
        });
        let mut tail = history.tail();
        let mut passed = Vec::new();
        for revision in 1..=3 {
            tail.push(put(revision, "a", 0), |c| passed.push(c.revision));
        }
        for revision in 4..1000 {
            tail.push(Change::new(revision, read.clone()), |c| {
                passed.push(c.revision)
            });
        }
        assert_eq!(
            passed,
            (1..1000).filter(|r| *r != 2 && *r != 3).collect::<Vec<_>>()
        );
        assert_eq!(tail.changes.len(), 2);
        history.record_tail(tail, |_| {});
        assert_eq!(history.check(0), Err(Gone { oldest: 1 }));
        assert_eq!(
            history.after(1, 10).unwrap().upto,
            999,
            "every revision seen"
        );
    }
}
