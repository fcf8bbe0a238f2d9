//! The write path: a write changes its keys' shards through a [`WriteTx`],
//! which records every change for the log and its inverse for undoing.
//! Then, before the shards' locks are let go, the write takes the next
//! revision, stamps its values with it and queues its changes on the
//! journal, so the log holds each key's changes in the order they were
//! applied and all of them in revision order. In `sync` mode the writer
//! then waits for the committer to answer.
//!
//! A single-key write ([`Store::write`]) and a multi-key transaction
//! ([`Store::transact`]) are the same write: the second locks every shard
//! its keys live in, changes them through one [`WriteTx`], and queues all
//! of it as one revision.

use kvs_core::value::{map_data_len, set_data_len};
use kvs_core::{Change, Key, Txn, Value, ValueType};
use tokio::sync::{mpsc, oneshot};

use super::Store;
use super::db::{Locked, Revised, Shard, ValueRef};
use super::expiry::now_ms;
use super::journal::{Durability, JournalError, Pending};
use super::limits::{LimitError, Limits, Size};

/// What a writer waits on in `sync` mode.
enum Wait {
    /// Its batch's outcome.
    Batch(oneshot::Receiver<Result<(), JournalError>>),
    /// It changed nothing, but saw its shards at this revision: that must
    /// be durable before it answers.
    Saw(u64),
}

/// What a write did: `op`'s result, and the revision it reflects (its own,
/// or, for a write that changed nothing, the store's).
pub(crate) struct Written<T> {
    pub(crate) out: T,
    pub(crate) revision: u64,
    /// Whether the write changed anything (and so has a revision of its own).
    pub(crate) changed: bool,
}

impl<T> Written<T> {
    pub(crate) fn map<U>(&self, f: impl FnOnce(&T) -> U) -> Written<U> {
        Written {
            out: f(&self.out),
            revision: self.revision,
            changed: self.changed,
        }
    }
}

impl Store {
    /// Runs `op` on `key` and logs what it changed, as [`Store::transact`]
    /// does.
    pub(crate) async fn write<T, E: From<JournalError>>(
        &self,
        key: &Key,
        op: impl FnOnce(&mut KeyTx<'_>) -> Result<T, E>,
    ) -> Result<Written<T>, E> {
        self.transact(&[key], |tx| op(&mut tx.at(key))).await
    }

    /// Runs `op` with the shards of `keys` locked (the only keys it may
    /// touch) and logs what it changed, all at one revision. Whatever `op`
    /// changed is rolled back when it fails. In `sync` mode, returns once
    /// the change is durable, and even an `op` that changed nothing waits
    /// until what it saw is durable, so that it cannot vanish after it
    /// answered.
    pub(crate) async fn transact<T, E: From<JournalError>>(
        &self,
        keys: &[&Key],
        op: impl FnOnce(&mut WriteTx<'_, '_>) -> Result<T, E>,
    ) -> Result<Written<T>, E> {
        let j = &self.journal;
        let undone = j.undone();
        let (mut written, wait) = self.queued(keys, op).await?;
        match wait {
            None => {}
            Some(Wait::Batch(wait)) => match wait.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e.into()),
                // The write was queued, and may have been appended.
                Err(_) => return Err(JournalError::OutcomeUnknown(j.gone().to_string()).into()),
            },
            Some(Wait::Saw(seen)) => {
                j.wait_durable(seen).await?;
                if j.undone() != undone {
                    // What it saw may have been undone: it did nothing.
                    return Err(JournalError::Unavailable(j.down_reason()).into());
                }
                written.revision = j.durable();
            }
        }
        Ok(written)
    }

    /// [`Store::write`] without waiting for durability, in either mode: for
    /// the server's own writes (expiries), whose writer answers nobody.
    pub(crate) async fn queue<T, E: From<JournalError>>(
        &self,
        key: &Key,
        op: impl FnOnce(&mut KeyTx<'_>) -> Result<T, E>,
    ) -> Result<Written<T>, E> {
        let queued = self.queued(&[key], |tx| op(&mut tx.at(key))).await?;
        Ok(queued.0)
    }

    /// Applies `op` and queues what it changed; returns what to wait on.
    async fn queued<T, E: From<JournalError>>(
        &self,
        keys: &[&Key],
        op: impl FnOnce(&mut WriteTx<'_, '_>) -> Result<T, E>,
    ) -> Result<(Written<T>, Option<Wait>), E> {
        let j = &self.journal;
        j.check()?;
        // Wait for queue space before taking any lock.
        let permit = j.tx.reserve().await.map_err(|_| j.gone())?;
        self.apply(keys, op, permit)
    }

    /// The locked part of [`Store::queued`]: applies `op` and queues what
    /// it changed; returns what to wait on in `sync` mode.
    fn apply<T, E: From<JournalError>>(
        &self,
        keys: &[&Key],
        op: impl FnOnce(&mut WriteTx<'_, '_>) -> Result<T, E>,
        permit: mpsc::Permit<'_, Pending>,
    ) -> Result<(Written<T>, Option<Wait>), E> {
        let j = &self.journal;
        let _gate = j.gate();
        j.check()?;
        self.db.update(keys.iter().map(|k| k.as_str()), |shards| {
            let mut tx = WriteTx::new(shards, self.limits);
            let out = match op(&mut tx) {
                Ok(out) => out,
                Err(e) => {
                    tx.rollback();
                    return Err(e);
                }
            };
            let (txns, undo) = tx.finish();
            if txns.is_empty() {
                let wait = (j.mode == Durability::Sync).then_some(Wait::Saw(shards.last()));
                let revision = j.revision();
                let changed = false;
                return Ok((
                    Written {
                        out,
                        revision,
                        changed,
                    },
                    wait,
                ));
            }
            let (done, wait) = match j.mode {
                Durability::Async => (None, None),
                Durability::Sync => {
                    let (done, wait) = oneshot::channel();
                    (Some(done), Some(Wait::Batch(wait)))
                }
            };
            let revision = j.next_revision(|revision| {
                for t in &txns {
                    let shard = shards.shard(t.key().as_str());
                    shard.stamp(t.value_type(), t.key(), revision);
                }
                permit.send(Pending {
                    revision,
                    txns,
                    undo,
                    done,
                });
                revision
            });
            let changed = true;
            Ok((
                Written {
                    out,
                    revision,
                    changed,
                },
                wait,
            ))
        })
    }

    /// Records a read, when read auditing is on. Never waits and never
    /// fails the read: an audit record that finds the queue full is dropped.
    pub(crate) fn audit_read(&self, ty: ValueType, key: &Key) {
        let j = &self.journal;
        if !j.audit_reads || j.check().is_err() {
            return;
        }
        let Ok(permit) = j.tx.try_reserve() else {
            self.journal.metrics.audit_dropped.inc();
            return;
        };
        let _gate = j.gate();
        if j.check().is_ok() {
            let txns = vec![Txn::Get {
                ty,
                key: key.clone(),
            }];
            // A read takes no revision of its own: it is logged at the
            // store's.
            permit.send(Pending {
                revision: j.revision(),
                txns,
                undo: Vec::new(),
                done: None,
            });
        }
    }
}

/// One write's view of the shards it locked: every change made through it
/// is recorded, for the log, and so is its inverse, for undoing.
pub(crate) struct WriteTx<'t, 'l> {
    shards: &'t mut Locked<'l>,
    limits: Limits,
    txns: Vec<Txn>,
    undo: Vec<Change>,
}

impl<'t, 'l> WriteTx<'t, 'l> {
    fn new(shards: &'t mut Locked<'l>, limits: Limits) -> WriteTx<'t, 'l> {
        WriteTx {
            shards,
            limits,
            txns: Vec::new(),
            undo: Vec::new(),
        }
    }

    /// The changes to `key`, which must be one of the keys the write locked.
    pub(crate) fn at<'s>(&'s mut self, key: &'s Key) -> KeyTx<'s> {
        KeyTx {
            shard: self.shards.shard(key.as_str()),
            key,
            limits: self.limits,
            txns: &mut self.txns,
            undo: &mut self.undo,
        }
    }

    /// Puts every changed value back as it was, newest change first.
    fn rollback(&mut self) {
        self.txns.clear();
        while let Some(change) = self.undo.pop() {
            self.shards.shard(change.txn.key().as_str()).apply(change);
        }
    }

    fn finish(self) -> (Vec<Txn>, Vec<Change>) {
        (self.txns, self.undo)
    }
}

/// A write's changes to one key, recorded in its [`WriteTx`].
pub(crate) struct KeyTx<'s> {
    shard: &'s mut Shard,
    key: &'s Key,
    limits: Limits,
    txns: &'s mut Vec<Txn>,
    undo: &'s mut Vec<Change>,
}

impl KeyTx<'_> {
    pub(crate) fn key(&self) -> &Key {
        self.key
    }

    pub(crate) fn get(&self, ty: ValueType) -> Option<ValueRef<'_>> {
        self.shard.get(ty, self.key.as_str())
    }

    /// When the key of type `ty` expires, if it exists and has a TTL.
    pub(crate) fn expires(&self, ty: ValueType) -> Option<u64> {
        self.shard.found(ty, self.key.as_str())?.expires_ms
    }

    /// The revision of the key's last change as type `ty`, if it has one,
    /// before this write.
    pub(crate) fn revision(&self, ty: ValueType) -> Option<u64> {
        self.shard.found(ty, self.key.as_str()).map(|f| f.revision)
    }

    /// Whether this write changed the key as type `ty` (and so its value
    /// will have the write's revision).
    pub(crate) fn changed(&self, ty: ValueType) -> bool {
        self.txns
            .iter()
            .any(|t| t.value_type() == ty && t.key() == self.key)
    }

    /// Stores `value`, to expire at `at_ms` (or never), unless it is over
    /// the limits.
    pub(crate) fn put(&mut self, value: Value, at_ms: Option<u64>) -> Result<(), LimitError> {
        let ty = value.value_type();
        self.settle(ty);
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
        let deadline = self.shard.deadline(ty, self.key.as_str());
        let old = self.shard.put(self.key.clone(), value, 0);
        if at_ms.is_some() || deadline.is_some() {
            // Said even when dropped: a log may keep the expiry apart from
            // the value (PostgreSQL does).
            self.txns.push(Txn::Expiry {
                ty,
                key: self.key.clone(),
                at_ms,
            });
            self.shard.set_deadline(ty, self.key, at_ms);
        }
        self.restore(ty, old, deadline);
        Ok(())
    }

    /// Expires the key of type `ty` if its deadline has passed (logging
    /// its expiry), so that a write sees it as absent, as reads do; returns
    /// whether it did.
    pub(crate) fn settle(&mut self, ty: ValueType) -> bool {
        let Some(deadline) = self.shard.deadline(ty, self.key.as_str()) else {
            return false;
        };
        if deadline > now_ms() {
            return false;
        }
        let Some(old) = self.shard.remove(ty, self.key.as_str(), 0) else {
            return false;
        };
        self.txns.push(Txn::Expire {
            ty,
            key: self.key.clone(),
        });
        self.restore(ty, Some(old), Some(deadline));
        true
    }

    /// Removes the key of type `ty`; returns whether it was there. Removing
    /// an absent key records nothing.
    pub(crate) fn delete(&mut self, ty: ValueType) -> bool {
        self.settle(ty);
        let deadline = self.shard.deadline(ty, self.key.as_str());
        let Some(old) = self.shard.remove(ty, self.key.as_str(), 0) else {
            return false;
        };
        self.txns.push(Txn::Delete {
            ty,
            key: self.key.clone(),
        });
        self.restore(ty, Some(old), deadline);
        true
    }

    /// Adds `member` to the set (creating it), or removes it (`!present`);
    /// returns whether that changed the set. Only the member is logged.
    pub(crate) fn set_member(&mut self, member: &str, present: bool) -> Result<bool, LimitError> {
        self.settle(ValueType::Set);
        let set = match self.get(ValueType::Set) {
            Some(ValueRef::Set(s)) => Some(s),
            _ => None,
        };
        if set.map_or(!present, |s| s.contains(member) == present) {
            return Ok(false);
        }
        let old = set.map(|s| Size {
            bytes: set_data_len(s),
            entries: s.len(),
        });
        let was = self.revision(ValueType::Set).unwrap_or_default();
        if present {
            let base = old.unwrap_or_default();
            let new = Size {
                bytes: base.bytes + member.len(),
                entries: base.entries + 1,
            };
            self.limits.check_size(self.key, ValueType::Set, new, old)?;
        }
        let undo = match old {
            None => self.removing(ValueType::Set),
            Some(_) => Change::new(
                was,
                Txn::SetMember {
                    key: self.key.clone(),
                    member: member.to_owned(),
                    present: !present,
                },
            ),
        };
        self.apply(
            Txn::SetMember {
                key: self.key.clone(),
                member: member.to_owned(),
                present,
            },
            undo,
        );
        Ok(true)
    }

    /// Sets `field` of the map (creating it) to `value`, or removes it
    /// (`None`); returns whether there was anything to do. Only the field is
    /// logged.
    pub(crate) fn map_field(
        &mut self,
        field: &str,
        value: Option<String>,
    ) -> Result<bool, LimitError> {
        self.settle(ValueType::Map);
        let map = match self.get(ValueType::Map) {
            Some(ValueRef::Map(m)) => Some(m),
            _ => None,
        };
        let before = map.and_then(|m| m.get(field)).cloned();
        if value.is_none() && before.is_none() {
            return Ok(false);
        }
        let old = map.map(|m| Size {
            bytes: map_data_len(m),
            entries: m.len(),
        });
        let was = self.revision(ValueType::Map).unwrap_or_default();
        if let Some(v) = &value {
            let base = old.unwrap_or_default();
            let replaced = before.as_ref().map_or(0, |b| field.len() + b.len());
            let new = Size {
                bytes: base.bytes - replaced + field.len() + v.len(),
                entries: base.entries + usize::from(before.is_none()),
            };
            self.limits.check_size(self.key, ValueType::Map, new, old)?;
        }
        let undo = match old {
            None => self.removing(ValueType::Map),
            Some(_) => Change::new(
                was,
                Txn::MapField {
                    key: self.key.clone(),
                    field: field.to_owned(),
                    value: before,
                },
            ),
        };
        self.apply(
            Txn::MapField {
                key: self.key.clone(),
                field: field.to_owned(),
                value,
            },
            undo,
        );
        Ok(true)
    }

    /// Applies `txn` to the shard and records it with its inverse.
    fn apply(&mut self, txn: Txn, undo: Change) {
        txn.clone().apply_to(&mut *self.shard);
        self.txns.push(txn);
        self.undo.push(undo);
    }

    /// Records how to put back what the key of type `ty` held before: `old`
    /// at its revision, with its creation and its `deadline`, or nothing.
    fn restore(&mut self, ty: ValueType, old: Option<Revised<Value>>, deadline: Option<u64>) {
        let key = self.key.clone();
        // Undone newest first: the creation and the deadline are given back
        // after the value.
        if let Some(old) = old.as_ref().filter(|old| old.created < old.revision) {
            let txn = Txn::Created {
                ty,
                key: key.clone(),
                revision: old.created,
            };
            self.undo.push(Change::new(old.revision, txn));
        }
        if let Some(at) = deadline {
            let txn = Txn::Expiry {
                ty,
                key: key.clone(),
                at_ms: Some(at),
            };
            self.undo.push(Change::new(0, txn));
        }
        let undo = match old {
            Some(Revised {
                value, revision, ..
            }) => Change::new(revision, Txn::Put { key, value }),
            None => self.removing(ty),
        };
        self.undo.push(undo);
    }

    /// The change that removes what the write created.
    fn removing(&self, ty: ValueType) -> Change {
        let key = self.key.clone();
        Change::new(0, Txn::Delete { ty, key })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use kvs_testkit::wait_until;

    use super::*;
    use crate::store::Db;
    use crate::store::flaky::{FlakyLog, PATIENT, spawn_put, store, wait_down};

    fn stored(db: &Db, key: &Key, value: Value) {
        let txn = Txn::Put {
            key: key.clone(),
            value,
        };
        db.apply(Change::new(1, txn));
    }

    #[test]
    fn a_value_over_a_limit_may_replace_a_larger_one_and_is_undone() {
        let key = Key::parse("k").unwrap();
        let db = Db::default();
        // Stored under a higher limit, or before there was one.
        stored(&db, &key, Value::Str("abcd".into()));
        let limits = Limits {
            max_value_bytes: 2,
            max_entries: usize::MAX,
        };
        db.update([key.as_str()], |shards| {
            let mut tx = WriteTx::new(shards, limits);
            let mut k = tx.at(&key);
            assert!(k.put(Value::Str("abc".into()), None).is_ok());
            assert!(k.put(Value::Str("abcd".into()), None).is_err());
            assert!(k.put(Value::Str("ab".into()), None).is_ok());
            tx.rollback();
        });
        assert_eq!(db.get(ValueType::Str, "k"), Some(Value::Str("abcd".into())));
    }

    #[test]
    fn member_and_field_changes_log_one_entry_keep_limits_and_undo() {
        let key = Key::parse("k").unwrap();
        let db = Db::default();
        stored(&db, &key, Value::Set(["a".into()].into()));
        let limits = Limits {
            max_value_bytes: 3,
            max_entries: 2,
        };
        let (txns, undo) = db.update([key.as_str()], |shards| {
            let mut tx = WriteTx::new(shards, limits);
            let mut k = tx.at(&key);
            assert!(!k.set_member("a", true).unwrap(), "already there");
            assert!(!k.set_member("b", false).unwrap(), "not there");
            assert!(k.set_member("b", true).unwrap());
            assert!(k.set_member("c", true).is_err(), "a third entry");
            assert!(k.set_member("a", false).unwrap());
            assert!(k.map_field("f", Some("v".into())).unwrap());
            assert!(k.map_field("f", Some("long".into())).is_err(), "5 bytes");
            assert!(k.map_field("f", Some("w".into())).unwrap());
            assert!(!k.map_field("g", None).unwrap());
            tx.finish()
        });
        assert_eq!(txns.len(), 4, "{txns:?}");
        assert!(txns.iter().all(|t| t.size() < 40), "{txns:?}");
        assert_eq!(
            db.get(ValueType::Set, "k"),
            Some(Value::Set(["b".into()].into()))
        );
        // As the committer undoes a write: newest first, each change on its key.
        for change in undo.into_iter().rev() {
            db.apply(change);
        }
        assert_eq!(
            db.get(ValueType::Set, "k"),
            Some(Value::Set(["a".into()].into()))
        );
        assert_eq!(db.get(ValueType::Map, "k"), None, "created, then undone");
    }

    #[test]
    fn an_undone_delete_gives_the_value_back_with_its_revisions() {
        let key = Key::parse("k").unwrap();
        let db = Db::default();
        stored(&db, &key, Value::Int(1));
        let txn = Txn::Put {
            key: key.clone(),
            value: Value::Int(2),
        };
        db.apply(Change::new(5, txn));
        let revisions = |db: &Db| {
            db.view(ValueType::Int, "k", |f| {
                f.map(|f| (f.value.to_value(), f.revision, f.created))
            })
            .0
        };
        assert_eq!(revisions(&db), Some((Value::Int(2), 5, 1)));
        let (_, undo) = db.update([key.as_str()], |shards| {
            let mut tx = WriteTx::new(shards, Limits::NONE);
            let mut k = tx.at(&key);
            assert!(k.delete(ValueType::Int));
            k.put(Value::Int(3), None).unwrap();
            tx.finish()
        });
        for change in undo.into_iter().rev() {
            db.apply(change);
        }
        assert_eq!(revisions(&db), Some((Value::Int(2), 5, 1)));
    }

    #[test]
    fn one_write_over_many_shards_rolls_back_all_of_them() {
        let db = Db::default();
        let keys: Vec<Key> = (0..40)
            .map(|i| Key::parse(&format!("k{i}")).unwrap())
            .collect();
        for key in &keys {
            stored(&db, key, Value::Int(1));
        }
        db.update(keys.iter().map(|k| k.as_str()), |shards| {
            let mut tx = WriteTx::new(shards, Limits::NONE);
            for key in &keys {
                let mut k = tx.at(key);
                assert!(!k.changed(ValueType::Int));
                k.put(Value::Int(2), None).unwrap();
                assert!(k.changed(ValueType::Int));
                assert!(k.delete(ValueType::Int));
                assert!(!k.changed(ValueType::Uint));
            }
            tx.rollback();
            assert!(tx.txns.is_empty());
        });
        for key in &keys {
            let found = db.view(ValueType::Int, key.as_str(), |f| {
                f.map(|f| (f.value.to_value(), f.revision))
            });
            assert_eq!(found.0, Some((Value::Int(1), 1)), "{key}");
        }
    }

    #[test]
    #[should_panic(expected = "not in a locked shard")]
    fn a_key_whose_shard_is_not_locked_is_refused() {
        let db = Db::default();
        let keys: Vec<Key> = (0..200)
            .map(|i| Key::parse(&format!("k{i}")).unwrap())
            .collect();
        // With 64 shards, some key of 200 lives elsewhere than k0.
        db.update([keys[0].as_str()], |shards| {
            let mut tx = WriteTx::new(shards, Limits::NONE);
            for key in &keys {
                tx.at(key);
            }
        });
    }

    fn keys(n: usize) -> Vec<Key> {
        (0..n)
            .map(|i| Key::parse(&format!("k{i}")).unwrap())
            .collect()
    }

    /// Puts `value(i)` under the `i`th of `keys`, all in one transaction.
    async fn put_all(
        store: &Store,
        keys: &[Key],
        value: impl Fn(usize) -> i32,
    ) -> Result<Written<()>, JournalError> {
        let names: Vec<&Key> = keys.iter().collect();
        store
            .transact(&names, |tx| {
                for (i, key) in keys.iter().enumerate() {
                    tx.at(key)
                        .put(Value::Int(value(i)), None)
                        .expect("no limits");
                }
                Ok(())
            })
            .await
    }

    fn ints(store: &Store, keys: &[Key]) -> Vec<Option<Value>> {
        keys.iter()
            .map(|k| store.db.get(ValueType::Int, k.as_str()))
            .collect()
    }

    #[tokio::test]
    async fn a_transaction_is_one_revision_in_the_log_and_undone_whole_when_its_batch_fails() {
        let (store, log, _committer) = store(Durability::Sync, PATIENT);
        let keys = keys(16);
        let written = put_all(&store, &keys, |i| i as i32).await.unwrap();
        assert!(written.changed);
        let accepted = log.accepted.lock().unwrap().clone();
        assert_eq!(accepted.len(), keys.len());
        assert!(accepted.iter().all(|c| c.revision == written.revision));
        let before = ints(&store, &keys);

        log.failing.store(true, Ordering::SeqCst);
        let refused = {
            let (store, keys) = (store.clone(), keys.clone());
            tokio::spawn(async move { put_all(&store, &keys, |_| 99).await })
        };
        wait_down(&store).await;
        assert_eq!(ints(&store, &keys), before, "every key undone");
        log.failing.store(false, Ordering::SeqCst);
        assert!(matches!(
            refused.await.unwrap(),
            Err(JournalError::Unavailable(_))
        ));
        assert_eq!(ints(&store, &keys), before);
        assert_eq!(log.accepted.lock().unwrap().len(), keys.len());
    }

    /// Reads `a` (and `b`) in a transaction that changes nothing.
    fn spawn_read(
        store: &Arc<Store>,
    ) -> tokio::task::JoinHandle<Result<Written<Option<Value>>, JournalError>> {
        let store = store.clone();
        tokio::spawn(async move {
            let (a, b) = (Key::parse("a").unwrap(), Key::parse("b").unwrap());
            store
                .transact(&[&b, &a], |tx| {
                    assert!(tx.at(&b).get(ValueType::Int).is_none());
                    Ok(tx.at(&a).get(ValueType::Int).map(ValueRef::to_value))
                })
                .await
        })
    }

    /// Holds the log's appends and puts `v` under a; returns once its
    /// batch is held, and a transaction reading it waits for it.
    async fn held_put_and_read(
        store: &Arc<Store>,
        log: &FlakyLog,
    ) -> (
        tokio::task::JoinHandle<Result<u64, JournalError>>,
        tokio::task::JoinHandle<Result<Written<Option<Value>>, JournalError>>,
    ) {
        log.holding.send_replace(true);
        let write = spawn_put(store, "a", 2);
        wait_until("the batch is held", PATIENT, || {
            log.begun.load(Ordering::SeqCst) > 0
        })
        .await;
        let read = spawn_read(store);
        wait_until("the read waits", PATIENT, || store.journal.waiting() > 0).await;
        (write, read)
    }

    #[tokio::test]
    async fn a_transaction_that_changes_nothing_answers_what_it_saw_once_durable() {
        let (store, log, _committer) = store(Durability::Sync, PATIENT);
        let (write, read) = held_put_and_read(&store, &log).await;
        log.holding.send_replace(false);
        let revision = write.await.unwrap().unwrap();
        let read = read.await.unwrap().unwrap();
        assert_eq!(
            (read.out, read.revision, read.changed),
            (Some(Value::Int(2)), revision, false)
        );
    }

    #[tokio::test]
    async fn a_transaction_that_changes_nothing_never_answers_what_was_undone() {
        let (store, log, _committer) = store(Durability::Sync, PATIENT);
        let (write, read) = held_put_and_read(&store, &log).await;
        log.failing.store(true, Ordering::SeqCst);
        log.holding.send_replace(false);
        assert!(matches!(
            read.await.unwrap(),
            Err(JournalError::Unavailable(_))
        ));
        log.failing.store(false, Ordering::SeqCst);
        assert!(write.await.unwrap().is_err());
    }
}
