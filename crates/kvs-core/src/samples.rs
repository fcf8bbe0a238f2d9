//! One transaction of every kind, for the tests of the codecs and the
//! fuzz seeds (feature `samples`): the log codec, the gRPC conversion and
//! the seed corpus all cover the same kinds.

use crate::{Key, Txn, Value, ValueType};

fn key(s: &str) -> Key {
    Key::parse(s).expect("a sample key")
}

/// A put of every value type, then a delete, an increment, a read, the
/// member and field changes, each both ways, and an expiry set and come
/// (edge cases included: the largest uint, a text with a non-ASCII letter
/// and a newline, an empty map field, an empty set member, the largest
/// time).
pub fn every_kind() -> Vec<Txn> {
    vec![
        Txn::Put {
            key: key("i"),
            value: Value::Int(-7),
        },
        Txn::Put {
            key: key("u"),
            value: Value::Uint(u32::MAX),
        },
        Txn::Put {
            key: key("f"),
            value: Value::Float(0.1),
        },
        Txn::Put {
            key: key("s"),
            value: Value::Str("h\u{e9}llo\n".into()),
        },
        Txn::Put {
            key: key("m"),
            value: Value::Map([("a".into(), "1".into()), ("".into(), "".into())].into()),
        },
        Txn::Put {
            key: key("t"),
            value: Value::Set(["x".into(), "y".into()].into()),
        },
        Txn::Delete {
            ty: ValueType::Map,
            key: key("m"),
        },
        Txn::IncrBy {
            key: key("i"),
            by: -3,
        },
        Txn::Get {
            ty: ValueType::Str,
            key: key("s"),
        },
        Txn::SetMember {
            key: key("t"),
            member: "z".into(),
            present: true,
        },
        Txn::SetMember {
            key: key("t"),
            member: "".into(),
            present: false,
        },
        Txn::MapField {
            key: key("m"),
            field: "f".into(),
            value: Some("v".into()),
        },
        Txn::MapField {
            key: key("m"),
            field: "f".into(),
            value: None,
        },
        Txn::Expiry {
            ty: ValueType::Str,
            key: key("s"),
            at_ms: Some(u64::MAX),
        },
        Txn::Expiry {
            ty: ValueType::Int,
            key: key("i"),
            at_ms: None,
        },
        Txn::Expire {
            ty: ValueType::Set,
            key: key("t"),
        },
        Txn::Created {
            ty: ValueType::Map,
            key: key("m"),
            revision: 7,
        },
    ]
}
