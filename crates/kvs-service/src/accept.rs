//! Taking in connections, the same in both servers: the next TCP
//! connection whatever the accept errors, and a TLS handshake bounded in
//! time whose refusals are logged at most once a second.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::throttle::Throttle;

/// A TLS handshake that takes longer than this is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait before accepting again after an accept failed.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// The next connection and its peer. A failed accept is logged and tried
/// again shortly; dropping the future loses no connection.
pub async fn next(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(accepted) => return accepted,
            Err(e) => {
                // Out of file descriptors, most often: wait for some to close.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_RETRY).await;
            }
        }
    }
}

/// TLS handshakes with one server configuration; clones share the
/// throttle of refusal warnings.
#[derive(Clone)]
pub struct Handshakes {
    acceptor: TlsAcceptor,
    /// Anyone who can reach the port can cause refusals: they are logged
    /// at most once a second, with a count (`held_back`) of the rest.
    refusals: Arc<Throttle>,
}

impl Handshakes {
    pub fn new(config: Arc<rustls::ServerConfig>) -> Handshakes {
        Handshakes {
            acceptor: TlsAcceptor::from(config),
            refusals: Arc::new(Throttle::new(Duration::from_secs(1))),
        }
    }

    /// The TLS stream over `stream`, or `None` (logged) when the handshake
    /// failed or took longer than [`HANDSHAKE_TIMEOUT`].
    pub async fn accept<S>(&self, stream: S, peer: SocketAddr) -> Option<TlsStream<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(stream)).await {
            Ok(Ok(tls)) => return Some(tls),
            Ok(Err(e)) => {
                if let Some(held_back) = self.refusals.admit() {
                    tracing::warn!(%peer, error = %e, held_back, "refused a client: TLS handshake failed");
                }
            }
            Err(_) => {
                if let Some(held_back) = self.refusals.admit() {
                    tracing::warn!(%peer, held_back, "refused a client: TLS handshake timed out");
                }
            }
        }
        None
    }
}
