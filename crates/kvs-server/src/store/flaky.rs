//! A log for tests of the store: its appends fail, lose their answers or
//! wait, as the test says, and helpers that drive a store over it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kvs_core::{Change, Key, PlainState, State, Value, ValueType};
use kvs_log::{Log, LogError, ReplayStats};
use kvs_testkit::wait_until;
use tokio::sync::watch;

use super::{Db, Durability, Journal, JournalError, Limits, Store};
use crate::watch::{Bounds, History};

/// A log whose appends fail while `failing` is set, as a full disk or an
/// unreachable txn-server would; while `losing_answers` is set it keeps
/// the batch but reports failure, as a connection lost after the commit;
/// while `holding` is set, appends wait.
#[derive(Clone, Default)]
pub(crate) struct FlakyLog {
    pub(crate) failing: Arc<AtomicBool>,
    pub(crate) losing_answers: Arc<AtomicBool>,
    pub(crate) holding: Arc<watch::Sender<bool>>,
    pub(crate) accepted: Arc<Mutex<Vec<Change>>>,
    in_doubt: Arc<Mutex<Vec<Change>>>,
    /// The size of each batch appended.
    pub(crate) batch_bytes: Arc<Mutex<Vec<usize>>>,
    /// Appends begun, held or not.
    pub(crate) begun: Arc<AtomicUsize>,
}

impl Log for FlakyLog {
    async fn replay(
        &mut self,
        _visit: impl FnMut(Change) + Send + 'static,
    ) -> Result<ReplayStats, LogError> {
        Ok(ReplayStats::default())
    }
    async fn append(&mut self, batch: &[Change]) -> Result<(), LogError> {
        self.begun.fetch_add(1, Ordering::SeqCst);
        let _ = self.holding.subscribe().wait_for(|held| !held).await;
        tokio::task::yield_now().await;
        if self.failing.load(Ordering::SeqCst) {
            return Err(LogError::Unavailable("disk on fire".into()));
        }
        self.accepted.lock().unwrap().extend_from_slice(batch);
        let bytes = batch.iter().map(|c| c.txn.size()).sum();
        self.batch_bytes.lock().unwrap().push(bytes);
        if self.losing_answers.load(Ordering::SeqCst) {
            *self.in_doubt.lock().unwrap() = batch.to_vec();
            return Err(LogError::Unavailable("answer lost".into()));
        }
        Ok(())
    }
    async fn recover(&mut self) -> Result<Vec<Change>, LogError> {
        if self.failing.load(Ordering::SeqCst) || self.losing_answers.load(Ordering::SeqCst) {
            return Err(LogError::Unavailable("still unreachable".into()));
        }
        Ok(std::mem::take(&mut *self.in_doubt.lock().unwrap()))
    }
}

/// Long enough for any machine: a test that does not reach an outcome
/// timeout on purpose never does.
pub(crate) const PATIENT: Duration = Duration::from_secs(120);

pub(crate) fn store(
    mode: Durability,
    outcome_timeout: Duration,
) -> (Arc<Store>, FlakyLog, tokio::task::JoinHandle<()>) {
    let (journal, queue) = Journal::new(mode, 1024, false, outcome_timeout, Arc::default());
    let store = Arc::new(Store {
        db: Arc::new(Db::default()),
        journal,
        limits: Limits::NONE,
        history: Arc::new(History::new(Bounds {
            revisions: 1000,
            bytes: usize::MAX,
        })),
    });
    store.journal.open(0);
    let log = FlakyLog::default();
    let committer = {
        let (store, log) = (store.clone(), log.clone());
        tokio::spawn(async move { store.commit(log, queue).await })
    };
    (store, log, committer)
}

/// Puts `v` under the int key `key`; returns the write's revision.
pub(crate) async fn put(store: &Store, key: &str, v: i32) -> Result<u64, JournalError> {
    let written = store
        .write(&Key::parse(key).unwrap(), |tx| {
            tx.put(Value::Int(v), None)
                .expect("the test store has no limits");
            Ok::<_, JournalError>(())
        })
        .await?;
    Ok(written.revision)
}

pub(crate) async fn wait_up(store: &Store) {
    wait_until("the journal recovered", PATIENT, || store.journal.is_up()).await;
}

pub(crate) async fn wait_down(store: &Store) {
    wait_until("an append failed", PATIENT, || !store.journal.is_up()).await;
}

/// `put(key, v)` on a task of its own, so that the test can change the
/// log while the write waits for its outcome.
pub(crate) fn spawn_put(
    store: &Arc<Store>,
    key: &'static str,
    v: i32,
) -> tokio::task::JoinHandle<Result<u64, JournalError>> {
    let store = store.clone();
    tokio::spawn(async move { put(&store, key, v).await })
}

/// Every value in `db`.
pub(crate) fn memory(db: &Db) -> PlainState {
    let mut state = PlainState::new();
    for ty in ValueType::ALL {
        for key in db.keys(ty, "", None, usize::MAX).0 {
            let value = db.get(ty, key.as_str()).unwrap();
            state.put(key, value);
        }
    }
    state
}
