//! Open streams: replays are bounded and cut when nobody reads them, so they
//! cannot keep appends from the log; and no open stream keeps txn-server
//! from stopping on SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kvs_core::{Key, Txn, Value};
use kvs_proto::api::transaction_service_client::TransactionServiceClient;
use kvs_proto::api::{AppendRequest, Transaction};
use kvs_testkit::stack::{Stack, Store};
use kvs_testkit::wait_until;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use tonic::transport::Channel;

use crate::replay::read_all;
use crate::wire::{append, put};

/// How long a test waits for what it needs before it fails.
const LIMIT: Duration = Duration::from_secs(60);

/// txn-server's default `--max-replay-streams`.
const MAX_REPLAYS: usize = 4;

/// The log the tests replay: far more than the flow-control windows of
/// [`unread_replays`] and txn-server's queues hold, so that a replay nobody
/// reads stays in the middle of its read.
const BATCHES: u64 = 30;
const PER_BATCH: usize = 100;
const LOGGED: usize = BATCHES as usize * PER_BATCH;

const WRITER: &str = "filler";

fn batch(sequence: u64, transactions: Vec<Transaction>) -> AppendRequest {
    append(WRITER, sequence, transactions)
}

/// Logs [`LOGGED`] keys of 1 KiB each, as the writer's batches 1 to
/// [`BATCHES`].
async fn fill(client: &mut TransactionServiceClient<Channel>) {
    for sequence in 1..=BATCHES {
        let txns = (0..PER_BATCH)
            .map(|i| put(&format!("k{sequence}_{i}"), Value::Str("x".repeat(1024))))
            .collect();
        client
            .append_transactions(batch(sequence, txns))
            .await
            .unwrap();
    }
}

/// A client on a connection of its own whose HTTP/2 windows are the
/// smallest there are: txn-server can send it no more than 64 KiB in all
/// until it reads, which it never does.
async fn unread_replays(stack: &Stack) -> TransactionServiceClient<Channel> {
    let channel = stack
        .grpc_endpoint_as(&stack.certs)
        .initial_connection_window_size(65_535)
        .initial_stream_window_size(65_535)
        .connect()
        .await
        .unwrap();
    TransactionServiceClient::new(channel)
}

/// The stream window [`replay_held_back`] grants: the smallest HTTP/2 has.
const WINDOW: usize = 65_535;

/// A replay whose client took in what txn-server could send it and granted
/// no more; dropping it ends the connection.
struct HeldBack {
    _connection: h2::client::SendRequest<Bytes>,
    _stream: h2::RecvStream,
}

/// Opens a replay over HTTP/2 by hand, to see what txn-server has sent
/// without granting it more (through tonic, seeing it is reading it, which
/// grants as much again), and receives until the stream's window is full.
/// The rest of the replay, its end among it, is then held in txn-server,
/// which cannot send it: a wait on data, not on time.
async fn replay_held_back(stack: &Stack) -> HeldBack {
    use kvs_service::pem::{read_certs, read_key};
    let certs = &stack.certs;
    let mut roots = rustls::RootCertStore::empty();
    for ca in read_certs(&certs.path("ca.crt")).unwrap() {
        roots.add(ca).unwrap();
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(
        read_certs(&certs.path("client.crt")).unwrap(),
        read_key(&certs.path("client.key")).unwrap(),
    )
    .unwrap();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(stack.txn_addr())
        .await
        .unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    let (connection, driver) = h2::client::Builder::new()
        .initial_window_size(WINDOW as u32)
        .initial_connection_window_size(WINDOW as u32)
        .handshake(tls)
        .await
        .unwrap();
    tokio::spawn(driver);
    let mut connection = connection.ready().await.unwrap();
    let request = http::Request::post("https://localhost/api.TransactionService/ReadTransactions")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (response, mut body) = connection.send_request(request, false).unwrap();
    // One gRPC message, uncompressed, empty: google.protobuf.Empty.
    body.send_data(Bytes::from_static(&[0; 5]), true).unwrap();
    let response = response.await.unwrap();
    assert_eq!(response.status(), 200, "{response:?}");
    assert!(
        !response.headers().contains_key("grpc-status"),
        "the replay refused: {response:?}"
    );
    let mut stream = response.into_body();
    let mut held = 0;
    while held < WINDOW {
        let data = stream
            .data()
            .await
            .expect("the replay ended within a window");
        held += data.expect("the replay's data").len();
    }
    HeldBack {
        _connection: connection,
        _stream: stream,
    }
}

fn lines_saying(output: &str, message: &str) -> usize {
    output
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .is_ok_and(|v| v["fields"]["message"] == message)
        })
        .count()
}

fn txn_output(stack: &Stack) -> String {
    stack.txn.as_ref().expect("txn-server is running").output()
}

/// Opens three times the bound of replays and reads none; appends are
/// answered all the same, the replays past the bound are refused, and once
/// the unread ones are gone a replay is served whole.
async fn unread_replays_leave_appends_their_capacity(stack: Stack) {
    let mut writer = stack.grpc_client().await;
    fill(&mut writer).await;

    let mut idle = unread_replays(&stack).await;
    let mut open = Vec::new();
    let mut refused = Vec::new();
    for _ in 0..3 * MAX_REPLAYS {
        match idle.read_transactions(()).await {
            Ok(stream) => open.push(stream.into_inner()),
            Err(status) => refused.push(status),
        }
    }

    // Appends are answered while the replays stay unread: a generous
    // limit, only so that a starved append fails the test instead of
    // hanging it.
    for sequence in BATCHES + 1..=BATCHES + 3 {
        let appended = tokio::time::timeout(
            Duration::from_secs(10),
            writer.append_transactions(batch(
                sequence,
                vec![put(&format!("during_{sequence}"), Value::Int(1))],
            )),
        )
        .await
        .expect("an append answered while replays are unread");
        let durable = appended.expect("an append taken while replays are unread");
        assert_eq!(durable.into_inner().durable_sequence, sequence);
    }

    assert_eq!(open.len(), MAX_REPLAYS, "refused: {refused:?}");
    for status in &refused {
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert!(
            status.message().contains("--max-replay-streams"),
            "{status:?}"
        );
    }
    let output = txn_output(&stack);
    assert!(
        lines_saying(
            &output,
            "refused a replay: as many are open as --max-replay-streams allows"
        ) >= 1,
        "{output}"
    );

    drop(open);
    drop(idle);
    wait_until("the unread replays to be left", LIMIT, || {
        lines_saying(
            &txn_output(&stack),
            "a client left its replay before its end",
        ) >= MAX_REPLAYS
    })
    .await;
    let (txns, end) = read_all(&stack).await;
    end.expect("a replay served whole once the unread ones are gone");
    assert_eq!(txns.len(), LOGGED + 3);
}

#[tokio::test]
async fn unread_replays_leave_appends_their_database_connections() {
    let mut stack = Stack::database_only().await;
    stack.start_txn();
    unread_replays_leave_appends_their_capacity(stack).await;
}

#[tokio::test]
async fn unread_replays_leave_appends_their_threads_on_the_file_log() {
    unread_replays_leave_appends_their_capacity(Stack::file_only(&[])).await;
}

#[tokio::test]
async fn a_replay_nobody_reads_is_cut_after_the_stall_limit() {
    let args = ["--max-replay-streams", "1", "--replay-stall-secs", "1"].map(String::from);
    let stack = Stack::file_only(&args);
    fill(&mut stack.grpc_client().await).await;

    let mut idle = unread_replays(&stack).await;
    let _unread = idle.read_transactions(()).await.unwrap().into_inner();
    let refused = idle.read_transactions(()).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");

    wait_until("the unread replay to be cut", LIMIT, || {
        lines_saying(
            &txn_output(&stack),
            "a client took nothing of its replay for --replay-stall-secs; \
             ended the replay to free its place",
        ) == 1
    })
    .await;
    let mut client = stack.grpc_client().await;
    let mut served = client.read_transactions(()).await.unwrap().into_inner();
    assert!(served.message().await.unwrap().is_some());
}

#[tokio::test]
async fn sigterm_ends_an_open_write_stream_and_what_it_sent_is_kept() {
    let mut stack = Stack::file_only(&[]);
    // No request timeout: the stream stays open as long as txn-server lets it.
    let channel = stack.grpc_endpoint_as(&stack.certs).connect().await;
    let mut client = TransactionServiceClient::new(channel.unwrap());
    let (send, stream) = tokio::sync::mpsc::channel(4);
    let call =
        tokio::spawn(async move { client.write_transactions(ReceiverStream::new(stream)).await });
    // As the original kvs does: a transaction, and the stream kept open.
    let key = "sent_before_sigterm";
    send.send(put(key, Value::Int(7))).await.unwrap();
    let Store::File(dir) = &stack.store else {
        unreachable!("a file stack")
    };
    let log = dir.path().join("txn.log");
    wait_until("the transaction to reach the log file", LIMIT, || {
        std::fs::read(&log).is_ok_and(|bytes| bytes.windows(key.len()).any(|w| w == key.as_bytes()))
    })
    .await;

    let txn = stack.txn.as_mut().unwrap();
    assert!(
        txn.terminate_within(LIMIT).await.success(),
        "{}",
        txn.output()
    );
    let ended = call.await.unwrap().unwrap_err();
    assert_eq!(ended.code(), Code::Unavailable, "{ended:?}");
    assert!(ended.message().contains("shutting down"), "{ended:?}");
    let output = txn.output();
    assert_eq!(
        lines_saying(
            &output,
            "ended a WriteTransactions stream: txn-server is shutting down"
        ),
        1,
        "{output}"
    );
    drop(send);

    stack.start_txn();
    let (txns, end) = read_all(&stack).await;
    end.unwrap();
    assert_eq!(
        txns,
        [Txn::Put {
            key: Key::parse(key).unwrap(),
            value: Value::Int(7)
        }]
    );
}

#[tokio::test]
async fn sigterm_stops_txn_server_within_its_shutdown_timeout_despite_an_unread_replay() {
    let mut stack = Stack::file_only(&["--shutdown-timeout", "1"].map(String::from));
    fill(&mut stack.grpc_client().await).await;
    let _held = replay_held_back(&stack).await;

    let txn = stack.txn.as_mut().unwrap();
    assert!(
        txn.terminate_within(LIMIT).await.success(),
        "{}",
        txn.output()
    );
    let output = txn.output();
    for said in [
        "ended a replay: txn-server is shutting down",
        "connections still busy after --shutdown-timeout (a client not reading the end of \
         its stream?); stopping without them",
    ] {
        assert_eq!(lines_saying(&output, said), 1, "{said}: {output}");
    }
}
