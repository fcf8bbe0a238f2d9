//! Transactions: what the log records and what replay applies.
//!
//! The server logs every write as the state it leaves behind, so that
//! replaying a record twice changes nothing: a put of the whole new value, a
//! delete, or, for a change to one member of a set or one field of a map,
//! that member's or field's new state alone (logging the whole value there
//! would cost the value's size on every small change). Increments appear
//! only in logs written by the original service.

use crate::value::{MapValue, SetValue};
use crate::{Key, Value, ValueType};

#[derive(Debug, Clone, PartialEq)]
pub enum Txn {
    /// `key` of the value's type now holds this value.
    Put { key: Key, value: Value },
    /// `key` of this type no longer exists.
    Delete { ty: ValueType, key: Key },
    /// Adds `by` to an int key (absent counts as 0), wrapping as the original
    /// service did; found only when replaying its logs.
    IncrBy { key: Key, by: i32 },
    /// A read, recorded when read auditing is on; replay skips it.
    Get { ty: ValueType, key: Key },
    /// `member` is now in the set `key` (`present`) or not. Adding to an
    /// absent set creates it; removing leaves the set, even empty.
    SetMember {
        key: Key,
        member: String,
        present: bool,
    },
    /// `field` of the map `key` now holds `value`, or is gone (`None`).
    /// Setting a field of an absent map creates it; removing leaves the map.
    MapField {
        key: Key,
        field: String,
        value: Option<String>,
    },
    /// `key` of this type now expires at `at_ms` (milliseconds since the
    /// Unix epoch), or never (`None`). Logged after the put that gave the
    /// key a TTL or took it away, in the same change. (A put replaces a
    /// key's expiry too; the record says so to logs that keep the expiry
    /// apart from the value.)
    Expiry {
        ty: ValueType,
        key: Key,
        at_ms: Option<u64>,
    },
    /// `key` of this type expired, and is gone: a delete that a watcher
    /// sees as an expiry.
    Expire { ty: ValueType, key: Key },
    /// `key` of this type, put just before in the same change, was created
    /// at `revision`, before that put. A log that keeps only each key's last
    /// value records it in place of the history it dropped; no write logs
    /// one. It changes no value.
    Created {
        ty: ValueType,
        key: Key,
        revision: u64,
    },
}

impl Txn {
    pub fn key(&self) -> &Key {
        match self {
            Txn::Put { key, .. }
            | Txn::Delete { key, .. }
            | Txn::IncrBy { key, .. }
            | Txn::Get { key, .. }
            | Txn::SetMember { key, .. }
            | Txn::MapField { key, .. }
            | Txn::Expiry { key, .. }
            | Txn::Expire { key, .. }
            | Txn::Created { key, .. } => key,
        }
    }

    /// About how many bytes it takes in a log record or a message: the
    /// key, the value's text and a few bytes a field or member.
    pub fn size(&self) -> usize {
        let value = match self {
            Txn::Put { value, .. } => value.data_len() + 8 * value.entries(),
            Txn::SetMember { member, .. } => 8 + member.len(),
            Txn::MapField { field, value, .. } => {
                16 + field.len() + value.as_ref().map_or(0, String::len)
            }
            Txn::Expiry { .. } | Txn::Created { .. } => 8,
            _ => 4,
        };
        16 + self.key().as_str().len() + value
    }

    pub fn value_type(&self) -> ValueType {
        match self {
            Txn::Put { value, .. } => value.value_type(),
            Txn::Delete { ty, .. }
            | Txn::Get { ty, .. }
            | Txn::Expiry { ty, .. }
            | Txn::Expire { ty, .. }
            | Txn::Created { ty, .. } => *ty,
            Txn::IncrBy { .. } => ValueType::Int,
            Txn::SetMember { .. } => ValueType::Set,
            Txn::MapField { .. } => ValueType::Map,
        }
    }

    /// Applies this transaction to `state`: the one definition of what a
    /// transaction means, shared by the store's replay and log compaction.
    pub fn apply_to(self, state: &mut impl State) {
        match self {
            Txn::Put { key, value } => state.put(key, value),
            Txn::Delete { ty, key } | Txn::Expire { ty, key } => state.delete(ty, &key),
            Txn::Expiry { ty, key, at_ms } => state.set_expiry(ty, &key, at_ms),
            Txn::IncrBy { key, by } => {
                let now = state.int(&key).unwrap_or(0).wrapping_add(by);
                state.put(key, Value::Int(now));
            }
            // Neither changes a value: a state that keeps revisions reads
            // a key's creation apart (kvs-server's store, compaction).
            Txn::Get { .. } | Txn::Created { .. } => {}
            Txn::SetMember {
                key,
                member,
                present,
            } => {
                if let Some(set) = state.set_mut(&key, present) {
                    if present {
                        set.insert(member);
                    } else {
                        set.remove(&member);
                    }
                }
            }
            Txn::MapField { key, field, value } => {
                if let Some(map) = state.map_mut(&key, value.is_some()) {
                    match value {
                        Some(v) => map.insert(field, v),
                        None => map.remove(&field),
                    };
                }
            }
        }
    }
}

/// Something transactions can be applied to.
pub trait State {
    /// Stores `value`, replacing what `key` held and its expiry.
    fn put(&mut self, key: Key, value: Value);
    /// Removes `key` and its expiry.
    fn delete(&mut self, ty: ValueType, key: &Key);
    /// `key`, if it exists, expires at `at_ms`, or never.
    fn set_expiry(&mut self, ty: ValueType, key: &Key, at_ms: Option<u64>);
    fn int(&self, key: &Key) -> Option<i32>;
    /// The set `key` holds; an empty one is created first when it has none
    /// and `create`.
    fn set_mut(&mut self, key: &Key, create: bool) -> Option<&mut SetValue>;
    /// The map `key` holds, as [`State::set_mut`].
    fn map_mut(&mut self, key: &Key, create: bool) -> Option<&mut MapValue>;
}

/// The simplest [`State`]: one map from (type, key) to value. It keeps
/// values only, not when they expire: what compares states, not what
/// compacts a log.
pub type PlainState = std::collections::HashMap<(ValueType, Key), Value>;

impl State for PlainState {
    fn put(&mut self, key: Key, value: Value) {
        self.insert((value.value_type(), key), value);
    }
    fn delete(&mut self, ty: ValueType, key: &Key) {
        self.remove(&(ty, key.clone()));
    }
    fn set_expiry(&mut self, _: ValueType, _: &Key, _: Option<u64>) {}
    fn int(&self, key: &Key) -> Option<i32> {
        match self.get(&(ValueType::Int, key.clone())) {
            Some(Value::Int(v)) => Some(*v),
            _ => None,
        }
    }
    fn set_mut(&mut self, key: &Key, create: bool) -> Option<&mut SetValue> {
        match plain_entry(self, ValueType::Set, key, create)? {
            Value::Set(s) => Some(s),
            _ => None,
        }
    }
    fn map_mut(&mut self, key: &Key, create: bool) -> Option<&mut MapValue> {
        match plain_entry(self, ValueType::Map, key, create)? {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }
}

/// The value of `key` in `state`'s `ty` table, an empty one made first when
/// absent and `create`.
fn plain_entry<'a>(
    state: &'a mut PlainState,
    ty: ValueType,
    key: &Key,
    create: bool,
) -> Option<&'a mut Value> {
    let at = (ty, key.clone());
    if create {
        Some(state.entry(at).or_insert_with(|| match ty {
            ValueType::Map => Value::Map(MapValue::new()),
            _ => Value::Set(SetValue::new()),
        }))
    } else {
        state.get_mut(&at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> Key {
        Key::parse(s).unwrap()
    }

    #[test]
    fn applying_folds_puts_deletes_and_wrapping_increments() {
        let mut state = PlainState::new();
        let txns = [
            Txn::Put {
                key: key("a"),
                value: Value::Int(i32::MAX),
            },
            Txn::IncrBy {
                key: key("a"),
                by: 1,
            },
            Txn::IncrBy {
                key: key("b"),
                by: 5,
            },
            Txn::Put {
                key: key("a"),
                value: Value::Str("s".into()),
            },
            Txn::Get {
                ty: ValueType::Str,
                key: key("a"),
            },
            Txn::Put {
                key: key("c"),
                value: Value::Uint(1),
            },
            Txn::Delete {
                ty: ValueType::Uint,
                key: key("c"),
            },
        ];
        for t in txns {
            t.apply_to(&mut state);
        }
        assert_eq!(state.len(), 3);
        assert_eq!(state[&(ValueType::Int, key("a"))], Value::Int(i32::MIN));
        assert_eq!(state[&(ValueType::Int, key("b"))], Value::Int(5));
        assert_eq!(state[&(ValueType::Str, key("a"))], Value::Str("s".into()));
    }

    #[test]
    fn member_and_field_changes_create_remove_and_replay_twice_alike() {
        let member = |m: &str, present| Txn::SetMember {
            key: key("s"),
            member: m.into(),
            present,
        };
        let field = |f: &str, value: Option<&str>| Txn::MapField {
            key: key("m"),
            field: f.into(),
            value: value.map(str::to_owned),
        };
        let txns = [
            // Removing from keys that do not exist creates nothing.
            member("x", false),
            field("x", None),
            member("a", true),
            member("b", true),
            member("a", false),
            field("f", Some("1")),
            field("f", Some("2")),
            field("g", Some("3")),
            field("g", None),
            member("b", false),
        ];
        let mut once = PlainState::new();
        for t in txns.clone() {
            t.apply_to(&mut once);
        }
        let mut twice = PlainState::new();
        for t in txns {
            t.clone().apply_to(&mut twice);
            t.apply_to(&mut twice);
        }
        assert_eq!(once, twice);
        assert_eq!(once.len(), 2);
        // The last member went; the set stays, empty.
        assert_eq!(
            once[&(ValueType::Set, key("s"))],
            Value::Set(SetValue::new())
        );
        assert_eq!(
            once[&(ValueType::Map, key("m"))],
            Value::Map([("f".into(), "2".into())].into())
        );
    }
}
