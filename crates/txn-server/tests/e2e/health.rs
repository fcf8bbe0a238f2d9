//! The standard gRPC health service: NOT_SERVING while txn-server waits
//! for PostgreSQL or has lost it, SERVING once its log answers; asked with
//! a tonic-health client and with `txn-server health`, over mutual TLS and
//! without a bearer token.

use std::process::ExitStatus;
use std::time::{Duration, Instant};

use kvs_testkit::certs::Certs;
use kvs_testkit::wait_until;
use reqwest::StatusCode;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::auth::rsa_pair;
use kvs_testkit::stack::Stack;

use crate::wire;

/// How long a test waits for what it needs before it fails.
const LIMIT: Duration = Duration::from_secs(60);

/// The services txn-server reports on: the whole server, and its one service.
const SERVICES: [&str; 2] = ["", "api.TransactionService"];

/// What txn-server answers for `service`, asked with the client
/// certificate and no token.
async fn status(stack: &Stack, service: &str) -> ServingStatus {
    let mut client = HealthClient::new(stack.grpc_channel_as(&stack.certs).await);
    let request = HealthCheckRequest {
        service: service.into(),
    };
    client.check(request).await.unwrap().into_inner().status()
}

/// Asks until every service answers `want`, failing after [`LIMIT`].
async fn wait_for(stack: &Stack, want: ServingStatus) {
    let deadline = Instant::now() + LIMIT;
    for service in SERVICES {
        loop {
            let got = status(stack, service).await;
            if got == want {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{service:?} still answers {got:?}, not {want:?}; txn-server's output:\n{}",
                stack.txn.as_ref().unwrap().output()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// `txn-server health` against the stack's txn-server with the client
/// certificate of `certs`: its exit status and what it printed.
async fn probe(stack: &Stack, certs: &Certs) -> (ExitStatus, String) {
    let path = |name: &str| certs.path(name).display().to_string();
    let run = tokio::process::Command::new(kvs_testkit::binary("txn-server"))
        .args(["health", "--listen", &stack.txn_addr()])
        .args([
            "--tls-ca",
            &stack.certs.path("ca.crt").display().to_string(),
        ])
        .args(["--client-cert", &path("client.crt")])
        .args(["--client-key", &path("client.key")])
        .env_clear()
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(LIMIT, run)
        .await
        .expect("txn-server health ends by itself")
        .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status, printed)
}

#[tokio::test]
async fn not_serving_while_postgresql_is_not_up_and_serving_once_it_is() {
    let mut stack = Stack::database_only().await;
    stack.pg().stop_immediately();
    stack.txn_args = ["--log-level", "info,txn_server::gate=debug"]
        .map(String::from)
        .into();
    stack.start_txn();
    let txn = stack.txn.as_ref().unwrap();
    wait_until("txn-server waiting for PostgreSQL", LIMIT, || {
        txn.output().contains("PostgreSQL not reachable yet")
    })
    .await;

    for service in SERVICES {
        assert_eq!(
            status(&stack, service).await,
            ServingStatus::NotServing,
            "{service:?}"
        );
    }
    let (exit, out) = probe(&stack, &stack.certs).await;
    assert_eq!(exit.code(), Some(1), "{out}");
    assert!(out.contains("NOT_SERVING"), "{out}");

    // A call made meanwhile is held, not refused, and answered once the
    // log is open.
    let endpoint = stack.grpc_endpoint_as(&stack.certs);
    let held = tokio::spawn(async move {
        let channel = endpoint.connect().await.unwrap();
        kvs_proto::api::transaction_service_client::TransactionServiceClient::new(channel)
            .append_transactions(wire::append(
                "w",
                1,
                vec![wire::put("k", kvs_core::Value::Int(1))],
            ))
            .await
    });
    wait_until("the call held by txn-server", LIMIT, || {
        txn.output()
            .contains("a call waits for the backend to open")
    })
    .await;
    assert!(!held.is_finished(), "answered before PostgreSQL was up");

    stack.pg().start_again();
    wait_for(&stack, ServingStatus::Serving).await;
    let answer = held.await.unwrap().expect("the held call is answered");
    assert_eq!(answer.into_inner().durable_sequence, 1);
    let (exit, out) = probe(&stack, &stack.certs).await;
    assert!(exit.success(), "{out}");
    assert_eq!(out.trim(), "txn-server: SERVING");
}

#[tokio::test]
async fn not_serving_once_postgresql_is_lost_and_serving_again_once_it_is_back() {
    let stack = Stack::postgres().await;
    wait_for(&stack, ServingStatus::Serving).await;
    let api = stack.api();
    assert_eq!(api.put("/int/before", "1").await, StatusCode::OK);

    stack.pg().stop_immediately();
    // txn-server learns of the outage from the batch that fails.
    assert_ne!(api.put("/int/during", "2").await, StatusCode::OK);
    wait_for(&stack, ServingStatus::NotServing).await;
    let (exit, out) = probe(&stack, &stack.certs).await;
    assert_eq!(exit.code(), Some(1), "{out}");

    // Back without a write to tell it: txn-server keeps trying by itself.
    stack.pg().start_again();
    wait_for(&stack, ServingStatus::Serving).await;
    let (exit, out) = probe(&stack, &stack.certs).await;
    assert!(exit.success(), "{out}");
    stack.wait_readyz(StatusCode::OK).await;
    assert_eq!(api.put("/int/after", "3").await, StatusCode::OK);
}

#[tokio::test]
async fn health_needs_the_client_certificate_but_no_token() {
    let keys = tempfile::tempdir().unwrap();
    let (_, public) = rsa_pair(keys.path(), "issuer");
    let stack = Stack::file_only(&["--jwt-public-key".to_owned(), public.display().to_string()]);
    wait_for(&stack, ServingStatus::Serving).await;
    let (exit, out) = probe(&stack, &stack.certs).await;
    assert!(exit.success(), "{out}");
    // The transaction service still wants the token.
    let refused = crate::auth::call(&stack, None).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");

    let stranger = Certs::new();
    let (exit, out) = probe(&stack, &stranger).await;
    assert_eq!(exit.code(), Some(1), "{out}");
    assert!(!out.contains(": SERVING"), "{out}");
}
