//! What a watcher is told of a change: the kinds of events and their data.
//! Every kind is an arm of [`describe`].

use kvs_core::Txn;
use serde_json::{Map, Value as Json, json};

/// One change as a watcher sees it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Described {
    /// The SSE event's name.
    pub(crate) kind: &'static str,
    /// Its data: the type, the key, what changed and the revision.
    pub(crate) data: Map<String, Json>,
}

/// Whether watchers are told of `txn`: reads (audit records), the
/// original service's increments and a key's expiry time and creation
/// (parts of the put beside them) are not changes they see.
pub(crate) fn is_event(txn: &Txn) -> bool {
    !matches!(
        txn,
        Txn::Get { .. } | Txn::IncrBy { .. } | Txn::Expiry { .. } | Txn::Created { .. }
    )
}

/// `txn`, a change of `revision`, as a watcher sees it; `None` for what
/// [`is_event`] leaves out.
pub(crate) fn describe(txn: &Txn, revision: u64) -> Option<Described> {
    let (kind, what) = match txn {
        Txn::Put { value, .. } => ("put", json!({ "value": value.to_json() })),
        Txn::Delete { .. } => ("delete", json!({})),
        Txn::SetMember {
            member, present, ..
        } => ("member", json!({ "member": member, "present": present })),
        Txn::MapField { field, value, .. } => ("field", json!({ "field": field, "value": value })),
        Txn::Expire { .. } => ("expire", json!({})),
        Txn::Get { .. } | Txn::IncrBy { .. } | Txn::Expiry { .. } | Txn::Created { .. } => {
            return None;
        }
    };
    let mut data = Map::new();
    data.insert("type".into(), txn.value_type().name().into());
    data.insert("key".into(), txn.key().as_str().into());
    if let Json::Object(what) = what {
        data.extend(what);
    }
    data.insert("revision".into(), revision.into());
    Some(Described { kind, data })
}

/// The SSE event of one revision's changes (all of one revision, at least
/// one): the change's own kind when it is alone, else one `changes` event
/// that holds them all, so that resuming after its id never splits them.
pub(crate) fn of_revision(revision: u64, mut changes: Vec<Described>) -> (&'static str, Json) {
    if changes.len() == 1 {
        let one = changes.pop().expect("one");
        return (one.kind, Json::Object(one.data));
    }
    let changes: Vec<Json> = changes
        .into_iter()
        .map(|c| {
            let mut data = Map::new();
            data.insert("kind".into(), c.kind.into());
            data.extend(c.data);
            Json::Object(data)
        })
        .collect();
    (
        "changes",
        json!({ "revision": revision, "changes": changes }),
    )
}

#[cfg(test)]
mod tests {
    use kvs_core::{Key, Value, ValueType};

    use super::*;

    fn key() -> Key {
        Key::parse("k").unwrap()
    }

    fn data(txn: Txn) -> (&'static str, Json) {
        let d = describe(&txn, 7).unwrap();
        (d.kind, Json::Object(d.data))
    }

    #[test]
    fn each_kind_of_change_has_its_data() {
        let put = Txn::Put {
            key: key(),
            value: Value::Float(0.1),
        };
        assert_eq!(
            data(put),
            (
                "put",
                json!({"type": "float", "key": "k", "value": 0.1, "revision": 7})
            )
        );
        let delete = Txn::Delete {
            ty: ValueType::Int,
            key: key(),
        };
        assert_eq!(
            data(delete),
            ("delete", json!({"type": "int", "key": "k", "revision": 7}))
        );
        let member = Txn::SetMember {
            key: key(),
            member: "x".into(),
            present: false,
        };
        assert_eq!(
            data(member),
            (
                "member",
                json!({"type": "set", "key": "k", "member": "x", "present": false, "revision": 7})
            )
        );
        let removed = Txn::MapField {
            key: key(),
            field: "f".into(),
            value: None,
        };
        assert_eq!(
            data(removed),
            (
                "field",
                json!({"type": "map", "key": "k", "field": "f", "value": null, "revision": 7})
            )
        );
        assert_eq!(describe(&Txn::IncrBy { key: key(), by: 1 }, 7), None);
        let expired = Txn::Expire {
            ty: ValueType::Str,
            key: key(),
        };
        assert_eq!(
            data(expired),
            ("expire", json!({"type": "str", "key": "k", "revision": 7}))
        );
        let deadline = Txn::Expiry {
            ty: ValueType::Str,
            key: key(),
            at_ms: Some(1),
        };
        assert!(!is_event(&deadline), "part of its put's event");
        assert_eq!(describe(&deadline, 7), None);
    }

    #[test]
    fn several_changes_of_one_revision_are_one_changes_event() {
        let deletes = [ValueType::Int, ValueType::Str]
            .map(|ty| describe(&Txn::Delete { ty, key: key() }, 3).unwrap());
        let (kind, data) = of_revision(3, deletes.to_vec());
        assert_eq!(kind, "changes");
        assert_eq!(
            data,
            json!({"revision": 3, "changes": [
                {"kind": "delete", "type": "int", "key": "k", "revision": 3},
                {"kind": "delete", "type": "str", "key": "k", "revision": 3},
            ]})
        );
    }
}
