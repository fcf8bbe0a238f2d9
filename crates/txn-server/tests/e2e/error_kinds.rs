//! Errors keep their kind between the two servers: what waiting cannot mend
//! ends start-up with the reason, a message that does not decode and a bad
//! transaction are the sender's (INVALID_ARGUMENT), and a refused
//! `WriteTransactions` run leaves nothing of itself in the log.

use std::time::Duration;

use bytes::{Buf, BufMut};
use kvs_core::Value;
use kvs_proto::api::{AppendRequest, Transaction};
use kvs_testkit::process::run_to_exit_within;
use kvs_testkit::stack::Stack;
use kvs_testkit::wait_until;
use reqwest::StatusCode;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::{Code, Request, Status};

use crate::wire;

/// How long a process may take to do what the test waits for.
const LIMIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn txn_server_refuses_to_start_on_a_database_it_cannot_use() {
    let stack = Stack::database_only().await;
    let (server, _) = stack.pg().url().rsplit_once('/').unwrap();
    let (_, host_port) = server.rsplit_once('@').unwrap();
    let cases = [
        (
            format!("{server}/no_such_database"),
            r#"database \"no_such_database\" does not exist"#,
        ),
        (
            format!("postgres://nobody@{host_port}/postgres"),
            r#"\"nobody\""#,
        ),
        (
            "postgres://kvs@127.0.0.1:no_port/postgres".to_owned(),
            "bad database URL",
        ),
    ];
    for (url, why) in cases {
        let mut args = stack.certs.server_args();
        args.extend(["--database-url".into(), url.clone()]);
        let (status, out) =
            run_to_exit_within(&kvs_testkit::binary("txn-server"), &args, LIMIT).await;
        assert!(!status.success(), "{url}: {out}");
        assert!(
            out.contains("cannot use PostgreSQL, and waiting would not help") && out.contains(why),
            "{url}: {why} in {out}"
        );
        assert!(
            !out.contains("PostgreSQL not reachable yet"),
            "{url}: {out}"
        );
    }
}

/// Bytes sent and received as they are, as by a peer with another idea of
/// the messages.
#[derive(Clone, Copy, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;

    fn encoder(&mut self) -> Raw {
        Raw
    }

    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        Ok(Some(buf.copy_to_bytes(buf.remaining()).to_vec()))
    }
}

#[tokio::test]
async fn a_message_that_does_not_decode_is_invalid_argument() {
    let stack = Stack::file().await;
    let mut grpc = tonic::client::Grpc::new(stack.grpc_channel_as(&stack.certs).await);
    // Field 1 (the writer id), length-delimited, with a length that never ends.
    let malformed = vec![0x0a, 0xff];

    grpc.ready().await.unwrap();
    let append = PathAndQuery::from_static("/api.TransactionService/AppendTransactions");
    let refused = grpc
        .unary(Request::new(malformed.clone()), append, Raw)
        .await
        .expect_err("a malformed append is refused");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(
        refused
            .message()
            .starts_with("failed to decode Protobuf message: AppendRequest.writer_id"),
        "{refused:?}"
    );

    grpc.ready().await.unwrap();
    let write = PathAndQuery::from_static("/api.TransactionService/WriteTransactions");
    let refused = grpc
        .client_streaming(Request::new(tokio_stream::iter([malformed])), write, Raw)
        .await
        .expect_err("a malformed stream is refused");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
}

fn put(key: &str) -> Transaction {
    wire::put(key, Value::Int(1))
}

#[tokio::test]
async fn a_write_stream_refused_for_a_bad_transaction_keeps_none_of_its_run() {
    let stack = Stack::file().await;
    let mut client = stack.grpc_client().await;
    let mut bad = put("x");
    bad.key = "not a key!".into();
    // All three are ready at once, so tonic sends them in one HTTP/2 frame
    // and txn-server finds them as one run.
    let refused = client
        .write_transactions(tokio_stream::iter([put("first"), put("second"), bad]))
        .await
        .expect_err("a stream with a bad transaction is refused");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().contains("not a key!"), "{refused:?}");

    // Durable when answered: whatever was queued before it is durable too.
    let after = AppendRequest {
        writer_id: "probe".into(),
        sequence: 1,
        transactions: vec![put("after")],
        epoch: 0,
    };
    client.append_transactions(after).await.unwrap();
    let mut replay = client.read_transactions(()).await.unwrap().into_inner();
    let mut keys = Vec::new();
    while let Some(t) = replay.message().await.unwrap() {
        keys.push(t.key);
    }
    assert_eq!(keys, ["after"]);
}

#[tokio::test]
async fn a_log_that_fails_for_good_stops_kvs_server_saying_why() {
    let mut stack = Stack::postgres().await;
    let api = stack.api();
    assert_eq!(api.put("/int/a", "1").await, StatusCode::OK);
    // A schema changed under txn-server: no retry brings the table back.
    stack.pg().sql("DROP TABLE string_transactions").await;
    assert_eq!(
        api.put("/str/s", "x").await,
        StatusCode::SERVICE_UNAVAILABLE
    );

    let mut kvs = stack.kvs.take().unwrap().server;
    let why = r#"the committer stopped: txn-server: postgres: db error: ERROR: relation \"string_transactions\" does not exist"#;
    wait_until("kvs-server saying why it stops", LIMIT, || {
        kvs.output().contains(why)
    })
    .await;
    wait_until("kvs-server stopping", LIMIT, || kvs.exited().is_some()).await;
    assert!(!kvs.exited().unwrap().success(), "{}", kvs.output());
    assert!(
        !kvs.output().contains("transaction log recovered"),
        "{}",
        kvs.output()
    );
}
