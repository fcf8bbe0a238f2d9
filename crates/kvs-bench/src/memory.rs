//! The memory measurement: kvs-server in memory-only mode, filled with N
//! string keys of a given size, and its resident set size read from /proc.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde::Serialize;

use crate::client::{self, BenchConfig, BenchError, Limit, Target};
use crate::report::PhaseReport;
use crate::server::{ProcMemory, ServerError, ServerProcess, default_server_bin};
use crate::workload::{ValueKind, WorkloadError, WorkloadKind, WorkloadSpec};

#[derive(Debug, Clone)]
pub struct MemoryConfig {
    pub server_bin: PathBuf,
    pub keys: u64,
    /// Bytes of each key (`k` and a zero-padded number).
    pub key_size: usize,
    /// Bytes of each string value.
    pub value_size: usize,
    /// Connections that PUT the keys.
    pub connections: usize,
    pub seed: u64,
    /// Given to kvs-server after `--memory-only` and the tool's own.
    pub server_args: Vec<OsString>,
    /// Pause between the last PUT and reading the memory.
    pub settle: Duration,
    pub progress: bool,
    pub stop: Arc<AtomicBool>,
}

impl Default for MemoryConfig {
    fn default() -> MemoryConfig {
        MemoryConfig {
            server_bin: default_server_bin(),
            keys: 1_000_000,
            key_size: 16,
            value_size: 32,
            connections: 50,
            seed: 1,
            server_args: Vec::new(),
            settle: Duration::from_millis(500),
            progress: false,
            stop: Arc::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("{0}")]
    Workload(#[from] WorkloadError),
    #[error("{0}")]
    Bench(#[from] BenchError),
    #[error("{0}")]
    Server(#[from] ServerError),
}

#[derive(Debug, Clone, Serialize)]
pub struct MemoryReport {
    pub keys: u64,
    pub key_size: usize,
    pub value_size: usize,
    /// `keys * (key_size + value_size)`: the payload itself.
    pub data_bytes: u64,
    /// The server once ready, before any key.
    pub baseline: ProcMemory,
    /// The server holding every key.
    pub loaded: ProcMemory,
    /// `loaded.rss_bytes - baseline.rss_bytes`.
    pub rss_growth_bytes: u64,
    /// `rss_growth_bytes / keys`.
    pub growth_per_key_bytes: f64,
    /// `loaded.rss_bytes / keys`.
    pub rss_per_key_bytes: f64,
    pub fill: PhaseReport,
    pub server_args: Vec<String>,
}

pub async fn run(cfg: &MemoryConfig) -> Result<MemoryReport, MemoryError> {
    let mut spec = WorkloadSpec::new(WorkloadKind::Put, cfg.keys);
    spec.value_type = ValueKind::Str;
    spec.key_size = Some(cfg.key_size);
    spec.value_size = cfg.value_size;
    let workload = spec.build()?;

    let mut args: Vec<OsString> = vec!["--memory-only".into()];
    args.extend(cfg.server_args.iter().cloned());
    let server = ServerProcess::start(&cfg.server_bin, &args, Duration::from_secs(60)).await?;
    server.wait_ready(Duration::from_secs(60)).await?;
    let baseline = server.memory()?;

    let mut bench = BenchConfig::new(Target::addr(server.addr), workload);
    bench.connections = cfg.connections;
    bench.limit = Limit::Requests(0);
    bench.prefill = true;
    bench.seed = cfg.seed;
    bench.progress = cfg.progress;
    bench.stop = cfg.stop.clone();
    let result = client::run(&bench).await;
    let result = match result {
        Ok(r) => r,
        Err(e) => {
            server.stop().await;
            return Err(e.into());
        }
    };
    tokio::time::sleep(cfg.settle).await;
    let loaded = server.memory();
    server.stop().await;
    let loaded = loaded?;

    let fill = PhaseReport::of(result.prefill.as_ref().expect("prefill ran"));
    let growth = loaded.rss_bytes.saturating_sub(baseline.rss_bytes);
    Ok(MemoryReport {
        keys: cfg.keys,
        key_size: cfg.key_size,
        value_size: cfg.value_size,
        data_bytes: cfg.keys * (cfg.key_size + cfg.value_size) as u64,
        baseline,
        loaded,
        rss_growth_bytes: growth,
        growth_per_key_bytes: growth as f64 / cfg.keys as f64,
        rss_per_key_bytes: loaded.rss_bytes as f64 / cfg.keys as f64,
        fill,
        server_args: args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
    })
}

impl MemoryReport {
    pub fn table(&self) -> String {
        use std::fmt::Write as _;
        let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "data         {} string keys, {}-byte keys, {}-byte values ({:.1} MiB of payload)",
            self.keys,
            self.key_size,
            self.value_size,
            mb(self.data_bytes)
        );
        let _ = writeln!(out, "server args  {}", self.server_args.join(" "));
        let f = &self.fill;
        let _ = writeln!(
            out,
            "fill         {} PUTs in {:.2} s ({:.0}/s), {} not 2xx, {} transport errors",
            f.requests,
            f.seconds,
            f.throughput_rps,
            f.non_2xx(),
            f.transport_errors
        );
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "RSS empty    {:>10.1} MiB (peak {:.1} MiB)",
            mb(self.baseline.rss_bytes),
            mb(self.baseline.peak_rss_bytes)
        );
        let _ = writeln!(
            out,
            "RSS loaded   {:>10.1} MiB (peak {:.1} MiB)",
            mb(self.loaded.rss_bytes),
            mb(self.loaded.peak_rss_bytes)
        );
        let _ = writeln!(out, "growth       {:>10.1} MiB", mb(self.rss_growth_bytes));
        let _ = writeln!(
            out,
            "per key      {:>10.1} B of growth, {:.1} B of RSS",
            self.growth_per_key_bytes, self.rss_per_key_bytes
        );
        out
    }
}
