//! A file log's live set, as compaction writes it in place of the history:
//! the last value of each key, the revisions of its creation and of the
//! last change to it, and when it expires.

use std::collections::HashMap;

use kvs_core::{Change, Key, PlainState, Txn, ValueType};

#[derive(Debug, Default)]
pub(crate) struct LiveSet {
    values: PlainState,
    /// The revisions of each key in `values`.
    revisions: HashMap<(ValueType, Key), Revs>,
    /// When each key in `values` that has a TTL expires.
    deadlines: HashMap<(ValueType, Key), u64>,
}

/// A live key's revisions.
#[derive(Debug, Clone, Copy)]
struct Revs {
    /// That of the last change; for a set or map changed member by member,
    /// that of its last member or field.
    last: u64,
    /// That of the change that made it exist after it was absent.
    created: u64,
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
            // A compacted log's record of a key's creation, after its put.
            Txn::Created { revision, .. } => {
                if let Some(revs) = self.revisions.get_mut(&at) {
                    revs.created = revision;
                }
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
            let revs = self.revisions.entry(at).or_insert(Revs {
                last: revision,
                created: revision,
            });
            revs.last = revision;
        } else {
            self.revisions.remove(&at);
            self.deadlines.remove(&at);
        }
    }

    /// Live values.
    pub(crate) fn len(&self) -> usize {
        self.values.len()
    }

    /// A put of every live value at the revision of its last change, with
    /// its expiry and its creation after it (each only if it has one, or is
    /// earlier), in revision order, so that a replay of them sees revisions
    /// rise as the history did.
    pub(crate) fn into_puts(self) -> Vec<(u64, Txn)> {
        let (mut revisions, mut deadlines) = (self.revisions, self.deadlines);
        let mut puts: Vec<(u64, Vec<Txn>)> = self
            .values
            .into_iter()
            .map(|(at, value)| {
                let revs = revisions.remove(&at);
                let revision = revs.map_or(0, |r| r.last);
                let (ty, key) = at;
                let expiry = deadlines.remove(&(ty, key.clone())).map(|ms| Txn::Expiry {
                    ty,
                    key: key.clone(),
                    at_ms: Some(ms),
                });
                let created = revs.filter(|r| r.created < r.last).map(|r| Txn::Created {
                    ty,
                    key: key.clone(),
                    revision: r.created,
                });
                let put = Txn::Put { key, value };
                let txns = std::iter::once(put).chain(expiry).chain(created);
                (revision, txns.collect())
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
                (3, put("replaced")),
                (
                    3,
                    Txn::Created {
                        ty: ValueType::Uint,
                        key: key("replaced"),
                        revision: 2
                    }
                ),
            ]
        );
    }

    #[test]
    fn a_live_value_made_before_its_last_change_says_when_through_compactions() {
        let put = |k: &str, v| Txn::Put {
            key: key(k),
            value: Value::Int(v),
        };
        let int = |k: &str| (ValueType::Int, key(k));
        let changes = [
            (1, put("kept", 1)),
            (2, put("again", 1)),
            (3, put("kept", 2)),
            (
                4,
                Txn::Delete {
                    ty: ValueType::Int,
                    key: key("again"),
                },
            ),
            (5, put("again", 2)),
            (6, put("again", 3)),
            (
                7,
                Txn::IncrBy {
                    key: key("kept"),
                    by: 1,
                },
            ),
        ];
        let mut live = LiveSet::default();
        for (revision, txn) in changes {
            live.apply(Change::new(revision, txn));
        }
        let created = |k: &str, revision| Txn::Created {
            ty: ValueType::Int,
            key: key(k),
            revision,
        };
        let puts = live.into_puts();
        assert_eq!(
            puts,
            [
                (6, put("again", 3)),
                (6, created("again", 5)),
                (7, put("kept", 3)),
                (7, created("kept", 1)),
            ]
        );
        // A compacted log compacted again says the same.
        let mut again = LiveSet::default();
        for (revision, txn) in puts.clone() {
            again.apply(Change::new(revision, txn));
        }
        assert_eq!(again.revisions[&int("kept")].created, 1);
        assert_eq!(again.into_puts(), puts);
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
                (
                    5,
                    Txn::Created {
                        ty: ValueType::Set,
                        key: key("s"),
                        revision: 2
                    }
                ),
            ]
        );
    }
}
