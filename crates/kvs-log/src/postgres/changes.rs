//! The PostgreSQL change stream: `kvs_changes` (migration 0008) and the
//! wake-up on commit.
//!
//! Each batch with stamped changes adds one row to `kvs_changes`, its
//! revisions' changes encoded as the file log's group records, and calls
//! `pg_notify`, both statements of the batch's own pipelined transaction:
//! a follower can see only what committed, and is told once it has. The
//! table keeps the last `keep` revisions: a batch that crosses a multiple
//! of [`TRIM_EVERY`] deletes the rows older than that, and raises
//! `kvs_revision_head.changes_from`, where the stream can start from, in the
//! same transaction. One connection per [`PgLog`] listens and wakes every
//! follower through a watch channel, reconnecting with backoff; a follower
//! re-reads on a timer of its own, so a notification lost while the
//! listener was down delays it no more than that.

use std::future::poll_fn;
use std::time::Duration;

use deadpool_postgres::Pool;
use kvs_core::Change;
use kvs_core::change::UNSTAMPED;
use kvs_service::backoff::Backoff;
use tokio::sync::watch;
use tokio_postgres::{AsyncMessage, NoTls};

use super::{PgLog, Write, db_error, explain, revision_column};
use crate::LogError;
use crate::codec::{self, HEADER_LEN, Record};
use crate::follow::{ChangeFeed, FollowError, Page};

/// The notification channel of committed changes.
const CHANNEL: &str = "kvs_changes";

/// Trimming runs in the batch that crosses a multiple of this revision:
/// one DELETE every so many revisions rather than one per batch.
pub const TRIM_EVERY: u64 = 1024;

/// Rows (batches) read at most per page; a page ends at its `max`
/// transactions first, if it gets there.
const ROWS_PER_READ: i64 = 16;

/// The statements that keep `batch`'s stamped changes for followers: none
/// when it has none.
pub(super) fn writes(batch: &[Change], keep: u64) -> Result<Vec<Write<'static>>, LogError> {
    let mut stamped = batch.iter().filter(|c| c.revision != UNSTAMPED).peekable();
    let Some(first) = stamped.peek().map(|c| c.revision) else {
        return Ok(Vec::new());
    };
    let mut encoded = Vec::new();
    let mut last = first;
    let stamped: Vec<&Change> = stamped.collect();
    for run in stamped.chunk_by(|a, b| a.revision == b.revision) {
        last = run[0].revision;
        codec::encode_group(last, run.iter().map(|c| &c.txn), &mut encoded)
            .map_err(LogError::TooLarge)?;
    }
    let mut writes = vec![Write {
        sql: format!(
            "WITH kept AS (INSERT INTO kvs_changes (first_revision, last_revision, changes) \
             VALUES ($1, $2, $3)) SELECT pg_notify('{CHANNEL}', '')"
        ),
        params: vec![
            Box::new(revision_column(first)),
            Box::new(revision_column(last)),
            Box::new(encoded),
        ],
    }];
    if (first - 1) / TRIM_EVERY != last / TRIM_EVERY && last > keep {
        let cut = revision_column(last - keep);
        writes.push(Write {
            sql: "WITH gone AS (DELETE FROM kvs_changes WHERE last_revision <= $1) \
                  UPDATE kvs_revision_head SET changes_from = GREATEST(changes_from, $1)"
                .to_owned(),
            params: vec![Box::new(cut)],
        });
    }
    Ok(writes)
}

/// Reads `kvs_changes`; see [`ChangeFeed`].
#[derive(Clone)]
pub struct PgFeed {
    pool: Pool,
    woken: watch::Receiver<()>,
}

impl PgLog {
    /// A feed on connections of `pool`, woken by a listener that lasts as
    /// long as any clone of it.
    pub(super) fn start_feed(&self, pool: Pool) -> PgFeed {
        let (wake, woken) = watch::channel(());
        tokio::spawn(listen(self.config.clone(), wake));
        PgFeed { pool, woken }
    }
}

/// Wakes `wake`'s followers at each notification on [`CHANNEL`], and once
/// more after each (re)connection, for what was committed meanwhile.
async fn listen(config: tokio_postgres::Config, wake: watch::Sender<()>) {
    let mut backoff = reconnect_backoff();
    loop {
        let lost = tokio::select! {
            () = wake.closed() => return,
            lost = listen_once(&config, &wake, &mut backoff) => lost,
        };
        let wait = backoff.next_wait();
        tracing::warn!(error = %lost, retry_in = ?wait, "lost the PostgreSQL connection that listens for committed changes");
        tokio::select! {
            () = wake.closed() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

fn reconnect_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(200), Duration::from_secs(5))
}

/// Listens on one connection until it fails; returns why.
async fn listen_once(
    config: &tokio_postgres::Config,
    wake: &watch::Sender<()>,
    backoff: &mut Backoff,
) -> LogError {
    let (client, mut connection) = match config.connect(NoTls).await {
        Ok(connected) => connected,
        Err(e) => return db_error(e),
    };
    let sql = format!("LISTEN {CHANNEL}");
    let listening = client.batch_execute(&sql);
    let mut listening = std::pin::pin!(listening);
    let mut listened = false;
    loop {
        // The connection does its I/O, LISTEN's included, while polled here.
        tokio::select! {
            message = poll_fn(|cx| connection.poll_message(cx)) => match message {
                Some(Ok(AsyncMessage::Notification(_))) => {
                    wake.send_replace(());
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return db_error(e),
                None => return LogError::Unavailable("postgres: the connection closed".into()),
            },
            done = &mut listening, if !listened => {
                if let Err(e) = done {
                    return db_error(e);
                }
                listened = true;
                *backoff = reconnect_backoff();
                wake.send_replace(());
            }
        }
    }
}

impl ChangeFeed for PgFeed {
    async fn read_after(&self, after: u64, max: usize) -> Result<Page, FollowError> {
        let client = self.pool.get().await.map_err(db_error)?;
        // One statement: the head, the horizon and the rows of one snapshot.
        let rows = client
            .query(
                "SELECT h.head, h.changes_from, c.changes
                 FROM kvs_revision_head h
                 LEFT JOIN LATERAL (
                     SELECT changes, last_revision FROM kvs_changes
                     WHERE last_revision > $1 ORDER BY last_revision LIMIT $2) c ON TRUE
                 ORDER BY c.last_revision",
                &[&revision_column(after).unwrap_or(0), &ROWS_PER_READ],
            )
            .await
            .map_err(db_error)?;
        let bad = |reason: String| LogError::BadTable {
            table: "kvs_changes".into(),
            reason,
        };
        let mut page = Page::default();
        for row in &rows {
            let head: i64 = row.try_get(0).map_err(|e| bad(explain(&e)))?;
            let from: i64 = row.try_get(1).map_err(|e| bad(explain(&e)))?;
            page.head = head.max(0) as u64;
            let from = from.max(0) as u64;
            if after < from {
                return Err(FollowError::TooOld {
                    after,
                    oldest: from,
                });
            }
            let Some(changes) = row
                .try_get::<_, Option<&[u8]>>(2)
                .map_err(|e| bad(explain(&e)))?
            else {
                continue;
            };
            if page.changes.len() >= max {
                break;
            }
            decode(changes, after, &mut page.changes).map_err(bad)?;
        }
        Ok(page)
    }

    fn woken(&self) -> watch::Receiver<()> {
        self.woken.clone()
    }
}

/// Appends the changes after `after` of one row's group records to `out`.
fn decode(mut bytes: &[u8], after: u64, out: &mut Vec<Change>) -> Result<(), String> {
    while !bytes.is_empty() {
        let len = bytes
            .get(..4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
            .ok_or("a record ends early")?;
        let payload = bytes
            .get(HEADER_LEN..HEADER_LEN + len)
            .ok_or("a record ends early")?;
        match codec::decode(payload).map_err(|e| e.to_string())? {
            Record::Group { revision, txns } if revision > after => {
                out.extend(txns.into_iter().map(|t| Change::new(revision, t)));
            }
            Record::Group { .. } => {}
            _ => return Err("a record that is not a revision's group".into()),
        }
        bytes = &bytes[HEADER_LEN + len..];
    }
    Ok(())
}
