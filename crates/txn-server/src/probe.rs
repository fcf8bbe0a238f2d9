//! `txn-server health`: the standard gRPC health check of a running
//! txn-server, for container health checks and scripts.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
use tonic_health::pb::HealthCheckRequest;
pub use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::config::ProbeArgs;

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("cannot reach txn-server at {addr}: {reason}")]
    Unreachable { addr: String, reason: String },
    #[error("txn-server at {addr} refused the check: {status}")]
    Refused { addr: String, status: tonic::Status },
    #[error("txn-server at {addr} did not answer within {timeout_ms} ms")]
    Timeout { addr: String, timeout_ms: u64 },
}

/// Where to reach a server listening on `listen`: an unspecified address
/// listens on every interface, loopback among them.
pub fn target(listen: &str) -> String {
    match listen.parse::<SocketAddr>() {
        Ok(mut addr) if addr.ip().is_unspecified() => {
            let loopback = match addr.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            };
            addr.set_ip(loopback);
            addr.to_string()
        }
        _ => listen.to_owned(),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, ProbeError> {
    std::fs::read(path).map_err(|e| ProbeError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// An error with its causes, which is where tonic keeps what went wrong.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// Asks the server `args` name how `args.service` stands.
pub async fn check(args: &ProbeArgs) -> Result<ServingStatus, ProbeError> {
    let addr = target(&args.listen);
    let unreachable = |e: &dyn std::error::Error| ProbeError::Unreachable {
        addr: addr.clone(),
        reason: with_causes(e),
    };
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(&args.tls_ca)?))
        .identity(Identity::from_pem(
            read(&args.client_cert)?,
            read(&args.client_key)?,
        ))
        .domain_name(args.server_name.clone());
    let endpoint = Endpoint::from_shared(format!("https://{addr}"))
        .and_then(|e| e.tls_config(tls))
        .map_err(|e| unreachable(&e))?;
    let asked = async {
        let channel = endpoint.connect().await.map_err(|e| unreachable(&e))?;
        let request = HealthCheckRequest {
            service: args.service.clone(),
        };
        let answer = HealthClient::new(channel)
            .check(request)
            .await
            .map_err(|status| ProbeError::Refused {
                addr: addr.clone(),
                status,
            })?;
        Ok(answer.into_inner().status())
    };
    tokio::time::timeout(args.timeout(), asked)
        .await
        .map_err(|_| ProbeError::Timeout {
            addr: addr.clone(),
            timeout_ms: args.timeout_ms,
        })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unspecified_address_is_asked_on_loopback() {
        assert_eq!(target("0.0.0.0:5051"), "127.0.0.1:5051");
        assert_eq!(target("[::]:5051"), "[::1]:5051");
        assert_eq!(target("10.0.0.7:5051"), "10.0.0.7:5051");
        assert_eq!(target("txn:5051"), "txn:5051");
    }
}
