//! Revisions: every change to the store has one.
//!
//! A revision is one 64-bit counter for the whole store, increasing,
//! assigned when a change is applied. Every transaction of one write (a
//! whole-key delete across types, a multi-key transaction) has the same
//! revision, so the log keeps them together and a watcher sees them
//! together. A value remembers the revision of its last change (that is
//! its ETag and what a compare-and-set compares) and that of its creation:
//! the change that made it exist after it was absent.
//!
//! Logs written before revisions existed (by the original service, or by a
//! client of its protocol) hold transactions without one. They are given
//! revisions in replay order by [`Revisions`], the one rule every reader
//! follows, so that each reader of a log agrees on them.

use crate::Txn;

/// The revision of a transaction that was logged without one.
pub const UNSTAMPED: u64 = 0;

/// A transaction with the revision of the change it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// [`UNSTAMPED`] only as read from a log that holds no revision for it.
    pub revision: u64,
    pub txn: Txn,
}

impl Change {
    pub fn new(revision: u64, txn: Txn) -> Change {
        Change { revision, txn }
    }
}

/// Gives each change read from a log its revision, in replay order: its
/// own, or, for one logged without, the next after the highest so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Revisions {
    head: u64,
}

impl Revisions {
    /// Numbering that goes on after `head`, the highest revision the log
    /// is known to have given (a log that keeps its head apart from its
    /// records, because a delete leaves no record behind).
    pub fn after(head: u64) -> Revisions {
        Revisions { head }
    }

    /// The revision `change` keeps, given one if it has none. A read
    /// (`Txn::Get`) is not a change, and a key's expiry time and its
    /// creation belong to the put beside them: each takes the current
    /// revision and gives no new one.
    pub fn stamp(&mut self, change: &mut Change) {
        if change.revision == UNSTAMPED {
            change.revision = match change.txn {
                Txn::Get { .. } | Txn::Expiry { .. } | Txn::Created { .. } => self.head,
                _ => self.head + 1,
            };
        }
        self.head = self.head.max(change.revision);
    }

    /// The highest revision so far.
    pub fn head(&self) -> u64 {
        self.head
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Key, Value, ValueType};

    fn put(revision: u64) -> Change {
        Change::new(
            revision,
            Txn::Put {
                key: Key::parse("k").unwrap(),
                value: Value::Int(1),
            },
        )
    }

    #[test]
    fn changes_without_a_revision_get_the_next_ones_and_reads_none() {
        let mut revs = Revisions::after(4);
        let get = Change::new(
            UNSTAMPED,
            Txn::Get {
                ty: ValueType::Int,
                key: Key::parse("k").unwrap(),
            },
        );
        let mut stamped = Vec::new();
        for mut c in [put(0), put(0), get, put(9), put(0), put(3)] {
            revs.stamp(&mut c);
            stamped.push(c.revision);
        }
        assert_eq!(stamped, [5, 6, 6, 9, 10, 3]);
        assert_eq!(revs.head(), 10);
    }
}
