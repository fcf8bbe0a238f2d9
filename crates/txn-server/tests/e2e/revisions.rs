//! Revisions through txn-server: `AppendTransactions` keeps those its
//! writer gives, `WriteTransactions` (the original protocol) gives none, and
//! `ReadTransactions` hands each change back with its revision and ends
//! with the log's head, on either backend.

use kvs_core::{Change, Key, Txn, Value, ValueType};
use kvs_proto::api::Transaction;
use kvs_proto::replay::ReplayEnd;
use kvs_testkit::stack::Stack;

use crate::wire::{self, append};

fn put(key: &str, v: i32) -> Txn {
    Txn::Put {
        key: Key::parse(key).unwrap(),
        value: Value::Int(v),
    }
}

fn wire(revision: u64, txn: Txn) -> Transaction {
    Transaction::from(&Change::new(revision, txn))
}

/// Logs, in order: through `WriteTransactions` a put of `d` whose message
/// claims revision 99; through `AppendTransactions` revision 3 (puts of `a`
/// and `b`) and 4 (a put of `c`), then revision 8, a delete of `b`.
async fn write_history(stack: &Stack) {
    let mut client = stack.grpc_client().await;
    let mut original = wire::put("d", Value::Int(4));
    original.revision = 99;
    client
        .write_transactions(tokio_stream::iter([original]))
        .await
        .unwrap();
    let first = vec![
        wire(3, put("a", 1)),
        wire(3, put("b", 2)),
        wire(4, put("c", 3)),
    ];
    client
        .append_transactions(append("revisions_writer", 1, first))
        .await
        .unwrap();
    let delete = Txn::Delete {
        ty: ValueType::Int,
        key: Key::parse("b").unwrap(),
    };
    client
        .append_transactions(append("revisions_writer", 2, vec![wire(8, delete)]))
        .await
        .unwrap();
}

/// Each change `ReadTransactions` streams as (revision, key), and the
/// head its trailers give.
async fn read_back(stack: &Stack) -> (Vec<(u64, String)>, u64) {
    let mut client = stack.grpc_client().await;
    let mut stream = client.read_transactions(()).await.unwrap().into_inner();
    let mut changes = Vec::new();
    while let Some(t) = stream.message().await.unwrap() {
        let change = Change::try_from(t).unwrap();
        changes.push((change.revision, change.txn.key().to_string()));
    }
    let trailers = stream.trailers().await.unwrap();
    let end = ReplayEnd::from_trailers(trailers.as_ref()).unwrap();
    assert_eq!(end.records, changes.len() as u64);
    (changes, end.head)
}

fn at(changes: &[(u64, &str)]) -> Vec<(u64, String)> {
    changes.iter().map(|(r, k)| (*r, (*k).to_owned())).collect()
}

#[tokio::test]
async fn the_file_backend_hands_back_each_revision_and_the_head() {
    let stack = Stack::file_only(&[]);
    write_history(&stack).await;
    let (changes, head) = read_back(&stack).await;
    // The original's put was logged without a revision: the first, in file
    // order.
    assert_eq!(
        changes,
        at(&[(1, "d"), (3, "a"), (3, "b"), (4, "c"), (8, "b")])
    );
    assert_eq!(head, 8);
}

#[tokio::test]
async fn the_postgres_backend_hands_back_each_revision_and_the_head() {
    let mut stack = Stack::database_only().await;
    stack.start_txn();
    write_history(&stack).await;
    let (mut changes, head) = read_back(&stack).await;
    // The delete took `b` with its rows; the head it raised stays, and the
    // original's put, stored without a revision, is numbered after it.
    // Within a table rows come in id order, and the rows of one batch get
    // their ids in no set order: each change keeps its revision, whatever
    // the order.
    changes.sort();
    assert_eq!(changes, at(&[(3, "a"), (4, "c"), (9, "d")]));
    assert_eq!(head, 9);
}
