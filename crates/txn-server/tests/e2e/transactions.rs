//! Multi-key transactions across a crash: kvs-server is killed (kill -9)
//! while clients run transactions, and after the replay every transaction
//! is there whole or not at all, on the embedded file log and on
//! txn-server with PostgreSQL.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kvs_testkit::http::Api;
use kvs_testkit::process::KvsProcess;
use kvs_testkit::stack::Stack;
use kvs_testkit::wait_until;
use reqwest::StatusCode;
use serde_json::json;

const WRITERS: usize = 8;
/// The string keys each transaction writes its number to.
const COPIES: usize = 3;

/// The transaction writer `w` runs as its `n`th (from 1): `n` under each
/// of its string keys, `n` added to its set, and its counter incremented
/// (to `n`, if every earlier one is there).
fn nth(w: usize, n: u64) -> serde_json::Value {
    let mut ops: Vec<_> = (0..COPIES)
        .map(|c| json!({"op": "put", "type": "str", "key": format!("w{w}_c{c}"), "value": n.to_string()}))
        .collect();
    ops.push(json!({"op": "add_member", "key": format!("w{w}_set"), "member": n.to_string()}));
    ops.push(json!({"op": "incr", "key": format!("w{w}_n"), "by": 1}));
    json!({"success": ops})
}

/// Writers that each run their transactions in turn until the server is
/// gone; answers, per writer, the last one acknowledged.
async fn write_until_killed(api: &Api, kill: impl FnOnce()) -> HashMap<usize, u64> {
    let acked: Arc<Mutex<HashMap<usize, u64>>> = Arc::default();
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (api, acked) = (api.clone(), acked.clone());
            tokio::spawn(async move {
                for n in 1u64.. {
                    match api.txn(&nth(w, n)).await {
                        Ok((StatusCode::OK, _)) => {
                            acked.lock().unwrap().insert(w, n);
                        }
                        Ok((status, answer)) => panic!("writer {w}, #{n}: {status} {answer}"),
                        // The kill cut the connection: this one may or may not be in.
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    wait_until(
        "transactions answered before the kill",
        Duration::from_secs(60),
        || acked.lock().unwrap().values().sum::<u64>() >= 60,
    )
    .await;
    kill();
    for t in tasks {
        t.await.unwrap();
    }
    acked.lock().unwrap().clone()
}

/// Each writer's transactions are there up to some `n` at least its last
/// acknowledged one, each whole, and none after: its string keys all hold
/// `n`, its set holds 1 to `n`, its counter is `n`.
async fn assert_whole(api: &Api, acked: &HashMap<usize, u64>) {
    let dump = api.dump().await;
    let value = |ty: &str, key: String| dump.get(&(ty.to_owned(), key)).cloned();
    for w in 0..WRITERS {
        let counter = value("int", format!("w{w}_n"));
        let n: u64 = counter.as_deref().map_or(0, |c| c.parse().unwrap());
        let last = acked.get(&w).copied().unwrap_or(0);
        assert!(n >= last, "writer {w}: acknowledged {last}, replayed {n}");
        for c in 0..COPIES {
            let copy = value("str", format!("w{w}_c{c}"));
            assert_eq!(
                copy, counter,
                "writer {w}: copy {c} is from another transaction than the counter"
            );
        }
        let set = value("set", format!("w{w}_set")).unwrap_or_else(|| "[]".to_owned());
        let members: BTreeSet<u64> = serde_json::from_str::<Vec<String>>(&set)
            .unwrap()
            .iter()
            .map(|m| m.parse().unwrap())
            .collect();
        assert_eq!(
            members,
            (1..=n).collect(),
            "writer {w}: set {set}, counter {n}"
        );
    }
}

async fn embedded(dir: &Path) -> KvsProcess {
    let args = ["--data-dir".to_owned(), dir.display().to_string()];
    KvsProcess::start(&kvs_testkit::binary("kvs-server"), &args).await
}

#[tokio::test]
async fn transactions_are_whole_or_absent_after_a_kill_on_the_embedded_file_log() {
    let dir = tempfile::tempdir().unwrap();
    let server = embedded(dir.path()).await;
    let api = server.api.clone();
    let acked = write_until_killed(&api, || server.kill()).await;
    let server = embedded(dir.path()).await;
    assert_whole(&server.api, &acked).await;
}

#[tokio::test]
async fn transactions_are_whole_or_absent_after_a_kill_on_txn_server_and_postgres() {
    let mut stack = Stack::postgres().await;
    let kvs = stack.kvs.take().unwrap();
    let acked = write_until_killed(&kvs.api.clone(), || kvs.kill()).await;
    stack.start_kvs(&[]).await;
    assert_whole(&stack.api(), &acked).await;
}
