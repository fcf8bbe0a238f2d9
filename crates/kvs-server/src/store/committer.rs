//! The committer: from queued transactions to a durable batch.
//!
//! One committer task takes everything queued, appends it as one batch (one
//! fsync or one round trip), and answers every writer of the batch. That is
//! group commit: the more writers, the larger the batches.
//!
//! When an append fails, the committer closes the gate (so no writer is
//! between changing a table and queueing), takes back everything queued,
//! undoes it newest first, and retries the log until it recovers. Memory then
//! again equals the log. Writes that never reached the log are answered
//! "not applied" at once. The batch that failed may have reached it (an
//! answer lost on the way back), so its writers wait for the recovery to
//! tell: durable, and they succeed; not, and they are "not applied". Only if
//! the recovery cannot tell within the outcome timeout are they answered
//! "outcome unknown". A "not applied" is thus always true, and a client may
//! retry it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use kvs_core::{Change, Txn};
use kvs_log::{ErrorKind, Log, LogError};
use kvs_service::backoff::Backoff;
use tokio::sync::mpsc;

use super::Store;
use super::journal::{Answer, JournalError, Pending, Queue};

/// The most transactions in one append.
const MAX_BATCH: usize = 4096;
/// About the most bytes in one append (see `Txn::size`): a batch is one
/// message to txn-server, which must take it whole. A transaction larger
/// than this goes in a batch of its own.
const MAX_BATCH_BYTES: usize = 4 << 20;

/// The writers of a failed batch, waiting to learn whether it is durable.
struct InDoubt {
    writers: Vec<Answer>,
    /// Transactions in the batch: what the log hands back when all of it
    /// turned out durable.
    records: usize,
    /// When they are answered "outcome unknown" if the log has not told.
    deadline: tokio::time::Instant,
    /// Why the append failed.
    reason: String,
}

impl InDoubt {
    fn shutting_down(&self) -> JournalError {
        JournalError::OutcomeUnknown(format!("{}; the server is shutting down", self.reason))
    }

    fn answer(&mut self, outcome: Result<(), JournalError>) {
        for w in self.writers.drain(..) {
            let _ = w.send(outcome.clone());
        }
    }

    /// Runs `step`, answering the writers "outcome unknown" if their
    /// deadline passes meanwhile; `step` itself is never cut short.
    async fn meanwhile<T>(&mut self, step: impl Future<Output = T>) -> T {
        let mut step = std::pin::pin!(step);
        loop {
            tokio::select! {
                out = &mut step => return out,
                _ = tokio::time::sleep_until(self.deadline), if !self.writers.is_empty() => {
                    tracing::warn!(
                        writers = self.writers.len(),
                        "the log has not told whether the failed batch is durable; answering its writers \"outcome unknown\""
                    );
                    let why = format!("{}; the log did not recover within --outcome-timeout-ms", self.reason);
                    self.answer(Err(JournalError::OutcomeUnknown(why)));
                }
            }
        }
    }
}

impl Store {
    /// Takes queued transactions in batches and makes them durable, until
    /// [`super::Journal::close`]. Returns once everything accepted is flushed.
    pub(crate) async fn commit<L: Log>(&self, mut log: L, queue: Queue) {
        let Queue(mut rx) = queue;
        let j = &self.journal;
        let mut batch = Vec::with_capacity(MAX_BATCH);
        // Received but left for a later batch, oldest first.
        let mut waiting = VecDeque::new();
        let mut txns = Vec::new();
        let mut closing = false;
        loop {
            if waiting.is_empty() && !closing {
                closing = tokio::select! {
                    n = rx.recv_many(&mut batch, MAX_BATCH) => n == 0,
                    _ = j.finish.notified() => true,
                };
                waiting.extend(batch.drain(..));
            }
            if closing {
                // The gate is shut: whatever is queued now is all there is.
                while let Ok(p) = rx.try_recv() {
                    waiting.push_back(p);
                }
            }
            let mut bytes = 0;
            while let Some(p) = waiting.front() {
                let size: usize = p.txns.iter().map(Txn::size).sum();
                if !batch.is_empty() && (bytes + size > MAX_BATCH_BYTES || batch.len() == MAX_BATCH)
                {
                    break;
                }
                bytes += size;
                batch.extend(waiting.pop_front());
            }
            for p in &mut batch {
                let revision = p.revision;
                txns.extend(p.txns.drain(..).map(|t| Change::new(revision, t)));
            }
            let last = batch.last().map(|p| p.revision);
            let started = Instant::now();
            let result = if txns.is_empty() {
                Ok(())
            } else {
                log.append(&txns).await
            };
            match result {
                Ok(()) => {
                    j.metrics.log_appended(txns.len(), started.elapsed());
                    if let Some(revision) = last {
                        j.made_durable(revision);
                    }
                    // Durable now: watchers may be told.
                    self.history.record(txns.drain(..));
                    for p in batch.drain(..) {
                        if let Some(done) = p.done {
                            let _ = done.send(Ok(()));
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, records = txns.len(), "log append failed; undoing the batch");
                    j.metrics.log_failures.inc();
                    let mut doubt = InDoubt {
                        writers: batch.iter_mut().filter_map(|p| p.done.take()).collect(),
                        records: txns.len(),
                        deadline: tokio::time::Instant::now() + j.outcome_timeout,
                        reason: e.to_string(),
                    };
                    batch.extend(waiting.drain(..));
                    self.fail(&mut batch, &mut rx, e.to_string());
                    if e.kind() == ErrorKind::Fenced && j.replica {
                        // Refused, so not in the log: the node follows now.
                        doubt.answer(Err(JournalError::NotPrimary));
                        tracing::warn!(error = %e, "another node holds the write lease; following the log");
                        j.was_fenced();
                        txns.clear();
                        continue;
                    }
                    if !goes_on_after(&e) {
                        // The log refused the batch, for good: it is not in it.
                        doubt.answer(Err(JournalError::Unavailable(e.to_string())));
                        return self.stop(e);
                    }
                    if closing {
                        doubt.answer(Err(doubt.shutting_down()));
                    } else {
                        match self.recover(&mut log, doubt).await {
                            Ok(true) => {}
                            Ok(false) => break,
                            Err(e) => return self.stop(e),
                        }
                    }
                }
            }
            txns.clear();
            if closing && waiting.is_empty() {
                break;
            }
        }
        tracing::info!("transaction log flushed and closed");
    }

    /// Undoes every queued write, newest first, and answers each still
    /// waiting "not applied"; the journal stays down until the log recovers.
    fn fail(&self, batch: &mut Vec<Pending>, rx: &mut mpsc::Receiver<Pending>, reason: String) {
        let j = &self.journal;
        let _excl = j.shut_gate();
        j.went_down(reason.clone());
        while let Ok(p) = rx.try_recv() {
            batch.push(p);
        }
        for p in batch.iter_mut().rev() {
            while let Some(change) = p.undo.pop() {
                self.db.apply(change);
            }
        }
        j.undid_all();
        for p in batch.drain(..) {
            if let Some(done) = p.done {
                let _ = done.send(Err(JournalError::Unavailable(reason.clone())));
            }
        }
    }

    /// A failure no retry can mend (a damaged or misconfigured log, a bug):
    /// the committer stops, and the server with it, naming `e`.
    fn stop(&self, e: LogError) {
        tracing::error!(error = %e, kind = ?e.kind(), "the transaction log failed for good; the committer stops");
        self.journal.set_down_reason(e.to_string());
    }

    /// Retries the log until it takes writes again (true), the journal is
    /// closed meanwhile (false), or it fails in a way retrying cannot mend,
    /// and answers the writers of the failed batch by what it says.
    async fn recover<L: Log>(&self, log: &mut L, mut doubt: InDoubt) -> Result<bool, LogError> {
        let j = &self.journal;
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
        let mut wait = backoff.next_wait();
        loop {
            let closed = doubt
                .meanwhile(async {
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => false,
                        _ = j.finish.notified() => true,
                    }
                })
                .await;
            if closed {
                doubt.answer(Err(doubt.shutting_down()));
                return Ok(false);
            }
            match doubt.meanwhile(log.recover()).await {
                Ok(redo) => {
                    let _excl = j.shut_gate();
                    let outcome = if redo.is_empty() {
                        Err(JournalError::Unavailable(doubt.reason.clone()))
                    } else {
                        // The answer was lost, not the batch: memory follows the log.
                        tracing::warn!(
                            records = redo.len(),
                            "the failed batch turned out durable; applying it again"
                        );
                        let whole = redo.len() == doubt.records;
                        for change in &redo {
                            self.db.apply(change.clone());
                        }
                        self.history.record(redo);
                        if whole {
                            Ok(())
                        } else {
                            tracing::error!(
                                records = doubt.records,
                                "only part of the failed batch is durable; its writers cannot be told which"
                            );
                            Err(JournalError::OutcomeUnknown(format!(
                                "{}; only part of its batch reached the log",
                                doubt.reason
                            )))
                        }
                    };
                    doubt.answer(outcome);
                    j.recovered();
                    tracing::info!("transaction log recovered; taking writes again");
                    return Ok(true);
                }
                Err(e) if !goes_on_after(&e) => {
                    doubt.answer(Err(JournalError::OutcomeUnknown(format!(
                        "{}; then the log failed for good: {e}",
                        doubt.reason
                    ))));
                    return Err(e);
                }
                Err(e) => {
                    wait = backoff.next_wait();
                    tracing::warn!(error = %e, retry_in = ?wait, "transaction log still unavailable");
                }
            }
        }
    }
}

/// Whether the committer can go on after `e`: the log comes back (it is
/// unreachable now) or is fine (it refused one batch, which is not in it);
/// not when it is damaged or misconfigured, or KVS has a bug.
fn goes_on_after(e: &LogError) -> bool {
    match e.kind() {
        ErrorKind::Unavailable | ErrorKind::Refused => true,
        // A node without the lease (a standalone one beside standbys) must
        // not write at all.
        ErrorKind::DataLoss
        | ErrorKind::Misconfigured
        | ErrorKind::Internal
        | ErrorKind::Fenced => false,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use kvs_core::{Key, PlainState, Value, ValueType};

    use super::*;
    use crate::store::Durability;
    use crate::store::flaky::{PATIENT, memory, put, spawn_put, store, wait_down, wait_up};

    #[tokio::test]
    async fn batches_stay_under_the_byte_cap_and_keep_their_order() {
        let (store, log, committer) = store(Durability::Async, PATIENT);
        let big = "x".repeat(1 << 20);
        // Queued all at once: the committer runs only when this task waits.
        for i in 0..12 {
            store
                .write(&Key::parse(&format!("k{i}")).unwrap(), |tx| {
                    tx.put(Value::Str(big.clone()), None).expect("no limits");
                    Ok::<_, JournalError>(())
                })
                .await
                .unwrap();
        }
        store.journal.close();
        committer.await.unwrap();
        let sizes = log.batch_bytes.lock().unwrap().clone();
        assert!(sizes.len() >= 3, "{sizes:?}");
        assert!(sizes.iter().all(|&b| b <= MAX_BATCH_BYTES), "{sizes:?}");
        let keys: Vec<String> = log
            .accepted
            .lock()
            .unwrap()
            .iter()
            .map(|c| c.txn.key().to_string())
            .collect();
        let expected: Vec<String> = (0..12).map(|i| format!("k{i}")).collect();
        assert_eq!(keys, expected);
    }

    #[tokio::test]
    async fn a_write_that_did_not_reach_the_log_is_refused_and_undone() {
        let (store, log, _committer) = store(Durability::Sync, PATIENT);
        put(&store, "a", 1).await.unwrap();
        log.failing.store(true, Ordering::SeqCst);
        let refused = spawn_put(&store, "a", 2);
        wait_down(&store).await;
        // Undone while the log cannot say; writes meanwhile are refused at
        // once and change nothing.
        assert_eq!(store.db.get(ValueType::Int, "a"), Some(Value::Int(1)));
        assert!(matches!(
            put(&store, "b", 1).await,
            Err(JournalError::Unavailable(_))
        ));
        assert_eq!(store.db.get(ValueType::Int, "b"), None);

        log.failing.store(false, Ordering::SeqCst);
        // The log is back and does not hold the batch: "not applied".
        assert!(matches!(
            refused.await.unwrap(),
            Err(JournalError::Unavailable(_))
        ));
        assert_eq!(store.db.get(ValueType::Int, "a"), Some(Value::Int(1)));
        wait_up(&store).await;
        put(&store, "a", 3).await.unwrap();
        let accepted = log.accepted.lock().unwrap().clone();
        let values: Vec<_> = accepted
            .iter()
            .map(|c| match &c.txn {
                Txn::Put {
                    value: Value::Int(v),
                    ..
                } => *v,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(values, [1, 3]);
    }

    #[tokio::test]
    async fn a_write_whose_answer_was_lost_succeeds_once_the_log_says_it_is_durable() {
        let (store, log, _committer) = store(Durability::Sync, PATIENT);
        put(&store, "a", 1).await.unwrap();
        log.losing_answers.store(true, Ordering::SeqCst);
        let in_doubt = spawn_put(&store, "a", 2);
        wait_down(&store).await;
        // Not shown while the outcome is unknown ...
        assert_eq!(store.db.get(ValueType::Int, "a"), Some(Value::Int(1)));
        log.losing_answers.store(false, Ordering::SeqCst);
        // ... and answered as applied once the log says it is durable: a 503
        // here would invite a retry that applies it twice.
        in_doubt.await.unwrap().unwrap();
        assert_eq!(store.db.get(ValueType::Int, "a"), Some(Value::Int(2)));
        assert_eq!(log.accepted.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_write_whose_outcome_the_log_does_not_tell_in_time_is_answered_unknown() {
        let (store, log, _committer) = store(Durability::Sync, Duration::from_millis(1));
        put(&store, "a", 1).await.unwrap();
        // The log stays unreachable until the answer is in.
        log.losing_answers.store(true, Ordering::SeqCst);
        match put(&store, "a", 2).await {
            Err(JournalError::OutcomeUnknown(why)) => {
                assert!(why.contains("--outcome-timeout-ms"), "{why}");
                assert!(why.contains("answer lost"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(store.db.get(ValueType::Int, "a"), Some(Value::Int(1)));
        log.losing_answers.store(false, Ordering::SeqCst);
        wait_up(&store).await;
        // It was durable: it is there, as a re-read before a retry finds.
        assert_eq!(store.db.get(ValueType::Int, "a"), Some(Value::Int(2)));
    }

    #[tokio::test]
    async fn a_write_in_doubt_at_shutdown_is_answered_unknown() {
        let (store, log, committer) = store(Durability::Sync, PATIENT);
        log.losing_answers.store(true, Ordering::SeqCst);
        let in_doubt = spawn_put(&store, "a", 1);
        wait_down(&store).await;
        store.journal.close();
        match in_doubt.await.unwrap() {
            Err(JournalError::OutcomeUnknown(why)) => {
                assert!(why.contains("shutting down"), "{why}")
            }
            other => panic!("{other:?}"),
        }
        committer.await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory_equals_the_log_after_failures_under_concurrent_writes() {
        for mode in [Durability::Sync, Durability::Async] {
            let (store, log, committer) = store(mode, PATIENT);
            let writers: Vec<_> = (0..8)
                .map(|w| {
                    let store = store.clone();
                    tokio::spawn(async move {
                        for i in 0..300 {
                            let key = format!("k{}", (w * 7 + i) % 13);
                            let _ = put(&store, &key, i).await;
                            if i % 50 == 0 {
                                tokio::time::sleep(Duration::from_millis(2)).await;
                            }
                        }
                    })
                })
                .collect();
            // Alternate between failed appends, lost answers and health.
            for flip in 0..9 {
                tokio::time::sleep(Duration::from_millis(5)).await;
                log.failing.store(flip % 3 == 0, Ordering::SeqCst);
                log.losing_answers.store(flip % 3 == 1, Ordering::SeqCst);
            }
            log.failing.store(false, Ordering::SeqCst);
            log.losing_answers.store(false, Ordering::SeqCst);
            for w in writers {
                w.await.unwrap();
            }
            wait_up(&store).await;
            store.journal.close();
            committer.await.unwrap();

            let mut logged = PlainState::new();
            for c in log.accepted.lock().unwrap().iter().cloned() {
                c.txn.apply_to(&mut logged);
            }
            assert!(
                store.journal.metrics.log_failures.get() > 0,
                "{mode:?}: no append failed"
            );
            assert_eq!(memory(&store.db), logged, "{mode:?}");
        }
    }
}
