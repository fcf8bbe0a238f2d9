//! A writer's batches are taken in order only (its next batch, or a resend
//! of a durable one), and a writer id belongs to the client certificate that
//! sends it: no client can make kvs-server's writes acknowledged but not
//! stored, or refused for good.

use std::time::{Duration, Instant};

use kvs_core::change::UNSTAMPED;
use kvs_core::{Change, Key, Txn, Value};
use kvs_proto::api::transaction_service_client::TransactionServiceClient;
use kvs_proto::api::{AppendRequest, DurableSequenceRequest, Transaction};
use kvs_testkit::stack::Stack;
use reqwest::StatusCode;
use tonic::transport::Channel;

/// The writer id kvs-server appends under, as it sends it (the log may keep
/// it under a prefix).
async fn kvs_writer_id(stack: &Stack) -> String {
    let (client, conn) = tokio_postgres::connect(stack.pg().url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let rows = client
        .query("SELECT writer_id FROM kvs_writers", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "one kvs-server, one writer");
    let stored: String = rows[0].get(0);
    let at = stored
        .find("kvs_")
        .expect("kvs-server's writer ids start kvs_");
    stored[at..].to_owned()
}

fn forged(writer: &str, sequence: u64) -> AppendRequest {
    let txn = Txn::Put {
        key: Key::parse("forged").unwrap(),
        value: Value::Str("not kvs-server's".into()),
    };
    AppendRequest {
        writer_id: writer.into(),
        sequence,
        transactions: vec![Transaction::from(&Change::new(UNSTAMPED, txn))],
        epoch: 0,
    }
}

fn fence(writer: &str, fence: u64) -> DurableSequenceRequest {
    DurableSequenceRequest {
        writer_id: writer.into(),
        fence,
    }
}

async fn durable(client: &mut TransactionServiceClient<Channel>, writer: &str) -> u64 {
    client
        .durable_sequence(fence(writer, 0))
        .await
        .unwrap()
        .into_inner()
        .durable_sequence
}

/// kvs-server restarted on the same log: what it serves is what was stored.
async fn restart_kvs(stack: &mut Stack) {
    stack.kvs.take().expect("kvs-server is running").terminate();
    stack.start_kvs(&[]).await;
}

/// kvs-server's writes after a forged append or fence are answered and
/// stored (read back after a restart), and the forged one is not.
async fn writes_after_the_attempt_are_stored(stack: &mut Stack) {
    let api = stack.api();
    assert_eq!(api.put("/str/after", "2").await, StatusCode::OK);
    assert_eq!(api.put("/str/later", "3").await, StatusCode::OK);
    restart_kvs(stack).await;
    let api = stack.api();
    for (path, value) in [
        ("/str/before", "1"),
        ("/str/after", "2"),
        ("/str/later", "3"),
    ] {
        assert_eq!(
            api.get(path).await,
            (StatusCode::OK, value.into()),
            "{path}"
        );
    }
    assert_eq!(api.get("/str/forged").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_batch_or_fence_that_skips_ahead_is_refused_and_kvs_server_writes_are_stored() {
    let mut stack = Stack::postgres().await;
    let api = stack.api();
    assert_eq!(api.put("/str/before", "1").await, StatusCode::OK);
    let writer = kvs_writer_id(&stack).await;
    // The same client certificate kvs-server uses.
    let mut client = stack.grpc_client().await;

    let skipped = client
        .append_transactions(forged(&writer, i64::MAX as u64))
        .await
        .unwrap_err();
    assert_eq!(
        skipped.code(),
        tonic::Code::FailedPrecondition,
        "{skipped:?}"
    );
    assert!(skipped.message().contains("skips ahead"), "{skipped:?}");
    let far = client
        .durable_sequence(fence(&writer, i64::MAX as u64))
        .await
        .unwrap_err();
    assert_eq!(far.code(), tonic::Code::FailedPrecondition, "{far:?}");

    writes_after_the_attempt_are_stored(&mut stack).await;
}

#[tokio::test]
async fn kvs_server_takes_up_past_a_fence_it_does_not_know_of() {
    let mut stack = Stack::postgres().await;
    let api = stack.api();
    assert_eq!(api.put("/str/before", "1").await, StatusCode::OK);
    let writer = kvs_writer_id(&stack).await;
    let mut client = stack.grpc_client().await;
    let at = durable(&mut client, &writer).await;
    // As if kvs-server had fenced ten batches and lost the answer.
    client
        .durable_sequence(fence(&writer, at + 10))
        .await
        .unwrap();

    // Its next batch is one it gave up; it recovers once, then writes again.
    assert_eq!(
        api.put("/str/given_up", "x").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    stack.wait_readyz(StatusCode::OK).await;
    assert_eq!(api.put("/str/after", "2").await, StatusCode::OK);
    restart_kvs(&mut stack).await;
    let api = stack.api();
    assert_eq!(api.get("/str/after").await, (StatusCode::OK, "2".into()));
    assert_eq!(api.get("/str/given_up").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn another_client_certificate_cannot_append_or_fence_as_kvs_servers_writer() {
    let mut stack = Stack::database_only().await;
    // txn-server trusts a second CA too, whose client is someone else.
    let other = stack.trust_another_ca();
    stack.start_txn();
    stack.start_kvs(&[]).await;
    let api = stack.api();
    assert_eq!(api.put("/str/before", "1").await, StatusCode::OK);
    let writer = kvs_writer_id(&stack).await;
    let at = durable(&mut stack.grpc_client().await, &writer).await;
    assert!(at >= 1);

    let mut intruder = stack.grpc_client_as(&other).await;
    // The intruder sees none of kvs-server's progress...
    assert_eq!(durable(&mut intruder, &writer).await, 0);
    // ...and what it sends under that id does not touch kvs-server's writer.
    let _ = intruder.append_transactions(forged(&writer, at + 1)).await;
    let _ = intruder.durable_sequence(fence(&writer, at + 10)).await;

    writes_after_the_attempt_are_stored(&mut stack).await;
}

#[tokio::test]
async fn idle_writers_are_forgotten_and_a_live_one_forgotten_goes_on_writing() {
    let mut stack = Stack::database_only().await;
    stack.start_txn();
    stack.start_kvs(&[]).await;
    assert_eq!(stack.api().put("/str/first", "1").await, StatusCode::OK);
    // Every start of kvs-server is a new writer (counted under the default
    // TTL, which no restart outlasts).
    restart_kvs(&mut stack).await;
    assert_eq!(stack.api().put("/str/second", "2").await, StatusCode::OK);
    assert_eq!(
        stack.pg().count("SELECT COUNT(*) FROM kvs_writers").await,
        2
    );
    // Then a TTL both outlast at once.
    assert!(stack.txn.take().unwrap().terminate().success());
    stack.txn_args = vec!["--writer-ttl-secs".into(), "1".into()];
    stack.start_txn();

    let deadline = Instant::now() + Duration::from_secs(20);
    while stack.pg().count("SELECT COUNT(*) FROM kvs_writers").await > 0 {
        assert!(Instant::now() < deadline, "idle writers were not forgotten");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The running kvs-server was forgotten too; its next write is stored.
    assert_eq!(stack.api().put("/str/third", "3").await, StatusCode::OK);
    restart_kvs(&mut stack).await;
    let api = stack.api();
    for (path, value) in [
        ("/str/first", "1"),
        ("/str/second", "2"),
        ("/str/third", "3"),
    ] {
        assert_eq!(
            api.get(path).await,
            (StatusCode::OK, value.into()),
            "{path}"
        );
    }
}
