//! How large one value may grow: a cap on its bytes and on the entries of a
//! map or set, so that no single key can take the server's memory or make
//! every read of it slow.

use kvs_core::{Key, Value, ValueType};

#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Bytes of text in one value ([`Value::data_len`]).
    pub(crate) max_value_bytes: usize,
    /// Fields of one map or members of one set.
    pub(crate) max_entries: usize,
}

impl Limits {
    /// No limit at all, for tests of other things.
    #[cfg(test)]
    pub(crate) const NONE: Limits = Limits {
        max_value_bytes: usize::MAX,
        max_entries: usize::MAX,
    };

    /// Refuses `new` when it is over a limit and larger than `old` in that
    /// measure: a value stored under a higher limit can still shrink.
    pub(crate) fn check(
        &self,
        key: &Key,
        new: &Value,
        old: Option<&Value>,
    ) -> Result<(), LimitError> {
        self.check_size(key, new.value_type(), Size::of(new), old.map(Size::of))
    }

    /// [`Limits::check`] on sizes alone, for a change that knows them
    /// without building the value.
    pub(crate) fn check_size(
        &self,
        key: &Key,
        ty: ValueType,
        new: Size,
        old: Option<Size>,
    ) -> Result<(), LimitError> {
        let over = |measure: fn(&Size) -> usize, max: usize| {
            let n = measure(&new);
            (n > max && old.is_none_or(|o| n > measure(&o))).then_some(n)
        };
        if let Some(bytes) = over(|s| s.bytes, self.max_value_bytes) {
            return Err(LimitError::Bytes {
                ty,
                key: key.clone(),
                bytes,
                max: self.max_value_bytes,
            });
        }
        if let Some(entries) = over(|s| s.entries, self.max_entries) {
            return Err(LimitError::Entries {
                ty,
                key: key.clone(),
                entries,
                max: self.max_entries,
            });
        }
        Ok(())
    }
}

/// What the limits measure of a value.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Size {
    /// [`Value::data_len`].
    pub(crate) bytes: usize,
    /// [`Value::entries`].
    pub(crate) entries: usize,
}

impl Size {
    pub(crate) fn of(value: &Value) -> Size {
        Size {
            bytes: value.data_len(),
            entries: value.entries(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum LimitError {
    #[error(
        "{ty} key {key} would hold {bytes} bytes; one value may hold at most {max} (--max-value-bytes)"
    )]
    Bytes {
        ty: ValueType,
        key: Key,
        bytes: usize,
        max: usize,
    },
    #[error(
        "{ty} key {key} would hold {entries} entries; one map or set may hold at most {max} (--max-entries)"
    )]
    Entries {
        ty: ValueType,
        key: Key,
        entries: usize,
        max: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(members: &[&str]) -> Value {
        Value::Set(members.iter().map(|m| m.to_string()).collect())
    }

    #[test]
    fn refuses_values_over_either_limit() {
        let limits = Limits {
            max_value_bytes: 4,
            max_entries: 2,
        };
        let key = Key::parse("k").unwrap();
        assert!(limits.check(&key, &Value::Str("abcd".into()), None).is_ok());
        let e = limits
            .check(&key, &Value::Str("abcde".into()), None)
            .unwrap_err();
        assert!(
            matches!(
                e,
                LimitError::Bytes {
                    bytes: 5,
                    max: 4,
                    ..
                }
            ),
            "{e}"
        );
        let e = limits
            .check(&key, &set(&["a", "b", "c"]), None)
            .unwrap_err();
        assert!(
            matches!(
                e,
                LimitError::Entries {
                    entries: 3,
                    max: 2,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("--max-entries"), "{e}");
    }

    #[test]
    fn an_oversized_value_may_shrink_but_not_grow() {
        let limits = Limits {
            max_value_bytes: 100,
            max_entries: 2,
        };
        let key = Key::parse("k").unwrap();
        let old = set(&["a", "b", "c", "d"]);
        assert!(
            limits
                .check(&key, &set(&["a", "b", "c"]), Some(&old))
                .is_ok()
        );
        assert!(
            limits
                .check(&key, &set(&["a", "b", "c", "d", "e"]), Some(&old))
                .is_err()
        );
    }
}
