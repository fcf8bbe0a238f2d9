//! txn-server: the transaction log as a service.
//!
//! - [`config`]: flags and environment variables.
//! - [`tls`]: mutual TLS 1.3 in front of the gRPC server.
//! - [`auth`]: the optional bearer-token check.
//! - [`service`]: where a transaction enters (the gRPC methods).
//! - [`gate`]: what holds transaction calls until the backend is open.
//! - [`health`]: the standard gRPC health service, and when it says SERVING.
//! - [`probe`]: `txn-server health`, the client of it that health checks run.
//! - [`replays`]: how many replays and follow streams are served at once,
//!   and when one is cut.
//! - [`follow`]: a `Follow` stream, from the backend's change feed.
//! - [`committer`]: where it becomes durable (group commit to the backend).
//!
//! The backends themselves (PostgreSQL and the file) live in `kvs-log`.

pub mod auth;
pub mod committer;
pub mod config;
pub mod follow;
pub mod gate;
pub mod health;
pub mod probe;
pub mod replays;
pub mod service;
pub mod tls;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use kvs_log::postgres::{PgLog, PgOptions};
use kvs_log::{FileLog, FileOptions, Log, LogError, WriterLog};
use kvs_proto::MAX_MESSAGE_BYTES;
use kvs_proto::api::transaction_service_server::TransactionServiceServer;
use kvs_service::backoff::Backoff;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;

pub use config::{Backend, Config};
use gate::Gate;
use health::Health;
use replays::{FOLLOW, REPLAY, Replays};
use service::TxnService;

#[derive(Debug, thiserror::Error)]
pub enum TxnError {
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Jwt(#[from] auth::KeyError),
    #[error("cannot use PostgreSQL, and waiting would not help: {0}")]
    Postgres(LogError),
    #[error("--database-url (TXN_DATABASE_URL) is required with --backend postgres")]
    MissingDatabaseUrl,
    #[error("gRPC server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Requests that may wait for the committer.
const QUEUE: usize = 4096;

/// Checks the settings and certificates without serving.
pub fn check(config: &Config) -> Result<(), TxnError> {
    tls::server_config(&config.tls_ca, &config.tls_cert, &config.tls_key)?;
    bearer_check(config)?;
    if config.backend == Backend::Postgres && config.database_url.is_none() {
        return Err(TxnError::MissingDatabaseUrl);
    }
    Ok(())
}

/// Serves on `listener` until `shutdown` resolves, then commits what it
/// accepted and returns. The port is served from the start: the health
/// service answers NOT_SERVING, and transaction calls wait, until the
/// backend is open.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), TxnError> {
    let tls = tls::server_config(&config.tls_ca, &config.tls_cert, &config.tls_key)?;
    let bearer = bearer_check(&config)?;
    match config.backend {
        Backend::Postgres => {
            let url = config
                .database_url
                .clone()
                .ok_or(TxnError::MissingDatabaseUrl)?;
            let opts = PgOptions {
                url,
                pool_size: config.pool_size,
                replay_pool_size: config.max_replay_streams,
                timeout: config.db_timeout(),
                follow_keep: config.follow_keep,
            };
            let strict = config.strict_replay;
            let open = async move {
                let log = connect_postgres(&opts).await?;
                let reader = log.reader().strict(strict);
                if strict {
                    tracing::info!("strict replay: a row that cannot be replayed fails the replay");
                }
                Ok((log, reader))
            };
            serve(listener, &config, tls, bearer, open, shutdown).await
        }
        Backend::File => {
            let opts = FileOptions {
                truncate_corrupt: false,
                compact_min_bytes: config.compact_min_bytes,
            };
            let path = config.log_path();
            let open = async move {
                let mut log = FileLog::open(&path, opts)?.keep_changes(config.follow_keep);
                let stats = log.replay(|_| {}).await?;
                tracing::info!(log = %path.display(), records = stats.records, torn_bytes = stats.torn_bytes, "opened the file log");
                let reader = log.reader();
                Ok((log, reader))
            };
            serve(listener, &config, tls, bearer, open, shutdown).await
        }
    }
}

/// How long to wait between tries at a database that does not answer.
fn reconnect_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(200), Duration::from_secs(5))
}

/// Connects to PostgreSQL, waiting for it to come up (as it may, started
/// beside us), and applies the migrations. A failure that waiting cannot
/// cure (a bad URL, a refused password, a database that does not exist, a
/// migration that fails) ends start-up instead.
async fn connect_postgres(opts: &PgOptions) -> Result<PgLog, TxnError> {
    let mut backoff = reconnect_backoff();
    loop {
        match PgLog::connect(opts).await {
            Ok(log) => {
                tracing::info!(
                    pool_size = opts.pool_size,
                    replay_pool_size = opts.replay_pool_size,
                    "connected to PostgreSQL; schema up to date"
                );
                return Ok(log);
            }
            Err(e) if e.is_temporary() => {
                let wait = backoff.next_wait();
                tracing::warn!(error = %e, retry_in = ?wait, "PostgreSQL not reachable yet");
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(TxnError::Postgres(e)),
        }
    }
}

fn bearer_check(config: &Config) -> Result<auth::BearerCheck, TxnError> {
    match &config.jwt_public_key {
        Some(path) => {
            let rules = config.token_rules();
            let check = auth::BearerCheck::from_pem_file(path, rules)?;
            tracing::info!(
                key = %path.display(),
                leeway_s = rules.leeway_secs,
                max_lifetime_s = rules.max_lifetime_secs,
                "every call needs an RS256 bearer token"
            );
            Ok(check)
        }
        None => Ok(auth::BearerCheck::default()),
    }
}

/// Serves until `shutdown`: health at once, transactions once `open` has
/// opened the backend. Then ends the open streams and gives in-flight
/// requests the shutdown timeout; the committer commits what was accepted.
async fn serve<L: WriterLog>(
    listener: TcpListener,
    config: &Config,
    tls: std::sync::Arc<rustls::ServerConfig>,
    bearer: auth::BearerCheck,
    open: impl Future<Output = Result<(L, L::Reader), TxnError>> + Send,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), TxnError> {
    let stopping = CancellationToken::new();
    let (health, health_service) = Health::not_serving().await;
    let (gate, opener) = Gate::<L>::closed(stopping.clone());
    let service = InterceptedService::new(
        TransactionServiceServer::new(gate)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
        bearer,
    );
    let addr = listener.local_addr()?;
    tracing::info!(
        %addr,
        max_replay_streams = config.max_replay_streams,
        max_follow_streams = config.max_follow_streams,
        "listening"
    );
    let server = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(service)
        .serve_with_incoming_shutdown(
            tls::incoming(listener, tls),
            stopping.clone().cancelled_owned(),
        );
    let mut server = std::pin::pin!(server);
    let mut shutdown = std::pin::pin!(shutdown);
    let grace = config.shutdown_timeout();
    let (log, reader) = tokio::select! {
        opened = open => opened?,
        served = &mut server => return served.map_err(TxnError::from),
        () = &mut shutdown => {
            tracing::info!("shutting down before the transaction log was opened");
            stopping.cancel();
            return drain(server.as_mut(), grace).await.map_err(TxnError::from);
        }
    };
    let feed = log.feed();
    let (queue, rx) = mpsc::channel(QUEUE);
    let lease = log.lease();
    let committer = tokio::spawn(committer::run(log, rx, config.writer_ttl(), health.clone()));
    health.set(true).await;
    opener.open(TxnService {
        queue: queue.downgrade(),
        reader,
        lease,
        replays: Replays::new(
            REPLAY,
            config.max_replay_streams,
            config.replay_stall(),
            stopping.clone(),
        ),
        feed,
        follows: Replays::new(
            FOLLOW,
            config.max_follow_streams,
            config.replay_stall(),
            stopping.clone(),
        ),
        stopping: stopping.clone(),
    });
    let served = tokio::select! {
        served = &mut server => served,
        () = shutdown => {
            tracing::info!("shutting down: ending open streams, finishing in-flight requests");
            stopping.cancel();
            drain(server.as_mut(), grace).await
        }
    };
    // The only strong sender: with it gone, the committer drains what was
    // accepted and stops.
    drop(queue);
    let _ = committer.await;
    tracing::info!("stopped");
    served.map_err(TxnError::from)
}

/// Waits up to `grace` for a server told to stop to finish its requests.
async fn drain(
    server: Pin<&mut impl Future<Output = Result<(), tonic::transport::Error>>>,
    grace: Duration,
) -> Result<(), tonic::transport::Error> {
    match tokio::time::timeout(grace, server).await {
        Ok(served) => served,
        Err(_) => {
            tracing::warn!(
                ?grace,
                "connections still busy after --shutdown-timeout (a client not \
                 reading the end of its stream?); stopping without them"
            );
            Ok(())
        }
    }
}
