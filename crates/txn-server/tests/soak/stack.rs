//! The soak's servers: kvs-testkit's [`Stack`] on txn-server's file
//! backend, and the outages of txn-server: killed and restarted, or frozen
//! and resumed.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use kvs_testkit::process::ServerProcess;
use kvs_testkit::stack::{Stack, Store};
use reqwest::StatusCode;

use super::config::{Fault, SoakConfig};
use super::outage::Outage;
use super::{COMPACTED, OPENED, PROCESS_TIMEOUT};

/// The stack and what the soak reads of it.
pub(super) struct SoakStack {
    pub(super) stack: Stack,
    pub(super) log_path: PathBuf,
    /// Compactions of txn-server processes already gone.
    pub(super) compactions: usize,
}

impl SoakStack {
    pub(super) async fn start(cfg: &SoakConfig) -> SoakStack {
        let txn_args = [
            "--compact-min-bytes".to_owned(),
            cfg.txn_compact_min_bytes.to_string(),
        ];
        let stack = Stack::file_with(&txn_args, &["--durability", "sync"]).await;
        let log_path = match &stack.store {
            Store::File(dir) => dir.path().join("txn.log"),
            Store::Postgres(_) => unreachable!("a file stack"),
        };
        SoakStack {
            stack,
            log_path,
            compactions: 0,
        }
    }

    pub(super) fn kvs(&self) -> &ServerProcess {
        &self
            .stack
            .kvs
            .as_ref()
            .expect("kvs-server is running")
            .server
    }

    pub(super) fn txn(&self) -> &ServerProcess {
        self.stack.txn.as_ref().expect("txn-server is running")
    }

    /// Takes txn-server away for `downtime`: kills it and starts a new one
    /// on the same port and data directory, or freezes and resumes it.
    pub(super) async fn outage(
        &mut self,
        fault: Fault,
        downtime: Duration,
        load_start: Instant,
    ) -> Outage {
        let started = Instant::now();
        let mut torn = None;
        let noticed = match fault {
            Fault::Stop => {
                self.txn().signal("STOP");
                let noticed = self.wait_out(started + downtime).await;
                self.txn().signal("CONT");
                noticed
            }
            Fault::Kill => {
                let txn = self.stack.txn.take().expect("txn-server is running");
                self.compactions += txn.events(COMPACTED).len();
                txn.kill();
                let noticed = self.wait_out(started + downtime).await;
                // The start waits for the listening line; the load goes on
                // on the other worker meanwhile.
                tokio::task::block_in_place(|| self.stack.start_txn());
                torn = self
                    .txn()
                    .events(OPENED)
                    .first()
                    .and_then(|f| f.get("torn_bytes")?.as_u64());
                noticed
            }
        };
        let back = Instant::now();
        let recovered = self.wait_readyz(true, PROCESS_TIMEOUT).await;
        let ms = |t: Instant| (t - started).as_secs_f64() * 1e3;
        Outage {
            at_s: (started - load_start).as_secs_f64(),
            noticed_ms: noticed.map(ms),
            back_ms: ms(back),
            recovered_ms: recovered.map(ms),
            torn_bytes: torn,
            unavailable: 0,
        }
    }

    /// Waits until `until`; returns when kvs-server noticed the outage (its
    /// /readyz stopped answering 200), if it did by then.
    async fn wait_out(&self, until: Instant) -> Option<Instant> {
        let left = until.saturating_duration_since(Instant::now());
        let noticed = self.wait_readyz(false, left).await;
        tokio::time::sleep_until(until.into()).await;
        noticed
    }

    /// Polls kvs-server's `/readyz` every millisecond until it answers 200
    /// (`ready`) or anything else; when that answer came, if within
    /// `limit`. The time is what the report measures, so no panic here.
    pub(super) async fn wait_readyz(&self, ready: bool, limit: Duration) -> Option<Instant> {
        let api = self.stack.api();
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            let answer = api
                .client
                .get(api.url("/readyz"))
                .timeout(Duration::from_secs(5))
                .send()
                .await;
            if let Ok(r) = answer
                && (r.status() == StatusCode::OK) == ready
            {
                return Some(Instant::now());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        None
    }

    /// Stops txn-server with SIGTERM; an error when it does not exit by
    /// itself within `limit` (it is killed then).
    pub(super) async fn terminate_txn(&mut self, limit: Duration) -> Result<ExitStatus, String> {
        let mut txn = self.stack.txn.take().expect("txn-server is running");
        self.compactions += txn.events(COMPACTED).len();
        txn.signal("TERM");
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = txn.exited() {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "txn-server did not stop within {limit:?} of SIGTERM"
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
