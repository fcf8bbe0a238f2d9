//! Mutual TLS: TLS 1.3 only, and no client without a certificate signed by
//! the configured CA.
//!
//! tonic's own TLS settings cannot restrict the protocol version, so the
//! handshake is done here with rustls and tonic serves the finished streams.

use std::io;
use std::path::Path;
use std::sync::Arc;

use kvs_service::accept::{self, Handshakes};
use kvs_service::pem::{PemError, read_certs, read_key};
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(transparent)]
    File(#[from] PemError),
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// Builds the server's TLS settings from PEM files.
pub fn server_config(
    ca: &Path,
    cert: &Path,
    key: &Path,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for c in read_certs(ca)? {
        roots.add(c).map_err(|e| PemError {
            path: ca.to_owned(),
            reason: e.to_string(),
        })?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let key = read_key(key)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(read_certs(cert)?, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts connections and hands tonic those whose handshake succeeded.
/// Each handshake runs in a task of its own, so a slow or hostile client
/// holds up nobody; the loop ends when the server drops the stream.
pub fn incoming(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
) -> ReceiverStream<Result<TlsStream<TcpStream>, io::Error>> {
    let handshakes = Handshakes::new(config);
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = accept::next(&listener) => accepted,
                _ = tx.closed() => return,
            };
            let (handshakes, tx) = (handshakes.clone(), tx.clone());
            tokio::spawn(async move {
                if let Some(tls) = handshakes.accept(tcp, peer).await {
                    tracing::debug!(%peer, "client authenticated");
                    let _ = tx.send(Ok(tls)).await;
                }
            });
        }
    });
    ReceiverStream::new(rx)
}
