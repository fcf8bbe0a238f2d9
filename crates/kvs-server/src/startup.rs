//! Builds the service, replays the log, serves until told to stop, and
//! shuts down in order: HTTP first (in-flight requests finish), then the
//! journal (everything accepted is flushed).

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use kvs_log::{FileLog, FileOptions, Log, LogError, MemoryLog, ReplayStats};
use kvs_service::backoff::Backoff;
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::Config;
use crate::config::Role;
use crate::listener::{self, Listener};
use crate::metrics::Metrics;
use crate::replica::Replica;
use crate::replica::lease::Lease;
use crate::replica::routing::Routing;
use crate::routes::{AppState, Guards, router};
use crate::store::remote::{RemoteLog, fresh_id};
use crate::store::{Appliers, Db, Journal, Store};
use crate::watch::{History, Watchers};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("cannot replay the transaction log: {0}")]
    Replay(LogError),
    #[error("HTTP server failed: {0}")]
    Http(#[from] std::io::Error),
    #[error(transparent)]
    Tls(#[from] listener::TlsConfigError),
    #[error("{0}: writes could no longer become durable")]
    Halted(String),
}

/// How often replay reports its progress, in records.
const PROGRESS_EVERY: u64 = 1_000_000;

/// A kvs-server running inside this process, for tests and for programs
/// that embed it; dropping the handle shuts the server down.
pub struct Running {
    addr: SocketAddr,
    tls: bool,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), StartupError>>,
}

impl Running {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its root URL, `https://` when it serves TLS (the API is under
    /// `/kvs/v1-0-0`).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Shuts down gracefully and waits until the log is flushed.
    pub async fn stop(self) -> Result<(), StartupError> {
        let _ = self.stop.send(());
        self.task
            .await
            .map_err(|e| StartupError::Http(std::io::Error::other(e)))?
    }
}

/// Binds `config.listen` (port 0 picks a free port), serves in a task of
/// its own, and returns once the log is replayed and writes are taken.
pub async fn spawn(config: Config) -> Result<Running, StartupError> {
    let listener = TcpListener::bind(&config.listen).await?;
    let addr = listener.local_addr()?;
    let tls = config.http_tls_cert.is_some();
    let (stop, stopped) = oneshot::channel::<()>();
    let (ready, is_ready) = oneshot::channel();
    let task = tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        start(listener, config, shutdown, Some(ready)).await
    });
    match is_ready.await {
        Ok(()) => Ok(Running {
            addr,
            tls,
            stop,
            task,
        }),
        // It stopped before it was ready: say why.
        Err(_) => match task.await {
            Ok(Err(e)) => Err(e),
            Ok(Ok(())) => Err(StartupError::Config(
                "the server stopped during start-up".into(),
            )),
            Err(e) => Err(StartupError::Http(std::io::Error::other(e))),
        },
    }
}

/// [`spawn`] on an ephemeral loopback port with the log in `data_dir`, and
/// otherwise the defaults changed by the command-line flags `args`. With
/// `TEST_LOG` set, its logs go to the test's output.
pub async fn spawn_with(data_dir: &Path, args: &[&str]) -> Result<Running, StartupError> {
    kvs_service::telemetry::init_for_tests();
    let dir = data_dir.to_string_lossy();
    let argv = ["kvs-server", "--listen", "127.0.0.1:0", "--data-dir", &dir]
        .into_iter()
        .chain(args.iter().copied());
    let config = Config::try_parse_from(argv).map_err(|e| StartupError::Config(e.to_string()))?;
    spawn(config).await
}

/// Serves on `listener` until `shutdown` resolves.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartupError> {
    start(listener, config, shutdown, None).await
}

/// [`run`], telling `ready` once the log is replayed.
async fn start(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
    ready: Option<oneshot::Sender<()>>,
) -> Result<(), StartupError> {
    config.check_role().map_err(StartupError::Config)?;
    if let Some(remote) = config.remote() {
        let remote = remote.map_err(StartupError::Config)?;
        tracing::info!(addr = %remote.addr, server_name = %remote.server_name, role = config.role_name(), "keeping the log in txn-server");
        let log = RemoteLog::new(&remote)?;
        let shared = match config.role {
            Role::Standalone => None,
            Role::Standby | Role::Follower => Some(Shared {
                epoch: log.epoch(),
                log: RemoteLog::new(&remote)?,
            }),
        };
        serve(listener, &config, log, false, shared, shutdown, ready).await
    } else if config.memory_only {
        tracing::warn!("memory-only mode: nothing is logged and every value is lost at shutdown");
        serve(listener, &config, MemoryLog, false, None, shutdown, ready).await
    } else {
        let opts = FileOptions {
            truncate_corrupt: config.truncate_corrupt,
            compact_min_bytes: config.compact_min_bytes,
        };
        let log = FileLog::open(config.log_path(), opts)?;
        tracing::info!(log = %config.log_path().display(), "opened the embedded transaction log");
        serve(listener, &config, log, true, None, shutdown, ready).await
    }
}

/// What a standby or a follower needs beyond the committer's log: a log of
/// its own to follow and keep the lease through, and the epoch the
/// committer's appends carry.
struct Shared {
    log: RemoteLog,
    epoch: Arc<AtomicU64>,
}

/// `file`: the log is the embedded file, whose replay reports bytes read
/// and dropped (other backends have no such thing).
async fn serve<L: Log>(
    listener: TcpListener,
    config: &Config,
    mut log: L,
    file: bool,
    shared: Option<Shared>,
    shutdown: impl Future<Output = ()>,
    ready: Option<oneshot::Sender<()>>,
) -> Result<(), StartupError> {
    let tokens = config.tokens().map_err(StartupError::Config)?;
    let tls = match (&config.http_tls_cert, &config.http_tls_key) {
        (Some(cert), Some(key)) => Some(listener::tls_config(cert, key)?),
        _ => None,
    };
    let metrics = Arc::new(Metrics::default());
    let (mut journal, queue) = Journal::new(
        config.durability,
        config.queue_capacity,
        config.audit_reads,
        Duration::from_millis(config.outcome_timeout_ms),
        metrics.clone(),
    );
    journal.replica = shared.is_some();
    let store = Arc::new(Store {
        db: Arc::new(Db::default()),
        journal,
        limits: config.limits(),
        history: Arc::new(History::new(config.watch_history())),
    });
    let watchers = Arc::new(Watchers::new(
        config.max_watchers,
        config.watch_heartbeat(),
        metrics.clone(),
    ));
    let request_timeout = Duration::from_secs(config.request_timeout);
    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let own_url = config
        .advertise_url
        .clone()
        .unwrap_or_else(|| format!("{scheme}://{addr}"));
    let routing = Arc::new(Routing::new(&own_url));
    tracing::info!(
        tls = tls.is_some(),
        bearer_tokens = tokens.as_ref().map_or(0, |t| t.len()),
        max_connections = config.max_connections,
        max_value_bytes = config.max_value_bytes,
        max_entries = config.max_entries,
        request_timeout_s = config.request_timeout,
        "access control and limits"
    );
    if tokens.is_none() {
        tracing::info!(
            "no bearer tokens configured: anyone who can reach the port may read and write"
        );
    }
    let app = router(
        AppState {
            store: store.clone(),
            metrics: metrics.clone(),
            max_txn_ops: config.max_txn_ops,
            watchers: watchers.clone(),
            routing: routing.clone(),
        },
        Guards {
            max_body_bytes: config.max_body_bytes,
            request_timeout,
            tokens,
            min_revision_wait: Duration::from_millis(config.min_revision_wait_ms),
        },
    );

    // Serve from the start, so that health and readiness answer during replay.
    let listener = Listener {
        tcp: listener,
        tls,
        max_connections: config.max_connections,
        header_timeout: request_timeout,
    };
    let (stop_http, http_stopped) = oneshot::channel::<()>();
    let mut http = tokio::spawn(listener.serve(app, async {
        let _ = http_stopped.await;
    }));
    tracing::info!(
        %addr,
        scheme,
        durability = ?config.durability,
        version = env!("CARGO_PKG_VERSION"),
        api_version = crate::routes::API_VERSION,
        "listening"
    );

    let started = Instant::now();
    let mut shutdown = std::pin::pin!(shutdown);
    let replayed = tokio::select! {
        r = replay(&mut log, &store) => Some(r),
        _ = &mut shutdown => None,
    };
    let stats = match replayed {
        Some(Ok(stats)) => stats,
        other => {
            let _ = stop_http.send(());
            let _ = http.await;
            return match other {
                Some(Err(e)) => Err(StartupError::Replay(e)),
                _ => Ok(()),
            };
        }
    };
    let took = started.elapsed();
    metrics.replayed(&stats, took);
    tracing::info!(
        records = stats.records,
        skipped = (!file).then_some(stats.skipped),
        keys = store.db.counts().iter().sum::<usize>(),
        bytes = file.then_some(stats.bytes),
        torn_bytes = file.then_some(stats.torn_bytes),
        corrupt_bytes = file.then_some(stats.corrupt_bytes),
        took_ms = took.as_millis() as u64,
        "replayed the transaction log; ready"
    );
    // The history of watchers holds the replayed changes, complete after
    // the revision the log says (a compaction folded what came before).
    store.history.complete_after(stats.history_from);
    let mut role = match shared {
        None => {
            store.journal.open(stats.head);
            None
        }
        Some(Shared { log, epoch }) => {
            let lease = Lease::new(fresh_id("node"), Duration::from_millis(config.lease_ms));
            let check = Duration::from_millis(config.lease_check_ms);
            let replica = Replica::new(config.role, log, epoch, lease, routing.clone(), check);
            tracing::info!(
                role = config.role_name(),
                advertise_url = own_url,
                "following the log; writes sent here go to the primary"
            );
            Some(tokio::spawn(replica.run(store.clone(), stats.head)))
        }
    };
    if let Some(ready) = ready {
        let _ = ready.send(());
    }
    let mut committer = {
        let store = store.clone();
        tokio::spawn(async move { store.commit(log, queue).await })
    };
    // A replica expires keys only while it is the primary.
    let expirer = role.is_none().then(|| tokio::spawn(store.clone().expire()));

    let ended = tokio::select! {
        r = &mut http => Ended::Http(r),
        _ = &mut shutdown => Ended::Asked,
        r = &mut committer => Ended::Committer(r),
        r = async { role.as_mut().expect("only while there is one").await }, if role.is_some() => {
            role = None;
            Ended::Role(r)
        }
    };
    // A committer that stopped by itself left writes applied in memory that
    // will never be durable: the server says why and stops.
    let committer_ended = matches!(ended, Ended::Committer(_));
    let halted = match &ended {
        Ended::Committer(r) => {
            store.journal.halt();
            let reason = match r {
                Err(e) if e.is_panic() => "the committer panicked".to_owned(),
                _ => format!("the committer stopped: {}", store.journal.down_reason()),
            };
            tracing::error!(reason, "no write can become durable; stopping");
            Some(reason)
        }
        Ended::Role(r) => {
            store.journal.halt();
            let reason = match r {
                Ok(e) => format!("cannot follow the log: {e}"),
                Err(_) => "following the log panicked".to_owned(),
            };
            tracing::error!(
                reason,
                "this node can neither follow nor write the log; stopping"
            );
            Some(reason)
        }
        _ => None,
    };
    let http_result = match ended {
        Ended::Http(r) => r,
        Ended::Asked | Ended::Committer(_) | Ended::Role(_) => {
            tracing::info!("shutting down: finishing in-flight requests");
            watchers.close();
            let _ = stop_http.send(());
            let grace = Duration::from_secs(config.shutdown_timeout);
            match tokio::time::timeout(grace, &mut http).await {
                Ok(r) => r,
                Err(_) => {
                    tracing::warn!(
                        ?grace,
                        "in-flight requests did not finish in time; dropping them"
                    );
                    http.abort();
                    Ok(Ok(()))
                }
            }
        }
    };
    // Expiries wait for the next start: a key past its deadline reads as
    // absent then too.
    if let Some(expirer) = expirer {
        expirer.abort();
    }
    // A replica's role holds nothing to flush: the committer does.
    if let Some(role) = role {
        role.abort();
        let _ = role.await;
    }
    store.journal.close();
    if !committer_ended {
        let _ = committer.await;
    }
    tracing::info!("stopped");
    if let Some(reason) = halted {
        return Err(StartupError::Halted(reason));
    }
    match http_result {
        Ok(r) => r.map_err(StartupError::from),
        Err(join) => Err(StartupError::Http(std::io::Error::other(join))),
    }
}

/// What ended serving.
enum Ended {
    Http(Result<std::io::Result<()>, tokio::task::JoinError>),
    Asked,
    Committer(Result<(), tokio::task::JoinError>),
    /// A standby's or follower's role task, which ends only on a failure.
    Role(Result<LogError, tokio::task::JoinError>),
}

/// Replays the whole log into the store's tables and its watch history. A
/// log that is unreachable (a txn-server not up yet, or gone mid-way) is
/// retried from the start on an empty store; any other failure
/// (corruption, a misconfigured txn-server or database) ends start-up: no
/// retry would mend it.
pub(crate) async fn replay<L: Log>(
    log: &mut L,
    store: &Arc<Store>,
) -> Result<ReplayStats, LogError> {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        let head = Arc::new(AtomicU64::new(0));
        // The changes the watch history keeps wait in the tail; the rest
        // are applied as they come, never recorded.
        let replaying = Arc::new(Mutex::new(Some((
            store.history.tail(),
            Appliers::new(store.db.clone()),
        ))));
        let (seen, held) = (head.clone(), replaying.clone());
        let mut applied = 0u64;
        let result = log
            .replay(move |change| {
                seen.fetch_max(change.revision, Ordering::Relaxed);
                if let Some((tail, appliers)) = &mut *held.lock() {
                    tail.push(change, |c| appliers.apply(c));
                }
                applied += 1;
                if applied.is_multiple_of(PROGRESS_EVERY) {
                    tracing::info!(records = applied, "replaying the transaction log");
                }
            })
            .await
            .map(|mut stats| {
                // The log's own head counts deletes that left no record.
                stats.head = stats.head.max(head.load(Ordering::Relaxed));
                stats
            });
        let (tail, mut appliers) = replaying
            .lock()
            .take()
            .expect("taken only once the replay is over");
        match result {
            Err(reason) if reason.is_temporary() => {
                appliers.finish().await;
                let wait = backoff.next_wait();
                tracing::warn!(%reason, retry_in = ?wait, "cannot replay the log yet");
                store.db.clear();
                store.history.clear();
                tokio::time::sleep(wait).await;
            }
            Ok(stats) => {
                // Nobody reads the tables or the history before the
                // replay returns, by when every change is applied.
                store.history.record_tail(tail, |c| appliers.apply(c));
                appliers.finish().await;
                return Ok(stats);
            }
            Err(reason) => {
                appliers.finish().await;
                return Err(reason);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use kvs_core::Change;

    use super::*;

    /// A log whose first append panics, as a bug in a backend would.
    struct PanickingLog;

    impl Log for PanickingLog {
        async fn replay(
            &mut self,
            _visit: impl FnMut(Change) + Send + 'static,
        ) -> Result<ReplayStats, LogError> {
            Ok(ReplayStats::default())
        }
        async fn append(&mut self, _batch: &[Change]) -> Result<(), LogError> {
            panic!("a bug in the backend");
        }
        async fn recover(&mut self) -> Result<Vec<Change>, LogError> {
            Ok(Vec::new())
        }
    }

    #[tokio::test]
    async fn the_replay_applies_every_change_and_records_the_newest_in_the_watch_history() {
        use kvs_core::{Key, Txn, Value, ValueType};

        use crate::store::{Durability, Limits};
        use crate::watch::Bounds;

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kvs.log");
        let put = |k, v| Txn::Put {
            key: Key::parse(k).unwrap(),
            value: Value::Int(v),
        };
        let delete = Txn::Delete {
            ty: ValueType::Int,
            key: Key::parse("k").unwrap(),
        };
        let mut log = FileLog::open(&path, FileOptions::default()).unwrap();
        for (revision, txn) in [(1, put("j", 1)), (2, put("k", 2)), (3, delete)] {
            log.append(&[Change::new(revision, txn)]).await.unwrap();
        }
        drop(log);

        let (journal, _queue) = Journal::new(
            Durability::Sync,
            1,
            false,
            Duration::from_secs(1),
            Arc::default(),
        );
        let store = Arc::new(Store {
            db: Arc::new(Db::default()),
            journal,
            limits: Limits::NONE,
            history: Arc::new(History::new(Bounds {
                revisions: 2,
                bytes: usize::MAX,
            })),
        });
        let mut log = FileLog::open(&path, FileOptions::default()).unwrap();
        let stats = replay(&mut log, &store).await.unwrap();
        assert_eq!(stats.head, 3);
        // Within its bounds: the oldest change is dropped.
        let kept = store.history.after(1, 10).unwrap();
        let kept: Vec<_> = kept.revisions.iter().map(|r| r.revision).collect();
        assert_eq!(kept, [2, 3]);
        assert!(store.history.check(0).is_err());
        // Applied as it came, and at the end from what the history keeps.
        assert_eq!(store.db.get(ValueType::Int, "j"), Some(Value::Int(1)));
        assert_eq!(store.db.get(ValueType::Int, "k"), None);
    }

    #[tokio::test]
    async fn a_committer_that_panics_is_reported_and_stops_the_server() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/kvs/v1-0-0", listener.local_addr().unwrap());
        let config = Config::try_parse_from(["kvs-server", "--memory-only"]).unwrap();
        let (ready, is_ready) = oneshot::channel();
        let server = tokio::spawn(async move {
            let forever = std::future::pending::<()>();
            serve(
                listener,
                &config,
                PanickingLog,
                false,
                None,
                forever,
                Some(ready),
            )
            .await
        });
        is_ready.await.unwrap();

        let client = kvs_testkit::http::client();
        let resp = client
            .put(format!("{base}/str/k"))
            .body("v")
            .send()
            .await
            .unwrap();
        // The write was on its way to the log when the committer died.
        assert_eq!(resp.status(), 504);
        let detail = resp.text().await.unwrap();
        assert!(detail.contains("the committer stopped"), "{detail}");

        let stopped = tokio::time::timeout(Duration::from_secs(60), server)
            .await
            .expect("the server stops by itself")
            .unwrap();
        let err = stopped.expect_err("serving ends with an error");
        assert!(
            matches!(&err, StartupError::Halted(r) if r.contains("panicked")),
            "{err}"
        );
    }
}
