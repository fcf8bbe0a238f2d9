//! Multi-key transactions, `POST /txn`: compares, both branches, results,
//! one revision for all changes, rollback, bounds, and isolation under
//! concurrent transactions.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kvs_testkit::http::Api;
use kvs_testkit::process::KvsProcess;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem};

impl TestApp {
    fn api(&self) -> Api {
        Api {
            base: self.base.clone(),
            client: self.client.clone(),
        }
    }

    /// A transaction that must be answered 200; its answer.
    async fn txn_ok(&self, body: Value) -> Value {
        let (status, answer) = self.api().txn(&body).await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}: {answer}");
        answer
    }

    /// The revision in `path`'s `ETag`; the key must exist.
    async fn etag(&self, path: &str) -> u64 {
        let resp = self.get(path).await;
        assert_eq!(resp.status(), StatusCode::OK, "GET {path}");
        let tag = resp.headers()["etag"].to_str().unwrap();
        tag.trim_matches('"').parse().unwrap()
    }

    async fn post_txn(&self, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.post("/txn", body).await
    }
}

#[tokio::test]
async fn the_example_runs_whole_at_one_revision_with_results_in_order() {
    let app = TestApp::spawn(&[]).await;
    app.put_ok("/int/a", "12").await;
    app.put_ok("/int/c", "5").await;
    app.put_ok("/map/m", r#"{"f":"v"}"#).await;
    let a = app.etag("/int/a").await;
    let body = json!({
        "compare": [{"type": "int", "key": "a", "revision": a},
                    {"type": "str", "key": "b", "absent": true},
                    {"type": "int", "key": "c", "value": 5}],
        "success": [{"op": "put", "type": "int", "key": "a", "value": 13},
                    {"op": "delete", "type": "map", "key": "m"},
                    {"op": "get", "type": "str", "key": "b"},
                    {"op": "put", "type": "str", "key": "b", "value": "new"},
                    {"op": "get", "type": "str", "key": "b"},
                    {"op": "get", "type": "int", "key": "c"},
                    {"op": "incr", "key": "c", "by": 2},
                    {"op": "add_member", "type": "set", "key": "s", "member": "x"}],
        "failure": [{"op": "get", "type": "int", "key": "a"}]
    });
    let resp = app.post_txn(body.to_string()).await;
    // One whose `add_member` carries a type is refused: the fields are exact.
    assert_problem(resp, StatusCode::BAD_REQUEST, "success[7]").await;
    let mut body = body;
    body["success"][7] = json!({"op": "add_member", "key": "s", "member": "x"});
    let resp = app.post_txn(body.to_string()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let header: u64 = resp.headers()["kvs-revision"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let answer: Value = resp.json().await.unwrap();
    let rev = answer["revision"].as_u64().unwrap();
    assert!(rev > a);
    assert_eq!(header, rev, "KVS-Revision is the transaction's");
    assert_eq!(answer["succeeded"], true);
    let c_rev = app.etag("/int/c").await;
    assert_eq!(c_rev, rev, "c changed too");
    assert_eq!(
        answer["results"],
        json!([
            {"revision": rev},
            {"deleted": true},
            {"absent": true},
            {"revision": rev},
            {"value": "new", "revision": rev},
            {"value": 5, "revision": a + 1},
            {"value": 7},
            {"changed": true},
        ])
    );
    // Every change has the transaction's revision.
    for path in ["/int/a", "/str/b", "/int/c", "/set/s"] {
        assert_eq!(app.etag(path).await, rev, "{path}");
    }
    assert_eq!(app.get_ok("/int/a").await, "13");
    assert_eq!(app.get("/map/m").await.status(), StatusCode::NOT_FOUND);

    // The same again: a's revision moved, so the failure branch runs.
    let answer = app.txn_ok(body).await;
    assert_eq!(answer["succeeded"], false);
    assert_eq!(answer["results"], json!([{"value": 13, "revision": rev}]));
    assert_eq!(answer["revision"], rev, "nothing changed");
}

/// Runs a transaction whose only compare is `compare`: success puts 1
/// under `x`, failure gets it. Answers whether it succeeded, and checks
/// that exactly that branch ran.
async fn holds(app: &TestApp, compare: Value) -> bool {
    let before = app.get("/int/x").await.status();
    let answer = app
        .txn_ok(json!({
            "compare": [compare],
            "success": [{"op": "put", "type": "int", "key": "x", "value": 1}],
            "failure": [{"op": "get", "type": "int", "key": "x"}],
        }))
        .await;
    let succeeded = answer["succeeded"].as_bool().unwrap();
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    if succeeded {
        assert_eq!(results[0]["revision"], answer["revision"]);
        assert_eq!(app.get_ok("/int/x").await, "1");
        app.delete("/int/x").await;
    } else {
        assert_eq!(app.get("/int/x").await.status(), before);
        assert_eq!(results[0], json!({"absent": true}));
    }
    succeeded
}

#[tokio::test]
async fn each_kind_of_compare_holds_and_fails() {
    let app = TestApp::spawn(&[]).await;
    app.put_ok("/str/k", "v").await;
    app.put_ok("/map/m", r#"{"a":"1","b":"2"}"#).await;
    app.put_ok("/float/f", "0.1").await;
    let k = app.etag("/str/k").await;
    let compare = |ty: &str, key: &str, what: Value| {
        let mut c = json!({"type": ty, "key": key});
        c.as_object_mut()
            .unwrap()
            .extend(what.as_object().unwrap().clone());
        c
    };
    assert!(holds(&app, compare("str", "k", json!({"revision": k}))).await);
    assert!(!holds(&app, compare("str", "k", json!({"revision": k + 1}))).await);
    assert!(!holds(&app, compare("str", "none", json!({"revision": k}))).await);
    // The revision of one type says nothing of another's.
    assert!(!holds(&app, compare("int", "k", json!({"revision": k}))).await);

    assert!(holds(&app, compare("str", "k", json!({"value": "v"}))).await);
    assert!(!holds(&app, compare("str", "k", json!({"value": "w"}))).await);
    assert!(!holds(&app, compare("str", "none", json!({"value": "v"}))).await);
    let map = json!({"value": {"b": "2", "a": "1"}});
    assert!(holds(&app, compare("map", "m", map)).await);
    assert!(!holds(&app, compare("map", "m", json!({"value": {"a": "1"}}))).await);
    // Typed as GET renders it: 0.1 is the float stored from "0.1".
    assert!(holds(&app, compare("float", "f", json!({"value": 0.1}))).await);

    assert!(holds(&app, compare("str", "none", json!({"absent": true}))).await);
    assert!(holds(&app, compare("int", "k", json!({"absent": true}))).await);
    assert!(!holds(&app, compare("str", "k", json!({"absent": true}))).await);

    // All must hold.
    let answer = app
        .txn_ok(json!({
            "compare": [compare("str", "k", json!({"value": "v"})),
                        compare("str", "k", json!({"revision": 0}))],
            "success": [{"op": "put", "type": "int", "key": "x", "value": 1}],
        }))
        .await;
    assert_eq!(answer["succeeded"], false);
    assert_eq!(answer["results"], json!([]));
    assert_eq!(app.get("/int/x").await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn member_and_field_operations_say_whether_they_changed_anything() {
    let app = TestApp::spawn(&[]).await;
    let answer = app
        .txn_ok(json!({"success": [
            {"op": "add_member", "key": "s", "member": "a"},
            {"op": "add_member", "key": "s", "member": "a"},
            {"op": "remove_member", "key": "s", "member": "b"},
            {"op": "put_field", "key": "m", "field": "f", "value": "1"},
            {"op": "delete_field", "key": "m", "field": "g"},
            {"op": "delete_field", "key": "m", "field": "f"},
            {"op": "get", "type": "map", "key": "m"},
            {"op": "delete", "type": "int", "key": "none"},
        ]}))
        .await;
    assert_eq!(
        answer["results"],
        json!([{"changed": true}, {"changed": false}, {"changed": false},
               {"changed": true}, {"changed": false}, {"changed": true},
               {"value": {}, "revision": answer["revision"]}, {"deleted": false}])
    );
    assert_eq!(app.get_ok("/set/s").await, r#"["a"]"#);
    assert_eq!(app.get_ok("/map/m").await, "{}");
}

/// kvs-server on `data_dir` with `args`, ready.
async fn start(data_dir: &Path, args: &[&str]) -> KvsProcess {
    let mut argv = vec!["--data-dir".to_owned(), data_dir.display().to_string()];
    argv.extend(args.iter().map(|a| a.to_string()));
    KvsProcess::start(Path::new(env!("CARGO_BIN_EXE_kvs-server")), &argv).await
}

#[tokio::test]
async fn an_operation_that_fails_rolls_back_the_whole_transaction_and_logs_none_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &["--max-value-bytes", "8"]).await;
    let api = &server.api;
    assert_eq!(api.put("/int/a", "1").await, StatusCode::OK);
    assert_eq!(
        api.put("/int/max", &i32::MAX.to_string()).await,
        StatusCode::OK
    );
    let before = api.dump().await;
    let first_two = json!([
        {"op": "put", "type": "int", "key": "a", "value": 2},
        {"op": "add_member", "key": "s", "member": "x"},
    ]);
    let failing = [
        (
            json!({"op": "incr", "key": "max", "by": 1}),
            StatusCode::CONFLICT,
            "overflow",
        ),
        (
            json!({"op": "put", "type": "str", "key": "b", "value": "over eight bytes"}),
            StatusCode::PAYLOAD_TOO_LARGE,
            "--max-value-bytes",
        ),
        (
            json!({"op": "put_field", "key": "m", "field": "f", "value": "over eight"}),
            StatusCode::PAYLOAD_TOO_LARGE,
            "--max-value-bytes",
        ),
    ];
    for (third, status, needle) in failing {
        let mut success = first_two.clone();
        success.as_array_mut().unwrap().push(third);
        let (got, problem) = api.txn(&json!({"success": success.clone()})).await.unwrap();
        assert_eq!(got, status, "{problem}");
        assert_eq!(problem["list"], "success");
        assert_eq!(problem["index"], 2, "{problem}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            detail.starts_with("success[2]") && detail.contains(needle),
            "{detail}"
        );
        assert_eq!(api.dump().await, before, "rolled back after {success}");
        // The failure branch is held to the same.
        let (got, problem) = api
            .txn(
                &json!({"compare": [{"type": "int", "key": "a", "absent": true}],
                         "failure": success}),
            )
            .await
            .unwrap();
        assert_eq!((got, &problem["list"]), (status, &json!("failure")));
        assert_eq!(api.dump().await, before);
    }
    // One that succeeds after them, so the log has something past them.
    let (status, _) = api
        .txn(&json!({"success": [{"op": "put", "type": "int", "key": "z", "value": 9}]}))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(server.terminate().success());

    let server = start(dir.path(), &["--max-value-bytes", "8"]).await;
    let mut expected = before;
    expected.insert(("int".into(), "z".into()), "9".into());
    assert_eq!(server.api.dump().await, expected, "replayed");
}

#[tokio::test]
async fn more_compares_and_operations_than_max_txn_ops_is_a_413_naming_the_flag() {
    let app = TestApp::spawn(&["--max-txn-ops", "3"]).await;
    let get = json!({"op": "get", "type": "int", "key": "a"});
    let compare = json!({"type": "int", "key": "a", "absent": true});
    let four = json!({"compare": [compare], "success": [get, get], "failure": [get]});
    let resp = app.post_txn(four.to_string()).await;
    assert_problem(resp, StatusCode::PAYLOAD_TOO_LARGE, "--max-txn-ops").await;
    let three = json!({"compare": [compare], "success": [get, get]});
    app.txn_ok(three).await;
}

#[tokio::test]
async fn a_malformed_transaction_is_a_400_problem_naming_what_is_wrong() {
    let app = TestApp::spawn(&[]).await;
    app.put_ok("/int/a", "1").await;
    let get = json!({"op": "get", "type": "int", "key": "a"});
    let cases = [
        ("{".to_owned(), "not valid"),
        (json!({"succes": [get]}).to_string(), "succes"),
        (json!({"success": get}).to_string(), "not valid"),
        (
            json!({"success": [{"op": "fly", "key": "a"}]}).to_string(),
            "success[0]",
        ),
        (
            json!({"success": [{"type": "int", "key": "a"}]}).to_string(),
            "op",
        ),
        (
            json!({"success": [{"op": "get", "type": "bool", "key": "a"}]}).to_string(),
            "bool",
        ),
        (
            json!({"success": [{"op": "get", "type": "int"}]}).to_string(),
            "key",
        ),
        (
            json!({"success": [{"op": "get", "type": "int", "key": ""}]}).to_string(),
            "bad key",
        ),
        (
            json!({"success": [{"op": "put", "type": "int", "key": "a"}]}).to_string(),
            "value",
        ),
        (
            json!({"failure": [get, {"op": "put", "type": "int", "key": "a", "value": "x"}]})
                .to_string(),
            "failure[1]",
        ),
        (
            json!({"success": [{"op": "put", "type": "int", "key": "a", "value": 1.5}]})
                .to_string(),
            "integer",
        ),
        (
            json!({"success": [{"op": "incr", "key": "a", "by": 3_000_000_000u64}]}).to_string(),
            "success[0]",
        ),
        (
            json!({"success": [{"op": "add_member", "key": "s", "member": "a\u{0}"}]}).to_string(),
            "success[0]",
        ),
        (
            json!({"compare": [{"type": "int", "key": "a"}]}).to_string(),
            "exactly one",
        ),
        (
            json!({"compare": [{"type": "int", "key": "a", "revision": 1, "absent": true}]})
                .to_string(),
            "exactly one",
        ),
        (
            json!({"compare": [{"type": "int", "key": "a", "absent": false}]}).to_string(),
            "absent",
        ),
        (
            json!({"compare": [{"type": "int", "key": "a", "value": "one"}]}).to_string(),
            "compare[0]",
        ),
        (
            json!({"compare": [{"type": "int", "key": "a", "revison": 1}]}).to_string(),
            "revison",
        ),
    ];
    for (body, needle) in cases {
        let resp = app.post_txn(body.clone()).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{body}");
        assert_problem(resp, StatusCode::BAD_REQUEST, needle).await;
    }
    assert_eq!(app.get_ok("/int/a").await, "1", "nothing changed");
}

#[tokio::test]
async fn an_empty_transaction_changes_nothing_and_answers_the_store_revision() {
    let app = TestApp::spawn(&[]).await;
    app.put_ok("/int/a", "1").await;
    let a = app.etag("/int/a").await;
    let answer = app.txn_ok(json!({})).await;
    assert_eq!(
        answer,
        json!({"succeeded": true, "revision": a, "results": []})
    );
}

/// Keys that the transfers move amounts between.
const ACCOUNTS: usize = 12;
/// What each account starts with.
const START: i64 = 1000;

/// Every account's amount and revision, read in one transaction.
async fn accounts(api: &Api) -> Vec<(i64, u64)> {
    let gets: Vec<Value> = (0..ACCOUNTS)
        .map(|i| json!({"op": "get", "type": "int", "key": format!("acct{i}")}))
        .collect();
    let (status, answer) = api.txn(&json!({"success": gets})).await.unwrap();
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["value"].as_i64().unwrap(),
                r["revision"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Moves `amount` from account `from` to `to` by compare-and-set on both
/// revisions; retries while another transfer got there first. Answers how
/// many tries it took.
async fn transfer(api: &Api, from: usize, to: usize, amount: i64, tries: &AtomicUsize) {
    let (from, to) = (format!("acct{from}"), format!("acct{to}"));
    loop {
        tries.fetch_add(1, Ordering::Relaxed);
        let (status, answer) = api
            .txn(&json!({"success": [
                {"op": "get", "type": "int", "key": from},
                {"op": "get", "type": "int", "key": to},
            ]}))
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK);
        let [f, t] = [0, 1].map(|i| &answer["results"][i]);
        let (fv, tv) = (f["value"].as_i64().unwrap(), t["value"].as_i64().unwrap());
        let (status, answer) = api
            .txn(&json!({
                "compare": [{"type": "int", "key": from, "revision": f["revision"]},
                            {"type": "int", "key": to, "revision": t["revision"]}],
                "success": [{"op": "put", "type": "int", "key": from, "value": fv - amount},
                            {"op": "put", "type": "int", "key": to, "value": tv + amount}],
            }))
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK, "{answer}");
        if answer["succeeded"] == true {
            return;
        }
        assert!(
            tries.load(Ordering::Relaxed) < 100_000,
            "transfers keep failing: is compare-and-set broken?"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_transfers_keep_the_sum_and_never_deadlock() {
    let app = TestApp::spawn(&[]).await;
    let api = app.api();
    let puts: Vec<Value> = (0..ACCOUNTS)
        .map(|i| json!({"op": "put", "type": "int", "key": format!("acct{i}"), "value": START}))
        .collect();
    app.txn_ok(json!({"success": puts})).await;
    let total = START * ACCOUNTS as i64;
    let tries = Arc::new(AtomicUsize::new(0));
    const MOVERS: usize = 8;
    const MOVES: usize = 40;
    let movers: Vec<_> = (0..MOVERS)
        .map(|w| {
            let (api, tries) = (api.clone(), tries.clone());
            tokio::spawn(async move {
                for i in 0..MOVES {
                    // Pairs in both orders, so lock order is what keeps
                    // two transfers from waiting on each other.
                    let from = (w * 5 + i * 7) % ACCOUNTS;
                    let to = (from + 1 + (w + i) % (ACCOUNTS - 1)) % ACCOUNTS;
                    transfer(&api, from, to, (i % 9) as i64 + 1, &tries).await;
                }
            })
        })
        .collect();
    // Meanwhile every read of all accounts at once sees the whole sum.
    let reader = {
        let api = api.clone();
        let movers_done = movers.iter().map(|m| m.abort_handle()).collect::<Vec<_>>();
        tokio::spawn(async move {
            let mut reads = 0;
            while reads < 20 || movers_done.iter().any(|m| !m.is_finished()) {
                let sum: i64 = accounts(&api).await.iter().map(|a| a.0).sum();
                assert_eq!(sum, total, "a read saw a transfer half done");
                reads += 1;
            }
        })
    };
    // Bounds a deadlock; a sound run takes a small part of it.
    let all = async {
        for m in movers {
            m.await.unwrap();
        }
        reader.await.unwrap();
    };
    tokio::time::timeout(Duration::from_secs(120), all)
        .await
        .expect("the transfers did not finish: a deadlock?");
    let end = accounts(&api).await;
    assert_eq!(end.iter().map(|a| a.0).sum::<i64>(), total);
    assert!(
        end.iter().any(|a| a.0 != START),
        "no transfer changed anything"
    );
    assert!(tries.load(Ordering::Relaxed) >= MOVERS * MOVES);
}
