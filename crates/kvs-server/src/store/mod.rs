//! Where a value is stored and where a write becomes durable.
//!
//! - [`db`]: the sharded in-memory tables; where a value is stored.
//! - [`apply`]: a replay's changes applied on a thread per core.
//! - [`table`]: one type's table in a shard: dense entries and an index.
//! - [`write`](mod@write): a write's path, [`Store::write`] for one key and
//!   [`Store::transact`] for many: it changes its shards through a
//!   [`write::WriteTx`], which records each change and its undoing, and
//!   queues them on the journal under the shards' locks, so the log holds
//!   each key's changes in the order they were applied.
//! - [`read`]: a read's path, [`Store::read`]: it answers only what is
//!   durable.
//! - [`journal`]: the queue from writers to the committer, durability
//!   modes, the store's revisions, and the state that says whether writes
//!   are taken.
//! - [`committer`]: where a write becomes durable: group commit, and
//!   undoing writes that could not be made durable.
//! - [`expiry`]: keys with a TTL, and the task that expires them.
//! - [`limits`]: what every stored value is held to.
//! - [`remote`]: the log kept by a txn-server, over gRPC with mutual TLS.

mod apply;
mod committer;
mod db;
pub(crate) mod expiry;
#[cfg(test)]
pub(crate) mod flaky;
mod journal;
mod limits;
mod read;
pub(crate) mod remote;
mod table;
mod write;

use std::sync::Arc;

use crate::watch::History;

pub(crate) use apply::Appliers;
pub(crate) use db::{Db, Found, ValueRef};
pub(crate) use journal::{Durability, Journal, JournalError};
pub(crate) use limits::{LimitError, Limits};
pub(crate) use read::Read;
pub(crate) use write::{KeyTx, Written};

/// The tables, the journal that keeps them durable, the limits every
/// stored value is held to, and the recent durable changes, for watchers.
pub(crate) struct Store {
    pub(crate) db: Arc<Db>,
    pub(crate) journal: Journal,
    pub(crate) limits: Limits,
    pub(crate) history: Arc<History>,
}
