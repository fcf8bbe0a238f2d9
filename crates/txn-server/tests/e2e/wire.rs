//! Transactions and appends as they go on the wire to txn-server.

use kvs_core::change::UNSTAMPED;
use kvs_core::{Change, Key, Txn, Value};
use kvs_proto::api::{AppendRequest, Transaction};

/// A put of `value` under `key`, as it goes on the wire.
pub fn put(key: &str, value: Value) -> Transaction {
    Transaction::from(&Change::new(
        UNSTAMPED,
        Txn::Put {
            key: Key::parse(key).unwrap(),
            value,
        },
    ))
}

/// An append of `writer`'s batch `sequence`.
pub fn append(writer: &str, sequence: u64, transactions: Vec<Transaction>) -> AppendRequest {
    AppendRequest {
        writer_id: writer.into(),
        sequence,
        transactions,
        epoch: 0,
    }
}
