//! The PostgreSQL backend: the original service's per-type tables.
//!
//! A batch is one database transaction with one COMMIT, however many
//! requests it carries. Within it, each key's transactions are folded into
//! their net effect first, then written a few set-based statements per
//! value type (arrays and `unnest`, never a row at a time). A put deletes
//! the key's earlier transactions and a delete removes the key with all of
//! them, so the tables hold about the live set: replay time follows the
//! number of live keys, not the history.

use std::collections::HashMap;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use futures_util::TryStreamExt;
use kvs_core::value::{MapValue, SetValue};
use kvs_core::{Key, Txn, Value, ValueType};
use tokio::sync::mpsc;
use tokio_postgres::NoTls;
use tokio_postgres::types::ToSql;

use crate::{Log, LogError, ReplayStats, WriterMark};

/// The migrations, applied in order at start-up.
const MIGRATIONS: [(i32, &str, &str); 3] = [
    (
        1,
        "original tables",
        include_str!("../../../migrations/0001_original_tables.sql"),
    ),
    (2, "sets", include_str!("../../../migrations/0002_sets.sql")),
    (
        3,
        "writers and indexes",
        include_str!("../../../migrations/0003_writers_and_indexes.sql"),
    ),
];

/// An arbitrary constant that serialises migrations between txn-servers
/// starting at once.
const MIGRATION_LOCK: i64 = 0x6b76_735f_6d69_6772;

const PUT: &str = "TransactionPut";
const GET: &str = "TransactionGet";
const DEL: &str = "TransactionDel";
const INCR: &str = "TransactionIncr";
const INCR_BY: &str = "TransactionIncrBy";

/// Table names of a value type: the original's, plus our sets.
fn prefix(ty: ValueType) -> &'static str {
    match ty {
        ValueType::Int => "int",
        ValueType::Uint => "uint",
        ValueType::Float => "float",
        ValueType::Str => "string",
        ValueType::Map => "map",
        ValueType::Set => "set",
    }
}

/// The table of a map's or set's entries and its two id columns.
fn entries(ty: ValueType) -> Option<(&'static str, &'static str)> {
    match ty {
        ValueType::Map => Some(("map_key_value_pairs", "map_key_id")),
        ValueType::Set => Some(("set_members", "set_key_id")),
        _ => None,
    }
}

/// A database error with its causes: tokio-postgres says only "db error"
/// at the top and keeps the server's message (a wrong password, say) below.
fn unavailable(e: impl std::error::Error) -> LogError {
    let mut text = format!("postgres: {e}");
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    LogError::Unavailable(text)
}

#[derive(Debug, Clone)]
pub struct PgOptions {
    /// A libpq-style URL or key-value string.
    pub url: String,
    /// Connections kept open (appends use one at a time; replays one each).
    pub pool_size: usize,
    /// How long to wait for a connection before a batch fails.
    pub timeout: Duration,
}

/// The PostgreSQL log.
pub struct PgLog {
    pool: Pool,
}

impl PgLog {
    /// Connects, checks the database answers, and applies the migrations.
    pub async fn connect(opts: &PgOptions) -> Result<PgLog, LogError> {
        let mut config: tokio_postgres::Config = opts
            .url
            .parse()
            .map_err(|e| LogError::Unavailable(format!("bad database URL: {e}")))?;
        config.connect_timeout(opts.timeout);
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(opts.pool_size.max(1))
            .wait_timeout(Some(opts.timeout))
            .create_timeout(Some(opts.timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(unavailable)?;
        let log = PgLog { pool };
        log.migrate().await?;
        Ok(log)
    }

    async fn migrate(&self) -> Result<(), LogError> {
        let mut client = self.pool.get().await.map_err(unavailable)?;
        let tx = client.transaction().await.map_err(unavailable)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(unavailable)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS kvs_schema_migrations (
                version INTEGER PRIMARY KEY,
                name TEXT NOT NULL,
                applied_at TIMESTAMP NOT NULL DEFAULT NOW())",
        )
        .await
        .map_err(unavailable)?;
        let applied: Vec<i32> = tx
            .query("SELECT version FROM kvs_schema_migrations", &[])
            .await
            .map_err(unavailable)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for (version, name, sql) in MIGRATIONS {
            if applied.contains(&version) {
                continue;
            }
            tx.batch_execute(sql).await.map_err(|e| {
                LogError::Unavailable(format!("migration {version} ({name}) failed: {e}"))
            })?;
            tx.execute(
                "INSERT INTO kvs_schema_migrations (version, name) VALUES ($1, $2)",
                &[&version, &name],
            )
            .await
            .map_err(unavailable)?;
            tracing::info!(version, name, "applied database migration");
        }
        tx.commit().await.map_err(unavailable)
    }

    /// A handle that streams the log while appends go on.
    pub fn reader(&self) -> PgReader {
        PgReader {
            pool: self.pool.clone(),
        }
    }
}

/// What a batch does to one key, all its transactions folded together.
#[derive(Debug)]
enum Net {
    /// Replace whatever the key held.
    Put(Value),
    /// Remove the key.
    Delete,
    /// Add to the int key's value in the database (the original's
    /// increments, when no put precedes them in the batch).
    Incr(i32),
}

/// A batch folded by value type: each key's net effect, and the reads to
/// record.
#[derive(Default)]
struct Folded {
    nets: [HashMap<Key, Net>; ValueType::ALL.len()],
    gets: [Vec<Key>; ValueType::ALL.len()],
}

fn fold(batch: &[Txn]) -> Folded {
    let mut f = Folded::default();
    for txn in batch {
        let nets = &mut f.nets[txn.value_type().index()];
        match txn {
            Txn::Put { key, value } => {
                nets.insert(key.clone(), Net::Put(value.clone()));
            }
            Txn::Delete { key, .. } => {
                nets.insert(key.clone(), Net::Delete);
            }
            Txn::IncrBy { key, by } => {
                let next = match nets.remove(key) {
                    None => Net::Incr(*by),
                    Some(Net::Incr(n)) => Net::Incr(n.wrapping_add(*by)),
                    Some(Net::Put(Value::Int(v))) => Net::Put(Value::Int(v.wrapping_add(*by))),
                    Some(Net::Delete) => Net::Put(Value::Int(*by)),
                    Some(Net::Put(other)) => Net::Put(other),
                };
                nets.insert(key.clone(), next);
            }
            Txn::Get { ty, key } => f.gets[ty.index()].push(key.clone()),
        }
    }
    f
}

impl Log for PgLog {
    async fn replay(
        &mut self,
        mut visit: impl FnMut(Txn) + Send + 'static,
    ) -> Result<ReplayStats, LogError> {
        let mut rx = self.reader().stream();
        let mut stats = ReplayStats::default();
        while let Some(txn) = rx.recv().await {
            visit(txn?);
            stats.records += 1;
        }
        Ok(stats)
    }

    async fn append(&mut self, batch: &[Txn], marks: &[WriterMark]) -> Result<(), LogError> {
        let folded = fold(batch);
        let mut client = self.pool.get().await.map_err(unavailable)?;
        let tx = client.transaction().await.map_err(unavailable)?;
        for ty in ValueType::ALL {
            write_type(&tx, ty, &folded.nets[ty.index()], &folded.gets[ty.index()]).await?;
        }
        if !marks.is_empty() {
            let mut latest: HashMap<&str, i64> = HashMap::new();
            for m in marks {
                let seq = i64::try_from(m.sequence).unwrap_or(i64::MAX);
                let e = latest.entry(m.writer.as_str()).or_insert(seq);
                *e = (*e).max(seq);
            }
            let (writers, seqs): (Vec<&str>, Vec<i64>) = latest.into_iter().unzip();
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO kvs_writers (writer_id, sequence)
                     SELECT * FROM unnest($1::text[], $2::int8[])
                     ON CONFLICT (writer_id) DO UPDATE
                     SET sequence = GREATEST(kvs_writers.sequence, EXCLUDED.sequence), updated_at = NOW()",
                )
                .await
                .map_err(unavailable)?;
            tx.execute(&stmt, &[&writers, &seqs])
                .await
                .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)
    }

    async fn recover(&mut self) -> Result<Vec<Txn>, LogError> {
        // A failed batch was rolled back (or, if its COMMIT landed, its
        // writer learns that through its mark): nothing to hand back here.
        let client = self.pool.get().await.map_err(unavailable)?;
        client.simple_query("SELECT 1").await.map_err(unavailable)?;
        Ok(Vec::new())
    }

    async fn writer_sequence(&mut self, writer: &Key) -> Result<u64, LogError> {
        let client = self.pool.get().await.map_err(unavailable)?;
        let row = client
            .query_opt(
                "SELECT sequence FROM kvs_writers WHERE writer_id = $1",
                &[&writer.as_str()],
            )
            .await
            .map_err(unavailable)?;
        Ok(row.map_or(0, |r| r.get::<_, i64>(0).max(0) as u64))
    }
}

/// Writes one value type's part of a folded batch.
async fn write_type(
    tx: &deadpool_postgres::Transaction<'_>,
    ty: ValueType,
    nets: &HashMap<Key, Net>,
    gets: &[Key],
) -> Result<(), LogError> {
    if nets.is_empty() && gets.is_empty() {
        return Ok(());
    }
    let p = prefix(ty);

    let deleted: Vec<&str> = nets
        .iter()
        .filter(|(_, n)| matches!(n, Net::Delete))
        .map(|(k, _)| k.as_str())
        .collect();
    if !deleted.is_empty() {
        if let Some((table, key_col)) = entries(ty) {
            exec(tx, &format!("DELETE FROM {table} WHERE {key_col} IN (SELECT id FROM {p}_keys WHERE key = ANY($1))"),
                &[&deleted],
            )
            .await?;
        }
        exec(
            tx,
            &format!("DELETE FROM {p}_keys WHERE key = ANY($1)"),
            &[&deleted],
        )
        .await?;
    }

    // Ids of every key that gets a row, created where missing.
    let live: Vec<&str> = nets
        .iter()
        .filter(|(_, n)| !matches!(n, Net::Delete))
        .map(|(k, _)| k.as_str())
        .chain(
            gets.iter()
                .filter(|k| !matches!(nets.get(*k), Some(Net::Delete)))
                .map(Key::as_str),
        )
        .collect();
    if live.is_empty() {
        return Ok(());
    }
    let stmt = tx
        .prepare_cached(&format!(
            "WITH created AS (
                 INSERT INTO {p}_keys (key) SELECT unnest($1::text[]) ON CONFLICT (key) DO NOTHING RETURNING id, key)
             SELECT id, key FROM created UNION ALL SELECT id, key FROM {p}_keys WHERE key = ANY($1)"
        ))
        .await
        .map_err(unavailable)?;
    let ids: HashMap<String, i32> = tx
        .query(&stmt, &[&live])
        .await
        .map_err(unavailable)?
        .into_iter()
        .map(|r| (r.get(1), r.get(0)))
        .collect();
    let id = |k: &Key| {
        ids.get(k.as_str())
            .copied()
            .ok_or_else(|| LogError::Unavailable(format!("postgres: no id for key {k}")))
    };

    let puts: Vec<(&Key, &Value)> = nets
        .iter()
        .filter_map(|(k, n)| match n {
            Net::Put(v) => Some((k, v)),
            _ => None,
        })
        .collect();
    if !puts.is_empty() {
        let put_ids = puts
            .iter()
            .map(|(k, _)| id(k))
            .collect::<Result<Vec<i32>, _>>()?;
        if let Some((table, key_col)) = entries(ty) {
            exec(
                tx,
                &format!("DELETE FROM {table} WHERE {key_col} = ANY($1)"),
                &[&put_ids],
            )
            .await?;
        }
        exec(
            tx,
            &format!("DELETE FROM {p}_transactions WHERE key_id = ANY($1)"),
            &[&put_ids],
        )
        .await?;
        insert_puts(tx, ty, &put_ids, &puts).await?;
    }

    let incrs: Vec<(i32, i32)> = nets
        .iter()
        .filter_map(|(k, n)| match n {
            Net::Incr(by) => Some(id(k).map(|id| (id, *by))),
            _ => None,
        })
        .collect::<Result<_, _>>()?;
    if !incrs.is_empty() {
        let (kids, bys): (Vec<i32>, Vec<i32>) = incrs.into_iter().unzip();
        exec(
            tx,
            &format!(
                "INSERT INTO {p}_transactions (transaction_type, key_id, value)
                 SELECT '{INCR_BY}', k, v FROM unnest($1::int4[], $2::int4[]) AS u(k, v)"
            ),
            &[&kids, &bys],
        )
        .await?;
    }

    let get_ids = gets
        .iter()
        .filter(|k| !matches!(nets.get(*k), Some(Net::Delete)))
        .map(id)
        .collect::<Result<Vec<i32>, _>>()?;
    if !get_ids.is_empty() {
        exec(
            tx,
            &format!(
                "INSERT INTO {p}_transactions (transaction_type, key_id)
                 SELECT '{GET}', k FROM unnest($1::int4[]) AS u(k)"
            ),
            &[&get_ids],
        )
        .await?;
    }
    Ok(())
}

/// Runs one prepared (and cached) statement.
async fn exec(
    tx: &deadpool_postgres::Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, LogError> {
    let stmt = tx.prepare_cached(sql).await.map_err(unavailable)?;
    tx.execute(&stmt, params).await.map_err(unavailable)
}

/// Inserts one put row per key (and, for maps and sets, their entries).
async fn insert_puts(
    tx: &deadpool_postgres::Transaction<'_>,
    ty: ValueType,
    ids: &[i32],
    puts: &[(&Key, &Value)],
) -> Result<(), LogError> {
    let p = prefix(ty);
    let scalar = |array: &str| {
        format!(
            "INSERT INTO {p}_transactions (transaction_type, key_id, value)
             SELECT '{PUT}', k, v FROM unnest($1::int4[], $2::{array}) AS u(k, v)"
        )
    };
    let values = puts.iter().map(|(_, v)| *v);
    match ty {
        ValueType::Int => {
            let v: Vec<i32> = values
                .map(|v| if let Value::Int(x) = v { *x } else { 0 })
                .collect();
            exec(tx, &scalar("int4[]"), &[&ids, &v]).await?;
        }
        ValueType::Uint => {
            let v: Vec<i64> = values
                .map(|v| {
                    if let Value::Uint(x) = v {
                        i64::from(*x)
                    } else {
                        0
                    }
                })
                .collect();
            exec(tx, &scalar("int8[]"), &[&ids, &v]).await?;
        }
        ValueType::Float => {
            let v: Vec<f32> = values
                .map(|v| if let Value::Float(x) = v { *x } else { 0.0 })
                .collect();
            exec(tx, &scalar("float4[]"), &[&ids, &v]).await?;
        }
        ValueType::Str => {
            let v: Vec<&str> = values
                .map(|v| {
                    if let Value::Str(s) = v {
                        s.as_str()
                    } else {
                        ""
                    }
                })
                .collect();
            exec(tx, &scalar("text[]"), &[&ids, &v]).await?;
        }
        ValueType::Map | ValueType::Set => {
            let stmt = tx
                .prepare_cached(&format!(
                    "INSERT INTO {p}_transactions (transaction_type, key_id)
                     SELECT '{PUT}', k FROM unnest($1::int4[]) AS u(k) RETURNING id, key_id"
                ))
                .await
                .map_err(unavailable)?;
            let txn_of: HashMap<i32, i32> = tx
                .query(&stmt, &[&ids])
                .await
                .map_err(unavailable)?
                .into_iter()
                .map(|r| (r.get(1), r.get(0)))
                .collect();
            let (mut txn_ids, mut key_ids, mut firsts, mut seconds) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for (key_id, value) in ids.iter().zip(values) {
                let txn_id = txn_of[key_id];
                match value {
                    Value::Map(m) => {
                        for (field, v) in m {
                            txn_ids.push(txn_id);
                            key_ids.push(*key_id);
                            firsts.push(field.as_str());
                            seconds.push(v.as_str());
                        }
                    }
                    Value::Set(s) => {
                        for member in s {
                            txn_ids.push(txn_id);
                            key_ids.push(*key_id);
                            firsts.push(member.as_str());
                        }
                    }
                    _ => {}
                }
            }
            if ty == ValueType::Map {
                exec(
                    tx,
                    "INSERT INTO map_key_value_pairs (transaction_id, map_key_id, key, value)
                     SELECT * FROM unnest($1::int4[], $2::int4[], $3::text[], $4::text[])",
                    &[&txn_ids, &key_ids, &firsts, &seconds],
                )
                .await?;
            } else {
                exec(
                    tx,
                    "INSERT INTO set_members (transaction_id, set_key_id, member)
                     SELECT * FROM unnest($1::int4[], $2::int4[], $3::text[])",
                    &[&txn_ids, &key_ids, &firsts],
                )
                .await?;
            }
        }
    }
    Ok(())
}

/// Streams the PostgreSQL log; see [`PgLog::reader`].
#[derive(Clone)]
pub struct PgReader {
    pool: Pool,
}

impl PgReader {
    /// Every live transaction, type by type, each type in id order, through
    /// a channel that a task fills as rows arrive: a large log is never held
    /// in memory at once.
    pub fn stream(&self) -> mpsc::Receiver<Result<Txn, LogError>> {
        let (tx, rx) = mpsc::channel(1024);
        let pool = self.pool.clone();
        tokio::spawn(async move {
            if let Err(e) = read_all(&pool, &tx).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        rx
    }
}

type Sender = mpsc::Sender<Result<Txn, LogError>>;

fn bad_row(table: String, id: i32, reason: impl Into<String>) -> LogError {
    LogError::BadRow {
        table,
        id: i64::from(id),
        reason: reason.into(),
    }
}

async fn read_all(pool: &Pool, out: &Sender) -> Result<(), LogError> {
    let client = pool.get().await.map_err(unavailable)?;
    for ty in ValueType::ALL {
        let p = prefix(ty);
        let table = format!("{p}_transactions");
        let sql = match entries(ty) {
            None => format!(
                "SELECT t.id, k.key, t.transaction_type, t.value
                 FROM {p}_transactions t JOIN {p}_keys k ON k.id = t.key_id ORDER BY t.id"
            ),
            Some((entries, _)) => {
                let cols = if ty == ValueType::Map {
                    "e.key, e.value"
                } else {
                    "e.member, NULL::text"
                };
                format!(
                    "SELECT t.id, k.key, t.transaction_type, {cols}
                     FROM {p}_transactions t JOIN {p}_keys k ON k.id = t.key_id
                     LEFT JOIN {entries} e ON e.transaction_id = t.id ORDER BY t.id"
                )
            }
        };
        let rows = client
            .query_raw(&sql, std::iter::empty::<i32>())
            .await
            .map_err(unavailable)?;
        let mut rows = std::pin::pin!(rows);
        // Rows of one map or set put arrive together; gather them.
        let mut open: Option<(i32, Key, Value)> = None;
        while let Some(row) = rows.try_next().await.map_err(unavailable)? {
            let id: i32 = row.get(0);
            let key: String = row.get(1);
            let kind: String = row.get(2);
            let key = Key::parse(&key)
                .map_err(|e| bad_row(table.clone(), id, format!("bad key {key:?}: {e}")))?;
            if entries(ty).is_some() {
                if let Some((open_id, _, _)) = &open
                    && *open_id != id
                {
                    let (_, k, v) = open.take().expect("checked");
                    send(out, Txn::Put { key: k, value: v }).await?;
                }
                match kind.as_str() {
                    PUT => {
                        let first: Option<String> = row.get(3);
                        let second: Option<String> = row.get(4);
                        let (_, _, value) = open.get_or_insert_with(|| {
                            let empty = if ty == ValueType::Map {
                                Value::Map(MapValue::new())
                            } else {
                                Value::Set(SetValue::new())
                            };
                            (id, key.clone(), empty)
                        });
                        match (value, first) {
                            (Value::Map(m), Some(f)) => {
                                m.insert(f, second.unwrap_or_default());
                            }
                            (Value::Set(s), Some(m)) => {
                                s.insert(m);
                            }
                            _ => {}
                        }
                    }
                    other => send(out, plain(ty, key, other, None, &table, id)?).await?,
                }
                continue;
            }
            let value = match ty {
                ValueType::Int => row.get::<_, Option<i32>>(3).map(Value::Int),
                ValueType::Uint => match row.get::<_, Option<i64>>(3) {
                    Some(v) => Some(Value::Uint(u32::try_from(v).map_err(|_| {
                        bad_row(table.clone(), id, format!("uint value {v} out of range"))
                    })?)),
                    None => None,
                },
                ValueType::Float => row.get::<_, Option<f32>>(3).map(Value::Float),
                _ => row.get::<_, Option<String>>(3).map(Value::Str),
            };
            send(out, plain(ty, key, &kind, value, &table, id)?).await?;
        }
        if let Some((_, k, v)) = open.take() {
            send(out, Txn::Put { key: k, value: v }).await?;
        }
    }
    Ok(())
}

/// A row as a transaction, by its `transaction_type`.
fn plain(
    ty: ValueType,
    key: Key,
    kind: &str,
    value: Option<Value>,
    table: &str,
    id: i32,
) -> Result<Txn, LogError> {
    let bad = |reason: String| bad_row(table.to_owned(), id, reason);
    Ok(match kind {
        PUT => Txn::Put {
            key,
            value: value.ok_or_else(|| bad("put without a value".into()))?,
        },
        DEL => Txn::Delete { ty, key },
        GET => Txn::Get { ty, key },
        INCR if ty == ValueType::Int => Txn::IncrBy { key, by: 1 },
        INCR_BY if ty == ValueType::Int => match value {
            Some(Value::Int(by)) => Txn::IncrBy { key, by },
            _ => return Err(bad("increment without an amount".into())),
        },
        other => return Err(bad(format!("unknown transaction type {other:?}"))),
    })
}

/// Sends one transaction; a receiver that went away ends the replay.
async fn send(out: &Sender, txn: Txn) -> Result<(), LogError> {
    out.send(Ok(txn))
        .await
        .map_err(|_| LogError::Unavailable("replay reader went away".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> Key {
        Key::parse(s).unwrap()
    }

    #[test]
    fn folding_keeps_each_keys_net_effect() {
        let f = fold(&[
            Txn::Put {
                key: key("a"),
                value: Value::Int(1),
            },
            Txn::IncrBy {
                key: key("a"),
                by: 2,
            },
            Txn::IncrBy {
                key: key("b"),
                by: 2,
            },
            Txn::IncrBy {
                key: key("b"),
                by: 3,
            },
            Txn::Delete {
                ty: ValueType::Int,
                key: key("c"),
            },
            Txn::IncrBy {
                key: key("c"),
                by: 4,
            },
            Txn::Put {
                key: key("d"),
                value: Value::Int(1),
            },
            Txn::Delete {
                ty: ValueType::Int,
                key: key("d"),
            },
            Txn::Get {
                ty: ValueType::Int,
                key: key("a"),
            },
        ]);
        let nets = &f.nets[ValueType::Int.index()];
        assert!(matches!(nets[&key("a")], Net::Put(Value::Int(3))));
        assert!(matches!(nets[&key("b")], Net::Incr(5)));
        assert!(matches!(nets[&key("c")], Net::Put(Value::Int(4))));
        assert!(matches!(nets[&key("d")], Net::Delete));
        assert_eq!(f.gets[ValueType::Int.index()], [key("a")]);
    }
}
