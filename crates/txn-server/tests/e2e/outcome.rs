//! A write whose batch txn-server made durable, but whose answer was lost,
//! is answered as applied once kvs-server learns it is durable, or "outcome
//! unknown" if it cannot learn it in time; never 503, which says "not
//! applied" and invites a retry that would count an increment twice.

use kvs_core::{Change, Txn, Value};
use kvs_testkit::http::Api;
use kvs_testkit::stack::Stack;
use reqwest::StatusCode;

use crate::relay::Relay;

/// The int value of `key` in txn-server's log, read from txn-server itself.
async fn logged_int(stack: &Stack, key: &str) -> Option<i32> {
    let mut client = stack.grpc_client().await;
    let mut stream = client.read_transactions(()).await.unwrap().into_inner();
    let mut value = None;
    while let Some(t) = stream.message().await.unwrap() {
        match Change::try_from(t).unwrap().txn {
            Txn::Put {
                key: k,
                value: Value::Int(v),
            } if k.as_str() == key => value = Some(v),
            _ => {}
        }
    }
    value
}

/// kvs-server reaching txn-server through `relay`; `c` holds 5.
async fn counter_behind(relay: &Relay, stack: &mut Stack, outcome_timeout_ms: &str) -> Api {
    // The request timeout stays far above the other two, so that only they
    // decide the answer.
    let flags = [
        "--txn-timeout-ms",
        "3000",
        "--outcome-timeout-ms",
        outcome_timeout_ms,
        "--request-timeout",
        "600",
    ];
    stack.start_kvs_via(&relay.addr, &flags).await;
    let api = stack.api();
    assert_eq!(api.put("/int/c", "5").await, StatusCode::OK);
    api
}

/// Sends an increment of `c` on a task of its own; it waits for its answer
/// while the relay holds txn-server's.
fn incr(api: &Api) -> tokio::task::JoinHandle<reqwest::Response> {
    let api = api.clone();
    tokio::spawn(async move {
        api.client
            .put(api.url("/int-incr/c"))
            .send()
            .await
            .expect("an answer")
    })
}

#[tokio::test]
async fn an_incr_whose_answer_was_lost_is_answered_as_applied_once_it_turns_out_durable() {
    let mut stack = Stack::file().await;
    let relay = Relay::start(stack.txn_addr()).await;
    let api = counter_behind(&relay, &mut stack, "600000").await;

    relay.hold_answers();
    let answer = incr(&api);
    // The append timed out: kvs-server took the batch back and asks
    // txn-server (held too) whether it is durable.
    stack.wait_readyz(StatusCode::SERVICE_UNAVAILABLE).await;
    relay.release_answers();
    let answer = answer.await.unwrap();
    let status = answer.status();
    let body = answer.text().await.unwrap();
    stack.wait_readyz(StatusCode::OK).await;

    // txn-server had it long before the 3 s timeout, so the answer must
    // say it was applied; memory and the log agree either way.
    let logged = logged_int(&stack, "c").await;
    assert_eq!(logged, Some(6), "the increment did not reach the log");
    assert_eq!((status, body.as_str()), (StatusCode::OK, "5"), "{body}");
    assert_eq!(api.get("/int/c").await, (StatusCode::OK, "6".into()));
}

#[tokio::test]
async fn an_incr_whose_outcome_cannot_be_learned_in_time_is_answered_outcome_unknown() {
    let mut stack = Stack::file().await;
    let relay = Relay::start(stack.txn_addr()).await;
    let api = counter_behind(&relay, &mut stack, "1").await;

    relay.hold_answers();
    // Nothing txn-server says reaches kvs-server until the answer is in.
    let answer = incr(&api).await.unwrap();
    assert_eq!(answer.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        answer.headers().get("kvs-outcome").map(|v| v.as_bytes()),
        Some(&b"unknown"[..])
    );
    assert!(answer.headers().get("retry-after").is_none());
    let problem: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(problem["type"], "urn:kvs:problem:outcome-unknown");
    assert_eq!(problem["title"], "Outcome Unknown");
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("read the key before retrying"), "{detail}");

    // Once txn-server is heard again, memory follows the log, whatever the
    // outcome was: a re-read tells the client what happened.
    relay.release_answers();
    stack.wait_readyz(StatusCode::OK).await;
    let logged = logged_int(&stack, "c").await.expect("c is in the log");
    assert_eq!(
        api.get("/int/c").await,
        (StatusCode::OK, logged.to_string())
    );
}
