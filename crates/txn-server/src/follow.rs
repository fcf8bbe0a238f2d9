//! `Follow` streams: the log's changes after a revision, then each one as
//! it becomes durable, read from the backend's [`ChangeFeed`].
//!
//! A stream reads a page from the feed only when the one before was taken
//! (its task in [`crate::replays::Replays`] hands on a few batches at most,
//! at the client's pace), so a slow follower costs a bounded buffer; one
//! that falls behind what the log keeps is told OUT_OF_RANGE and re-syncs.

use std::collections::VecDeque;
use std::time::Duration;

use kvs_core::Change;
use kvs_log::{ChangeFeed, FollowError};
use kvs_proto::api::{FollowBatch, Transaction};
use prost::Message;
use tokio::time::Instant;
use tokio_stream::Stream;
use tonic::Status;

use crate::service::log_status;

/// Transactions read from the feed at once.
const PAGE: usize = 1024;

/// A batch's encoded transactions stop growing at this size (a single
/// revision larger than that goes whole).
const BATCH_BYTES: usize = 1 << 20;

/// A batch is sent at least this often, empty if nothing came (a
/// heartbeat); as often, the feed is read again even without a wake-up.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// The stream of the changes after `after`.
pub fn stream<F: ChangeFeed>(
    feed: F,
    after: u64,
) -> impl Stream<Item = Result<FollowBatch, Status>> + Send + 'static {
    let woken = feed.woken();
    let follower = Follower {
        feed,
        woken,
        from: after,
        after,
        head: 0,
        pending: VecDeque::new(),
        started: false,
        ended: false,
    };
    futures_util::stream::unfold(follower, |mut f| async move {
        let next = f.next().await?;
        Some((next, f))
    })
}

struct Follower<F> {
    feed: F,
    woken: tokio::sync::watch::Receiver<()>,
    /// Where the client asked to start.
    from: u64,
    /// The last revision sent.
    after: u64,
    /// The log's head at the last read.
    head: u64,
    /// Read, not sent yet: whole revisions.
    pending: VecDeque<Change>,
    /// Whether anything was sent: the first read that finds nothing is
    /// answered at once, so that a follower learns the head.
    started: bool,
    ended: bool,
}

impl<F: ChangeFeed> Follower<F> {
    async fn next(&mut self) -> Option<Result<FollowBatch, Status>> {
        if self.ended {
            return None;
        }
        let heartbeat_at = Instant::now() + HEARTBEAT;
        loop {
            if !self.pending.is_empty() {
                return Some(Ok(self.batch()));
            }
            // Before the read: a change made durable after it wakes us.
            self.woken.mark_unchanged();
            match self.feed.read_after(self.after, PAGE).await {
                Ok(page) => {
                    self.head = page.head;
                    let after = self.after;
                    self.pending
                        .extend(page.changes.into_iter().filter(|c| c.revision > after));
                }
                Err(e) => {
                    self.ended = true;
                    return Some(Err(match e {
                        e @ FollowError::TooOld { .. } => Status::out_of_range(e.to_string()),
                        FollowError::Log(e) => log_status(e),
                    }));
                }
            }
            if !self.pending.is_empty() {
                continue;
            }
            if !self.started || Instant::now() >= heartbeat_at {
                self.started = true;
                return Some(Ok(FollowBatch {
                    transactions: Vec::new(),
                    head: self.head,
                }));
            }
            tokio::select! {
                _ = self.woken.changed() => {}
                () = tokio::time::sleep_until(heartbeat_at) => {}
            }
        }
    }

    /// The next batch of whole revisions from `pending`.
    fn batch(&mut self) -> FollowBatch {
        let mut transactions = Vec::new();
        let mut bytes = 0;
        while let Some(revision) = self.pending.front().map(|c| c.revision) {
            if bytes >= BATCH_BYTES {
                break;
            }
            while let Some(c) = self.pending.front().filter(|c| c.revision == revision) {
                let t = Transaction::from(c);
                bytes += t.encoded_len();
                transactions.push(t);
                self.pending.pop_front();
            }
            self.after = revision;
        }
        self.started = true;
        FollowBatch {
            transactions,
            head: self.head.max(self.after),
        }
    }
}

impl<F> Drop for Follower<F> {
    fn drop(&mut self) {
        tracing::info!(
            from = self.from,
            after = self.after,
            head = self.head,
            "a follow stream ended"
        );
    }
}
