//! Group commit: every append and write waiting when the committer is free
//! goes into one backend batch (one COMMIT or one fsync), and each waiter is
//! answered once that batch is durable.
//!
//! A writer's batches are numbered 1, 2, 3, ... and taken in that order
//! only: a batch is either the writer's next one or a resend of one already
//! durable (acknowledged, not applied twice). One that skips ahead is
//! refused, so that no batch can make a later one look durable. A fence
//! (a writer giving up its unanswered batches) moves the writer's next
//! batch past the fence.
//!
//! A writer that has logged nothing for the writer TTL is forgotten, in
//! memory and in the log (kvs-server starts a new writer id at every start,
//! so old ids pile up otherwise). Forgetting a live writer costs nothing but
//! one refused batch: its next one is then a gap, and it takes up again past
//! a fence (kvs-server's `RemoteLog` does so by itself).
//!
//! Each append carries the epoch of the write lease its writer holds (0:
//! none), and a round's batch is appended with the highest among its
//! appends: the log refuses the batch whole unless that is the lease's
//! current epoch. An append of a lower epoch than the round's, or than the
//! highest the log has taken, is refused at once as fenced, never logged;
//! epoch 0 is refused at once only beside a higher one, as the log takes
//! it again once nobody holds the lease.
//!
//! A batch that fails is followed by a recovery of the log; while that
//! fails too, the health service says NOT_SERVING and the committer tries
//! again, backing off, until the log answers: a txn-server left alone
//! during an outage says SERVING again once the database is back.

use std::collections::HashMap;
use std::pin::Pin;
use std::time::{Duration, Instant};

use kvs_core::{Change, Key};
use kvs_log::{LogError, WriterLog, WriterMark};
use kvs_service::backoff::Backoff;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Sleep;

use crate::health::Health;

/// The most requests in one batch.
const MAX_BATCH: usize = 1024;

/// Writers whose durable sequence is kept in memory; past this the cache
/// starts over (it is only a cache: the log has every writer's mark), so
/// that many writer ids cannot grow txn-server's memory for good.
const MAX_CACHED_WRITERS: usize = 16_384;

/// How far ahead of its next batch a writer may fence. A writer has at most
/// a few batches unanswered; a fence further ahead would only burn its
/// sequence numbers (and its writer id with them).
pub const MAX_FENCE_AHEAD: u64 = 1 << 20;

/// Why a batch or a fence was not taken.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The log failed; the writer may retry.
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("batch {0} was given up by its writer")]
    GivenUp(u64),
    #[error("batch {sequence} skips ahead of the writer's next batch, {expected}")]
    Gap { sequence: u64, expected: u64 },
    #[error(
        "fence {fence} is more than {MAX_FENCE_AHEAD} ahead of the writer's next batch, {expected}"
    )]
    FenceTooFar { fence: u64, expected: u64 },
}

/// Where a writer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Every batch up to this one is durable.
    pub durable: u64,
    /// The only batch that will be taken next (after a fence, past it).
    pub next: u64,
}

/// The answer to an acknowledged append: the writer's durable sequence.
pub type Ack = oneshot::Sender<Result<u64, Refused>>;

pub enum Command {
    /// Log `txns`; with a `mark`, the writer's batch `mark.sequence`; if
    /// `epoch` is the lease's current one (0: no lease).
    Append {
        txns: Vec<Change>,
        mark: Option<WriterMark>,
        epoch: u64,
        done: Option<Ack>,
    },
    /// Report a writer's position, counting every append received before;
    /// with a `fence`, refuse the writer's later appends up to it.
    Sequence {
        writer: Key,
        fence: u64,
        reply: oneshot::Sender<Result<Position, Refused>>,
    },
}

/// What the committer knows of writers between rounds.
#[derive(Default)]
struct Writers {
    /// Durable sequences, as far as known; filled from the log.
    durable: HashMap<Key, u64>,
    /// Per writer, the batches it gave up (never to be logged) and not yet
    /// passed by a durable batch of its own, and when.
    fences: HashMap<Key, (u64, Instant)>,
}

impl Writers {
    async fn durable<L: WriterLog>(&mut self, log: &mut L, writer: &Key) -> Result<u64, LogError> {
        if let Some(seq) = self.durable.get(writer) {
            return Ok(*seq);
        }
        let seq = log.writer_sequence(writer).await?;
        if self.durable.len() >= MAX_CACHED_WRITERS {
            self.durable.clear();
        }
        self.durable.insert(writer.clone(), seq);
        Ok(seq)
    }

    fn fence(&self, writer: &Key) -> u64 {
        self.fences.get(writer).map_or(0, |(f, _)| *f)
    }

    /// Forgets writers idle for `ttl`: their marks in the log, their fences
    /// (no batch is on its way that long), and the cache.
    async fn forget_idle<L: WriterLog>(&mut self, log: &mut L, ttl: Duration) {
        match log.forget_writers(ttl).await {
            Ok(0) => {}
            Ok(forgotten) => tracing::info!(forgotten, ?ttl, "forgot the marks of idle writers"),
            Err(e) => tracing::warn!(error = %e, "could not forget idle writers; trying later"),
        }
        self.fences.retain(|_, (_, at)| at.elapsed() < ttl);
        self.durable.clear();
    }

    /// Records batches that became durable; a fence they passed is moot.
    fn committed(&mut self, marks: &HashMap<Key, u64>) {
        for (writer, seq) in marks {
            if self.fences.get(writer).is_some_and(|(f, _)| f <= seq) {
                self.fences.remove(writer);
            }
            if self.durable.len() >= MAX_CACHED_WRITERS && !self.durable.contains_key(writer) {
                self.durable.clear();
            }
            self.durable.insert(writer.clone(), *seq);
        }
    }
}

/// Whether the log answers, as `health` reports it, and while it does not,
/// when to try it again.
struct Liveness {
    health: Health,
    /// Set while the log does not answer.
    down: Option<Backoff>,
    retry: Pin<Box<Sleep>>,
}

impl Liveness {
    fn new(health: Health) -> Liveness {
        Liveness {
            health,
            down: None,
            retry: Box::pin(tokio::time::sleep(Duration::ZERO)),
        }
    }

    async fn report(&mut self, answers: bool) {
        if answers {
            self.down = None;
        } else if self.down.is_none() {
            self.down = Some(crate::reconnect_backoff());
            self.retry_later();
        }
        self.health.set(answers).await;
    }

    fn retry_later(&mut self) {
        if let Some(backoff) = &mut self.down {
            let wait = backoff.next_wait();
            self.retry
                .as_mut()
                .reset(tokio::time::Instant::now() + wait);
        }
    }
}

/// Runs until every sender is gone, then returns: all accepted work done.
/// Writers idle for `writer_ttl` are forgotten. Whether the log answers
/// goes to `health`.
pub async fn run<L: WriterLog>(
    mut log: L,
    mut rx: mpsc::Receiver<Command>,
    writer_ttl: Duration,
    health: Health,
) {
    let mut liveness = Liveness::new(health);
    let mut writers = Writers::default();
    // The highest epoch the log has taken a batch of.
    let mut taken = 0;
    let mut commands = Vec::with_capacity(MAX_BATCH);
    let period = (writer_ttl / 2).clamp(Duration::from_millis(100), Duration::from_secs(3600));
    let mut forget = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    forget.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            received = rx.recv_many(&mut commands, MAX_BATCH) => if received == 0 { break },
            _ = forget.tick() => {
                writers.forget_idle(&mut log, writer_ttl).await;
                continue;
            }
            () = liveness.retry.as_mut(), if liveness.down.is_some() => {
                match log.recover().await {
                    Ok(()) => liveness.report(true).await,
                    Err(e) => {
                        tracing::debug!(error = %e, "transaction log still unavailable");
                        liveness.retry_later();
                    }
                }
                continue;
            }
        }
        let epoch = round_epoch(&commands);
        let mut txns = Vec::new();
        let mut marks: HashMap<Key, u64> = HashMap::new();
        let mut waiting: Vec<(Option<Key>, Option<Ack>)> = Vec::new();
        // Answered once the appends received before them are settled.
        let mut queries = Vec::new();
        for command in commands.drain(..) {
            match command {
                Command::Sequence {
                    writer,
                    fence,
                    reply,
                } => queries.push((writer, fence, reply)),
                Command::Append {
                    txns: t,
                    mark,
                    epoch: e,
                    done,
                } => {
                    if asks(&t, &mark)
                        && let Some(refused) = fenced(e, epoch, taken)
                    {
                        tracing::warn!(writer = ?mark.map(|m| m.writer), reason = %refused, "refused an append of an old epoch");
                        answer(done, Err(refused.into()));
                        continue;
                    }
                    let Some(m) = mark else {
                        txns.extend(t);
                        waiting.push((None, done));
                        continue;
                    };
                    let seen = match writers.durable(&mut log, &m.writer).await {
                        Ok(seen) => seen,
                        Err(e) => {
                            answer(done, Err(e.into()));
                            continue;
                        }
                    };
                    if m.sequence <= seen {
                        // A resend of a batch that is already durable:
                        // acknowledge it without applying it twice.
                        tracing::debug!(writer = %m.writer, sequence = m.sequence, "duplicate batch skipped");
                        answer(done, Ok(seen));
                        continue;
                    }
                    let fence = writers.fence(&m.writer);
                    if m.sequence <= fence {
                        tracing::warn!(writer = %m.writer, sequence = m.sequence, "refused a batch its writer gave up");
                        answer(done, Err(Refused::GivenUp(m.sequence)));
                        continue;
                    }
                    let queued = marks.get(&m.writer).copied().unwrap_or(0);
                    if m.sequence <= queued {
                        // A resend of a batch queued in this round: answered
                        // with it, once it is durable.
                        waiting.push((Some(m.writer), done));
                        continue;
                    }
                    let expected = seen.max(fence).max(queued) + 1;
                    if m.sequence != expected {
                        tracing::warn!(writer = %m.writer, sequence = m.sequence, expected, "refused a batch that skips ahead");
                        answer(
                            done,
                            Err(Refused::Gap {
                                sequence: m.sequence,
                                expected,
                            }),
                        );
                        continue;
                    }
                    txns.extend(t);
                    marks.insert(m.writer.clone(), m.sequence);
                    waiting.push((Some(m.writer), done));
                }
            }
        }
        if !waiting.is_empty() {
            let round = Round {
                txns,
                marks,
                epoch,
                waiting,
            };
            if let Some(answers) = commit(&mut log, &mut writers, round, &mut taken).await {
                liveness.report(answers).await;
            }
        }
        for (writer, fence, reply) in queries {
            let _ = reply.send(position(&mut log, &mut writers, writer, fence).await);
        }
    }
    tracing::info!("all accepted transactions are committed; committer stopped");
}

/// Whether an append asks anything of the log: an empty one without a mark
/// only waits for the rounds before it, whatever its epoch.
fn asks(txns: &[Change], mark: &Option<WriterMark>) -> bool {
    !txns.is_empty() || mark.is_some()
}

/// The epoch a round's batch is appended with: the highest of its appends.
fn round_epoch(commands: &[Command]) -> u64 {
    commands
        .iter()
        .filter_map(|c| match c {
            Command::Append {
                txns, mark, epoch, ..
            } if asks(txns, mark) => Some(*epoch),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

/// Why an append of `epoch` is refused without asking the log, in a round
/// appended with `round` after the log has taken batches of `taken`.
fn fenced(epoch: u64, round: u64, taken: u64) -> Option<LogError> {
    let why = if epoch < round {
        format!("fenced: epoch {epoch}, sent with appends of epoch {round}")
    } else if epoch != 0 && epoch < taken {
        format!("fenced: epoch {epoch}, where the log has taken epoch {taken}")
    } else {
        return None;
    };
    Some(LogError::Fenced(why))
}

/// A writer's position, after fencing its batches up to `fence`.
async fn position<L: WriterLog>(
    log: &mut L,
    writers: &mut Writers,
    writer: Key,
    fence: u64,
) -> Result<Position, Refused> {
    let durable = writers.durable(log, &writer).await?;
    let mut fenced = writers.fence(&writer);
    let expected = durable.max(fenced) + 1;
    if fence > fenced && fence > durable {
        if fence - durable.max(fenced) > MAX_FENCE_AHEAD {
            return Err(Refused::FenceTooFar { fence, expected });
        }
        writers.fences.insert(writer, (fence, Instant::now()));
        fenced = fence;
    }
    Ok(Position {
        durable,
        next: durable.max(fenced) + 1,
    })
}

/// What one round appends, and who waits for it.
struct Round {
    txns: Vec<Change>,
    marks: HashMap<Key, u64>,
    epoch: u64,
    waiting: Vec<(Option<Key>, Option<Ack>)>,
}

/// Appends one round's batches as one, and answers their writers; raises
/// `taken` to the round's epoch once the log took it. Returns whether the
/// log answers (the batch was committed, or the log recovered from its
/// failure), unless the round had nothing to ask it.
async fn commit<L: WriterLog>(
    log: &mut L,
    writers: &mut Writers,
    round: Round,
    taken: &mut u64,
) -> Option<bool> {
    let Round {
        txns,
        marks,
        epoch,
        waiting,
    } = round;
    let mark_list: Vec<WriterMark> = marks
        .iter()
        .map(|(writer, sequence)| WriterMark {
            writer: writer.clone(),
            sequence: *sequence,
        })
        .collect();
    let asked = !(txns.is_empty() && mark_list.is_empty());
    let result = if asked {
        log.append_marked(&txns, &mark_list, epoch).await
    } else {
        Ok(())
    };
    match result {
        Ok(()) => {
            if asked {
                *taken = (*taken).max(epoch);
            }
            writers.committed(&marks);
            for (writer, done) in waiting {
                let seq = writer
                    .and_then(|w| marks.get(&w).or(writers.durable.get(&w)).copied())
                    .unwrap_or(0);
                answer(done, Ok(seq));
            }
            asked.then_some(true)
        }
        Err(e) => {
            tracing::error!(error = %e, kind = ?e.kind(), records = txns.len(), "batch failed; its writers are told why");
            let (kind, reason) = (e.kind(), e.to_string());
            for (_, done) in waiting {
                answer(done, Err(LogError::new(kind, reason.clone()).into()));
            }
            // Whether the failed COMMIT landed is for the log to say.
            writers.durable.clear();
            match log.recover().await {
                Ok(()) => Some(true),
                Err(e) => {
                    tracing::warn!(error = %e, "transaction log still unavailable");
                    Some(false)
                }
            }
        }
    }
}

fn answer(done: Option<Ack>, result: Result<u64, Refused>) {
    if let Some(done) = done {
        let _ = done.send(result);
    }
}

#[cfg(test)]
mod tests {
    use kvs_log::postgres::{PgLease, PgLog, PgOptions};
    use kvs_log::{LeaseAsk, LeaseState, LogLease, MemoryLog};
    use kvs_testkit::pg::PgCluster;

    use super::*;

    type Answer = oneshot::Receiver<Result<u64, Refused>>;

    fn append(seq: u64) -> (Command, Answer) {
        append_as("w", seq, 0)
    }

    /// Batch `seq` of `writer`, holding the lease at `epoch`.
    fn append_as(writer: &str, seq: u64, epoch: u64) -> (Command, Answer) {
        let (done, answer) = oneshot::channel();
        let mark = WriterMark {
            writer: Key::parse(writer).unwrap(),
            sequence: seq,
        };
        let command = Command::Append {
            txns: Vec::new(),
            mark: Some(mark),
            epoch,
            done: Some(done),
        };
        (command, answer)
    }

    /// Waits for an append refused as fenced, and says why.
    async fn fenced(answer: Answer) -> String {
        match answer.await.unwrap() {
            Err(Refused::Log(e)) if e.kind() == kvs_log::ErrorKind::Fenced => e.to_string(),
            other => panic!("not fenced: {other:?}"),
        }
    }

    /// What `holder` gets asking to take or renew the lease at `epoch`.
    async fn take(lease: &PgLease, holder: &str, epoch: u64, ttl: Duration) -> LeaseState {
        let ask = LeaseAsk {
            holder: Key::parse(holder).unwrap(),
            url: format!("http://{holder}"),
            epoch,
            take: true,
            ttl,
        };
        lease.ask(ask).await.unwrap()
    }

    #[tokio::test]
    async fn a_round_goes_with_its_highest_epoch_and_lower_ones_are_fenced_without_the_log() {
        let pg = PgCluster::start().await;
        let log = PgLog::connect(&PgOptions {
            url: pg.url().to_owned(),
            pool_size: 1,
            replay_pool_size: 1,
            timeout: Duration::from_secs(10),
            follow_keep: kvs_log::follow::DEFAULT_KEEP,
        })
        .await
        .unwrap();
        let lease = log.lease();
        assert_eq!(
            take(&lease, "a", 0, Duration::from_secs(600)).await.epoch,
            1
        );

        // Queued before the committer starts: one round.
        let (tx, rx) = mpsc::channel(16);
        let (zero, a0) = append_as("zero", 1, 0);
        let (one, a1) = append_as("one", 1, 1);
        let (flush, flushed) = oneshot::channel();
        let flush = Command::Append {
            txns: Vec::new(),
            mark: None,
            epoch: 0,
            done: Some(flush),
        };
        for c in [zero, one, flush] {
            tx.send(c).await.unwrap();
        }
        let (health, _) = Health::not_serving().await;
        tokio::spawn(run(log, rx, Duration::from_secs(3600), health));
        let why = fenced(a0).await;
        assert_eq!(why, "fenced: epoch 0, sent with appends of epoch 1");
        assert_eq!(a1.await.unwrap().unwrap(), 1);
        assert_eq!(
            flushed.await.unwrap().unwrap(),
            0,
            "a flush is never fenced"
        );

        // Alone, epoch 0 goes to the log, which refuses it while a lease is live.
        let (zero, a0) = append_as("zero", 1, 0);
        tx.send(zero).await.unwrap();
        assert!(fenced(a0).await.starts_with("fenced: epoch 0 while"));

        // Another holder takes the lease once it lapsed, and appends at its
        // epoch; the old epoch is then refused without asking the log.
        assert!(take(&lease, "a", 1, Duration::from_millis(100)).await.held);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !take(&lease, "b", 0, Duration::from_secs(600)).await.held {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the lease never lapsed"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (two, a2) = append_as("two", 1, 2);
        tx.send(two).await.unwrap();
        assert_eq!(a2.await.unwrap().unwrap(), 1);
        let (one, a1) = append_as("one", 2, 1);
        tx.send(one).await.unwrap();
        assert_eq!(
            fenced(a1).await,
            "fenced: epoch 1, where the log has taken epoch 2"
        );
        let (position, answer) = oneshot::channel();
        tx.send(Command::Sequence {
            writer: Key::parse("one").unwrap(),
            fence: 0,
            reply: position,
        })
        .await
        .unwrap();
        assert_eq!(
            answer.await.unwrap().unwrap().durable,
            1,
            "a fenced batch is not durable"
        );
    }

    fn fence(to: u64) -> (Command, oneshot::Receiver<Result<Position, Refused>>) {
        let (reply, answer) = oneshot::channel();
        let command = Command::Sequence {
            writer: Key::parse("w").unwrap(),
            fence: to,
            reply,
        };
        (command, answer)
    }

    /// A committer on a log that keeps nothing (marks live in its memory).
    async fn committer() -> mpsc::Sender<Command> {
        let (tx, rx) = mpsc::channel(16);
        let (health, _) = Health::not_serving().await;
        tokio::spawn(run(MemoryLog, rx, Duration::from_secs(3600), health));
        tx
    }

    async fn send(tx: &mpsc::Sender<Command>, seq: u64) -> Result<u64, Refused> {
        let (command, answer) = append(seq);
        tx.send(command).await.unwrap();
        answer.await.unwrap()
    }

    #[tokio::test]
    async fn a_writer_s_next_batch_and_resends_are_taken_and_one_that_skips_ahead_is_not() {
        let tx = committer().await;
        assert_eq!(send(&tx, 1).await.unwrap(), 1);
        match send(&tx, 3).await {
            Err(Refused::Gap {
                sequence: 3,
                expected: 2,
            }) => {}
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            send(&tx, u64::MAX).await,
            Err(Refused::Gap { .. })
        ));
        assert_eq!(send(&tx, 2).await.unwrap(), 2);
        assert_eq!(send(&tx, 1).await.unwrap(), 2, "a resend is acknowledged");
    }

    #[tokio::test]
    async fn batches_queued_in_one_round_count_in_order() {
        let (tx, rx) = mpsc::channel(16);
        let (one, a1) = append(1);
        let (two, a2) = append(2);
        let (four, a4) = append(4);
        for c in [one, two, four] {
            tx.send(c).await.unwrap();
        }
        let (health, _) = Health::not_serving().await;
        tokio::spawn(run(MemoryLog, rx, Duration::from_secs(3600), health));
        assert_eq!(a1.await.unwrap().unwrap(), 2);
        assert_eq!(a2.await.unwrap().unwrap(), 2);
        assert!(matches!(
            a4.await.unwrap(),
            Err(Refused::Gap { expected: 3, .. })
        ));
    }

    #[tokio::test]
    async fn a_fence_moves_the_next_batch_past_it_within_a_bound() {
        let tx = committer().await;
        assert_eq!(send(&tx, 1).await.unwrap(), 1);
        let (command, answer) = fence(3);
        tx.send(command).await.unwrap();
        assert_eq!(
            answer.await.unwrap().unwrap(),
            Position {
                durable: 1,
                next: 4
            }
        );
        assert!(matches!(send(&tx, 2).await, Err(Refused::GivenUp(2))));
        assert_eq!(send(&tx, 4).await.unwrap(), 4);

        let (command, answer) = fence(4 + MAX_FENCE_AHEAD + 1);
        tx.send(command).await.unwrap();
        assert!(matches!(
            answer.await.unwrap(),
            Err(Refused::FenceTooFar { expected: 5, .. })
        ));
        assert_eq!(send(&tx, 5).await.unwrap(), 5);
    }
}
