//! The PostgreSQL backend: the original service's per-type tables.
//!
//! A batch is one database transaction with one COMMIT, however many
//! requests it carries. Within it, each key's transactions are folded into
//! their net effect first. A put deletes the key's earlier transactions and
//! a delete removes the key with all of them, so the tables hold about the
//! live set: replay time follows the number of live keys, not the history.
//!
//! # The write path: one round trip per batch
//!
//! The committer has one batch in flight at a time, so the time a batch
//! takes bounds the log's throughput, and unless the database is on the
//! same machine that time is mostly network round trips. A batch is
//! therefore sent whole and answered in one round trip: `BEGIN`, the
//! lease's fence, one statement per value type it touches, one for the
//! writer marks, `COMMIT` (plus, on a connection's first use of a
//! statement, one round trip that prepares all those it lacks).
//!
//! - A type's statement (`type_sql`) does all of that type's work with
//!   data-modifying CTEs over arrays (`unnest`, never a row at a time):
//!   delete the deleted keys (and their map or set entries; their
//!   transactions go by `ON DELETE CASCADE`), create the missing keys,
//!   delete the rows that a put supersedes (and their entries), insert the
//!   new rows (and entries). It names keys by text, so nothing waits for
//!   ids to come back to the client.
//! - Every part of one statement sees the same snapshot, taken before the
//!   statement, and none sees another's changes; that is what keeps it
//!   correct. The DELETE of superseded rows cannot see, so cannot remove,
//!   the rows the same statement inserts. The ids of keys the statement
//!   creates come from the INSERT's `RETURNING`, those of existing keys
//!   from the table (two disjoint sets, as the INSERT skips existing keys).
//!   The keys deleted and the keys written are disjoint too: a batch folds
//!   each key to one effect. Foreign keys are checked, and cascades run, at
//!   the end of the statement, when all of it is visible.
//! - tokio-postgres sends a request when its future is first polled, and
//!   the server runs requests in the order they arrive. `transaction` polls
//!   `BEGIN` and each statement once, in order, before awaiting any answer,
//!   then sends `COMMIT`, or `ROLLBACK` if a request failed before it could
//!   be sent. A statement the server rejects aborts the transaction, and
//!   the `COMMIT` behind it then rolls back.
//! - Statements are prepared once per connection (`prepare_cached`); a
//!   batch only binds and executes them.
//!
//! # The write lease
//!
//! One row (`kvs_lease`, migration 0009) holds the lease: its holder, URL,
//! epoch and expiry, all by the database's clock. [`PgLease`] takes, renews
//! or reads it in one statement, on connections of its own. A batch's first
//! statement is the fence (`kvs_lease_fence`), which refuses it (SQLSTATE
//! `KV001`, [`LogError::Fenced`]) unless its epoch is the current one, or,
//! for epoch 0, unless nobody holds the lease; the lock it holds until the
//! COMMIT orders every batch against every take, so the fence holds for
//! any number of txn-servers in front of one database.
//!
//! # Revisions
//!
//! Each transaction row keeps the revision of its change (a map's or set's
//! entries, that of the row they belong to); folding keeps, for each key,
//! the revision of its last change. The highest revision given is kept in
//! the one row of `kvs_revision_head`, raised by the same pipeline that
//! writes the batch (one more statement), so that it survives the deletes
//! that leave no row. Rows written without a revision (by writers of the
//! original protocol, through `WriteTransactions`) hold NULL; a replay
//! numbers them after the stored head in the order it reads them, anew at
//! each replay, so their revisions may differ from one replay to the next
//! once later batches have raised the head. Migration 0005 gave the rows
//! that were there before revisions 1..N in replay order.
//!
//! # Expiry
//!
//! A key's deadline is on its row in `{type}_keys` (`expires_at`, migration
//! 0006), which lives as long as the key. A batch updates it only for the
//! keys whose `Txn::Expiry` it carries (kvs-server logs one whenever a put
//! drops a deadline), after the statements that create the keys, so keys
//! without a TTL cost no statement; a delete takes the row, and the
//! deadline, with it. A replay reads each type's deadlines after its rows.
//!
//! # Creation
//!
//! A put deletes the key's earlier rows, the one that created it among
//! them, so the revision a key was created at is kept on its row too
//! (`created_revision`, migration 0007). The statement that creates key
//! rows fills it in; for a key whose row was there already it changes only
//! where the batch deleted the key and made it again, or where it was
//! unknown (a row made by a read of an absent key). A replay sends a
//! `Txn::Created` after the key's first row when that row's revision is
//! later: always a put's row, since a put supersedes everything before it.
//!
//! # The change stream
//!
//! Followers read the latest changes from `kvs_changes` (migration 0008),
//! which each batch fills in its own transaction; see [`changes`].

mod changes;

use std::collections::HashMap;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::Poll;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use futures_util::TryStreamExt;
use futures_util::future::{
    BoxFuture, FutureExt, MaybeDone, TryFutureExt, join_all, maybe_done, try_join_all,
};
use kvs_core::change::UNSTAMPED;
use kvs_core::value::{MapValue, SetValue};
use kvs_core::{Change, Key, Txn, Value, ValueType};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{FromSql, ToSql, Type, WasNull};

use crate::stream::Sink;
use crate::{
    ErrorKind, LeaseAsk, LeaseState, LogError, LogLease, LogReader, ReplayStats, ReplayStream,
    WriterLog, WriterMark,
};

pub use changes::{PgFeed, TRIM_EVERY};

/// The migrations, applied in order at start-up.
const MIGRATIONS: [(i32, &str, &str); 9] = [
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
    (
        4,
        "entry indexes",
        include_str!("../../../migrations/0004_entry_indexes.sql"),
    ),
    (
        5,
        "revisions",
        include_str!("../../../migrations/0005_revisions.sql"),
    ),
    (
        6,
        "expiry",
        include_str!("../../../migrations/0006_expiry.sql"),
    ),
    (
        7,
        "creation",
        include_str!("../../../migrations/0007_creation.sql"),
    ),
    (
        8,
        "changes",
        include_str!("../../../migrations/0008_changes.sql"),
    ),
    (
        9,
        "lease",
        include_str!("../../../migrations/0009_lease.sql"),
    ),
];

/// Connections for followers' reads of `kvs_changes`: each holds one only
/// for one short query.
const FOLLOW_POOL_SIZE: usize = 4;

/// Connections of [`PgLease`]: its asks are one short statement each, a
/// few a second.
const LEASE_POOL_SIZE: usize = 2;

/// An arbitrary constant that serialises migrations between txn-servers
/// starting at once.
const MIGRATION_LOCK: i64 = 0x6b76_735f_6d69_6772;

const PUT: &str = "TransactionPut";
const GET: &str = "TransactionGet";
const DEL: &str = "TransactionDel";
const INCR: &str = "TransactionIncr";
const INCR_BY: &str = "TransactionIncrBy";
/// One set member added or map field set; the row has that one entry.
const PUT_ENTRY: &str = "TransactionPutEntry";
/// One set member or map field removed; the row's one entry names it.
const DEL_ENTRY: &str = "TransactionDelEntry";

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

/// The SQLSTATE of `kvs_lease_fence` (migration 0009) refusing a batch.
const FENCED: &str = "KV001";

/// A database error with its causes (tokio-postgres says only "db error"
/// at the top and keeps the server's message, a wrong password say,
/// below), of the kind its SQLSTATE tells. One without a SQLSTATE never
/// reached the server: a connection refused or lost, a timeout.
fn db_error(e: impl std::error::Error + 'static) -> LogError {
    let top: &(dyn std::error::Error + 'static) = &e;
    let pg = std::iter::successors(Some(top), |e| e.source())
        .find_map(|e| e.downcast_ref::<tokio_postgres::Error>());
    // The fence's own words, which start with "fenced:".
    if let Some(db) = pg.and_then(tokio_postgres::Error::as_db_error)
        && db.code().code() == FENCED
    {
        return LogError::Fenced(db.message().to_owned());
    }
    let message = format!("postgres: {}", kvs_core::error::chain(&e));
    let state = pg.and_then(tokio_postgres::Error::code);
    LogError::new(
        state.map_or(ErrorKind::Unavailable, sql_state_kind),
        message,
    )
}

/// What a SQLSTATE (PostgreSQL's "Error Codes" appendix) says of trying
/// again.
fn sql_state_kind(state: &SqlState) -> ErrorKind {
    let code = state.code();
    if code == FENCED {
        return ErrorKind::Fenced;
    }
    match code.get(..2).unwrap_or_default() {
        // A connection lost, a serialization failure or deadlock, a full
        // disk or too many connections, a lock not available, a server
        // shutting down or starting up, an I/O error.
        "08" | "40" | "53" | "55" | "57" | "58" => ErrorKind::Unavailable,
        // A read-only transaction: a standby, until a failover ends.
        "25" if code == "25006" => ErrorKind::Unavailable,
        // A wrong password or user, a database that does not exist, a
        // missing privilege or a schema changed under KVS.
        "28" | "3D" | "42" => ErrorKind::Misconfigured,
        "XX" if code == "XX001" || code == "XX002" => ErrorKind::DataLoss,
        _ => ErrorKind::Internal,
    }
}

#[derive(Debug, Clone)]
pub struct PgOptions {
    /// A libpq-style URL or key-value string.
    pub url: String,
    /// Connections for appends (the committer uses one at a time).
    pub pool_size: usize,
    /// Connections for replays, one each, in a pool of their own: replays
    /// that their clients do not read hold theirs, and must not take those
    /// that appends need.
    pub replay_pool_size: usize,
    /// How long to wait for a connection before a batch fails.
    pub timeout: Duration,
    /// The revisions whose changes `kvs_changes` keeps for followers.
    pub follow_keep: u64,
}

/// The PostgreSQL log.
pub struct PgLog {
    pool: Pool,
    /// For [`PgReader`]s only.
    replay_pool: Pool,
    /// For [`PgFeed`]s only.
    follow_pool: Pool,
    /// Where the feed's listener connects.
    config: tokio_postgres::Config,
    follow_keep: u64,
    /// Started by the first call of [`WriterLog::feed`].
    feed: OnceLock<PgFeed>,
    /// For [`PgLease`]s only.
    lease_pool: Pool,
}

impl PgLog {
    /// Connects, checks the database answers, and applies the migrations.
    pub async fn connect(opts: &PgOptions) -> Result<PgLog, LogError> {
        let mut config: tokio_postgres::Config = opts
            .url
            .parse()
            .map_err(|e| LogError::Misconfigured(format!("bad database URL: {e}")))?;
        config.connect_timeout(opts.timeout);
        let pool = |size: usize| {
            let manager = Manager::from_config(
                config.clone(),
                NoTls,
                ManagerConfig {
                    recycling_method: RecyclingMethod::Fast,
                },
            );
            Pool::builder(manager)
                .max_size(size.max(1))
                .wait_timeout(Some(opts.timeout))
                .create_timeout(Some(opts.timeout))
                .runtime(Runtime::Tokio1)
                .build()
                .map_err(db_error)
        };
        let log = PgLog {
            pool: pool(opts.pool_size)?,
            replay_pool: pool(opts.replay_pool_size)?,
            follow_pool: pool(FOLLOW_POOL_SIZE)?,
            lease_pool: pool(LEASE_POOL_SIZE)?,
            config: config.clone(),
            follow_keep: opts.follow_keep,
            feed: OnceLock::new(),
        };
        log.migrate().await?;
        Ok(log)
    }

    async fn migrate(&self) -> Result<(), LogError> {
        let mut client = self.pool.get().await.map_err(db_error)?;
        let tx = client.transaction().await.map_err(db_error)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(db_error)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS kvs_schema_migrations (
                version INTEGER PRIMARY KEY,
                name TEXT NOT NULL,
                applied_at TIMESTAMP NOT NULL DEFAULT NOW())",
        )
        .await
        .map_err(db_error)?;
        let applied = tx
            .query("SELECT version FROM kvs_schema_migrations", &[])
            .await
            .map_err(db_error)?
            .iter()
            .map(|r| r.try_get::<_, i32>(0))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| LogError::BadTable {
                table: "kvs_schema_migrations".into(),
                reason: format!("column version {}", explain(&e)),
            })?;
        for (version, name, sql) in MIGRATIONS {
            if applied.contains(&version) {
                continue;
            }
            tx.batch_execute(sql).await.map_err(|e| match db_error(e) {
                e if e.is_temporary() => e,
                e => LogError::Misconfigured(format!("migration {version} ({name}) failed: {e}")),
            })?;
            tx.execute(
                "INSERT INTO kvs_schema_migrations (version, name) VALUES ($1, $2)",
                &[&version, &name],
            )
            .await
            .map_err(db_error)?;
            tracing::info!(version, name, "applied database migration");
        }
        tx.commit().await.map_err(db_error)
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
    /// Change single members or fields of the map or set the database
    /// holds: each one's last state, a field's value or `None` for one
    /// removed (a set's members present are `Some("")`), and the revision
    /// of that last change.
    Entries(HashMap<String, (Option<String>, u64)>),
}

/// A batch folded by value type: each key's net effect with the revision of
/// its last change, and the reads to record with theirs.
#[derive(Default)]
struct Folded {
    nets: [HashMap<Key, (Net, u64)>; ValueType::ALL.len()],
    gets: [Vec<(Key, u64)>; ValueType::ALL.len()],
    /// Each key's expiry as the batch leaves it, for keys whose expiry it
    /// sets or drops (kvs-server says so whenever a put drops one).
    expiries: [HashMap<Key, Option<u64>>; ValueType::ALL.len()],
    /// Each key's creation as the batch leaves it, for keys it deletes or
    /// makes a value of.
    created: [HashMap<Key, Creation>; ValueType::ALL.len()],
}

/// What a batch says of when a key was created.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Creation {
    /// It deleted the key and did not make it again.
    Gone,
    /// The key exists from `revision` on if it did not exist before the
    /// batch; `again`: the batch deleted it, then made it again at
    /// `revision`, whatever was before.
    At { revision: u64, again: bool },
}

impl Creation {
    /// What a change at `revision` that leaves the key with a value makes
    /// of the batch's creation so far.
    fn made(created: &mut HashMap<Key, Creation>, key: &Key, revision: u64) {
        let again = match created.get(key) {
            Some(Creation::At { .. }) => return,
            Some(Creation::Gone) => true,
            None => false,
        };
        created.insert(key.clone(), Creation::At { revision, again });
    }

    /// The revision the key was created at, if the batch made it.
    fn revision(created: &HashMap<Key, Creation>, key: &str) -> Option<i64> {
        match created.get(key) {
            Some(Creation::At { revision, .. }) => revision_column(*revision),
            _ => None,
        }
    }
}

fn fold(batch: &[Change]) -> Folded {
    let mut f = Folded::default();
    for Change { revision, txn } in batch {
        let revision = *revision;
        let nets = &mut f.nets[txn.value_type().index()];
        let expiries = &mut f.expiries[txn.value_type().index()];
        let created = &mut f.created[txn.value_type().index()];
        match txn {
            Txn::Put { key, .. }
            | Txn::IncrBy { key, .. }
            | Txn::SetMember {
                key, present: true, ..
            }
            | Txn::MapField {
                key,
                value: Some(_),
                ..
            } => Creation::made(created, key, revision),
            Txn::Delete { key, .. } | Txn::Expire { key, .. } => {
                created.insert(key.clone(), Creation::Gone);
            }
            // Said outright: it holds whatever was before.
            Txn::Created { key, revision, .. } => {
                let (revision, again) = (*revision, true);
                created.insert(key.clone(), Creation::At { revision, again });
            }
            _ => {}
        }
        match txn {
            Txn::Put { key, value } => {
                nets.insert(key.clone(), (Net::Put(value.clone()), revision));
                // An expiry of its own comes after it, if it has one.
                expiries.remove(key);
            }
            Txn::Delete { key, .. } | Txn::Expire { key, .. } => {
                nets.insert(key.clone(), (Net::Delete, revision));
                // The key's row goes, and its expiry with it.
                expiries.remove(key);
            }
            Txn::Expiry { key, at_ms, .. } => {
                expiries.insert(key.clone(), *at_ms);
            }
            Txn::Created { .. } => {}
            Txn::IncrBy { key, by } => {
                let next = match nets.remove(key).map(|(net, _)| net) {
                    None => Net::Incr(*by),
                    Some(Net::Incr(n)) => Net::Incr(n.wrapping_add(*by)),
                    Some(Net::Put(Value::Int(v))) => Net::Put(Value::Int(v.wrapping_add(*by))),
                    Some(Net::Delete) => Net::Put(Value::Int(*by)),
                    // Not an int key's net: increments are of int keys only.
                    Some(other @ (Net::Put(_) | Net::Entries(_))) => other,
                };
                nets.insert(key.clone(), (next, revision));
            }
            Txn::Get { ty, key } => f.gets[ty.index()].push((key.clone(), revision)),
            Txn::SetMember {
                key,
                member,
                present,
            } => {
                let state = present.then(String::new);
                fold_entry(nets, ValueType::Set, key, member, state, revision)
            }
            Txn::MapField { key, field, value } => {
                fold_entry(nets, ValueType::Map, key, field, value.clone(), revision)
            }
        }
    }
    f
}

/// Folds the change of one member or field (`state` as in [`Net::Entries`])
/// of `revision` into what the batch does to its map or set key.
fn fold_entry(
    nets: &mut HashMap<Key, (Net, u64)>,
    ty: ValueType,
    key: &Key,
    name: &str,
    state: Option<String>,
    revision: u64,
) {
    let name = name.to_owned();
    match nets.get_mut(key) {
        Some((Net::Put(Value::Set(set)), last)) => {
            if state.is_some() {
                set.insert(name);
            } else {
                set.remove(&name);
            }
            *last = revision;
        }
        Some((Net::Put(Value::Map(map)), last)) => {
            match state {
                Some(v) => map.insert(name, v),
                None => map.remove(&name),
            };
            *last = revision;
        }
        Some((Net::Entries(entries), last)) => {
            entries.insert(name, (state, revision));
            *last = revision;
        }
        // Removing from a key the batch deleted leaves it deleted; adding
        // makes a new value of that one entry.
        Some((Net::Delete, _)) if state.is_none() => {}
        Some((Net::Delete, _)) => {
            let value = match ty {
                ValueType::Map => Value::Map([(name, state.unwrap_or_default())].into()),
                _ => Value::Set([name].into()),
            };
            nets.insert(key.clone(), (Net::Put(value), revision));
        }
        _ => {
            let entries = [(name, (state, revision))].into();
            nets.insert(key.clone(), (Net::Entries(entries), revision));
        }
    }
}

/// A revision as a column holds it: NULL for none.
fn revision_column(revision: u64) -> Option<i64> {
    (revision != UNSTAMPED).then(|| i64::try_from(revision).unwrap_or(i64::MAX))
}

impl WriterLog for PgLog {
    type Reader = PgReader;

    /// Streams the log while appends go on, on connections of its own
    /// (`replay_pool_size` of them, shared by its clones).
    fn reader(&self) -> PgReader {
        PgReader {
            pool: self.replay_pool.clone(),
            strict: false,
        }
    }

    type Feed = PgFeed;

    /// Reads `kvs_changes` on connections of its own; the first call
    /// starts the one listener its clones share.
    fn feed(&self) -> PgFeed {
        self.feed
            .get_or_init(|| self.start_feed(self.follow_pool.clone()))
            .clone()
    }

    type Lease = PgLease;

    /// Asks on connections of its own: a renewal never waits behind a batch.
    fn lease(&self) -> PgLease {
        PgLease {
            pool: self.lease_pool.clone(),
        }
    }

    async fn append_marked(
        &mut self,
        batch: &[Change],
        marks: &[WriterMark],
        epoch: u64,
    ) -> Result<(), LogError> {
        let folded = fold(batch);
        // First: the batch's transaction holds the fence until it commits.
        let mut writes = vec![write_fence(epoch)];
        writes.extend(
            ValueType::ALL
                .into_iter()
                .filter_map(|ty| write_type(ty, &folded, ty.index())),
        );
        writes.extend(
            [ValueType::Map, ValueType::Set]
                .into_iter()
                .filter_map(|ty| write_entries(ty, &folded, ty.index())),
        );
        // After the statements that create the keys they update.
        writes.extend(
            ValueType::ALL
                .into_iter()
                .filter_map(|ty| write_expiries(ty, &folded.expiries[ty.index()])),
        );
        if !marks.is_empty() {
            writes.push(write_marks(marks));
        }
        if let Some(head) = batch.iter().map(|c| c.revision).max()
            && head != UNSTAMPED
        {
            writes.push(write_head(head));
        }
        writes.extend(changes::writes(batch, self.follow_keep)?);
        let client = self.pool.get().await.map_err(db_error)?;
        transaction(&client, &writes).await
    }

    /// A failed batch was rolled back, or its COMMIT landed and its writers
    /// learn that through their marks: all there is to do is to see the
    /// database answer again.
    async fn recover(&mut self) -> Result<(), LogError> {
        let client = self.pool.get().await.map_err(db_error)?;
        client.simple_query("SELECT 1").await.map_err(db_error)?;
        Ok(())
    }

    async fn writer_sequence(&mut self, writer: &Key) -> Result<u64, LogError> {
        let client = self.pool.get().await.map_err(db_error)?;
        let row = client
            .query_opt(
                "SELECT sequence FROM kvs_writers WHERE writer_id = $1",
                &[&writer.as_str()],
            )
            .await
            .map_err(db_error)?;
        match row {
            None => Ok(0),
            Some(row) => row
                .try_get::<_, i64>(0)
                .map(|seq| seq.max(0) as u64)
                .map_err(|e| LogError::BadTable {
                    table: "kvs_writers".into(),
                    reason: format!("column sequence {}", explain(&e)),
                }),
        }
    }

    async fn forget_writers(&mut self, idle: Duration) -> Result<u64, LogError> {
        let client = self.pool.get().await.map_err(db_error)?;
        client
            .execute(
                "DELETE FROM kvs_writers WHERE updated_at < NOW() - make_interval(secs => $1)",
                &[&idle.as_secs_f64()],
            )
            .await
            .map_err(db_error)
    }
}

/// A row that a batch adds to a value type's transactions table.
enum Row<'a> {
    Put(&'a Value),
    IncrBy(i32),
    Get,
}

impl Row<'_> {
    /// Its `transaction_type`.
    fn kind(&self) -> &'static str {
        match self {
            Row::Put(_) => PUT,
            Row::IncrBy(_) => INCR_BY,
            Row::Get => GET,
        }
    }
}

type Param<'a> = Box<dyn ToSql + Sync + Send + 'a>;

/// One statement of a batch, with its parameters.
struct Write<'a> {
    sql: String,
    params: Vec<Param<'a>>,
}

/// One value type's part of a folded batch, as one `type_sql` statement;
/// `None` when the batch does not touch the type.
fn write_type<'a>(ty: ValueType, folded: &'a Folded, i: usize) -> Option<Write<'a>> {
    let (nets, gets, created) = (&folded.nets[i], &folded.gets[i], &folded.created[i]);
    let deleted: Vec<&str> = nets
        .iter()
        .filter(|(_, (n, _))| matches!(n, Net::Delete))
        .map(|(k, _)| k.as_str())
        .collect();
    // Every key that is not deleted gets a row: its put or increment, and
    // one per read.
    let rows: Vec<(&str, Row, u64)> = nets
        .iter()
        .filter_map(|(k, (n, revision))| match n {
            Net::Put(v) => Some((k.as_str(), Row::Put(v), *revision)),
            Net::Incr(by) => Some((k.as_str(), Row::IncrBy(*by), *revision)),
            Net::Delete | Net::Entries(_) => None,
        })
        .chain(
            gets.iter()
                .filter(|(k, _)| !matches!(nets.get(k), Some((Net::Delete, _))))
                .map(|(k, revision)| (k.as_str(), Row::Get, *revision)),
        )
        .collect();
    if deleted.is_empty() && rows.is_empty() {
        return None;
    }
    let mut params: Vec<Param<'a>> = vec![
        Box::new(deleted),
        Box::new(rows.iter().map(|(k, ..)| *k).collect::<Vec<_>>()),
        Box::new(rows.iter().map(|(_, r, _)| r.kind()).collect::<Vec<_>>()),
    ];
    match ty {
        ValueType::Int => params.push(column(&rows, |r| match r {
            Row::Put(Value::Int(v)) => Some(*v),
            Row::IncrBy(by) => Some(*by),
            _ => None,
        })),
        ValueType::Uint => params.push(column(&rows, |r| match r {
            Row::Put(Value::Uint(v)) => Some(i64::from(*v)),
            _ => None,
        })),
        ValueType::Float => params.push(column(&rows, |r| match r {
            Row::Put(Value::Float(v)) => Some(*v),
            _ => None,
        })),
        ValueType::Str => params.push(column(&rows, |r| match r {
            Row::Put(Value::Str(s)) => Some(s.as_str()),
            _ => None,
        })),
        ValueType::Map | ValueType::Set => {
            // One entry per field or member of each put, named by its key.
            let (mut owners, mut firsts, mut seconds) = (Vec::new(), Vec::new(), Vec::new());
            for (key, row, _) in &rows {
                match row {
                    Row::Put(Value::Map(m)) => {
                        for (field, v) in m.iter() {
                            owners.push(*key);
                            firsts.push(field.as_str());
                            seconds.push(v.as_str());
                        }
                    }
                    Row::Put(Value::Set(s)) => {
                        for member in s.iter() {
                            owners.push(*key);
                            firsts.push(member.as_str());
                        }
                    }
                    _ => {}
                }
            }
            params.push(Box::new(owners));
            params.push(Box::new(firsts));
            if ty == ValueType::Map {
                params.push(Box::new(seconds));
            }
        }
    }
    params.push(Box::new(
        rows.iter()
            .map(|(.., revision)| revision_column(*revision))
            .collect::<Vec<_>>(),
    ));
    params.push(Box::new(
        rows.iter()
            .map(|(key, row, _)| match row {
                Row::Get => None,
                _ => Creation::revision(created, key),
            })
            .collect::<Vec<_>>(),
    ));
    let made = rows.iter().filter(|(_, row, _)| !matches!(row, Row::Get));
    params.extend(remade(made.map(|(key, ..)| *key), created));
    Some(Write {
        sql: type_sql(ty),
        params,
    })
}

/// The parameters of [`fix_created`] for `keys`, each once: its name, the
/// revision it was made at and whether it was made again.
fn remade<'a>(
    keys: impl Iterator<Item = &'a str>,
    created: &'a HashMap<Key, Creation>,
) -> [Param<'a>; 3] {
    let (mut names, mut revisions, mut agains) = (Vec::new(), Vec::new(), Vec::new());
    for key in keys {
        if let Some(&Creation::At { revision, again }) = created.get(key) {
            names.push(key);
            revisions.push(revision_column(revision));
            agains.push(again);
        }
    }
    [Box::new(names), Box::new(revisions), Box::new(agains)]
}

/// A statement's part that sets the creation of the keys whose rows were
/// there before it: those the batch made again, and those whose creation
/// was unknown. `$n` to `$n+2` are [`remade`]'s parameters. It sees the
/// rows as they were before the statement, so the rows it creates (with
/// their creation) are not among them. `key = ANY` lets the planner look
/// the keys up in the index instead of joining the whole table.
fn fix_created(p: &str, n: usize) -> String {
    let (revisions, agains) = (n + 1, n + 2);
    format!(
        "fixed AS (
             UPDATE {p}_keys k SET created_revision = x.revision
             FROM unnest(${n}::text[], ${revisions}::int8[], ${agains}::bool[])
                 AS x(key, revision, again)
             WHERE k.key = ANY(${n}::text[]) AND k.key = x.key
               AND (x.again OR (k.created_revision IS NULL AND x.revision IS NOT NULL)))"
    )
}

/// The value column of a scalar type's rows (NULL where a row has none).
fn column<'a, T: ToSql + Sync + Send + 'a>(
    rows: &[(&str, Row<'a>, u64)],
    value: impl Fn(&Row<'a>) -> Option<T>,
) -> Param<'a> {
    Box::new(rows.iter().map(|(_, r, _)| value(r)).collect::<Vec<_>>())
}

/// The statement that writes one value type's part of a batch; see the
/// module documentation. Parameters: `$1` the keys to delete; `$2` and `$3`
/// the key and `transaction_type` of each row to insert; then for a scalar
/// type `$4` each row's value, for maps and sets `$4` the key of each entry
/// and `$5` (and `$6`) its field and value, or its member; then each row's
/// revision, each row's key's creation (for its row if the statement creates
/// it) and [`remade`]'s three.
fn type_sql(ty: ValueType) -> String {
    let p = prefix(ty);
    // The last parameter of the rows themselves: each row's revision.
    let last = match ty {
        ValueType::Map => 7,
        ValueType::Set => 6,
        _ => 5,
    };
    let (made, fixed) = (last + 1, fix_created(p, last + 2));
    // `ids`: the id of every key that gets a row, created where missing.
    let keys = format!(
        "gone AS (
             DELETE FROM {p}_keys WHERE key = ANY($1::text[]) RETURNING id),
         created AS (
             INSERT INTO {p}_keys (key, created_revision)
             SELECT * FROM unnest($2::text[], ${made}::int8[])
             ON CONFLICT (key) DO NOTHING RETURNING id, key),
         {fixed},
         ids AS (
             SELECT id, key FROM created
             UNION ALL SELECT id, key FROM {p}_keys WHERE key = ANY($2::text[]))"
    );
    let superseded = format!(
        "superseded AS (
             DELETE FROM {p}_transactions
             WHERE key_id IN (SELECT key_id FROM batch WHERE kind = '{PUT}'))"
    );
    let Some((table, key_col)) = entries(ty) else {
        let array = match ty {
            ValueType::Int => "int4[]",
            ValueType::Uint => "int8[]",
            ValueType::Float => "float4[]",
            _ => "text[]",
        };
        return format!(
            "WITH {keys},
             batch AS (
                 SELECT ids.id AS key_id, b.kind, b.value, b.revision
                 FROM unnest($2::text[], $3::text[], $4::{array}, ${last}::int8[])
                     AS b(key, kind, value, revision)
                 JOIN ids USING (key)),
             {superseded}
             INSERT INTO {p}_transactions (transaction_type, key_id, value, revision)
             SELECT kind, key_id, value, revision FROM batch"
        );
    };
    let (cols, picked, arrays) = if ty == ValueType::Map {
        ("key, value", "e.key, e.value", "$5::text[], $6::text[]")
    } else {
        ("member", "e.member", "$5::text[]")
    };
    format!(
        "WITH {keys},
         batch AS (
             SELECT ids.id AS key_id, b.kind, b.revision
             FROM unnest($2::text[], $3::text[], ${last}::int8[]) AS b(key, kind, revision)
             JOIN ids USING (key)),
         stale_entries AS (
             DELETE FROM {table} WHERE {key_col} IN (
                 SELECT id FROM gone
                 UNION ALL SELECT key_id FROM batch WHERE kind = '{PUT}')),
         {superseded},
         txns AS (
             INSERT INTO {p}_transactions (transaction_type, key_id, revision)
             SELECT kind, key_id, revision FROM batch RETURNING id, key_id, transaction_type)
         INSERT INTO {table} (transaction_id, {key_col}, {cols})
         SELECT t.id, t.key_id, {picked}
         FROM txns t JOIN ids ON ids.id = t.key_id
         JOIN unnest($4::text[], {arrays}) AS e(owner, {cols}) ON e.owner = ids.key
         WHERE t.transaction_type = '{PUT}'"
    )
}

/// The single member or field changes of one map or set type's part of a
/// batch, as one `entries_sql` statement; `None` when there are none.
fn write_entries(ty: ValueType, folded: &Folded, i: usize) -> Option<Write<'_>> {
    let (nets, created) = (&folded.nets[i], &folded.created[i]);
    let (mut keys, mut kinds, mut names) = (Vec::new(), Vec::new(), Vec::new());
    let (mut values, mut revisions, mut made) = (Vec::new(), Vec::new(), Vec::new());
    for (key, (net, _)) in nets {
        let Net::Entries(entries) = net else { continue };
        for (name, (state, revision)) in entries {
            keys.push(key.as_str());
            kinds.push(if state.is_some() {
                PUT_ENTRY
            } else {
                DEL_ENTRY
            });
            names.push(name.as_str());
            values.push(state.as_deref().unwrap_or(""));
            revisions.push(revision_column(*revision));
            made.push(Creation::revision(created, key.as_str()));
        }
    }
    if keys.is_empty() {
        return None;
    }
    let entry_keys = nets
        .iter()
        .filter(|(_, (net, _))| matches!(net, Net::Entries(_)))
        .map(|(key, _)| key.as_str());
    let fixes = remade(entry_keys, created);
    let mut params: Vec<Param<'_>> = vec![Box::new(keys), Box::new(kinds), Box::new(names)];
    if ty == ValueType::Map {
        params.push(Box::new(values));
    }
    params.push(Box::new(revisions));
    params.push(Box::new(made));
    params.extend(fixes);
    Some(Write {
        sql: entries_sql(ty),
        params,
    })
}

/// The statement that logs single member or field changes of a map or set
/// type: `$1`, `$2`, `$3` (and `$4`) the key, `transaction_type`, member or
/// field (and value, `''` for a removal) of each, then its revision, its
/// key's creation (for its row if the statement creates it) and
/// [`remade`]'s three. Each change is a row of its own with one entry; it
/// supersedes the earlier changes of the same member or field, which it
/// deletes (a put of the whole value, which it only amends, stays). Ids are
/// drawn first, so that each entry is written with its row without matching
/// them up afterwards.
fn entries_sql(ty: ValueType) -> String {
    let p = prefix(ty);
    let (table, key_col) = entries(ty).expect("a map or set type");
    let (name_col, cols, values, picked, revisions) = if ty == ValueType::Map {
        ("key", "key, value", ", $4::text[]", "name, value", 5)
    } else {
        ("member", "member", ", NULL::text[]", "name", 4)
    };
    let (made, fixed) = (revisions + 1, fix_created(p, revisions + 2));
    format!(
        "WITH created AS (
             INSERT INTO {p}_keys (key, created_revision)
             SELECT DISTINCT * FROM unnest($1::text[], ${made}::int8[])
             ON CONFLICT (key) DO NOTHING RETURNING id, key),
         {fixed},
         ids AS (
             SELECT id, key FROM created
             UNION ALL SELECT id, key FROM {p}_keys WHERE key = ANY($1::text[])),
         batch AS (
             SELECT nextval(pg_get_serial_sequence('{p}_transactions', 'id')) AS id,
                    ids.id AS key_id, b.kind, b.name, b.value, b.revision
             FROM unnest($1::text[], $2::text[], $3::text[]{values}, ${revisions}::int8[])
                 AS b(key, kind, name, value, revision)
             JOIN ids USING (key)),
         stale AS (
             DELETE FROM {table} e USING {p}_transactions t, batch b
             WHERE e.{key_col} = b.key_id AND e.{name_col} = b.name
               AND t.id = e.transaction_id
               AND t.transaction_type IN ('{PUT_ENTRY}', '{DEL_ENTRY}')
             RETURNING e.transaction_id),
         superseded AS (
             DELETE FROM {p}_transactions WHERE id IN (SELECT transaction_id FROM stale)),
         txns AS (
             INSERT INTO {p}_transactions (id, transaction_type, key_id, revision)
             SELECT id, kind, key_id, revision FROM batch)
         INSERT INTO {table} (transaction_id, {key_col}, {cols})
         SELECT id, key_id, {picked} FROM batch"
    )
}

/// Each writer's latest mark, as one statement.
fn write_marks(marks: &[WriterMark]) -> Write<'_> {
    let mut latest: HashMap<&str, i64> = HashMap::new();
    for m in marks {
        let seq = i64::try_from(m.sequence).unwrap_or(i64::MAX);
        let e = latest.entry(m.writer.as_str()).or_insert(seq);
        *e = (*e).max(seq);
    }
    let (writers, seqs): (Vec<&str>, Vec<i64>) = latest.into_iter().unzip();
    Write {
        sql: "INSERT INTO kvs_writers (writer_id, sequence)
              SELECT * FROM unnest($1::text[], $2::int8[])
              ON CONFLICT (writer_id) DO UPDATE
              SET sequence = GREATEST(kvs_writers.sequence, EXCLUDED.sequence), updated_at = NOW()"
            .to_owned(),
        params: vec![Box::new(writers), Box::new(seqs)],
    }
}

/// Sets or drops the expiry of the keys of type `ty` whose expiry the batch
/// changes; `None` when it changes none.
fn write_expiries(ty: ValueType, expiries: &HashMap<Key, Option<u64>>) -> Option<Write<'_>> {
    if expiries.is_empty() {
        return None;
    }
    let p = prefix(ty);
    let (keys, at): (Vec<&str>, Vec<Option<i64>>) = expiries
        .iter()
        .map(|(k, at)| {
            (
                k.as_str(),
                at.map(|ms| i64::try_from(ms).unwrap_or(i64::MAX)),
            )
        })
        .unzip();
    Some(Write {
        sql: format!(
            "UPDATE {p}_keys k SET expires_at = x.at
             FROM unnest($1::text[], $2::int8[]) AS x(key, at) WHERE k.key = x.key"
        ),
        params: vec![Box::new(keys), Box::new(at)],
    })
}

/// Refuses the batch unless `epoch` is the lease's current one (see
/// migration 0009).
fn write_fence(epoch: u64) -> Write<'static> {
    Write {
        sql: "SELECT kvs_lease_fence($1)".to_owned(),
        params: vec![Box::new(i64::try_from(epoch).unwrap_or(i64::MAX))],
    }
}

/// Raises the stored head to `head`, a batch's highest revision.
fn write_head(head: u64) -> Write<'static> {
    Write {
        sql: "UPDATE kvs_revision_head SET head = GREATEST(head, $1)".to_owned(),
        params: vec![Box::new(revision_column(head))],
    }
}

type Request<'a> = MaybeDone<BoxFuture<'a, Result<(), tokio_postgres::Error>>>;

/// Runs `writes` as one database transaction, in one round trip once the
/// connection has prepared them; see the module documentation.
async fn transaction(
    client: &deadpool_postgres::Client,
    writes: &[Write<'_>],
) -> Result<(), LogError> {
    // Only a connection's first use of a statement prepares it, and those
    // that do are prepared together.
    let statements = try_join_all(writes.iter().map(|w| client.prepare_cached(&w.sql)))
        .await
        .map_err(db_error)?;
    let mut requests: Vec<Request> = vec![maybe_done(client.batch_execute("BEGIN").boxed())];
    for (statement, write) in statements.iter().zip(writes) {
        let params = write.params.iter().map(|p| &**p as &(dyn ToSql + Sync));
        requests.push(maybe_done(
            client.execute_raw(statement, params).map_ok(drop).boxed(),
        ));
    }
    start(&mut requests).await;
    // A request already answered with an error was not sent (it could not
    // be encoded, or the connection is gone), or at least was refused: a
    // COMMIT would commit the batch without it.
    let unsent = requests
        .iter()
        .any(|r| matches!(r, MaybeDone::Done(Err(_))));
    let end = if unsent { "ROLLBACK" } else { "COMMIT" };
    let sent = requests.len();
    requests.push(maybe_done(client.batch_execute(end).boxed()));
    // Still in the same poll as the rest: a caller that stops waiting leaves
    // either nothing sent or the whole transaction.
    start(&mut requests[sent..]).await;
    join_all(requests.iter_mut()).await;
    // The first error is the cause; those after it say the transaction was
    // aborted.
    requests.into_iter().try_for_each(|r| match r {
        MaybeDone::Done(Err(e)) => Err(db_error(e)),
        _ => Ok(()),
    })
}

/// Polls each request once, in order, without waiting: tokio-postgres sends
/// a request when its future is first polled, and the server runs requests
/// in the order they were sent.
async fn start(requests: &mut [Request<'_>]) {
    poll_fn(|cx| {
        for request in requests.iter_mut() {
            let _ = Pin::new(request).poll(cx);
        }
        Poll::Ready(())
    })
    .await;
}

/// The write lease in PostgreSQL; see [`WriterLog::lease`] and migration
/// 0009. Every time is the database's clock.
#[derive(Clone)]
pub struct PgLease {
    pool: Pool,
}

impl LogLease for PgLease {
    async fn ask(&self, ask: LeaseAsk) -> Result<LeaseState, LogError> {
        let client = self.pool.get().await.map_err(db_error)?;
        let row = client
            .query_one(
                "SELECT * FROM kvs_lease_ask($1, $2, $3, $4, $5)",
                &[
                    &ask.holder.as_str(),
                    &ask.url,
                    &i64::try_from(ask.epoch).unwrap_or(i64::MAX),
                    &ask.take,
                    &i64::try_from(ask.ttl.as_millis()).unwrap_or(i64::MAX),
                ],
            )
            .await
            .map_err(db_error)?;
        let bad = |e: tokio_postgres::Error| LogError::BadTable {
            table: "kvs_lease".into(),
            reason: explain(&e),
        };
        let epoch: i64 = row.try_get(2).map_err(bad)?;
        let remaining: i64 = row.try_get(3).map_err(bad)?;
        Ok(LeaseState {
            holder: row.try_get(0).map_err(bad)?,
            url: row.try_get(1).map_err(bad)?,
            epoch: epoch.max(0) as u64,
            remaining: Duration::from_millis(remaining.max(0) as u64),
            held: row.try_get(4).map_err(bad)?,
        })
    }
}

/// Streams the PostgreSQL log; see [`WriterLog::reader`].
#[derive(Clone)]
pub struct PgReader {
    pool: Pool,
    strict: bool,
}

impl PgReader {
    /// With `strict`, a row that cannot be replayed (see its `stream`)
    /// ends the read with an error naming it, instead of being skipped.
    pub fn strict(mut self, strict: bool) -> PgReader {
        self.strict = strict;
        self
    }
}

impl LogReader for PgReader {
    /// Every live transaction, type by type, each type in id order, read by
    /// a task as rows arrive: a large log is never held in memory at once.
    ///
    /// A row that cannot be replayed is skipped, logged at WARN with its
    /// table, id and key, and counted in [`ReplayStats::skipped`]: a value
    /// the transaction needs and the row lacks (the original service logged
    /// `TransactionIncrBy` without its amount), a value out of its type's
    /// range, a key that is not a KVS key, a transaction type KVS does not
    /// know. A table KVS cannot read (a column of another type, a NULL where
    /// the schema has none) ends the read with an error naming the table,
    /// row and column, in every mode.
    fn stream(&self) -> ReplayStream {
        let (pool, strict) = (self.pool.clone(), self.strict);
        ReplayStream::spawn(move |mut sink| async move {
            let client = pool.get().await.map_err(db_error)?;
            sink.number_after(stored_head(&client).await?);
            let mut skipped = 0;
            for ty in ValueType::ALL {
                let mut table = Table::new(ty, strict);
                table.read(&client, &mut sink).await?;
                table.read_expiries(&client, &mut sink).await?;
                skipped += table.skipped;
            }
            Ok(ReplayStats {
                records: sink.sent(),
                head: sink.head(),
                // Every put supersedes the rows before it: no history.
                history_from: sink.head(),
                skipped,
                ..ReplayStats::default()
            })
        })
    }
}

/// The highest revision given, as `kvs_revision_head` holds it.
async fn stored_head(client: &deadpool_postgres::Client) -> Result<u64, LogError> {
    let row = client
        .query_one("SELECT head FROM kvs_revision_head", &[])
        .await
        .map_err(db_error)?;
    let bad = |reason: String| LogError::BadTable {
        table: "kvs_revision_head".into(),
        reason: format!("column head {reason}"),
    };
    let head: i64 = row.try_get(0).map_err(|e| bad(explain(&e)))?;
    u64::try_from(head).map_err(|_| bad(format!("is negative: {head}")))
}

/// The reading of one value type's transactions table.
struct Table {
    ty: ValueType,
    /// `{prefix}_transactions`.
    name: String,
    strict: bool,
    skipped: u64,
}

/// A map's or set's put whose entries are still arriving, row by row.
struct Open {
    id: i64,
    key: Key,
    value: Value,
    revision: u64,
    created: Option<Change>,
}

impl Open {
    async fn send(self, sink: &mut Sink) -> Result<(), LogError> {
        let put = Txn::Put {
            key: self.key,
            value: self.value,
        };
        sink.send(Change::new(self.revision, put)).await?;
        match self.created {
            Some(created) => sink.send(created).await,
            None => Ok(()),
        }
    }
}

/// What one row (the first row of a map's or set's put) says.
enum Decoded {
    Txn(Txn),
    /// A map or set put, whose entries follow in the next rows.
    Open(Key, Value),
    /// A transaction that cannot be replayed, and why.
    Lost {
        key: String,
        reason: String,
    },
}

impl Table {
    fn new(ty: ValueType, strict: bool) -> Table {
        Table {
            ty,
            name: format!("{}_transactions", prefix(ty)),
            strict,
            skipped: 0,
        }
    }

    /// Columns: `id`, the key, `transaction_type`, then the value, or a
    /// map's field and value, or a set's member, then the revision (at
    /// [`Table::revision_column`]) and the key's creation where it is
    /// earlier than the row's revision and the row is the key's first (a
    /// put's row always is: the others are looked up only for rows that are
    /// not puts). Each is named after the table it comes from, for the
    /// errors.
    fn sql(&self) -> String {
        let p = prefix(self.ty);
        let from = format!("FROM {p}_transactions t JOIN {p}_keys k ON k.id = t.key_id");
        let head = format!(r#"SELECT t.id, k.key AS "{p}_keys.key", t.transaction_type"#);
        let revision = format!(
            r#"t.revision AS "{p}_transactions.revision",
               CASE WHEN k.created_revision < t.revision AND t.transaction_type <> '{GET}'
                    AND (t.transaction_type = '{PUT}' OR NOT EXISTS (
                        SELECT 1 FROM {p}_transactions f
                        WHERE f.key_id = t.key_id AND f.id < t.id
                          AND f.transaction_type <> '{GET}'))
               THEN k.created_revision END AS "{p}_keys.created_revision""#
        );
        match entries(self.ty) {
            None => format!("{head}, t.value, {revision} {from} ORDER BY t.id"),
            Some((entries, _)) => {
                let cols = if self.ty == ValueType::Map {
                    format!(r#"e.key AS "{entries}.key", e.value AS "{entries}.value""#)
                } else {
                    format!(r#"e.member AS "{entries}.member", NULL::text"#)
                };
                format!(
                    "{head}, {cols}, {revision} {from}
                     LEFT JOIN {entries} e ON e.transaction_id = t.id ORDER BY t.id"
                )
            }
        }
    }

    fn revision_column(&self) -> usize {
        if entries(self.ty).is_some() { 5 } else { 4 }
    }

    /// The expiry of every key of the type that has one, after its value:
    /// unstamped, an expiry takes the revision of the put it came with.
    async fn read_expiries(
        &self,
        client: &deadpool_postgres::Client,
        sink: &mut Sink,
    ) -> Result<(), LogError> {
        let p = prefix(self.ty);
        let sql = format!(
            r#"SELECT id, key AS "{p}_keys.key", expires_at AS "{p}_keys.expires_at"
               FROM {p}_keys WHERE expires_at IS NOT NULL ORDER BY id"#
        );
        let rows = client.query(&sql, &[]).await.map_err(db_error)?;
        for row in rows {
            let id: i32 = self.get(&row, 0, 0, "integer")?;
            let id = i64::from(id);
            let key: String = self.get(&row, 1, id, "text")?;
            let at: i64 = self.get(&row, 2, id, "bigint")?;
            // A key the transactions table skipped has no value to expire.
            let Ok(key) = Key::parse(&key) else { continue };
            let at_ms = u64::try_from(at).ok();
            let txn = Txn::Expiry {
                ty: self.ty,
                key,
                at_ms,
            };
            sink.send(Change::new(UNSTAMPED, txn)).await?;
        }
        Ok(())
    }

    /// The revision of row `id`: [`UNSTAMPED`] for a NULL, which the sink
    /// numbers.
    fn revision(&self, row: &tokio_postgres::Row, id: i64) -> Result<u64, LogError> {
        self.revision_at(row, self.revision_column(), id)
    }

    /// What the replay sends after row `id` (once for a map's or set's put)
    /// to say when its key was created, if it has to.
    fn created(
        &self,
        row: &tokio_postgres::Row,
        id: i64,
        key: &Key,
        revision: u64,
    ) -> Result<Option<Change>, LogError> {
        let created = self.revision_at(row, self.revision_column() + 1, id)?;
        Ok((created != UNSTAMPED).then(|| {
            let (ty, key) = (self.ty, key.clone());
            let txn = Txn::Created {
                ty,
                key,
                revision: created,
            };
            Change::new(revision, txn)
        }))
    }

    /// A revision column of row `id`: [`UNSTAMPED`] for a NULL.
    fn revision_at(
        &self,
        row: &tokio_postgres::Row,
        column: usize,
        id: i64,
    ) -> Result<u64, LogError> {
        match self.get::<Option<i64>>(row, column, id, "bigint")? {
            None => Ok(UNSTAMPED),
            Some(r) => u64::try_from(r).map_err(|_| LogError::BadRow {
                table: self.name.clone(),
                id,
                reason: format!("column {} is negative: {r}", row.columns()[column].name()),
            }),
        }
    }

    async fn read(
        &mut self,
        client: &deadpool_postgres::Client,
        sink: &mut Sink,
    ) -> Result<(), LogError> {
        let rows = client
            .query_raw(&self.sql(), std::iter::empty::<i32>())
            .await
            .map_err(db_error)?;
        let mut rows = std::pin::pin!(rows);
        // Rows of one map or set put arrive together, one per entry; gather
        // them.
        let mut open: Option<Open> = None;
        // A transaction that was skipped: its other entries go with it.
        let mut skipping = None;
        while let Some(row) = rows.try_next().await.map_err(db_error)? {
            let id = self.id(&row)?;
            if skipping == Some(id) {
                continue;
            }
            if let Some(put) = &mut open {
                if put.id == id {
                    self.add_entry(&row, id, &mut put.value)?;
                    continue;
                }
                open.take().expect("checked").send(sink).await?;
            }
            let revision = self.revision(&row, id)?;
            match self.decode(&row, id)? {
                Decoded::Txn(txn) => {
                    let created = self.created(&row, id, txn.key(), revision)?;
                    sink.send(Change::new(revision, txn)).await?;
                    if let Some(created) = created {
                        sink.send(created).await?;
                    }
                }
                Decoded::Open(key, value) => {
                    let created = self.created(&row, id, &key, revision)?;
                    open = Some(Open {
                        id,
                        key,
                        value,
                        revision,
                        created,
                    });
                }
                Decoded::Lost { key, reason } => {
                    self.skip(id, &key, reason)?;
                    skipping = Some(id);
                }
            }
        }
        if let Some(put) = open {
            put.send(sink).await?;
        }
        Ok(())
    }

    /// A row's id; SERIAL, or BIGSERIAL in a table that outgrew it.
    fn id(&self, row: &tokio_postgres::Row) -> Result<i64, LogError> {
        let bad = |reason: String| LogError::BadTable {
            table: self.name.clone(),
            reason: format!("column id {reason}"),
        };
        let read = match row.columns()[0].type_() {
            &Type::INT2 => row.try_get::<_, i16>(0).map(i64::from),
            &Type::INT4 => row.try_get::<_, i32>(0).map(i64::from),
            &Type::INT8 => row.try_get::<_, i64>(0),
            other => {
                return Err(bad(format!(
                    "is of type {other}, where KVS reads an integer"
                )));
            }
        };
        read.map_err(|e| bad(explain(&e)))
    }

    /// Column `idx` of row `id`, which KVS reads as `want`.
    fn get<'r, T: FromSql<'r>>(
        &self,
        row: &'r tokio_postgres::Row,
        idx: usize,
        id: i64,
        want: &str,
    ) -> Result<T, LogError> {
        let column = &row.columns()[idx];
        let bad = |reason: String| LogError::BadRow {
            table: self.name.clone(),
            id,
            reason: format!("column {} {reason}", column.name()),
        };
        if !T::accepts(column.type_()) {
            return Err(bad(format!(
                "is of type {}, where KVS reads {want}",
                column.type_()
            )));
        }
        row.try_get(idx).map_err(|e| bad(explain(&e)))
    }

    fn decode(&self, row: &tokio_postgres::Row, id: i64) -> Result<Decoded, LogError> {
        let ty = self.ty;
        let raw: String = self.get(row, 1, id, "text")?;
        let kind: String = self.get(row, 2, id, "text")?;
        let lost = |reason: String| {
            Ok(Decoded::Lost {
                key: raw.clone(),
                reason,
            })
        };
        let key = match Key::parse(&raw) {
            Ok(key) => key,
            Err(e) => return lost(format!("the key is not a KVS key: {e}")),
        };
        let unknown = || lost(format!("{kind:?} is not a transaction type of a {ty} key"));
        if entries(ty).is_some() {
            return match kind.as_str() {
                PUT => {
                    let mut value = if ty == ValueType::Map {
                        Value::Map(MapValue::new())
                    } else {
                        Value::Set(SetValue::new())
                    };
                    self.add_entry(row, id, &mut value)?;
                    Ok(Decoded::Open(key, value))
                }
                DEL => Ok(Decoded::Txn(Txn::Delete { ty, key })),
                GET => Ok(Decoded::Txn(Txn::Get { ty, key })),
                PUT_ENTRY | DEL_ENTRY => {
                    let Some(name) = self.get::<Option<String>>(row, 3, id, "text")? else {
                        return lost(format!("{kind} without its entry"));
                    };
                    let present = kind == PUT_ENTRY;
                    Ok(Decoded::Txn(if ty == ValueType::Map {
                        let value = self.get::<Option<String>>(row, 4, id, "text")?;
                        Txn::MapField {
                            key,
                            field: name,
                            value: value.filter(|_| present),
                        }
                    } else {
                        Txn::SetMember {
                            key,
                            member: name,
                            present,
                        }
                    }))
                }
                _ => unknown(),
            };
        }
        let value = match ty {
            ValueType::Int => self
                .get::<Option<i32>>(row, 3, id, "integer")?
                .map(Value::Int),
            ValueType::Uint => match self.get::<Option<i64>>(row, 3, id, "bigint")? {
                Some(v) => match u32::try_from(v) {
                    Ok(v) => Some(Value::Uint(v)),
                    Err(_) => return lost(format!("uint value {v} is out of range")),
                },
                None => None,
            },
            ValueType::Float => self
                .get::<Option<f32>>(row, 3, id, "real")?
                .map(Value::Float),
            _ => self
                .get::<Option<String>>(row, 3, id, "text")?
                .map(Value::Str),
        };
        let txn = match (kind.as_str(), value) {
            (PUT, Some(value)) => Txn::Put { key, value },
            (PUT, None) => return lost(format!("{PUT} without a value")),
            (DEL, _) => Txn::Delete { ty, key },
            // A read carries no value.
            (GET, _) => Txn::Get { ty, key },
            // The original logged increments by one without a value.
            (INCR, _) if ty == ValueType::Int => Txn::IncrBy { key, by: 1 },
            (INCR_BY, Some(Value::Int(by))) => Txn::IncrBy { key, by },
            (INCR_BY, None) if ty == ValueType::Int => {
                return lost(format!(
                    "{INCR_BY} without an amount (the original service did not log it): \
                     the key's value misses this increment"
                ));
            }
            _ => return unknown(),
        };
        Ok(Decoded::Txn(txn))
    }

    /// Adds the map field or set member of `row` (none, for an empty one).
    fn add_entry(
        &self,
        row: &tokio_postgres::Row,
        id: i64,
        value: &mut Value,
    ) -> Result<(), LogError> {
        let first: Option<String> = self.get(row, 3, id, "text")?;
        let second: Option<String> = self.get(row, 4, id, "text")?;
        match (value, first) {
            (Value::Map(m), Some(field)) => {
                m.insert(field, second.unwrap_or_default());
            }
            (Value::Set(s), Some(member)) => {
                s.insert(member);
            }
            _ => {}
        }
        Ok(())
    }

    /// Skips row `id`, saying so, or refuses it in strict mode.
    fn skip(&mut self, id: i64, key: &str, reason: String) -> Result<(), LogError> {
        if self.strict {
            return Err(LogError::BadRow {
                table: self.name.clone(),
                id,
                reason: format!("key {key:?}: {reason} (strict replay refuses such a row)"),
            });
        }
        tracing::warn!(
            table = %self.name,
            row = id,
            key,
            %reason,
            "skipping a row of the log that cannot be replayed"
        );
        self.skipped += 1;
        Ok(())
    }
}

/// Why a column could not be read, in words: tokio-postgres says only
/// "error deserializing column 3" at the top.
fn explain(e: &tokio_postgres::Error) -> String {
    if std::error::Error::source(e).is_some_and(|s| s.is::<WasNull>()) {
        "is NULL".to_owned()
    } else {
        format!("cannot be read: {}", kvs_core::error::chain(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> Key {
        Key::parse(s).unwrap()
    }

    #[test]
    fn folding_keeps_each_keys_net_effect() {
        let f = fold(
            &[
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
            ]
            .into_iter()
            .zip(1..)
            .map(|(t, revision)| Change::new(revision, t))
            .collect::<Vec<_>>(),
        );
        let nets = &f.nets[ValueType::Int.index()];
        assert!(matches!(nets[&key("a")], (Net::Put(Value::Int(3)), 2)));
        assert!(matches!(nets[&key("b")], (Net::Incr(5), 4)));
        assert!(matches!(nets[&key("c")], (Net::Put(Value::Int(4)), 6)));
        assert!(matches!(nets[&key("d")], (Net::Delete, 8)));
        assert_eq!(f.gets[ValueType::Int.index()], [(key("a"), 9)]);
    }

    #[test]
    fn folding_entries_keeps_each_entrys_revision_and_the_keys_last() {
        let member = |k: &str, m: &str, present| Txn::SetMember {
            key: key(k),
            member: m.into(),
            present,
        };
        let f = fold(&[
            Change::new(3, member("s", "x", true)),
            Change::new(4, member("s", "y", true)),
            Change::new(5, member("s", "x", false)),
            Change::new(
                6,
                Txn::Put {
                    key: key("t"),
                    value: Value::Set(Default::default()),
                },
            ),
            Change::new(7, member("t", "z", true)),
        ]);
        let nets = &f.nets[ValueType::Set.index()];
        let (Net::Entries(entries), 5) = &nets[&key("s")] else {
            panic!("{:?}", nets[&key("s")]);
        };
        assert_eq!(entries["x"], (None, 5));
        assert_eq!(entries["y"], (Some(String::new()), 4));
        assert!(matches!(&nets[&key("t")], (Net::Put(Value::Set(s)), 7) if s.len() == 1));
    }
}
