//! The in-memory tables: one hash table per value type, split into shards.
//!
//! A key's six types live in the same shard, so `/del/{key}` changes them
//! under one lock. Shards use parking_lot's `RwLock`: critical sections are a hash
//! lookup and a clone, never an await, so an async lock would only add cost.
//!
//! Each table holds its type in the smallest form it has, not as a
//! [`Value`]: a table's buckets are most of what a key costs, and a `Value`
//! is as large as its largest variant (32 bytes), where a string needs 16 and
//! a number 4. Reads get a [`ValueRef`] borrowed from the table. A table
//! is a [`Table`], dense entries found through an index; a key is hashed
//! once per operation, and that hash also picks its shard.
//!
//! Callers never hold a shard's lock: [`Db`]'s methods take it and let it
//! go, and a read that needs less than a whole copy passes a closure to
//! [`Db::view`].
//!
//! Every value carries the revision of its last change (its ETag) and
//! that of its creation (what made it exist after it was absent), and
//! every shard the highest revision applied to it, deletes included: a read
//! that must not show what is not durable yet compares that with the
//! journal's durable revision (see [`super::Store::read`]).
//!
//! A key with a TTL has a deadline in its shard, by key and by time; keys
//! without one cost nothing. A key whose deadline has passed reads as
//! absent at once, before the expirer ([`super::expiry`]) logs its
//! expiry.

use std::collections::{BTreeSet, HashMap};

use kvs_core::change::UNSTAMPED;
use kvs_core::value::{MapValue, SetValue};
use kvs_core::{Change, Key, State, Txn, Value, ValueType};
use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::expiry::now_ms;
pub(crate) use super::table::Revised;
use super::table::{KeyHasher, Table};

/// Enough shards that two cores (or twenty) rarely meet on one lock.
const SHARDS: usize = 64;

/// A stored value, borrowed from its table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum ValueRef<'a> {
    Int(i32),
    Uint(u32),
    Float(f32),
    Str(&'a str),
    Map(&'a MapValue),
    Set(&'a SetValue),
}

impl ValueRef<'_> {
    /// A copy of the value.
    pub(crate) fn to_value(self) -> Value {
        match self {
            ValueRef::Int(v) => Value::Int(v),
            ValueRef::Uint(v) => Value::Uint(v),
            ValueRef::Float(v) => Value::Float(v),
            ValueRef::Str(s) => Value::Str(s.to_owned()),
            ValueRef::Map(m) => Value::Map(m.clone()),
            ValueRef::Set(s) => Value::Set(s.clone()),
        }
    }
}

/// A stored value, borrowed, with its revisions and when it expires.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Found<'a> {
    pub(crate) value: ValueRef<'a>,
    /// That of its last change.
    pub(crate) revision: u64,
    /// That of its creation.
    pub(crate) created: u64,
    /// Milliseconds since the Unix epoch; `None`: never.
    pub(crate) expires_ms: Option<u64>,
}

/// How a type's values sit in its table.
trait Stored {
    fn view(&self) -> ValueRef<'_>;
    /// The value, moved out of the table without a copy.
    fn into_value(self) -> Value;
}

/// Implements [`Stored`] for each type's table form: what its `Value`
/// variant holds, except that a string is a `Box<str>` (16 bytes; `String`
/// adds a capacity word). `|v| view` borrows it.
macro_rules! stored {
    ($($variant:ident($form:ty) => |$v:ident| $view:expr;)*) => {$(
        impl Stored for $form {
            fn view(&self) -> ValueRef<'_> {
                let $v = self;
                ValueRef::$variant($view)
            }
            fn into_value(self) -> Value {
                Value::$variant(self.into())
            }
        }
    )*};
}

stored! {
    Int(i32) => |v| *v;
    Uint(u32) => |v| *v;
    Float(f32) => |v| *v;
    Str(Box<str>) => |v| v;
    Map(MapValue) => |v| v;
    Set(SetValue) => |v| v;
}

/// A table seen without its value type, so that one `match` on a
/// [`ValueType`] picks it for any operation that needs no typed value.
/// Each takes the key's hash ([`Table::hash`]).
trait Untyped {
    fn view(&self, hash: u64, key: &str) -> Option<Found<'_>>;
    fn take(&mut self, hash: u64, key: &str) -> Option<Revised<Value>>;
    fn stamp(&mut self, hash: u64, key: &str, revision: u64);
    fn set_created(&mut self, hash: u64, key: &str, revision: u64);
    fn keys(&self) -> Box<dyn Iterator<Item = &Key> + '_>;
    fn len(&self) -> usize;
}

impl<T: Stored> Untyped for Table<T> {
    fn view(&self, hash: u64, key: &str) -> Option<Found<'_>> {
        self.get(hash, key).map(|r| Found {
            value: r.value.view(),
            revision: r.revision,
            created: r.created,
            expires_ms: None,
        })
    }
    fn take(&mut self, hash: u64, key: &str) -> Option<Revised<Value>> {
        self.remove(hash, key).map(taken)
    }
    /// A value made without a revision was made by this change.
    fn stamp(&mut self, hash: u64, key: &str, revision: u64) {
        if let Some(r) = self.get_mut(hash, key) {
            r.revision = revision;
            if r.created == UNSTAMPED {
                r.created = revision;
            }
        }
    }
    fn set_created(&mut self, hash: u64, key: &str, revision: u64) {
        if let Some(r) = self.get_mut(hash, key) {
            r.created = revision;
        }
    }
    fn keys(&self) -> Box<dyn Iterator<Item = &Key> + '_> {
        Box::new(Table::keys(self))
    }
    fn len(&self) -> usize {
        Table::len(self)
    }
}

/// A value taken out of its table.
fn taken<T: Stored>(r: Revised<T>) -> Revised<Value> {
    Revised {
        value: r.value.into_value(),
        revision: r.revision,
        created: r.created,
    }
}

/// [`Table::put`], what was there taken out. `at`: the key's hash, the
/// key, the revision of the put.
fn swap<T: Stored>(
    table: &mut Table<T>,
    (hash, key, revision): (u64, Key, u64),
    value: T,
) -> Option<Revised<Value>> {
    table.put(hash, key, value, revision).map(taken)
}

pub(crate) struct Shard {
    int: Table<i32>,
    uint: Table<u32>,
    float: Table<f32>,
    str: Table<Box<str>>,
    map: Table<MapValue>,
    set: Table<SetValue>,
    /// The one its tables hash with, for the hash they are handed.
    hasher: KeyHasher,
    /// The highest revision applied to any key of the shard.
    last: u64,
    /// When each key with a TTL expires, by type.
    deadlines: [HashMap<Key, u64>; ValueType::ALL.len()],
    /// The same deadlines in time order, for the expirer.
    by_time: BTreeSet<(u64, ValueType, Key)>,
}

impl Shard {
    fn new(hasher: KeyHasher) -> Shard {
        Shard {
            int: Table::new(hasher.clone()),
            uint: Table::new(hasher.clone()),
            float: Table::new(hasher.clone()),
            str: Table::new(hasher.clone()),
            map: Table::new(hasher.clone()),
            set: Table::new(hasher.clone()),
            hasher,
            last: 0,
            deadlines: Default::default(),
            by_time: BTreeSet::new(),
        }
    }

    fn hash(&self, key: &str) -> u64 {
        self.hasher.hash_one(key)
    }

    fn table(&self, ty: ValueType) -> &dyn Untyped {
        match ty {
            ValueType::Int => &self.int,
            ValueType::Uint => &self.uint,
            ValueType::Float => &self.float,
            ValueType::Str => &self.str,
            ValueType::Map => &self.map,
            ValueType::Set => &self.set,
        }
    }

    fn table_mut(&mut self, ty: ValueType) -> &mut dyn Untyped {
        match ty {
            ValueType::Int => &mut self.int,
            ValueType::Uint => &mut self.uint,
            ValueType::Float => &mut self.float,
            ValueType::Str => &mut self.str,
            ValueType::Map => &mut self.map,
            ValueType::Set => &mut self.set,
        }
    }

    pub(crate) fn get(&self, ty: ValueType, key: &str) -> Option<ValueRef<'_>> {
        self.found(ty, key).map(|f| f.value)
    }

    /// The value of `key` as type `ty`, unless it is absent or expired.
    pub(crate) fn found(&self, ty: ValueType, key: &str) -> Option<Found<'_>> {
        self.found_at(self.hash(key), ty, key)
    }

    /// [`Shard::found`], `key` hashed already.
    fn found_at(&self, hash: u64, ty: ValueType, key: &str) -> Option<Found<'_>> {
        let mut found = self.table(ty).view(hash, key)?;
        if let Some(at) = self.deadline(ty, key) {
            if at <= now_ms() {
                return None;
            }
            found.expires_ms = Some(at);
        }
        Some(found)
    }

    /// When `key` of type `ty` expires, if it has a TTL (expired or not).
    pub(crate) fn deadline(&self, ty: ValueType, key: &str) -> Option<u64> {
        let deadlines = &self.deadlines[ty.index()];
        // Most shards hold no TTL at all: no hashing then.
        if deadlines.is_empty() {
            return None;
        }
        deadlines.get(key).copied()
    }

    /// `key` of type `ty` expires at `at_ms`, or never; an absent key gets
    /// no deadline.
    pub(crate) fn set_deadline(&mut self, ty: ValueType, key: &Key, at_ms: Option<u64>) {
        if let Some(old) = self.deadlines[ty.index()].remove(key.as_str()) {
            self.by_time.remove(&(old, ty, key.clone()));
        }
        if let Some(at) = at_ms
            && self
                .table(ty)
                .view(self.hash(key.as_str()), key.as_str())
                .is_some()
        {
            self.deadlines[ty.index()].insert(key.clone(), at);
            self.by_time.insert((at, ty, key.clone()));
        }
    }

    /// Keys whose deadline is at or before `now_ms`, earliest first, at
    /// most `limit`.
    pub(crate) fn due(&self, now_ms: u64, limit: usize) -> Vec<(ValueType, Key)> {
        self.by_time
            .iter()
            .take_while(|(at, ..)| *at <= now_ms)
            .take(limit)
            .map(|(_, ty, key)| (*ty, key.clone()))
            .collect()
    }

    /// Drops `key`'s deadline, if it has one: its value was replaced or
    /// removed.
    fn clear_deadline(&mut self, ty: ValueType, key: &str) {
        if self.deadlines[ty.index()].is_empty() {
            return;
        }
        if let Some((key, at)) = self.deadlines[ty.index()].remove_entry(key) {
            self.by_time.remove(&(at, ty, key));
        }
    }

    /// The highest revision applied to any key of the shard.
    pub(crate) fn last(&self) -> u64 {
        self.last
    }

    /// Stores `value` under `key` in its type's table at `revision`;
    /// returns what was there.
    /// Replaces the key's expiry too: the value is permanent.
    pub(crate) fn put(&mut self, key: Key, value: Value, revision: u64) -> Option<Revised<Value>> {
        self.put_at(self.hash(key.as_str()), key, value, revision)
    }

    /// [`Shard::put`], `key` hashed already.
    fn put_at(
        &mut self,
        hash: u64,
        key: Key,
        value: Value,
        revision: u64,
    ) -> Option<Revised<Value>> {
        self.last = self.last.max(revision);
        self.clear_deadline(value.value_type(), key.as_str());
        let at = (hash, key, revision);
        match value {
            Value::Int(v) => swap(&mut self.int, at, v),
            Value::Uint(v) => swap(&mut self.uint, at, v),
            Value::Float(v) => swap(&mut self.float, at, v),
            // Sheds any spare capacity; parsed strings have none.
            Value::Str(s) => swap(&mut self.str, at, s.into_boxed_str()),
            Value::Map(m) => swap(&mut self.map, at, m),
            Value::Set(s) => swap(&mut self.set, at, s),
        }
    }

    /// Removes `key` of type `ty`, a change at `revision`; returns what was there.
    pub(crate) fn remove(
        &mut self,
        ty: ValueType,
        key: &str,
        revision: u64,
    ) -> Option<Revised<Value>> {
        self.remove_at(self.hash(key), ty, key, revision)
    }

    /// [`Shard::remove`], `key` hashed already.
    fn remove_at(
        &mut self,
        hash: u64,
        ty: ValueType,
        key: &str,
        revision: u64,
    ) -> Option<Revised<Value>> {
        self.last = self.last.max(revision);
        self.clear_deadline(ty, key);
        self.table_mut(ty).take(hash, key)
    }

    /// Applies `change`: its value, if any is left, has its revision. A
    /// read (an audit record) changes nothing, its value's revision neither;
    /// an expiry time and a creation belong to the put beside them, which
    /// has stamped it.
    pub(crate) fn apply(&mut self, change: Change) {
        let hash = self.hash(change.txn.key().as_str());
        self.apply_at(hash, change);
    }

    /// [`Shard::apply`], its key hashed already. A put or a delete is one
    /// lookup: it is most of what a replay applies.
    fn apply_at(&mut self, hash: u64, change: Change) {
        let revision = change.revision;
        match change.txn {
            Txn::Get { .. } => {}
            Txn::Expiry { ty, key, at_ms } => self.set_deadline(ty, &key, at_ms),
            Txn::Created { ty, key, revision } => {
                self.table_mut(ty).set_created(hash, key.as_str(), revision);
            }
            Txn::Put { key, value } => {
                self.put_at(hash, key, value, revision);
            }
            Txn::Delete { ty, key } | Txn::Expire { ty, key } => {
                self.remove_at(hash, ty, key.as_str(), revision);
            }
            txn => {
                let (ty, key) = (txn.value_type(), txn.key().clone());
                txn.apply_to(self);
                self.last = self.last.max(revision);
                self.table_mut(ty).stamp(hash, key.as_str(), revision);
            }
        }
    }

    /// `key` of type `ty`, if it exists, was last changed at `revision`.
    pub(crate) fn stamp(&mut self, ty: ValueType, key: &Key, revision: u64) {
        self.last = self.last.max(revision);
        let hash = self.hash(key.as_str());
        self.table_mut(ty).stamp(hash, key.as_str(), revision);
    }
}

/// Transactions apply to a shard through [`Shard::apply`], which stamps
/// what they leave with their revision: replay, undoing a write, and the
/// member and field changes of the write path.
impl State for Shard {
    fn put(&mut self, key: Key, value: Value) {
        Shard::put(self, key, value, 0);
    }

    fn delete(&mut self, ty: ValueType, key: &Key) {
        self.remove(ty, key.as_str(), 0);
    }

    fn set_expiry(&mut self, ty: ValueType, key: &Key, at_ms: Option<u64>) {
        self.set_deadline(ty, key, at_ms);
    }

    fn int(&self, key: &Key) -> Option<i32> {
        let hash = self.hash(key.as_str());
        self.int.get(hash, key.as_str()).map(|r| r.value)
    }

    fn set_mut(&mut self, key: &Key, create: bool) -> Option<&mut SetValue> {
        let hash = self.hash(key.as_str());
        entry(&mut self.set, hash, key, create)
    }

    fn map_mut(&mut self, key: &Key, create: bool) -> Option<&mut MapValue> {
        let hash = self.hash(key.as_str());
        entry(&mut self.map, hash, key, create)
    }
}

/// The value of `key` in `table`, an empty one made first when absent and
/// `create` (its revision is stamped after).
fn entry<'t, T: Default>(
    table: &'t mut Table<T>,
    hash: u64,
    key: &Key,
    create: bool,
) -> Option<&'t mut T> {
    let stored = if create {
        table.get_or_insert_with(hash, key, || Revised {
            value: T::default(),
            revision: UNSTAMPED,
            created: UNSTAMPED,
        })
    } else {
        table.get_mut(hash, key.as_str())?
    };
    Some(&mut stored.value)
}

pub(crate) struct Db {
    shards: Box<[RwLock<Shard>]>,
    hasher: KeyHasher,
}

/// Where a change applies: its key's hash and its shard.
#[derive(Debug, Clone, Copy)]
pub(super) struct Located {
    hash: u64,
    pub(super) shard: usize,
}

impl Default for Db {
    fn default() -> Db {
        let hasher = KeyHasher::new();
        Db {
            shards: (0..SHARDS)
                .map(|_| RwLock::new(Shard::new(hasher.clone())))
                .collect(),
            hasher,
        }
    }
}

impl Db {
    /// `key`'s hash, which its shard's tables take as it is.
    fn hash(&self, key: &str) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The shard of a key with hash `hash`. Its bits 32 and up: a table
    /// finds a bucket by the low bits and tells keys apart by the top
    /// seven, which must still differ among a shard's keys.
    fn index_of(hash: u64) -> usize {
        (hash >> 32) as usize % SHARDS
    }

    // A poisoned lock means a panic inside a critical section, which holds
    // no await and no user code; the table is still consistent.
    fn read(shard: &RwLock<Shard>) -> RwLockReadGuard<'_, Shard> {
        shard.read()
    }

    fn write(shard: &RwLock<Shard>) -> RwLockWriteGuard<'_, Shard> {
        shard.write()
    }

    /// Runs `f` on the value of type `ty` under `key`, borrowed from its
    /// table under the shard's read lock: a read takes out only what it
    /// needs. `f` must be quick; writers to the shard wait for it. Returns
    /// also the highest revision of what the read saw: the value's own,
    /// for a value that is there (any change to it since would have stamped
    /// it, or removed it); for one that is not, the highest applied to the
    /// shard (its delete may be in flight).
    pub(crate) fn view<R>(
        &self,
        ty: ValueType,
        key: &str,
        f: impl FnOnce(Option<Found<'_>>) -> R,
    ) -> (R, u64) {
        let hash = self.hash(key);
        let shard = Self::read(&self.shards[Self::index_of(hash)]);
        let found = shard.found_at(hash, ty, key);
        let seen = found.map_or(shard.last, |f| f.revision);
        (f(found), seen)
    }

    /// Whether `a` and `b` live in the same shard.
    #[cfg(test)]
    pub(crate) fn same_shard(&self, a: &str, b: &str) -> bool {
        Self::index_of(self.hash(a)) == Self::index_of(self.hash(b))
    }

    /// A copy of one value.
    #[cfg(test)]
    pub(crate) fn get(&self, ty: ValueType, key: &str) -> Option<Value> {
        self.view(ty, key, |v| v.map(|f| f.value.to_value())).0
    }

    /// Runs `f` on the shards of `keys` under their write locks: the write
    /// path's changes and their undoing, one key's or a transaction's. The
    /// locks are taken in shard order, so that two callers never wait for
    /// each other. `f` must not wait.
    pub(super) fn update<'k, R>(
        &self,
        keys: impl IntoIterator<Item = &'k str>,
        f: impl FnOnce(&mut Locked<'_>) -> R,
    ) -> R {
        let mut indexes: Vec<usize> = keys
            .into_iter()
            .map(|k| Self::index_of(self.hash(k)))
            .collect();
        indexes.sort_unstable();
        indexes.dedup();
        let shards = indexes
            .into_iter()
            .map(|i| (i, Self::write(&self.shards[i])))
            .collect();
        f(&mut Locked { db: self, shards })
    }

    /// Applies `change` to its key's shard.
    pub(crate) fn apply(&self, change: Change) {
        let at = self.locate(&change);
        self.apply_located(at, change);
    }

    /// The hash of `change`'s key and the index of its shard, which
    /// [`Db::apply_located`] takes: changes to different shards may be
    /// applied at once, those to one shard only in their order.
    pub(super) fn locate(&self, change: &Change) -> Located {
        let hash = self.hash(change.txn.key().as_str());
        Located {
            hash,
            shard: Self::index_of(hash),
        }
    }

    /// Applies `change` where [`Db::locate`] found it.
    pub(super) fn apply_located(&self, at: Located, change: Change) {
        Self::write(&self.shards[at.shard]).apply_at(at.hash, change);
    }

    /// Applies `changes` under the write locks of all their shards at
    /// once, so that no read sees some of them without the rest (a
    /// follower applying another node's transactions).
    pub(crate) fn apply_together(&self, changes: &[Change]) {
        self.update(changes.iter().map(|c| c.txn.key().as_str()), |locked| {
            for change in changes {
                locked
                    .shard(change.txn.key().as_str())
                    .apply(change.clone());
            }
        });
    }

    /// Empties every table (before a replay starts over).
    pub(crate) fn clear(&self) {
        for shard in self.shards.iter() {
            *Self::write(shard) = Shard::new(self.hasher.clone());
        }
    }

    /// Keys of type `ty` that start with `prefix` and sort after `after`,
    /// sorted, at most `limit` of them, all as of one moment: every shard
    /// is read-locked for the whole listing. Returns also the highest
    /// revision applied to any shard.
    pub(crate) fn keys(
        &self,
        ty: ValueType,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> (Vec<Key>, u64) {
        let shards: Vec<_> = self.shards.iter().map(Self::read).collect();
        let now = now_ms();
        let mut found = Vec::new();
        let mut last = 0;
        for shard in &shards {
            last = last.max(shard.last);
            let mut keys: Vec<&Key> = shard
                .table(ty)
                .keys()
                .filter(|k| k.as_str().starts_with(prefix) && after.is_none_or(|a| k.as_str() > a))
                .filter(|k| shard.deadline(ty, k.as_str()).is_none_or(|at| at > now))
                .collect();
            // Only this shard's first `limit` can make the overall first `limit`.
            if keys.len() > limit {
                keys.select_nth_unstable(limit);
                keys.truncate(limit);
            }
            found.extend(keys.into_iter().cloned());
        }
        drop(shards);
        found.sort_unstable();
        found.truncate(limit);
        (found, last)
    }

    /// Keys whose deadline is at or before `now_ms`, at most `limit`.
    pub(crate) fn due(&self, now_ms: u64, limit: usize) -> Vec<(ValueType, Key)> {
        let mut due = Vec::new();
        for shard in self.shards.iter() {
            if due.len() >= limit {
                break;
            }
            due.extend(Self::read(shard).due(now_ms, limit - due.len()));
        }
        due
    }

    /// How many keys each type holds, in [`ValueType::ALL`] order.
    pub(crate) fn counts(&self) -> [usize; ValueType::ALL.len()] {
        let mut counts = [0; ValueType::ALL.len()];
        for shard in self.shards.iter() {
            let shard = Self::read(shard);
            for (c, ty) in counts.iter_mut().zip(ValueType::ALL) {
                *c += shard.table(ty).len();
            }
        }
        counts
    }
}

/// The shards [`Db::update`] locked, each found by a key it holds.
pub(crate) struct Locked<'a> {
    db: &'a Db,
    /// By shard index, ascending.
    shards: Vec<(usize, RwLockWriteGuard<'a, Shard>)>,
}

impl Locked<'_> {
    /// `key`'s shard. Panics if it is not one of those locked: the caller
    /// named the keys it uses.
    pub(crate) fn shard(&mut self, key: &str) -> &mut Shard {
        let i = Db::index_of(self.db.hash(key));
        let at = self
            .shards
            .binary_search_by_key(&i, |(i, _)| *i)
            .unwrap_or_else(|_| panic!("key {key} is not in a locked shard"));
        &mut self.shards[at].1
    }

    /// The highest revision applied to any of the locked shards.
    pub(crate) fn last(&self) -> u64 {
        self.shards.iter().map(|(_, s)| s.last()).max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_comes_back_as_it_was_put_with_its_revision() {
        let key = Key::parse("k").unwrap();
        let values = [
            Value::Int(-1),
            Value::Uint(u32::MAX),
            Value::Float(0.5),
            Value::Str("s".into()),
            Value::Map([("f".into(), "v".into())].into()),
            Value::Set(["m".into()].into()),
        ];
        let mut shard = Shard::new(KeyHasher::new());
        for (rev, v) in (1..).zip(&values) {
            assert_eq!(shard.put(key.clone(), v.clone(), rev), None);
        }
        for (rev, v) in (1..).zip(&values) {
            let ty = v.value_type();
            let found = shard.found(ty, "k").unwrap();
            assert_eq!((found.value.to_value(), found.revision), (v.clone(), rev));
            let was = Some(Revised {
                value: v.clone(),
                revision: rev,
                created: rev,
            });
            assert_eq!(shard.put(key.clone(), v.clone(), rev + 10), was);
            let found = shard.found(ty, "k").unwrap();
            assert_eq!((found.revision, found.created), (rev + 10, rev));
            assert_eq!(
                shard.remove(ty, "k", 30).map(|r| (r.revision, r.created)),
                Some((rev + 10, rev)),
                "a put over a value keeps its creation"
            );
            assert_eq!(shard.get(ty, "k"), None);
        }
        assert_eq!(shard.last(), 30, "a delete counts too");
    }

    #[test]
    fn applied_changes_stamp_what_they_leave_and_reads_change_nothing() {
        let key = Key::parse("s").unwrap();
        let mut shard = Shard::new(KeyHasher::new());
        let member = |m: &str, present| Txn::SetMember {
            key: key.clone(),
            member: m.into(),
            present,
        };
        shard.apply(Change::new(3, member("a", true)));
        shard.apply(Change::new(5, member("b", true)));
        shard.apply(Change::new(
            9,
            Txn::Get {
                ty: ValueType::Set,
                key: key.clone(),
            },
        ));
        let found = shard.found(ValueType::Set, "s").unwrap();
        assert_eq!((found.revision, found.created), (5, 3));
        shard.apply(Change::new(
            7,
            Txn::Delete {
                ty: ValueType::Set,
                key: key.clone(),
            },
        ));
        assert_eq!(shard.found(ValueType::Set, "s"), None);
        shard.apply(Change::new(8, member("c", true)));
        let found = shard.found(ValueType::Set, "s").unwrap();
        assert_eq!((found.revision, found.created), (8, 8), "made again");
        // What a compacted log says of a key it put.
        let created = Txn::Created {
            ty: ValueType::Set,
            key: key.clone(),
            revision: 2,
        };
        shard.apply(Change::new(8, created));
        let found = shard.found(ValueType::Set, "s").unwrap();
        assert_eq!((found.revision, found.created), (8, 2));
        assert_eq!(shard.last(), 8);
    }

    #[test]
    fn keys_are_listed_sorted_by_prefix_after_a_cursor_and_limited() {
        let db = Db::default();
        let put = |k: &str, value| {
            let txn = Txn::Put {
                key: Key::parse(k).unwrap(),
                value,
            };
            db.apply(Change::new(1, txn))
        };
        for k in ["b2", "a1", "b1", "b3", "c1"] {
            put(k, Value::Int(0));
        }
        put("b9", Value::Uint(0));
        let names = |(v, _): (Vec<Key>, u64)| v.iter().map(|k| k.to_string()).collect::<Vec<_>>();
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
