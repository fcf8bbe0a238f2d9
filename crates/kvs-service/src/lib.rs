//! Start and stop, the same for every KVS binary.
//!
//! - [`telemetry`]: logs as text or JSON lines, filtered by level.
//! - [`accept`]: the next connection, and TLS handshakes bounded in time.
//! - [`backoff`]: waits before trying again.
//! - [`pem`]: certificates and keys read from PEM files.
//! - [`throttle`]: warnings a flood cannot multiply.
//! - [`shutdown_signal`]: resolves on SIGINT or SIGTERM.

pub mod accept;
pub mod backoff;
pub mod pem;
pub mod telemetry;
pub mod throttle;

pub use telemetry::LogFormat;

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
}
