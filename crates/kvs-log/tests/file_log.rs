//! The file log against real files: replay, torn tails, corruption and
//! compaction.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use kvs_core::{Key, PlainState, Txn, Value, ValueType};
use kvs_log::{FileLog, FileOptions, Log, LogError};

fn key(s: &str) -> Key {
    Key::parse(s).unwrap()
}

fn put(k: &str, v: i32) -> Txn {
    Txn::Put {
        key: key(k),
        value: Value::Int(v),
    }
}

fn log_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("kvs.log")
}

async fn replay_all(
    path: &Path,
    opts: FileOptions,
) -> Result<(Vec<Txn>, kvs_log::ReplayStats, FileLog), LogError> {
    let mut log = FileLog::open(path, opts)?;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let stats = log.replay(move |t| sink.lock().unwrap().push(t)).await?;
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    Ok((seen, stats, log))
}

async fn write(path: &Path, txns: &[Txn]) {
    let mut log = FileLog::open(path, FileOptions::default()).unwrap();
    log.replay(|_| {}).await.unwrap();
    log.append(txns, &[]).await.unwrap();
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
    write(&path, &first).await;
    write(&path, &second).await;
    let (seen, stats, _) = replay_all(&path, FileOptions::default()).await.unwrap();
    assert_eq!(seen, [first, second].concat());
    assert_eq!(stats.records, 4);
    assert_eq!(stats.torn_bytes, 0);
}

#[tokio::test]
async fn a_torn_last_record_is_dropped_and_the_log_stays_usable() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    write(&path, &[put("a", 1), put("b", 2)]).await;
    let full = fs::metadata(&path).unwrap().len();
    // Cut the last record in half, as a crash in the middle of a write would.
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(full - 5)
        .unwrap();

    let (seen, stats, mut log) = replay_all(&path, FileOptions::default()).await.unwrap();
    assert_eq!(seen, [put("a", 1)]);
    assert!(stats.torn_bytes > 0);
    log.append(&[put("c", 3)], &[]).await.unwrap();
    drop(log);
    let (seen, stats, _) = replay_all(&path, FileOptions::default()).await.unwrap();
    assert_eq!(seen, [put("a", 1), put("c", 3)]);
    assert_eq!(stats.torn_bytes, 0);
}

#[tokio::test]
async fn zeros_after_the_last_record_count_as_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    write(&path, &[put("a", 1)]).await;
    OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(&[0; 100])
        .unwrap();
    let (seen, stats, _) = replay_all(&path, FileOptions::default()).await.unwrap();
    assert_eq!(seen, [put("a", 1)]);
    assert_eq!(stats.torn_bytes, 100);
}

#[tokio::test]
async fn corruption_in_the_middle_is_reported_with_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    write(&path, &[put("a", 1), put("b", 2), put("c", 3)]).await;
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
    assert_eq!(seen, [put("a", 1)]);
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
        log.append(&batch, &[]).await.unwrap();
    }
    drop(log);
    let size = fs::metadata(&path).unwrap().len();
    let (seen, _, _) = replay_all(&path, opts).await.unwrap();
    let mut replayed = PlainState::new();
    for t in seen {
        t.apply_to(&mut replayed);
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
        log.append(&[put("k", seq as i32)], &[mark]).await.unwrap();
    }
    assert_eq!(log.writer_sequence(&writer).await.unwrap(), 300);
    assert_eq!(log.writer_sequence(&key("stranger")).await.unwrap(), 0);
    drop(log);
    let (seen, _, mut log) = replay_all(&path, opts).await.unwrap();
    assert_eq!(seen.last(), Some(&put("k", 300)));
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
    log.append(&[put("a", 1), put("b", 2)], &[]).await.unwrap();
    let mut stream = log.reader().stream();
    log.append(&[put("c", 3)], &[]).await.unwrap();
    let mut seen = Vec::new();
    while let Some(t) = stream.next().await {
        seen.push(t);
    }
    assert_eq!(stream.finish().await.unwrap().records, seen.len() as u64);
    // The later append may or may not be in a stream opened before it;
    // what was durable when it opened always is, in order.
    assert!(seen.starts_with(&[put("a", 1), put("b", 2)]), "{seen:?}");
    let mut all = Vec::new();
    let stats = log.reader().stream().drain(|t| all.push(t)).await.unwrap();
    assert_eq!(all, [put("a", 1), put("b", 2), put("c", 3)]);
    assert_eq!((stats.records, stats.skipped), (3, 0));
}

#[tokio::test]
async fn a_reader_that_meets_damage_ends_with_an_error_after_what_came_before() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    let mut log = FileLog::open(&path, FileOptions::default()).unwrap();
    log.replay(|_| {}).await.unwrap();
    log.append(&[put("a", 1)], &[]).await.unwrap();
    let second = std::fs::metadata(&path).unwrap().len();
    log.append(&[put("b", 2), put("c", 3)], &[]).await.unwrap();
    // Damage the second record's payload (past its 8-byte frame header)
    // behind the log's back.
    let mut bytes = fs::read(&path).unwrap();
    bytes[second as usize + 9] ^= 0xff;
    fs::write(&path, &bytes).unwrap();

    let mut seen = Vec::new();
    let end = log.reader().stream().drain(|t| seen.push(t)).await;
    assert_eq!(seen, [put("a", 1)]);
    match end {
        Err(LogError::Corrupt { offset, .. }) => assert_eq!(offset, second),
        other => panic!("a damaged log read to its end: {other:?}"),
    }
}
