//! Failover: two standbys share the write lease in PostgreSQL through
//! txn-server. When the primary dies, the other takes over once the lease
//! lapses, with every acknowledged write; a primary that froze past its
//! lease cannot write when it wakes, and turns follower.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use reqwest::StatusCode;
use reqwest::header::LOCATION;
use tokio::time::Instant;

use crate::followers::{PATIENT, node, origin, readiness, shared_log, unredirected, wait_primary};

/// A short lease, so that a failover takes about two seconds.
const LEASE: (u64, u64) = (1500, 100);

/// Writes acknowledged with 200, by key, with their value.
type Acked = Arc<Mutex<Vec<(String, String)>>>;

/// Writers that put fresh keys through `base` (following redirects)
/// until `stop`, retrying whatever fails; every 200 is recorded.
fn writers(
    base: &str,
    stop: &Arc<AtomicBool>,
    acked: &Acked,
    n: usize,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..n)
        .map(|w| {
            let (base, stop, acked) = (base.to_owned(), stop.clone(), acked.clone());
            tokio::spawn(async move {
                let client = kvs_testkit::http::client_builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .unwrap();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let (key, value) = (format!("w{w}_{i}"), format!("v{i}"));
                    let sent = client
                        .put(format!("{base}/str/{key}"))
                        .body(value.clone())
                        .send()
                        .await;
                    match sent {
                        Ok(resp) if resp.status() == StatusCode::OK => {
                            acked.lock().push((key, value));
                            i += 1;
                        }
                        // Refused, cut off, or sent to a primary that is
                        // gone: not acknowledged; a new key, so that a
                        // write that landed anyway stays apart.
                        _ => {
                            i += 1;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
            })
        })
        .collect()
}

#[tokio::test]
async fn kill_9_of_the_primary_under_write_load_loses_no_acknowledged_write_and_writes_resume() {
    let stack = shared_log().await;
    let a = node(&stack, "standby", LEASE, &[]).await;
    wait_primary(&a).await;
    let b = node(&stack, "standby", LEASE, &[]).await;
    assert_ne!(readiness(&b).await.as_deref(), Some("ready"), "one primary");

    // The clients write through the standby, which sends them on.
    let (stop, acked): (Arc<AtomicBool>, Acked) = Default::default();
    let tasks = writers(&b.api.base, &stop, &acked, 4);
    let count = |acked: &Acked| acked.lock().len();
    kvs_testkit::wait_until("writes flow through the standby", PATIENT, || {
        count(&acked) >= 200
    })
    .await;

    a.kill();
    let killed = Instant::now();
    let before = count(&acked);
    kvs_testkit::wait_until("writes resume on the standby", PATIENT, || {
        count(&acked) >= before + 200
    })
    .await;
    let resumed = killed.elapsed();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    eprintln!(
        "writes resumed {resumed:?} after the primary was killed (lease {} ms)",
        LEASE.0
    );
    assert_eq!(
        readiness(&b).await.as_deref(),
        Some("ready"),
        "the standby is the primary"
    );

    let stored = b.api.dump().await;
    let acked = acked.lock().clone();
    for (key, value) in &acked {
        assert_eq!(
            stored.get(&("str".to_owned(), key.clone())),
            Some(value),
            "acknowledged write {key} is there"
        );
    }
}

#[tokio::test]
async fn a_primary_frozen_past_its_lease_cannot_write_when_it_wakes_and_turns_follower() {
    let stack = shared_log().await;
    let a = node(&stack, "standby", LEASE, &[]).await;
    wait_primary(&a).await;
    let b = node(&stack, "standby", LEASE, &[]).await;
    let client = unredirected();
    let put = |node: &kvs_testkit::process::KvsProcess, key: &str| {
        client
            .put(node.api.url(&format!("/str/{key}")))
            .body("v")
            .send()
    };
    assert_eq!(put(&a, "before").await.unwrap().status(), StatusCode::OK);

    a.server.signal("STOP");
    wait_primary(&b).await;
    assert_eq!(put(&b, "after").await.unwrap().status(), StatusCode::OK);
    a.server.signal("CONT");

    // Woken, it may still think it leads: whatever it is sent now is
    // fenced (503) or, once it knows, redirected (307); never taken.
    let mut fenced = 0;
    let late: Vec<String> = (0..20).map(|i| format!("late{i}")).collect();
    for key in &late {
        match put(&a, key).await.unwrap().status() {
            StatusCode::SERVICE_UNAVAILABLE => fenced += 1,
            StatusCode::TEMPORARY_REDIRECT => {}
            other => panic!("a write to the woken primary was answered {other}"),
        }
    }
    eprintln!("{fenced} of the woken primary's writes were fenced, the rest redirected");

    // It follows now: writes go to the new primary, and it has what the
    // new primary wrote.
    let deadline = Instant::now() + PATIENT;
    loop {
        let resp = put(&a, "redirected").await.unwrap();
        if resp.status() == StatusCode::TEMPORARY_REDIRECT {
            let location = resp.headers()[LOCATION].to_str().unwrap().to_owned();
            assert_eq!(
                location,
                format!("{}/kvs/v1-0-0/str/redirected", origin(&b))
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the woken primary turns follower"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deadline = Instant::now() + PATIENT;
    while a.api.get("/str/after").await.0 != StatusCode::OK {
        assert!(
            Instant::now() < deadline,
            "the old primary follows the new one's writes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for key in late {
        let (status, _) = b.api.get(&format!("/str/{key}")).await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "{key} of the fenced primary is not in the log"
        );
    }
    let (status, _) = b.api.get("/str/before").await;
    assert_eq!(status, StatusCode::OK, "what it wrote while it led stays");
}
