//! The gRPC service: where a transaction enters txn-server.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use kvs_core::{Key, Txn};
use kvs_log::postgres::PgReader;
use kvs_log::{FileReader, LogError, ReplayStream, WriterMark};
use kvs_proto::api::transaction_service_server::TransactionService;
use kvs_proto::api::{AppendRequest, AppendResponse, DurableSequenceRequest, Transaction};
use kvs_proto::replay::ReplayEnd;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use crate::committer::Command;

/// Where `ReadTransactions` reads from.
#[derive(Clone)]
pub enum Reader {
    File(FileReader),
    Postgres(PgReader),
}

impl Reader {
    fn stream(&self) -> ReplayStream {
        match self {
            Reader::File(r) => r.stream(),
            Reader::Postgres(r) => r.stream(),
        }
    }
}

pub struct TxnService {
    pub queue: mpsc::Sender<Command>,
    pub reader: Reader,
}

fn unavailable(e: LogError) -> Status {
    Status::unavailable(e.to_string())
}

/// A replay that failed: DATA_LOSS when the log holds what cannot be read
/// (it will not go away by itself), UNAVAILABLE otherwise.
fn replay_failed(e: LogError) -> Status {
    match e {
        LogError::BadRow { .. } | LogError::BadTable { .. } | LogError::Corrupt { .. } => {
            Status::data_loss(e.to_string())
        }
        e => unavailable(e),
    }
}

fn shutting_down<T>(_: T) -> Status {
    Status::unavailable("txn-server is shutting down")
}

fn invalid(e: impl std::fmt::Display) -> Status {
    Status::invalid_argument(e.to_string())
}

impl TxnService {
    async fn submit(&self, command: Command) -> Result<(), Status> {
        self.queue.send(command).await.map_err(shutting_down)
    }
}

type TxnStream = Pin<Box<dyn Stream<Item = Result<Transaction, Status>> + Send>>;

#[tonic::async_trait]
impl TransactionService for TxnService {
    type ReadTransactionsStream = TxnStream;

    async fn read_transactions(&self, _req: Request<()>) -> Result<Response<TxnStream>, Status> {
        tracing::info!("a client is replaying the log");
        Ok(Response::new(Box::pin(Replay {
            stream: Some(self.reader.stream()),
            started: Instant::now(),
        })))
    }

    async fn write_transactions(
        &self,
        req: Request<Streaming<Transaction>>,
    ) -> Result<Response<()>, Status> {
        let mut stream = req.into_inner();
        while let Some(t) = stream.message().await? {
            let txn = accepted(t)?;
            self.submit(Command::Append {
                txns: vec![txn],
                mark: None,
                done: None,
            })
            .await?;
        }
        Ok(Response::new(()))
    }

    async fn append_transactions(
        &self,
        req: Request<AppendRequest>,
    ) -> Result<Response<AppendResponse>, Status> {
        let req = req.into_inner();
        let writer = Key::parse(&req.writer_id).map_err(|e| invalid(format!("writer id: {e}")))?;
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
            done: Some(done),
        })
        .await?;
        let durable = wait.await.map_err(shutting_down)?.map_err(unavailable)?;
        Ok(Response::new(AppendResponse {
            durable_sequence: durable,
        }))
    }

    async fn durable_sequence(
        &self,
        req: Request<DurableSequenceRequest>,
    ) -> Result<Response<AppendResponse>, Status> {
        let req = req.into_inner();
        let writer = Key::parse(&req.writer_id).map_err(|e| invalid(format!("writer id: {e}")))?;
        let (reply, wait) = oneshot::channel();
        self.submit(Command::Sequence {
            writer,
            fence: req.fence,
            reply,
        })
        .await?;
        let durable = wait.await.map_err(shutting_down)?.map_err(unavailable)?;
        Ok(Response::new(AppendResponse {
            durable_sequence: durable,
        }))
    }
}

/// A `ReadTransactions` response: the log's transactions, then the status
/// that ends it, with its trailers when the whole log was read (see
/// [`kvs_proto::replay`]). Polled by tonic itself, so nothing is left running
/// when the client goes away.
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
                }
                .status()
            }
            Err(e) => {
                tracing::error!(error = %e, took_ms, "a client's replay failed");
                replay_failed(e)
            }
        })))
    }
}

/// A writer's transaction, if every backend can keep it: refused here, a
/// NUL in a text or a NaN fails this request alone instead of the batch it
/// would be committed with.
fn accepted(t: Transaction) -> Result<Txn, Status> {
    let txn = Txn::try_from(t).map_err(invalid)?;
    if let Txn::Put { key, value } = &txn {
        value
            .validate()
            .map_err(|e| invalid(format!("{} key {key}: {e}", value.value_type())))?;
    }
    Ok(txn)
}
