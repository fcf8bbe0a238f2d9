//! kvs-server, txn-server and the backend, restarted in turn.

use crate::stack::{Stack, assert_mix, write_mix};

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
