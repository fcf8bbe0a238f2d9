//! The file log against real files: replay, torn tails, corruption and
//! compaction, and the window of latest changes that followers read.

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use common::follow_all;
use kvs_core::change::UNSTAMPED;
use kvs_core::{Change, Key, PlainState, Txn, Value, ValueType};
use kvs_log::{ChangeFeed, FileLog, FileOptions, FollowError, Log, LogError, LogReader, WriterLog};

fn key(s: &str) -> Key {
    Key::parse(s).unwrap()
}

fn put(k: &str, v: i32) -> Txn {
    Txn::Put {
        key: key(k),
        value: Value::Int(v),
    }
}

/// `txns` as changes of a revision each, from `first` on.
fn numbered(first: u64, txns: &[Txn]) -> Vec<Change> {
    (first..)
        .zip(txns)
        .map(|(r, t)| Change::new(r, t.clone()))
        .collect()
}

/// The revisions of `changes`.
fn revisions(changes: &[Change]) -> Vec<u64> {
    changes.iter().map(|c| c.revision).collect()
}

fn log_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("kvs.log")
}

async fn replay_all(
    path: &Path,
    opts: FileOptions,
) -> Result<(Vec<Change>, kvs_log::ReplayStats, FileLog), LogError> {
    let mut log = FileLog::open(path, opts)?;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let stats = log.replay(move |t| sink.lock().unwrap().push(t)).await?;
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    Ok((seen, stats, log))
}

async fn write(path: &Path, changes: &[Change]) {
    let mut log = FileLog::open(path, FileOptions::default()).unwrap();
    log.replay(|_| {}).await.unwrap();
    log.append(changes).await.unwrap();
}

#[tokio::test]
async fn appended_batches_replay_in_order_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    let first = [put("a", 1), put("b", 2)];
    let second = [
        Txn::Delete {
            ty: ValueType::Int,
            key: key("a"),
        },
        put("b", 3),
    ];
    write(&path, &numbered(1, &first)).await;
    write(&path, &numbered(3, &second)).await;
    let (seen, stats, _) = replay_all(&path, FileOptions::default()).await.unwrap();
    assert_eq!(seen, numbered(1, &[first, second].concat()));
    assert_eq!((stats.records, stats.head), (4, 4));
    assert_eq!(stats.history_from, 0, "never compacted: all history");
    assert_eq!(stats.torn_bytes, 0);
}

/// Where each frame of the log file `bytes` starts.
fn frame_starts(bytes: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut at = 8;
    while at < bytes.len() {
        starts.push(at);
        at += 8 + u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    }
    assert_eq!(at, bytes.len());
    starts
}

fn delete(k: &str) -> Txn {
    Txn::Delete {
        ty: ValueType::Int,
        key: key(k),
    }
}

#[tokio::test]
async fn the_changes_of_a_revision_are_one_frame_and_replay_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    let batch = [
        Change::new(5, put("a", 1)),
        Change::new(5, put("b", 2)),
        Change::new(6, delete("a")),
        Change::new(9, put("c", 3)),
        Change::new(9, delete("b")),
    ];
    write(&path, &batch).await;
    assert_eq!(frame_starts(&fs::read(&path).unwrap()).len(), 3);
    let (seen, stats, mut log) = replay_all(&path, FileOptions::default()).await.unwrap();
    assert_eq!(seen, batch);
    assert_eq!((stats.records, stats.head), (5, 9));
    let mut streamed = Vec::new();
    let stats = log
        .reader()
        .stream()
        .drain(|c| streamed.push(c))
        .await
        .unwrap();
    assert_eq!(streamed, batch);
    assert_eq!((stats.records, stats.head), (5, 9));
    // Changes without a revision go on from the head.
    log.append(&[Change::new(UNSTAMPED, put("d", 4))])
        .await
        .unwrap();
    drop(log);
    let (seen, stats, _) = replay_all(&path, FileOptions::default()).await.unwrap();
    assert_eq!(seen.last(), Some(&Change::new(10, put("d", 4))));
    assert_eq!(stats.head, 10);
}

#[tokio::test]
async fn a_cut_anywhere_in_the_last_revisions_frame_drops_all_of_that_revision() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    let kept = [Change::new(1, put("a", 1))];
    let last: Vec<Change> = ["b", "c", "d"]
        .into_iter()
        .map(|k| Change::new(2, put(k, 2)))
        .collect();
    write(&path, &[&kept[..], &last].concat()).await;
    let bytes = fs::read(&path).unwrap();
    let starts = frame_starts(&bytes);
    assert_eq!(starts.len(), 2);
    for cut in starts[1]..bytes.len() {
        fs::write(&path, &bytes[..cut]).unwrap();
        let (seen, stats, _) = replay_all(&path, FileOptions::default()).await.unwrap();
        assert_eq!(seen, kept, "cut at {cut}");
        assert_eq!(stats.head, 1, "cut at {cut}");
        assert_eq!(stats.torn_bytes, (cut - starts[1]) as u64, "cut at {cut}");
    }
}

#[tokio::test]
async fn records_from_before_revisions_are_numbered_in_file_order_among_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    let mut file = kvs_log::file::MAGIC.to_vec();
    for t in [put("a", 1), delete("a")] {
        kvs_log::codec::encode(&t, &mut file).unwrap();
    }
    fs::write(&path, &file).unwrap();
    let (seen, stats, mut log) = replay_all(&path, FileOptions::default()).await.unwrap();
    assert_eq!(seen, numbered(1, &[put("a", 1), delete("a")]));
    assert_eq!(stats.head, 2);
    log.append(&[Change::new(7, put("b", 2))]).await.unwrap();
    drop(log);
    let mut file = fs::read(&path).unwrap();
    kvs_log::codec::encode(&put("c", 3), &mut file).unwrap();
    fs::write(&path, &file).unwrap();
    let (seen, stats, _) = replay_all(&path, FileOptions::default()).await.unwrap();
    assert_eq!(revisions(&seen), [1, 2, 7, 8]);
    assert_eq!(stats.head, 8);
}

#[tokio::test]
async fn compaction_keeps_each_values_revisions_expiry_and_a_head_left_by_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    let opts = FileOptions {
        compact_min_bytes: 4096,
        ..FileOptions::default()
    };
    let mut log = FileLog::open(&path, opts.clone()).unwrap();
    log.replay(|_| {}).await.unwrap();
    let mut revision = 0;
    for round in 0..100 {
        revision += 1;
        let batch: Vec<Change> = (0..5)
            .map(|k| Change::new(revision, put(&format!("k{k}"), round)))
            .collect();
        log.append(&batch).await.unwrap();
    }
    let member = |m: &str, present| Txn::SetMember {
        key: key("s"),
        member: m.into(),
        present,
    };
    let set_changed = revision + 2;
    let last = set_changed + 1;
    let expiry = Txn::Expiry {
        ty: ValueType::Int,
        key: key("ttl"),
        at_ms: Some(123_456),
    };
    log.append(&[
        Change::new(revision + 1, member("x", true)),
        Change::new(revision + 1, put("doomed", 0)),
        Change::new(revision + 1, put("ttl", 7)),
        Change::new(revision + 1, expiry.clone()),
        Change::new(set_changed, member("x", false)),
        Change::new(set_changed, member("y", true)),
        Change::new(last, delete("doomed")),
    ])
    .await
    .unwrap();
    // Appends of marks alone give no revision, until a compaction has
    // folded the delete away.
    let writer = |sequence| kvs_log::WriterMark {
        writer: key("w"),
        sequence,
    };
    let mut sequence = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while fs::read(&path).unwrap().windows(6).any(|w| w == b"doomed") {
        assert!(
            std::time::Instant::now() < deadline,
            "no compaction folded the delete"
        );
        sequence += 1;
        log.append_marked(&[], &[writer(sequence)], 0)
            .await
            .unwrap();
    }
    let mut streamed = Vec::new();
    let stats = log
        .reader()
        .stream()
        .drain(|c| streamed.push(c))
        .await
        .unwrap();
    assert_eq!(stats.head, last);
    drop(log);
    let (seen, stats, _) = replay_all(&path, opts).await.unwrap();
    assert_eq!(seen, streamed);
    assert_eq!(stats.head, last);
    // What came before the compaction is folded: the history starts there.
    assert_eq!(stats.history_from, last);
    // Each value made before its last change says when, after its put.
    let created = |ty, k: &str, revision| Txn::Created {
        ty,
        key: key(k),
        revision,
    };
    let mut expected: Vec<Change> = (0..5)
        .flat_map(|k| {
            let k = format!("k{k}");
            [
                Change::new(100, put(&k, 99)),
                Change::new(100, created(ValueType::Int, &k, 1)),
            ]
        })
        .collect();
    expected.push(Change::new(revision + 1, put("ttl", 7)));
    expected.push(Change::new(revision + 1, expiry));
    expected.push(Change::new(
        set_changed,
        Txn::Put {
            key: key("s"),
            value: Value::Set(["y".into()].into()),
        },
    ));
    expected.push(Change::new(
        set_changed,
        created(ValueType::Set, "s", revision + 1),
    ));
    let mut sorted = seen.clone();
    sorted.sort_by_key(|c| (c.revision, c.txn.key().to_string()));
    assert_eq!(sorted, expected);
    assert!(
        seen.windows(2).all(|w| w[0].revision <= w[1].revision),
        "a compacted log replays in revision order: {seen:?}"
    );
}

#[tokio::test]
async fn a_torn_last_record_is_dropped_and_the_log_stays_usable() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    write(&path, &numbered(1, &[put("a", 1), put("b", 2)])).await;
    let full = fs::metadata(&path).unwrap().len();
    // Cut the last record in half, as a crash in the middle of a write would.
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(full - 5)
        .unwrap();

    let (seen, stats, mut log) = replay_all(&path, FileOptions::default()).await.unwrap();
    assert_eq!(seen, numbered(1, &[put("a", 1)]));
    assert!(stats.torn_bytes > 0);
    log.append(&numbered(2, &[put("c", 3)])).await.unwrap();
    drop(log);
    let (seen, stats, _) = replay_all(&path, FileOptions::default()).await.unwrap();
    assert_eq!(seen, numbered(1, &[put("a", 1), put("c", 3)]));
    assert_eq!(stats.torn_bytes, 0);
}

#[tokio::test]
async fn zeros_after_the_last_record_count_as_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    write(&path, &numbered(1, &[put("a", 1)])).await;
    OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(&[0; 100])
        .unwrap();
    let (seen, stats, _) = replay_all(&path, FileOptions::default()).await.unwrap();
    assert_eq!(seen, numbered(1, &[put("a", 1)]));
    assert_eq!(stats.torn_bytes, 100);
}

#[tokio::test]
async fn corruption_in_the_middle_is_reported_with_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    write(
        &path,
        &numbered(1, &[put("a", 1), put("b", 2), put("c", 3)]),
    )
    .await;
    let mut bytes = fs::read(&path).unwrap();
    // Header (8) + first frame; flip a payload byte of the second frame.
    let first_frame = 8 + u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
    let second = 8 + first_frame;
    bytes[second + 9] ^= 0xff;
    fs::write(&path, &bytes).unwrap();

    match replay_all(&path, FileOptions::default()).await {
        Err(LogError::Corrupt { offset, .. }) => assert_eq!(offset, second as u64),
        Err(other) => panic!("expected corruption, got {other}"),
        Ok((seen, ..)) => panic!("expected corruption, replayed {seen:?}"),
    }
    // The refused log is left as it was, for an operator to look at.
    assert_eq!(fs::read(&path).unwrap(), bytes);

    let opts = FileOptions {
        truncate_corrupt: true,
        ..FileOptions::default()
    };
    let (seen, stats, _) = replay_all(&path, opts).await.unwrap();
    assert_eq!(seen, numbered(1, &[put("a", 1)]));
    assert_eq!(stats.corrupt_bytes, (bytes.len() - second) as u64);
    assert_eq!(fs::metadata(&path).unwrap().len(), second as u64);
}

#[tokio::test]
async fn a_file_that_is_not_a_log_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    fs::write(&path, b"hello, this is not a log").unwrap();
    assert!(matches!(
        FileLog::open(&path, FileOptions::default()),
        Err(LogError::Corrupt { offset: 0, .. })
    ));
}

#[tokio::test]
async fn compaction_shrinks_many_overwrites_to_the_live_set() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    let opts = FileOptions {
        compact_min_bytes: 64 << 10,
        ..FileOptions::default()
    };
    let mut log = FileLog::open(&path, opts.clone()).unwrap();
    log.replay(|_| {}).await.unwrap();
    let mut expected = PlainState::new();
    let live_keys = 10;
    for round in 0..2000 {
        let batch: Vec<Txn> = (0..live_keys)
            .map(|k| put(&format!("k{k}"), round * 100 + k))
            .chain([Txn::Put {
                key: key(&format!("gone{round}")),
                value: Value::Str("x".repeat(20)),
            }])
            .chain([Txn::Delete {
                ty: ValueType::Str,
                key: key(&format!("gone{round}")),
            }])
            .collect();
        for t in batch.clone() {
            t.apply_to(&mut expected);
        }
        // A revision per round, as one write of many keys would have.
        let round_revision = round as u64 + 1;
        let batch: Vec<Change> = batch
            .into_iter()
            .map(|t| Change::new(round_revision, t))
            .collect();
        log.append(&batch).await.unwrap();
    }
    drop(log);
    let size = fs::metadata(&path).unwrap().len();
    let (seen, stats, _) = replay_all(&path, opts).await.unwrap();
    assert_eq!(stats.head, 2000);
    let mut replayed = PlainState::new();
    for c in seen {
        c.txn.apply_to(&mut replayed);
    }
    assert_eq!(replayed, expected);
    // Without compaction the file would hold 2000 rounds of 12 records
    // (over 500 KiB); it may hold at most two thresholds' worth.
    assert!(size < 2 * (64 << 10) + 4096, "log is {size} bytes");
}

#[tokio::test]
async fn writer_marks_survive_reopening_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    let opts = FileOptions {
        compact_min_bytes: 4096,
        ..FileOptions::default()
    };
    let writer = key("writer1");
    let mut log = FileLog::open(&path, opts.clone()).unwrap();
    log.replay(|_| {}).await.unwrap();
    for seq in 1..=300 {
        let mark = kvs_log::WriterMark {
            writer: writer.clone(),
            sequence: seq,
        };
        log.append_marked(&numbered(seq, &[put("k", seq as i32)]), &[mark], 0)
            .await
            .unwrap();
    }
    assert_eq!(log.writer_sequence(&writer).await.unwrap(), 300);
    assert_eq!(log.writer_sequence(&key("stranger")).await.unwrap(), 0);
    drop(log);
    let (seen, _, mut log) = replay_all(&path, opts).await.unwrap();
    assert_eq!(seen.last(), Some(&Change::new(300, put("k", 300))));
    assert!(
        seen.len() < 300,
        "compaction should have folded the history: {} records",
        seen.len()
    );
    assert_eq!(log.writer_sequence(&writer).await.unwrap(), 300);
}

#[tokio::test]
async fn a_reader_streams_what_is_durable_while_appends_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    let mut log = FileLog::open(&path, FileOptions::default()).unwrap();
    log.replay(|_| {}).await.unwrap();
    log.append(&numbered(1, &[put("a", 1), put("b", 2)]))
        .await
        .unwrap();
    let mut stream = log.reader().stream();
    log.append(&numbered(3, &[put("c", 3)])).await.unwrap();
    let mut seen = Vec::new();
    while let Some(t) = stream.next().await {
        seen.push(t);
    }
    assert_eq!(stream.finish().await.unwrap().records, seen.len() as u64);
    // The later append may or may not be in a stream opened before it;
    // what was durable when it opened always is, in order.
    assert!(
        seen.starts_with(&numbered(1, &[put("a", 1), put("b", 2)])),
        "{seen:?}"
    );
    let mut all = Vec::new();
    let stats = log.reader().stream().drain(|t| all.push(t)).await.unwrap();
    assert_eq!(all, numbered(1, &[put("a", 1), put("b", 2), put("c", 3)]));
    assert_eq!((stats.records, stats.skipped, stats.head), (3, 0, 3));
}

#[tokio::test]
async fn a_reader_that_meets_damage_ends_with_an_error_after_what_came_before() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    let mut log = FileLog::open(&path, FileOptions::default()).unwrap();
    log.replay(|_| {}).await.unwrap();
    log.append(&numbered(1, &[put("a", 1)])).await.unwrap();
    let second = std::fs::metadata(&path).unwrap().len();
    log.append(&numbered(2, &[put("b", 2), put("c", 3)]))
        .await
        .unwrap();
    // Damage the second record's payload (past its 8-byte frame header)
    // behind the log's back.
    let mut bytes = fs::read(&path).unwrap();
    bytes[second as usize + 9] ^= 0xff;
    fs::write(&path, &bytes).unwrap();

    let mut seen = Vec::new();
    let end = log.reader().stream().drain(|t| seen.push(t)).await;
    assert_eq!(seen, numbered(1, &[put("a", 1)]));
    match end {
        Err(LogError::Corrupt { offset, .. }) => assert_eq!(offset, second),
        other => panic!("a damaged log read to its end: {other:?}"),
    }
}

// Damage against a crash, record by record: what a crash can leave of the
// last write is dropped as a torn tail, anything else is refused at the
// offset of the bad frame (and cut there with `truncate_corrupt`).

/// Record `i`, of revision `i + 1`; its payload ends in a non-zero byte
/// (see `zeros_that_do_not_start_at_a_block_boundary_are_damage`).
fn record(i: usize) -> Change {
    Change::new(
        i as u64 + 1,
        Txn::Put {
            key: key(&format!("k{i}")),
            value: Value::Str(format!("value {i}")),
        },
    )
}

const N: usize = 9;

/// Writes `records` in batches of four; answers the file's bytes and where
/// each frame starts.
async fn log_of(path: &Path, records: &[Change]) -> (Vec<u8>, Vec<usize>) {
    for batch in records.chunks(4) {
        write(path, batch).await;
    }
    let bytes = fs::read(path).unwrap();
    let starts = frame_starts(&bytes);
    assert_eq!(starts.len(), records.len());
    (bytes, starts)
}

/// How replaying `bytes` must end: the records before frame `kept` survive,
/// and the file is cut at `at`, the offset of that frame.
#[derive(Debug, Clone, Copy)]
enum Expect {
    Torn { kept: usize, at: usize },
    Corrupt { kept: usize, at: usize },
}

async fn check(path: &Path, bytes: &[u8], records: &[Change], expect: Expect, case: &str) {
    fs::write(path, bytes).unwrap();
    let end = bytes.len() as u64;
    match expect {
        Expect::Torn { kept, at } => {
            let (seen, stats, _) = replay_all(path, FileOptions::default())
                .await
                .unwrap_or_else(|e| panic!("{case}: a torn tail was refused: {e}"));
            assert_eq!(seen, records[..kept], "{case}");
            assert_eq!(
                (stats.torn_bytes, stats.corrupt_bytes),
                (end - at as u64, 0),
                "{case}"
            );
            assert_eq!(fs::metadata(path).unwrap().len(), at as u64, "{case}");
        }
        Expect::Corrupt { kept, at } => {
            match replay_all(path, FileOptions::default()).await {
                Err(LogError::Corrupt { offset, .. }) => assert_eq!(offset, at as u64, "{case}"),
                Err(other) => panic!("{case}: expected corruption, got {other}"),
                Ok((seen, stats, _)) => panic!(
                    "{case}: expected corruption at {at}, replayed {} records with {stats:?}",
                    seen.len()
                ),
            }
            assert_eq!(
                fs::read(path).unwrap(),
                bytes,
                "{case}: a refused log is left as it was"
            );
            let opts = FileOptions {
                truncate_corrupt: true,
                ..FileOptions::default()
            };
            let (seen, stats, _) = replay_all(path, opts).await.unwrap();
            assert_eq!(seen, records[..kept], "{case}");
            assert_eq!(
                (stats.torn_bytes, stats.corrupt_bytes),
                (0, end - at as u64),
                "{case}"
            );
            assert_eq!(fs::metadata(path).unwrap().len(), at as u64, "{case}");
        }
    }
}

/// Every way of damaging frame `i`'s header or payload in place: a length
/// made longer (past the end of the file, or not), out of range or shorter;
/// a checksum; the first, a middle and the last payload byte.
fn damages(bytes: &[u8], start: usize) -> Vec<(String, Vec<u8>)> {
    let len = u32::from_le_bytes(bytes[start..start + 4].try_into().unwrap()) as usize;
    let payload = start + 8;
    let flips = [
        ("length +16 MiB (top byte, bit 0)", start + 3, 0x01),
        ("length top byte 0xff", start + 3, 0xff),
        ("length +1 MiB (third byte, bit 4)", start + 2, 0x10),
        ("length low bit", start, 0x01),
        ("length +64", start, 0x40),
        ("checksum", start + 4, 0x01),
        ("first payload byte", payload, 0x01),
        ("middle payload byte", payload + len / 2, 0x01),
        ("last payload byte", payload + len - 1, 0x01),
    ];
    flips
        .into_iter()
        .map(|(what, at, mask)| {
            let mut damaged = bytes.to_vec();
            damaged[at] ^= mask;
            (what.to_owned(), damaged)
        })
        .collect()
}

#[tokio::test]
async fn damage_to_any_record_header_or_payload_is_refused_at_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    let records: Vec<Change> = (0..N).map(record).collect();
    let (bytes, starts) = log_of(&path, &records).await;
    let mut failed = Vec::new();
    for (i, name) in [(0, "first"), (N / 2, "middle"), (N - 1, "last")] {
        for (what, damaged) in damages(&bytes, starts[i]) {
            let case = format!("{what} of the {name} record (at {})", starts[i]);
            let expect = Expect::Corrupt {
                kept: i,
                at: starts[i],
            };
            // Every case is tried, and the failures listed together.
            let (path, records, name) = (path.clone(), records.clone(), case.clone());
            let run =
                tokio::spawn(async move { check(&path, &damaged, &records, expect, &name).await });
            if run.await.is_err() {
                failed.push(case);
            }
        }
    }
    assert!(failed.is_empty(), "not refused as corrupt: {failed:#?}");
}

#[tokio::test]
async fn a_file_cut_anywhere_inside_the_last_record_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    let records: Vec<Change> = (0..N).map(record).collect();
    let (bytes, starts) = log_of(&path, &records).await;
    let last = starts[N - 1];
    for cut in last..bytes.len() {
        let case = format!("cut at {cut}, the last record is {last}..{}", bytes.len());
        let expect = Expect::Torn {
            kept: N - 1,
            at: last,
        };
        check(&path, &bytes[..cut], &records, expect, &case).await;
    }
}

/// A last record long enough to span file-system blocks, so that zeros can
/// stand in for some of it.
fn long_record() -> Change {
    Change::new(
        N as u64 + 1,
        Txn::Put {
            key: key("long"),
            value: Value::Str("x".repeat(3000)),
        },
    )
}

#[tokio::test]
async fn zeros_from_a_block_boundary_to_the_end_are_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    let mut records: Vec<Change> = (0..N).map(record).collect();
    records.push(long_record());
    let (bytes, starts) = log_of(&path, &records).await;
    let last = starts[N];
    let expect = Expect::Torn { kept: N, at: last };
    // The file grew before the data landed: from the last record on, or from
    // a block boundary inside it (its header too), possibly beyond its end.
    let boundaries = (last.next_multiple_of(512)..bytes.len()).step_by(512);
    for from in [last].into_iter().chain(boundaries) {
        for grown in [0, 100] {
            let mut damaged = bytes.clone();
            damaged[from..].fill(0);
            damaged.resize(bytes.len() + grown, 0);
            let case = format!("zeros from {from}, {grown} bytes past the end; last at {last}");
            check(&path, &damaged, &records, expect, &case).await;
        }
    }
    // And with the file ending early too.
    let boundary = (last + 9).next_multiple_of(512);
    let mut damaged = bytes[..bytes.len() - 700].to_vec();
    assert!(boundary < damaged.len());
    damaged[boundary..].fill(0);
    check(
        &path,
        &damaged,
        &records,
        expect,
        "cut, zeros before the cut",
    )
    .await;
}

#[tokio::test]
async fn zeros_that_do_not_start_at_a_block_boundary_are_damage() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    let mut records: Vec<Change> = (0..N).map(record).collect();
    records.push(long_record());
    let (bytes, starts) = log_of(&path, &records).await;
    let last = starts[N];
    // A crash cannot zero the last 100 bytes of a record that ends mid-block.
    let end = bytes.len();
    assert!(
        (end - 100..end).all(|b| b % 512 != 0),
        "the test needs another size"
    );
    let mut damaged = bytes.clone();
    damaged[end - 100..].fill(0);
    let expect = Expect::Corrupt { kept: N, at: last };
    check(
        &path,
        &damaged,
        &records,
        expect,
        "zeros over the last 100 bytes",
    )
    .await;
}

#[tokio::test]
async fn a_log_laid_out_by_hand_as_documented_replays_and_takes_appends() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    // put int key "a" = 7, then delete it, then put str key "b" = "hi":
    // op, type, key length, key, value.
    let payloads: [&[u8]; 3] = [
        &[1, 0, 1, 0, b'a', 7, 0, 0, 0],
        &[2, 0, 1, 0, b'a'],
        &[1, 3, 1, 0, b'b', 2, 0, 0, 0, b'h', b'i'],
    ];
    let mut file = b"KVSLOG\x00\x01".to_vec();
    for p in payloads {
        file.extend_from_slice(&(p.len() as u32).to_le_bytes());
        file.extend_from_slice(&crc32fast::hash(p).to_le_bytes());
        file.extend_from_slice(p);
    }
    fs::write(&path, &file).unwrap();
    let written = [
        put("a", 7),
        Txn::Delete {
            ty: ValueType::Int,
            key: key("a"),
        },
        Txn::Put {
            key: key("b"),
            value: Value::Str("hi".into()),
        },
    ];
    let (seen, stats, mut log) = replay_all(&path, FileOptions::default()).await.unwrap();
    // Records without revisions are numbered in file order.
    assert_eq!(seen, numbered(1, &written));
    assert_eq!((stats.torn_bytes, stats.corrupt_bytes), (0, 0));
    log.append(&[Change::new(UNSTAMPED, put("c", 9))])
        .await
        .unwrap();
    drop(log);
    let (seen, _, _) = replay_all(&path, FileOptions::default()).await.unwrap();
    assert_eq!(seen, numbered(1, &[&written[..], &[put("c", 9)]].concat()));
    assert!(fs::read(&path).unwrap().starts_with(&file));
}

#[tokio::test]
async fn marks_of_idle_writers_are_forgotten_and_compacted_out_of_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    let mark = |writer: &str, sequence| kvs_log::WriterMark {
        writer: key(writer),
        sequence,
    };
    // A file from two hours ago, holding one writer's mark.
    let two_hours_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        - 2 * 3600 * 1000;
    let mut old = kvs_log::file::MAGIC.to_vec();
    kvs_log::codec::encode_mark(&mark("idle_writer", 3), two_hours_ago, &mut old).unwrap();
    fs::write(&path, &old).unwrap();

    let opts = FileOptions {
        compact_min_bytes: 4096,
        ..FileOptions::default()
    };
    let (_, _, mut log) = replay_all(&path, opts.clone()).await.unwrap();
    log.append_marked(&[], &[mark("live_writer", 5)], 0)
        .await
        .unwrap();
    assert_eq!(log.writer_sequence(&key("idle_writer")).await.unwrap(), 3);
    let hour = std::time::Duration::from_secs(3600);
    assert_eq!(log.forget_writers(hour).await.unwrap(), 1);
    assert_eq!(log.writer_sequence(&key("idle_writer")).await.unwrap(), 0);
    assert_eq!(log.writer_sequence(&key("live_writer")).await.unwrap(), 5);
    assert_eq!(log.forget_writers(hour).await.unwrap(), 0);

    // Appends go on until a compaction has been swapped in: it leaves the
    // forgotten mark out and keeps the live one.
    let mut seq = 5;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while fs::read(&path)
        .unwrap()
        .windows(11)
        .any(|w| w == b"idle_writer")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no compaction dropped the forgotten mark"
        );
        seq += 1;
        log.append_marked(
            &numbered(seq, &[put("k", seq as i32)]),
            &[mark("live_writer", seq)],
            0,
        )
        .await
        .unwrap();
    }
    drop(log);
    let (_, _, mut log) = replay_all(&path, opts).await.unwrap();
    assert_eq!(log.writer_sequence(&key("idle_writer")).await.unwrap(), 0);
    assert_eq!(log.writer_sequence(&key("live_writer")).await.unwrap(), seq);
}

/// A file log keeping `keep` revisions for followers, replayed.
async fn followed(path: &Path, keep: u64, opts: FileOptions) -> FileLog {
    let mut log = FileLog::open(path, opts).unwrap().keep_changes(keep);
    log.replay(|_| {}).await.unwrap();
    log
}

/// `n` revisions from `first` on, two transactions each.
fn pairs(first: u64, n: u64) -> Vec<Change> {
    (first..first + n)
        .flat_map(|r| {
            [
                Change::new(r, put("a", r as i32)),
                Change::new(r, put("b", 0)),
            ]
        })
        .collect()
}

#[tokio::test]
async fn followers_read_appends_in_order_and_the_window_is_refilled_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    let mut log = followed(&path, 1000, FileOptions::default()).await;
    let feed = log.feed();
    let woken = feed.woken();
    let mut appended = Vec::new();
    for b in 0..10 {
        let mut batch = pairs(b * 5 + 1, 5);
        appended.extend(batch.clone());
        // Changes without a revision are logged, and left out.
        batch.push(Change::new(UNSTAMPED, put("old", 1)));
        log.append_marked(&batch, &[], 0).await.unwrap();
    }
    assert!(woken.has_changed().unwrap(), "appends wake followers");
    for max in [1, 7, 1000] {
        assert_eq!(
            follow_all(&feed, 0, max).await.0,
            appended,
            "{max} at a time"
        );
    }
    drop(log);

    let mut log = followed(&path, 1000, FileOptions::default()).await;
    let feed = log.feed();
    let (read, head) = follow_all(&feed, 20, 3).await;
    assert_eq!(read, appended[40..]);
    // The head counts what the replay numbered (the last change without a
    // revision, after 50), as ReadTransactions' does.
    assert_eq!(head, 51);
    let woken = feed.woken();
    log.append_marked(&pairs(52, 1), &[], 0).await.unwrap();
    assert!(woken.has_changed().unwrap());
    assert_eq!(follow_all(&feed, 51, 10).await.0, pairs(52, 1));
}

#[tokio::test]
async fn the_window_keeps_the_last_revisions_and_a_follower_further_back_is_too_old() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    let mut log = followed(&path, 10, FileOptions::default()).await;
    log.append_marked(&pairs(1, 50), &[], 0).await.unwrap();
    for log in [log, followed(&path, 10, FileOptions::default()).await] {
        let feed = log.feed();
        match feed.read_after(39, 10).await {
            Err(
                e @ FollowError::TooOld {
                    after: 39,
                    oldest: 40,
                },
            ) => {
                assert!(e.to_string().contains("ReadTransactions"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(follow_all(&feed, 40, 4).await.0, pairs(41, 10));
    }
}

#[tokio::test]
async fn after_a_compaction_the_window_starts_where_the_history_does() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    let opts = FileOptions {
        compact_min_bytes: 4096,
        ..FileOptions::default()
    };
    let mut log = followed(&path, 100_000, opts.clone()).await;
    let mut revision = 0;
    let mut len = 0;
    // Appends go on until a compaction was swapped in: the file shrank.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        assert!(std::time::Instant::now() < deadline, "no compaction");
        revision += 1;
        log.append_marked(&pairs(revision, 1), &[], 0)
            .await
            .unwrap();
        let now = fs::metadata(&path).unwrap().len();
        if now < len {
            break;
        }
        len = now;
    }
    drop(log);
    let mut log = FileLog::open(&path, opts).unwrap().keep_changes(100_000);
    let stats = log.replay(|_| {}).await.unwrap();
    assert!(stats.history_from > 0);
    let feed = log.feed();
    let from = stats.history_from;
    assert!(matches!(
        feed.read_after(from - 1, 10).await,
        Err(FollowError::TooOld { .. })
    ));
    let (read, head) = follow_all(&feed, from, 100).await;
    assert_eq!(read, pairs(from + 1, revision - from));
    assert_eq!(head, revision);
}
