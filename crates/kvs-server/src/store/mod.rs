//! Where a value is stored and where a write becomes durable.
//!
//! - [`db`]: the sharded in-memory tables.
//! - [`journal`]: the write path to the transaction log: group commit,
//!   durability modes, and undoing writes that could not be made durable.
//! - [`remote`]: the log kept by a txn-server, over gRPC with mutual TLS.
//!
//! A write takes its shard's lock, changes the table and queues its
//! transaction before letting go, so the log holds each key's changes in the
//! order they were applied. In `sync` mode it then waits for the batch that
//! carries it to be durable.

pub mod db;
pub mod journal;
pub mod limits;
pub mod remote;

use std::sync::Arc;

use kvs_core::{Key, Txn, Value, ValueType};

pub use db::{Db, Shard, ValueRef};
pub use journal::{Durability, Journal, JournalError};
pub use limits::{LimitError, Limits};

/// The tables, the journal that keeps them durable, and the limits every
/// stored value is held to.
pub struct Store {
    pub db: Arc<Db>,
    pub journal: Journal,
    pub limits: Limits,
}

/// One write's view of its key's shard: every change made through it is
/// recorded, for the log and for undoing.
pub struct WriteTx<'a> {
    shard: &'a mut Shard,
    key: &'a Key,
    limits: Limits,
    txns: Vec<Txn>,
    undo: Vec<(ValueType, Option<Value>)>,
}

impl<'a> WriteTx<'a> {
    pub(crate) fn new(shard: &'a mut Shard, key: &'a Key, limits: Limits) -> WriteTx<'a> {
        WriteTx {
            shard,
            key,
            limits,
            txns: Vec::new(),
            undo: Vec::new(),
        }
    }

    pub fn get(&self, ty: ValueType) -> Option<ValueRef<'_>> {
        self.shard.get(ty, self.key.as_str())
    }

    /// Stores `value` unless it is over the limits.
    pub fn put(&mut self, value: Value) -> Result<(), LimitError> {
        let ty = value.value_type();
        // What the key holds matters only to a value over a limit, so only
        // then is it copied out of the table.
        self.limits.check(self.key, &value, None).or_else(|_| {
            let old = self.get(ty).map(ValueRef::to_value);
            self.limits.check(self.key, &value, old.as_ref())
        })?;
        self.txns.push(Txn::Put {
            key: self.key.clone(),
            value: value.clone(),
        });
        let old = self.shard.put(self.key.clone(), value);
        self.undo.push((ty, old));
        Ok(())
    }

    /// Removes the key of type `ty`; returns whether it was there. Removing
    /// an absent key records nothing.
    pub fn delete(&mut self, ty: ValueType) -> bool {
        let Some(old) = self.shard.remove(ty, self.key.as_str()) else {
            return false;
        };
        self.txns.push(Txn::Delete {
            ty,
            key: self.key.clone(),
        });
        self.undo.push((ty, Some(old)));
        true
    }

    /// Puts every changed value back as it was, newest change first.
    pub(crate) fn rollback(&mut self) {
        self.txns.clear();
        while let Some((ty, old)) = self.undo.pop() {
            self.shard.restore(ty, self.key, old);
        }
    }

    pub(crate) fn finish(self) -> (Vec<Txn>, Vec<(ValueType, Option<Value>)>) {
        (self.txns, self.undo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_over_a_limit_may_replace_a_larger_one_and_is_undone() {
        let key = Key::parse("k").unwrap();
        let mut shard = Shard::default();
        // Stored under a higher limit, or before there was one.
        shard.put(key.clone(), Value::Str("abcd".into()));
        let limits = Limits {
            max_value_bytes: 2,
            max_entries: usize::MAX,
        };
        let mut tx = WriteTx::new(&mut shard, &key, limits);
        assert!(tx.put(Value::Str("abc".into())).is_ok());
        assert!(tx.put(Value::Str("abcd".into())).is_err());
        assert!(tx.put(Value::Str("ab".into())).is_ok());
        tx.rollback();
        assert_eq!(shard.get(ValueType::Str, "k"), Some(ValueRef::Str("abcd")));
    }
}
