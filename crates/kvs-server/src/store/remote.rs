//! The transaction log kept by a remote txn-server, over gRPC with mutual
//! TLS. Each batch is one acknowledged append carrying this server's writer
//! id and the next sequence number; when an answer is lost, the writer's
//! durable sequence tells whether the batch made it. A replay counts as
//! complete only when txn-server's trailers say so (`kvs_proto::replay`).

pub(crate) mod token;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kvs_core::{Change, Key, Revisions};
use kvs_log::{ErrorKind, Log, LogError, ReplayStats};
use kvs_proto::MAX_MESSAGE_BYTES;
use kvs_proto::api::transaction_service_client::TransactionServiceClient;
use kvs_proto::api::{
    AppendRequest, DurableSequenceRequest, FollowBatch, FollowRequest, LeaseRequest, LeaseResponse,
    Transaction,
};
use kvs_proto::replay::ReplayEnd;
use token::TokenFile;
use tonic::Code;
use tonic::metadata::MetadataMap;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// The response header of txn-server's `DurableSequence` naming the batch
/// it takes next from this writer.
const NEXT_SEQUENCE_HEADER: &str = "kvs-next-sequence";

/// Where the txn-server is and how to prove who we are to it.
#[derive(Debug, Clone)]
pub(crate) struct RemoteOptions {
    pub addr: String,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The name the server's certificate must carry.
    pub server_name: String,
    /// How long one call (an append, a fence) may take before it counts as
    /// failed.
    pub timeout: Duration,
    /// The bearer token for a txn-server that asks for one.
    pub token: Option<Arc<TokenFile>>,
}

/// Adds the bearer token, when there is one, to every call.
#[derive(Clone)]
pub(crate) struct Bearer(Option<Arc<TokenFile>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = &self.0 {
            req.metadata_mut().insert("authorization", token.header());
        }
        Ok(req)
    }
}

type Client = TransactionServiceClient<InterceptedService<Channel, Bearer>>;

pub(crate) struct RemoteLog {
    client: Client,
    /// The epoch of the write lease this node holds (0: none), which every
    /// append carries; set by the node's role as it takes the lease.
    epoch: Arc<AtomicU64>,
    writer: Key,
    sequence: u64,
    /// The last batch sent whose answer never came.
    in_doubt: Option<(u64, Vec<Change>)>,
    timeout: Duration,
    token: Option<Arc<TokenFile>>,
}

/// A status from txn-server as the log error it reports (txn-server's
/// service maps the kinds to codes). Temporary are the call's own failures,
/// a refused token (it may be renewed), and INTERNAL, which is also how
/// tonic reports an HTTP/2 connection broken mid-call. A txn-server without
/// an RPC we call is one of another version: misconfigured.
fn log_error(status: tonic::Status) -> LogError {
    let kind = match status.code() {
        Code::DataLoss => ErrorKind::DataLoss,
        Code::FailedPrecondition | Code::Unimplemented => ErrorKind::Misconfigured,
        Code::InvalidArgument | Code::OutOfRange => ErrorKind::Refused,
        Code::NotFound | Code::AlreadyExists => ErrorKind::Internal,
        Code::Aborted => ErrorKind::Fenced,
        Code::Ok
        | Code::Internal
        | Code::Unavailable
        | Code::DeadlineExceeded
        | Code::Cancelled
        | Code::ResourceExhausted
        | Code::Unknown
        | Code::Unauthenticated
        | Code::PermissionDenied => ErrorKind::Unavailable,
    };
    LogError::new(kind, format!("txn-server: {}", status.message()))
}

/// An id no other start of any node has used: `prefix`, the process id
/// and the time, in hex.
pub(crate) fn fresh_id(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{prefix}_{:x}_{nanos:x}", std::process::id())
}

/// Why the change stream cannot go on.
#[derive(Debug)]
pub(crate) enum FollowError {
    /// The log no longer keeps the changes asked for: replay it afresh.
    TooOld(String),
    Log(LogError),
}

impl From<tonic::Status> for FollowError {
    fn from(status: tonic::Status) -> FollowError {
        match status.code() {
            Code::OutOfRange => FollowError::TooOld(format!("txn-server: {}", status.message())),
            _ => FollowError::Log(log_error(status)),
        }
    }
}

/// The end of a replay stream that ended OK after `received` transactions,
/// if txn-server vouches that it carried the whole log. Refused otherwise, as
/// the log being unavailable: the caller replays again from the start
/// rather than serve (and take writes on) a state that may be partial.
fn checked_end(trailers: Option<&MetadataMap>, received: u64) -> Result<ReplayEnd, LogError> {
    let refused = |why: String| {
        LogError::Unavailable(format!(
            "txn-server ended the replay after {received} transactions {why}; \
             not serving what may be part of the log"
        ))
    };
    let end = ReplayEnd::from_trailers(trailers).map_err(|e| {
        refused(format!(
            "without saying it reached the end of the log ({e})"
        ))
    })?;
    if end.records != received {
        return Err(refused(format!("but says it sent {}", end.records)));
    }
    Ok(end)
}

fn read(path: &PathBuf) -> Result<Vec<u8>, LogError> {
    std::fs::read(path).map_err(LogError::io(format!("reading {}", path.display())))
}

impl RemoteLog {
    /// Sets up the connection; it is made on first use and remade after
    /// failures, so a txn-server that is down now is no error yet.
    pub(crate) fn new(opts: &RemoteOptions) -> Result<RemoteLog, LogError> {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read(&opts.ca)?))
            .identity(Identity::from_pem(read(&opts.cert)?, read(&opts.key)?))
            .domain_name(opts.server_name.clone());
        let bad = |e: tonic::transport::Error| {
            LogError::Misconfigured(format!("txn-server address {}: {e}", opts.addr))
        };
        let channel = Endpoint::from_shared(opts.addr.clone())
            .map_err(bad)?
            .tls_config(tls)
            .map_err(bad)?
            .connect_timeout(opts.timeout)
            .connect_lazy();
        if let Some(token) = &opts.token {
            TokenFile::watch(token);
        }
        // A fresh id per start: sequences begin at 1 again after a restart.
        let writer = Key::parse(&fresh_id("kvs")).expect("hex and '_' form a key");
        Ok(RemoteLog {
            client: TransactionServiceClient::with_interceptor(channel, Bearer(opts.token.clone()))
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            epoch: Arc::default(),
            writer,
            sequence: 0,
            in_doubt: None,
            timeout: opts.timeout,
            token: opts.token.clone(),
        })
    }

    /// The epoch its appends carry, for the node's role to set.
    pub(crate) fn epoch(&self) -> Arc<AtomicU64> {
        self.epoch.clone()
    }

    /// The log's changes after revision `after`, then each as it becomes
    /// durable (txn-server's `Follow`).
    pub(crate) async fn follow(
        &self,
        after: u64,
    ) -> Result<tonic::Streaming<FollowBatch>, FollowError> {
        let mut client = self.client.clone();
        let call = client.follow(FollowRequest { after });
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(stream)) => Ok(stream.into_inner()),
            Ok(Err(status)) => {
                self.reread_token_if_unauthenticated(&status);
                Err(FollowError::from(status))
            }
            Err(_) => Err(FollowError::Log(LogError::Unavailable(format!(
                "txn-server did not answer within {:?}",
                self.timeout
            )))),
        }
    }

    /// Takes, renews or (with `take` false) only reads the write lease,
    /// waiting at most `patience` (or the txn-server timeout, if shorter)
    /// for the answer.
    pub(crate) async fn lease(
        &self,
        request: LeaseRequest,
        patience: Duration,
    ) -> Result<LeaseResponse, LogError> {
        let mut client = self.client.clone();
        let call = client.lease(request);
        let answer = self.within(patience.min(self.timeout), call).await?;
        Ok(answer.into_inner())
    }

    /// Gives up every batch sent so far that is not durable, and returns
    /// the durable sequence. The fence makes the answer final: a batch of
    /// ours still on its way (a frozen txn-server, a slow network) is refused
    /// when it arrives instead of landing after we undid it.
    async fn fence(&mut self) -> Result<u64, LogError> {
        let mut client = self.client.clone();
        let request = DurableSequenceRequest {
            writer_id: self.writer.to_string(),
            fence: self.sequence,
        };
        let response = self.timed(client.durable_sequence(request)).await?;
        // Our next batch must be the one txn-server takes next: past our
        // fence, or past one it holds that we do not know of (a fence of
        // ours it kept when we lost its answer). Only ever forward: every
        // number skipped is fenced, so nothing sent under it can land.
        if let Some(next) = response
            .metadata()
            .get(NEXT_SEQUENCE_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
        {
            self.sequence = self.sequence.max(next.saturating_sub(1));
        }
        Ok(response.into_inner().durable_sequence)
    }

    /// A call refused as unauthenticated reads the token file again, so
    /// that the next try carries whatever token it holds now.
    fn reread_token_if_unauthenticated(&self, status: &tonic::Status) {
        if status.code() == Code::Unauthenticated
            && let Some(token) = &self.token
        {
            token.reread();
        }
    }

    async fn timed<T>(
        &self,
        call: impl Future<Output = Result<T, tonic::Status>>,
    ) -> Result<T, LogError> {
        self.within(self.timeout, call).await
    }

    /// `call`'s answer, as a log error if it fails or does not come within
    /// `patience`.
    async fn within<T>(
        &self,
        patience: Duration,
        call: impl Future<Output = Result<T, tonic::Status>>,
    ) -> Result<T, LogError> {
        match tokio::time::timeout(patience, call).await {
            Ok(r) => r
                .inspect_err(|s| self.reread_token_if_unauthenticated(s))
                .map_err(log_error),
            Err(_) => Err(LogError::Unavailable(format!(
                "txn-server did not answer within {patience:?}"
            ))),
        }
    }
}

impl Log for RemoteLog {
    async fn replay(
        &mut self,
        mut visit: impl FnMut(Change) + Send + 'static,
    ) -> Result<ReplayStats, LogError> {
        let mut client = self.client.clone();
        let mut stream = self.timed(client.read_transactions(())).await?.into_inner();
        let mut stats = ReplayStats::default();
        let mut revisions = Revisions::default();
        while let Some(t) = stream.message().await.map_err(log_error)? {
            let mut change = Change::try_from(t).map_err(|e| LogError::Corrupt {
                path: "txn-server".into(),
                offset: stats.records,
                reason: e.to_string(),
            })?;
            revisions.stamp(&mut change);
            visit(change);
            stats.records += 1;
        }
        let trailers = stream.trailers().await.map_err(log_error)?;
        let end = checked_end(trailers.as_ref(), stats.records)?;
        // The log's head may be past every change left in it (deletes
        // compacted away), and past what it numbered: take the higher.
        stats.head = revisions.head().max(end.head);
        // txn-server vouches for no history before its head.
        stats.history_from = stats.head;
        stats.skipped = end.skipped;
        if end.skipped > 0 {
            tracing::warn!(
                skipped = end.skipped,
                "txn-server left out rows of the log that cannot be replayed; its log names each"
            );
        }
        Ok(stats)
    }

    async fn append(&mut self, batch: &[Change]) -> Result<(), LogError> {
        let mut resynced = false;
        loop {
            self.sequence += 1;
            let request = AppendRequest {
                writer_id: self.writer.to_string(),
                sequence: self.sequence,
                transactions: batch.iter().map(Transaction::from).collect(),
                epoch: self.epoch.load(Ordering::Acquire),
            };
            let mut client = self.client.clone();
            let sent =
                tokio::time::timeout(self.timeout, client.append_transactions(request)).await;
            return match sent {
                Ok(Ok(resp)) if resp.get_ref().durable_sequence >= self.sequence => Ok(()),
                Ok(Ok(resp)) => Err(LogError::Unavailable(format!(
                    "txn-server acknowledged sequence {} for batch {}",
                    resp.get_ref().durable_sequence,
                    self.sequence
                ))),
                Ok(Err(status)) if status.code() == Code::FailedPrecondition && !resynced => {
                    // Refused, so not logged: txn-server no longer knows where
                    // we are (it forgot us as idle, or a fence of ours). Take
                    // up where it says, and send the batch once more.
                    tracing::info!(
                        reason = status.message(),
                        "txn-server lost our place; taking up where it says"
                    );
                    resynced = true;
                    self.fence().await?;
                    continue;
                }
                Ok(Err(status)) => {
                    self.reread_token_if_unauthenticated(&status);
                    self.in_doubt = Some((self.sequence, batch.to_vec()));
                    Err(log_error(status))
                }
                Err(_) => {
                    self.in_doubt = Some((self.sequence, batch.to_vec()));
                    Err(LogError::Unavailable(format!(
                        "txn-server did not answer within {:?}",
                        self.timeout
                    )))
                }
            };
        }
    }

    async fn recover(&mut self) -> Result<Vec<Change>, LogError> {
        let durable = self.fence().await?;
        match self.in_doubt.take() {
            Some((seq, txns)) if durable >= seq => Ok(txns),
            _ => Ok(Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use kvs_core::change::UNSTAMPED;
    use kvs_core::{Txn, Value};
    use kvs_testkit::certs::Certs;
    use kvs_testkit::fake_txn::FakeTxn;
    use tonic::metadata::MetadataValue;

    use super::*;

    /// What `RemoteLog::replay` makes of `fake`'s replay: the revisions of
    /// the changes it visits, and its totals.
    async fn replay_from(fake: FakeTxn) -> (Vec<u64>, ReplayStats) {
        let certs = Certs::new();
        let served = fake.serve(&certs).await;
        let mut log = RemoteLog::new(&RemoteOptions {
            addr: format!("https://{}", served.addr),
            ca: certs.path("ca.crt"),
            cert: certs.path("client.crt"),
            key: certs.path("client.key"),
            server_name: "localhost".into(),
            timeout: Duration::from_secs(30),
            token: None,
        })
        .unwrap();
        let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let sink = seen.clone();
        let stats = log
            .replay(move |c| sink.lock().push(c.revision))
            .await
            .unwrap();
        let revisions = std::mem::take(&mut *seen.lock());
        (revisions, stats)
    }

    fn put(revision: u64) -> Change {
        Change::new(
            revision,
            Txn::Put {
                key: Key::parse("k").unwrap(),
                value: Value::Int(1),
            },
        )
    }

    fn wire(changes: &[Change]) -> Vec<Transaction> {
        changes.iter().map(Transaction::from).collect()
    }

    #[tokio::test]
    async fn the_head_is_the_trailers_when_the_log_gave_more_than_it_replays() {
        let end = ReplayEnd {
            records: 2,
            skipped: 0,
            head: 10,
        };
        let fake = FakeTxn::ending(wire(&[put(2), put(5)]), end);
        let (revisions, stats) = replay_from(fake).await;
        assert_eq!(revisions, [2, 5]);
        assert_eq!(stats.head, 10);
    }

    #[tokio::test]
    async fn a_txn_server_from_before_revisions_has_its_changes_numbered_in_order() {
        let mut end = MetadataMap::new();
        end.insert(kvs_proto::replay::RECORDS, MetadataValue::from(2u64));
        let fake = FakeTxn {
            transactions: wire(&[put(UNSTAMPED), put(UNSTAMPED)]),
            trailers: Some(end),
        };
        let (revisions, stats) = replay_from(fake).await;
        assert_eq!(revisions, [1, 2]);
        assert_eq!(stats.head, 2);
    }

    fn trailers(records: u64, skipped: u64) -> MetadataMap {
        ReplayEnd {
            records,
            skipped,
            head: 0,
        }
        .status()
        .metadata()
        .clone()
    }

    #[test]
    fn a_status_keeps_the_kind_txn_server_gave_it_and_only_passing_ones_are_temporary() {
        for (code, kind) in [
            (Code::Unavailable, ErrorKind::Unavailable),
            (Code::DataLoss, ErrorKind::DataLoss),
            (Code::FailedPrecondition, ErrorKind::Misconfigured),
            (Code::Unimplemented, ErrorKind::Misconfigured),
            (Code::InvalidArgument, ErrorKind::Refused),
            (Code::Aborted, ErrorKind::Fenced),
            (Code::Internal, ErrorKind::Unavailable),
            (Code::Unauthenticated, ErrorKind::Unavailable),
        ] {
            let e = log_error(tonic::Status::new(code, "why"));
            assert_eq!(e.kind(), kind, "{code:?}");
            assert_eq!(e.to_string(), "txn-server: why");
        }
    }

    #[test]
    fn a_replay_is_complete_when_the_trailers_count_what_arrived() {
        let end = checked_end(Some(&trailers(3, 2)), 3).unwrap();
        assert_eq!((end.records, end.skipped), (3, 2));
    }

    #[test]
    fn a_replay_that_ends_without_the_count_is_refused_as_unavailable() {
        for ended in [None, Some(MetadataMap::new())] {
            match checked_end(ended.as_ref(), 5) {
                Err(LogError::Unavailable(why)) => assert!(
                    why.contains("after 5 transactions")
                        && why.contains("without saying it reached the end")
                        && why.contains("kvs-replay-records"),
                    "{why}"
                ),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_replay_whose_count_differs_from_what_arrived_is_refused() {
        match checked_end(Some(&trailers(4, 0)), 3) {
            Err(LogError::Unavailable(why)) => {
                assert!(
                    why.contains("after 3 transactions but says it sent 4"),
                    "{why}"
                )
            }
            other => panic!("{other:?}"),
        }
    }
}
