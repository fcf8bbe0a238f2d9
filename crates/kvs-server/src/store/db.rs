//! The in-memory tables: one hash table per value type, split into shards.
//!
//! A key's six types live in the same shard, so `/del/{key}` changes them
//! under one lock. Shards use std's `RwLock`: critical sections are a hash
//! lookup and a clone, never an await, so an async lock would only add cost.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use kvs_core::{Key, State, Value, ValueType};

/// Enough shards that two cores (or twenty) rarely meet on one lock.
const SHARDS: usize = 64;

#[derive(Default)]
pub struct Shard {
    tables: [HashMap<Key, Value>; ValueType::ALL.len()],
}

impl Shard {
    pub fn get(&self, ty: ValueType, key: &str) -> Option<&Value> {
        self.tables[ty.index()].get(key)
    }

    /// Stores `value` under `key` in its type's table; returns what was there.
    pub fn put(&mut self, key: Key, value: Value) -> Option<Value> {
        self.tables[value.value_type().index()].insert(key, value)
    }

    pub fn remove(&mut self, ty: ValueType, key: &str) -> Option<Value> {
        self.tables[ty.index()].remove(key)
    }

    /// Puts back what a key held before: `None` removes it.
    pub fn restore(&mut self, ty: ValueType, key: &Key, old: Option<Value>) {
        match old {
            Some(v) => {
                self.put(key.clone(), v);
            }
            None => {
                self.remove(ty, key.as_str());
            }
        }
    }
}

pub struct Db {
    shards: Box<[RwLock<Shard>]>,
    hasher: RandomState,
}

impl Default for Db {
    fn default() -> Db {
        Db {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            hasher: RandomState::new(),
        }
    }
}

impl Db {
    fn shard_of(&self, key: &str) -> &RwLock<Shard> {
        &self.shards[self.hasher.hash_one(key) as usize % SHARDS]
    }

    // A poisoned lock means a panic inside a critical section, which holds
    // no await and no user code; the table is still consistent.
    pub fn read(&self, key: &str) -> RwLockReadGuard<'_, Shard> {
        self.shard_of(key).read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn write(&self, key: &str) -> RwLockWriteGuard<'_, Shard> {
        self.shard_of(key)
            .write()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Empties every table (before a replay starts over).
    pub fn clear(&self) {
        for shard in self.shards.iter() {
            *shard.write().unwrap_or_else(|e| e.into_inner()) = Shard::default();
        }
    }

    /// A copy of one value.
    pub fn get(&self, ty: ValueType, key: &str) -> Option<Value> {
        self.read(key).get(ty, key).cloned()
    }

    /// Keys of type `ty` that start with `prefix` and sort after `after`,
    /// sorted, at most `limit` of them.
    pub fn keys(&self, ty: ValueType, prefix: &str, after: Option<&str>, limit: usize) -> Vec<Key> {
        let mut found = Vec::new();
        for shard in self.shards.iter() {
            let shard = shard.read().unwrap_or_else(|e| e.into_inner());
            let mut keys: Vec<&Key> = shard.tables[ty.index()]
                .keys()
                .filter(|k| k.as_str().starts_with(prefix) && after.is_none_or(|a| k.as_str() > a))
                .collect();
            // Only this shard's first `limit` can make the overall first `limit`.
            if keys.len() > limit {
                keys.select_nth_unstable(limit);
                keys.truncate(limit);
            }
            found.extend(keys.into_iter().cloned());
        }
        found.sort_unstable();
        found.truncate(limit);
        found
    }

    /// How many keys each type holds, in [`ValueType::ALL`] order.
    pub fn counts(&self) -> [usize; ValueType::ALL.len()] {
        let mut counts = [0; ValueType::ALL.len()];
        for shard in self.shards.iter() {
            let shard = shard.read().unwrap_or_else(|e| e.into_inner());
            for (c, t) in counts.iter_mut().zip(&shard.tables) {
                *c += t.len();
            }
        }
        counts
    }
}

/// Replay applies transactions straight to the tables.
impl State for &Db {
    fn put(&mut self, key: Key, value: Value) {
        self.write(key.as_str()).put(key, value);
    }

    fn delete(&mut self, ty: ValueType, key: &Key) {
        self.write(key.as_str()).remove(ty, key.as_str());
    }

    fn int(&self, key: &Key) -> Option<i32> {
        match self.read(key.as_str()).get(ValueType::Int, key.as_str()) {
            Some(Value::Int(v)) => Some(*v),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_listed_sorted_by_prefix_after_a_cursor_and_limited() {
        let db = Db::default();
        for k in ["b2", "a1", "b1", "b3", "c1"] {
            db.write(k).put(Key::parse(k).unwrap(), Value::Int(0));
        }
        db.write("b9")
            .put(Key::parse("b9").unwrap(), Value::Uint(0));
        let names = |v: Vec<Key>| v.iter().map(|k| k.to_string()).collect::<Vec<_>>();
        assert_eq!(
            names(db.keys(ValueType::Int, "", None, 100)),
            ["a1", "b1", "b2", "b3", "c1"]
        );
        assert_eq!(
            names(db.keys(ValueType::Int, "b", Some("b1"), 100)),
            ["b2", "b3"]
        );
        assert_eq!(names(db.keys(ValueType::Int, "b", None, 2)), ["b1", "b2"]);
        assert_eq!(db.counts(), [5, 1, 0, 0, 0, 0]);
    }
}
