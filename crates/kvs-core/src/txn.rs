//! Transactions: what the log records and what replay applies.
//!
//! The server logs every write as the state it leaves behind (a put of the
//! whole new value, or a delete), so that replaying a record twice changes
//! nothing. Increments appear only in logs written by the original service.

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
}

impl Txn {
    pub fn key(&self) -> &Key {
        match self {
            Txn::Put { key, .. }
            | Txn::Delete { key, .. }
            | Txn::IncrBy { key, .. }
            | Txn::Get { key, .. } => key,
        }
    }

    /// About how many bytes it takes in a log record or a message: the
    /// key, the value's text and a few bytes a field or member.
    pub fn size(&self) -> usize {
        let value = match self {
            Txn::Put { value, .. } => value.data_len() + 8 * value.entries(),
            _ => 4,
        };
        16 + self.key().as_str().len() + value
    }

    pub fn value_type(&self) -> ValueType {
        match self {
            Txn::Put { value, .. } => value.value_type(),
            Txn::Delete { ty, .. } | Txn::Get { ty, .. } => *ty,
            Txn::IncrBy { .. } => ValueType::Int,
        }
    }

    /// Applies this transaction to `state`: the one definition of what a
    /// transaction means, shared by the store's replay and log compaction.
    pub fn apply_to(self, state: &mut impl State) {
        match self {
            Txn::Put { key, value } => state.put(key, value),
            Txn::Delete { ty, key } => state.delete(ty, &key),
            Txn::IncrBy { key, by } => {
                let now = state.int(&key).unwrap_or(0).wrapping_add(by);
                state.put(key, Value::Int(now));
            }
            Txn::Get { .. } => {}
        }
    }
}

/// Something transactions can be applied to.
pub trait State {
    fn put(&mut self, key: Key, value: Value);
    fn delete(&mut self, ty: ValueType, key: &Key);
    fn int(&self, key: &Key) -> Option<i32>;
}

/// The simplest [`State`]: one map from (type, key) to value.
pub type PlainState = std::collections::HashMap<(ValueType, Key), Value>;

impl State for PlainState {
    fn put(&mut self, key: Key, value: Value) {
        self.insert((value.value_type(), key), value);
    }
    fn delete(&mut self, ty: ValueType, key: &Key) {
        self.remove(&(ty, key.clone()));
    }
    fn int(&self, key: &Key) -> Option<i32> {
        match self.get(&(ValueType::Int, key.clone())) {
            Some(Value::Int(v)) => Some(*v),
            _ => None,
        }
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
}
