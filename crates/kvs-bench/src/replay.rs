//! The replay measurement: fill a file log with N put transactions, then
//! time kvs-server from process start to `/readyz` answering 200.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kvs_core::{Change, Key, Txn, Value};
use kvs_log::{FileLog, FileOptions, Log};
use serde::Serialize;

use rand::RngExt;

use crate::server::{ServerProcess, default_server_bin};
use crate::workload::{alnum, key_name, stream_rng};

/// The message kvs-server logs once its log is replayed.
pub const READY_MESSAGE: &str = "replayed the transaction log; ready";

#[derive(Debug, Clone)]
pub struct ReplayConfig {
    pub server_bin: PathBuf,
    /// Where `kvs.log` is written and the server is pointed.
    pub data_dir: PathBuf,
    /// Put transactions to write.
    pub records: u64,
    /// Distinct keys they go to (record `i` writes key `i % keys`).
    pub keys: u64,
    pub value_size: usize,
    /// Transactions per append (one fdatasync each).
    pub batch: usize,
    pub key_prefix: String,
    pub key_size: Option<usize>,
    /// Write nothing; start the server on what is there (or on the
    /// backend named in `server_args`).
    pub reuse: bool,
    /// Replace an existing `kvs.log` instead of refusing.
    pub overwrite: bool,
    /// Server starts to time.
    pub runs: usize,
    pub seed: u64,
    /// Given to kvs-server after the tool's own arguments.
    pub server_args: Vec<OsString>,
    pub ready_timeout: Duration,
    pub progress: bool,
}

impl ReplayConfig {
    pub fn new(data_dir: PathBuf) -> ReplayConfig {
        ReplayConfig {
            server_bin: default_server_bin(),
            data_dir,
            records: 1_000_000,
            keys: 1_000_000,
            value_size: 32,
            batch: 10_000,
            key_prefix: "k".into(),
            key_size: None,
            reuse: false,
            overwrite: false,
            runs: 1,
            seed: 1,
            server_args: Vec::new(),
            ready_timeout: Duration::from_secs(600),
            progress: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(
        "{0} already exists: pass --overwrite to replace it, or --reuse-log to time a replay of it as it is"
    )]
    Exists(PathBuf),
    #[error("--records, --keys, --batch and --runs must be at least 1")]
    Zero,
    #[error("bad key: {0}")]
    Key(#[from] kvs_core::KeyError),
    #[error("{0}")]
    Log(#[from] kvs_log::LogError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Server(#[from] crate::server::ServerError),
}

/// How the log was written.
#[derive(Debug, Clone, Serialize)]
pub struct WriteReport {
    pub path: String,
    pub records: u64,
    pub keys: u64,
    pub value_size: usize,
    pub bytes: u64,
    pub seconds: f64,
}

/// One timed server start.
#[derive(Debug, Clone, Serialize)]
pub struct StartReport {
    /// Process start to the first 200 from /readyz.
    pub ready_ms: f64,
    /// Process start to its "listening" log line.
    pub listening_ms: f64,
    /// The fields of the server's "replayed the transaction log; ready" line:
    /// its own replay time (`took_ms`), `records`, `keys`, `bytes`.
    pub server_took_ms: Option<u64>,
    pub server_records: Option<u64>,
    pub server_keys: Option<u64>,
    pub server_bytes: Option<u64>,
    /// Resident memory once ready.
    pub rss_bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write: Option<WriteReport>,
    pub server_args: Vec<String>,
    pub runs: Vec<StartReport>,
    /// The smallest and the median `ready_ms` of the runs.
    pub ready_ms_min: f64,
    pub ready_ms_median: f64,
}

/// Writes the log (unless reusing one) and times the server's starts.
pub async fn run(cfg: &ReplayConfig) -> Result<ReplayReport, ReplayError> {
    if cfg.records == 0 || cfg.keys == 0 || cfg.batch == 0 || cfg.runs == 0 {
        return Err(ReplayError::Zero);
    }
    let write = if cfg.reuse {
        None
    } else {
        Some(write_log(cfg).await?)
    };
    let mut server_args: Vec<OsString> = vec!["--data-dir".into(), cfg.data_dir.clone().into()];
    server_args.extend(cfg.server_args.iter().cloned());
    let mut runs = Vec::with_capacity(cfg.runs);
    for i in 0..cfg.runs {
        let run = time_start(cfg, &server_args).await?;
        if cfg.progress {
            eprintln!(
                "kvs-bench: start {}/{}: ready after {:.1} ms (server's replay: {} ms, {} records)",
                i + 1,
                cfg.runs,
                run.ready_ms,
                run.server_took_ms.map_or("?".into(), |v| v.to_string()),
                run.server_records.map_or("?".into(), |v| v.to_string()),
            );
        }
        runs.push(run);
    }
    let mut ready: Vec<f64> = runs.iter().map(|r| r.ready_ms).collect();
    ready.sort_by(f64::total_cmp);
    Ok(ReplayReport {
        write,
        server_args: server_args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        ready_ms_min: ready[0],
        ready_ms_median: ready[ready.len() / 2],
        runs,
    })
}

async fn time_start(cfg: &ReplayConfig, args: &[OsString]) -> Result<StartReport, ReplayError> {
    let server = ServerProcess::start(&cfg.server_bin, args, cfg.ready_timeout).await?;
    let ready_at = server.wait_ready(cfg.ready_timeout).await?;
    let fields = server
        .wait_event(READY_MESSAGE, Duration::from_secs(5))
        .await
        .ok();
    let rss = server.memory().ok().map(|m| m.rss_bytes);
    let field = |name: &str| fields.as_ref().and_then(|f| f.get(name)?.as_u64());
    let report = StartReport {
        ready_ms: (ready_at - server.spawned_at).as_secs_f64() * 1e3,
        listening_ms: (server.listening_at - server.spawned_at).as_secs_f64() * 1e3,
        server_took_ms: field("took_ms"),
        server_records: field("records"),
        server_keys: field("keys"),
        server_bytes: field("bytes"),
        rss_bytes: rss,
    };
    server.stop().await;
    Ok(report)
}

/// Writes `records` put transactions of string values to a new
/// `DATA_DIR/kvs.log`, through the log's own API.
pub async fn write_log(cfg: &ReplayConfig) -> Result<WriteReport, ReplayError> {
    let path = cfg.data_dir.join("kvs.log");
    if path.exists() {
        if !cfg.overwrite {
            return Err(ReplayError::Exists(path));
        }
        std::fs::remove_file(&path)?;
    }
    let started = Instant::now();
    let opts = FileOptions {
        truncate_corrupt: false,
        // Never compact while filling: the point is N records on disk.
        compact_min_bytes: u64::MAX,
    };
    let mut log = FileLog::open(&path, opts)?;
    let mut rng = stream_rng(cfg.seed, 0);
    let pool = alnum(&mut rng, cfg.value_size + 1024);
    let pool = String::from_utf8(pool).expect("letters and digits are UTF-8");
    let mut batch = Vec::with_capacity(cfg.batch);
    let mut name = String::new();
    let mut written = 0u64;
    let mut last_progress = Instant::now();
    while written < cfg.records {
        batch.clear();
        let n = (cfg.records - written).min(cfg.batch as u64);
        for i in written..written + n {
            name.clear();
            key_name(&cfg.key_prefix, cfg.key_size, i % cfg.keys, &mut name);
            let start = rng.random_range(0..=1024);
            // One revision per record, as kvs-server gives one per write.
            batch.push(Change::new(
                i + 1,
                Txn::Put {
                    key: Key::parse(&name)?,
                    value: Value::Str(pool[start..start + cfg.value_size].to_owned()),
                },
            ));
        }
        log.append(&batch).await?;
        written += n;
        if cfg.progress && last_progress.elapsed() >= Duration::from_secs(1) {
            last_progress = Instant::now();
            eprintln!(
                "kvs-bench: wrote {written} of {} records ({:.1} s)",
                cfg.records,
                started.elapsed().as_secs_f64()
            );
        }
    }
    drop(log);
    let bytes = std::fs::metadata(&path)?.len();
    Ok(WriteReport {
        path: path.display().to_string(),
        records: cfg.records,
        keys: cfg.keys.min(cfg.records),
        value_size: cfg.value_size,
        bytes,
        seconds: started.elapsed().as_secs_f64(),
    })
}

impl ReplayReport {
    pub fn table(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        if let Some(w) = &self.write {
            let _ = writeln!(
                out,
                "log          {} put transactions over {} keys, {}-byte values: {} ({:.1} MiB) written in {:.2} s",
                w.records,
                w.keys,
                w.value_size,
                w.path,
                w.bytes as f64 / (1024.0 * 1024.0),
                w.seconds
            );
        }
        let _ = writeln!(out, "server args  {}", self.server_args.join(" "));
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "run   ready (ms)  listening (ms)  server replay (ms)   records       keys  RSS (MiB)"
        );
        let opt = |v: Option<u64>| v.map_or("?".to_owned(), |v| v.to_string());
        for (i, r) in self.runs.iter().enumerate() {
            let _ = writeln!(
                out,
                "{:<5} {:>10.1} {:>15.1} {:>19} {:>9} {:>10} {:>10}",
                i + 1,
                r.ready_ms,
                r.listening_ms,
                opt(r.server_took_ms),
                opt(r.server_records),
                opt(r.server_keys),
                r.rss_bytes.map_or("?".to_owned(), |b| format!(
                    "{:.1}",
                    b as f64 / (1024.0 * 1024.0)
                )),
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "start to ready: {:.1} ms (best), {:.1} ms (median of {})",
            self.ready_ms_min,
            self.ready_ms_median,
            self.runs.len()
        );
        out
    }
}

/// A temporary directory for the log when none is given.
pub fn temp_data_dir() -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("kvs-bench-replay")
        .tempdir()
}

/// Whether `dir` holds a log file.
pub fn has_log(dir: &Path) -> bool {
    dir.join("kvs.log").exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_a_log_that_replays_to_the_records() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = ReplayConfig::new(dir.path().to_owned());
        cfg.records = 2_500;
        cfg.keys = 1_000;
        cfg.batch = 1_000;
        cfg.value_size = 10;
        let w = write_log(&cfg).await.unwrap();
        assert_eq!(w.records, 2_500);
        assert!(w.bytes > 2_500 * 10);
        assert!(has_log(dir.path()));

        let mut log = FileLog::open(dir.path().join("kvs.log"), FileOptions::default()).unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = seen.clone();
        let stats = log
            .replay(move |t| sink.lock().unwrap().push(t))
            .await
            .unwrap();
        assert_eq!((stats.records, stats.head), (2_500, 2_500));
        drop(log);
        let record = seen.lock().unwrap()[1_001].clone();
        assert_eq!(record.revision, 1_002);
        match &record.txn {
            Txn::Put {
                key,
                value: Value::Str(s),
            } => {
                assert_eq!(key.as_str(), "k1");
                assert_eq!(s.len(), 10);
            }
            other => panic!("unexpected {other:?}"),
        }

        // A second fill refuses to append to it, unless told to overwrite.
        assert!(matches!(write_log(&cfg).await, Err(ReplayError::Exists(_))));
        cfg.overwrite = true;
        cfg.records = 10;
        assert_eq!(write_log(&cfg).await.unwrap().records, 10);
    }
}
