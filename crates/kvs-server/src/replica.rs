//! Nodes that share one log through txn-server: `--role standby` and
//! `--role follower`.
//!
//! - A follower replays the log, then follows txn-server's change stream,
//!   applying each durable change as it arrives: it serves reads, listings
//!   and watches from its own memory, and redirects writes to the primary
//!   ([`routing`]).
//! - Standbys share the write lease ([`lease`]). The one that holds it is
//!   the primary: its appends carry the lease's epoch, which txn-server
//!   checks inside the database, so a primary that lost the lease cannot
//!   write even before it knows. The others follow, and take the lease
//!   once it lapses; the one that does catches up to the end of the log
//!   (nothing older can be appended by then) and opens for writes. A
//!   primary that loses the lease, or has an append fenced, steps down,
//!   replays the log afresh (its undone writes may have been given
//!   revisions the new primary reuses) and follows.

pub(crate) mod lease;
pub(crate) mod routing;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::FutureExt;
use kvs_core::Change;
use kvs_log::LogError;
use kvs_proto::api::FollowBatch;
use kvs_service::backoff::Backoff;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::config::Role;
use crate::store::Store;
use crate::store::remote::{FollowError, RemoteLog};
use lease::Lease;
use routing::Routing;

/// A node's part in a shared log.
pub(crate) struct Replica {
    role: Role,
    /// Replays and follows the log, and keeps the lease: a connection of
    /// its own, so that neither waits behind the committer's appends.
    log: RemoteLog,
    /// The epoch the committer's appends carry.
    epoch: Arc<AtomicU64>,
    lease: Lease,
    routing: Arc<Routing>,
    check: Duration,
}

/// Why following stopped.
enum Followed {
    /// This node took the lease.
    TookLease,
    /// It applied everything the log held when it started to catch up.
    CaughtUp,
    /// It lost the lease while catching up.
    LostLease,
}

/// What a follow stream gave.
enum Next {
    Batch(FollowBatch),
    /// Nothing: it ended or broke, or there is none; a new one is due at
    /// the instant.
    Again(Instant),
}

impl Replica {
    pub(crate) fn new(
        role: Role,
        log: RemoteLog,
        epoch: Arc<AtomicU64>,
        lease: Lease,
        routing: Arc<Routing>,
        check: Duration,
    ) -> Replica {
        Replica {
            role,
            log,
            epoch,
            lease,
            routing,
            check,
        }
    }

    /// Follows, leads and steps down, from the replayed revision `head`,
    /// until the task is aborted (at shutdown); returns only when the log
    /// fails in a way no retry mends (a txn-server without the lease, a
    /// damaged log).
    pub(crate) async fn run(mut self, store: Arc<Store>, position: u64) -> LogError {
        match self.roles(&store, position).await {
            Err(e) => e,
        }
    }

    async fn roles(
        &mut self,
        store: &Arc<Store>,
        mut position: u64,
    ) -> Result<Infallible, LogError> {
        // Where the primary is, before the node is ready and redirects
        // writes there.
        self.lease.check(&self.log, &self.routing, false).await?;
        store.journal.follow_from(position);
        loop {
            let Followed::TookLease = self.follow(store, &mut position, None).await? else {
                continue;
            };
            let epoch = self.lease.epoch();
            tracing::info!(
                epoch,
                revision = position,
                "took the write lease; catching up with the log"
            );
            let Followed::CaughtUp = self.follow(store, &mut position, Some(epoch)).await? else {
                continue;
            };
            self.epoch.store(epoch, Ordering::Release);
            store.journal.metrics.lease_epoch.set(epoch as i64);
            store.journal.metrics.follow_lag.set(0);
            // A fence of the last time this node led is no news now.
            let _ = store.journal.fenced.notified().now_or_never();
            store.journal.open(position);
            self.routing.lead();
            tracing::info!(epoch, revision = position, "primary: taking writes");
            let why = {
                // Aborted when dropped: as the node steps down, or with
                // this task at shutdown.
                let mut expirer = JoinSet::new();
                expirer.spawn(store.clone().expire());
                self.lead(store).await?
            };
            store.journal.metrics.lease_epoch.set(0);
            store.journal.step_down();
            store.journal.settled().await;
            tracing::warn!(
                why,
                "stepped down: following the log, after replaying it afresh"
            );
            position = self.resync(store).await?;
        }
    }

    /// Applies the log's changes after `position` as they come. Returns
    /// when a standby takes the lease; when
    /// `catching_up` after taking it at that epoch, once it has applied
    /// every change the log held when the stream started, or when it no
    /// longer holds the lease at that epoch.
    async fn follow(
        &mut self,
        store: &Arc<Store>,
        position: &mut u64,
        catching_up: Option<u64>,
    ) -> Result<Followed, LogError> {
        let take = self.role == Role::Standby;
        let mut ticks = tokio::time::interval(self.check);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let mut stream = None;
        let mut retry_at = Instant::now();
        loop {
            if stream.is_none() && Instant::now() >= retry_at {
                match self.log.follow(*position).await {
                    Ok(s) => {
                        tracing::info!(after = *position, "following the log");
                        stream = Some(s);
                    }
                    Err(FollowError::TooOld(why)) => {
                        tracing::warn!(
                            why,
                            "the log no longer streams from here: replaying it afresh"
                        );
                        *position = self.resync(store).await?;
                        continue;
                    }
                    Err(FollowError::Log(e)) if e.is_temporary() => {
                        let wait = backoff.next_wait();
                        tracing::warn!(error = %e, retry_in = ?wait, "cannot follow the log now");
                        retry_at = Instant::now() + wait;
                    }
                    Err(FollowError::Log(e)) => return Err(e),
                }
            }
            let next = async {
                let Some(s) = stream.as_mut() else {
                    tokio::time::sleep_until(retry_at).await;
                    return Ok(Next::Again(retry_at));
                };
                let again = Instant::now() + Duration::from_millis(100);
                match s.message().await {
                    Ok(Some(batch)) => Ok(Next::Batch(batch)),
                    Ok(None) => Ok(Next::Again(again)),
                    Err(status) => match FollowError::from(status) {
                        FollowError::Log(e) if e.is_temporary() => {
                            tracing::warn!(error = %e, "the change stream broke; following again");
                            Ok(Next::Again(again))
                        }
                        e => Err(e),
                    },
                }
            };
            tokio::select! {
                _ = ticks.tick() => {
                    let held = self.lease.check(&self.log, &self.routing, take).await?;
                    match catching_up {
                        None if held && take => return Ok(Followed::TookLease),
                        Some(epoch) if !held || self.lease.epoch() != epoch => {
                            return Ok(Followed::LostLease);
                        }
                        _ => {}
                    }
                }
                next = next => match next {
                    Ok(Next::Batch(batch)) => {
                        backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
                        let head = batch.head;
                        apply(store, batch, position)?;
                        if catching_up.is_some() && *position >= head {
                            return Ok(Followed::CaughtUp);
                        }
                    }
                    Ok(Next::Again(at)) => {
                        stream = None;
                        retry_at = retry_at.max(at);
                    }
                    Err(FollowError::TooOld(why)) => {
                        tracing::warn!(why, "fell behind what the log streams: replaying it afresh");
                        stream = None;
                        *position = self.resync(store).await?;
                    }
                    Err(FollowError::Log(e)) => return Err(e),
                }
            }
        }
    }

    /// Renews the lease while the node is primary. Returns why it stopped
    /// leading.
    async fn lead(&mut self, store: &Store) -> Result<&'static str, LogError> {
        let mut ticks = tokio::time::interval(self.check);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = store.journal.fenced.notified() => {
                    return Ok("an append was fenced: another node holds the write lease");
                }
                _ = ticks.tick() => {
                    if !self.lease.check(&self.log, &self.routing, true).await? {
                        return Ok("the write lease lapsed before it was renewed, or another node took it");
                    }
                    // Taken again after it lapsed: another node may have
                    // written meanwhile.
                    if self.lease.epoch() != self.epoch.load(Ordering::Acquire) {
                        return Ok("the write lease lapsed and was taken again at a new epoch");
                    }
                }
            }
        }
    }

    /// Replays the log into an empty store and follows from its end.
    async fn resync(&mut self, store: &Arc<Store>) -> Result<u64, LogError> {
        store.journal.start_over();
        store.db.clear();
        store.history.clear();
        let stats = crate::startup::replay(&mut self.log, store).await?;
        store.history.complete_after(stats.history_from);
        store.journal.follow_from(stats.head);
        tracing::info!(
            records = stats.records,
            revision = stats.head,
            "replayed the log afresh; following it"
        );
        Ok(stats.head)
    }
}

/// Applies a batch of the change stream: its revisions together, then
/// durable for reads and told to watchers. An empty batch (a heartbeat)
/// says the log holds nothing after `position` up to its head.
fn apply(store: &Store, batch: FollowBatch, position: &mut u64) -> Result<(), LogError> {
    let changes = batch
        .transactions
        .into_iter()
        .map(Change::try_from)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| LogError::Corrupt {
            path: "txn-server's change stream".into(),
            offset: *position,
            reason: e.to_string(),
        })?;
    let reached = match changes.last() {
        Some(last) => last.revision,
        None => batch.head,
    };
    if reached <= *position {
        return Ok(());
    }
    store.db.apply_together(&changes);
    *position = reached;
    store.journal.followed(reached);
    let metrics = &store.journal.metrics;
    metrics.followed.inc_by(changes.len() as u64);
    metrics
        .follow_lag
        .set(batch.head.saturating_sub(reached) as i64);
    store.history.record(changes);
    Ok(())
}
