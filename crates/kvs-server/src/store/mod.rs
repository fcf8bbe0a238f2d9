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
pub mod remote;

use std::sync::Arc;

use kvs_core::{Key, Txn, Value, ValueType};

pub use db::{Db, Shard};
pub use journal::{Durability, Journal, JournalError};

/// The tables and the journal that keeps them durable.
pub struct Store {
    pub db: Arc<Db>,
    pub journal: Journal,
}

/// One write's view of its key's shard: every change made through it is
/// recorded, for the log and for undoing.
pub struct WriteTx<'a> {
    shard: &'a mut Shard,
    key: &'a Key,
    txns: Vec<Txn>,
    undo: Vec<(ValueType, Option<Value>)>,
}

impl<'a> WriteTx<'a> {
    pub(crate) fn new(shard: &'a mut Shard, key: &'a Key) -> WriteTx<'a> {
        WriteTx {
            shard,
            key,
            txns: Vec::new(),
            undo: Vec::new(),
        }
    }

    pub fn get(&self, ty: ValueType) -> Option<&Value> {
        self.shard.get(ty, self.key.as_str())
    }

    /// Stores `value`; returns what the key held before.
    pub fn put(&mut self, value: Value) -> Option<&Value> {
        let ty = value.value_type();
        self.txns.push(Txn::Put {
            key: self.key.clone(),
            value: value.clone(),
        });
        let old = self.shard.put(self.key.clone(), value);
        self.undo.push((ty, old));
        self.undo.last().and_then(|(_, old)| old.as_ref())
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
