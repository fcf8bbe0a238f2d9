//! PostgreSQL (or a file), txn-server and kvs-server, started for one test
//! as real processes with real certificates.
//!
//! - [`Stack`]: the three, or the part a test asks for. [`Stack::postgres`]
//!   and [`Stack::file`] start everything and wait until kvs-server is
//!   ready; [`Stack::database_only`] leaves the database to the test, which
//!   then calls [`Stack::start_txn`] and [`Stack::start_kvs`];
//!   [`Stack::file_with`] and [`Stack::file_only`] take more flags. Either
//!   server may be killed and started again: txn-server keeps its port.
//!   [`Stack::another_txn`] starts one more txn-server on the same store,
//!   as several serve one PostgreSQL.
//! - [`Store`]: where txn-server keeps its log.
//! - gRPC clients of txn-server with any client certificate
//!   ([`Stack::grpc_client_as`]), and kvs-server's [`Api`].
//! - [`kvs_args`]: kvs-server's flags for a txn-server anywhere (behind a
//!   relay, or a fake one).

use std::time::{Duration, Instant};

use kvs_proto::api::transaction_service_client::TransactionServiceClient;
use reqwest::StatusCode;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::certs::Certs;
use crate::http::Api;
use crate::pg::PgCluster;
use crate::process::{KvsProcess, ServerProcess};

/// Where txn-server keeps its log: a throwaway PostgreSQL cluster, or a
/// directory for its file backend.
pub enum Store {
    Postgres(PgCluster),
    File(tempfile::TempDir),
}

/// The processes of one test; each stops when the stack is dropped.
pub struct Stack {
    pub store: Store,
    pub certs: Certs,
    pub txn: Option<ServerProcess>,
    pub kvs: Option<KvsProcess>,
    /// The port txn-server picked at its first start; it keeps it across
    /// restarts, so that kvs-server finds it again.
    txn_port: Option<u16>,
    /// More flags for txn-server.
    pub txn_args: Vec<String>,
}

impl Stack {
    /// PostgreSQL, txn-server and kvs-server, all ready.
    pub async fn postgres() -> Stack {
        Stack::with(Store::Postgres(PgCluster::start().await)).await
    }

    /// txn-server on its file backend, and kvs-server.
    pub async fn file() -> Stack {
        Stack::with(Store::File(tempfile::tempdir().unwrap())).await
    }

    /// The database only: the test sets it up, then calls `start_txn` and
    /// `start_kvs`.
    pub async fn database_only() -> Stack {
        Stack::bare(Store::Postgres(PgCluster::start().await))
    }

    fn bare(store: Store) -> Stack {
        Stack {
            store,
            certs: Certs::new(),
            txn: None,
            kvs: None,
            txn_port: None,
            txn_args: Vec::new(),
        }
    }

    /// txn-server on its file backend with `txn_args`, and kvs-server with
    /// `kvs_args`.
    pub async fn file_with(txn_args: &[String], kvs_args: &[&str]) -> Stack {
        let mut stack = Stack::bare(Store::File(tempfile::tempdir().unwrap()));
        stack.txn_args = txn_args.to_vec();
        stack.start_txn();
        stack.start_kvs(kvs_args).await;
        stack
    }

    /// txn-server alone, on its file backend, with `txn_args`.
    pub fn file_only(txn_args: &[String]) -> Stack {
        let mut stack = Stack::bare(Store::File(tempfile::tempdir().unwrap()));
        stack.txn_args = txn_args.to_vec();
        stack.start_txn();
        stack
    }

    async fn with(store: Store) -> Stack {
        let mut stack = Stack::bare(store);
        stack.start_txn();
        stack.start_kvs(&[]).await;
        stack
    }

    /// Certificates of another CA, which txn-server (started after this)
    /// trusts as well as the stack's: another client, of someone else.
    pub fn trust_another_ca(&self) -> Certs {
        let other = Certs::new();
        let mut cas = std::fs::read(self.certs.path("ca.crt")).unwrap();
        cas.extend(std::fs::read(other.path("ca.crt")).unwrap());
        std::fs::write(self.certs.path("ca.crt"), cas).unwrap();
        other
    }

    pub fn pg(&self) -> &PgCluster {
        match &self.store {
            Store::Postgres(pg) => pg,
            Store::File(_) => panic!("this stack keeps its log in a file"),
        }
    }

    pub fn txn_addr(&self) -> String {
        let port = self.txn_port.expect("txn-server was started");
        format!("127.0.0.1:{port}")
    }

    /// A gRPC client of txn-server with the client certificate, as
    /// kvs-server connects.
    pub async fn grpc_client(&self) -> TransactionServiceClient<Channel> {
        self.grpc_client_as(&self.certs).await
    }

    /// A gRPC client of txn-server with the client certificate of `certs`.
    pub async fn grpc_client_as(&self, certs: &Certs) -> TransactionServiceClient<Channel> {
        TransactionServiceClient::new(self.grpc_channel_as(certs).await)
    }

    /// A connection to txn-server with the client certificate of `certs`
    /// and a 5 s request timeout, for requests the generated client cannot
    /// make.
    pub async fn grpc_channel_as(&self, certs: &Certs) -> Channel {
        self.grpc_channel_at(&self.txn_addr(), certs).await
    }

    /// A gRPC client, with the client certificate of `certs`, of the
    /// txn-server at `addr` (one of [`Stack::another_txn`]).
    pub async fn grpc_client_at(
        &self,
        addr: &str,
        certs: &Certs,
    ) -> TransactionServiceClient<Channel> {
        TransactionServiceClient::new(self.grpc_channel_at(addr, certs).await)
    }

    async fn grpc_channel_at(&self, addr: &str, certs: &Certs) -> Channel {
        self.grpc_endpoint_at(addr, certs)
            .timeout(Duration::from_secs(5))
            .connect()
            .await
            .unwrap()
    }

    /// Where `grpc_client_as` connects, without its request timeout, for a
    /// test to add its own settings.
    pub fn grpc_endpoint_as(&self, certs: &Certs) -> Endpoint {
        self.grpc_endpoint_at(&self.txn_addr(), certs)
    }

    fn grpc_endpoint_at(&self, addr: &str, certs: &Certs) -> Endpoint {
        let read = |c: &Certs, n: &str| std::fs::read(c.path(n)).unwrap();
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read(&self.certs, "ca.crt")))
            .identity(Identity::from_pem(
                read(certs, "client.crt"),
                read(certs, "client.key"),
            ))
            .domain_name("localhost");
        Endpoint::from_shared(format!("https://{addr}"))
            .unwrap()
            .tls_config(tls)
            .unwrap()
    }

    pub fn start_txn(&mut self) {
        let listen = match self.txn_port {
            Some(_) => self.txn_addr(),
            None => "127.0.0.1:0".to_owned(),
        };
        let txn = ServerProcess::start(&crate::binary("txn-server"), &self.txn_server_args(listen));
        let port = txn.addr.rsplit(':').next().and_then(|p| p.parse().ok());
        self.txn_port = Some(port.expect("txn-server's listening address has a port"));
        self.txn = Some(txn);
    }

    /// One more txn-server on the same store and flags, on a port of its
    /// own; it stops when dropped.
    pub fn another_txn(&self) -> ServerProcess {
        let args = self.txn_server_args("127.0.0.1:0".to_owned());
        ServerProcess::start(&crate::binary("txn-server"), &args)
    }

    fn txn_server_args(&self, listen: String) -> Vec<String> {
        let mut args = self.certs.server_args();
        match &self.store {
            Store::Postgres(pg) => args.extend(["--database-url".into(), pg.url().into()]),
            Store::File(dir) => args.extend([
                "--backend".into(),
                "file".into(),
                "--data-dir".into(),
                dir.path().display().to_string(),
            ]),
        }
        args.extend(["--listen".into(), listen]);
        args.extend(self.txn_args.iter().cloned());
        args
    }

    pub async fn start_kvs(&mut self, extra: &[&str]) {
        self.start_kvs_via(&self.txn_addr(), extra).await;
    }

    /// kvs-server, reaching txn-server at `txn_addr` (a relay in between).
    pub async fn start_kvs_via(&mut self, txn_addr: &str, extra: &[&str]) {
        let mut args = kvs_args(&self.certs, txn_addr);
        args.extend(extra.iter().map(|s| s.to_string()));
        self.kvs = Some(KvsProcess::start(&crate::binary("kvs-server"), &args).await);
    }

    /// Waits until kvs-server's `/readyz` answers `status`.
    pub async fn wait_readyz(&self, status: StatusCode) {
        let api = self.api();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = api.client.get(api.url("/readyz")).send().await;
            if ready.is_ok_and(|r| r.status() == status) {
                return;
            }
            assert!(Instant::now() < deadline, "/readyz did not answer {status}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn api(&self) -> Api {
        self.kvs
            .as_ref()
            .expect("kvs-server is running")
            .api
            .clone()
    }
}

/// kvs-server's flags for a txn-server at `txn_addr` (`host:port`), with
/// the client certificate of `certs` and a fresh data directory.
pub fn kvs_args(certs: &Certs, txn_addr: &str) -> Vec<String> {
    let data = tempfile::tempdir().unwrap().keep();
    let mut args = certs.client_args();
    args.extend([
        "--txn-addr".into(),
        format!("https://{txn_addr}"),
        "--data-dir".into(),
        data.display().to_string(),
    ]);
    args
}
