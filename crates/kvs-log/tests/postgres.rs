//! The PostgreSQL log against a real, throwaway PostgreSQL: batches of every
//! kind of transaction replay to what a simple model holds, revisions and
//! head included, and a batch the server refuses leaves nothing behind and
//! the log goes on; followers read the latest changes by revision, woken on
//! commit; the write lease is held by one at a time, and fences every batch
//! of another epoch.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::follow_all;
use kvs_core::change::UNSTAMPED;
use kvs_core::value::{MapValue, SetValue};
use kvs_core::{Change, Key, PlainState, Txn, Value, ValueType};
use kvs_log::follow::DEFAULT_KEEP;
use kvs_log::postgres::{PgLease, PgLog, PgOptions};
use kvs_log::{
    ChangeFeed, ErrorKind, FollowError, LeaseAsk, LeaseState, LogLease, LogReader, WriterLog,
    WriterMark,
};
use kvs_testkit::pg::PgCluster;

async fn connect(pg: &PgCluster) -> PgLog {
    connect_keeping(pg, DEFAULT_KEEP).await
}

/// The log on `pg`, keeping the changes of the last `keep` revisions.
async fn connect_keeping(pg: &PgCluster, keep: u64) -> PgLog {
    PgLog::connect(&PgOptions {
        url: pg.url().to_owned(),
        // One connection: a refused batch must not leave it unusable.
        pool_size: 1,
        replay_pool_size: 1,
        timeout: Duration::from_secs(10),
        follow_keep: keep,
    })
    .await
    .expect("connecting to the test cluster")
}

async fn replayed(log: &PgLog) -> PlainState {
    let (changes, end) = read(log.reader()).await;
    end.expect("replay");
    let mut state = PlainState::new();
    // The log replays type by type; types are independent namespaces.
    for c in changes {
        c.txn.apply_to(&mut state);
    }
    state
}

/// `txns` as the changes of one revision, `revision`.
fn at(revision: u64, txns: Vec<Txn>) -> Vec<Change> {
    txns.into_iter().map(|t| Change::new(revision, t)).collect()
}

/// The revisions of `changes`.
fn revisions(changes: &[Change]) -> Vec<u64> {
    changes.iter().map(|c| c.revision).collect()
}

/// The model of revisions: the revisions of each live value's last change
/// and of its creation. Applied to what a replay reads, it is also what
/// kvs-server makes of it.
#[derive(Default)]
struct Revised {
    state: PlainState,
    last: HashMap<(ValueType, Key), u64>,
    created: HashMap<(ValueType, Key), u64>,
}

impl Revised {
    fn apply(&mut self, change: Change) {
        let at = (change.txn.value_type(), change.txn.key().clone());
        match change.txn {
            Txn::Get { .. } => return,
            Txn::Created { revision, .. } => {
                if self.state.contains_key(&at) {
                    self.created.insert(at, revision);
                }
                return;
            }
            _ => {}
        }
        let existed = self.state.contains_key(&at);
        change.txn.apply_to(&mut self.state);
        if self.state.contains_key(&at) {
            self.last.insert(at.clone(), change.revision);
            if !existed {
                self.created.insert(at, change.revision);
            }
        } else {
            self.last.remove(&at);
            self.created.remove(&at);
        }
    }
}

fn key(s: &str) -> Key {
    Key::parse(s).unwrap()
}

/// A put of the int `v` under `k`.
fn int(k: &str, v: i32) -> Txn {
    Txn::Put {
        key: key(k),
        value: Value::Int(v),
    }
}

/// `m` now in the set `s`, or not.
fn member(m: &str, present: bool) -> Txn {
    Txn::SetMember {
        key: key("s"),
        member: m.into(),
        present,
    }
}

fn mark(sequence: u64) -> WriterMark {
    WriterMark {
        writer: Key::parse("writer").unwrap(),
        sequence,
    }
}

/// A small xorshift generator: the same batches on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn text(&mut self) -> String {
        ["", "a", "é", "ключ", "x y", "'quote'", "tab\there"][self.below(7) as usize].to_owned()
    }
    fn value(&mut self, ty: ValueType) -> Value {
        match ty {
            ValueType::Int => Value::Int(self.next() as i32),
            ValueType::Uint => Value::Uint(self.next() as u32),
            ValueType::Float => Value::Float((self.next() as i32) as f32 / 7.0),
            ValueType::Str => Value::Str(self.text()),
            ValueType::Map => Value::Map(
                (0..self.below(4))
                    .map(|_| (self.text(), self.text()))
                    .collect::<MapValue>(),
            ),
            ValueType::Set => Value::Set(
                (0..self.below(4))
                    .map(|_| self.text())
                    .collect::<SetValue>(),
            ),
        }
    }
    fn txn(&mut self) -> Txn {
        let key = Key::parse(&format!("k{}", self.below(6))).unwrap();
        let ty = ValueType::ALL[self.below(6) as usize];
        match self.below(14) {
            0..=5 => Txn::Put {
                value: self.value(ty),
                key,
            },
            6 | 7 => Txn::Delete { ty, key },
            8 => Txn::IncrBy {
                key,
                by: self.below(2001) as i32 - 1000,
            },
            9 => Txn::Get { ty, key },
            10 | 11 => Txn::SetMember {
                key,
                member: self.text(),
                present: self.below(2) == 0,
            },
            _ => Txn::MapField {
                key,
                field: self.text(),
                value: (self.below(2) == 0).then(|| self.text()),
            },
        }
    }
}

#[tokio::test]
async fn batches_of_every_kind_replay_to_the_model() {
    let pg = PgCluster::start().await;
    let mut log = connect(&pg).await;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut model = Revised::default();
    let mut revision = 0;
    for sequence in 1..=200 {
        // Runs of transactions share a revision, as one write's do (chosen
        // without the generator, which makes the same batches as before).
        let batch: Vec<Change> = (0..1 + rng.below(8))
            .map(|i| {
                revision += u64::from(i == 0 || (sequence + i) % 3 == 0);
                Change::new(revision, rng.txn())
            })
            .collect();
        log.append_marked(&batch, &[mark(sequence)], 0)
            .await
            .unwrap_or_else(|e| panic!("batch {sequence} {batch:?}: {e}"));
        for c in batch {
            model.apply(c);
        }
        // Now and then the whole log, so a wrong batch is found near its cause.
        if sequence % 50 == 0 {
            assert_eq!(replayed(&log).await, model.state, "after batch {sequence}");
        }
    }
    let writer = Key::parse("writer").unwrap();
    assert_eq!(log.writer_sequence(&writer).await.unwrap(), 200);

    // A second connection sees the same, and each live value's last change
    // comes with the revision it was logged with.
    let again = connect(&pg).await;
    let (changes, end) = read(again.reader()).await;
    assert_eq!(end.unwrap().head, revision);
    let mut last: HashMap<(ValueType, Key), u64> = HashMap::new();
    let mut replay = Revised::default();
    for c in changes {
        if !matches!(c.txn, Txn::Get { .. } | Txn::Created { .. }) {
            let at = (c.txn.value_type(), c.txn.key().clone());
            let seen = last.entry(at).or_default();
            *seen = (*seen).max(c.revision);
        }
        replay.apply(c);
    }
    assert_eq!(replay.state, model.state);
    for (at, revision) in &model.last {
        assert_eq!(last.get(at), Some(revision), "{at:?}");
    }
    // Each live value was created where the model says, though a put
    // deleted the rows before it: deletes and puts again in one batch,
    // reads of absent keys and member changes included.
    assert_eq!(replay.created, model.created);
}

#[tokio::test]
async fn revisions_round_trip_and_a_key_keeps_that_of_its_last_change() {
    let pg = PgCluster::start().await;
    let mut log = connect(&pg).await;
    let field = Txn::MapField {
        key: key("m"),
        field: "f".into(),
        value: Some("v".into()),
    };
    let batch = [
        at(3, vec![int("a", 1), int("b", 1)]),
        at(4, vec![int("a", 2), member("x", true)]),
        at(5, vec![member("y", true), field.clone()]),
        at(
            6,
            vec![Txn::Get {
                ty: ValueType::Int,
                key: key("b"),
            }],
        ),
    ]
    .concat();
    log.append_marked(&batch, &[mark(1)], 0).await.unwrap();
    let (changes, end) = read(log.reader()).await;
    let stats = end.unwrap();
    assert_eq!((stats.records, stats.head), (changes.len() as u64, 6));
    // Creations are the other test's; which entry row of `s` comes first
    // (and so whether it needs one) the batch's order does not fix.
    let mut got: Vec<(u64, Txn)> = changes
        .into_iter()
        .filter(|c| !matches!(c.txn, Txn::Created { .. }))
        .map(|c| (c.revision, c.txn))
        .collect();
    got.sort_by_key(|(r, t)| (*r, t.key().to_string(), format!("{t:?}")));
    assert_eq!(
        got,
        [
            (3, int("b", 1)),
            (4, int("a", 2)),
            (4, member("x", true)),
            (5, field),
            (5, member("y", true)),
            (
                6,
                Txn::Get {
                    ty: ValueType::Int,
                    key: key("b")
                }
            ),
        ]
    );
}

#[tokio::test]
async fn a_keys_creation_outlives_the_rows_that_made_it() {
    let pg = PgCluster::start().await;
    let mut log = connect(&pg).await;
    let delete = |k: &str| Txn::Delete {
        ty: ValueType::Int,
        key: key(k),
    };
    let batches = [
        [
            at(1, vec![int("kept", 1), int("again", 1)]),
            at(
                2,
                vec![Txn::Get {
                    ty: ValueType::Int,
                    key: key("read"),
                }],
            ),
            at(3, vec![member("a", true), member("b", true)]),
        ]
        .concat(),
        // Overwritten: its first put's row goes. Deleted and made again
        // in one batch. Made after a read gave it a row. A set whose first
        // member's row a later change of that member replaces.
        [
            at(4, vec![int("kept", 2)]),
            at(5, vec![delete("again")]),
            at(6, vec![int("again", 2), int("read", 1)]),
            at(7, vec![member("a", false)]),
        ]
        .concat(),
        at(8, vec![int("read", 2), int("kept", 3), int("again", 3)]),
    ];
    let mut model = Revised::default();
    for (sequence, batch) in (1..).zip(batches) {
        log.append_marked(&batch, &[mark(sequence)], 0)
            .await
            .unwrap();
        for c in batch {
            model.apply(c);
        }
    }
    let expected: HashMap<_, _> = [
        ((ValueType::Int, key("kept")), 1),
        ((ValueType::Int, key("again")), 6),
        ((ValueType::Int, key("read")), 6),
        ((ValueType::Set, key("s")), 3),
    ]
    .into();
    assert_eq!(model.created, expected, "the model");
    let (changes, end) = read(log.reader()).await;
    end.unwrap();
    let mut replay = Revised::default();
    for c in changes {
        replay.apply(c);
    }
    assert_eq!(replay.created, expected);
    assert_eq!(replay.state, model.state);
}

#[tokio::test]
async fn the_head_survives_a_batch_of_deletes_and_a_new_connection() {
    let pg = PgCluster::start().await;
    let mut log = connect(&pg).await;
    let a = Key::parse("a").unwrap();
    log.append_marked(
        &at(
            1,
            vec![Txn::Put {
                key: a.clone(),
                value: Value::Int(1),
            }],
        ),
        &[mark(1)],
        0,
    )
    .await
    .unwrap();
    log.append_marked(
        &at(
            7,
            vec![Txn::Delete {
                ty: ValueType::Int,
                key: a,
            }],
        ),
        &[mark(2)],
        0,
    )
    .await
    .unwrap();
    drop(log);
    let log = connect(&pg).await;
    let (changes, end) = read(log.reader()).await;
    assert_eq!(changes, []);
    assert_eq!(end.unwrap().head, 7);
}

#[tokio::test]
async fn a_keys_expiry_replays_after_its_value_until_a_put_or_delete_drops_it() {
    let pg = PgCluster::start().await;
    let mut log = connect(&pg).await;
    let put = |k: &str| Txn::Put {
        key: key(k),
        value: Value::Str("v".into()),
    };
    let expiry = |k: &str, at_ms| Txn::Expiry {
        ty: ValueType::Str,
        key: key(k),
        at_ms,
    };
    let batches = [
        at(1, vec![put("kept"), expiry("kept", Some(1_000))]),
        at(2, vec![put("dropped"), expiry("dropped", Some(2_000))]),
        at(3, vec![put("deleted"), expiry("deleted", Some(3_000))]),
        // A put that drops a TTL says so; a delete needs not.
        at(4, vec![put("dropped"), expiry("dropped", None)]),
        at(
            5,
            vec![Txn::Delete {
                ty: ValueType::Str,
                key: key("deleted"),
            }],
        ),
        // In one batch: set, then dropped by a put, then set again.
        [
            at(6, vec![put("late"), expiry("late", Some(6_000))]),
            at(7, vec![put("late")]),
            at(8, vec![put("late"), expiry("late", Some(8_000))]),
        ]
        .concat(),
    ];
    for (n, batch) in batches.into_iter().enumerate() {
        log.append_marked(&batch, &[mark(n as u64 + 1)], 0)
            .await
            .unwrap();
    }
    drop(log);
    let log = connect(&pg).await;
    let (changes, end) = read(log.reader()).await;
    assert_eq!(end.unwrap().head, 8);
    let expiries: Vec<(String, Option<u64>, u64)> = changes
        .iter()
        .filter_map(|c| match &c.txn {
            Txn::Expiry { key, at_ms, .. } => Some((key.to_string(), *at_ms, c.revision)),
            _ => None,
        })
        .collect();
    // An expiry is no change of its own: it takes the revision reached.
    assert_eq!(
        expiries,
        [
            ("kept".to_owned(), Some(1_000), 8),
            ("late".to_owned(), Some(8_000), 8)
        ]
    );
    let last_expiry = changes
        .iter()
        .rposition(|c| matches!(c.txn, Txn::Expiry { .. }));
    let last_put = changes
        .iter()
        .rposition(|c| matches!(c.txn, Txn::Put { .. }));
    assert!(
        last_expiry > last_put,
        "an expiry follows its value: {changes:?}"
    );
}

#[tokio::test]
async fn rows_without_a_revision_are_numbered_after_the_head_in_replay_order() {
    let pg = PgCluster::start().await;
    let mut log = connect(&pg).await;
    let put = |k: &str| Txn::Put {
        key: Key::parse(k).unwrap(),
        value: Value::Int(1),
    };
    for (sequence, change) in [
        Change::new(UNSTAMPED, put("a")),
        Change::new(5, put("b")),
        Change::new(UNSTAMPED, put("c")),
    ]
    .into_iter()
    .enumerate()
    {
        log.append_marked(&[change], &[mark(sequence as u64 + 1)], 0)
            .await
            .unwrap();
    }
    assert_eq!(
        pg.count("SELECT count(*) FROM int_transactions WHERE revision IS NULL")
            .await,
        2
    );
    let (changes, end) = read(log.reader()).await;
    assert_eq!(revisions(&changes), [6, 5, 7]);
    assert_eq!(end.unwrap().head, 7);
    // Numbered anew at each replay: after a head raised since, they move on.
    log.append_marked(&at(9, vec![put("d")]), &[mark(4)], 0)
        .await
        .unwrap();
    let (changes, end) = read(log.reader()).await;
    assert_eq!(revisions(&changes), [10, 5, 11, 9]);
    assert_eq!(end.unwrap().head, 11);
}

/// A change to one member or field is logged as that one entry and
/// supersedes that entry's earlier changes: however often a member of a
/// large set comes and goes, the tables hold the set once and one row for
/// each member changed.
#[tokio::test]
async fn member_and_field_changes_keep_the_tables_at_the_live_size() {
    let pg = PgCluster::start().await;
    let mut log = connect(&pg).await;
    let big: SetValue = (0..1000).map(|i| format!("m{i}")).collect();
    let fields: MapValue = (0..1000)
        .map(|i| (format!("f{i}"), "v".to_owned()))
        .collect();
    let mut model = PlainState::new();
    let mut batches = vec![vec![
        Txn::Put {
            key: key("s"),
            value: Value::Set(big),
        },
        Txn::Put {
            key: key("m"),
            value: Value::Map(fields),
        },
    ]];
    for round in 0..200 {
        let present = round % 2 == 0;
        batches.push(vec![
            Txn::SetMember {
                key: key("s"),
                member: "x".into(),
                present,
            },
            Txn::SetMember {
                key: key("s"),
                member: format!("m{}", round % 3),
                present,
            },
            Txn::MapField {
                key: key("m"),
                field: "f1".into(),
                value: present.then(|| format!("r{round}")),
            },
        ]);
    }
    for (sequence, batch) in batches.into_iter().enumerate() {
        let revision = sequence as u64 + 1;
        log.append_marked(&at(revision, batch.clone()), &[mark(revision)], 0)
            .await
            .unwrap();
        for t in batch {
            t.apply_to(&mut model);
        }
    }
    assert_eq!(replayed(&log).await, model);
    // The put, and the last change of "x", "m0", "m1" and "m2".
    assert_eq!(pg.count("SELECT count(*) FROM set_transactions").await, 5);
    assert_eq!(pg.count("SELECT count(*) FROM set_members").await, 1004);
    assert_eq!(pg.count("SELECT count(*) FROM map_transactions").await, 2);
    assert_eq!(
        pg.count("SELECT count(*) FROM map_key_value_pairs").await,
        1001
    );
}

#[tokio::test]
async fn a_batch_the_server_refuses_leaves_nothing_and_the_log_goes_on() {
    let pg = PgCluster::start().await;
    let mut log = connect(&pg).await;
    let put = |key: &str, text: &str| Txn::Put {
        key: Key::parse(key).unwrap(),
        value: Value::Str(text.to_owned()),
    };
    log.append_marked(&at(1, vec![put("before", "kept")]), &[mark(1)], 0)
        .await
        .unwrap();
    // PostgreSQL's text refuses U+0000 (the servers refuse it before it
    // gets here; this batch stands for any statement the server rejects).
    let refused = log
        .append_marked(
            &at(
                2,
                vec![
                    put("a", "would be lost"),
                    Txn::Put {
                        key: Key::parse("m").unwrap(),
                        value: Value::Map([("f".to_owned(), "v".to_owned())].into()),
                    },
                    put("b", "nul\0here"),
                ],
            ),
            &[mark(2)],
            0,
        )
        .await;
    assert!(refused.is_err(), "the batch must fail: {refused:?}");
    let writer = Key::parse("writer").unwrap();
    assert_eq!(log.writer_sequence(&writer).await.unwrap(), 1);
    let mut expected = PlainState::new();
    put("before", "kept").apply_to(&mut expected);
    assert_eq!(replayed(&log).await, expected);
    // Nor did its head stay.
    assert_eq!(read(log.reader()).await.1.unwrap().head, 1);

    // The same (only) connection takes the next batch.
    log.append_marked(&at(2, vec![put("a", "after")]), &[mark(2)], 0)
        .await
        .unwrap();
    put("a", "after").apply_to(&mut expected);
    assert_eq!(replayed(&log).await, expected);
    assert_eq!(log.writer_sequence(&writer).await.unwrap(), 2);
}

/// Rows as the original service's code writes them: a value for a put only,
/// NULL for its reads and increments (so `TransactionIncrBy` lost its
/// amount), in its own tables (`migrations/0001` is its DDL).
const ORIGINAL_ROWS: &str = r#"
INSERT INTO int_keys (key) VALUES ('counter'), ('hits');
INSERT INTO int_transactions (transaction_type, key_id, value) VALUES
    ('TransactionPut', 1, 10), ('TransactionIncr', 1, NULL), ('TransactionIncrBy', 1, NULL),
    ('TransactionGet', 1, NULL), ('TransactionIncr', 2, NULL), ('TransactionIncrBy', 2, NULL);
INSERT INTO string_keys (key) VALUES ('name');
INSERT INTO string_transactions (transaction_type, key_id, value) VALUES
    ('TransactionPut', 1, 'ada'), ('TransactionGet', 1, NULL);
INSERT INTO map_keys (key) VALUES ('user');
INSERT INTO map_transactions (transaction_type, key_id) VALUES ('TransactionPut', 1);
INSERT INTO map_key_value_pairs (transaction_id, map_key_id, key, value) VALUES
    (1, 1, 'name', 'ada'), (1, 1, 'lang', 'en');
"#;

/// A cluster holding the original's tables and `rows`, and the log on it.
async fn original_database(rows: &str) -> (PgCluster, PgLog) {
    let pg = PgCluster::start().await;
    pg.sql(include_str!("../../../migrations/0001_original_tables.sql"))
        .await;
    pg.sql(rows).await;
    let log = connect(&pg).await;
    (pg, log)
}

/// Every change a reader streams, and how the stream ended.
async fn read(
    reader: kvs_log::postgres::PgReader,
) -> (Vec<Change>, Result<kvs_log::ReplayStats, kvs_log::LogError>) {
    let mut txns = Vec::new();
    let end = reader.stream().drain(|t| txns.push(t)).await;
    (txns, end)
}

#[tokio::test]
async fn increments_the_original_logged_without_an_amount_are_skipped_and_counted() {
    let (_pg, log) = original_database(ORIGINAL_ROWS).await;
    let (txns, end) = read(log.reader()).await;
    let stats = end.expect("the rest of the log replays");
    assert_eq!(stats.skipped, 2, "one amountless TransactionIncrBy per key");
    assert_eq!(stats.records, txns.len() as u64);
    let mut state = PlainState::new();
    for c in txns {
        c.txn.apply_to(&mut state);
    }
    let get = |ty, k: &str| state.get(&(ty, Key::parse(k).unwrap())).cloned();
    // A TransactionIncr is one, whatever its value column says.
    assert_eq!(get(ValueType::Int, "counter"), Some(Value::Int(11)));
    assert_eq!(get(ValueType::Int, "hits"), Some(Value::Int(1)));
    assert_eq!(get(ValueType::Str, "name"), Some(Value::Str("ada".into())));
    assert_eq!(
        get(ValueType::Map, "user"),
        Some(Value::Map(
            [("name", "ada"), ("lang", "en")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into()
        ))
    );
}

#[tokio::test]
async fn an_original_database_gets_revisions_in_replay_order_and_goes_on_after_them() {
    let (pg, mut log) = original_database(ORIGINAL_ROWS).await;
    // Rows 1..6 of int (3 and 6 are skipped), 7 and 8 of string, 9 of map.
    let (changes, end) = read(log.reader()).await;
    assert_eq!(revisions(&changes), [1, 2, 4, 5, 7, 8, 9]);
    assert_eq!(end.unwrap().head, 9);
    assert_eq!(pg.count("SELECT head FROM kvs_revision_head").await, 9);
    // Each key was created at its first row's revision, reads aside.
    for (table, key, created) in [
        ("int", "counter", 1),
        ("int", "hits", 5),
        ("string", "name", 7),
        ("map", "user", 9),
    ] {
        let sql = format!("SELECT created_revision FROM {table}_keys WHERE key = '{key}'");
        assert_eq!(pg.count(&sql).await, created, "{table} {key}");
    }
    let put = Txn::Put {
        key: Key::parse("later").unwrap(),
        value: Value::Uint(1),
    };
    log.append_marked(&[Change::new(UNSTAMPED, put.clone())], &[mark(1)], 0)
        .await
        .unwrap();
    let (changes, end) = read(log.reader()).await;
    // The uint table replays second.
    assert_eq!(changes[4], Change::new(10, put));
    assert_eq!(end.unwrap().head, 10);
}

#[tokio::test]
async fn a_strict_reader_refuses_the_first_row_it_cannot_replay_and_names_it() {
    let (_pg, log) = original_database(ORIGINAL_ROWS).await;
    let (_, end) = read(log.reader().strict(true)).await;
    match end {
        Err(e @ kvs_log::LogError::BadRow { .. }) => {
            let text = e.to_string();
            assert!(
                text.starts_with("row 3 of table int_transactions cannot be replayed")
                    && text.contains("\"counter\"")
                    && text.contains("TransactionIncrBy without an amount"),
                "{text}"
            );
        }
        other => panic!("a strict reader took a row it cannot replay: {other:?}"),
    }
}

#[tokio::test]
async fn a_column_of_another_type_fails_the_read_naming_table_row_and_column() {
    // Types before float (int, uint) stream first: the failure comes mid-way.
    let (pg, log) = original_database(
        "INSERT INTO int_keys (key) VALUES ('a');
         INSERT INTO int_transactions (transaction_type, key_id, value) VALUES ('TransactionPut', 1, 1);
         INSERT INTO float_keys (key) VALUES ('pi');
         INSERT INTO float_transactions (transaction_type, key_id, value) VALUES ('TransactionPut', 1, 3.25);",
    )
    .await;
    pg.sql("ALTER TABLE float_transactions ALTER COLUMN value TYPE DOUBLE PRECISION")
        .await;
    let (txns, end) = read(log.reader()).await;
    assert_eq!(txns.len(), 1, "{txns:?}");
    let refused = end.expect_err("a partial read must not end as a complete one");
    assert_eq!(
        refused.to_string(),
        "row 1 of table float_transactions cannot be replayed: \
         column value is of type float8, where KVS reads real"
    );
}

#[tokio::test]
async fn a_map_put_under_a_key_kvs_cannot_name_is_skipped_whole() {
    let (_pg, log) = original_database(
        "INSERT INTO map_keys (key) VALUES ('user-1'), ('ok');
         INSERT INTO map_transactions (transaction_type, key_id) VALUES ('TransactionPut', 1), ('TransactionPut', 2);
         INSERT INTO map_key_value_pairs (transaction_id, map_key_id, key, value) VALUES
             (1, 1, 'a', '1'), (1, 1, 'b', '2'), (2, 2, 'c', '3');",
    )
    .await;
    let (txns, end) = read(log.reader()).await;
    assert_eq!(
        end.unwrap().skipped,
        1,
        "one transaction, however many rows"
    );
    // Both rows had revisions from the migration: the skipped one keeps its.
    assert_eq!(
        txns,
        [Change::new(
            2,
            Txn::Put {
                key: Key::parse("ok").unwrap(),
                value: Value::Map([("c".to_owned(), "3".to_owned())].into()),
            }
        )]
    );
}

#[tokio::test]
async fn the_marks_of_writers_idle_longer_than_asked_are_forgotten_and_no_others() {
    let pg = PgCluster::start().await;
    let mut log = connect(&pg).await;
    let idle = Key::parse("idle_writer").unwrap();
    let live = Key::parse("live_writer").unwrap();
    let at = |writer: &Key, sequence| WriterMark {
        writer: writer.clone(),
        sequence,
    };
    log.append_marked(&[], &[at(&idle, 3), at(&live, 5)], 0)
        .await
        .unwrap();
    pg.sql("UPDATE kvs_writers SET updated_at = NOW() - INTERVAL '2 hours' WHERE writer_id = 'idle_writer'")
        .await;

    let forgotten = log.forget_writers(Duration::from_secs(3600)).await.unwrap();
    assert_eq!(forgotten, 1);
    assert_eq!(log.writer_sequence(&idle).await.unwrap(), 0);
    assert_eq!(log.writer_sequence(&live).await.unwrap(), 5);
    // A writer that logs again is kept from then on.
    log.append_marked(&[], &[at(&live, 6)], 0).await.unwrap();
    assert_eq!(
        log.forget_writers(Duration::from_secs(3600)).await.unwrap(),
        0
    );
    assert_eq!(log.writer_sequence(&live).await.unwrap(), 6);
}

/// How `PgLog::connect` fails with `url`.
async fn connect_error(url: String) -> kvs_log::LogError {
    let opts = PgOptions {
        url,
        pool_size: 1,
        replay_pool_size: 1,
        timeout: Duration::from_secs(10),
        follow_keep: DEFAULT_KEEP,
    };
    match PgLog::connect(&opts).await {
        Ok(_) => panic!("connected to {}", opts.url),
        Err(e) => e,
    }
}

#[tokio::test]
async fn a_failed_connection_says_whether_waiting_can_help() {
    let pg = PgCluster::start().await;
    let (server, _) = pg.url().rsplit_once('/').unwrap();

    // Nothing listening yet, as for a database started beside txn-server.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let down = connect_error(format!("postgres://kvs@127.0.0.1:{port}/postgres")).await;
    assert_eq!(down.kind(), ErrorKind::Unavailable, "{down}");

    let missing = connect_error(format!("{server}/no_such_database")).await;
    assert_eq!(missing.kind(), ErrorKind::Misconfigured, "{missing}");
    assert!(missing.to_string().contains("does not exist"), "{missing}");

    // A table of the schema taken by something else: the migration fails.
    pg.sql("CREATE VIEW int_keys AS SELECT 1 AS id").await;
    let migration = connect_error(pg.url().to_owned()).await;
    assert_eq!(migration.kind(), ErrorKind::Misconfigured, "{migration}");
    assert!(
        migration
            .to_string()
            .starts_with("migration 1 (original tables) failed"),
        "{migration}"
    );
}

/// What `holder` asks of the lease: with `take`, to take or renew it at
/// `epoch` for `ttl`.
fn ask(holder: &str, epoch: u64, take: bool, ttl: Duration) -> LeaseAsk {
    LeaseAsk {
        holder: key(holder),
        url: format!("http://{holder}:8080"),
        epoch,
        take,
        ttl,
    }
}

const LONG: Duration = Duration::from_secs(600);
const SHORT: Duration = Duration::from_millis(100);

/// Waits until the lease has lapsed, by the database's clock.
async fn lapsed(lease: &PgLease) -> LeaseState {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let state = lease.ask(ask("watcher", 0, false, LONG)).await.unwrap();
        if state.remaining.is_zero() {
            return state;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the lease never lapsed: {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A lease held by `holder` at `epoch`, taken or renewed now.
fn holds(state: &LeaseState, holder: &str, epoch: u64) -> bool {
    state.held
        && state.holder == holder
        && state.epoch == epoch
        && state.url == format!("http://{holder}:8080")
        && !state.remaining.is_zero()
}

#[tokio::test]
async fn the_lease_is_taken_renewed_kept_from_others_while_live_and_taken_over_at_the_next_epoch() {
    let pg = PgCluster::start().await;
    let log = connect(&pg).await;
    let lease = log.lease();

    let never = lease.ask(ask("a", 0, false, LONG)).await.unwrap();
    assert_eq!(
        never,
        LeaseState {
            holder: String::new(),
            url: String::new(),
            epoch: 0,
            remaining: Duration::ZERO,
            held: false,
        }
    );
    // Only reading it takes nothing.
    assert_eq!(lease.ask(ask("a", 0, false, LONG)).await.unwrap(), never);

    let taken = lease.ask(ask("a", 0, true, LONG)).await.unwrap();
    assert!(holds(&taken, "a", 1), "{taken:?}");
    assert!(taken.remaining > Duration::from_secs(590), "{taken:?}");
    let renewed = lease.ask(ask("a", 1, true, LONG)).await.unwrap();
    assert!(holds(&renewed, "a", 1), "{renewed:?}");
    assert!(lease.ask(ask("a", 1, false, LONG)).await.unwrap().held);

    // While it is live, another asker, or its holder at another epoch,
    // learns who holds it and changes nothing.
    for (who, epoch) in [("b", 0), ("b", 1), ("a", 0), ("a", 2)] {
        let refused = lease.ask(ask(who, epoch, true, LONG)).await.unwrap();
        assert_eq!(
            (refused.holder.as_str(), refused.epoch, refused.held),
            ("a", 1, false),
            "{who} at {epoch}"
        );
        // Reading it says the same.
        let read = lease.ask(ask(who, epoch, false, LONG)).await.unwrap();
        assert!(!read.held, "{who} at {epoch}");
    }

    // A renewal for a short while, and the lease lapses; the next asker
    // takes it at the next epoch, and the old holder's renewal fails.
    let short = lease.ask(ask("a", 1, true, SHORT)).await.unwrap();
    assert!(short.held && short.remaining <= SHORT, "{short:?}");
    let gone = lapsed(&lease).await;
    assert_eq!(
        (gone.holder.as_str(), gone.epoch, gone.held),
        ("a", 1, false)
    );
    let over = lease.ask(ask("b", 0, true, LONG)).await.unwrap();
    assert!(holds(&over, "b", 2), "{over:?}");
    let late = lease.ask(ask("a", 1, true, LONG)).await.unwrap();
    assert!(
        !late.held && late.holder == "b" && late.epoch == 2,
        "{late:?}"
    );
}

#[tokio::test]
async fn an_append_of_an_epoch_not_the_leases_is_fenced_and_leaves_nothing_behind() {
    let pg = PgCluster::start().await;
    let mut log = connect(&pg).await;
    let lease = log.lease();
    assert!(lease.ask(ask("a", 0, true, SHORT)).await.unwrap().held);
    log.append_marked(&at(1, vec![int("k", 1)]), &[mark(1)], 1)
        .await
        .unwrap();
    lapsed(&lease).await;
    assert!(holds(
        &lease.ask(ask("b", 0, true, LONG)).await.unwrap(),
        "b",
        2
    ));

    // The old holder's epoch, and one no take has reached.
    for (sequence, epoch) in [(2, 1), (3, 3)] {
        let fenced = log
            .append_marked(
                &at(2, vec![int("k", 2), int("new", 2)]),
                &[mark(sequence)],
                epoch,
            )
            .await
            .unwrap_err();
        assert_eq!(fenced.kind(), ErrorKind::Fenced, "{fenced}");
        assert!(fenced.to_string().starts_with("fenced: epoch"), "{fenced}");
    }
    assert_eq!(log.writer_sequence(&key("writer")).await.unwrap(), 1);
    let (changes, end) = read(log.reader()).await;
    assert_eq!(end.unwrap().head, 1);
    assert_eq!(changes, at(1, vec![int("k", 1)]));
    assert_eq!(pg.count("SELECT count(*) FROM int_keys").await, 1);
    assert_eq!(pg.count("SELECT count(*) FROM int_transactions").await, 1);

    // The holder's epoch goes on, on the same connection.
    log.append_marked(&at(2, vec![int("k", 2)]), &[mark(2)], 2)
        .await
        .unwrap();
    assert_eq!(log.writer_sequence(&key("writer")).await.unwrap(), 2);
}

#[tokio::test]
async fn epoch_0_is_refused_while_anyone_holds_the_lease_and_taken_once_nobody_does() {
    let pg = PgCluster::start().await;
    let mut log = connect(&pg).await;
    let lease = log.lease();
    // Never taken: today's single writer.
    log.append_marked(&at(1, vec![int("k", 1)]), &[mark(1)], 0)
        .await
        .unwrap();
    assert!(lease.ask(ask("a", 0, true, LONG)).await.unwrap().held);
    let fenced = log
        .append_marked(&at(2, vec![int("k", 2)]), &[mark(2)], 0)
        .await
        .unwrap_err();
    assert_eq!(fenced.kind(), ErrorKind::Fenced, "{fenced}");
    assert!(
        fenced.to_string().starts_with("fenced: epoch 0"),
        "{fenced}"
    );
    assert_eq!(log.writer_sequence(&key("writer")).await.unwrap(), 1);

    assert!(lease.ask(ask("a", 1, true, SHORT)).await.unwrap().held);
    lapsed(&lease).await;
    log.append_marked(&at(2, vec![int("k", 2)]), &[mark(2)], 0)
        .await
        .unwrap();
    assert_eq!(log.writer_sequence(&key("writer")).await.unwrap(), 2);
}

/// A transaction of its own that has passed the fence at `epoch`, as a
/// batch in flight has, and holds it until committed.
async fn batch_in_flight(pg: &PgCluster, epoch: i64) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(pg.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client.batch_execute("BEGIN").await.unwrap();
    client
        .execute("SELECT kvs_lease_fence($1)", &[&epoch])
        .await
        .unwrap();
    client
}

#[tokio::test]
async fn a_take_waits_for_the_batches_in_flight_and_a_renewal_does_not() {
    let pg = PgCluster::start().await;
    let log = connect(&pg).await;
    let lease = log.lease();
    assert!(lease.ask(ask("a", 0, true, LONG)).await.unwrap().held);

    // Hang protection only: a renewal that waited for the batch would
    // never finish.
    let inflight = batch_in_flight(&pg, 1).await;
    let renewed =
        tokio::time::timeout(Duration::from_secs(60), lease.ask(ask("a", 1, true, SHORT)))
            .await
            .expect("a renewal waits for no batch")
            .unwrap();
    assert!(renewed.held);
    lapsed(&lease).await;

    let taker = log.lease();
    let take = tokio::spawn(async move { taker.ask(ask("b", 0, true, LONG)).await });
    // The take waits for the batch's lock, as the database says.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while pg
        .count("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        .await
        == 0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the take never waited"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!take.is_finished());
    // The batch of epoch 1 still commits: the take is not in yet.
    inflight.batch_execute("COMMIT").await.unwrap();
    let taken = take.await.unwrap().unwrap();
    assert!(holds(&taken, "b", 2), "{taken:?}");
    // And from now on no batch of epoch 1 passes the fence.
    let (client, conn) = tokio_postgres::connect(pg.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let fenced = client
        .execute("SELECT kvs_lease_fence($1)", &[&1_i64])
        .await
        .unwrap_err();
    assert_eq!(fenced.code().map(|c| c.code()), Some("KV001"), "{fenced}");
}

/// How long a wake-up may take to arrive: a bound for a hang, not a timing.
const WAKE_WITHIN: Duration = Duration::from_secs(30);

#[tokio::test]
async fn followers_read_whole_revisions_in_order_and_are_woken_by_the_next_commit() {
    let pg = PgCluster::start().await;
    let mut log = connect(&pg).await;
    let feed = log.feed();
    let mut woken = feed.woken();
    let mut rng = Rng(7);
    let mut appended = Vec::new();
    let mut revision = 0;
    for sequence in 1..=40 {
        // Batches of one to three revisions of one to four transactions.
        let mut batch = Vec::new();
        for _ in 0..=rng.below(3) {
            revision += 1;
            batch.extend(at(
                revision,
                (0..=rng.below(4)).map(|_| rng.txn()).collect(),
            ));
        }
        log.append_marked(&batch, &[mark(sequence)], 0)
            .await
            .unwrap();
        appended.extend(batch);
    }
    for max in [1, 3, 1000] {
        let (read, head) = follow_all(&feed, 0, max).await;
        assert_eq!(read, appended, "read {max} at a time");
        assert_eq!(head, revision);
    }
    // From inside a batch: what comes after, no more.
    let (read, _) = follow_all(&feed, 17, 5).await;
    assert_eq!(
        read,
        appended[appended.iter().position(|c| c.revision == 18).unwrap()..]
    );

    // The listener says it listens, then each commit wakes followers.
    tokio::time::timeout(WAKE_WITHIN, woken.changed())
        .await
        .expect("the listener to start")
        .unwrap();
    woken.mark_unchanged();
    let next = at(revision + 1, vec![int("late", 1)]);
    log.append_marked(&next, &[mark(41)], 0).await.unwrap();
    tokio::time::timeout(WAKE_WITHIN, woken.changed())
        .await
        .expect("a commit to wake the follower")
        .unwrap();
    let page = feed.read_after(revision, 10).await.unwrap();
    assert_eq!(page.changes, next);
    assert_eq!(page.head, revision + 1);
}

#[tokio::test]
async fn the_table_keeps_the_last_revisions_and_a_follower_further_back_is_too_old() {
    let pg = PgCluster::start().await;
    let mut log = connect_keeping(&pg, 100).await;
    let feed = log.feed();
    // Batches of ten revisions up to 2100: trimmed when crossing 1024 and
    // 2048, to the last 100 revisions then.
    for b in 0..210u64 {
        let batch: Vec<Change> = (1..=10)
            .map(|i| Change::new(b * 10 + i, int("k", i as i32)))
            .collect();
        log.append_marked(&batch, &[mark(b + 1)], 0).await.unwrap();
    }
    assert_eq!(pg.count("SELECT count(*) FROM kvs_changes").await, 15);
    match feed.read_after(1949, 10).await {
        Err(
            e @ FollowError::TooOld {
                after: 1949,
                oldest: 1950,
            },
        ) => {
            assert!(e.to_string().contains("ReadTransactions"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    let (read, head) = follow_all(&feed, 1950, 64).await;
    assert_eq!(revisions(&read), (1951..=2100).collect::<Vec<_>>());
    assert_eq!(head, 2100);
}

#[tokio::test]
async fn changes_without_a_revision_are_left_out_of_what_followers_read() {
    let pg = PgCluster::start().await;
    let mut log = connect(&pg).await;
    let batches = [
        vec![Change::new(UNSTAMPED, int("a", 1))],
        vec![Change::new(5, int("b", 1))],
        vec![
            Change::new(UNSTAMPED, int("c", 1)),
            Change::new(6, int("d", 1)),
        ],
    ];
    for (sequence, batch) in batches.iter().enumerate() {
        log.append_marked(batch, &[mark(sequence as u64 + 1)], 0)
            .await
            .unwrap();
    }
    let (read, head) = follow_all(&log.feed(), 0, 10).await;
    assert_eq!(
        read,
        [Change::new(5, int("b", 1)), Change::new(6, int("d", 1))]
    );
    assert_eq!(head, 6);
}

#[tokio::test]
async fn a_database_from_before_the_change_table_streams_only_what_comes_after() {
    let (_pg, mut log) = original_database(ORIGINAL_ROWS).await;
    let feed = log.feed();
    let head = feed.read_after(u64::MAX, 1).await.unwrap().head;
    assert!(head > 0);
    assert!(matches!(
        feed.read_after(head - 1, 10).await,
        Err(FollowError::TooOld { .. })
    ));
    log.append_marked(&at(head + 1, vec![int("new", 1)]), &[mark(1)], 0)
        .await
        .unwrap();
    let (read, _) = follow_all(&feed, head, 10).await;
    assert_eq!(revisions(&read), [head + 1]);
}
