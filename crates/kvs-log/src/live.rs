//! A file log's live set, as compaction writes it in place of the history:
//! the last value of each key, the revision of the last change to it, and
//! when it expires.

use std::collections::HashMap;

use kvs_core::{Change, Key, PlainState, Txn, ValueType};

#[derive(Debug, Default)]
pub(crate) struct LiveSet {
    values: PlainState,
    /// The revision of the last change to each key in `values`; for a set or
    /// map changed member by member, that of its last member or field.
    revisions: HashMap<(ValueType, Key), u64>,
    /// When each key in `values` that has a TTL expires.
    deadlines: HashMap<(ValueType, Key), u64>,
}

impl LiveSet {
    pub(crate) fn apply(&mut self, change: Change) {
        let Change { revision, txn } = change;
        if matches!(txn, Txn::Get { .. }) {
            // A read changes nothing, so it is no key's last change.
            return;
        }
        let at = (txn.value_type(), txn.key().clone());
        match txn {
            // The expiry of the put beside it: that put's revision stays.
            Txn::Expiry { at_ms, .. } => {
                match at_ms.filter(|_| self.values.contains_key(&at)) {
                    Some(ms) => self.deadlines.insert(at, ms),
                    None => self.deadlines.remove(&at),
                };
                return;
            }
            // A put replaces the expiry with the value; a member or field
            // change keeps it.
            Txn::Put { .. } | Txn::Delete { .. } | Txn::Expire { .. } => {
                self.deadlines.remove(&at);
            }
            _ => {}
        }
        txn.apply_to(&mut self.values);
        if self.values.contains_key(&at) {
            self.revisions.insert(at, revision);
        } else {
            self.revisions.remove(&at);
            self.deadlines.remove(&at);
        }
    }

    /// Live values.
    pub(crate) fn len(&self) -> usize {
        self.values.len()
    }

    /// A put of every live value with its revision, and its expiry after
    /// it, in revision order, so that a replay of them sees revisions rise
    /// as the history did.
    pub(crate) fn into_puts(self) -> Vec<(u64, Txn)> {
        let (mut revisions, mut deadlines) = (self.revisions, self.deadlines);
        let mut puts: Vec<(u64, Vec<Txn>)> = self
            .values
            .into_iter()
            .map(|(at, value)| {
                let revision = revisions.remove(&at).unwrap_or_default();
                let (ty, key) = at;
                let expiry = deadlines.remove(&(ty, key.clone())).map(|ms| Txn::Expiry {
                    ty,
                    key: key.clone(),
                    at_ms: Some(ms),
                });
                let put = Txn::Put { key, value };
                (revision, std::iter::once(put).chain(expiry).collect())
            })
            .collect();
        puts.sort_by_key(|(revision, _)| *revision);
        puts.into_iter()
            .flat_map(|(revision, txns)| txns.into_iter().map(move |t| (revision, t)))
            .collect()
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
    fn a_live_key_keeps_its_expiry_after_its_put_until_a_put_or_delete_drops_it() {
        let mut live = LiveSet::default();
        let put = |k: &str| Txn::Put {
            key: key(k),
            value: Value::Uint(1),
        };
        let expiry = |k: &str, at_ms| Txn::Expiry {
            ty: ValueType::Uint,
            key: key(k),
            at_ms,
        };
        let changes = [
            (1, put("kept")),
            (1, expiry("kept", Some(50))),
            (2, put("replaced")),
            (2, expiry("replaced", Some(60))),
            (3, put("replaced")),
            (4, put("gone")),
            (4, expiry("gone", Some(70))),
            (
                5,
                Txn::Expire {
                    ty: ValueType::Uint,
                    key: key("gone"),
                },
            ),
            (6, expiry("never_put", Some(80))),
        ];
        for (revision, txn) in changes {
            live.apply(Change::new(revision, txn));
        }
        assert_eq!(
            live.into_puts(),
            [
                (1, put("kept")),
                (1, expiry("kept", Some(50))),
                (3, put("replaced"))
            ]
        );
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
        assert!(live.deadlines.is_empty());
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
