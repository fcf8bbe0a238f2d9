//! A replay's changes applied on threads of their own, one per core.
//!
//! Applying is most of a replay (the table inserts, and the kernel zeroing
//! the pages they first touch), and it runs on one core while the other
//! idles: nothing else runs before the server is ready. Each thread owns
//! a share of the shards and takes the changes to them in their order, so
//! every key's changes apply in the log's order, which is all a replay
//! needs: nobody reads the tables until it is over.

use std::sync::Arc;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;

use kvs_core::Change;

use super::Db;
use super::db::Located;

/// Changes handed to a thread at once: one hand-off per change would cost
/// more than applying it.
const CHUNK: usize = 1024;
/// Chunks waiting for a thread; past that the replay waits for it, so a
/// log read faster than applied does not pile up in memory.
const QUEUED: usize = 4;
/// The most threads: past a few, applying is bound by decoding the log.
const MAX_THREADS: usize = 4;

type Chunk = Vec<(Located, Change)>;

struct Lane {
    queued: Chunk,
    send: SyncSender<Chunk>,
    thread: JoinHandle<()>,
}

pub(crate) struct Appliers {
    db: Arc<Db>,
    lanes: Vec<Lane>,
}

impl Appliers {
    /// One thread per core the process may use, at most [`MAX_THREADS`].
    pub(crate) fn new(db: Arc<Db>) -> Appliers {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_THREADS));
        Appliers::with_threads(db, threads)
    }

    /// Without any thread (the OS would start none), the changes are
    /// applied as they come.
    fn with_threads(db: Arc<Db>, threads: usize) -> Appliers {
        let lanes = (0..threads)
            .filter_map(|i| {
                let (send, take) = sync_channel::<Chunk>(QUEUED);
                let target = db.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("kvs-replay-{i}"))
                    .spawn(move || {
                        for chunk in take {
                            for (at, change) in chunk {
                                target.apply_located(at, change);
                            }
                        }
                    });
                match spawned {
                    Ok(thread) => Some(Lane {
                        queued: Vec::with_capacity(CHUNK),
                        send,
                        thread,
                    }),
                    Err(error) => {
                        tracing::warn!(%error, "could not start a thread to apply the replay on");
                        None
                    }
                }
            })
            .collect();
        Appliers { db, lanes }
    }

    /// Applies `change` after every change to its shard taken before.
    pub(crate) fn apply(&mut self, change: Change) {
        let at = self.db.locate(&change);
        let lanes = self.lanes.len();
        if lanes == 0 {
            return self.db.apply_located(at, change);
        }
        let lane = &mut self.lanes[at.shard % lanes];
        lane.queued.push((at, change));
        if lane.queued.len() == CHUNK {
            let chunk = std::mem::replace(&mut lane.queued, Vec::with_capacity(CHUNK));
            // A thread gone has panicked; `finish` reports it.
            let _ = lane.send.send(chunk);
        }
    }

    /// Waits, off the runtime's threads, until every change taken is
    /// applied. A panic on a thread (a bug) goes on here.
    pub(crate) async fn finish(self) {
        let joined = tokio::task::spawn_blocking(move || {
            let threads: Vec<JoinHandle<()>> = self
                .lanes
                .into_iter()
                .map(|lane| {
                    let _ = lane.send.send(lane.queued);
                    lane.thread
                })
                .collect();
            threads.into_iter().try_for_each(JoinHandle::join)
        })
        .await;
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
            // Cancelled: the runtime is shutting down, and nothing will
            // serve what the replay left.
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use kvs_core::{Key, Txn, Value, ValueType};

    use super::*;

    /// Puts, deletes and puts again over the same keys, so that a change
    /// applied out of its key's order leaves another value or none.
    fn changes() -> Vec<Change> {
        let key = |i: u64| Key::parse(&format!("k{}", i % 500)).unwrap();
        (1..=20_000)
            .map(|revision| {
                let txn = if revision % 7 == 0 {
                    Txn::Delete {
                        ty: ValueType::Int,
                        key: key(revision),
                    }
                } else {
                    Txn::Put {
                        key: key(revision),
                        value: Value::Int(revision as i32),
                    }
                };
                Change::new(revision, txn)
            })
            .collect()
    }

    #[tokio::test]
    async fn every_key_ends_as_applied_in_order() {
        let serial = Db::default();
        for change in changes() {
            serial.apply(change);
        }
        for threads in [0, 1, 3] {
            let db = Arc::new(Db::default());
            let mut appliers = Appliers::with_threads(db.clone(), threads);
            changes().into_iter().for_each(|c| appliers.apply(c));
            appliers.finish().await;
            assert_eq!(db.counts(), serial.counts(), "{threads} threads");
            let listed = |db: &Db| db.keys(ValueType::Int, "", None, usize::MAX);
            assert_eq!(listed(&db), listed(&serial), "keys and last revision");
            for i in 0..500 {
                let key = format!("k{i}");
                assert_eq!(
                    db.get(ValueType::Int, &key),
                    serial.get(ValueType::Int, &key),
                    "{key} with {threads} threads"
                );
            }
        }
    }

    #[tokio::test]
    #[should_panic(expected = "a bug")]
    async fn a_panic_on_a_thread_reaches_finish() {
        let (send, take) = sync_channel::<Chunk>(QUEUED);
        let thread = std::thread::spawn(move || {
            drop(take);
            panic!("a bug");
        });
        let lane = Lane {
            queued: Vec::new(),
            send,
            thread,
        };
        let mut appliers = Appliers {
            db: Arc::new(Db::default()),
            lanes: vec![lane],
        };
        appliers.apply(changes().remove(0));
        appliers.finish().await;
    }
}
