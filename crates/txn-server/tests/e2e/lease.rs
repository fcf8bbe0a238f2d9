//! The write lease: held by one client certificate at a time, renewed only
//! by it, taken over at the next epoch once it lapses, and every append of
//! another epoch refused by the database, whichever txn-server it comes
//! through.

use std::time::Duration;

use kvs_core::change::UNSTAMPED;
use kvs_core::{Change, Key, Txn, Value};
use kvs_proto::api::transaction_service_client::TransactionServiceClient;
use kvs_proto::api::{
    AppendRequest, DurableSequenceRequest, LeaseRequest, LeaseResponse, Transaction,
};
use kvs_testkit::stack::Stack;
use tonic::Code;
use tonic::transport::Channel;

type Client = TransactionServiceClient<Channel>;

fn ask(epoch: u64, take: bool, ttl_ms: u64) -> LeaseRequest {
    LeaseRequest {
        holder: "node".into(),
        url: "http://node:8080".into(),
        epoch,
        take,
        ttl_ms,
    }
}

async fn lease(client: &mut Client, req: LeaseRequest) -> LeaseResponse {
    client.lease(req).await.unwrap().into_inner()
}

fn batch(writer: &str, sequence: u64, epoch: u64) -> AppendRequest {
    let txn = Txn::Put {
        key: Key::parse(&format!("{writer}{sequence}")).unwrap(),
        value: Value::Str(format!("epoch {epoch}")),
    };
    AppendRequest {
        writer_id: writer.into(),
        sequence,
        transactions: vec![Transaction::from(&Change::new(UNSTAMPED, txn))],
        epoch,
    }
}

/// The keys the log holds.
async fn logged(client: &mut Client) -> Vec<String> {
    let mut keys = Vec::new();
    let mut stream = client.read_transactions(()).await.unwrap().into_inner();
    while let Some(t) = stream.message().await.unwrap() {
        if let Txn::Put { key, .. } = Change::try_from(t).unwrap().txn {
            keys.push(key.to_string());
        }
    }
    keys.sort();
    keys
}

async fn durable(client: &mut Client, writer: &str) -> u64 {
    let req = DurableSequenceRequest {
        writer_id: writer.into(),
        fence: 0,
    };
    client
        .durable_sequence(req)
        .await
        .unwrap()
        .into_inner()
        .durable_sequence
}

fn fenced(status: tonic::Status) {
    assert_eq!(status.code(), Code::Aborted, "{status:?}");
    assert!(status.message().starts_with("fenced:"), "{status:?}");
}

#[tokio::test]
async fn the_lease_is_bound_to_its_certificate_and_the_database_fences_an_old_epoch_through_any_txn_server()
 {
    let mut stack = Stack::database_only().await;
    // txn-server trusts a second CA too, whose client is another node.
    let other = stack.trust_another_ca();
    stack.start_txn();
    let second = stack.another_txn();
    let mut a = stack.grpc_client().await;
    let mut b = stack.grpc_client_at(&second.addr, &other).await;

    let taken = lease(&mut a, ask(0, true, 600_000)).await;
    assert!(taken.held && taken.epoch == 1, "{taken:?}");
    assert_eq!(
        (taken.holder.as_str(), taken.url.as_str()),
        ("node", "http://node:8080")
    );
    assert!(taken.remaining_ms > 590_000, "{taken:?}");
    assert_eq!(
        a.append_transactions(batch("a", 1, 1))
            .await
            .unwrap()
            .into_inner()
            .durable_sequence,
        1
    );

    // The same holder id from another certificate is another holder: it
    // neither holds nor renews the lease.
    for take in [false, true] {
        let refused = lease(&mut b, ask(1, take, 600_000)).await;
        assert!(!refused.held && refused.epoch == 1, "{refused:?}");
        assert_eq!(refused.holder, "node");
    }
    fenced(b.append_transactions(batch("b", 1, 0)).await.unwrap_err());

    // The holder lets it lapse; the other node takes it through the other
    // txn-server.
    assert!(lease(&mut a, ask(1, true, 100)).await.held);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while lease(&mut b, ask(0, false, 0)).await.remaining_ms > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the lease never lapsed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let over = lease(&mut b, ask(0, true, 600_000)).await;
    assert!(over.held && over.epoch == 2, "{over:?}");
    let late = lease(&mut a, ask(1, true, 600_000)).await;
    assert!(!late.held && late.epoch == 2, "{late:?}");

    // The first txn-server has taken epoch 1 and seen nothing newer: the
    // database refuses the old holder's append, and keeps nothing of it.
    fenced(a.append_transactions(batch("a", 2, 1)).await.unwrap_err());
    assert_eq!(durable(&mut a, "a").await, 1);
    assert_eq!(
        b.append_transactions(batch("b", 1, 2))
            .await
            .unwrap()
            .into_inner()
            .durable_sequence,
        1
    );
    fenced(a.append_transactions(batch("a", 2, 1)).await.unwrap_err());
    // The original protocol holds no lease either.
    let original = tokio_stream::iter([batch("a", 2, 0).transactions.remove(0)]);
    let _ = a.write_transactions(original).await;
    assert_eq!(logged(&mut a).await, ["a1", "b1"]);
    assert_eq!(durable(&mut a, "a").await, 1);
}

#[tokio::test]
async fn ttls_out_of_range_and_holder_ids_that_are_not_keys_are_refused() {
    let stack = Stack::database_only().await;
    let mut stack = stack;
    stack.start_txn();
    let mut client = stack.grpc_client().await;
    for ttl_ms in [0, 99, 600_001] {
        let refused = client.lease(ask(0, true, ttl_ms)).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        assert!(refused.message().contains("ttlMs"), "{refused:?}");
    }
    let mut bad = ask(0, true, 1000);
    bad.holder = "no spaces".into();
    let refused = client.lease(bad).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(
        refused.message().starts_with("lease holder id"),
        "{refused:?}"
    );
    // Nothing was taken.
    assert_eq!(lease(&mut client, ask(0, false, 0)).await.epoch, 0);
}

#[tokio::test]
async fn the_file_backend_has_no_lease_and_takes_epoch_0_only() {
    let stack = Stack::file().await;
    let mut client = stack.grpc_client().await;
    let refused = client.lease(ask(0, true, 1000)).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert_eq!(refused.message(), "the lease needs the PostgreSQL backend");
    fenced(
        client
            .append_transactions(batch("w", 1, 1))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        client
            .append_transactions(batch("w", 1, 0))
            .await
            .unwrap()
            .into_inner()
            .durable_sequence,
        1
    );
}
