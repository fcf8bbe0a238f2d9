//! How a replay ends: a complete one with trailers that count it, a failed
//! one with an error, and kvs-server serves only a replay that txn-server
//! vouched for. Rows of the original service's database that cannot be
//! replayed are skipped and named, or refused in strict mode.

use std::time::Duration;

use kvs_core::{Change, Txn, Value};
use kvs_proto::replay::{RECORDS, ReplayEnd, SKIPPED};
use kvs_testkit::certs::Certs;
use kvs_testkit::fake_txn::{FakeTxn, FakeTxnServer};
use kvs_testkit::http::Api;
use kvs_testkit::process::{ServerProcess, run_to_exit_within};
use kvs_testkit::stack::{Stack, kvs_args};
use reqwest::StatusCode;
use tonic::Status;
use tonic::metadata::MetadataMap;

use crate::mix::{MIX, write_mix};
use crate::tables::ORIGINAL_SCHEMA;
use crate::wire::put;

/// Rows as the original service's code writes them: a value for a put only,
/// NULL for reads and increments, so a `TransactionIncrBy` lost its amount.
const ROWS_AS_THE_ORIGINAL_WRITES_THEM: &str = r#"
INSERT INTO int_keys (key) VALUES ('counter'), ('hits');
INSERT INTO int_transactions (transaction_type, key_id, value) VALUES
    ('TransactionPut', 1, 10), ('TransactionIncr', 1, NULL), ('TransactionIncrBy', 1, NULL),
    ('TransactionGet', 1, NULL), ('TransactionIncr', 2, NULL), ('TransactionIncr', 2, NULL);
INSERT INTO string_keys (key) VALUES ('name');
INSERT INTO string_transactions (transaction_type, key_id, value) VALUES ('TransactionPut', 1, 'ada');
"#;

/// What a `ReadTransactions` stream carried, and how it ended: its trailers
/// when it ended OK, its status otherwise.
pub async fn read_all(stack: &Stack) -> (Vec<Txn>, Result<Option<MetadataMap>, Status>) {
    let mut client = stack.grpc_client().await;
    let mut stream = client.read_transactions(()).await.unwrap().into_inner();
    let mut txns = Vec::new();
    loop {
        match stream.message().await {
            Ok(Some(t)) => txns.push(Change::try_from(t).unwrap().txn),
            // The end a client that ignores trailers sees.
            Ok(None) => return (txns, stream.trailers().await),
            Err(status) => return (txns, Err(status)),
        }
    }
}

fn count(trailers: &MetadataMap, name: &str) -> u64 {
    trailers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} in {trailers:?}"))
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// The JSON log lines of `output` whose message is `message`, as text.
fn lines_saying<'a>(output: &'a str, message: &str) -> Vec<&'a str> {
    output
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .is_ok_and(|v| v["fields"]["message"] == message)
        })
        .collect()
}

/// kvs-server started against a txn-server at `addr`, without waiting for it
/// to become ready.
fn start_kvs(certs: &Certs, addr: &str) -> (ServerProcess, Api) {
    let kvs = ServerProcess::start(&kvs_testkit::binary("kvs-server"), &kvs_args(certs, addr));
    let api = Api::new(format!("http://{}/kvs/v1-0-0", kvs.addr));
    (kvs, api)
}

/// Checks that kvs-server, started against a txn-server at `addr`, stops
/// by itself with a reason containing `why`, without retrying the replay.
async fn assert_stops(certs: &Certs, addr: &str, why: &str) {
    let (status, out) = run_to_exit_within(
        &kvs_testkit::binary("kvs-server"),
        &kvs_args(certs, addr),
        Duration::from_secs(60),
    )
    .await;
    assert!(!status.success(), "{out}");
    let stopped = lines_saying(&out, "kvs-server stopped");
    assert!(
        stopped
            .iter()
            .any(|l| l.contains("cannot replay the transaction log") && l.contains(why)),
        "{why} in {out}"
    );
    assert!(
        lines_saying(&out, "cannot replay the log yet").is_empty(),
        "{out}"
    );
    assert!(
        lines_saying(&out, "replayed the transaction log; ready").is_empty(),
        "{out}"
    );
}

/// Waits until kvs-server says it cannot replay for a reason containing
/// `why`, then checks that it is not ready and serves nothing.
async fn assert_refused(kvs: &ServerProcess, api: &Api, why: &str) {
    kvs_testkit::wait_until(
        &format!("kvs-server refusing the replay because {why:?}"),
        Duration::from_secs(30),
        || {
            lines_saying(&kvs.output(), "cannot replay the log yet")
                .iter()
                .any(|l| l.contains(why))
        },
    )
    .await;
    let ready = api.client.get(api.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(api.get("/int/a").await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        api.put("/int/b", "1").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert!(
        lines_saying(&kvs.output(), "replayed the transaction log; ready").is_empty(),
        "{}",
        kvs.output()
    );
}

#[tokio::test]
async fn a_complete_replay_ends_ok_with_trailers_that_count_it() {
    let stack = Stack::file().await;
    write_mix(&stack.api()).await;
    let (txns, end) = read_all(&stack).await;
    let trailers = end
        .expect("the stream ends OK")
        .expect("the stream has trailers");
    assert!(txns.len() >= MIX.len(), "{txns:?}");
    assert_eq!(count(&trailers, RECORDS), txns.len() as u64);
    assert_eq!(count(&trailers, SKIPPED), 0);
    let txn = stack.txn.as_ref().unwrap().output();
    let line = lines_saying(&txn, "replayed the log to a client");
    assert!(
        line.iter()
            .any(|l| l.contains(&format!("\"records\":{}", txns.len()))),
        "{txn}"
    );
}

#[tokio::test]
async fn an_original_database_with_increments_that_lost_their_amount_is_served() {
    let mut stack = Stack::database_only().await;
    stack.pg().sql(ORIGINAL_SCHEMA).await;
    stack.pg().sql(ROWS_AS_THE_ORIGINAL_WRITES_THEM).await;
    stack.start_txn();
    stack.start_kvs(&[]).await;
    let base = stack.api();
    // TransactionIncr is one; the lost amount of the TransactionIncrBy is
    // missing from the counter.
    assert_eq!(
        base.get("/int/counter").await,
        (StatusCode::OK, "11".into())
    );
    assert_eq!(base.get("/int/hits").await, (StatusCode::OK, "2".into()));
    assert_eq!(base.get("/str/name").await, (StatusCode::OK, "ada".into()));

    // txn-server names the row, and counts it in its replay line.
    let txn = stack.txn.as_ref().unwrap().output();
    let skipped = lines_saying(&txn, "skipping a row of the log that cannot be replayed");
    assert_eq!(skipped.len(), 1, "{txn}");
    for field in [
        r#""table":"int_transactions""#,
        r#""row":3"#,
        r#""key":"counter""#,
        "TransactionIncrBy without an amount",
    ] {
        assert!(skipped[0].contains(field), "{field} in {}", skipped[0]);
    }
    let summary = lines_saying(
        &txn,
        "replayed the log to a client, leaving out rows that cannot be replayed \
         (each is named above; --strict-replay refuses them instead)",
    );
    assert!(
        summary.iter().any(|l| l.contains(r#""skipped":1"#)),
        "{txn}"
    );
    // The count reaches kvs-server, in the trailers.
    let (txns, end) = read_all(&stack).await;
    let trailers = end.unwrap().unwrap();
    assert_eq!(count(&trailers, RECORDS), txns.len() as u64);
    assert_eq!(count(&trailers, SKIPPED), 1);
    let kvs = stack.kvs.as_ref().unwrap().output();
    let told = lines_saying(
        &kvs,
        "txn-server left out rows of the log that cannot be replayed; its log names each",
    );
    assert!(told.iter().any(|l| l.contains(r#""skipped":1"#)), "{kvs}");
    // And its replay summary and metrics.
    let ready = lines_saying(&kvs, "replayed the transaction log; ready");
    assert!(ready.iter().any(|l| l.contains(r#""skipped":1"#)), "{kvs}");
    let (_, metrics) = base.get("/metrics").await;
    assert!(
        metrics.lines().any(|l| l == "kvs_replay_skipped_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn strict_replay_refuses_the_row_and_kvs_server_stops_saying_why() {
    let mut stack = Stack::database_only().await;
    stack.pg().sql(ORIGINAL_SCHEMA).await;
    stack.pg().sql(ROWS_AS_THE_ORIGINAL_WRITES_THEM).await;
    stack.txn_args = vec!["--strict-replay".into()];
    stack.start_txn();

    let (txns, end) = read_all(&stack).await;
    let refused = end.expect_err("a strict replay of a row it cannot replay fails");
    assert_eq!(refused.code(), tonic::Code::DataLoss, "{refused:?}");
    assert!(
        refused
            .message()
            .starts_with("row 3 of table int_transactions cannot be replayed: key \"counter\""),
        "{refused:?}"
    );
    // What came before the row was streamed; the error is the end.
    assert_eq!(txns.len(), 2, "{txns:?}");

    assert_stops(
        &stack.certs,
        &stack.txn_addr(),
        "row 3 of table int_transactions",
    )
    .await;
}

#[tokio::test]
async fn a_reader_that_fails_mid_stream_stops_kvs_server_instead_of_serving_partially() {
    let mut stack = Stack::database_only().await;
    stack.pg().sql(ORIGINAL_SCHEMA).await;
    stack
        .pg()
        .sql(
            "INSERT INTO int_keys (key) VALUES ('a');
             INSERT INTO int_transactions (transaction_type, key_id, value) VALUES ('TransactionPut', 1, 1);
             INSERT INTO float_keys (key) VALUES ('pi');
             INSERT INTO float_transactions (transaction_type, key_id, value) VALUES ('TransactionPut', 1, 3.25);
             ALTER TABLE float_transactions ALTER COLUMN value TYPE DOUBLE PRECISION;",
        )
        .await;
    stack.start_txn();

    let (txns, end) = read_all(&stack).await;
    assert_eq!(txns.len(), 1, "the int table streams before the float one");
    let failed = end.expect_err("a read that failed mid-way must not end OK");
    assert_eq!(failed.code(), tonic::Code::DataLoss, "{failed:?}");
    let why = "row 1 of table float_transactions cannot be replayed: \
               column value is of type float8, where KVS reads real";
    assert_eq!(failed.message(), why);

    assert_stops(&stack.certs, &stack.txn_addr(), why).await;
}

/// A txn-server that replays two puts and ends the stream OK with `end` as
/// its trailers, or none (as an older txn-server, or one whose reader died
/// without a word, would), served with the server certificate of `certs`.
async fn serve_fake(certs: &Certs, end: Option<ReplayEnd>) -> FakeTxnServer {
    let transactions = vec![put("a", Value::Int(1)), put("c", Value::Int(1))];
    let fake = match end {
        Some(end) => FakeTxn::ending(transactions, end),
        None => FakeTxn {
            transactions,
            trailers: None,
        },
    };
    fake.serve(certs).await
}

#[tokio::test]
async fn a_stream_that_ends_ok_without_the_end_marker_is_refused() {
    let certs = Certs::new();
    let fake = serve_fake(&certs, None).await;
    let (kvs, api) = start_kvs(&certs, &fake.addr);
    assert_refused(
        &kvs,
        &api,
        "txn-server ended the replay after 2 transactions without saying it reached the end of the log",
    )
    .await;
}

#[tokio::test]
async fn a_stream_whose_count_differs_from_what_arrived_is_refused() {
    let certs = Certs::new();
    let end = ReplayEnd {
        records: 3,
        skipped: 0,
        head: 0,
    };
    let fake = serve_fake(&certs, Some(end)).await;
    let (kvs, api) = start_kvs(&certs, &fake.addr);
    assert_refused(
        &kvs,
        &api,
        "txn-server ended the replay after 2 transactions but says it sent 3",
    )
    .await;
}

#[tokio::test]
async fn the_fake_with_a_true_count_is_served_so_the_refusals_above_are_about_the_marker() {
    let certs = Certs::new();
    let end = ReplayEnd {
        records: 2,
        skipped: 0,
        head: 0,
    };
    let fake = serve_fake(&certs, Some(end)).await;
    let (kvs, api) = start_kvs(&certs, &fake.addr);
    kvs_testkit::wait_until("kvs-server ready", Duration::from_secs(30), || {
        !lines_saying(&kvs.output(), "replayed the transaction log; ready").is_empty()
    })
    .await;
    assert_eq!(api.get("/int/a").await, (StatusCode::OK, "1".into()));
}
