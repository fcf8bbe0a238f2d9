//! The gRPC service: where a transaction enters txn-server.
//!
//! A writer id belongs to the client certificate that sends it: the log
//! keeps each writer under its id prefixed with the certificate's
//! fingerprint, so a client can reach only the writers of its own
//! certificate, whatever id it sends. So does a lease holder's id: only the
//! certificate that took the lease can renew it.

use std::ops::RangeInclusive;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use kvs_core::change::UNSTAMPED;
use kvs_core::{Change, Key, Txn};
use kvs_log::{
    ErrorKind, LeaseAsk, LogError, LogLease, LogReader, ReplayStream, WriterLog, WriterMark,
};
use kvs_proto::api::transaction_service_server::TransactionService;
use kvs_proto::api::{
    AppendRequest, AppendResponse, DurableSequenceRequest, FollowBatch, FollowRequest,
    LeaseRequest, LeaseResponse, Transaction,
};
use kvs_proto::replay::ReplayEnd;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Request, Response, Status, Streaming};

use crate::committer::{Command, Refused};
use crate::follow;
use crate::replays::Replays;

/// The response header of `DurableSequence` that names the only batch the
/// writer may send next (past its fence): a writer that lost track, say
/// after a txn-server restart forgot its fence, takes up from there.
pub const NEXT_SEQUENCE_HEADER: &str = "kvs-next-sequence";

/// Hex digits of the certificate fingerprint (SHA-256, truncated to 128
/// bits) that prefix each writer id in the log.
const OWNER_HEX: usize = 32;

/// The longest writer id a client may send: with its owner's prefix it must
/// still be a key.
pub const MAX_WRITER_ID: usize = kvs_core::key::MAX_KEY_LEN - OWNER_HEX - 1;

/// The lease lengths `Lease` takes: long enough to be renewed over a
/// network, short enough that a lost holder is replaced within minutes.
pub const LEASE_TTL_MS: RangeInclusive<u64> = 100..=600_000;

/// The longest URL a lease holder may give.
pub const MAX_LEASE_URL: usize = 2048;

/// The service over the backend `L`.
pub struct TxnService<L: WriterLog> {
    /// Weak, so that connections still open after the shutdown timeout do
    /// not keep the committer waiting: the server holds the queue.
    pub queue: mpsc::WeakSender<Command>,
    /// Where `ReadTransactions` reads from.
    pub reader: L::Reader,
    /// What `Lease` asks.
    pub lease: L::Lease,
    pub replays: Replays,
    /// Where `Follow` reads from.
    pub feed: L::Feed,
    pub follows: Replays,
    /// Cancelled at shutdown: open streams end.
    pub stopping: CancellationToken,
}

/// A failure of the log, as its kind tells the client: only UNAVAILABLE
/// is worth retrying (kvs-server's `RemoteLog` maps the codes back).
pub(crate) fn log_status(e: LogError) -> Status {
    let code = match e.kind() {
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::DataLoss => Code::DataLoss,
        ErrorKind::Misconfigured => Code::FailedPrecondition,
        ErrorKind::Refused => Code::InvalidArgument,
        // Another writer holds the lease: the text starts with "fenced:".
        ErrorKind::Fenced => Code::Aborted,
        ErrorKind::Internal => Code::Internal,
    };
    Status::new(code, e.to_string())
}

fn shutting_down<T>(_: T) -> Status {
    Status::unavailable("txn-server is shutting down")
}

fn invalid(e: impl std::fmt::Display) -> Status {
    Status::invalid_argument(e.to_string())
}

fn refused(e: Refused) -> Status {
    match e {
        Refused::Log(e) => log_status(e),
        // The writer gave the batch up itself; it no longer waits for it.
        e @ Refused::GivenUp(_) => Status::unavailable(e.to_string()),
        e @ (Refused::Gap { .. } | Refused::FenceTooFar { .. }) => {
            Status::failed_precondition(e.to_string())
        }
    }
}

/// The log's key for the writer `id` sent on `req`'s connection: the id
/// under the fingerprint of the client's certificate.
fn writer_key<T>(req: &Request<T>, id: &str) -> Result<Key, Status> {
    owned_key(req, "writer", id)
}

/// The key of the id of a `what` (a writer, a lease holder) sent on `req`'s
/// connection: the id under the fingerprint of the client's certificate.
fn owned_key<T>(req: &Request<T>, what: &str, id: &str) -> Result<Key, Status> {
    Key::parse(id).map_err(|e| invalid(format!("{what} id: {e}")))?;
    if id.len() > MAX_WRITER_ID {
        return Err(invalid(format!(
            "{what} id: longer than {MAX_WRITER_ID} bytes"
        )));
    }
    let unbound = || {
        Status::permission_denied(format!(
            "a {what} needs a client certificate to be bound to"
        ))
    };
    let certs = req.peer_certs().ok_or_else(unbound)?;
    let leaf = certs.first().ok_or_else(unbound)?;
    let digest = ring::digest::digest(&ring::digest::SHA256, leaf.as_ref());
    let mut owner = String::with_capacity(OWNER_HEX);
    for b in &digest.as_ref()[..OWNER_HEX / 2] {
        owner.push_str(&format!("{b:02x}"));
    }
    Ok(Key::parse(&format!("{owner}_{id}")).expect("hex, '_' and a key form a key"))
}

/// The id a client sent, of a key made by [`owned_key`].
fn unbound_id(key: &str) -> &str {
    key.get(OWNER_HEX + 1..).unwrap_or(key)
}

impl<L: WriterLog> TxnService<L> {
    async fn submit(&self, command: Command) -> Result<(), Status> {
        let queue = self.queue.upgrade().ok_or_else(|| shutting_down(()))?;
        queue.send(command).await.map_err(shutting_down)
    }

    /// Waits until what was queued before is committed: the committer
    /// answers an empty append once the rounds before it are done.
    async fn flush(&self) -> Result<(), Status> {
        let (done, wait) = oneshot::channel();
        self.submit(Command::Append {
            txns: Vec::new(),
            mark: None,
            epoch: 0,
            done: Some(done),
        })
        .await?;
        wait.await.map_err(shutting_down)?.map_err(refused)?;
        Ok(())
    }
}

/// The stream a `ReadTransactions` call answers.
pub type TxnStream = Pin<Box<dyn Stream<Item = Result<Transaction, Status>> + Send>>;

/// The stream a `Follow` call answers.
pub type FollowStream = Pin<Box<dyn Stream<Item = Result<FollowBatch, Status>> + Send>>;

#[tonic::async_trait]
impl<L: WriterLog> TransactionService for TxnService<L> {
    type ReadTransactionsStream = TxnStream;

    async fn read_transactions(&self, _req: Request<()>) -> Result<Response<TxnStream>, Status> {
        let replay = self.replays.serve(|| Replay {
            stream: Some(self.reader.stream()),
            started: Instant::now(),
        })?;
        tracing::info!("a client is replaying the log");
        Ok(Response::new(Box::pin(replay)))
    }

    async fn write_transactions(
        &self,
        req: Request<Streaming<Transaction>>,
    ) -> Result<Response<()>, Status> {
        let mut stream = req.into_inner();
        // The original kvs keeps this stream open for its whole life: at
        // shutdown it is ended here, not waited for. A run is read whole
        // without waiting once its first transaction is in, so ending
        // between runs loses nothing received.
        let stopping = loop {
            let next = tokio::select! {
                biased;
                () = self.stopping.cancelled() => break true,
                next = next_run(&mut stream) => next?,
            };
            let Some(txns) = next else { break false };
            // The original protocol knows no lease.
            self.submit(Command::Append {
                txns,
                mark: None,
                epoch: 0,
                done: None,
            })
            .await?;
        };
        self.flush().await?;
        if stopping {
            tracing::info!("ended a WriteTransactions stream: txn-server is shutting down");
            return Err(Status::unavailable(
                "txn-server is shutting down; the transactions it received on this stream are \
                 committed, send the rest once it is back",
            ));
        }
        Ok(Response::new(()))
    }

    async fn append_transactions(
        &self,
        req: Request<AppendRequest>,
    ) -> Result<Response<AppendResponse>, Status> {
        let writer = writer_key(&req, &req.get_ref().writer_id)?;
        let req = req.into_inner();
        if req.sequence == 0 {
            return Err(invalid("sequence numbers start at 1"));
        }
        let txns = req
            .transactions
            .into_iter()
            .map(accepted)
            .collect::<Result<Vec<_>, _>>()?;
        let (done, wait) = oneshot::channel();
        let mark = WriterMark {
            writer,
            sequence: req.sequence,
        };
        self.submit(Command::Append {
            txns,
            mark: Some(mark),
            epoch: req.epoch,
            done: Some(done),
        })
        .await?;
        let durable = wait.await.map_err(shutting_down)?.map_err(refused)?;
        Ok(Response::new(AppendResponse {
            durable_sequence: durable,
        }))
    }

    async fn durable_sequence(
        &self,
        req: Request<DurableSequenceRequest>,
    ) -> Result<Response<AppendResponse>, Status> {
        let writer = writer_key(&req, &req.get_ref().writer_id)?;
        let req = req.into_inner();
        let (reply, wait) = oneshot::channel();
        self.submit(Command::Sequence {
            writer,
            fence: req.fence,
            reply,
        })
        .await?;
        let at = wait.await.map_err(shutting_down)?.map_err(refused)?;
        let mut response = Response::new(AppendResponse {
            durable_sequence: at.durable,
        });
        response
            .metadata_mut()
            .insert(NEXT_SEQUENCE_HEADER, at.next.into());
        Ok(response)
    }

    type FollowStream = FollowStream;

    async fn follow(&self, req: Request<FollowRequest>) -> Result<Response<FollowStream>, Status> {
        let after = req.into_inner().after;
        let stream = self
            .follows
            .serve(|| follow::stream(self.feed.clone(), after))?;
        tracing::info!(after, "a client follows the log");
        Ok(Response::new(Box::pin(stream)))
    }

    async fn lease(&self, req: Request<LeaseRequest>) -> Result<Response<LeaseResponse>, Status> {
        let holder = owned_key(&req, "lease holder", &req.get_ref().holder)?;
        let req = req.into_inner();
        if req.take && !LEASE_TTL_MS.contains(&req.ttl_ms) {
            return Err(invalid(format!(
                "ttlMs {} is outside {}..={} ms",
                req.ttl_ms,
                LEASE_TTL_MS.start(),
                LEASE_TTL_MS.end()
            )));
        }
        if req.take && req.url.is_empty() {
            return Err(invalid("url: a holder says where it takes writes"));
        }
        if req.url.len() > MAX_LEASE_URL || req.url.contains(char::is_control) {
            return Err(invalid(format!(
                "url: at most {MAX_LEASE_URL} bytes without control characters"
            )));
        }
        let ask = LeaseAsk {
            holder,
            url: req.url,
            epoch: req.epoch,
            take: req.take,
            ttl: Duration::from_millis(req.ttl_ms),
        };
        let state = self.lease.ask(ask).await.map_err(log_status)?;
        Ok(Response::new(LeaseResponse {
            holder: unbound_id(&state.holder).to_owned(),
            url: state.url,
            epoch: state.epoch,
            remaining_ms: u64::try_from(state.remaining.as_millis()).unwrap_or(u64::MAX),
            held: state.held,
        }))
    }
}

/// A `ReadTransactions` response: the log's transactions, then the status
/// that ends it, with its trailers when the whole log was read (see
/// [`kvs_proto::replay`]). Polled by its task in [`Replays`], which drops it
/// when the client goes away, stops reading, or the server stops.
struct Replay {
    /// `None` once the end was sent.
    stream: Option<ReplayStream>,
    started: Instant,
}

impl Stream for Replay {
    type Item = Result<Transaction, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(stream) = self.stream.as_mut() else {
            return Poll::Ready(None);
        };
        if let Some(txn) = ready!(stream.poll_next(cx)) {
            return Poll::Ready(Some(Ok(Transaction::from(&txn))));
        }
        let end = ready!(stream.poll_finish(cx));
        self.stream = None;
        let took_ms = self.started.elapsed().as_millis() as u64;
        // tonic ends the response with the first status, OK or not.
        Poll::Ready(Some(Err(match end {
            Ok(stats) => {
                if stats.skipped == 0 {
                    tracing::info!(
                        records = stats.records,
                        skipped = 0,
                        took_ms,
                        "replayed the log to a client"
                    );
                } else {
                    tracing::warn!(
                        records = stats.records,
                        skipped = stats.skipped,
                        took_ms,
                        "replayed the log to a client, leaving out rows that cannot be replayed \
                         (each is named above; --strict-replay refuses them instead)"
                    );
                }
                ReplayEnd {
                    records: stats.records,
                    skipped: stats.skipped,
                    head: stats.head,
                }
                .status()
            }
            Err(e) => {
                tracing::error!(error = %e, took_ms, "a client's replay failed");
                log_status(e)
            }
        })))
    }
}

/// The most transactions of a `WriteTransactions` stream committed as one.
const MAX_RUN: usize = 1024;

/// The next run of a `WriteTransactions` stream: its next transaction and
/// every one that has arrived behind it, up to [`MAX_RUN`], all checked
/// before any is committed. A bad one refuses the stream and its whole run;
/// runs committed before it stay, since the original kvs keeps one stream
/// open for its whole life and cannot wait for its end to be logged.
async fn next_run(stream: &mut Streaming<Transaction>) -> Result<Option<Vec<Change>>, Status> {
    let Some(first) = stream.message().await? else {
        return Ok(None);
    };
    let mut run = vec![unstamped(first)?];
    while run.len() < MAX_RUN {
        // Only what is here already: a stream that goes quiet is committed
        // as far as it came.
        let ready = std::future::poll_fn(|cx| match Pin::new(&mut *stream).poll_next(cx) {
            Poll::Ready(next) => Poll::Ready(Some(next)),
            Poll::Pending => Poll::Ready(None),
        })
        .await;
        match ready {
            Some(Some(t)) => run.push(unstamped(t?)?),
            Some(None) | None => break,
        }
    }
    Ok(Some(run))
}

/// A transaction of the original protocol, which gives no revision: the log
/// numbers it, whatever the message's revision field says.
fn unstamped(t: Transaction) -> Result<Change, Status> {
    Ok(Change {
        revision: UNSTAMPED,
        ..accepted(t)?
    })
}

/// A writer's transaction, if every backend can keep it: refused here, a
/// NUL in a text or a NaN fails this request alone instead of the batch it
/// would be committed with.
fn accepted(t: Transaction) -> Result<Change, Status> {
    let change = Change::try_from(t).map_err(invalid)?;
    if let Txn::Put { key, value } = &change.txn {
        value
            .validate()
            .map_err(|e| invalid(format!("{} key {key}: {e}", value.value_type())))?;
    }
    Ok(change)
}
