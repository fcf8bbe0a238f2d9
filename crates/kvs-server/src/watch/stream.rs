//! The watchers: how many there are, the stream each is sent, and the end
//! of every stream when the server shuts down.
//!
//! A watcher reads the shared [`History`] at its own pace, so a slow one
//! holds nothing of its own beyond a few of its revisions and the event
//! being written. One that falls
//! so far behind that the history dropped what it has yet to read is sent
//! an `error` event and disconnected.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::response::sse::Event;
use futures_util::Stream;
use kvs_core::{Txn, ValueType};
use serde_json::json;
use tokio::sync::watch;

use super::event::{Described, describe, of_revision};
use super::history::{Gone, History, Revision};
use crate::metrics::Metrics;

/// Revisions a stream takes from the history at a time. Their events are
/// made one at a time, as they are sent, so a stream holds little more.
const PAGE: usize = 16;

/// Which changes a watcher is sent.
pub(crate) struct Filter {
    /// `None`: every type.
    pub(crate) ty: Option<ValueType>,
    pub(crate) prefix: String,
}

impl Filter {
    fn matches(&self, txn: &Txn) -> bool {
        self.ty.is_none_or(|ty| txn.value_type() == ty)
            && txn.key().as_str().starts_with(&self.prefix)
    }
}

/// Why a watcher was not let in.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// At `--max-watchers`.
    Full,
    ShuttingDown,
}

pub(crate) struct Watchers {
    max: usize,
    active: AtomicUsize,
    /// How often an idle stream is sent a comment.
    pub(crate) heartbeat: Duration,
    /// Set once shutdown starts: every stream ends.
    closing: watch::Sender<bool>,
    metrics: Arc<Metrics>,
}

impl Watchers {
    pub(crate) fn new(max: usize, heartbeat: Duration, metrics: Arc<Metrics>) -> Watchers {
        Watchers {
            max,
            active: AtomicUsize::new(0),
            heartbeat,
            closing: watch::Sender::new(false),
            metrics,
        }
    }

    /// A seat for one more watcher, held as long as its stream.
    pub(crate) fn join(self: &Arc<Self>) -> Result<Seat, Refused> {
        if *self.closing.borrow() {
            return Err(Refused::ShuttingDown);
        }
        self.active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .map_err(|_| Refused::Full)?;
        self.metrics.watchers.inc();
        Ok(Seat(self.clone()))
    }

    /// Ends every stream, and refuses new ones: graceful shutdown waits
    /// for open answers, and a stream would otherwise never end.
    pub(crate) fn close(&self) {
        self.closing.send_replace(true);
    }
}

/// One watcher's place among [`Watchers`]; given back when dropped.
pub(crate) struct Seat(Arc<Watchers>);

impl Drop for Seat {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
        self.0.metrics.watchers.dec();
    }
}

/// One watcher's stream: the events after revision `since` that pass
/// `filter`, for as long as the watcher reads them, until shutdown.
pub(crate) fn stream(
    history: Arc<History>,
    seat: Seat,
    filter: Filter,
    since: u64,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let closing = seat.0.closing.subscribe();
    let state = Watch {
        history,
        seat,
        filter,
        cursor: since,
        ready: VecDeque::new(),
        last: None,
        ended: false,
        closing,
    };
    futures_util::stream::unfold(state, |mut w| async move {
        loop {
            if let Some(revision) = w.ready.pop_front() {
                if let Some(event) = w.event(&revision) {
                    w.seat.0.metrics.watch_events.inc();
                    return Some((Ok(event), w));
                }
                continue;
            }
            if w.ended {
                return None;
            }
            if let Some(last) = w.last.take() {
                w.ended = true;
                return Some((Ok(last), w));
            }
            w.fill().await;
        }
    })
}

struct Watch {
    history: Arc<History>,
    seat: Seat,
    filter: Filter,
    /// Every revision up to this one was looked at.
    cursor: u64,
    /// Revisions taken from the history, not yet sent.
    ready: VecDeque<Arc<Revision>>,
    /// The event that ends the stream, once what is ready is sent.
    last: Option<Event>,
    /// The last event was sent.
    ended: bool,
    closing: watch::Receiver<bool>,
}

impl Watch {
    /// Takes the next revisions from the history, waiting for some if
    /// there are none yet; or the last event, at shutdown or when it fell
    /// behind.
    async fn fill(&mut self) {
        if *self.closing.borrow() {
            self.last = Some(Event::default().comment("the server is shutting down"));
            return;
        }
        let after = match self.history.after(self.cursor, PAGE) {
            Ok(after) => after,
            Err(Gone { oldest }) => {
                self.seat.0.metrics.watch_cut.inc();
                self.last = Some(fell_behind(self.cursor, oldest));
                return;
            }
        };
        self.ready.extend(after.revisions);
        if after.upto > self.cursor {
            self.cursor = after.upto;
            return;
        }
        tokio::select! {
            _ = self.history.wait_after(self.cursor) => {}
            _ = self.closing.wait_for(|closing| *closing) => {}
        }
    }

    /// The event of `revision`'s changes that pass the filter, if any do.
    fn event(&self, revision: &Revision) -> Option<Event> {
        let r = revision.revision;
        let changes: Vec<Described> = revision
            .changes
            .iter()
            .filter(|txn| self.filter.matches(txn))
            .filter_map(|txn| describe(txn, r))
            .collect();
        if changes.is_empty() {
            return None;
        }
        let (kind, data) = of_revision(r, changes);
        Some(
            Event::default()
                .id(r.to_string())
                .event(kind)
                .data(data.to_string()),
        )
    }
}

/// The last event of a watcher that fell behind: what it missed is no
/// longer kept. It has no id, so that a reconnect resumes from the last
/// event it did get, and is told 410 Gone.
fn fell_behind(cursor: u64, oldest: u64) -> Event {
    let detail = format!(
        "this watcher fell behind: the changes after revision {cursor} are no longer kept (the history starts after revision {oldest}; see --watch-history); list the keys again, then watch from the listing's KVS-Revision"
    );
    Event::default()
        .event("error")
        .data(json!({ "detail": detail, "oldest": oldest }).to_string())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use axum::response::IntoResponse;
    use axum::response::sse::Sse;
    use futures_util::StreamExt;
    use kvs_core::ValueType;
    use kvs_testkit::wait_until;

    use super::*;
    use crate::store::Durability;
    use crate::store::flaky::{PATIENT, put, spawn_put, store, wait_down};

    /// The `(id, data)` of each event in what a stream sent so far.
    fn events(sent: &str) -> Vec<(u64, serde_json::Value)> {
        sent.split("\n\n")
            .filter_map(|event| {
                let field = |name: &str| {
                    event
                        .lines()
                        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                        .map(str::trim)
                };
                let id = field("id")?.parse().unwrap();
                Some((id, serde_json::from_str(field("data")?).unwrap()))
            })
            .collect()
    }

    #[tokio::test]
    async fn a_watcher_sees_only_what_became_durable_and_only_once_it_is() {
        let (store, log, _committer) = store(Durability::Sync, PATIENT);
        let watchers = Arc::new(Watchers::new(1, PATIENT, Arc::default()));
        let filter = Filter {
            ty: None,
            prefix: String::new(),
        };
        let seat = watchers.join().unwrap();
        let sse = Sse::new(stream(store.history.clone(), seat, filter, 0));
        let mut body = sse.into_response().into_body().into_data_stream();

        put(&store, "a", 1).await.unwrap();
        // Not in the log: undone, never told.
        log.failing.store(true, Ordering::SeqCst);
        let refused = spawn_put(&store, "a", 2);
        wait_down(&store).await;
        log.failing.store(false, Ordering::SeqCst);
        refused.await.unwrap().unwrap_err();
        // In the log after all, its answer lost: told once recovery finds it.
        log.losing_answers.store(true, Ordering::SeqCst);
        let in_doubt = spawn_put(&store, "a", 3);
        wait_down(&store).await;
        log.losing_answers.store(false, Ordering::SeqCst);
        let recovered = in_doubt.await.unwrap().unwrap();

        // Applied in memory, on its way to the log: not told yet.
        log.holding.send_replace(true);
        let begun = log.begun.load(Ordering::SeqCst);
        let held = spawn_put(&store, "a", 4);
        wait_until("the append began", PATIENT, || {
            log.begun.load(Ordering::SeqCst) > begun
        })
        .await;
        assert_eq!(
            store.db.get(ValueType::Int, "a"),
            Some(kvs_core::Value::Int(4))
        );
        let pending = store.history.after(recovered, 10).unwrap();
        assert!(pending.revisions.is_empty(), "told before it is durable");
        log.holding.send_replace(false);
        let last = held.await.unwrap().unwrap();

        let mut sent = String::new();
        while events(&sent).last().map(|e| e.0) != Some(last) {
            let chunk = body.next().await.expect("the stream goes on").unwrap();
            sent.push_str(std::str::from_utf8(&chunk).unwrap());
        }
        let values: Vec<_> = events(&sent)
            .into_iter()
            .map(|(id, data)| (id, data["value"].as_i64().unwrap()))
            .collect();
        assert_eq!(values, [(1, 1), (recovered, 3), (last, 4)]);
        assert!(recovered > 2, "the undone write kept its revision");
    }
}
