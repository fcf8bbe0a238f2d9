//! A log read by a task of its own (txn-server's `ReadTransactions`): the
//! transactions as the task reads them, then how the read ended.
//!
//! A channel alone cannot say whether a read is complete: it closes the same
//! way when the reader has read everything, when it failed before it could
//! send its error, and when it panicked. So the reader's task is kept, and
//! its result is the end of the stream: [`ReplayStream::finish`] is `Ok`
//! only when the reader returned its totals after reading the whole log.
//!
//! The transactions cross in chunks: a hand-off per transaction woke the
//! consumer for each, most of what a replay cost txn-server. What the
//! reader took after its last full chunk is left behind when it is done
//! (however it ends), and the consumer takes it once the channel closes.

use std::any::Any;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use kvs_core::{Change, Revisions};
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::{LogError, ReplayStats};

/// The receiving end of a channel of chunks, taken one item at a time.
pub struct Chunks<T> {
    rx: mpsc::Receiver<Vec<T>>,
    /// What is left of the chunk received last.
    chunk: std::vec::IntoIter<T>,
}

impl<T> Chunks<T> {
    pub fn new(rx: mpsc::Receiver<Vec<T>>) -> Chunks<T> {
        Chunks {
            rx,
            chunk: Vec::new().into_iter(),
        }
    }

    /// The next item; `None` once the channel is closed and every chunk
    /// taken.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        loop {
            if let Some(item) = self.chunk.next() {
                return Poll::Ready(Some(item));
            }
            match ready!(self.rx.poll_recv(cx)) {
                Some(chunk) => self.chunk = chunk.into_iter(),
                None => return Poll::Ready(None),
            }
        }
    }

    /// Takes `chunk` as the last, once the channel has said `None`.
    fn end_with(&mut self, chunk: Vec<T>) {
        self.chunk = chunk.into_iter();
    }

    fn close(&mut self) {
        self.rx.close();
    }
}

/// Transactions read so far by a reader task, and the task itself.
pub struct ReplayStream {
    chunks: Chunks<Change>,
    /// Where the reader leaves its last chunk.
    rest: Arc<Mutex<Vec<Change>>>,
    /// `None` once finished.
    task: Option<JoinHandle<Result<ReplayStats, LogError>>>,
    /// Transactions handed out by [`ReplayStream::next`].
    received: u64,
}

/// A reader's side of a [`ReplayStream`].
pub struct Sink {
    tx: mpsc::Sender<Vec<Change>>,
    /// Taken, not yet handed on.
    chunk: Vec<Change>,
    /// Where `chunk` goes when the reader is done.
    rest: Arc<Mutex<Vec<Change>>>,
    /// Taken so far.
    sent: u64,
    /// Gives a revision to each change read without one.
    revisions: Revisions,
}

/// Transactions handed on at once.
const CHUNK: usize = 256;
/// Chunks that may wait between the reader and its consumer.
const BUFFER: usize = 4;

fn gone() -> LogError {
    LogError::Unavailable("the replay's receiver went away".into())
}

impl Sink {
    /// Changes read without a revision get those after `head` (a log that
    /// keeps its head apart from its records says so before the first).
    pub fn number_after(&mut self, head: u64) {
        self.revisions = Revisions::after(head);
    }

    /// Hands one transaction on, with its revision (with the chunk it
    /// fills); fails when the consumer went away, which ends the read.
    pub async fn send(&mut self, change: Change) -> Result<(), LogError> {
        match self.take(change) {
            Some(full) => self.tx.send(full).await.map_err(|_| gone()),
            None => Ok(()),
        }
    }

    /// [`Sink::send`] from a blocking thread.
    pub fn blocking_send(&mut self, change: Change) -> Result<(), LogError> {
        match self.take(change) {
            Some(full) => self.tx.blocking_send(full).map_err(|_| gone()),
            None => Ok(()),
        }
    }

    /// Adds `change` to the chunk; returns the chunk once it is full.
    fn take(&mut self, mut change: Change) -> Option<Vec<Change>> {
        self.revisions.stamp(&mut change);
        self.chunk.push(change);
        self.sent += 1;
        let full = self.chunk.len() == CHUNK;
        full.then(|| std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK)))
    }

    /// The highest revision handed on so far, or numbered after.
    pub fn head(&self) -> u64 {
        self.revisions.head()
    }

    /// Transactions handed on so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }
}

impl Drop for Sink {
    /// The reader is done: what it took after its last full chunk arrives
    /// once the channel closes, which it does as this sender goes.
    fn drop(&mut self) {
        *self.rest.lock() = std::mem::take(&mut self.chunk);
    }
}

impl ReplayStream {
    fn with(make: impl FnOnce(Sink) -> JoinHandle<Result<ReplayStats, LogError>>) -> Self {
        let (tx, rx) = mpsc::channel(BUFFER);
        let rest = Arc::new(Mutex::new(Vec::new()));
        let task = make(Sink {
            tx,
            chunk: Vec::with_capacity(CHUNK),
            rest: rest.clone(),
            sent: 0,
            revisions: Revisions::default(),
        });
        ReplayStream {
            chunks: Chunks::new(rx),
            rest,
            task: Some(task),
            received: 0,
        }
    }

    /// Runs `read` as a task; it returns its totals once it has read the
    /// whole log (its `records` must be what it sent).
    pub fn spawn<F>(read: impl FnOnce(Sink) -> F) -> ReplayStream
    where
        F: Future<Output = Result<ReplayStats, LogError>> + Send + 'static,
    {
        ReplayStream::with(|sink| tokio::spawn(read(sink)))
    }

    /// [`ReplayStream::spawn`] for a reader that blocks.
    pub fn spawn_blocking(
        read: impl FnOnce(Sink) -> Result<ReplayStats, LogError> + Send + 'static,
    ) -> ReplayStream {
        ReplayStream::with(|sink| tokio::task::spawn_blocking(move || read(sink)))
    }

    /// The next transaction; `None` once the reader has stopped sending, for
    /// whatever reason: [`ReplayStream::finish`] says which.
    pub async fn next(&mut self) -> Option<Change> {
        poll_fn(|cx| self.poll_next(cx)).await
    }

    /// [`ReplayStream::next`] as a poll, for a hand-written `Stream`.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Change>> {
        loop {
            if let Some(txn) = ready!(self.chunks.poll_next(cx)) {
                self.received += 1;
                return Poll::Ready(Some(txn));
            }
            let rest = std::mem::take(&mut *self.rest.lock());
            if rest.is_empty() {
                return Poll::Ready(None);
            }
            self.chunks.end_with(rest);
        }
    }

    /// How the read ended, once [`ReplayStream::next`] has said `None`: the
    /// reader's totals if it read the whole log and every transaction it
    /// sent was received; its error if it failed; an error too if it
    /// panicked, or if the stream is left before its end.
    pub async fn finish(mut self) -> Result<ReplayStats, LogError> {
        poll_fn(|cx| self.poll_finish(cx)).await
    }

    /// [`ReplayStream::finish`] as a poll; after it was ready once, it
    /// answers an error.
    pub fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<Result<ReplayStats, LogError>> {
        // A reader still sending learns that nobody reads any more.
        self.chunks.close();
        let Some(task) = self.task.as_mut() else {
            return Poll::Ready(Err(LogError::Unavailable(
                "the replay was finished already".into(),
            )));
        };
        let joined = ready!(Pin::new(task).poll(cx));
        self.task = None;
        Poll::Ready(match joined {
            Ok(Ok(stats)) if stats.records == self.received => Ok(stats),
            Ok(Ok(stats)) => Err(LogError::Unavailable(format!(
                "the replay was left after {} of its {} transactions",
                self.received, stats.records
            ))),
            Ok(Err(e)) => Err(e),
            Err(e) if e.is_panic() => Err(LogError::Unavailable(format!(
                "the log reader panicked after {} transactions: {}",
                self.received,
                panic_message(e.into_panic())
            ))),
            Err(e) => Err(LogError::Unavailable(format!(
                "the log reader stopped after {} transactions: {e}",
                self.received
            ))),
        })
    }

    /// Hands every transaction to `visit`, then finishes.
    pub async fn drain(mut self, mut visit: impl FnMut(Change)) -> Result<ReplayStats, LogError> {
        while let Some(txn) = self.next().await {
            visit(txn);
        }
        self.finish().await
    }
}

impl Drop for ReplayStream {
    /// Nobody waits for the rest: stop the reader (a blocking one stops at
    /// its next send).
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn panic_message(panic: Box<dyn Any + Send>) -> String {
    match panic.downcast::<String>() {
        Ok(s) => *s,
        Err(panic) => panic
            .downcast_ref::<&str>()
            .map_or_else(|| "no message".to_owned(), |s| (*s).to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use kvs_core::{Key, Txn, Value};

    use super::*;

    /// A put of `n` at revision `n + 1`.
    fn put(n: i32) -> Change {
        Change::new(
            n as u64 + 1,
            Txn::Put {
                key: Key::parse("k").unwrap(),
                value: Value::Int(n),
            },
        )
    }

    async fn collect(stream: ReplayStream) -> (Vec<Change>, Result<ReplayStats, LogError>) {
        let mut got = Vec::new();
        let end = stream.drain(|t| got.push(t)).await;
        (got, end)
    }

    #[tokio::test]
    async fn a_reader_that_read_everything_ends_with_its_totals() {
        let stream = ReplayStream::spawn(|mut sink| async move {
            sink.send(put(1)).await?;
            sink.send(put(2)).await?;
            Ok(ReplayStats {
                records: sink.sent(),
                skipped: 3,
                ..ReplayStats::default()
            })
        });
        let (got, end) = collect(stream).await;
        assert_eq!(got, [put(1), put(2)]);
        let stats = end.unwrap();
        assert_eq!((stats.records, stats.skipped), (2, 3));
    }

    #[tokio::test]
    async fn changes_read_without_a_revision_are_numbered_after_the_head() {
        let stream = ReplayStream::spawn(|mut sink| async move {
            sink.number_after(10);
            let mut unstamped = put(0);
            unstamped.revision = kvs_core::change::UNSTAMPED;
            sink.send(unstamped.clone()).await?;
            sink.send(put(20)).await?;
            sink.send(unstamped).await?;
            Ok(ReplayStats {
                records: sink.sent(),
                head: sink.head(),
                ..ReplayStats::default()
            })
        });
        let (got, end) = collect(stream).await;
        let revisions: Vec<u64> = got.iter().map(|c| c.revision).collect();
        assert_eq!(revisions, [11, 21, 22]);
        assert_eq!(end.unwrap().head, 22);
    }

    #[tokio::test]
    async fn a_reader_that_panics_mid_way_ends_with_an_error() {
        let stream = ReplayStream::spawn(|mut sink| async move {
            sink.send(put(1)).await?;
            panic!("column value has another type");
        });
        let (got, end) = collect(stream).await;
        assert_eq!(got, [put(1)]);
        let e = end.unwrap_err().to_string();
        assert!(
            e.contains("panicked after 1 transactions") && e.contains("column value"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_blocking_reader_that_panics_ends_with_an_error() {
        let stream = ReplayStream::spawn_blocking(|mut sink| {
            sink.blocking_send(put(1))?;
            panic!("bad frame");
        });
        let (got, end) = collect(stream).await;
        assert_eq!(got, [put(1)]);
        assert!(end.unwrap_err().to_string().contains("bad frame"));
    }

    /// Puts of 0 to `n - 1`.
    fn puts(n: usize) -> Vec<Change> {
        (0..n as i32).map(put).collect()
    }

    #[tokio::test]
    async fn full_chunks_and_the_rest_arrive_in_order() {
        let n = 3 * CHUNK + 5;
        let stream = ReplayStream::spawn_blocking(move |mut sink| {
            for change in puts(n) {
                sink.blocking_send(change)?;
            }
            Ok(ReplayStats {
                records: sink.sent(),
                ..ReplayStats::default()
            })
        });
        let (got, end) = collect(stream).await;
        assert_eq!(got, puts(n));
        assert_eq!(end.unwrap().records, n as u64);
    }

    #[tokio::test]
    async fn a_reader_that_panics_after_full_chunks_ends_with_an_error_after_all_of_them() {
        let stream = ReplayStream::spawn(|mut sink| async move {
            for change in puts(2 * CHUNK + 1) {
                sink.send(change).await?;
            }
            panic!("bad row");
        });
        let (got, end) = collect(stream).await;
        assert_eq!(got, puts(2 * CHUNK + 1));
        let e = end.unwrap_err().to_string();
        assert!(
            e.contains(&format!("panicked after {} transactions", 2 * CHUNK + 1)),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_reader_error_is_the_end_of_the_stream() {
        let stream = ReplayStream::spawn(|mut sink| async move {
            sink.send(put(1)).await?;
            Err(LogError::BadRow {
                table: "int_transactions".into(),
                id: 7,
                reason: "column value is text, not integer".into(),
            })
        });
        let (got, end) = collect(stream).await;
        assert_eq!(got, [put(1)]);
        assert!(matches!(end, Err(LogError::BadRow { id: 7, .. })));
    }

    #[tokio::test]
    async fn totals_that_do_not_match_what_arrived_are_an_error() {
        let stream = ReplayStream::spawn(|mut sink| async move {
            sink.send(put(1)).await?;
            Ok(ReplayStats {
                records: 2,
                ..ReplayStats::default()
            })
        });
        let (_, end) = collect(stream).await;
        assert!(end.unwrap_err().to_string().contains("1 of its 2"));
    }

    #[tokio::test]
    async fn a_stream_finished_before_its_end_is_an_error_and_stops_the_reader() {
        let mut stream = ReplayStream::spawn(|mut sink| async move {
            for n in 0.. {
                sink.send(put(n)).await?;
            }
            unreachable!()
        });
        assert_eq!(stream.next().await, Some(put(0)));
        let e = stream.finish().await.unwrap_err().to_string();
        assert!(e.contains("receiver went away"), "{e}");
    }
}
