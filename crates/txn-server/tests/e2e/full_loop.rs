//! kvs-server, txn-server and the backend, restarted in turn, with values
//! of every type and of the largest sizes.

use kvs_testkit::stack::Stack;
use reqwest::StatusCode;

use crate::mix::{assert_mix, write_mix};

#[tokio::test]
async fn every_value_survives_restarts_of_kvs_server_and_txn_server_on_postgres() {
    let mut stack = Stack::postgres().await;
    write_mix(&stack.api()).await;

    assert!(stack.kvs.take().unwrap().terminate().success());
    stack.start_kvs(&[]).await;
    assert_mix(&stack.api()).await;

    assert!(stack.kvs.take().unwrap().terminate().success());
    assert!(stack.txn.take().unwrap().terminate().success());
    stack.start_txn();
    stack.start_kvs(&[]).await;
    assert_mix(&stack.api()).await;
}

#[tokio::test]
async fn every_value_survives_restarts_on_the_file_backend() {
    let mut stack = Stack::file().await;
    write_mix(&stack.api()).await;
    assert!(stack.kvs.take().unwrap().terminate().success());
    assert!(stack.txn.take().unwrap().terminate().success());
    stack.start_txn();
    stack.start_kvs(&[]).await;
    assert_mix(&stack.api()).await;
}

#[tokio::test]
async fn values_larger_than_a_default_grpc_message_are_stored_and_replayed() {
    let limit = (8 << 20).to_string();
    let kvs_args = ["--max-body-bytes", &limit, "--max-value-bytes", &limit];
    let mut stack = Stack::file_with(&[], &kvs_args).await;
    let big = "x".repeat(6 << 20);
    // Written at once, so that group commit may batch them together.
    let api = stack.api();
    let writes: Vec<_> = (0..3)
        .map(|i| {
            let (api, big) = (api.clone(), big.clone());
            tokio::spawn(async move { api.put(&format!("/str/big{i}"), &big).await })
        })
        .collect();
    for w in writes {
        assert_eq!(w.await.unwrap(), StatusCode::OK);
    }
    // A replay streams each value as a message of its own.
    assert!(stack.kvs.take().unwrap().terminate().success());
    stack.start_kvs(&kvs_args).await;
    for i in 0..3 {
        let (status, body) = stack.api().get(&format!("/str/big{i}")).await;
        assert_eq!(status, StatusCode::OK, "big{i}");
        assert!(body == big, "big{i}: {} bytes back", body.len());
    }
}
