//! A file log's live set, as compaction writes it in place of the history:
//! the last value of each key and the revision of the last change to it.

use std::collections::HashMap;

use kvs_core::{Change, Key, PlainState, Txn, ValueType};

#[derive(Debug, Default)]
pub(crate) struct LiveSet {
    values: PlainState,
    /// The revision of the last change to each key in `values`; for a set or
    /// map changed member by member, that of its last member or field.
    revisions: HashMap<(ValueType, Key), u64>,
}

impl LiveSet {
    pub(crate) fn apply(&mut self, change: Change) {
        let Change { revision, txn } = change;
        if matches!(txn, Txn::Get { .. }) {
            // A read changes nothing, so it is no key's last change.
            return;
        }
        let at = (txn.value_type(), txn.key().clone());
        txn.apply_to(&mut self.values);
        if self.values.contains_key(&at) {
            self.revisions.insert(at, revision);
        } else {
            self.revisions.remove(&at);
        }
    }

    /// Live values.
    pub(crate) fn len(&self) -> usize {
        self.values.len()
    }

    /// A put of every live value with its revision, in revision order, so
    /// that a replay of them sees revisions rise as the history did.
    pub(crate) fn into_puts(self) -> Vec<(u64, Txn)> {
        let mut revisions = self.revisions;
        let mut puts: Vec<(u64, Txn)> = self
            .values
            .into_iter()
            .map(|(at, value)| {
                let revision = revisions.remove(&at).unwrap_or_default();
                (revision, Txn::Put { key: at.1, value })
            })
            .collect();
        puts.sort_by_key(|(revision, _)| *revision);
        puts
    }
}

#[cfg(test)]
mod tests {
    use kvs_core::Value;

    use super::*;

    fn key(s: &str) -> Key {
        Key::parse(s).unwrap()
    }

    #[test]
    fn each_live_value_keeps_the_revision_of_its_last_change() {
        let mut live = LiveSet::default();
        let changes = [
            (
                1,
                Txn::Put {
                    key: key("a"),
                    value: Value::Int(1),
                },
            ),
            (
                2,
                Txn::SetMember {
                    key: key("s"),
                    member: "x".into(),
                    present: true,
                },
            ),
            (
                3,
                Txn::Put {
                    key: key("b"),
                    value: Value::Int(2),
                },
            ),
            (
                4,
                Txn::Get {
                    ty: ValueType::Int,
                    key: key("a"),
                },
            ),
            (
                5,
                Txn::SetMember {
                    key: key("s"),
                    member: "x".into(),
                    present: false,
                },
            ),
            (
                6,
                Txn::Delete {
                    ty: ValueType::Int,
                    key: key("b"),
                },
            ),
            (
                7,
                Txn::MapField {
                    key: key("m"),
                    field: "f".into(),
                    value: None,
                },
            ),
        ];
        for (revision, txn) in changes {
            live.apply(Change::new(revision, txn));
        }
        assert_eq!(live.len(), 2);
        assert_eq!(
            live.into_puts(),
            [
                (
                    1,
                    Txn::Put {
                        key: key("a"),
                        value: Value::Int(1)
                    }
                ),
                (
                    5,
                    Txn::Put {
                        key: key("s"),
                        value: Value::Set(Default::default())
                    }
                ),
            ]
        );
    }
}
