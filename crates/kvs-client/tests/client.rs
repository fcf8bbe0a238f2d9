//! The client against a real kvs-server started in-process on an ephemeral
//! port, and against tiny scripted servers for what a healthy KVS server
//! never answers (503, foreign 404s, garbage) or to see the request itself,
//! and against a server that serves HTTPS and wants tokens.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use kvs_client::{
    Change, Client, ClientBuilder, Compare, Error, Event, MapValue, Page, Precondition, Revised,
    SetValue, TxnOp, TxnResult, Value, ValueType, WatchFilter,
};
use reqwest::header::{HeaderMap, HeaderValue};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

// ----- servers ---------------------------------------------------------------

/// A ready kvs-server with its own data directory; dropping it stops it.
struct Server {
    client: Client,
    _dir: tempfile::TempDir,
    _server: kvs_server::Running,
}

impl Server {
    /// Starts a server on an ephemeral port with the default settings plus
    /// `args`.
    async fn start(args: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = kvs_server::spawn_with(dir.path(), args)
            .await
            .expect("server failed to start");
        let client = Client::new(&server.url()).expect("client");
        Server {
            client,
            _dir: dir,
            _server: server,
        }
    }
}

/// A server that takes one connection, records the request's head and
/// answers `reply` verbatim. Returns its root URL and the recorded head.
async fn scripted_server(reply: String) -> (String, JoinHandle<String>) {
    let (root, heads) = scripted_connections(vec![reply]).await;
    let head = tokio::spawn(async move { heads.await.unwrap().remove(0) });
    (root, head)
}

/// A server that takes one connection per reply, one after the other, and
/// answers each with its reply verbatim, then closes it. Returns its root
/// URL and the recorded heads.
async fn scripted_connections(replies: Vec<String>) -> (String, JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let root = format!("http://{}", listener.local_addr().unwrap());
    let handle = tokio::spawn(async move {
        let mut heads = Vec::new();
        for reply in replies {
            let (mut sock, _) = listener.accept().await.expect("accept");
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = sock.read(&mut buf).await.expect("read");
                assert!(n > 0, "the client closed before sending a whole head");
                head.extend_from_slice(&buf[..n]);
            }
            sock.write_all(reply.as_bytes()).await.expect("write");
            sock.shutdown().await.ok();
            heads.push(String::from_utf8_lossy(&head).into_owned());
        }
        heads
    });
    (root, handle)
}

/// An HTTP/1.1 answer with `headers` (each `name: value`) and `body`.
fn answer(status: &str, headers: &[&str], body: &str) -> String {
    let mut out = format!("HTTP/1.1 {status}\r\nconnection: close\r\n");
    for h in headers {
        out.push_str(h);
        out.push_str("\r\n");
    }
    out.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    out
}

/// A listener that nobody serves: a request sent to it would be seen by
/// [`assert_no_connection`].
async fn silent_listener() -> (TcpListener, Client) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let client = Client::builder()
        .base_url(format!("http://{}", listener.local_addr().unwrap()))
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    (listener, client)
}

async fn assert_no_connection(listener: &TcpListener) {
    let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
    assert!(accepted.is_err(), "the client connected to the server");
}

fn map(pairs: &[(&str, &str)]) -> MapValue {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn set(members: &[&str]) -> SetValue {
    members.iter().map(|m| (*m).to_owned()).collect()
}

// ----- values of each type ------------------------------------------------------

#[tokio::test]
async fn ints_round_trip_and_can_be_deleted() {
    let s = Server::start(&[]).await;
    let c = &s.client;
    for v in [0, -1, i32::MIN, i32::MAX] {
        c.int_put("n", v).await.unwrap();
        assert_eq!(c.int_get("n").await.unwrap(), Some(v));
    }
    assert!(c.int_delete("n").await.unwrap());
    assert_eq!(c.int_get("n").await.unwrap(), None);
}

#[tokio::test]
async fn uints_round_trip_up_to_the_largest_u32() {
    let s = Server::start(&[]).await;
    let c = &s.client;
    for v in [0, 7, u32::MAX] {
        c.uint_put("u", v).await.unwrap();
        assert_eq!(c.uint_get("u").await.unwrap(), Some(v));
    }
    assert!(c.uint_delete("u").await.unwrap());
    assert_eq!(c.uint_get("u").await.unwrap(), None);
}

#[tokio::test]
async fn floats_read_back_with_the_same_bits() {
    let s = Server::start(&[]).await;
    let c = &s.client;
    for v in [
        0.1f32,
        -0.0,
        1.5,
        -2e3,
        f32::MAX,
        f32::MIN_POSITIVE,
        1e-45,
        16_777_217.0,
    ] {
        c.float_put("f", v).await.unwrap();
        let back = c.float_get("f").await.unwrap().expect("stored");
        assert_eq!(back.to_bits(), v.to_bits(), "{v}");
    }
    assert!(c.float_delete("f").await.unwrap());
    assert_eq!(c.float_get("f").await.unwrap(), None);
}

#[tokio::test]
async fn strings_are_stored_exactly_including_empty_and_whitespace() {
    let s = Server::start(&[]).await;
    let c = &s.client;
    for v in [
        "",
        " padded \n",
        "héllo, wörld ✓",
        "{\"not\":\"json\"}",
        "5",
    ] {
        c.str_put("s", v).await.unwrap();
        assert_eq!(c.str_get("s").await.unwrap().as_deref(), Some(v));
    }
    assert!(c.str_delete("s").await.unwrap());
    assert_eq!(c.str_get("s").await.unwrap(), None);
}

#[tokio::test]
async fn maps_round_trip_as_sorted_btreemaps() {
    let s = Server::start(&[]).await;
    let c = &s.client;
    let m = map(&[
        ("name", "ada"),
        ("lang", "en"),
        ("", "empty field"),
        ("é", ""),
    ]);
    c.map_put("user", &m).await.unwrap();
    let back = c.map_get("user").await.unwrap().expect("stored");
    assert_eq!(back, m);
    assert_eq!(
        back.keys().map(String::as_str).collect::<Vec<_>>(),
        ["", "lang", "name", "é"]
    );
    c.map_put("user", &MapValue::new()).await.unwrap();
    assert_eq!(c.map_get("user").await.unwrap(), Some(MapValue::new()));
    assert!(c.map_delete("user").await.unwrap());
    assert_eq!(c.map_get("user").await.unwrap(), None);
}

#[tokio::test]
async fn sets_round_trip_sorted() {
    let s = Server::start(&[]).await;
    let c = &s.client;
    let members = set(&["b", "a", "", "ü"]);
    c.set_put("tags", &members).await.unwrap();
    let back = c.set_get("tags").await.unwrap().expect("stored");
    assert_eq!(back, members);
    assert_eq!(
        back.iter().map(String::as_str).collect::<Vec<_>>(),
        ["", "a", "b", "ü"]
    );
    assert!(c.set_delete("tags").await.unwrap());
    assert_eq!(c.set_get("tags").await.unwrap(), None);
}

#[tokio::test]
async fn the_generic_methods_take_and_give_any_value() {
    let s = Server::start(&[]).await;
    let c = &s.client;
    let values = [
        Value::Int(-3),
        Value::Uint(3),
        Value::Float(0.25),
        Value::Str("three".into()),
        Value::Map(map(&[("k", "v")])),
        Value::Set(set(&["x"])),
    ];
    for v in &values {
        c.put("k", v).await.unwrap();
    }
    for v in &values {
        assert_eq!(c.get(v.value_type(), "k").await.unwrap().as_ref(), Some(v));
    }
    for v in &values {
        assert!(c.delete(v.value_type(), "k").await.unwrap());
        assert_eq!(c.get(v.value_type(), "k").await.unwrap(), None);
    }
}

#[tokio::test]
async fn get_returns_none_when_the_key_is_absent() {
    let s = Server::start(&[]).await;
    let c = &s.client;
    assert_eq!(c.int_get("nope").await.unwrap(), None);
    assert_eq!(c.uint_get("nope").await.unwrap(), None);
    assert_eq!(c.float_get("nope").await.unwrap(), None);
    assert_eq!(c.str_get("nope").await.unwrap(), None);
    assert_eq!(c.map_get("nope").await.unwrap(), None);
    assert_eq!(c.set_get("nope").await.unwrap(), None);
    for ty in ValueType::ALL {
        assert_eq!(c.get(ty, "nope").await.unwrap(), None, "{ty}");
    }
}

#[tokio::test]
async fn delete_returns_false_when_the_key_is_absent() {
    let s = Server::start(&[]).await;
    let c = &s.client;
    assert!(!c.int_delete("nope").await.unwrap());
    assert!(!c.uint_delete("nope").await.unwrap());
    assert!(!c.float_delete("nope").await.unwrap());
    assert!(!c.str_delete("nope").await.unwrap());
    assert!(!c.map_delete("nope").await.unwrap());
    assert!(!c.set_delete("nope").await.unwrap());
    assert!(!c.delete_everywhere("nope").await.unwrap());
}

#[tokio::test]
async fn each_type_is_a_namespace_of_its_own() {
    let s = Server::start(&[]).await;
    let c = &s.client;
    c.int_put("a", 1).await.unwrap();
    c.str_put("a", "one").await.unwrap();
    assert_eq!(c.int_get("a").await.unwrap(), Some(1));
    assert_eq!(c.str_get("a").await.unwrap().as_deref(), Some("one"));
    assert_eq!(c.uint_get("a").await.unwrap(), None);
    assert!(c.int_delete("a").await.unwrap());
    assert_eq!(c.str_get("a").await.unwrap().as_deref(), Some("one"));
}

// ----- increments ------------------------------------------------------------------

#[tokio::test]
async fn int_incr_returns_the_value_after_and_counts_an_absent_key_as_zero() {
    let s = Server::start(&[]).await;
    let c = &s.client;
    assert_eq!(c.int_incr("n", 1).await.unwrap(), 1);
    assert_eq!(c.int_incr("n", 10).await.unwrap(), 11);
    assert_eq!(c.int_incr("n", -20).await.unwrap(), -9);
    assert_eq!(c.int_incr("n", 0).await.unwrap(), -9);
    assert_eq!(c.int_get("n").await.unwrap(), Some(-9));
}

#[tokio::test]
async fn an_increment_that_would_overflow_is_a_conflict_and_changes_nothing() {
    let s = Server::start(&[]).await;
    let c = &s.client;
    c.int_put("top", i32::MAX).await.unwrap();
    let err = c.int_incr("top", 1).await.unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
    assert_eq!(err.status(), Some(409));
    assert!(err.detail().unwrap().contains("overflow"), "{err}");
    assert_eq!(err.retry_after(), None);
    assert_eq!(c.int_get("top").await.unwrap(), Some(i32::MAX));

    c.int_put("bottom", i32::MIN).await.unwrap();
    assert!(c.int_incr("bottom", -1).await.unwrap_err().is_conflict());
    assert_eq!(c.int_get("bottom").await.unwrap(), Some(i32::MIN));
}

// ----- map fields --------------------------------------------------------------------

#[tokio::test]
async fn map_fields_can_be_written_read_and_deleted() {
    let s = Server::start(&[]).await;
    let c = &s.client;
    c.map_field_put("user", "name", "ada").await.unwrap();
    c.map_field_put("user", "lang", "en").await.unwrap();
    c.map_field_put("user", "lang", "fr").await.unwrap();
    assert_eq!(
        c.map_field_get("user", "lang").await.unwrap().as_deref(),
        Some("fr")
    );
    assert_eq!(
        c.map_get("user").await.unwrap(),
        Some(map(&[("lang", "fr"), ("name", "ada")]))
    );
    assert!(c.map_field_delete("user", "lang").await.unwrap());
    assert!(!c.map_field_delete("user", "lang").await.unwrap());
    assert!(c.map_field_delete("user", "name").await.unwrap());
    // A map left without fields stays, empty.
    assert_eq!(c.map_get("user").await.unwrap(), Some(MapValue::new()));
}

#[tokio::test]
async fn map_field_get_returns_none_when_the_map_or_the_field_is_absent() {
    let s = Server::start(&[]).await;
    let c = &s.client;
    assert_eq!(c.map_field_get("nomap", "f").await.unwrap(), None);
    assert!(!c.map_field_delete("nomap", "f").await.unwrap());
    c.map_put("m", &map(&[("a", "1")])).await.unwrap();
    assert_eq!(c.map_field_get("m", "b").await.unwrap(), None);
    assert!(!c.map_field_delete("m", "b").await.unwrap());
}

/// Field names and set members that need percent-encoding in a path.
const AWKWARD: [&str; 12] = [
    "a b",
    "a/b",
    "a%20b",
    "q?x=1",
    "h#frag",
    "ünï✓",
    "[x]|^`{}",
    "+plus+",
    "back\\slash",
    "semi;colon,comma",
    "...",
    ".hidden",
];

#[tokio::test]
async fn map_field_names_are_percent_encoded_and_reach_the_server_intact() {
    let s = Server::start(&[]).await;
    let c = &s.client;
    for (i, field) in AWKWARD.iter().enumerate() {
        c.map_field_put("m", field, &i.to_string()).await.unwrap();
    }
    let want: MapValue = AWKWARD
        .iter()
        .enumerate()
        .map(|(i, f)| ((*f).to_owned(), i.to_string()))
        .collect();
    assert_eq!(c.map_get("m").await.unwrap(), Some(want));
    for (i, field) in AWKWARD.iter().enumerate() {
        let got = c.map_field_get("m", field).await.unwrap();
        assert_eq!(got, Some(i.to_string()), "{field:?}");
        assert!(c.map_field_delete("m", field).await.unwrap(), "{field:?}");
    }
    assert_eq!(c.map_get("m").await.unwrap(), Some(MapValue::new()));
}

#[tokio::test]
async fn a_field_is_sent_as_one_percent_encoded_path_segment() {
    let (root, head) = scripted_server(answer("200 OK", &[], "v")).await;
    let c = Client::new(&root).unwrap();
    let got = c.map_field_get("m", "a b/c?d#e%f").await.unwrap();
    assert_eq!(got.as_deref(), Some("v"));
    let head = head.await.unwrap();
    assert!(
        head.starts_with("GET /kvs/v1-0-0/map/m/a%20b%2Fc%3Fd%23e%25f HTTP/1.1\r\n"),
        "{head}"
    );
}

// ----- set members --------------------------------------------------------------------

#[tokio::test]
async fn set_members_can_be_added_tested_and_removed() {
    let s = Server::start(&[]).await;
    let c = &s.client;
    assert!(c.set_add("tags", "a").await.unwrap(), "new member");
    assert!(!c.set_add("tags", "a").await.unwrap(), "already there");
    assert!(c.set_add("tags", "b").await.unwrap());
    assert!(c.set_contains("tags", "a").await.unwrap());
    assert_eq!(c.set_get("tags").await.unwrap(), Some(set(&["a", "b"])));
    assert!(c.set_remove("tags", "a").await.unwrap());
    assert!(!c.set_remove("tags", "a").await.unwrap());
    assert!(!c.set_contains("tags", "a").await.unwrap());
}

#[tokio::test]
async fn set_contains_is_false_when_the_set_or_the_member_is_absent() {
    let s = Server::start(&[]).await;
    let c = &s.client;
    assert!(!c.set_contains("noset", "a").await.unwrap());
    assert!(!c.set_remove("noset", "a").await.unwrap());
    c.set_put("s", &set(&["a"])).await.unwrap();
    assert!(!c.set_contains("s", "b").await.unwrap());
}

#[tokio::test]
async fn set_members_are_percent_encoded_and_reach_the_server_intact() {
    let s = Server::start(&[]).await;
    let c = &s.client;
    for member in AWKWARD {
        assert!(c.set_add("s", member).await.unwrap(), "{member:?}");
    }
    assert_eq!(c.set_get("s").await.unwrap(), Some(set(&AWKWARD)));
    for member in AWKWARD {
        assert!(c.set_contains("s", member).await.unwrap(), "{member:?}");
        assert!(c.set_remove("s", member).await.unwrap(), "{member:?}");
    }
    assert_eq!(c.set_get("s").await.unwrap(), Some(SetValue::new()));
}

#[tokio::test]
async fn fields_and_members_that_cannot_be_path_segments_are_refused_before_sending() {
    let (listener, c) = silent_listener().await;
    for name in ["", ".", ".."] {
        let results = [
            c.map_field_get("m", name).await.map(drop),
            c.map_field_put("m", name, "v").await.map(drop),
            c.map_field_delete("m", name).await.map(drop),
            c.set_contains("s", name).await.map(drop),
            c.set_add("s", name).await.map(drop),
            c.set_remove("s", name).await.map(drop),
        ];
        for r in results {
            let err = r.unwrap_err();
            assert!(
                matches!(err, Error::InvalidArgument(_)),
                "{name:?}: {err:?}"
            );
            assert!(err.is_client_side());
        }
    }
    assert_no_connection(&listener).await;
}

// ----- keys and delete everywhere ---------------------------------------------------------

#[tokio::test]
async fn keys_lists_sorted_keys_filtered_by_prefix_after_and_limit() {
    let s = Server::start(&[]).await;
    let c = &s.client;
    for k in ["b2", "a1", "b1", "c1", "b3"] {
        c.int_put(k, 0).await.unwrap();
    }
    c.str_put("b9", "other type").await.unwrap();
    let all = c.keys(ValueType::Int, None, None, None).await.unwrap();
    assert_eq!(all, ["a1", "b1", "b2", "b3", "c1"]);
    let b = c.keys(ValueType::Int, Some("b"), None, None).await.unwrap();
    assert_eq!(b, ["b1", "b2", "b3"]);
    let page = c
        .keys(ValueType::Int, Some("b"), Some("b1"), Some(1))
        .await
        .unwrap();
    assert_eq!(page, ["b2"]);
    let rest = c
        .keys(ValueType::Int, None, Some("b2"), None)
        .await
        .unwrap();
    assert_eq!(rest, ["b3", "c1"]);
    assert_eq!(
        c.keys(ValueType::Str, None, None, None).await.unwrap(),
        ["b9"]
    );
    assert!(
        c.keys(ValueType::Set, None, None, None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        c.keys(ValueType::Int, Some("a b&c=d"), None, Some(0))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_limit_over_the_servers_maximum_is_a_bad_request_with_its_detail() {
    let s = Server::start(&[]).await;
    let err = s
        .client
        .keys(ValueType::Int, None, None, Some(10_001))
        .await
        .unwrap_err();
    assert!(err.is_bad_request(), "{err:?}");
    assert!(err.detail().unwrap().contains("limit"), "{err}");
    assert!(err.to_string().contains("400"), "{err}");
}

#[tokio::test]
async fn delete_everywhere_removes_the_key_from_every_type() {
    let s = Server::start(&[]).await;
    let c = &s.client;
    c.int_put("k", 1).await.unwrap();
    c.str_put("k", "s").await.unwrap();
    c.set_add("k", "m").await.unwrap();
    c.int_put("other", 2).await.unwrap();
    assert!(c.delete_everywhere("k").await.unwrap());
    assert_eq!(c.int_get("k").await.unwrap(), None);
    assert_eq!(c.str_get("k").await.unwrap(), None);
    assert_eq!(c.set_get("k").await.unwrap(), None);
    assert_eq!(c.int_get("other").await.unwrap(), Some(2));
    assert!(!c.delete_everywhere("k").await.unwrap());
}

// ----- compatibility and operations ----------------------------------------------------------

#[tokio::test]
async fn echo_swaps_the_case_of_every_letter() {
    let s = Server::start(&[]).await;
    assert_eq!(
        s.client.echo("Hello, World 1").await.unwrap(),
        "hELLO, wORLD 1"
    );
    assert_eq!(s.client.echo("").await.unwrap(), "");
}

#[tokio::test]
async fn hello_names_the_service_and_its_version() {
    let s = Server::start(&[]).await;
    let greeting = s.client.hello().await.unwrap();
    assert!(greeting.contains("kvs v1.0.0"), "{greeting}");
}

#[tokio::test]
async fn fibo_answers_fibonacci_numbers_up_to_93() {
    let s = Server::start(&[]).await;
    let c = &s.client;
    assert_eq!(c.fibo(0).await.unwrap(), 0);
    assert_eq!(c.fibo(1).await.unwrap(), 1);
    assert_eq!(c.fibo(10).await.unwrap(), 55);
    assert_eq!(c.fibo(93).await.unwrap(), 12_200_160_415_121_876_738);
    let err = c.fibo(94).await.unwrap_err();
    assert!(err.is_bad_request(), "{err:?}");
    assert!(err.detail().unwrap().contains("93"), "{err}");
}

#[tokio::test]
async fn healthz_and_readyz_report_a_serving_ready_server() {
    let s = Server::start(&["--memory-only"]).await;
    s.client.healthz().await.unwrap();
    assert!(s.client.readyz().await.unwrap());
}

#[tokio::test]
async fn readyz_is_false_while_the_server_answers_503() {
    let reply = answer(
        "503 Service Unavailable",
        &["content-type: application/problem+json", "retry-after: 1"],
        r#"{"type":"about:blank","title":"Service Unavailable","status":503,"detail":"replaying"}"#,
    );
    let (root, _) = scripted_server(reply).await;
    assert!(!Client::new(&root).unwrap().readyz().await.unwrap());
}

// ----- errors ----------------------------------------------------------------------------------

#[tokio::test]
async fn an_invalid_key_is_refused_without_sending_a_request() {
    let (listener, c) = silent_listener().await;
    let too_long = "k".repeat(257);
    for bad in ["", "a-b", "a/b", "a b", "é", "..", too_long.as_str()] {
        let results = [
            c.get(ValueType::Int, bad).await.map(drop),
            c.put(bad, &Value::Int(1)).await.map(drop),
            c.delete(ValueType::Int, bad).await.map(drop),
            c.int_get(bad).await.map(drop),
            c.int_put(bad, 1).await.map(drop),
            c.int_delete(bad).await.map(drop),
            c.int_incr(bad, 1).await.map(drop),
            c.uint_get(bad).await.map(drop),
            c.uint_put(bad, 1).await.map(drop),
            c.uint_delete(bad).await.map(drop),
            c.float_get(bad).await.map(drop),
            c.float_put(bad, 1.0).await.map(drop),
            c.float_delete(bad).await.map(drop),
            c.str_get(bad).await.map(drop),
            c.str_put(bad, "v").await.map(drop),
            c.str_delete(bad).await.map(drop),
            c.map_get(bad).await.map(drop),
            c.map_put(bad, &MapValue::new()).await.map(drop),
            c.map_delete(bad).await.map(drop),
            c.map_field_get(bad, "f").await.map(drop),
            c.map_field_put(bad, "f", "v").await.map(drop),
            c.map_field_delete(bad, "f").await.map(drop),
            c.set_get(bad).await.map(drop),
            c.set_put(bad, &SetValue::new()).await.map(drop),
            c.set_delete(bad).await.map(drop),
            c.set_contains(bad, "m").await.map(drop),
            c.set_add(bad, "m").await.map(drop),
            c.set_remove(bad, "m").await.map(drop),
            c.delete_everywhere(bad).await.map(drop),
        ];
        for (i, r) in results.into_iter().enumerate() {
            let err = r.unwrap_err();
            assert!(
                matches!(err, Error::InvalidKey(_)),
                "call {i} with {bad:?}: {err:?}"
            );
            assert!(err.is_client_side());
        }
    }
    assert_no_connection(&listener).await;
}

#[tokio::test]
async fn a_nan_or_infinite_float_is_refused_before_sending() {
    let (listener, c) = silent_listener().await;
    for v in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let err = c.float_put("f", v).await.unwrap_err();
        assert!(matches!(err, Error::InvalidValue(_)), "{v}: {err:?}");
        assert!(err.to_string().contains("finite"), "{err}");
        let err = c.put("f", &Value::Float(v)).await.unwrap_err();
        assert!(matches!(err, Error::InvalidValue(_)), "{v}: {err:?}");
    }
    assert_no_connection(&listener).await;
}

#[tokio::test]
async fn a_body_over_the_servers_limit_is_payload_too_large_and_stores_nothing() {
    let s = Server::start(&["--memory-only", "--max-body-bytes", "64"]).await;
    let c = &s.client;
    c.str_put("s", &"x".repeat(64)).await.unwrap();
    let err = c.str_put("s", &"y".repeat(65)).await.unwrap_err();
    assert!(err.is_payload_too_large(), "{err:?}");
    assert_eq!(err.status(), Some(413));
    assert!(err.detail().unwrap().contains("max-body-bytes"), "{err}");
    assert_eq!(c.str_get("s").await.unwrap(), Some("x".repeat(64)));

    let big = (0..20).map(|i| format!("member{i}")).collect::<SetValue>();
    assert!(
        c.set_put("big", &big)
            .await
            .unwrap_err()
            .is_payload_too_large()
    );
    assert_eq!(c.set_get("big").await.unwrap(), None);
}

#[tokio::test]
async fn a_503_keeps_its_detail_and_retry_after() {
    let reply = answer(
        "503 Service Unavailable",
        &["content-type: application/problem+json", "retry-after: 3"],
        r#"{"type":"about:blank","title":"Service Unavailable","status":503,"detail":"the log is unreachable"}"#,
    );
    let (root, _) = scripted_server(reply).await;
    let err = Client::new(&root)
        .unwrap()
        .int_put("k", 1)
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
    assert_eq!(err.detail(), Some("the log is unreachable"));
    assert!(!err.is_client_side());
}

#[tokio::test]
async fn a_504_is_outcome_unknown_not_unavailable() {
    let reply = answer(
        "504 Gateway Timeout",
        &[
            "content-type: application/problem+json",
            "kvs-outcome: unknown",
        ],
        r#"{"type":"urn:kvs:problem:outcome-unknown","title":"Outcome Unknown","status":504,"detail":"the log did not tell"}"#,
    );
    let (root, _) = scripted_server(reply).await;
    let err = Client::new(&root)
        .unwrap()
        .int_incr("k", 1)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::OutcomeUnknown { detail } if detail == "the log did not tell"),
        "{err:?}"
    );
    assert!(err.is_outcome_unknown());
    assert!(!err.is_unavailable());
    assert_eq!(err.status(), Some(504));
    assert_eq!(err.retry_after(), None);
    assert!(err.to_string().contains("may have been applied"), "{err}");
}

#[tokio::test]
async fn a_404_that_is_not_in_the_apis_error_format_is_an_error_not_an_absent_key() {
    let reply = answer(
        "404 Not Found",
        &["content-type: text/html"],
        "<h1>nothing here</h1>",
    );
    let (root, _) = scripted_server(reply).await;
    let err = Client::new(&root).unwrap().int_get("k").await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    assert!(err.detail().unwrap().contains("nothing here"), "{err}");
}

#[tokio::test]
async fn an_answer_that_does_not_parse_is_a_decode_error() {
    let (root, _) = scripted_server(answer("200 OK", &[], "abc")).await;
    let err = Client::new(&root).unwrap().int_get("k").await.unwrap_err();
    assert!(matches!(err, Error::Decode(_)), "{err:?}");
    assert!(err.to_string().contains("abc"), "{err}");

    let (root, _) = scripted_server(answer("200 OK", &[], "{\"a\":1}")).await;
    let err = Client::new(&root)
        .unwrap()
        .keys(ValueType::Int, None, None, None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Decode(_)), "{err:?}");
}

#[tokio::test]
async fn a_refused_connection_is_a_transport_error_that_names_its_cause() {
    // Bound but not listening: the port stays ours, and connecting to it is
    // refused.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    let err = Client::new(&format!("http://{addr}"))
        .unwrap()
        .healthz()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Transport(_)), "{err:?}");
    assert_eq!(err.status(), None);
    let text = err.to_string();
    assert!(text.contains("Connection refused"), "{text}");
    assert_eq!(text.matches("Connection refused").count(), 1, "{text}");
}

// ----- the builder --------------------------------------------------------------------------------

#[tokio::test]
async fn a_server_that_never_answers_times_out_after_the_request_timeout() {
    // The kernel completes the handshake; nobody ever accepts or answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let c = Client::builder()
        .base_url(format!("http://{}", listener.local_addr().unwrap()))
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = c.int_get("k").await.unwrap_err();
    let took = started.elapsed();
    assert!(err.is_timeout(), "{err:?}");
    assert!(matches!(err, Error::Transport(_)));
    assert!(took >= Duration::from_millis(250), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[tokio::test]
async fn default_headers_and_the_user_agent_are_sent_under_the_base_path() {
    let (root, head) = scripted_server(answer("200 OK", &[], "ok")).await;
    let mut headers = HeaderMap::new();
    headers.insert("x-tenant", HeaderValue::from_static("blue"));
    let c = Client::builder()
        .base_url(format!("{root}/gateway/"))
        .default_headers(headers)
        .connect_timeout(Duration::from_secs(1))
        .pool_idle_timeout(Some(Duration::from_secs(1)))
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    assert_eq!(c.base_url().path(), "/gateway/kvs/v1-0-0");
    c.healthz().await.unwrap();
    let head = head.await.unwrap().to_ascii_lowercase();
    assert!(
        head.starts_with("get /gateway/kvs/v1-0-0/healthz http/1.1\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nx-tenant: blue\r\n"), "{head}");
    assert!(head.contains("\r\nuser-agent: kvs-client/"), "{head}");
}

#[tokio::test]
async fn the_builder_defaults_to_the_local_server_and_refuses_a_bad_base_url() {
    let c = Client::builder().build().unwrap();
    assert_eq!(c.base_url().as_str(), "http://127.0.0.1:8080/kvs/v1-0-0");
    for bad in ["127.0.0.1:8080", "ftp://h/", "http://h/?q=1", "not a url"] {
        let err = Client::new(bad).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{bad}: {err:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clones_share_one_client_and_work_concurrently() {
    let s = Server::start(&["--memory-only"]).await;
    let c = Client::builder()
        .base_url(s.client.base_url().origin().ascii_serialization())
        .pool_max_idle_per_host(4)
        .pool_idle_timeout(Some(Duration::from_secs(5)))
        .connect_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.int_incr("hits", 1).await.unwrap() })
        })
        .collect();
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.unwrap());
    }
    seen.sort_unstable();
    assert_eq!(seen, (1..=50).collect::<Vec<_>>());
    assert_eq!(c.int_get("hits").await.unwrap(), Some(50));
}

#[tokio::test]
async fn values_written_through_the_client_survive_a_restart_of_a_durable_server() {
    // Same data directory, two servers one after the other.
    let dir = tempfile::tempdir().unwrap();
    for round in 0..2 {
        let server = kvs_server::spawn_with(dir.path(), &[]).await.unwrap();
        let c = Client::new(&server.url()).unwrap();
        if round == 0 {
            c.map_put("m", &BTreeMap::from([("a".into(), "1".into())]))
                .await
                .unwrap();
            c.int_incr("n", 5).await.unwrap();
        } else {
            assert_eq!(c.map_get("m").await.unwrap(), Some(map(&[("a", "1")])));
            assert_eq!(c.int_get("n").await.unwrap(), Some(5));
        }
        server.stop().await.unwrap();
    }
}

// ----- tokens and TLS -------------------------------------------------------------------------

const RW_TOKEN: &str = "rw-token-0123456789abcdef";
const RO_TOKEN: &str = "ro-token-0123456789abcdef";

/// A ready kvs-server that serves HTTPS with a certificate from a CA of its
/// own and wants a token: [`RW_TOKEN`] may write, [`RO_TOKEN`] only read.
struct SecureServer {
    url: String,
    certs: tempfile::TempDir,
    _dir: tempfile::TempDir,
    _server: kvs_server::Running,
}

impl SecureServer {
    async fn start() -> SecureServer {
        let certs = tempfile::tempdir().expect("temp dir");
        kvs_certs::write(certs.path(), &kvs_certs::Options::default()).expect("certificates");
        let file = |name: &str| certs.path().join(name).display().to_string();
        let (cert, key) = (file("server.crt"), file("server.key"));
        let tokens = format!("read-write:{RW_TOKEN},read-only:{RO_TOKEN}");
        let dir = tempfile::tempdir().expect("temp dir");
        let args = [
            "--auth-tokens",
            &tokens,
            "--http-tls-cert",
            &cert,
            "--http-tls-key",
            &key,
        ];
        let server = kvs_server::spawn_with(dir.path(), &args)
            .await
            .expect("server failed to start");
        let url = server.url();
        assert!(url.starts_with("https://"), "{url}");
        SecureServer {
            url,
            certs,
            _dir: dir,
            _server: server,
        }
    }

    /// Settings for this server, trusting its CA, without a token.
    fn builder(&self) -> ClientBuilder {
        Client::builder()
            .base_url(&self.url)
            .ca_file(self.certs.path().join("ca.crt"))
    }

    fn client(&self, token: &str) -> Client {
        self.builder().token(token).build().unwrap()
    }
}

#[tokio::test]
async fn without_a_token_only_healthz_answers_and_everything_else_is_unauthorized() {
    let s = SecureServer::start().await;
    let c = s.builder().build().unwrap();
    c.healthz().await.unwrap();
    for err in [
        c.int_get("n").await.unwrap_err(),
        c.int_put("n", 1).await.unwrap_err(),
        c.readyz().await.unwrap_err(),
    ] {
        assert!(err.is_unauthorized(), "{err:?}");
        assert!(!err.is_forbidden() && !err.is_tls(), "{err:?}");
    }
    assert_eq!(s.client(RW_TOKEN).int_get("n").await.unwrap(), None);
}

#[tokio::test]
async fn an_unknown_token_is_unauthorized() {
    let s = SecureServer::start().await;
    let err = s.client("not-a-token").int_get("n").await.unwrap_err();
    assert!(err.is_unauthorized(), "{err:?}");
}

#[tokio::test]
async fn a_read_only_token_reads_but_its_writes_are_forbidden_and_change_nothing() {
    let s = SecureServer::start().await;
    let (rw, ro) = (s.client(RW_TOKEN), s.client(RO_TOKEN));
    rw.int_put("n", 5).await.unwrap();
    assert_eq!(ro.int_get("n").await.unwrap(), Some(5));
    assert_eq!(
        ro.keys(ValueType::Int, None, None, None).await.unwrap(),
        ["n"]
    );
    assert!(ro.readyz().await.unwrap());
    for err in [
        ro.int_put("n", 6).await.unwrap_err(),
        ro.int_incr("n", 1).await.unwrap_err(),
        ro.int_delete("n").await.unwrap_err(),
    ] {
        assert!(err.is_forbidden(), "{err:?}");
        assert!(!err.is_unauthorized(), "{err:?}");
    }
    assert_eq!(rw.int_get("n").await.unwrap(), Some(5));
}

#[tokio::test]
async fn a_read_write_token_reads_and_writes() {
    let s = SecureServer::start().await;
    let c = s.client(RW_TOKEN);
    assert!(c.readyz().await.unwrap());
    c.str_put("s", "over TLS").await.unwrap();
    assert_eq!(c.str_get("s").await.unwrap().as_deref(), Some("over TLS"));
    assert_eq!(c.int_incr("n", 2).await.unwrap(), 2);
    assert!(c.delete_everywhere("s").await.unwrap());
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_is_a_tls_error() {
    let s = SecureServer::start().await;
    let other = kvs_certs::generate(&kvs_certs::Options::default()).unwrap();
    let c = Client::builder()
        .base_url(&s.url)
        .ca_pem(other.ca.cert)
        .token(RW_TOKEN)
        .build()
        .unwrap();
    let err = c.healthz().await.unwrap_err();
    assert!(err.is_tls(), "{err:?}");
    assert_eq!(err.status(), None);
}

#[tokio::test]
async fn without_a_ca_a_certificate_from_a_private_ca_is_not_trusted() {
    let s = SecureServer::start().await;
    let c = Client::builder().base_url(&s.url).build().unwrap();
    let err = c.healthz().await.unwrap_err();
    assert!(err.is_tls(), "{err:?}");
}

#[tokio::test]
async fn https_to_a_server_that_speaks_plain_http_is_a_tls_error() {
    let s = Server::start(&[]).await;
    let url = s.client.base_url().origin().ascii_serialization();
    let c = Client::new(&url.replacen("http://", "https://", 1)).unwrap();
    let err = c.healthz().await.unwrap_err();
    assert!(err.is_tls(), "{err:?}");
}

#[tokio::test]
async fn errors_that_are_not_about_tls_are_not_tls_errors() {
    let s = Server::start(&[]).await;
    let err = s.client.fibo(94).await.unwrap_err();
    assert!(!err.is_tls(), "{err:?}");
    let (listener, c) = silent_listener().await;
    drop(listener);
    let err = c.healthz().await.unwrap_err();
    assert!(
        matches!(err, Error::Transport(_)) && !err.is_tls(),
        "{err:?}"
    );
}

#[test]
fn a_ca_that_cannot_be_read_or_holds_no_certificate_fails_the_build() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.crt");
    let key_only = dir.path().join("server.key");
    let bundle = kvs_certs::generate(&kvs_certs::Options::default()).unwrap();
    std::fs::write(&key_only, &bundle.server.key).unwrap();
    let cases = [
        (Client::builder().ca_file(&missing), "cannot be read"),
        (
            Client::builder().ca_file(&key_only),
            "holds no PEM certificate",
        ),
        (
            Client::builder().ca_pem("not PEM at all"),
            "holds no PEM certificate",
        ),
        (
            Client::builder()
                .ca_pem("-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n"),
            "is not valid PEM",
        ),
        (
            Client::builder()
                .ca_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
            "cannot be a CA",
        ),
    ];
    for (builder, why) in cases {
        let err = builder.build().unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
        assert!(err.to_string().contains(why), "{why}: {err}");
    }
    let err = Client::builder().ca_file(&missing).build().unwrap_err();
    assert!(err.to_string().contains("missing.crt"), "{err}");
    // A bundle of several certificates is taken whole.
    let two = format!("{}{}", bundle.ca.cert, bundle.server.cert);
    Client::builder().ca_pem(two).build().unwrap();
}

#[tokio::test]
async fn the_token_is_sent_as_a_bearer_header_and_kept_out_of_debug_output() {
    let (root, head) = scripted_server(answer("200 OK", &[], "ok")).await;
    let mut headers = HeaderMap::new();
    headers.insert("authorization", HeaderValue::from_static("Basic replaced"));
    let builder = Client::builder()
        .base_url(root)
        .default_headers(headers)
        .token(RW_TOKEN);
    assert!(!format!("{builder:?}").contains(RW_TOKEN), "{builder:?}");
    let c = builder.build().unwrap();
    assert!(!format!("{c:?}").contains(RW_TOKEN), "{c:?}");
    c.healthz().await.unwrap();
    let head = head.await.unwrap();
    let want = format!("\r\nauthorization: Bearer {RW_TOKEN}\r\n");
    assert!(
        head.to_ascii_lowercase()
            .contains(&want.to_ascii_lowercase()),
        "{head}"
    );
    assert!(!head.contains("Basic replaced"), "{head}");
}

#[test]
fn a_token_that_cannot_be_a_header_value_is_refused_without_being_quoted() {
    for bad in ["", "line\nbreak-secret", "space secret", "é-secret"] {
        let err = Client::builder().token(bad).build().unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
        assert!(!err.to_string().contains("secret"), "{err}");
        assert!(!format!("{err:?}").contains("secret"), "{err:?}");
    }
}

// ----- revisions and conditional writes -------------------------------------------------------

#[tokio::test]
async fn a_read_with_its_revision_sees_each_write_move_the_revision_on() {
    let s = Server::start(&[]).await;
    let c = &s.client;
    assert_eq!(c.get_revised(ValueType::Int, "n").await.unwrap(), None);
    let first = c
        .put_if("n", &Value::Int(1), Precondition::Absent)
        .await
        .unwrap();
    let read = c.get_revised(ValueType::Int, "n").await.unwrap().unwrap();
    assert_eq!((read.value, read.revision), (Value::Int(1), first));
    assert_eq!(read.expires_at, None, "stored without a TTL");
    c.int_put("other", 0).await.unwrap();
    let second = c
        .put_if("n", &Value::Int(2), Precondition::Revision(first))
        .await
        .unwrap();
    assert!(
        second > first + 1,
        "{first} then {second}: other writes came between"
    );
    let read = c.get_revised(ValueType::Int, "n").await.unwrap().unwrap();
    assert_eq!((read.value, read.revision), (Value::Int(2), second));
    assert_eq!(read.created, Some(first), "created by the first write");
}

#[tokio::test]
async fn a_stale_revision_is_a_precondition_failure_naming_the_current_one() {
    let s = Server::start(&[]).await;
    let c = &s.client;
    let old = c
        .put_if("k", &Value::Str("a".into()), Precondition::Absent)
        .await
        .unwrap();
    let now = c
        .put_if("k", &Value::Str("b".into()), Precondition::Revision(old))
        .await
        .unwrap();
    let err = c
        .put_if("k", &Value::Str("c".into()), Precondition::Revision(old))
        .await
        .unwrap_err();
    assert!(err.is_precondition_failed(), "{err:?}");
    assert!(matches!(err, Error::PreconditionFailed { current: Some(r), .. } if r == now));
    assert_eq!(err.status(), Some(412));
    assert!(err.detail().unwrap().contains(&now.to_string()), "{err}");
    assert_eq!(c.str_get("k").await.unwrap().as_deref(), Some("b"));

    let err = c
        .delete_if(ValueType::Str, "k", Precondition::Revision(old))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::PreconditionFailed { current: Some(r), .. } if r == now));
    let deleted = c
        .delete_if(ValueType::Str, "k", Precondition::Revision(now))
        .await
        .unwrap();
    assert!(deleted.changed);
    assert_eq!(deleted.key_revision, None, "gone after the delete");
    assert!(deleted.revision > now);
    assert_eq!(c.str_get("k").await.unwrap(), None);
}

#[tokio::test]
async fn create_only_and_must_exist_conditions() {
    let s = Server::start(&[]).await;
    let c = &s.client;
    let err = c
        .put_if("k", &Value::Int(1), Precondition::Present)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::PreconditionFailed { current: None, .. }),
        "{err:?}"
    );
    assert_eq!(c.int_get("k").await.unwrap(), None);
    let rev = c
        .put_if("k", &Value::Int(1), Precondition::Absent)
        .await
        .unwrap();
    let err = c
        .put_if("k", &Value::Int(2), Precondition::Absent)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::PreconditionFailed { current: Some(r), .. } if r == rev));
    assert_eq!(c.int_get("k").await.unwrap(), Some(1));
    c.put_if("k", &Value::Int(3), Precondition::Present)
        .await
        .unwrap();
    assert_eq!(c.int_get("k").await.unwrap(), Some(3));
}

#[tokio::test]
async fn fields_and_members_are_written_on_a_condition_on_their_key() {
    let s = Server::start(&[]).await;
    let c = &s.client;
    let made = c
        .map_field_put_if("m", "f", "1", Precondition::Absent)
        .await
        .unwrap();
    assert!(made.changed);
    assert_eq!(made.key_revision, Some(made.revision));
    let err = c
        .map_field_put_if("m", "g", "2", Precondition::Absent)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::PreconditionFailed { current: Some(r), .. } if r == made.revision)
    );
    let gone = c
        .map_field_delete_if("m", "f", Precondition::Revision(made.revision))
        .await
        .unwrap();
    assert!(gone.changed);
    assert_eq!(c.map_get("m").await.unwrap(), Some(MapValue::new()));

    let added = c.set_add_if("s", "x", Precondition::Absent).await.unwrap();
    assert!(added.changed);
    let again = c
        .set_add_if("s", "x", Precondition::Revision(added.revision))
        .await
        .unwrap();
    assert!(!again.changed, "already a member");
    assert_eq!(again.key_revision, Some(added.revision), "unchanged");
    let err = c
        .set_remove_if("s", "x", Precondition::Revision(added.revision - 1))
        .await
        .unwrap_err();
    assert!(err.is_precondition_failed(), "{err:?}");
    assert!(
        c.set_remove_if("s", "x", Precondition::Present)
            .await
            .unwrap()
            .changed
    );
    assert_eq!(c.set_get("s").await.unwrap(), Some(SetValue::new()));
}

#[tokio::test]
async fn only_the_writes_that_return_a_revision_need_one_in_the_answer() {
    let flagged = || answer("200 OK", &["deleted: true", "added: true"], "");
    let (root, _) = scripted_connections(vec![flagged(), flagged(), flagged(), flagged()]).await;
    let c = Client::new(&root).unwrap();
    c.int_put("k", 1).await.unwrap();
    assert!(c.int_delete("k").await.unwrap());
    assert!(c.set_add("s", "m").await.unwrap());
    let err = c
        .delete_if(ValueType::Int, "k", Precondition::Present)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Decode(_)), "{err:?}");
}

#[tokio::test]
async fn a_ttl_the_server_cannot_take_is_refused_before_sending() {
    let (listener, c) = silent_listener().await;
    for ttl in [
        Duration::ZERO,
        Duration::from_millis(1500),
        Duration::from_nanos(1),
    ] {
        let err = c.put_with_ttl("k", &Value::Int(1), ttl).await.unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{ttl:?}: {err:?}");
    }
    assert_no_connection(&listener).await;
}

// ----- paging ------------------------------------------------------------------------------------

#[tokio::test]
async fn pages_say_whether_another_follows_and_where_it_starts() {
    let s = Server::start(&[]).await;
    let c = &s.client;
    for k in ["a", "b", "c", "d", "e"] {
        c.int_put(k, 0).await.unwrap();
    }
    let first = c
        .keys_page(ValueType::Int, None, None, Some(2))
        .await
        .unwrap();
    assert_eq!(
        first,
        Page {
            keys: vec!["a".into(), "b".into()],
            last: false,
            next_after: Some("b".into())
        }
    );
    let second = c
        .keys_page(ValueType::Int, None, first.next_after.as_deref(), Some(2))
        .await
        .unwrap();
    assert_eq!(
        (second.keys.as_slice(), second.last),
        (&["c".to_owned(), "d".to_owned()][..], false)
    );
    let third = c
        .keys_page(ValueType::Int, None, second.next_after.as_deref(), Some(2))
        .await
        .unwrap();
    assert_eq!(
        third,
        Page {
            keys: vec!["e".into()],
            last: true,
            next_after: None
        }
    );
    // A full page can be the last: the server says so, not the count.
    let exact = c
        .keys_page(ValueType::Int, None, Some("c"), Some(2))
        .await
        .unwrap();
    assert!(exact.last && exact.keys == ["d", "e"], "{exact:?}");
}

#[tokio::test]
async fn all_keys_reads_every_page_past_the_servers_default_page() {
    let s = Server::start(&[]).await;
    let c = &s.client;
    let want: Vec<String> = (0..1203).map(|i| format!("k{i:05}")).collect();
    let mut puts = tokio::task::JoinSet::new();
    for chunk in want.chunks(100) {
        let (c, chunk) = (c.clone(), chunk.to_vec());
        puts.spawn(async move {
            for k in chunk {
                c.uint_put(&k, 1).await.unwrap();
            }
        });
    }
    puts.join_all().await;
    c.uint_put("other", 1).await.unwrap();
    assert_eq!(c.all_keys(ValueType::Uint, Some("k")).await.unwrap(), want);
    assert_eq!(c.all_keys(ValueType::Uint, None).await.unwrap().len(), 1204);
    assert!(c.all_keys(ValueType::Map, None).await.unwrap().is_empty());
}

// ----- watch ---------------------------------------------------------------------------------------

/// An SSE answer's head, for a scripted server, followed by `events`.
fn sse(events: &[&str]) -> String {
    sse_at(0, events)
}

/// [`sse`] from a server at store revision `revision`.
fn sse_at(revision: u64, events: &[&str]) -> String {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\nkvs-revision: {revision}\r\n\r\n"
    );
    for e in events {
        out.push_str(e);
        out.push_str("\n\n");
    }
    out
}

fn put_event(rev: u64, key: &str, value: i32) -> String {
    format!(
        "id: {rev}\nevent: put\ndata: {{\"type\":\"int\",\"key\":\"{key}\",\"value\":{value},\"revision\":{rev}}}"
    )
}

#[tokio::test]
async fn a_dropped_watch_resumes_after_its_last_event_with_no_duplicate() {
    let (e1, e2, e3) = (
        put_event(1, "a", 1),
        put_event(2, "b", 2),
        put_event(3, "c", 3),
    );
    let (root, heads) = scripted_connections(vec![
        sse(&[&e1, ": heartbeat", &e2]),
        // What a server that resumed one too early would send: 2 again.
        sse(&[&e2, &e3]),
    ])
    .await;
    let c = Client::new(&root).unwrap();
    let mut events = c.watch(WatchFilter::new().value_type(ValueType::Int).prefix("p"));
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(events.next().await.unwrap().unwrap().revision);
    }
    assert_eq!(got, [1, 2, 3]);
    let heads = heads.await.unwrap();
    assert!(
        heads[0].starts_with("GET /kvs/v1-0-0/watch?type=int&prefix=p "),
        "{}",
        heads[0]
    );
    assert!(
        heads[1].to_lowercase().contains("last-event-id: 2\r\n"),
        "{}",
        heads[1]
    );
}

#[tokio::test]
async fn a_watch_from_now_that_drops_early_resumes_from_its_first_answer_and_waits_out_a_503() {
    let busy = answer(
        "503 Service Unavailable",
        &["content-type: application/problem+json", "retry-after: 1"],
        r#"{"status":503,"detail":"replaying"}"#,
    );
    let e6 = put_event(6, "a", 6);
    let (root, heads) =
        scripted_connections(vec![sse_at(5, &[": heartbeat"]), busy, sse_at(6, &[&e6])]).await;
    let c = Client::new(&root).unwrap();
    let mut events = c.watch(WatchFilter::new());
    assert_eq!(events.next().await.unwrap().unwrap().revision, 6);
    let heads = heads.await.unwrap();
    assert!(
        !heads[0].to_lowercase().contains("last-event-id"),
        "{}",
        heads[0]
    );
    for head in &heads[1..] {
        assert!(
            head.to_lowercase().contains("last-event-id: 5\r\n"),
            "{head}"
        );
    }
}

#[tokio::test]
async fn a_watch_that_cannot_connect_at_first_ends_with_the_error() {
    let forbidden = answer(
        "403 Forbidden",
        &["content-type: application/problem+json"],
        r#"{"status":403,"detail":"no"}"#,
    );
    let (root, _) = scripted_server(forbidden).await;
    let c = Client::new(&root).unwrap();
    let mut events = c.watch(WatchFilter::new());
    assert!(events.next().await.unwrap().unwrap_err().is_forbidden());
    assert!(events.next().await.is_none());
}

#[tokio::test]
async fn a_watch_from_before_the_servers_history_ends_with_compacted() {
    let gone = answer(
        "410 Gone",
        &["content-type: application/problem+json"],
        r#"{"status":410,"detail":"start after revision 40 at the earliest","oldest":40}"#,
    );
    let (root, heads) = scripted_server(gone).await;
    let c = Client::new(&root).unwrap();
    let mut events = c.watch(WatchFilter::new().since(7));
    let err = events.next().await.unwrap().unwrap_err();
    assert!(
        matches!(err, Error::Compacted { oldest: 40, .. }),
        "{err:?}"
    );
    assert!(err.is_compacted() && err.status() == Some(410));
    assert!(events.next().await.is_none(), "the watch ends");
    assert!(
        heads
            .await
            .unwrap()
            .to_lowercase()
            .contains("last-event-id: 7\r\n")
    );
}

/// A TCP proxy to `upstream` whose connections the test can cut.
struct Proxy {
    root: String,
    cut: tokio::sync::watch::Sender<u64>,
}

impl Proxy {
    async fn start(upstream: &str) -> Proxy {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let root = format!("http://{}", listener.local_addr().unwrap());
        let (cut, cuts) = tokio::sync::watch::channel(0);
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let mut cuts = cuts.clone();
                cuts.mark_unchanged();
                tokio::spawn(async move {
                    let mut server = tokio::net::TcpStream::connect(upstream).await.unwrap();
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cuts.changed() => {}
                    }
                });
            }
        });
        Proxy { root, cut }
    }

    /// Drops every connection open now.
    fn cut(&self) {
        self.cut.send_modify(|n| *n += 1);
    }
}

async fn next_event(
    events: &mut (impl futures_util::Stream<Item = kvs_client::Result<Event>> + Unpin),
) -> Event {
    tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("an event within 10 s")
        .expect("the watch goes on")
        .expect("an event")
}

#[tokio::test]
async fn watch_reports_each_kind_of_change_in_revision_order() {
    let s = Server::start(&[]).await;
    let c = &s.client;
    let first = c
        .put_if("w0", &Value::Int(0), Precondition::Absent)
        .await
        .unwrap();
    // The stream connects when first polled: from `first` on, whenever
    // that is.
    let mut events = c.watch(WatchFilter::new().prefix("w").since(first - 1));
    assert_eq!(next_event(&mut events).await.revision, first);
    c.int_put("unwatched", 1).await.unwrap();
    c.int_put("w1", 5).await.unwrap();
    c.int_delete("w1").await.unwrap();
    c.set_add("w2", "x").await.unwrap();
    c.map_field_put("w3", "f", "v").await.unwrap();
    c.map_field_delete("w3", "f").await.unwrap();
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(next_event(&mut events).await);
    }
    assert!(
        got.windows(2).all(|w| w[0].revision < w[1].revision),
        "{got:?}"
    );
    let changes: Vec<Change> = got.into_iter().flat_map(|e| e.changes).collect();
    assert_eq!(
        changes,
        [
            Change::Put {
                key: "w1".into(),
                value: Value::Int(5)
            },
            Change::Delete {
                ty: ValueType::Int,
                key: "w1".into()
            },
            Change::Member {
                key: "w2".into(),
                member: "x".into(),
                present: true
            },
            Change::Field {
                key: "w3".into(),
                field: "f".into(),
                value: Some("v".into())
            },
            Change::Field {
                key: "w3".into(),
                field: "f".into(),
                value: None
            },
        ]
    );
}

#[tokio::test]
async fn a_watch_cut_off_from_the_server_resumes_with_no_gap_and_no_duplicate() {
    let s = Server::start(&[]).await;
    let proxy = Proxy::start(s.client.base_url().origin().ascii_serialization().as_str()).await;
    let watching = Client::new(&proxy.root).unwrap();
    let c = &s.client;
    let start = c
        .put_if("n", &Value::Int(0), Precondition::Absent)
        .await
        .unwrap();
    let mut events = watching.watch(
        WatchFilter::new()
            .value_type(ValueType::Int)
            .since(start - 1),
    );
    let mut seen = vec![next_event(&mut events).await.revision];
    for round in 1..=3 {
        proxy.cut();
        for i in 0..5 {
            c.int_put("n", round * 10 + i).await.unwrap();
        }
        for _ in 0..5 {
            seen.push(next_event(&mut events).await.revision);
        }
    }
    let want: Vec<u64> = (start..start + 16).collect();
    assert_eq!(seen, want, "every revision once, in order");
}

#[tokio::test]
async fn a_watch_from_before_a_real_servers_history_is_compacted() {
    let s = Server::start(&["--watch-history", "2"]).await;
    let c = &s.client;
    for i in 0..5 {
        c.int_put("k", i).await.unwrap();
    }
    let mut events = c.watch(WatchFilter::new().since(1));
    let err = events.next().await.unwrap().unwrap_err();
    assert!(
        matches!(err, Error::Compacted { oldest, .. } if oldest > 1),
        "{err:?}"
    );
}

// ----- transactions and expiry -------------------------------------------------------------------

#[tokio::test]
async fn a_transactions_put_with_a_ttl_expires() {
    let s = Server::start(&[]).await;
    let c = &s.client;
    let outcome = c
        .txn()
        .success(TxnOp::put_with_ttl(
            "t",
            Value::Int(1),
            Duration::from_secs(3600),
        ))
        .send()
        .await
        .unwrap();
    let read = c.get_revised(ValueType::Int, "t").await.unwrap().unwrap();
    assert_eq!(read.revision, outcome.revision);
    assert!(read.expires_at.is_some(), "{read:?}");
}

#[tokio::test]
async fn a_transaction_runs_its_success_branch_at_one_revision() {
    let s = Server::start(&[]).await;
    let c = &s.client;
    let a = c
        .put_if("a", &Value::Int(12), Precondition::Absent)
        .await
        .unwrap();
    c.map_put("m", &map(&[("x", "1")])).await.unwrap();
    let outcome = c
        .txn()
        .compare(Compare::revision(ValueType::Int, "a", a))
        .compare(Compare::absent(ValueType::Str, "b"))
        .compare(Compare::value("a", Value::Int(12)))
        .success(TxnOp::put("a", Value::Int(13)))
        .success(TxnOp::delete(ValueType::Map, "m"))
        .success(TxnOp::get(ValueType::Int, "a"))
        .success(TxnOp::incr("c", 2))
        .success(TxnOp::add_member("s", "x"))
        .success(TxnOp::put_field("f", "k", "v"))
        .success(TxnOp::get(ValueType::Str, "b"))
        .failure(TxnOp::get(ValueType::Int, "a"))
        .send()
        .await
        .unwrap();
    assert!(outcome.succeeded);
    let rev = outcome.revision;
    assert_eq!(
        outcome.results,
        [
            TxnResult::Put { revision: rev },
            TxnResult::Deleted(true),
            TxnResult::Got(Some(Revised {
                value: Value::Int(13),
                revision: rev,
                created: None,
                expires_at: None
            })),
            TxnResult::Incremented(2),
            TxnResult::Changed(true),
            TxnResult::Changed(true),
            TxnResult::Got(None),
        ]
    );
    for (ty, key) in [
        (ValueType::Int, "a"),
        (ValueType::Int, "c"),
        (ValueType::Set, "s"),
    ] {
        assert_eq!(
            c.get_revised(ty, key).await.unwrap().unwrap().revision,
            rev,
            "{key}"
        );
    }
}

#[tokio::test]
async fn a_compare_that_fails_runs_the_failure_branch_and_a_failed_op_changes_nothing() {
    let s = Server::start(&[]).await;
    let c = &s.client;
    c.int_put("a", 1).await.unwrap();
    let outcome = c
        .txn()
        .compare(Compare::absent(ValueType::Int, "a"))
        .success(TxnOp::put("a", Value::Int(2)))
        .failure(TxnOp::get(ValueType::Int, "a"))
        .send()
        .await
        .unwrap();
    assert!(!outcome.succeeded);
    assert!(matches!(&outcome.results[..], [TxnResult::Got(Some(r))] if r.value == Value::Int(1)));

    c.int_put("top", i32::MAX).await.unwrap();
    let err = c
        .txn()
        .success(TxnOp::put("a", Value::Int(3)))
        .success(TxnOp::incr("top", 1))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err:?}");
    assert_eq!(c.int_get("a").await.unwrap(), Some(1), "rolled back");
}

#[tokio::test]
async fn a_value_stored_with_a_ttl_says_when_it_expires_until_a_put_makes_it_permanent() {
    let s = Server::start(&[]).await;
    let c = &s.client;
    let before = std::time::SystemTime::now();
    let rev = c
        .put_with_ttl("t", &Value::Str("x".into()), Duration::from_secs(3600))
        .await
        .unwrap();
    let read = c.get_revised(ValueType::Str, "t").await.unwrap().unwrap();
    assert_eq!(read.revision, rev);
    let at = read.expires_at.expect("a TTL");
    let lower = before + Duration::from_secs(3599);
    let upper = std::time::SystemTime::now() + Duration::from_secs(3601);
    assert!(lower <= at && at <= upper, "{at:?}");
    c.str_put("t", "y").await.unwrap();
    assert_eq!(
        c.get_revised(ValueType::Str, "t")
            .await
            .unwrap()
            .unwrap()
            .expires_at,
        None
    );
}

// ----- followers: redirects and reading your own writes ------------------------------------------

/// What a [`Follower`] saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: HeaderMap,
}

/// A stand-in for a kvs-server follower: it answers every request, reads
/// included, `307 Temporary Redirect` to the same path and query on
/// `primary`, and records each request's head.
struct Follower {
    root: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Follower {
    /// A follower of the server at `primary`; `None`: of itself, a loop.
    async fn start(primary: Option<&str>) -> Follower {
        Follower::serve(primary, false).await
    }

    /// A follower that redirects writes to `primary` and answers reads as
    /// one behind the revision asked for does: 503 with `Retry-After`.
    async fn behind(primary: &str) -> Follower {
        Follower::serve(Some(primary), true).await
    }

    async fn serve(primary: Option<&str>, behind: bool) -> Follower {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let root = format!("http://{}", listener.local_addr().unwrap());
        let primary = primary.unwrap_or(&root).trim_end_matches('/').to_owned();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
            let location = format!("{primary}{path}");
            record.lock().unwrap().push(Seen {
                method: req.method().to_string(),
                path: path.to_owned(),
                headers: req.headers().clone(),
            });
            let read = req.method() == axum::http::Method::GET;
            async move {
                use axum::http::{StatusCode, header};
                use axum::response::IntoResponse;
                if behind && read {
                    let problem = r#"{"type":"about:blank","title":"Service Unavailable","status":503,"detail":"behind"}"#;
                    let headers = [
                        (header::RETRY_AFTER, "1"),
                        (header::CONTENT_TYPE, "application/problem+json"),
                    ];
                    (StatusCode::SERVICE_UNAVAILABLE, headers, problem).into_response()
                } else {
                    (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, location)]).into_response()
                }
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Follower { root, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The `KVS-Min-Revision` of the last request seen, if it had one.
    fn last_min_revision(&self) -> Option<String> {
        let seen = self.seen();
        let last = seen.last().expect("a request was seen");
        last.headers
            .get("kvs-min-revision")
            .map(|v| v.to_str().unwrap().to_owned())
    }
}

#[tokio::test]
async fn writes_sent_to_a_follower_are_redirected_with_their_bodies_and_land_on_the_primary() {
    let primary = Server::start(&[]).await;
    let follower = Follower::start(Some(
        &primary.client.base_url().origin().ascii_serialization(),
    ))
    .await;
    let c = Client::new(&follower.root).unwrap();

    c.int_put("n", 5).await.unwrap();
    assert_eq!(c.int_incr("n", 3).await.unwrap(), 8);
    c.map_field_put("m", "f", "v").await.unwrap();
    assert!(c.set_add("s", "a").await.unwrap());
    c.str_put("gone", "x").await.unwrap();
    assert!(c.str_delete("gone").await.unwrap());
    let outcome = c
        .txn()
        .success(TxnOp::put("t", Value::Str("in a txn".to_owned())))
        .send()
        .await
        .unwrap();
    assert!(outcome.succeeded);
    // Reads are redirected too, and answered by the primary.
    assert_eq!(c.int_get("n").await.unwrap(), Some(8));

    let p = &primary.client;
    assert_eq!(p.int_get("n").await.unwrap(), Some(8));
    assert_eq!(
        p.map_field_get("m", "f").await.unwrap().as_deref(),
        Some("v")
    );
    assert!(p.set_contains("s", "a").await.unwrap());
    assert_eq!(p.str_get("gone").await.unwrap(), None);
    assert_eq!(p.str_get("t").await.unwrap().as_deref(), Some("in a txn"));

    let methods: Vec<_> = follower
        .seen()
        .iter()
        .map(|s| format!("{} {}", s.method, s.path))
        .collect();
    assert_eq!(
        methods,
        [
            "PUT /kvs/v1-0-0/int/n",
            "POST /kvs/v1-0-0/int/n/incr",
            "PUT /kvs/v1-0-0/map/m/f",
            "PUT /kvs/v1-0-0/set/s/a",
            "PUT /kvs/v1-0-0/str/gone",
            "DELETE /kvs/v1-0-0/str/gone",
            "POST /kvs/v1-0-0/txn",
            "GET /kvs/v1-0-0/int/n",
        ]
    );
}

#[tokio::test]
async fn a_redirected_write_keeps_its_query_and_its_condition() {
    let primary = Server::start(&[]).await;
    let follower = Follower::start(Some(
        &primary.client.base_url().origin().ascii_serialization(),
    ))
    .await;
    let c = Client::new(&follower.root).unwrap();
    let rev = c
        .put_with_ttl("k", &Value::Int(1), Duration::from_secs(60))
        .await
        .unwrap();
    let read = primary
        .client
        .get_revised(ValueType::Int, "k")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.revision, rev);
    assert!(read.expires_at.is_some(), "the ttl reached the primary");
    let err = c
        .put_if("k", &Value::Int(2), Precondition::Revision(rev + 100))
        .await
        .unwrap_err();
    assert!(err.is_precondition_failed(), "{err:?}");
    assert_eq!(primary.client.int_get("k").await.unwrap(), Some(1));
}

#[tokio::test]
async fn the_token_goes_with_a_redirect_to_the_primary_on_another_host() {
    let primary = SecureServer::start().await;
    let follower = Follower::start(Some(&primary.url)).await;
    let c = primary
        .builder()
        .base_url(&follower.root)
        .token(RW_TOKEN)
        .build()
        .unwrap();
    c.int_put("n", 7).await.unwrap();
    assert_eq!(
        primary.client(RO_TOKEN).int_get("n").await.unwrap(),
        Some(7)
    );
    let seen = follower.seen();
    let auth = seen[0]
        .headers
        .get("authorization")
        .expect("the follower got the token");
    assert_eq!(auth.to_str().unwrap(), format!("Bearer {RW_TOKEN}"));
}

#[tokio::test]
async fn a_redirect_loop_ends_with_too_many_redirects() {
    let follower = Follower::start(None).await;
    let c = Client::new(&follower.root).unwrap();
    let err = c.int_put("n", 1).await.unwrap_err();
    match &err {
        Error::TooManyRedirects { hops, location } => {
            assert_eq!(*hops, kvs_client::MAX_REDIRECTS);
            assert_eq!(*location, format!("{}/kvs/v1-0-0/int/n", follower.root));
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("redirects"), "{err}");
    assert_eq!(follower.seen().len(), kvs_client::MAX_REDIRECTS + 1);
}

#[tokio::test]
async fn a_redirect_that_would_turn_a_write_into_a_get_is_not_followed() {
    let (elsewhere, _c) = silent_listener().await;
    let to = format!("location: http://{}/", elsewhere.local_addr().unwrap());
    for status in ["301 Moved Permanently", "302 Found", "303 See Other"] {
        let (root, _) = scripted_server(answer(status, &[&to], "")).await;
        let err = Client::new(&root)
            .unwrap()
            .int_put("n", 1)
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(status[..3].parse().unwrap()), "{err:?}");
    }
    assert_no_connection(&elsewhere).await;
}

#[tokio::test]
async fn with_read_your_writes_reads_name_the_revision_of_the_last_write() {
    let primary = Server::start(&[]).await;
    let follower = Follower::start(Some(
        &primary.client.base_url().origin().ascii_serialization(),
    ))
    .await;
    let c = Client::builder()
        .base_url(&follower.root)
        .read_your_writes(true)
        .build()
        .unwrap();

    assert_eq!(c.int_get("n").await.unwrap(), None);
    assert_eq!(follower.last_min_revision(), None, "no write yet");

    let first = c
        .put_if("n", &Value::Int(1), Precondition::Absent)
        .await
        .unwrap();
    assert_eq!(c.int_get("n").await.unwrap(), Some(1));
    assert_eq!(follower.last_min_revision(), Some(first.to_string()));

    // A write by someone else moves the store on, not this client's mark.
    primary.client.int_put("other", 1).await.unwrap();
    let keys = c.keys(ValueType::Int, None, None, None).await.unwrap();
    assert_eq!(keys, ["n", "other"]);
    assert_eq!(follower.last_min_revision(), Some(first.to_string()));

    // Clones share the mark.
    let second = c
        .clone()
        .put_if("n", &Value::Int(2), Precondition::Revision(first))
        .await
        .unwrap();
    assert!(second > first);
    assert_eq!(c.int_get("n").await.unwrap(), Some(2));
    assert_eq!(follower.last_min_revision(), Some(second.to_string()));

    // Probes ask whether the server serves, at whatever revision.
    c.healthz().await.unwrap();
    assert_eq!(follower.last_min_revision(), None);

    // Off by default.
    let plain = Client::new(&follower.root).unwrap();
    plain.int_put("n", 3).await.unwrap();
    assert_eq!(plain.int_get("n").await.unwrap(), Some(3));
    assert_eq!(follower.last_min_revision(), None);
}

#[tokio::test]
async fn a_follower_behind_the_revision_of_a_read_is_unavailable_with_its_wait() {
    let primary = Server::start(&[]).await;
    let follower =
        Follower::behind(&primary.client.base_url().origin().ascii_serialization()).await;
    let c = Client::builder()
        .base_url(&follower.root)
        .read_your_writes(true)
        .build()
        .unwrap();
    let rev = c
        .put_if("n", &Value::Int(1), Precondition::Absent)
        .await
        .unwrap();
    let err = c.int_get("n").await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(1)));
    assert_eq!(err.detail(), Some("behind"));
    assert_eq!(follower.last_min_revision(), Some(rev.to_string()));
}

#[tokio::test]
async fn an_authorization_among_the_default_headers_is_still_sent_without_a_token() {
    let (root, head) = scripted_server(answer("200 OK", &[], "ok")).await;
    let mut headers = HeaderMap::new();
    headers.insert("authorization", HeaderValue::from_static("Basic Z3c6cHc="));
    let c = Client::builder()
        .base_url(root)
        .default_headers(headers)
        .build()
        .unwrap();
    c.healthz().await.unwrap();
    let head = head.await.unwrap().to_ascii_lowercase();
    assert!(
        head.contains(
            "\r\nauthorization: basic z3c6cHc=\r\n"
                .to_ascii_lowercase()
                .as_str()
        ),
        "{head}"
    );
}
