//! The gRPC contract of the transaction service (`proto/kvs.proto`,
//! package `api`) and its conversions to and from the KVS domain.
//!
//! Conversions from the wire check everything a peer could get wrong (an
//! unknown type, a bad key, data of the wrong kind) and say what it was.
//! [`replay`]: the trailers that end a complete `ReadTransactions` stream.
//! [`codec`]: the protobuf codec, which answers a malformed message with
//! INVALID_ARGUMENT.

use std::time::SystemTime;

use kvs_core::value::{MapValue, SetValue};
use kvs_core::{Change, Key, Txn, Value, ValueType};

#[cfg(feature = "grpc")]
pub mod codec;
#[cfg(feature = "grpc")]
pub mod replay;

/// The largest gRPC message either server takes (tonic's default is
/// 4 MiB): one transaction may be as large as the file log takes (64 MiB),
/// and an append carries it with a batch of others (kvs-server caps those
/// at about 4 MiB). Replay streams one transaction a message.
pub const MAX_MESSAGE_BYTES: usize = 80 << 20;

/// The generated messages, and with `grpc` the client and server.
pub mod api {
    include!(concat!(env!("OUT_DIR"), "/api.rs"));
}

use api::transaction_data::Kind;
use api::{StorageType, Transaction, TransactionData, TxnType};

/// Why a wire transaction is not a valid one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    #[error("unknown storage type {0}")]
    StorageType(i32),
    #[error("unknown transaction type {0}")]
    TxnType(i32),
    #[error("bad key {key:?}: {reason}")]
    Key { key: String, reason: String },
    #[error("{txn} of a {ty} key carries {found} data")]
    Data {
        txn: &'static str,
        ty: ValueType,
        found: &'static str,
    },
    #[error("a member or field change carries {0} entries, where it takes one")]
    Entries(usize),
}

fn storage_type(ty: ValueType) -> StorageType {
    match ty {
        ValueType::Int => StorageType::StorageInt,
        ValueType::Uint => StorageType::StorageUint,
        ValueType::Float => StorageType::StorageFloat,
        ValueType::Str => StorageType::StorageStr,
        ValueType::Map => StorageType::StorageMap,
        ValueType::Set => StorageType::StorageSet,
    }
}

fn value_type(ty: StorageType) -> ValueType {
    match ty {
        StorageType::StorageInt => ValueType::Int,
        StorageType::StorageUint => ValueType::Uint,
        StorageType::StorageFloat => ValueType::Float,
        StorageType::StorageStr => ValueType::Str,
        StorageType::StorageMap => ValueType::Map,
        StorageType::StorageSet => ValueType::Set,
    }
}

fn data(kind: Kind) -> Option<TransactionData> {
    Some(TransactionData { kind: Some(kind) })
}

fn value_kind(value: &Value) -> Kind {
    match value {
        Value::Int(v) => Kind::IntValue(*v),
        Value::Uint(v) => Kind::UintValue(*v),
        Value::Float(v) => Kind::FloatValue(*v),
        Value::Str(s) => Kind::StrValue(s.clone()),
        Value::Map(m) => Kind::MapValue(api::Map {
            data: m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        }),
        Value::Set(s) => Kind::SetValue(api::Set {
            members: s.iter().cloned().collect(),
        }),
    }
}

fn kind_name(kind: &Option<Kind>) -> &'static str {
    match kind {
        None => "no",
        Some(Kind::NullValue(_)) => "null",
        Some(Kind::IntValue(_)) => "int",
        Some(Kind::UintValue(_)) => "uint",
        Some(Kind::FloatValue(_)) => "float",
        Some(Kind::StrValue(_)) => "string",
        Some(Kind::MapValue(_)) => "map",
        Some(Kind::SetValue(_)) => "set",
    }
}

fn entry_type(present: bool) -> TxnType {
    if present {
        TxnType::TxnPutEntry
    } else {
        TxnType::TxnDelEntry
    }
}

/// A one-member set: how a member or field change names its entry.
fn names(name: &str) -> Kind {
    Kind::SetValue(api::Set {
        members: vec![name.to_owned()],
    })
}

/// The one item of a member or field change.
fn one<T>(items: impl ExactSizeIterator<Item = T>) -> Result<T, ConvertError> {
    let mut items = items;
    match (items.len(), items.next()) {
        (1, Some(item)) => Ok(item),
        (n, _) => Err(ConvertError::Entries(n)),
    }
}

impl From<&Change> for Transaction {
    fn from(change: &Change) -> Transaction {
        let txn = &change.txn;
        let (txn_type, data) = match txn {
            Txn::Put { value, .. } => (TxnType::TxnPut, data(value_kind(value))),
            Txn::Delete { .. } => (TxnType::TxnDel, data(Kind::NullValue(0))),
            Txn::IncrBy { by, .. } => (TxnType::TxnIncrBy, data(Kind::IntValue(*by))),
            Txn::Get { .. } => (TxnType::TxnGet, data(Kind::NullValue(0))),
            Txn::SetMember {
                member, present, ..
            } => (entry_type(*present), data(names(member))),
            Txn::MapField { field, value, .. } => match value {
                Some(v) => (
                    TxnType::TxnPutEntry,
                    data(Kind::MapValue(api::Map {
                        data: [(field.clone(), v.clone())].into(),
                    })),
                ),
                None => (TxnType::TxnDelEntry, data(names(field))),
            },
            Txn::Expiry { .. } => (TxnType::TxnExpiry, data(Kind::NullValue(0))),
            Txn::Expire { .. } => (TxnType::TxnExpire, data(Kind::NullValue(0))),
            Txn::Created { .. } => (TxnType::TxnCreated, data(Kind::NullValue(0))),
        };
        Transaction {
            timestamp: Some(SystemTime::now().into()),
            storage_type: storage_type(txn.value_type()) as i32,
            txn_type: txn_type as i32,
            key: txn.key().to_string(),
            data,
            revision: change.revision,
            expires_at: match txn {
                Txn::Expiry { at_ms, .. } => at_ms.unwrap_or(0),
                _ => 0,
            },
            created_revision: match txn {
                Txn::Created { revision, .. } => *revision,
                _ => 0,
            },
        }
    }
}

impl TryFrom<Transaction> for Change {
    type Error = ConvertError;

    fn try_from(t: Transaction) -> Result<Change, ConvertError> {
        let revision = t.revision;
        txn(t).map(|txn| Change::new(revision, txn))
    }
}

/// The transaction `t` carries.
fn txn(t: Transaction) -> Result<Txn, ConvertError> {
    let ty = StorageType::try_from(t.storage_type)
        .map(value_type)
        .map_err(|_| ConvertError::StorageType(t.storage_type))?;
    let txn_type = TxnType::try_from(t.txn_type).map_err(|_| ConvertError::TxnType(t.txn_type))?;
    let key = Key::parse(&t.key).map_err(|e| ConvertError::Key {
        key: t.key.clone(),
        reason: e.to_string(),
    })?;
    let kind = t.data.and_then(|d| d.kind);
    let wrong = |txn: &'static str, kind: &Option<Kind>| ConvertError::Data {
        txn,
        ty,
        found: kind_name(kind),
    };
    Ok(match txn_type {
        TxnType::TxnPut => {
            let value = match (ty, kind) {
                (ValueType::Int, Some(Kind::IntValue(v))) => Value::Int(v),
                (ValueType::Uint, Some(Kind::UintValue(v))) => Value::Uint(v),
                (ValueType::Float, Some(Kind::FloatValue(v))) => Value::Float(v),
                (ValueType::Str, Some(Kind::StrValue(s))) => Value::Str(s),
                (ValueType::Map, Some(Kind::MapValue(m))) => {
                    Value::Map(m.data.into_iter().collect::<MapValue>())
                }
                (ValueType::Set, Some(Kind::SetValue(s))) => {
                    Value::Set(s.members.into_iter().collect::<SetValue>())
                }
                (_, other) => return Err(wrong("put", &other)),
            };
            Txn::Put { key, value }
        }
        TxnType::TxnDel => Txn::Delete { ty, key },
        TxnType::TxnGet => Txn::Get { ty, key },
        TxnType::TxnExpiry => Txn::Expiry {
            ty,
            key,
            at_ms: Some(t.expires_at).filter(|&at| at != 0),
        },
        TxnType::TxnExpire => Txn::Expire { ty, key },
        TxnType::TxnCreated => Txn::Created {
            ty,
            key,
            revision: t.created_revision,
        },
        TxnType::TxnIncr if ty == ValueType::Int => Txn::IncrBy { key, by: 1 },
        TxnType::TxnIncrBy => match (ty, kind) {
            (ValueType::Int, Some(Kind::IntValue(by))) => Txn::IncrBy { key, by },
            (_, other) => return Err(wrong("increment", &other)),
        },
        TxnType::TxnIncr => return Err(wrong("increment", &kind)),
        TxnType::TxnPutEntry => match (ty, kind) {
            (ValueType::Set, Some(Kind::SetValue(s))) => Txn::SetMember {
                key,
                member: one(s.members.into_iter())?,
                present: true,
            },
            (ValueType::Map, Some(Kind::MapValue(m))) => {
                let (field, value) = one(m.data.into_iter())?;
                Txn::MapField {
                    key,
                    field,
                    value: Some(value),
                }
            }
            (_, other) => return Err(wrong("entry put", &other)),
        },
        TxnType::TxnDelEntry => match (ty, kind) {
            (ValueType::Set | ValueType::Map, Some(Kind::SetValue(s))) => {
                let name = one(s.members.into_iter())?;
                if ty == ValueType::Set {
                    Txn::SetMember {
                        key,
                        member: name,
                        present: false,
                    }
                } else {
                    Txn::MapField {
                        key,
                        field: name,
                        value: None,
                    }
                }
            }
            (_, other) => return Err(wrong("entry delete", &other)),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> Key {
        Key::parse(s).unwrap()
    }

    #[test]
    fn every_domain_transaction_survives_the_wire() {
        for (n, txn) in kvs_core::samples::every_kind().into_iter().enumerate() {
            let change = Change::new(n as u64, txn);
            assert_eq!(
                Change::try_from(Transaction::from(&change)).unwrap(),
                change
            );
        }
    }

    #[test]
    fn the_originals_increment_without_data_adds_one() {
        let t = Transaction {
            storage_type: StorageType::StorageInt as i32,
            txn_type: TxnType::TxnIncr as i32,
            key: "c".into(),
            ..Transaction::default()
        };
        assert_eq!(
            txn(t).unwrap(),
            Txn::IncrBy {
                key: key("c"),
                by: 1
            }
        );
    }

    #[test]
    fn malformed_wire_transactions_are_refused_with_a_reason() {
        let base = Transaction {
            storage_type: StorageType::StorageInt as i32,
            txn_type: TxnType::TxnPut as i32,
            key: "k".into(),
            data: data(Kind::StrValue("1".into())),
            ..Transaction::default()
        };
        assert!(matches!(
            txn(base.clone()),
            Err(ConvertError::Data {
                found: "string",
                ..
            })
        ));
        let bad_key = Transaction {
            key: "a b".into(),
            ..base.clone()
        };
        assert!(matches!(txn(bad_key), Err(ConvertError::Key { .. })));
        let bad_type = Transaction {
            storage_type: 9,
            ..base.clone()
        };
        assert_eq!(txn(bad_type), Err(ConvertError::StorageType(9)));
        let bad_txn = Transaction {
            txn_type: -1,
            ..base
        };
        assert_eq!(txn(bad_txn), Err(ConvertError::TxnType(-1)));
        let two_members = Transaction {
            storage_type: StorageType::StorageSet as i32,
            txn_type: TxnType::TxnPutEntry as i32,
            key: "s".into(),
            data: data(Kind::SetValue(api::Set {
                members: vec!["a".into(), "b".into()],
            })),
            ..Transaction::default()
        };
        assert_eq!(txn(two_members), Err(ConvertError::Entries(2)));
        let of_a_string = Transaction {
            storage_type: StorageType::StorageStr as i32,
            txn_type: TxnType::TxnDelEntry as i32,
            key: "s".into(),
            data: data(names("a")),
            ..Transaction::default()
        };
        assert!(matches!(
            txn(of_a_string),
            Err(ConvertError::Data {
                ty: ValueType::Str,
                ..
            })
        ));
    }
}
