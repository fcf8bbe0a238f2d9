//! `ReadTransactions` streams: at most `--max-replay-streams` at once, and
//! none kept by a client that stops reading or by a server that stops.
//! `Follow` streams are served the same way, with places of their own
//! (`--max-follow-streams`): a [`Kind`] names which.
//!
//! A replay holds a database connection or a file-reading thread while it
//! reads, and one whose client reads nothing never ends by itself: tonic
//! polls a response only while the client's flow-control window has room.
//! So each replay is polled by a task of its own, which hands it on to tonic
//! through a short queue, in chunks of what it has ready (a hand-off per
//! message woke tonic's side for each). A hand-off that waits longer than
//! the stall limit, or the server's shutdown, ends the replay there (the
//! reader stops) and frees its place. A place is kept until the client has taken the whole
//! response or went away, not only until the log was read: a client cannot
//! pile up replays by never reading them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use kvs_log::Chunks;
use kvs_service::throttle::Throttle;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_stream::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use tonic::Status;

/// Refused replays are logged at most once a second (`held_back` counts the
/// rest): a client can ask for them as fast as it likes.
static REFUSALS: Throttle = Throttle::new(Duration::from_secs(1));

/// The places for replays, shared by every connection.
#[derive(Clone)]
pub struct Replays {
    places: Arc<Semaphore>,
    max: usize,
    stall: Duration,
    stopping: CancellationToken,
    kind: Kind,
}

/// What the streams are, as their logs and statuses name them.
#[derive(Debug, Clone, Copy)]
pub struct Kind {
    /// "replay", "follow stream".
    pub noun: &'static str,
    /// The setting that limits them.
    pub limit: &'static str,
    /// What a client cut off at shutdown does once the server is back.
    pub again: &'static str,
    /// The most messages in a chunk. Two chunks at most wait between a
    /// stream's task and tonic: one handed on, the next being handed.
    pub hand_off: usize,
}

/// `ReadTransactions` streams.
pub const REPLAY: Kind = Kind {
    noun: "replay",
    limit: "--max-replay-streams",
    again: "replay again",
    // Each a transaction.
    hand_off: 32,
};

/// `Follow` streams.
pub const FOLLOW: Kind = Kind {
    noun: "follow stream",
    limit: "--max-follow-streams",
    again: "follow again from the last revision received",
    // Each a batch of up to about 1 MiB: a follower that does not read
    // holds a few of them, no more.
    hand_off: 2,
};

/// Why a replay's task stopped handing it on.
enum Stop {
    /// All of it was handed on.
    Done,
    /// Its client went away.
    Left,
    /// Its client took nothing for the stall limit.
    Stalled,
    /// The server is shutting down.
    Stopping,
}

impl Replays {
    /// At most `max` streams of `kind` at once; each ended once its client
    /// has taken nothing for `stall`, or once `stopping` is cancelled.
    pub fn new(kind: Kind, max: usize, stall: Duration, stopping: CancellationToken) -> Replays {
        Replays {
            places: Arc::new(Semaphore::new(max)),
            max,
            stall,
            stopping,
            kind,
        }
    }

    /// Starts the replay that `start` makes, in a place of its own, or
    /// refuses it (without starting it) when every place is taken.
    pub fn serve<S, T>(&self, start: impl FnOnce() -> S) -> Result<Handed<T>, Status>
    where
        S: Stream<Item = Result<T, Status>> + Send + 'static,
        T: Send + 'static,
    {
        let Kind {
            noun,
            limit,
            again,
            hand_off,
        } = self.kind;
        let Ok(place) = self.places.clone().try_acquire_owned() else {
            if let Some(held_back) = REFUSALS.admit() {
                tracing::warn!(
                    max = self.max,
                    held_back,
                    "refused a {noun}: as many are open as {limit} allows"
                );
            }
            return Err(Status::resource_exhausted(format!(
                "txn-server is serving as many {noun}s as it may at once ({}, its {limit}); \
                 try again once one has ended",
                self.max
            )));
        };
        let (tx, rx) = mpsc::channel(1);
        let (cut_tx, cut_rx) = oneshot::channel();
        let (stall, stopping) = (self.stall, self.stopping.clone());
        let replay = start();
        tokio::spawn(async move {
            let (stop, sent) = hand_on(replay, &tx, hand_off, stall, &stopping).await;
            // The reader stopped with the replay; now the place is free.
            drop(place);
            match stop {
                Stop::Done => {}
                Stop::Left => tracing::info!(sent, "a client left its {noun} before its end"),
                Stop::Stalled => {
                    tracing::warn!(
                        ?stall,
                        sent,
                        "a client took nothing of its {noun} for --replay-stall-secs; \
                         ended the {noun} to free its place"
                    );
                    let _ = cut_tx.send(Status::unavailable(format!(
                        "txn-server ended this {noun}: nothing of it was taken for {stall:?} \
                         (--replay-stall-secs)"
                    )));
                }
                Stop::Stopping => {
                    tracing::info!(sent, "ended a {noun}: txn-server is shutting down");
                    let _ = cut_tx.send(Status::unavailable(format!(
                        "txn-server is shutting down; {again} once it is back"
                    )));
                }
            }
        });
        Ok(Handed {
            chunks: Chunks::new(rx),
            cut: Some(cut_rx),
        })
    }
}

/// Hands `replay` on through `tx` in chunks of at most `chunk` messages
/// (its next one and those ready behind it), each within `stall`, until it
/// ends, its client goes away, or `stopping`; then, holding the place, waits
/// (as long again at most) for the client to take the rest. Returns why it
/// stopped and how many messages it handed on. The replay is dropped on
/// return, which stops its reader.
async fn hand_on<S, T>(
    replay: S,
    tx: &mpsc::Sender<Vec<Result<T, Status>>>,
    chunk: usize,
    stall: Duration,
    stopping: &CancellationToken,
) -> (Stop, u64)
where
    S: Stream<Item = Result<T, Status>>,
{
    let mut replay = std::pin::pin!(replay);
    let mut sent = 0;
    loop {
        let next = tokio::select! {
            biased;
            () = stopping.cancelled() => return (Stop::Stopping, sent),
            () = tx.closed() => return (Stop::Left, sent),
            next = replay.next() => next,
        };
        let Some(message) = next else { break };
        let mut messages = vec![message];
        while messages.len() < chunk {
            let ready = std::future::poll_fn(|cx| Poll::Ready(replay.as_mut().poll_next(cx)));
            match ready.await {
                Poll::Ready(Some(message)) => messages.push(message),
                Poll::Ready(None) | Poll::Pending => break,
            }
        }
        let n = messages.len() as u64;
        tokio::select! {
            biased;
            () = stopping.cancelled() => return (Stop::Stopping, sent),
            handed = tokio::time::timeout(stall, tx.send(messages)) => match handed {
                Ok(Ok(())) => sent += n,
                Ok(Err(_)) => return (Stop::Left, sent),
                Err(_) => return (Stop::Stalled, sent),
            },
        }
    }
    tokio::select! {
        () = stopping.cancelled() => (Stop::Done, sent),
        taken = tokio::time::timeout(stall, tx.closed()) => match taken {
            Ok(()) => (Stop::Done, sent),
            Err(_) => (Stop::Stalled, sent),
        },
    }
}

/// A replay as tonic sends it: what its task handed on, then, if the task
/// had to cut it short, the status saying why.
pub struct Handed<T> {
    chunks: Chunks<Result<T, Status>>,
    /// `None` once the end was given.
    cut: Option<oneshot::Receiver<Status>>,
}

impl<T: Unpin> Stream for Handed<T> {
    type Item = Result<T, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(message) = ready!(self.chunks.poll_next(cx)) {
            return Poll::Ready(Some(message));
        }
        let Some(cut) = self.cut.as_mut() else {
            return Poll::Ready(None);
        };
        let cut = ready!(Pin::new(cut).poll(cx));
        self.cut = None;
        // No status when the replay was handed on whole: it carried its own end.
        Poll::Ready(cut.ok().map(Err))
    }
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    fn endless() -> impl Stream<Item = Result<u64, Status>> + Send + 'static {
        tokio_stream::iter(0..).map(Ok)
    }

    /// What a client that starts reading now gets: the messages, and the
    /// status that ends them.
    async fn read(mut handed: Handed<u64>) -> (u64, Status) {
        let mut got = 0;
        loop {
            match handed.next().await {
                Some(Ok(_)) => got += 1,
                Some(Err(status)) => return (got, status),
                None => panic!("the replay ended without a status"),
            }
        }
    }

    #[tokio::test]
    async fn a_replay_nobody_reads_is_cut_after_the_stall_limit_and_frees_its_place() {
        let replays = Replays::new(
            REPLAY,
            1,
            Duration::from_millis(100),
            CancellationToken::new(),
        );
        let idle = replays.serve(endless).unwrap();
        let refused = replays.serve(endless).err().unwrap();
        assert_eq!(refused.code(), Code::ResourceExhausted);
        assert!(
            refused.message().contains("--max-replay-streams"),
            "{refused:?}"
        );

        kvs_testkit::wait_until(
            "the stalled replay's place to be free",
            Duration::from_secs(30),
            || replays.places.available_permits() == 1,
        )
        .await;
        let (got, end) = read(idle).await;
        assert!(
            (1..=REPLAY.hand_off as u64).contains(&got),
            "what was handed on before the stall, one chunk: {got}"
        );
        assert_eq!(end.code(), Code::Unavailable);
        assert!(end.message().contains("--replay-stall-secs"), "{end:?}");
    }

    #[tokio::test]
    async fn shutting_down_ends_open_replays_with_a_status() {
        let stopping = CancellationToken::new();
        let replays = Replays::new(REPLAY, 2, Duration::from_secs(30), stopping.clone());
        let idle = replays.serve(endless).unwrap();
        stopping.cancel();
        let (_, end) = read(idle).await;
        assert_eq!(end.code(), Code::Unavailable);
        assert!(end.message().contains("shutting down"), "{end:?}");
    }
}
