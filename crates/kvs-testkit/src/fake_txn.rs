//! A txn-server that replays what a test scripts, for the ends of a replay
//! a real txn-server does not give (no trailers, a wrong count, a head past
//! its changes).
//!
//! - [`FakeTxn`]: the transactions `ReadTransactions` streams and the
//!   trailers it ends with; every other call is refused as unimplemented.
//! - [`FakeTxn::serve`]: a tonic server of it over mutual TLS on an
//!   ephemeral port, as [`FakeTxnServer`], which stops it when dropped.

use std::pin::Pin;

use kvs_proto::api::transaction_service_server::{TransactionService, TransactionServiceServer};
use kvs_proto::api::{
    AppendRequest, AppendResponse, DurableSequenceRequest, FollowBatch, FollowRequest,
    LeaseRequest, LeaseResponse, Transaction,
};
use kvs_proto::replay::ReplayEnd;
use tokio::task::JoinHandle;
use tokio_stream::Stream;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::metadata::MetadataMap;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic::{Code, Request, Response, Status, Streaming};

use crate::certs::Certs;

/// A scripted replay.
pub struct FakeTxn {
    /// What the replay streams, in order.
    pub transactions: Vec<Transaction>,
    /// The trailers the stream ends OK with, or none (as an older
    /// txn-server, or one whose reader died without a word, would end it).
    pub trailers: Option<MetadataMap>,
}

/// A [`FakeTxn`] being served.
pub struct FakeTxnServer {
    /// The `host:port` it listens on.
    pub addr: String,
    served: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl FakeTxn {
    /// A replay of `transactions` that ends as a complete one does, with
    /// the trailers of `end`.
    pub fn ending(transactions: Vec<Transaction>, end: ReplayEnd) -> FakeTxn {
        FakeTxn {
            transactions,
            trailers: Some(end.status().metadata().clone()),
        }
    }

    /// Serves the replay with the server certificate of `certs`, asking
    /// clients for one signed by its CA, until the server is dropped.
    pub async fn serve(self, certs: &Certs) -> FakeTxnServer {
        let read = |n: &str| std::fs::read(certs.path(n)).expect("a test certificate");
        let tls = ServerTlsConfig::new()
            .identity(Identity::from_pem(read("server.crt"), read("server.key")))
            .client_ca_root(Certificate::from_pem(read("ca.crt")));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding an ephemeral port");
        let addr = listener.local_addr().expect("a bound address").to_string();
        let server = Server::builder()
            .tls_config(tls)
            .expect("the test certificates make a TLS config")
            .add_service(TransactionServiceServer::new(self))
            .serve_with_incoming(TcpListenerStream::new(listener));
        FakeTxnServer {
            addr,
            served: tokio::spawn(server),
        }
    }
}

impl Drop for FakeTxnServer {
    fn drop(&mut self) {
        self.served.abort();
    }
}

type TxnStream = Pin<Box<dyn Stream<Item = Result<Transaction, Status>> + Send>>;

#[tonic::async_trait]
impl TransactionService for FakeTxn {
    type ReadTransactionsStream = TxnStream;

    async fn read_transactions(&self, _: Request<()>) -> Result<Response<TxnStream>, Status> {
        let mut items: Vec<_> = self.transactions.iter().cloned().map(Ok).collect();
        // tonic ends a response stream with the first status it yields.
        items.extend(
            self.trailers
                .clone()
                .map(|t| Err(Status::with_metadata(Code::Ok, "", t))),
        );
        Ok(Response::new(Box::pin(tokio_stream::iter(items))))
    }

    async fn write_transactions(
        &self,
        _: Request<Streaming<Transaction>>,
    ) -> Result<Response<()>, Status> {
        Err(Status::unimplemented("a fake"))
    }

    async fn append_transactions(
        &self,
        _: Request<AppendRequest>,
    ) -> Result<Response<AppendResponse>, Status> {
        Err(Status::unimplemented("a fake"))
    }

    async fn durable_sequence(
        &self,
        _: Request<DurableSequenceRequest>,
    ) -> Result<Response<AppendResponse>, Status> {
        Err(Status::unimplemented("a fake"))
    }

    type FollowStream = Pin<Box<dyn Stream<Item = Result<FollowBatch, Status>> + Send>>;

    async fn follow(
        &self,
        _: Request<FollowRequest>,
    ) -> Result<Response<Self::FollowStream>, Status> {
        Err(Status::unimplemented("a fake"))
    }

    async fn lease(&self, _: Request<LeaseRequest>) -> Result<Response<LeaseResponse>, Status> {
        Err(Status::unimplemented("a fake"))
    }
}

#[cfg(test)]
mod tests {
    use kvs_proto::api::transaction_service_client::TransactionServiceClient;
    use kvs_proto::replay::RECORDS;
    use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

    use super::*;

    /// A client of `server` with the client certificate of `certs`.
    async fn client(certs: &Certs, server: &FakeTxnServer) -> TransactionServiceClient<Channel> {
        let read = |n: &str| std::fs::read(certs.path(n)).unwrap();
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read("ca.crt")))
            .identity(Identity::from_pem(read("client.crt"), read("client.key")))
            .domain_name("localhost");
        let channel = Endpoint::from_shared(format!("https://{}", server.addr))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect()
            .await
            .unwrap();
        TransactionServiceClient::new(channel)
    }

    /// The keys a client reads of `fake`'s replay, and the trailers of the
    /// stream, which must end OK.
    async fn replay_of(fake: FakeTxn) -> (Vec<String>, Option<MetadataMap>) {
        let certs = Certs::new();
        let server = fake.serve(&certs).await;
        let mut client = client(&certs, &server).await;
        let mut stream = client.read_transactions(()).await.unwrap().into_inner();
        let mut keys = Vec::new();
        while let Some(t) = stream.message().await.unwrap() {
            keys.push(t.key);
        }
        (keys, stream.trailers().await.unwrap())
    }

    fn keyed(key: &str) -> Transaction {
        Transaction {
            key: key.into(),
            ..Transaction::default()
        }
    }

    #[tokio::test]
    async fn the_replay_streams_the_transactions_then_ends_with_the_trailers() {
        let end = ReplayEnd {
            records: 7,
            skipped: 1,
            head: 40,
        };
        let fake = FakeTxn::ending(vec![keyed("a"), keyed("b")], end);
        let (keys, trailers) = replay_of(fake).await;
        assert_eq!(keys, ["a", "b"]);
        assert_eq!(ReplayEnd::from_trailers(trailers.as_ref()), Ok(end));
    }

    #[tokio::test]
    async fn a_replay_without_trailers_ends_ok_without_a_count() {
        let fake = FakeTxn {
            transactions: vec![keyed("a")],
            trailers: None,
        };
        let (keys, trailers) = replay_of(fake).await;
        assert_eq!(keys, ["a"]);
        assert!(
            trailers.as_ref().is_none_or(|t| t.get(RECORDS).is_none()),
            "{trailers:?}"
        );
    }

    #[tokio::test]
    async fn every_other_call_is_unimplemented() {
        let certs = Certs::new();
        let fake = FakeTxn {
            transactions: Vec::new(),
            trailers: None,
        };
        let server = fake.serve(&certs).await;
        let mut client = client(&certs, &server).await;
        let append = client
            .append_transactions(AppendRequest::default())
            .await
            .unwrap_err();
        assert_eq!(append.code(), Code::Unimplemented);
        let durable = client
            .durable_sequence(DurableSequenceRequest::default())
            .await
            .unwrap_err();
        assert_eq!(durable.code(), Code::Unimplemented);
        let write = client
            .write_transactions(tokio_stream::iter([keyed("a")]))
            .await
            .unwrap_err();
        assert_eq!(write.code(), Code::Unimplemented);
    }
}
