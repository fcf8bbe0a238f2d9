//! What txn-server refuses from a writer: a value that a backend could not
//! keep fails its own request, never the batch it would be committed with.

use kvs_core::{Change, Key, Txn, Value};
use kvs_proto::api::{AppendRequest, Transaction};
use kvs_testkit::stack::Stack;

use crate::wire::{self, put};

fn append(sequence: u64, transactions: Vec<Transaction>) -> AppendRequest {
    wire::append("careless_writer", sequence, transactions)
}

#[tokio::test]
async fn a_nul_in_text_or_a_nan_is_refused_and_the_log_goes_on() {
    let stack = Stack::file().await;
    let mut client = stack.grpc_client().await;
    for (bad, says) in [
        (Value::Str("a\0b".into()), "NUL"),
        (
            Value::Map([("f\0".to_owned(), "v".to_owned())].into()),
            "a map field",
        ),
        (Value::Float(f32::NAN), "finite"),
    ] {
        let refused = client
            .append_transactions(append(1, vec![put("fine", Value::Int(1)), put("bad", bad)]))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
        assert!(refused.message().contains(says), "{refused:?}");
    }
    let ok = client
        .append_transactions(append(1, vec![put("fine", Value::Int(2))]))
        .await
        .unwrap();
    assert_eq!(ok.into_inner().durable_sequence, 1);

    let mut logged = Vec::new();
    let mut stream = client.read_transactions(()).await.unwrap().into_inner();
    while let Some(t) = stream.message().await.unwrap() {
        logged.push(Change::try_from(t).unwrap().txn);
    }
    assert_eq!(
        logged,
        [Txn::Put {
            key: Key::parse("fine").unwrap(),
            value: Value::Int(2)
        }]
    );
}
