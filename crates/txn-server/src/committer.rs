//! Group commit: every append and write waiting when the committer is free
//! goes into one backend batch (one COMMIT or one fsync), and each waiter is
//! answered once that batch is durable.

use std::collections::HashMap;

use kvs_core::{Key, Txn};
use kvs_log::{Log, LogError, WriterMark};
use tokio::sync::{mpsc, oneshot};

/// The most requests in one batch.
const MAX_BATCH: usize = 1024;

/// The answer to an acknowledged append: the writer's durable sequence.
pub type Ack = oneshot::Sender<Result<u64, LogError>>;

pub enum Command {
    /// Log `txns`; with a `mark`, the writer's batch `mark.sequence`.
    Append {
        txns: Vec<Txn>,
        mark: Option<WriterMark>,
        done: Option<Ack>,
    },
    /// Report a writer's durable sequence, counting every append received
    /// before; with a `fence`, refuse the writer's later appends up to it.
    Sequence { writer: Key, fence: u64, reply: Ack },
}

/// Runs until every sender is gone, then returns: all accepted work done.
pub async fn run<L: Log>(mut log: L, mut rx: mpsc::Receiver<Command>) {
    // Writers' durable sequences, as far as known; filled from the log.
    let mut durable: HashMap<Key, u64> = HashMap::new();
    // Per writer, the batches it gave up: never to be logged.
    let mut fences: HashMap<Key, u64> = HashMap::new();
    let mut commands = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut commands, MAX_BATCH).await > 0 {
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
                    mark: None,
                    done,
                } => {
                    txns.extend(t);
                    waiting.push((None, done));
                }
                Command::Append {
                    txns: t,
                    mark: Some(m),
                    done,
                } => {
                    let seen = match known(&mut log, &mut durable, &m.writer).await {
                        Ok(seen) => seen,
                        Err(e) => {
                            answer(done, Err(e));
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
                    if fences.get(&m.writer).is_some_and(|f| m.sequence <= *f) {
                        tracing::warn!(writer = %m.writer, sequence = m.sequence, "refused a batch its writer gave up");
                        answer(
                            done,
                            Err(LogError::Unavailable(format!(
                                "batch {} was given up by its writer",
                                m.sequence
                            ))),
                        );
                        continue;
                    }
                    if marks.get(&m.writer).is_some_and(|s| m.sequence <= *s) {
                        // A resend of a batch queued in this round: answered
                        // with it, once it is durable.
                        waiting.push((Some(m.writer), done));
                        continue;
                    }
                    txns.extend(t);
                    marks.insert(m.writer.clone(), m.sequence);
                    waiting.push((Some(m.writer), done));
                }
            }
        }
        if !waiting.is_empty() {
            commit(&mut log, &mut durable, txns, marks, waiting).await;
        }
        for (writer, fence, reply) in queries {
            let seq = known(&mut log, &mut durable, &writer).await;
            if let Ok(seq) = seq
                && fence > seq
            {
                let f = fences.entry(writer).or_default();
                *f = (*f).max(fence);
            }
            let _ = reply.send(seq);
        }
    }
    tracing::info!("all accepted transactions are committed; committer stopped");
}

/// Appends one round's batches as one, and answers their writers.
async fn commit<L: Log>(
    log: &mut L,
    durable: &mut HashMap<Key, u64>,
    txns: Vec<Txn>,
    marks: HashMap<Key, u64>,
    waiting: Vec<(Option<Key>, Option<Ack>)>,
) {
    let mark_list: Vec<WriterMark> = marks
        .iter()
        .map(|(writer, sequence)| WriterMark {
            writer: writer.clone(),
            sequence: *sequence,
        })
        .collect();
    let result = if txns.is_empty() && mark_list.is_empty() {
        Ok(())
    } else {
        log.append(&txns, &mark_list).await
    };
    match result {
        Ok(()) => {
            durable.extend(marks);
            for (writer, done) in waiting {
                let seq = writer.and_then(|w| durable.get(&w).copied()).unwrap_or(0);
                answer(done, Ok(seq));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, records = txns.len(), "batch failed; its writers are told to retry");
            let reason = e.to_string();
            for (_, done) in waiting {
                answer(done, Err(LogError::Unavailable(reason.clone())));
            }
            // Whether the failed COMMIT landed is for the log to say.
            durable.clear();
            if let Err(e) = log.recover().await {
                tracing::warn!(error = %e, "transaction log still unavailable");
            }
        }
    }
}

async fn known<L: Log>(
    log: &mut L,
    durable: &mut HashMap<Key, u64>,
    writer: &Key,
) -> Result<u64, LogError> {
    if let Some(seq) = durable.get(writer) {
        return Ok(*seq);
    }
    let seq = log.writer_sequence(writer).await?;
    durable.insert(writer.clone(), seq);
    Ok(seq)
}

fn answer(done: Option<Ack>, result: Result<u64, LogError>) {
    if let Some(done) = done {
        let _ = done.send(result);
    }
}
