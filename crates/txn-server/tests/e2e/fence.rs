//! A writer that gave up a batch (its answer never came) fences it: the
//! batch is refused if it arrives later, so it cannot land in the log after
//! the writer undid it.

use kvs_core::change::UNSTAMPED;
use kvs_core::{Change, Key, Txn, Value};
use kvs_proto::api::{AppendRequest, DurableSequenceRequest, Transaction};
use kvs_testkit::stack::Stack;

fn batch(sequence: u64) -> AppendRequest {
    let txn = Txn::Put {
        key: Key::parse(&format!("batch{sequence}")).unwrap(),
        value: Value::Str(format!("from batch {sequence}")),
    };
    AppendRequest {
        writer_id: "fenced_writer".into(),
        sequence,
        transactions: vec![Transaction::from(&Change::new(UNSTAMPED, txn))],
        epoch: 0,
    }
}

#[tokio::test]
async fn a_batch_given_up_is_refused_and_later_batches_are_logged() {
    let stack = Stack::file().await;
    let mut client = stack.grpc_client().await;
    let durable =
        |r: tonic::Response<kvs_proto::api::AppendResponse>| r.into_inner().durable_sequence;
    assert_eq!(
        durable(client.append_transactions(batch(1)).await.unwrap()),
        1
    );

    // The writer sent batches 2 and 3, heard nothing, and asks, fencing them.
    let answer = client
        .durable_sequence(DurableSequenceRequest {
            writer_id: "fenced_writer".into(),
            fence: 3,
        })
        .await
        .unwrap();
    assert_eq!(durable(answer), 1);
    for late in [2, 3] {
        let refused = client.append_transactions(batch(late)).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
        assert!(refused.message().contains("given up"), "{refused:?}");
    }
    assert_eq!(
        durable(client.append_transactions(batch(4)).await.unwrap()),
        4
    );

    let mut logged = Vec::new();
    let mut stream = client.read_transactions(()).await.unwrap().into_inner();
    while let Some(t) = stream.message().await.unwrap() {
        if let Txn::Put { key, .. } = Change::try_from(t).unwrap().txn {
            logged.push(key.to_string());
        }
    }
    assert_eq!(logged, ["batch1", "batch4"]);
}
