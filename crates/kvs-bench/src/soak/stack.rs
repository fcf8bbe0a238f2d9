//! txn-server and kvs-server as children of the soak, and the outages of
//! txn-server: killed and restarted, or frozen and resumed.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::config::{Fault, SoakConfig};
use super::outage::Outage;
use super::{COMPACTED, OPENED, PROCESS_TIMEOUT, SoakError};
use crate::server::ServerProcess;

/// txn-server and kvs-server, their files in one temporary directory.
pub(super) struct Stack {
    pub(super) txn: Option<ServerProcess>,
    pub(super) kvs: ServerProcess,
    txn_bin: PathBuf,
    txn_args: Vec<OsString>,
    pub(super) log_path: PathBuf,
    /// Compactions of txn-server processes already gone.
    pub(super) compactions: usize,
}

impl Stack {
    pub(super) async fn start(cfg: &SoakConfig, dir: &Path) -> Result<Stack, SoakError> {
        let certs = dir.join("certs");
        kvs_certs::write(&certs, &kvs_certs::Options::default())?;
        let cert = |name: &str| OsString::from(certs.join(name));
        let txn_dir = dir.join("txn");
        // A port of its choosing at the first start, kept across restarts
        // so that kvs-server finds txn-server again where it was.
        let mut txn_args: Vec<OsString> = vec![
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--backend".into(),
            "file".into(),
            "--data-dir".into(),
            txn_dir.clone().into(),
            "--compact-min-bytes".into(),
            cfg.txn_compact_min_bytes.to_string().into(),
            "--tls-ca".into(),
            cert("ca.crt"),
            "--tls-cert".into(),
            cert("server.crt"),
            "--tls-key".into(),
            cert("server.key"),
        ];
        let txn = ServerProcess::start(&cfg.txn_bin, &txn_args, PROCESS_TIMEOUT).await?;
        txn_args[1] = txn.addr.to_string().into();
        let kvs_args: Vec<OsString> = vec![
            "--txn-addr".into(),
            format!("https://{}", txn.addr).into(),
            "--txn-server-name".into(),
            "localhost".into(),
            "--tls-ca".into(),
            cert("ca.crt"),
            "--tls-cert".into(),
            cert("client.crt"),
            "--tls-key".into(),
            cert("client.key"),
            "--durability".into(),
            "sync".into(),
            // Unused with --txn-addr; kept out of the working directory.
            "--data-dir".into(),
            dir.join("kvs").into(),
        ];
        let kvs = ServerProcess::start(&cfg.kvs_bin, &kvs_args, PROCESS_TIMEOUT).await?;
        kvs.wait_ready(PROCESS_TIMEOUT).await?;
        Ok(Stack {
            txn: Some(txn),
            kvs,
            txn_bin: cfg.txn_bin.clone(),
            txn_args,
            log_path: txn_dir.join("txn.log"),
            compactions: 0,
        })
    }

    /// Takes txn-server away for `downtime`: kills it and starts a new one
    /// on the same port and data directory, or freezes and resumes it.
    pub(super) async fn outage(
        &mut self,
        fault: Fault,
        downtime: Duration,
        load_start: Instant,
    ) -> Result<Outage, SoakError> {
        let started = Instant::now();
        let mut torn = None;
        let noticed = match (fault, self.txn.take()) {
            (Fault::Stop, Some(txn)) => {
                txn.signal("STOP").await?;
                let noticed = self.wait_out(started + downtime).await;
                txn.signal("CONT").await?;
                self.txn = Some(txn);
                noticed
            }
            (_, txn) => {
                if let Some(txn) = txn {
                    self.compactions += txn.count_events(COMPACTED);
                    txn.stop().await;
                }
                let noticed = self.wait_out(started + downtime).await;
                let txn =
                    ServerProcess::start(&self.txn_bin, &self.txn_args, PROCESS_TIMEOUT).await?;
                torn = txn
                    .wait_event(OPENED, Duration::ZERO)
                    .await
                    .ok()
                    .and_then(|f| f.get("torn_bytes")?.as_u64());
                self.txn = Some(txn);
                noticed
            }
        };
        let back = Instant::now();
        let recovered = self.kvs.wait_ready(PROCESS_TIMEOUT).await.ok();
        let ms = |t: Instant| (t - started).as_secs_f64() * 1e3;
        Ok(Outage {
            at_s: (started - load_start).as_secs_f64(),
            noticed_ms: noticed.map(ms),
            back_ms: ms(back),
            recovered_ms: recovered.map(ms),
            torn_bytes: torn,
            unavailable: 0,
        })
    }

    /// Waits until `until`; returns when kvs-server noticed the outage (its
    /// /readyz stopped answering 200), if it did by then.
    async fn wait_out(&self, until: Instant) -> Option<Instant> {
        let left = until.saturating_duration_since(Instant::now());
        let noticed = self.kvs.wait_not_ready(left).await.ok();
        tokio::time::sleep_until(until.into()).await;
        noticed
    }
}
