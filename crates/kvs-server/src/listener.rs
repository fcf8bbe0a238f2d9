//! The HTTP listener: accepts connections, over TLS when configured, serves
//! at most `max_connections` of them at once, and drains them at shutdown.
//!
//! A connection over the cap is not left waiting in the kernel's backlog,
//! where a client cannot tell a busy server from a dead one: it is served a
//! single 503 with `Retry-After` and closed. Those refusals are capped too
//! (a flood of connections is closed at once), and logged once a second.
//!
//! - [`idle`]: a connection on which nothing moves for too long is closed.
//! - [`linger`]: a connection closed while its client still sends lingers,
//!   so that the answer is not lost to a reset.

mod idle;
mod linger;

use std::future::Future;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use kvs_service::accept::{self, Handshakes};
use kvs_service::pem::{PemError, read_certs, read_key};
use kvs_service::throttle::Throttle;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;
use idle::Idle;
use linger::Linger;

/// How much longer than the header timeout a connection may stay silent:
/// a request that runs out of time is answered 408 rather than cut off.
const IDLE_GRACE: Duration = Duration::from_secs(5);
/// Connections over the cap being answered 503 at once; beyond them a
/// connection is closed without an answer.
const REFUSALS_IN_FLIGHT: usize = 64;

pub(crate) struct Listener {
    pub tcp: TcpListener,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub max_connections: usize,
    /// How long a client may take to send a request's headers, and how long
    /// an idle keep-alive connection is kept; a connection on which no byte
    /// moves for a little longer is closed, whatever state it is in.
    pub header_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error(transparent)]
    Pem(#[from] PemError),
    #[error("HTTP TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

/// TLS 1.2 and 1.3 settings for the HTTP listener from PEM files; ALPN
/// offers HTTP/2 and HTTP/1.1.
pub(crate) fn tls_config(
    cert: &Path,
    key: &Path,
) -> Result<Arc<rustls::ServerConfig>, TlsConfigError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(read_certs(cert)?, read_key(key)?)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

impl Listener {
    /// Serves `app` until `shutdown` resolves, then waits for the open
    /// connections to finish their requests and close.
    pub(crate) async fn serve(
        self,
        app: Router,
        shutdown: impl Future<Output = ()>,
    ) -> io::Result<()> {
        let mut http = auto::Builder::new(TokioExecutor::new());
        http.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_timeout);
        let busy_http = {
            let mut b = http.clone();
            b.http1().keep_alive(false);
            b
        };
        let busy_app = Router::new().fallback(|| async {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is serving as many connections as it may (--max-connections); retry shortly",
            )
        });
        let handshakes = self.tls.map(Handshakes::new);
        let slots = Arc::new(Semaphore::new(self.max_connections));
        let refusals = Arc::new(Semaphore::new(REFUSALS_IN_FLIGHT));
        let warnings = Throttle::new(Duration::from_secs(1));
        let graceful = GracefulShutdown::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = accept::next(&self.tcp) => accepted,
                _ = &mut shutdown => break,
            };
            let _ = tcp.set_nodelay(true);
            let tcp = Linger::new(Idle::new(tcp, self.header_timeout + IDLE_GRACE));
            let slot = slots.clone().try_acquire_owned().ok();
            // Held by a connection being refused; never both.
            let mut refusal = None;
            if slot.is_none() {
                if let Some(held_back) = warnings.admit() {
                    tracing::warn!(%peer, held_back, max_connections = self.max_connections, "refusing connections: at the connection cap");
                }
                match refusals.clone().try_acquire_owned() {
                    Ok(permit) => refusal = Some(permit),
                    Err(_) => continue,
                }
            }
            let (builder, app) = match slot {
                Some(_) => (http.clone(), app.clone()),
                None => (busy_http.clone(), busy_app.clone()),
            };
            let watcher = graceful.watcher();
            let handshakes = handshakes.clone();
            tokio::spawn(async move {
                let _refusal = refusal;
                match handshakes {
                    None => serve_connection(tcp, builder, app, watcher, slot).await,
                    Some(handshakes) => {
                        if let Some(tls) = handshakes.accept(tcp, peer).await {
                            serve_connection(tls, builder, app, watcher, slot).await
                        }
                    }
                }
            });
        }
        drop(self.tcp);
        graceful.shutdown().await;
        Ok(())
    }
}

/// Serves one connection; its slot is given back when it closes.
async fn serve_connection<S>(
    stream: S,
    builder: auto::Builder<TokioExecutor>,
    app: Router,
    watcher: hyper_util::server::graceful::Watcher,
    _slot: Option<OwnedSemaphorePermit>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
    // Errors here are the client's: a reset, a malformed request, a timeout.
    if let Err(e) = watcher.watch(conn.into_owned()).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
