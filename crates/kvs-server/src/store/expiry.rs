//! Expiry: keys that disappear at a time of their own.
//!
//! A `PUT ?ttl=` gives a key a deadline, logged beside its value
//! (`Txn::Expiry`), so replay restores it. A key whose deadline has passed
//! reads as absent at once, wherever it is read (see [`super::db`]); the
//! expirer then logs its expiry (`Txn::Expire`) as a change like any other,
//! so that replay, txn-server and watchers agree. It wakes every
//! [`TICK`] and takes only what is due, earliest first, from each shard's
//! deadlines in time order: nothing is spent on keys that are not due, and
//! a million keys due at once are expired [`CHUNK`] at a time, each by a
//! write as short as any other, so requests go on between them. A key
//! re-put or deleted meanwhile has no deadline left to meet.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kvs_core::Key;

use super::{JournalError, Store};

/// How often the expirer looks for keys due.
const TICK: Duration = Duration::from_millis(100);
/// The most keys expired before the expirer lets other tasks run.
const CHUNK: usize = 1024;
/// The longest TTL: ten years.
pub(crate) const MAX_TTL_SECS: u64 = 10 * 365 * 24 * 3600;

/// Now, in milliseconds since the Unix epoch: the clock every deadline is
/// on, so that deadlines mean the same after a restart.
pub(crate) fn now_ms() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    since.as_millis() as u64
}

/// The deadline of a key given `ttl_secs` from now.
pub(crate) fn deadline_after(ttl_secs: u64) -> u64 {
    now_ms().saturating_add(ttl_secs.saturating_mul(1000))
}

impl Store {
    /// Logs the expiry of every key whose deadline has passed, until the
    /// task is dropped (at shutdown). Expiries are queued, not waited for:
    /// until one is durable the key still reads as absent, and if its batch
    /// fails the undo gives the key its deadline back, to be expired again.
    pub(crate) async fn expire(self: Arc<Store>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            loop {
                let due = self.db.due(now_ms(), CHUNK);
                let more = due.len() == CHUNK;
                let mut expired = 0u64;
                for (ty, key) in due {
                    match self.expire_one(ty, &key).await {
                        Ok(true) => expired += 1,
                        Ok(false) => {}
                        // The log is down, or the server stops: try again
                        // at the next tick.
                        Err(_) => break,
                    }
                }
                if expired > 0 {
                    self.journal.metrics.expired.inc_by(expired);
                }
                if !more {
                    break;
                }
                tokio::task::yield_now().await;
            }
        }
    }

    async fn expire_one(&self, ty: kvs_core::ValueType, key: &Key) -> Result<bool, JournalError> {
        let written = self
            .queue(key, |tx| Ok::<_, JournalError>(tx.settle(ty)))
            .await?;
        Ok(written.out)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use kvs_core::{Txn, Value, ValueType};

    use super::*;
    use crate::store::Durability;
    use crate::store::flaky::{PATIENT, store, wait_down, wait_up};

    #[tokio::test]
    async fn an_expiry_whose_batch_failed_gives_the_key_its_deadline_back() {
        let (store, log, _committer) = store(Durability::Sync, PATIENT);
        let key = Key::parse("k").unwrap();
        let past = now_ms() - 1;
        store
            .write(&key, |tx| {
                tx.put(Value::Int(1), Some(past)).unwrap();
                Ok::<_, JournalError>(())
            })
            .await
            .unwrap();
        assert!(
            store.db.get(ValueType::Int, "k").is_none(),
            "expired: absent"
        );
        log.failing.store(true, Ordering::SeqCst);
        assert!(store.expire_one(ValueType::Int, &key).await.unwrap());
        wait_down(&store).await;
        // Undone: still there underneath, still due.
        assert_eq!(store.db.due(now_ms(), 10), [(ValueType::Int, key.clone())]);
        log.failing.store(false, Ordering::SeqCst);
        wait_up(&store).await;
        assert!(store.expire_one(ValueType::Int, &key).await.unwrap());
        assert!(store.db.due(now_ms(), 10).is_empty());
        // Queued, not waited for: the committer logs it by itself.
        kvs_testkit::wait_until("the expiry is logged", PATIENT, || {
            log.accepted.lock().unwrap().len() == 3
        })
        .await;
        let logged: Vec<Txn> = log
            .accepted
            .lock()
            .unwrap()
            .iter()
            .map(|c| c.txn.clone())
            .collect();
        assert!(
            matches!(
                logged.as_slice(),
                [
                    Txn::Put { .. },
                    Txn::Expiry { at_ms: Some(_), .. },
                    Txn::Expire { .. }
                ]
            ),
            "{logged:?}"
        );
    }

    #[tokio::test]
    async fn only_what_is_due_is_taken_earliest_first() {
        let (store, _log, _committer) = store(Durability::Async, PATIENT);
        let now = now_ms();
        for (name, at) in [
            ("late", now - 10),
            ("early", now - 20),
            ("future", now + 60_000),
        ] {
            let key = Key::parse(name).unwrap();
            store
                .write(&key, |tx| {
                    tx.put(Value::Uint(1), Some(at)).unwrap();
                    Ok::<_, JournalError>(())
                })
                .await
                .unwrap();
        }
        let names: Vec<String> = store
            .db
            .due(now, 10)
            .into_iter()
            .map(|(_, k)| k.to_string())
            .collect();
        // Across shards the order is a shard's; within the limit all due.
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(sorted, ["early", "late"]);
        assert_eq!(store.db.due(now, 1).len(), 1);
    }
}
