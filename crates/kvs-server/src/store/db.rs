//! The in-memory tables: one hash table per value type, split into shards.
//!
//! A key's six types live in the same shard, so `/del/{key}` changes them
//! under one lock. Shards use parking_lot's `RwLock`: critical sections are a hash
//! lookup and a clone, never an await, so an async lock would only add cost.
//!
//! Each table holds its type in the smallest form it has, not as a
//! [`Value`]: a table's buckets are most of what a key costs, and a `Value`
//! is as large as its largest variant (32 bytes), where a string needs 16 and
//! a number 4. Reads get a [`ValueRef`] borrowed from the table.
//!
//! Callers never hold a shard's lock: [`Db`]'s methods take it and let it
//! go, and a read that needs less than a whole copy passes a closure to
//! [`Db::view`].

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};

use kvs_core::value::{MapValue, SetValue};
use kvs_core::{Key, State, Txn, Value, ValueType};
use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

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
trait Table {
    fn view(&self, key: &str) -> Option<ValueRef<'_>>;
    fn take(&mut self, key: &str) -> Option<Value>;
    fn keys(&self) -> Box<dyn Iterator<Item = &Key> + '_>;
    fn len(&self) -> usize;
}

impl<T: Stored> Table for HashMap<Key, T> {
    fn view(&self, key: &str) -> Option<ValueRef<'_>> {
        self.get(key).map(T::view)
    }
    fn take(&mut self, key: &str) -> Option<Value> {
        self.remove(key).map(T::into_value)
    }
    fn keys(&self) -> Box<dyn Iterator<Item = &Key> + '_> {
        Box::new(HashMap::keys(self))
    }
    fn len(&self) -> usize {
        HashMap::len(self)
    }
}

/// Stores `value` under `key`; returns what was there.
fn swap<T: Stored>(table: &mut HashMap<Key, T>, key: Key, value: T) -> Option<Value> {
    table.insert(key, value).map(T::into_value)
}

#[derive(Default)]
pub(crate) struct Shard {
    int: HashMap<Key, i32>,
    uint: HashMap<Key, u32>,
    float: HashMap<Key, f32>,
    str: HashMap<Key, Box<str>>,
    map: HashMap<Key, MapValue>,
    set: HashMap<Key, SetValue>,
}

impl Shard {
    fn table(&self, ty: ValueType) -> &dyn Table {
        match ty {
            ValueType::Int => &self.int,
            ValueType::Uint => &self.uint,
            ValueType::Float => &self.float,
            ValueType::Str => &self.str,
            ValueType::Map => &self.map,
            ValueType::Set => &self.set,
        }
    }

    fn table_mut(&mut self, ty: ValueType) -> &mut dyn Table {
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
        self.table(ty).view(key)
    }

    /// Stores `value` under `key` in its type's table; returns what was there.
    pub(crate) fn put(&mut self, key: Key, value: Value) -> Option<Value> {
        match value {
            Value::Int(v) => swap(&mut self.int, key, v),
            Value::Uint(v) => swap(&mut self.uint, key, v),
            Value::Float(v) => swap(&mut self.float, key, v),
            // Sheds any spare capacity; parsed strings have none.
            Value::Str(s) => swap(&mut self.str, key, s.into_boxed_str()),
            Value::Map(m) => swap(&mut self.map, key, m),
            Value::Set(s) => swap(&mut self.set, key, s),
        }
    }

    pub(crate) fn remove(&mut self, ty: ValueType, key: &str) -> Option<Value> {
        self.table_mut(ty).take(key)
    }
}

/// Transactions apply to a shard directly: replay, and undoing a write.
impl State for Shard {
    fn put(&mut self, key: Key, value: Value) {
        Shard::put(self, key, value);
    }

    fn delete(&mut self, ty: ValueType, key: &Key) {
        self.remove(ty, key.as_str());
    }

    fn int(&self, key: &Key) -> Option<i32> {
        self.int.get(key.as_str()).copied()
    }

    fn set_mut(&mut self, key: &Key, create: bool) -> Option<&mut SetValue> {
        entry(&mut self.set, key, create)
    }

    fn map_mut(&mut self, key: &Key, create: bool) -> Option<&mut MapValue> {
        entry(&mut self.map, key, create)
    }
}

/// The value of `key` in `table`, an empty one made first when absent and
/// `create`.
fn entry<'t, T: Default>(
    table: &'t mut HashMap<Key, T>,
    key: &Key,
    create: bool,
) -> Option<&'t mut T> {
    if create && !table.contains_key(key.as_str()) {
        table.insert(key.clone(), T::default());
    }
    table.get_mut(key.as_str())
}

pub(crate) struct Db {
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
    fn read(shard: &RwLock<Shard>) -> RwLockReadGuard<'_, Shard> {
        shard.read()
    }

    fn write(shard: &RwLock<Shard>) -> RwLockWriteGuard<'_, Shard> {
        shard.write()
    }

    /// Runs `f` on the value of type `ty` under `key`, borrowed from its
    /// table under the shard's read lock: a read takes out only what it
    /// needs. `f` must be quick; writers to the shard wait for it.
    pub(crate) fn view<R>(
        &self,
        ty: ValueType,
        key: &str,
        f: impl FnOnce(Option<ValueRef<'_>>) -> R,
    ) -> R {
        f(Self::read(self.shard_of(key)).get(ty, key))
    }

    /// A copy of one value.
    pub(crate) fn get(&self, ty: ValueType, key: &str) -> Option<Value> {
        self.view(ty, key, |v| v.map(ValueRef::to_value))
    }

    /// Runs `f` on `key`'s shard under its write lock: the write path's
    /// changes and their undoing. `f` must not wait.
    pub(super) fn update<R>(&self, key: &str, f: impl FnOnce(&mut Shard) -> R) -> R {
        f(&mut Self::write(self.shard_of(key)))
    }

    /// Applies `txn` to its key's shard.
    pub(crate) fn apply(&self, txn: Txn) {
        let mut shard = Self::write(self.shard_of(txn.key().as_str()));
        txn.apply_to(&mut *shard);
    }

    /// Empties every table (before a replay starts over).
    pub(crate) fn clear(&self) {
        for shard in self.shards.iter() {
            *Self::write(shard) = Shard::default();
        }
    }

    /// Keys of type `ty` that start with `prefix` and sort after `after`,
    /// sorted, at most `limit` of them.
    pub(crate) fn keys(
        &self,
        ty: ValueType,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Vec<Key> {
        let mut found = Vec::new();
        for shard in self.shards.iter() {
            let shard = Self::read(shard);
            let mut keys: Vec<&Key> = shard
                .table(ty)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_comes_back_as_it_was_put() {
        let key = Key::parse("k").unwrap();
        let values = [
            Value::Int(-1),
            Value::Uint(u32::MAX),
            Value::Float(0.5),
            Value::Str("s".into()),
            Value::Map([("f".into(), "v".into())].into()),
            Value::Set(["m".into()].into()),
        ];
        let mut shard = Shard::default();
        for v in &values {
            assert_eq!(shard.put(key.clone(), v.clone()), None);
        }
        for v in &values {
            let ty = v.value_type();
            assert_eq!(shard.get(ty, "k").map(ValueRef::to_value).as_ref(), Some(v));
            assert_eq!(shard.put(key.clone(), v.clone()).as_ref(), Some(v));
            assert_eq!(shard.remove(ty, "k").as_ref(), Some(v));
            assert_eq!(shard.get(ty, "k"), None);
        }
    }

    #[test]
    fn keys_are_listed_sorted_by_prefix_after_a_cursor_and_limited() {
        let db = Db::default();
        let put = |k: &str, value| {
            db.apply(Txn::Put {
                key: Key::parse(k).unwrap(),
                value,
            })
        };
        for k in ["b2", "a1", "b1", "b3", "c1"] {
            put(k, Value::Int(0));
        }
        put("b9", Value::Uint(0));
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
