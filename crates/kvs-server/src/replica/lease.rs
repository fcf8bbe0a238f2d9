//! The write lease, as a node keeps it: taken, renewed or only read at
//! every check, always by the database's clock in txn-server.

use std::time::Duration;

use kvs_log::{ErrorKind, LogError};
use kvs_proto::api::LeaseRequest;
use tokio::time::Instant;

use super::routing::Routing;
use crate::store::remote::RemoteLog;

pub(crate) struct Lease {
    /// This node's id as holder: new at every start, so that a restarted
    /// primary waits for its old lease to lapse like any other node.
    holder: String,
    ttl: Duration,
    /// The epoch this node holds the lease at; 0: none.
    epoch: u64,
    /// Until when this node may count on holding it: the lease was taken
    /// or renewed for `ttl` after the request was sent, so it lasts at
    /// least that long by any clock that runs at the database's rate.
    until: Option<Instant>,
    /// The log keeps no lease (a follower of a file log): nobody is asked.
    absent: bool,
}

impl Lease {
    pub(crate) fn new(holder: String, ttl: Duration) -> Lease {
        Lease {
            holder,
            ttl,
            epoch: 0,
            until: None,
            absent: false,
        }
    }

    /// The epoch this node holds the lease at (0: none).
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Asks txn-server for the lease: with `take`, to renew it or take it
    /// if it lapsed; otherwise only who holds it. Tells `routing` where the
    /// primary is, and returns whether this node holds the lease now. While
    /// txn-server cannot be asked, the node holds it as long as the last
    /// answer said; a log without a lease fails a standby (it cannot work)
    /// and leaves a follower with no primary to redirect to.
    pub(crate) async fn check(
        &mut self,
        log: &RemoteLog,
        routing: &Routing,
        take: bool,
    ) -> Result<bool, LogError> {
        if self.absent && !take {
            return Ok(false);
        }
        let asked = Instant::now();
        let request = LeaseRequest {
            holder: self.holder.clone(),
            url: routing.own().to_owned(),
            epoch: self.epoch,
            take,
            ttl_ms: self.ttl.as_millis() as u64,
        };
        // A call that takes half the lease has failed: a holder that
        // waited longer could let its lease lapse meanwhile.
        match log.lease(request, self.ttl / 2).await {
            Ok(lease) => {
                let live = lease.remaining_ms > 0 && !lease.url.is_empty();
                routing.learn(live.then_some(lease.url.as_str()));
                if lease.held {
                    if self.epoch != lease.epoch {
                        tracing::info!(epoch = lease.epoch, "holding the write lease");
                    }
                    self.epoch = lease.epoch;
                    self.until = Some(asked + self.ttl);
                } else {
                    if self.epoch != 0 {
                        tracing::warn!(
                            epoch = self.epoch,
                            holder = lease.holder,
                            "lost the write lease"
                        );
                    }
                    self.epoch = 0;
                    self.until = None;
                }
                Ok(lease.held)
            }
            Err(e) if e.is_temporary() => {
                let held = self.until.is_some_and(|until| Instant::now() < until);
                tracing::warn!(error = %e, held, "cannot reach the write lease now");
                if !held {
                    self.epoch = 0;
                    self.until = None;
                }
                Ok(held)
            }
            Err(e) if !take && e.kind() == ErrorKind::Misconfigured => {
                tracing::warn!(error = %e, "the log keeps no write lease: writes sent here are answered 503, not redirected");
                self.absent = true;
                routing.learn(None);
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }
}
