//! Crashes and outages under concurrent `sync` writes: no acknowledged write
//! is lost, no request hangs, and memory equals the log afterwards.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use kvs_testkit::http::Api;
use kvs_testkit::stack::Stack;
use kvs_testkit::wait_until;

/// How long a test waits for what it needs before it fails.
const LIMIT: Duration = Duration::from_secs(60);

/// What concurrent writers saw: the last acknowledged value of each key,
/// how many writes were refused with 503, and the slowest answer.
#[derive(Default)]
struct Tally {
    acked: HashMap<String, u64>,
    refused: u64,
    slowest: Duration,
}

/// Writers that each overwrite a few int keys with a rising counter until
/// `stop` is set; a connection error ends a writer (its server was killed).
fn writers(
    api: &Api,
    count: usize,
    tally: &Arc<Mutex<Tally>>,
    stop: &Arc<Mutex<bool>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..count)
        .map(|w| {
            let (api, tally, stop) = (api.clone(), tally.clone(), stop.clone());
            tokio::spawn(async move {
                for i in 1u64.. {
                    if *stop.lock().unwrap() {
                        break;
                    }
                    let key = format!("w{w}_{}", i % 4);
                    let started = Instant::now();
                    let sent = api
                        .client
                        .put(api.url(&format!("/int/{key}")))
                        .body(i.to_string())
                        .send()
                        .await;
                    let took = started.elapsed();
                    let connected = {
                        let mut t = tally.lock().unwrap();
                        t.slowest = t.slowest.max(took);
                        match sent.map(|r| r.status()) {
                            Ok(StatusCode::OK) => {
                                t.acked.insert(key, i);
                                true
                            }
                            Ok(StatusCode::SERVICE_UNAVAILABLE) => {
                                t.refused += 1;
                                true
                            }
                            // Outcome unknown: its append was in flight when
                            // the log went away, and the log did not come
                            // back in time to tell. Neither acknowledged nor
                            // refused; a later value supersedes it.
                            Ok(StatusCode::GATEWAY_TIMEOUT) => true,
                            Ok(other) => panic!("unexpected status {other}"),
                            Err(_) => false,
                        }
                    };
                    if !connected {
                        break;
                    }
                    if took < Duration::from_millis(2) {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect()
}

/// Every acknowledged write is there (or a later write of the same writer).
async fn assert_acked_present(base: &Api, acked: &HashMap<String, u64>) {
    for (key, value) in acked {
        let (status, body) = base.get(&format!("/int/{key}")).await;
        assert_eq!(status, StatusCode::OK, "{key} lost");
        assert!(
            body.parse::<u64>().unwrap() >= *value,
            "{key}: acknowledged {value}, found {body}"
        );
    }
}

/// A fresh kvs-server replays the log; what it holds is what the running
/// one holds.
async fn assert_memory_equals_log(stack: &mut Stack) {
    let running = stack.api().dump().await;
    let old = stack.kvs.take();
    stack.start_kvs(&[]).await;
    let replayed = stack.api().dump().await;
    drop(old);
    assert_eq!(
        running, replayed,
        "the running server and a replay of the log disagree"
    );
}

#[tokio::test]
async fn no_acknowledged_write_is_lost_when_kvs_server_is_killed() {
    let mut stack = Stack::postgres().await;
    let (tally, stop) = (
        Arc::new(Mutex::new(Tally::default())),
        Arc::new(Mutex::new(false)),
    );
    let tasks = writers(&stack.api(), 16, &tally, &stop);
    wait_until("40 writes answered", LIMIT, || {
        tally.lock().unwrap().acked.len() >= 40
    })
    .await;
    stack.kvs.take().unwrap().kill();
    for t in tasks {
        t.await.unwrap();
    }
    let acked = std::mem::take(&mut tally.lock().unwrap().acked);
    assert!(
        acked.len() >= 16,
        "too few writes were answered before the kill: {}",
        acked.len()
    );
    stack.start_kvs(&[]).await;
    assert_acked_present(&stack.api(), &acked).await;
}

/// A write's status and the detail of its problem answer.
async fn refusal(api: &Api) -> (StatusCode, String) {
    let resp = api
        .client
        .put(api.url("/str/refused"))
        .body("x")
        .send()
        .await;
    let resp = resp.expect("an answer");
    let status = resp.status();
    let problem: serde_json::Value = resp.json().await.expect("a problem+json body");
    (
        status,
        problem["detail"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Writers run while `down` takes part of the stack away for a second and
/// `up` brings it back: writes are refused (503) meanwhile, none hangs, they
/// succeed again without anyone restarting kvs-server, nothing acknowledged
/// is lost, and memory equals the log.
async fn ride_out_an_outage(
    mut stack: Stack,
    down: impl FnOnce(&mut Stack),
    up: impl FnOnce(&mut Stack),
) {
    let (tally, stop) = (
        Arc::new(Mutex::new(Tally::default())),
        Arc::new(Mutex::new(false)),
    );
    let tasks = writers(&stack.api(), 8, &tally, &stop);
    wait_until("writes answered before the outage", LIMIT, || {
        tally.lock().unwrap().acked.len() >= 8
    })
    .await;
    down(&mut stack);
    wait_until("a write refused during the outage", LIMIT, || {
        tally.lock().unwrap().refused > 0
    })
    .await;
    // The refusal says why, each cause once.
    let (status, detail) = refusal(&stack.api()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{detail}");
    assert_eq!(detail.matches("unavailable").count(), 1, "{detail}");
    // Reads go on while the log is down.
    assert_eq!(stack.api().get("/int/w0_1").await.0, StatusCode::OK);
    up(&mut stack);
    let progress = || tally.lock().unwrap().acked.values().sum::<u64>();
    let recovered = async {
        loop {
            let before = progress();
            tokio::time::sleep(Duration::from_millis(300)).await;
            if progress() > before {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), recovered)
        .await
        .expect("writes did not succeed again");
    *stop.lock().unwrap() = true;
    for t in tasks {
        t.await.unwrap();
    }
    let (acked, slowest) = {
        let t = tally.lock().unwrap();
        (t.acked.clone(), t.slowest)
    };
    // An answer within the txn-server timeout (2 s by default) and a wide
    // margin for a busy machine: anything slower is a hang.
    assert!(
        slowest < Duration::from_secs(15),
        "a write hung for {slowest:?}"
    );
    assert_acked_present(&stack.api(), &acked).await;
    assert_memory_equals_log(&mut stack).await;
}

#[tokio::test]
async fn writes_get_503_while_txn_server_is_down_and_the_service_recovers_by_itself() {
    let stack = Stack::postgres().await;
    ride_out_an_outage(stack, |s| s.txn.take().unwrap().kill(), |s| s.start_txn()).await;
}

#[tokio::test]
async fn writes_get_503_while_postgres_restarts_and_the_service_recovers_by_itself() {
    let stack = Stack::postgres().await;
    ride_out_an_outage(
        stack,
        |s| s.pg().stop_immediately(),
        |s| s.pg().start_again(),
    )
    .await;
}
