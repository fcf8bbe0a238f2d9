//! The real binary against its log file: restarts, kill -9, damaged files
//! and compaction.

use std::collections::HashMap;
use std::fs;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::path::Path;

use kvs_testkit::http::Api;
use kvs_testkit::process::{KvsProcess, run_to_exit};
use reqwest::StatusCode;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_kvs-server"))
}

/// kvs-server on `data_dir`, with `args`, ready.
pub(crate) async fn start(data_dir: &Path, args: &[&str]) -> KvsProcess {
    KvsProcess::start(binary(), &argv(data_dir, args)).await
}

fn argv(data_dir: &Path, args: &[&str]) -> Vec<String> {
    let mut all = vec!["--data-dir".to_owned(), data_dir.display().to_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    all
}

/// One value of every type, by compatibility route: (put path, get path,
/// body, what GET answers).
const MIX: [(&str, &str, &str, &str); 7] = [
    ("/int-put/i", "/int-get/i", "-7", "-7"),
    ("/uint/put/u", "/uint/get/u", "7", "7"),
    ("/float-put/f", "/float-get/f", "0.1", "0.1"),
    ("/str-put/s", "/str-get/s", "hello\nworld", "hello\nworld"),
    ("/str-put/empty", "/str-get/empty", "", ""),
    (
        "/map-put/m",
        "/map-get/m",
        r#"{"k":"v","a":"b"}"#,
        r#"{"a":"b","k":"v"}"#,
    ),
    (
        "/set-put/t",
        "/set-get/t",
        r#"["y","x","y"]"#,
        r#"["x","y"]"#,
    ),
];

async fn write_mix(base: &Api) {
    for (put_path, _, body, _) in MIX {
        assert_eq!(base.put(put_path, body).await, StatusCode::OK, "{put_path}");
    }
    // Overwritten and deleted values must stay that way after a restart.
    assert_eq!(base.put("/int-put/gone", "1").await, StatusCode::OK);
    assert!(base.delete("/del/gone").await);
}

async fn assert_mix(base: &Api) {
    for (_, get_path, _, expected) in MIX {
        assert_eq!(
            base.get(get_path).await,
            (StatusCode::OK, expected.to_owned()),
            "{get_path}"
        );
    }
    assert_eq!(base.get("/int-get/gone").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn every_value_is_back_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]).await;
    write_mix(&server.api).await;
    let status = server.terminate();
    assert!(status.success(), "graceful stop exits 0, got {status}");

    let server = start(dir.path(), &[]).await;
    assert_mix(&server.api).await;
    assert!(
        server.output().contains("replayed the transaction log"),
        "{}",
        server.output()
    );
}

#[tokio::test]
async fn async_mode_flushes_everything_accepted_at_a_graceful_stop() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &["--durability", "async"]).await;
    write_mix(&server.api).await;
    for i in 0..500 {
        assert_eq!(
            server.api.put(&format!("/int/n{i}"), &i.to_string()).await,
            StatusCode::OK
        );
    }
    assert!(server.terminate().success());
    let server = start(dir.path(), &[]).await;
    assert_mix(&server.api).await;
    for i in 0..500 {
        assert_eq!(server.api.get(&format!("/int/n{i}")).await.1, i.to_string());
    }
}

#[tokio::test]
async fn no_acknowledged_write_is_lost_when_the_server_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]).await;
    let acked: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    // The writers run until the kill cuts them off (the deadline only
    // bounds a test whose kill never came).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut writers = Vec::new();
    for w in 0..16 {
        let api = server.api.clone();
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                if Instant::now() > deadline {
                    break;
                }
                // Each writer overwrites a few keys, so the last acknowledged
                // value of each key is what must survive.
                let key = format!("w{w}_{}", i % 5);
                let value = format!("{w}-{i}");
                match api
                    .client
                    .put(api.url(&format!("/str/{key}")))
                    .body(value.clone())
                    .send()
                    .await
                {
                    Ok(r) if r.status() == StatusCode::OK => {
                        acked.lock().unwrap().insert(key, value);
                    }
                    // The kill cuts connections: unacknowledged, may or may not be there.
                    _ => break,
                }
            }
        }));
    }
    // Kill once the writers are well under way, however slow the machine.
    let under_way = Instant::now() + Duration::from_secs(20);
    while acked.lock().unwrap().len() < 40 && Instant::now() < under_way {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.kill();
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 16,
        "the writers got too few answers before the kill: {}",
        acked.len()
    );

    let server = start(dir.path(), &[]).await;
    for (key, value) in &acked {
        let (status, body) = server.api.get(&format!("/str/{key}")).await;
        assert_eq!(status, StatusCode::OK, "{key} lost");
        // A later write may have reached the log without its answer.
        let (w, i) = value.split_once('-').unwrap();
        let (bw, bi) = body.split_once('-').unwrap();
        assert!(
            bw == w && bi.parse::<u64>().unwrap() >= i.parse::<u64>().unwrap(),
            "{key}: acked {value}, found {body}"
        );
    }
}

#[tokio::test]
async fn a_torn_last_record_is_dropped_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]).await;
    write_mix(&server.api).await;
    assert_eq!(
        server.api.put("/str/last", "the last write").await,
        StatusCode::OK
    );
    assert!(server.terminate().success());
    let log = dir.path().join("kvs.log");
    let len = fs::metadata(&log).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(len - 3)
        .unwrap();

    let server = start(dir.path(), &[]).await;
    assert_mix(&server.api).await;
    assert_eq!(server.api.get("/str/last").await.0, StatusCode::NOT_FOUND);
    assert!(server.output().contains("torn"), "{}", server.output());
}

#[tokio::test]
async fn corruption_in_the_middle_stops_start_up_unless_told_to_truncate() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]).await;
    write_mix(&server.api).await;
    assert!(server.terminate().success());
    let log = dir.path().join("kvs.log");
    let mut bytes = fs::read(&log).unwrap();
    // The third record's payload: header (8), then two frames.
    let frame = |at: usize| 8 + u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    let third = 8 + frame(8) + frame(8 + frame(8));
    bytes[third + 10] ^= 0x55;
    fs::write(&log, &bytes).unwrap();

    let (status, output) = run_to_exit(binary(), &argv(dir.path(), &[]));
    assert!(!status.success(), "must refuse a corrupt log");
    assert!(
        output.contains(&format!("corrupt at byte offset {third}")),
        "{output}"
    );

    let server = start(dir.path(), &["--truncate-corrupt"]).await;
    assert_eq!(server.api.get("/int-get/i").await.1, "-7");
    assert_eq!(server.api.get("/uint/get/u").await.1, "7");
    assert_eq!(
        server.api.get("/float-get/f").await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn compaction_keeps_the_log_near_the_live_set_and_replays_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--compact-min-bytes", "65536"];
    let server = start(dir.path(), &args).await;
    let value = "v".repeat(100);
    // 20 live keys overwritten 300 times each: about 800 KiB of history.
    for round in 0..300 {
        for k in 0..20 {
            let body = format!("{round}:{value}");
            assert_eq!(
                server.api.put(&format!("/str/k{k}"), &body).await,
                StatusCode::OK
            );
        }
    }
    let output = server.output();
    assert!(output.contains("compacted the log"), "{output}");
    assert!(server.terminate().success());
    let size = fs::metadata(dir.path().join("kvs.log")).unwrap().len();
    assert!(size < 3 * 65536, "the log is {size} bytes for 20 live keys");

    let server = start(dir.path(), &args).await;
    for k in 0..20 {
        assert_eq!(
            server.api.get(&format!("/str/k{k}")).await.1,
            format!("299:{value}")
        );
    }
}

/// A change to one member of a large set or one field of a large map logs
/// that member or field, not the whole value again: 1,000 changes to
/// values of 5,000 entries grow the log by what they say, and replay to
/// the same state.
#[tokio::test]
async fn a_member_or_field_change_logs_that_entry_alone() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("kvs.log");
    let server = start(dir.path(), &[]).await;
    let members: Vec<String> = (0..5000).map(|i| format!("member-{i:05}")).collect();
    let set_body = serde_json::to_string(&members).unwrap();
    assert_eq!(server.api.put("/set/s", &set_body).await, StatusCode::OK);
    let fields: HashMap<&str, &str> = members.iter().map(|m| (m.as_str(), "v")).collect();
    let map_body = serde_json::to_string(&fields).unwrap();
    assert_eq!(server.api.put("/map/m", &map_body).await, StatusCode::OK);
    let before = fs::metadata(&log).unwrap().len();
    assert!(before > 100_000, "the two values take {before} bytes");

    for round in 0..250 {
        assert_eq!(server.api.put("/set/s/extra", "").await, StatusCode::OK);
        assert!(server.api.delete("/set/s/member-00007").await);
        assert_eq!(
            server.api.put("/set/s/member-00007", "").await,
            StatusCode::OK
        );
        let body = format!("r{round}");
        assert_eq!(
            server.api.put("/map/m/member-00003", &body).await,
            StatusCode::OK
        );
    }
    assert!(server.api.delete("/set/s/extra").await);
    assert!(server.api.delete("/map/m/member-00009").await);
    let grown = fs::metadata(&log).unwrap().len() - before;
    // About 40 bytes a change; each would be over 50 KiB if it logged the
    // whole value.
    assert!(
        grown < 1002 * 100,
        "1,002 changes grew the log by {grown} bytes"
    );
    assert!(server.terminate().success());

    let server = start(dir.path(), &[]).await;
    let (status, set) = server.api.get("/set/s").await;
    assert_eq!(status, StatusCode::OK);
    let set: Vec<String> = serde_json::from_str(&set).unwrap();
    assert_eq!(set, members, "the set is back as it was");
    let (_, map) = server.api.get("/map/m").await;
    let map: HashMap<String, String> = serde_json::from_str(&map).unwrap();
    assert_eq!(map.len(), 4999);
    assert_eq!(map["member-00003"], "r249");
    assert!(!map.contains_key("member-00009"));
}
