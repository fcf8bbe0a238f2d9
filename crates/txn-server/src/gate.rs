//! The transaction service before the backend is open: txn-server serves
//! its port (and its health) from the start, and holds each call here until
//! the backend is open, as it is while it waits for PostgreSQL.
//!
//! Held, not refused, so that a client that connects as txn-server starts
//! is answered as soon as it can be; a client's own deadline bounds the
//! wait, and at shutdown a held call is answered UNAVAILABLE.

use std::sync::Arc;

use kvs_log::WriterLog;
use kvs_proto::api::transaction_service_server::TransactionService;
use kvs_proto::api::{
    AppendRequest, AppendResponse, DurableSequenceRequest, FollowRequest, LeaseRequest,
    LeaseResponse, Transaction,
};
use tokio::sync::SetOnce;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use crate::service::{FollowStream, TxnService, TxnStream};

/// The service over the backend `L` once it is opened; calls wait until
/// then.
pub struct Gate<L: WriterLog> {
    service: Arc<SetOnce<TxnService<L>>>,
    stopping: CancellationToken,
}

/// Opens a [`Gate`].
pub struct Opener<L: WriterLog>(Arc<SetOnce<TxnService<L>>>);

impl<L: WriterLog> Gate<L> {
    /// A closed gate, and what opens it. Held calls end when `stopping` is
    /// cancelled.
    pub fn closed(stopping: CancellationToken) -> (Gate<L>, Opener<L>) {
        let service = Arc::new(SetOnce::new());
        let opener = Opener(service.clone());
        (Gate { service, stopping }, opener)
    }

    async fn service(&self) -> Result<&TxnService<L>, Status> {
        if let Some(service) = self.service.get() {
            return Ok(service);
        }
        tracing::debug!("a call waits for the backend to open");
        tokio::select! {
            service = self.service.wait() => Ok(service),
            () = self.stopping.cancelled() => Err(Status::unavailable("txn-server is shutting down")),
        }
    }
}

impl<L: WriterLog> Opener<L> {
    /// Lets the held calls and every later one through to `service`.
    pub fn open(self, service: TxnService<L>) {
        // The one opener, used once: the cell is still empty.
        let _ = self.0.set(service);
    }
}

#[tonic::async_trait]
impl<L: WriterLog> TransactionService for Gate<L> {
    type ReadTransactionsStream = TxnStream;

    async fn read_transactions(&self, req: Request<()>) -> Result<Response<TxnStream>, Status> {
        self.service().await?.read_transactions(req).await
    }

    async fn write_transactions(
        &self,
        req: Request<Streaming<Transaction>>,
    ) -> Result<Response<()>, Status> {
        self.service().await?.write_transactions(req).await
    }

    async fn append_transactions(
        &self,
        req: Request<AppendRequest>,
    ) -> Result<Response<AppendResponse>, Status> {
        self.service().await?.append_transactions(req).await
    }

    async fn durable_sequence(
        &self,
        req: Request<DurableSequenceRequest>,
    ) -> Result<Response<AppendResponse>, Status> {
        self.service().await?.durable_sequence(req).await
    }

    type FollowStream = FollowStream;

    async fn follow(&self, req: Request<FollowRequest>) -> Result<Response<FollowStream>, Status> {
        self.service().await?.follow(req).await
    }

    async fn lease(&self, req: Request<LeaseRequest>) -> Result<Response<LeaseResponse>, Status> {
        self.service().await?.lease(req).await
    }
}
