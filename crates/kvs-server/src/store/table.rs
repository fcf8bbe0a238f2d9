//! One value type's table in a shard: its entries packed in a vector,
//! found through an index of their positions.
//!
//! A hash table that has just grown is about half empty, and its buckets
//! are touched all over, so an empty bucket costs as much memory as a full
//! one. Here a bucket holds a 4-byte position; the entries (key, value,
//! revisions) sit side by side in a vector whose spare capacity is never
//! written, so never resident. A removal moves the last entry into the
//! hole.
//!
//! The caller hashes a key once per operation with the hasher it gave the
//! table and hands the hash over, so that one hash also picks the shard.

use hashbrown::HashTable;
use kvs_core::Key;

/// A value with the revisions of its last change and of its creation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Revised<T> {
    pub(crate) value: T,
    pub(crate) revision: u64,
    pub(crate) created: u64,
}

struct Entry<T> {
    key: Key,
    stored: Revised<T>,
}

pub(super) struct Table<T> {
    /// Positions in `entries`, hashed by their entry's key.
    index: HashTable<u32>,
    entries: Vec<Entry<T>>,
    /// The store's one keyed hasher. Growing the index and moving an entry
    /// rehash with it.
    hasher: KeyHasher,
}

/// The hasher of every table: aHash with random per-process keys, since
/// clients choose the keys (its keyed form is built to resist collisions
/// forged without the keys); cheaper than SipHash, which was a fifth of a
/// replay.
pub(super) type KeyHasher = ahash::RandomState;

impl<T> Table<T> {
    pub(super) fn new(hasher: KeyHasher) -> Table<T> {
        Table {
            index: HashTable::new(),
            entries: Vec::new(),
            hasher,
        }
    }

    fn position(&self, hash: u64, key: &str) -> Option<usize> {
        let entries = &self.entries;
        self.index
            .find(hash, |&at| entries[at as usize].key.as_str() == key)
            .map(|&at| at as usize)
    }

    pub(super) fn get(&self, hash: u64, key: &str) -> Option<&Revised<T>> {
        let at = self.position(hash, key)?;
        Some(&self.entries[at].stored)
    }

    pub(super) fn get_mut(&mut self, hash: u64, key: &str) -> Option<&mut Revised<T>> {
        let at = self.position(hash, key)?;
        Some(&mut self.entries[at].stored)
    }

    /// Stores `stored` under `key`, which the table does not hold.
    fn push(&mut self, hash: u64, key: Key, stored: Revised<T>) -> &mut Revised<T> {
        let at = self.entries.len();
        let position = u32::try_from(at).expect("a shard's table holds fewer than 2^32 keys");
        let (entries, hasher) = (&self.entries, &self.hasher);
        self.index.insert_unique(hash, position, |&at| {
            hasher.hash_one(entries[at as usize].key.as_str())
        });
        self.entries.push(Entry { key, stored });
        &mut self.entries[at].stored
    }

    /// Stores `value` under `key` at `revision`; returns what was there. A
    /// value put over another keeps its creation (and the key already
    /// there); one put where there was none was created now.
    pub(super) fn put(
        &mut self,
        hash: u64,
        key: Key,
        value: T,
        revision: u64,
    ) -> Option<Revised<T>> {
        match self.position(hash, key.as_str()) {
            Some(at) => {
                let stored = &mut self.entries[at].stored;
                let created = stored.created;
                let new = Revised {
                    value,
                    revision,
                    created,
                };
                Some(std::mem::replace(stored, new))
            }
            None => {
                let created = revision;
                let new = Revised {
                    value,
                    revision,
                    created,
                };
                self.push(hash, key, new);
                None
            }
        }
    }

    /// The value under `key`, `make` stored there first if it is absent.
    pub(super) fn get_or_insert_with(
        &mut self,
        hash: u64,
        key: &Key,
        make: impl FnOnce() -> Revised<T>,
    ) -> &mut Revised<T> {
        match self.position(hash, key.as_str()) {
            Some(at) => &mut self.entries[at].stored,
            None => self.push(hash, key.clone(), make()),
        }
    }

    pub(super) fn remove(&mut self, hash: u64, key: &str) -> Option<Revised<T>> {
        let entries = &self.entries;
        let found = self
            .index
            .find_entry(hash, |&at| entries[at as usize].key.as_str() == key)
            .ok()?;
        let at = found.remove().0 as usize;
        let removed = self.entries.swap_remove(at);
        // The last entry now sits where the removed one was.
        if let Some(moved) = self.entries.get(at) {
            let from = u32::try_from(self.entries.len()).expect("it had a position");
            let moved_hash = self.hasher.hash_one(moved.key.as_str());
            *self
                .index
                .find_mut(moved_hash, |&p| p == from)
                .expect("every entry is indexed") = at as u32;
        }
        Some(removed.stored)
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = &Key> {
        self.entries.iter().map(|e| &e.key)
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revised(value: u32, created: u64) -> Revised<u32> {
        Revised {
            value,
            revision: value.into(),
            created,
        }
    }

    #[test]
    fn removals_anywhere_keep_every_other_key_found() {
        let hasher = KeyHasher::new();
        let mut table = Table::new(hasher.clone());
        let keys: Vec<Key> = (0..200)
            .map(|i| Key::parse(&format!("k{i}")).unwrap())
            .collect();
        for (i, key) in (0..).zip(&keys) {
            let hash = hasher.hash_one(key.as_str());
            assert_eq!(table.put(hash, key.clone(), i, i.into()), None);
        }
        // The first, a middle one, the last, then every third: each moves
        // a different entry into its place.
        let mut removed = vec![0, 100, 199];
        removed.extend((1..199).step_by(3).filter(|i| *i != 100));
        for &i in &removed {
            let key = keys[i].as_str();
            let hash = hasher.hash_one(key);
            let i = i as u32;
            assert_eq!(table.remove(hash, key), Some(revised(i, i.into())));
            assert_eq!(table.remove(hash, key), None, "already gone");
        }
        for (i, key) in (0..).zip(&keys) {
            let hash = hasher.hash_one(key.as_str());
            let want = (!removed.contains(&(i as usize))).then(|| revised(i, i.into()));
            assert_eq!(table.get(hash, key.as_str()), want.as_ref(), "{key}");
        }
        assert_eq!(table.len(), keys.len() - removed.len());
        assert_eq!(table.keys().count(), table.len());
    }

    #[test]
    fn a_put_over_a_key_keeps_its_creation_and_one_entry() {
        let hasher = KeyHasher::new();
        let mut table = Table::new(hasher.clone());
        let key = Key::parse("k").unwrap();
        let hash = hasher.hash_one("k");
        assert_eq!(table.put(hash, key.clone(), 1, 1), None);
        assert_eq!(table.put(hash, key.clone(), 2, 2), Some(revised(1, 1)));
        let made = table.get_or_insert_with(hash, &key, || revised(9, 9));
        assert_eq!(*made, revised(2, 1), "there already");
        assert_eq!(table.len(), 1);
    }
}
