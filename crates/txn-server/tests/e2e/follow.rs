//! `Follow`, the change stream, over real gRPC with mutual TLS, on
//! PostgreSQL and on the file: every appended revision exactly once, in
//! order, across a resumption; OUT_OF_RANGE for a follower further back
//! than the log keeps; heartbeats with the head while nothing happens.

use std::time::Duration;

use kvs_core::{Change, Key, Txn, Value};
use kvs_proto::api::transaction_service_client::TransactionServiceClient;
use kvs_proto::api::{FollowBatch, FollowRequest, Transaction};
use kvs_testkit::stack::Stack;
use tonic::transport::Channel;
use tonic::{Code, Streaming};

use crate::wire::append;

/// How long a test waits for a message before it fails: a bound for a
/// hang, not a timing.
const LIMIT: Duration = Duration::from_secs(60);

const WRITER: &str = "primary";

/// txn-server on PostgreSQL with `args`, without kvs-server.
async fn on_postgres(args: &[&str]) -> Stack {
    let mut stack = Stack::database_only().await;
    stack.txn_args = args.iter().map(|a| a.to_string()).collect();
    stack.start_txn();
    stack
}

/// txn-server on its file backend with `args`, without kvs-server.
fn on_file(args: &[&str]) -> Stack {
    Stack::file_only(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>())
}

/// Revision `revision`: `n` puts.
fn revision(revision: u64, n: u64) -> Vec<Change> {
    (0..n)
        .map(|i| {
            Change::new(
                revision,
                Txn::Put {
                    key: Key::parse(&format!("k{i}")).unwrap(),
                    value: Value::Int(revision as i32),
                },
            )
        })
        .collect()
}

/// Appends `changes` as the writer's batch `sequence`.
async fn log(client: &mut TransactionServiceClient<Channel>, sequence: u64, changes: &[Change]) {
    let txns = changes.iter().map(Transaction::from).collect();
    client
        .append_transactions(append(WRITER, sequence, txns))
        .await
        .unwrap();
}

async fn follow(
    client: &mut TransactionServiceClient<Channel>,
    after: u64,
) -> Streaming<FollowBatch> {
    client
        .follow(FollowRequest { after })
        .await
        .unwrap()
        .into_inner()
}

async fn next(stream: &mut Streaming<FollowBatch>) -> Result<FollowBatch, tonic::Status> {
    match tokio::time::timeout(LIMIT, stream.message()).await {
        Ok(Ok(Some(batch))) => Ok(batch),
        Ok(Ok(None)) => panic!("the follow stream ended"),
        Ok(Err(status)) => Err(status),
        Err(_) => panic!("no follow batch within {LIMIT:?}"),
    }
}

/// Reads `stream` up to revision `upto`, checking each batch: whole
/// revisions, after those before, with a head at least as far.
async fn read_upto(stream: &mut Streaming<FollowBatch>, mut after: u64, upto: u64) -> Vec<Change> {
    let mut changes = Vec::new();
    while after < upto {
        let batch = next(stream).await.unwrap();
        for t in batch.transactions {
            let c = Change::try_from(t).unwrap();
            assert!(c.revision >= after, "{} after {after}", c.revision);
            changes.push(c);
        }
        if let Some(last) = changes.last() {
            assert!(batch.head >= last.revision);
            after = last.revision;
        }
    }
    changes
}

/// A follower that starts while appends go on, leaves and resumes from the
/// last revision it got, receives each appended revision once, in order.
async fn followed_mid_load_and_resumed(stack: &Stack) {
    let mut client = stack.grpc_client().await;
    const REVISIONS: u64 = 300;
    let all: Vec<Change> = (1..=REVISIONS)
        .flat_map(|r| revision(r, r % 3 + 1))
        .collect();
    let batches: Vec<Vec<Change>> = all
        .chunk_by(|a, b| a.revision / 4 == b.revision / 4)
        .map(<[Change]>::to_vec)
        .collect();
    let (first, rest) = batches.split_at(20);
    for (i, b) in first.iter().enumerate() {
        log(&mut client, i as u64 + 1, b).await;
    }
    let mut writer = client.clone();
    let rest = rest.to_vec();
    let load = tokio::spawn(async move {
        for (i, b) in rest.iter().enumerate() {
            log(&mut writer, i as u64 + 21, b).await;
        }
    });
    let mut stream = follow(&mut client, 0).await;
    let mut got = read_upto(&mut stream, 0, 150).await;
    drop(stream);
    let last = got.last().unwrap().revision;
    let mut stream = follow(&mut client, last).await;
    got.extend(read_upto(&mut stream, last, REVISIONS).await);
    load.await.unwrap();
    assert_eq!(got.len(), all.len());
    assert!(
        got == all,
        "the followed changes differ from the appended ones"
    );
}

#[tokio::test]
async fn a_follower_of_postgres_gets_every_revision_once_in_order_across_a_resumption() {
    followed_mid_load_and_resumed(&on_postgres(&[]).await).await;
}

#[tokio::test]
async fn a_follower_of_the_file_gets_every_revision_once_in_order_across_a_resumption() {
    followed_mid_load_and_resumed(&on_file(&[])).await;
}

/// 1100 revisions, ten per batch, with the log keeping 100: the file's
/// window keeps those after 1000; PostgreSQL trims in the batch that
/// crosses revision 1024, to those after 930, and not again before 2048.
async fn too_old(stack: &Stack) {
    let mut client = stack.grpc_client().await;
    for b in 0..110u64 {
        let changes: Vec<Change> = (1..=10).flat_map(|i| revision(b * 10 + i, 1)).collect();
        log(&mut client, b + 1, &changes).await;
    }
    let status = next(&mut follow(&mut client, 929).await).await.unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert!(status.message().contains("ReadTransactions"), "{status:?}");
    let mut stream = follow(&mut client, 1000).await;
    let got = read_upto(&mut stream, 1000, 1100).await;
    assert_eq!(
        got,
        (1001..=1100)
            .flat_map(|r| revision(r, 1))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_follower_further_back_than_postgres_keeps_is_out_of_range() {
    too_old(&on_postgres(&["--follow-keep", "100"]).await).await;
}

#[tokio::test]
async fn a_follower_further_back_than_the_file_window_is_out_of_range() {
    too_old(&on_file(&["--follow-keep", "100"])).await;
}

/// An idle follower is told the head at once and again while nothing
/// comes, then gets the next revision.
async fn heartbeats(stack: &Stack) {
    let mut client = stack.grpc_client().await;
    log(&mut client, 1, &revision(1, 2)).await;
    log(&mut client, 2, &revision(2, 1)).await;
    let mut stream = follow(&mut client, 2).await;
    for _ in 0..2 {
        let beat = next(&mut stream).await.unwrap();
        assert!(beat.transactions.is_empty());
        assert_eq!(beat.head, 2);
    }
    log(&mut client, 3, &revision(3, 1)).await;
    assert_eq!(read_upto(&mut stream, 2, 3).await, revision(3, 1));
}

#[tokio::test]
async fn an_idle_follower_of_postgres_gets_heartbeats_with_the_head() {
    heartbeats(&on_postgres(&[]).await).await;
}

#[tokio::test]
async fn an_idle_follower_of_the_file_gets_heartbeats_with_the_head() {
    heartbeats(&on_file(&[])).await;
}
