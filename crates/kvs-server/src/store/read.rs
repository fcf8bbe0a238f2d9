//! The read path: no answer shows a change that is not durable yet.
//!
//! In `sync` mode a write is applied to memory before its batch is durable,
//! and undone if the batch fails. A read that saw it could answer a value
//! that then vanishes. So a read notes the highest revision of what it saw
//! (the value's own, or, for a key that is not there, or a listing, the
//! highest applied to its shards, since a delete may be in flight), and
//! when that is not durable yet it waits for the batch that holds it. If the batch was
//! undone meanwhile, it looks again. In `async` mode writes are answered
//! before they are durable anyway, and reads do not wait either.

use super::Store;
use super::db::Db;
use super::journal::{Durability, JournalError};

/// What a read found, and the store's revision it reflects.
pub(crate) struct Read<R> {
    pub(crate) found: R,
    pub(crate) revision: u64,
}

impl Store {
    /// Runs `look` on the tables until what it saw is durable; `look`
    /// returns what it found and the highest revision applied to what it
    /// looked at ([`Db::view`], [`Db::keys`]).
    pub(crate) async fn read<R>(
        &self,
        mut look: impl FnMut(&Db) -> (R, u64),
    ) -> Result<Read<R>, JournalError> {
        let j = &self.journal;
        loop {
            let undone = j.undone();
            let (found, seen) = look(&self.db);
            if j.mode == Durability::Sync && seen > j.durable() {
                j.wait_durable(seen).await?;
                if j.undone() != undone {
                    // The batch failed, and what was seen may be undone.
                    continue;
                }
            }
            let revision = j.visible();
            return Ok(Read { found, revision });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use kvs_core::{Value, ValueType};
    use kvs_testkit::wait_until;

    use super::*;
    use crate::store::flaky::{FlakyLog, PATIENT, put, spawn_put, store};

    /// A's int value and revision, as a read answers them.
    async fn read_a(store: &Store) -> (Option<Value>, u64, u64) {
        let read = store
            .read(|db| {
                db.view(ValueType::Int, "a", |f| {
                    f.map(|f| (f.value.to_value(), f.revision))
                })
            })
            .await
            .unwrap();
        let (value, tag) = read.found.unzip();
        (value, tag.unwrap_or(0), read.revision)
    }

    /// Holds the log's appends and puts `v` under a on a task of its own;
    /// returns once the write is applied in memory, its batch held.
    async fn held_put(
        store: &Arc<Store>,
        log: &FlakyLog,
        v: i32,
    ) -> tokio::task::JoinHandle<Result<u64, JournalError>> {
        log.holding.send_replace(true);
        let begun = log.begun.load(Ordering::SeqCst);
        let write = spawn_put(store, "a", v);
        wait_until("the batch is held", PATIENT, || {
            log.begun.load(Ordering::SeqCst) > begun
        })
        .await;
        write
    }

    #[tokio::test]
    async fn a_read_waits_for_the_write_it_would_see_and_never_shows_it_undone() {
        let (store, log, _committer) = store(Durability::Sync, PATIENT);
        let first = put(&store, "a", 1).await.unwrap();
        let refused = held_put(&store, &log, 2).await;
        assert_eq!(
            store.db.get(ValueType::Int, "a"),
            Some(Value::Int(2)),
            "applied, not durable"
        );
        let reader = {
            let store = store.clone();
            tokio::spawn(async move { read_a(&store).await })
        };
        // Held: no answer can come while the batch is neither durable nor undone.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !reader.is_finished(),
            "answered a write that is not durable"
        );
        log.failing.store(true, Ordering::SeqCst);
        log.holding.send_replace(false);
        // The undone write's revision is spent: the store is past it.
        assert_eq!(
            reader.await.unwrap(),
            (Some(Value::Int(1)), first, first + 1)
        );
        // The log is back, without the batch: its writer learns "not applied".
        log.failing.store(false, Ordering::SeqCst);
        assert!(matches!(
            refused.await.unwrap(),
            Err(JournalError::Unavailable(_))
        ));
    }

    #[tokio::test]
    async fn a_read_of_a_write_in_flight_answers_it_once_durable() {
        let (store, log, _committer) = store(Durability::Sync, PATIENT);
        put(&store, "a", 1).await.unwrap();
        let write = held_put(&store, &log, 2).await;
        let reader = {
            let store = store.clone();
            tokio::spawn(async move { read_a(&store).await })
        };
        log.holding.send_replace(false);
        let revision = write.await.unwrap().unwrap();
        assert_eq!(
            reader.await.unwrap(),
            (Some(Value::Int(2)), revision, revision)
        );
    }

    #[tokio::test]
    async fn a_read_waits_only_for_a_write_to_what_it_reads() {
        let (store, log, _committer) = store(Durability::Sync, PATIENT);
        let first = put(&store, "a", 1).await.unwrap();
        // A key of a's shard, and one of another: neither is a.
        let names: Vec<String> = (0..1000).map(|i| format!("k{i}")).collect();
        let near = names.iter().find(|k| store.db.same_shard("a", k)).unwrap();
        log.holding.send_replace(true);
        let begun = log.begun.load(Ordering::SeqCst);
        let write = {
            let (store, near) = (store.clone(), near.clone());
            tokio::spawn(async move { put(&store, &near, 2).await })
        };
        kvs_testkit::wait_until("the batch is held", PATIENT, || {
            log.begun.load(Ordering::SeqCst) > begun
        })
        .await;
        // a is durable, and nothing in flight changes it: answered without
        // waiting for the held batch.
        let read = tokio::time::timeout(PATIENT, read_a(&store)).await;
        let read = read.expect("a read of a durable key waited for another key's batch");
        assert_eq!(read, (Some(Value::Int(1)), first, first));
        log.holding.send_replace(false);
        write.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn in_async_mode_reads_do_not_wait() {
        let (store, log, _committer) = store(Durability::Async, PATIENT);
        let held = held_put(&store, &log, 2).await;
        let revision = held.await.unwrap().unwrap();
        assert_eq!(
            read_a(&store).await,
            (Some(Value::Int(2)), revision, revision)
        );
        log.holding.send_replace(false);
    }
}
