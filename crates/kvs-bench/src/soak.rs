//! The soak: a bounded mixed load on kvs-server keeping its log in a real
//! txn-server (file backend, mutual TLS), txn-server killed and restarted
//! (or frozen) in the middle, then a full comparison of kvs-server's memory
//! with the log and checks of its resident memory. See docs/soak.md.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kvs_core::{PlainState, Txn, Value, ValueType};
use kvs_log::{FileLog, FileOptions, Log, LogError, ReplayStats};
use serde::Serialize;

use crate::client::{self, BenchConfig, BenchError, Conn, Limit, Observer, RunResult, Target};
use crate::report::{PhaseReport, Report};
use crate::server::{ProcMemory, ServerError, ServerProcess, default_bin, default_server_bin};
use crate::stats::{ErrorKind, LatencySummary, Stats};
use crate::workload::{OpClass, ValueKind, WorkloadError, WorkloadKind, WorkloadSpec};

/// The API's base path.
const BASE: &str = "/kvs/v1-0-0";
/// Keys per listing request (the server's maximum).
const LIST_LIMIT: usize = 10_000;
/// Resolution of the timeline that places each answer in or out of an
/// outage.
const TICK: Duration = Duration::from_millis(100);
/// After kvs-server says it is ready again, writes refused a little later
/// were decided before it recovered and still count as the outage's.
const RECOVERY_GRACE: Duration = Duration::from_secs(1);
/// How long a server may take to start, txn-server to come back, kvs-server
/// to recover and txn-server to stop on SIGTERM.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(60);
/// Divergences described in the report.
const EXAMPLES: usize = 10;

/// kvs-server's log events the report counts.
const APPEND_FAILED: &str = "log append failed; undoing the batch";
const REAPPLIED: &str = "the failed batch turned out durable; applying it again";
/// txn-server's.
const COMPACTED: &str = "compacted the log";
const OPENED: &str = "opened the file log";

/// One part of the load: a workload of the bench over a key space of its
/// own, on connections of its own. Together they write every value type.
struct Part {
    kind: WorkloadKind,
    value_type: ValueKind,
    prefix: &'static str,
    /// The part's key space is `--keys` divided by this.
    keys_divisor: u64,
    /// Share of the connections.
    weight: usize,
}

const fn part(
    kind: WorkloadKind,
    value_type: ValueKind,
    prefix: &'static str,
    keys_divisor: u64,
    weight: usize,
) -> Part {
    Part {
        kind,
        value_type,
        prefix,
        keys_divisor,
        weight,
    }
}

/// Counters get a prefix of their own so that increments never meet the
/// random ints of the mixed part (one plus i32::MAX would be a 409).
const PARTS: [Part; 7] = [
    part(WorkloadKind::Mixed, ValueKind::Str, "k", 1, 4),
    part(WorkloadKind::Mixed, ValueKind::Int, "k", 1, 2),
    part(WorkloadKind::Mixed, ValueKind::Uint, "k", 10, 1),
    part(WorkloadKind::Mixed, ValueKind::Float, "k", 10, 1),
    part(WorkloadKind::MapField, ValueKind::Map, "k", 10, 2),
    part(WorkloadKind::SetAdd, ValueKind::Set, "k", 10, 2),
    part(WorkloadKind::Incr, ValueKind::Int, "c", 100, 1),
];

/// How txn-server is taken away in each outage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fault {
    /// SIGKILL, then a new process on the same port and log: a crash.
    Kill,
    /// SIGSTOP, then SIGCONT: a hang, as of a stalled disk or a network
    /// partition; requests already sent are still processed afterwards.
    Stop,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Kill => "killed (SIGKILL) and restarted",
            Fault::Stop => "frozen (SIGSTOP) and resumed",
        }
    }
}

#[derive(Debug, Clone)]
pub struct SoakConfig {
    pub kvs_bin: PathBuf,
    pub txn_bin: PathBuf,
    /// Length of the load (after the prefill).
    pub duration: Duration,
    /// Key space of the string and int parts; the others use a tenth or a
    /// hundredth of it.
    pub keys: u64,
    /// Connections of all parts together.
    pub connections: usize,
    pub value_size: usize,
    /// Share of GETs in the mixed parts.
    pub read_ratio: f64,
    /// Map fields and set members per key.
    pub fields: u64,
    /// Outages of txn-server, spread evenly over the load.
    pub restarts: u32,
    pub fault: Fault,
    /// How long txn-server stays away each time.
    pub downtime: Duration,
    /// A request without an answer by then is stuck: a failure.
    pub timeout: Duration,
    /// The end RSS may be at most the baseline plus `rss_factor` times the
    /// live keys and values plus `rss_allowance`.
    pub rss_factor: f64,
    pub rss_allowance: u64,
    /// The mean RSS of the final third of the load may exceed the second
    /// third's by at most this fraction.
    pub rss_growth: f64,
    /// txn-server's `--compact-min-bytes`: small enough that compactions run
    /// (and get killed) during the soak.
    pub txn_compact_min_bytes: u64,
    pub seed: u64,
    pub progress: bool,
    pub stop: Arc<AtomicBool>,
}

impl Default for SoakConfig {
    fn default() -> SoakConfig {
        SoakConfig {
            kvs_bin: default_server_bin(),
            txn_bin: default_bin("txn-server"),
            duration: Duration::from_secs(300),
            keys: 100_000,
            connections: 48,
            value_size: 32,
            read_ratio: 0.8,
            fields: 4,
            restarts: 2,
            fault: Fault::Kill,
            downtime: Duration::from_secs(2),
            timeout: Duration::from_secs(5),
            rss_factor: 8.0,
            rss_allowance: 64 << 20,
            rss_growth: 0.10,
            txn_compact_min_bytes: 16 << 20,
            seed: 1,
            progress: false,
            stop: Arc::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SoakError {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Certs(#[from] kvs_certs::CertError),
    #[error("temporary directory: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Server(#[from] ServerError),
    #[error("{0}")]
    Workload(#[from] WorkloadError),
    #[error("{0}")]
    Bench(#[from] BenchError),
    #[error("reading kvs-server's keys and values: {0}")]
    Dump(String),
    #[error("reading txn-server's log: {0}")]
    Log(#[from] LogError),
}

/// One outage of txn-server; times from its start (the signal).
#[derive(Debug, Clone, Serialize)]
pub struct Outage {
    /// Seconds into the load.
    pub at_s: f64,
    /// Until kvs-server's /readyz stopped answering 200.
    pub noticed_ms: Option<f64>,
    /// Until txn-server was back: the new one listening, or the frozen one
    /// resumed.
    pub back_ms: f64,
    /// Until kvs-server's /readyz answered 200 again.
    pub recovered_ms: Option<f64>,
    /// Bytes of a torn record the new txn-server cut off its log (the kill
    /// came in the middle of a write); none after a freeze.
    pub torn_bytes: Option<u64>,
    /// 503s answered from the start to shortly after the recovery.
    pub unavailable: u64,
}

/// The 503s of the load, placed against the outages.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Unavailable {
    pub total: u64,
    pub during_outages: u64,
    /// Answered while txn-server was up: failures.
    pub outside_outages: u64,
    /// Reads go on while the log is down: any is a failure.
    pub to_reads: u64,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct RssSample {
    /// Seconds into the load.
    pub at_s: f64,
    pub rss_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct MemoryReport {
    /// kvs-server once ready, before any key.
    pub baseline_rss_bytes: u64,
    /// Once every key was written, before the load.
    pub prefilled_rss_bytes: u64,
    /// The largest of the samples and the kernel's high-water mark.
    pub peak_rss_bytes: u64,
    /// After the load, once kvs-server took writes again.
    pub end_rss_bytes: u64,
    pub live_keys: u64,
    /// Bytes of the live keys and values (see [`payload_bytes`]).
    pub live_bytes: u64,
    pub factor: f64,
    pub allowance_bytes: u64,
    /// `baseline + factor * live + allowance`.
    pub bound_bytes: u64,
    /// Means of the samples in the second and final thirds of the load.
    pub second_third_mean_bytes: Option<f64>,
    pub final_third_mean_bytes: Option<f64>,
    /// `second_third_mean * (1 + growth)`.
    pub final_third_limit_bytes: Option<f64>,
    /// `(bound - end) / requests`: a leak of more than this per request
    /// (prefill and load) would have failed the bound.
    pub headroom_per_request_bytes: f64,
    pub samples: Vec<RssSample>,
}

/// kvs-server's memory against the log.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Comparison {
    /// Keys kvs-server listed, all types.
    pub memory_keys: u64,
    /// Keys live in the log once replayed.
    pub log_keys: u64,
    pub equal: u64,
    /// In the log, not in memory.
    pub missing: u64,
    /// In memory, not in the log.
    pub extra: u64,
    /// In both with different values, or listed but not readable.
    pub differing: u64,
    /// The first few divergences by type and key.
    pub examples: Vec<String>,
}

impl Comparison {
    pub fn divergences(&self) -> u64 {
        self.missing + self.extra + self.differing
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct LogReport {
    pub path: String,
    pub records: u64,
    pub bytes: u64,
    /// After txn-server's graceful stop: must be 0.
    pub torn_bytes: u64,
    /// Compactions txn-server finished during the soak.
    pub compactions: usize,
    /// kvs-server's appends that failed (its writes were undone and got 503).
    pub failed_appends: usize,
    /// Failed appends that turned out durable and were applied again.
    pub reapplied_batches: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub passed: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    pub passed: bool,
    /// The details of the failed checks.
    pub failures: Vec<String>,
    pub checks: Vec<Check>,
    pub kvs_server: String,
    pub txn_server: String,
    pub duration_s: f64,
    pub keys: u64,
    pub connections: usize,
    pub fault: Fault,
    pub downtime_s: f64,
    pub timeout_s: f64,
    pub stopped_early: bool,
    pub prefill: PhaseReport,
    /// The load of every part together.
    pub load: PhaseReport,
    pub parts: Vec<Report>,
    pub outages: Vec<Outage>,
    pub unavailable: Unavailable,
    pub memory: MemoryReport,
    pub log: LogReport,
    pub comparison: Comparison,
}

/// Counts of one tick of the timeline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TickCounts {
    pub requests: u64,
    pub unavailable: u64,
    pub unavailable_reads: u64,
    /// Transport errors and statuses other than 2xx and 503.
    pub failed: u64,
}

#[derive(Debug, Default)]
struct Tick {
    requests: AtomicU64,
    unavailable: AtomicU64,
    unavailable_reads: AtomicU64,
    failed: AtomicU64,
}

/// Every answer of the load, counted by the tick it came in.
#[derive(Debug)]
struct Timeline {
    start: Instant,
    ticks: Box<[Tick]>,
}

impl Timeline {
    fn new(start: Instant, span: Duration) -> Timeline {
        let n = (span.as_millis() / TICK.as_millis()) as usize + 1;
        Timeline {
            start,
            ticks: (0..n).map(|_| Tick::default()).collect(),
        }
    }

    fn counts(&self) -> Vec<TickCounts> {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        self.ticks
            .iter()
            .map(|t| TickCounts {
                requests: get(&t.requests),
                unavailable: get(&t.unavailable),
                unavailable_reads: get(&t.unavailable_reads),
                failed: get(&t.failed),
            })
            .collect()
    }
}

impl Observer for Timeline {
    fn observe(&self, at: Instant, class: OpClass, outcome: Result<u16, ErrorKind>) {
        let i = (at.saturating_duration_since(self.start).as_millis() / TICK.as_millis()) as usize;
        let t = &self.ticks[i.min(self.ticks.len() - 1)];
        t.requests.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Ok(503) => {
                t.unavailable.fetch_add(1, Ordering::Relaxed);
                if class == OpClass::Read {
                    t.unavailable_reads.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(status) if acceptable(status) => {}
            _ => {
                t.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// A status the soak accepts at any time. Not even a 404: every key was
/// written before the load and none is deleted, so a 404 is a lost value.
fn acceptable(status: u16) -> bool {
    (200..300).contains(&status)
}

/// The 503s of `ticks` in each window (a tick counts for the first window
/// it overlaps), and those in none.
pub fn unavailable_by_window(
    ticks: &[TickCounts],
    windows: &[(Duration, Duration)],
) -> (Vec<u64>, u64) {
    let mut inside = vec![0; windows.len()];
    let mut outside = 0;
    for (i, t) in ticks.iter().enumerate() {
        let from = TICK * i as u32;
        let to = from + TICK;
        match windows.iter().position(|&(a, b)| from <= b && to > a) {
            Some(w) => inside[w] += t.unavailable,
            None => outside += t.unavailable,
        }
    }
    (inside, outside)
}

/// Bytes of a value's data: 4 for a number, a string's bytes, the fields
/// and values of a map, the members of a set.
pub fn payload_bytes(value: &Value) -> u64 {
    let n = match value {
        Value::Int(_) | Value::Uint(_) | Value::Float(_) => 4,
        Value::Str(s) => s.len(),
        Value::Map(m) => m.iter().map(|(k, v)| k.len() + v.len()).sum(),
        Value::Set(s) => s.iter().map(String::len).sum(),
    };
    n as u64
}

/// Bytes of every live key and its value.
pub fn live_bytes(state: &PlainState) -> u64 {
    state
        .iter()
        .map(|((_, key), value)| key.as_str().len() as u64 + payload_bytes(value))
        .sum()
}

/// `baseline + factor * live + allowance`.
pub fn rss_bound(baseline: u64, live: u64, factor: f64, allowance: u64) -> u64 {
    baseline + (live as f64 * factor) as u64 + allowance
}

/// The mean RSS of the samples in the second third of `duration` and in the
/// final third (samples after the end count in it); `None` for a third
/// without samples.
pub fn third_means(samples: &[RssSample], duration: Duration) -> (Option<f64>, Option<f64>) {
    let d = duration.as_secs_f64();
    let mean = |keep: &dyn Fn(f64) -> bool| {
        let xs: Vec<f64> = samples
            .iter()
            .filter(|s| keep(s.at_s))
            .map(|s| s.rss_bytes as f64)
            .collect();
        (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
    };
    (
        mean(&|t| t >= d / 3.0 && t < 2.0 * d / 3.0),
        mean(&|t| t >= 2.0 * d / 3.0),
    )
}

/// What kvs-server answered for a listed key: the body of a 200, or the
/// status of anything else.
pub type Fetched = Result<Vec<u8>, u16>;

/// Compares kvs-server's keys and values with the state the log replays
/// to. Values must be byte for byte what the server renders from the log's.
pub fn compare(memory: &HashMap<(ValueType, String), Fetched>, log: &PlainState) -> Comparison {
    let mut c = Comparison {
        memory_keys: memory.len() as u64,
        log_keys: log.len() as u64,
        ..Comparison::default()
    };
    let mut found: Vec<(ValueType, &str, String)> = Vec::new();
    for ((ty, key), value) in log {
        let rendered = value.render();
        match memory.get(&(*ty, key.as_str().to_owned())) {
            None => {
                c.missing += 1;
                found.push((
                    *ty,
                    key.as_str(),
                    format!("missing from memory; the log has {}", quote(&rendered)),
                ));
            }
            Some(Ok(body)) if *body == rendered => c.equal += 1,
            Some(Ok(body)) => {
                c.differing += 1;
                found.push((
                    *ty,
                    key.as_str(),
                    format!("memory has {}, the log {}", quote(body), quote(&rendered)),
                ));
            }
            Some(Err(status)) => {
                c.differing += 1;
                found.push((
                    *ty,
                    key.as_str(),
                    format!("listed, but GET answered {status}"),
                ));
            }
        }
    }
    for ((ty, key), fetched) in memory {
        let in_log = kvs_core::Key::parse(key)
            .map(|k| log.contains_key(&(*ty, k)))
            .unwrap_or(false);
        if !in_log {
            c.extra += 1;
            let what = match fetched {
                Ok(body) => quote(body),
                Err(status) => format!("(GET answered {status})"),
            };
            found.push((*ty, key, format!("in memory only: {what}")));
        }
    }
    found.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    c.examples = found
        .into_iter()
        .take(EXAMPLES)
        .map(|(ty, key, what)| format!("{}/{key}: {what}", ty.name()))
        .collect();
    c
}

/// A value's text for a message, cut short.
fn quote(bytes: &[u8]) -> String {
    const MAX: usize = 48;
    let text = String::from_utf8_lossy(bytes);
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}…", &text[..cut]),
        None => format!("{text:?}"),
    }
}

/// How many connections each part gets: `total` split by weight, at least
/// one each.
pub fn split_connections(total: usize, weights: &[usize]) -> Vec<usize> {
    let sum: usize = weights.iter().sum();
    weights
        .iter()
        .map(|w| (total * w / sum.max(1)).max(1))
        .collect()
}

/// txn-server and kvs-server, their files in one temporary directory.
struct Stack {
    txn: Option<ServerProcess>,
    kvs: ServerProcess,
    txn_bin: PathBuf,
    txn_args: Vec<OsString>,
    log_path: PathBuf,
    /// Compactions of txn-server processes already gone.
    compactions: usize,
}

impl Stack {
    async fn start(cfg: &SoakConfig, dir: &Path) -> Result<Stack, SoakError> {
        let certs = dir.join("certs");
        kvs_certs::write(&certs, &kvs_certs::Options::default())?;
        let cert = |name: &str| OsString::from(certs.join(name));
        let txn_dir = dir.join("txn");
        // A port of its own, kept across restarts so that kvs-server finds
        // txn-server again where it was.
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let txn_args: Vec<OsString> = vec![
            "--listen".into(),
            format!("127.0.0.1:{port}").into(),
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
        let kvs_args: Vec<OsString> = vec![
            "--txn-addr".into(),
            format!("https://127.0.0.1:{port}").into(),
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
    async fn outage(
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

/// Sets the flag when dropped: load tasks stop when the soak ends early on
/// an error.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Runs the parts' configurations at once; returns each with its result.
async fn run_parts(cfgs: Vec<BenchConfig>) -> Result<Vec<(BenchConfig, RunResult)>, SoakError> {
    let tasks: Vec<_> = cfgs
        .into_iter()
        .map(|c| {
            tokio::spawn(async move {
                let r = client::run(&c).await;
                (c, r)
            })
        })
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        let (c, r) = t
            .await
            .map_err(|e| SoakError::Bench(BenchError::Other(e.to_string())))?;
        out.push((c, r?));
    }
    Ok(out)
}

/// Every part's counts of one phase together.
fn merged(
    results: &[(BenchConfig, RunResult)],
    phase: fn(&RunResult) -> Option<&client::PhaseResult>,
) -> PhaseReport {
    let mut stats = Stats::new();
    let mut elapsed = Duration::ZERO;
    for (_, r) in results {
        if let Some(p) = phase(r) {
            stats.merge(&p.stats);
            elapsed = elapsed.max(p.elapsed);
        }
    }
    PhaseReport::of(&client::PhaseResult { stats, elapsed })
}

fn mib(bytes: f64) -> f64 {
    bytes / (1024.0 * 1024.0)
}

/// Samples kvs-server's RSS every second and prints the progress line, until
/// `done` fires.
async fn sample(
    pid: u32,
    load_start: Instant,
    duration: Duration,
    timeline: Arc<Timeline>,
    txn_state: Arc<Mutex<String>>,
    progress: bool,
    mut done: tokio::sync::oneshot::Receiver<()>,
) -> Vec<RssSample> {
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = (Instant::now(), 0u64);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut done => return samples,
        }
        let now = Instant::now();
        let rss = ProcMemory::of(pid).ok().map(|m| m.rss_bytes);
        if let Some(rss_bytes) = rss {
            samples.push(RssSample {
                at_s: (now - load_start).as_secs_f64(),
                rss_bytes,
            });
        }
        if progress {
            let total = timeline
                .counts()
                .iter()
                .fold(TickCounts::default(), |a, t| TickCounts {
                    requests: a.requests + t.requests,
                    unavailable: a.unavailable + t.unavailable,
                    unavailable_reads: a.unavailable_reads + t.unavailable_reads,
                    failed: a.failed + t.failed,
                });
            let rate = (total.requests - last.1) as f64 / (now - last.0).as_secs_f64();
            last = (now, total.requests);
            eprintln!(
                "kvs-bench soak: {:>6.0}s of {:.0}s {:>8.0} req/s {:>10} requests  503: {:<7} failed: {:<4} RSS {:>7.1} MiB  {}",
                (now - load_start).as_secs_f64(),
                duration.as_secs_f64(),
                rate,
                total.requests,
                total.unavailable,
                total.failed,
                rss.map_or(0.0, |b| mib(b as f64)),
                txn_state.lock().unwrap_or_else(|e| e.into_inner()),
            );
        }
    }
}

/// Lists every key of every type and reads its value, over `tasks`
/// connections.
async fn dump(
    target: &Target,
    tasks: usize,
    timeout: Duration,
) -> Result<HashMap<(ValueType, String), Fetched>, SoakError> {
    let failed = |what: String| SoakError::Dump(what);
    let mut conn = Conn::connect(target).await.map_err(failed)?;
    let mut keys = Vec::new();
    for ty in ValueType::ALL {
        let mut after: Option<String> = None;
        loop {
            let mut path = format!("{BASE}/keys/{}?limit={LIST_LIMIT}", ty.name());
            if let Some(a) = &after {
                let _ = write!(path, "&after={a}");
            }
            let (status, body) = conn
                .get(target, path.clone(), Some(timeout))
                .await
                .map_err(|e| failed(format!("GET {path}: {}", e.name())))?;
            if status != 200 {
                return Err(failed(format!("GET {path} answered {status}")));
            }
            let page: Vec<String> =
                serde_json::from_slice(&body).map_err(|e| failed(format!("GET {path}: {e}")))?;
            let full = page.len() == LIST_LIMIT;
            after = page.last().cloned();
            keys.extend(page.into_iter().map(|k| (ty, k)));
            if !full {
                break;
            }
        }
    }
    let keys = Arc::new(keys);
    let tasks = tasks.max(1);
    let readers: Vec<_> = (0..tasks)
        .map(|i| {
            let (keys, target) = (keys.clone(), target.clone());
            tokio::spawn(async move {
                let mut conn = Conn::connect(&target).await?;
                let mut out = Vec::new();
                for (ty, key) in keys.iter().skip(i).step_by(tasks) {
                    let path = format!("{BASE}/{}/{key}", ty.name());
                    let (status, body) = conn
                        .get(&target, path.clone(), Some(timeout))
                        .await
                        .map_err(|e| format!("GET {path}: {}", e.name()))?;
                    let fetched = if status == 200 { Ok(body) } else { Err(status) };
                    out.push(((*ty, key.clone()), fetched));
                }
                Ok::<_, String>(out)
            })
        })
        .collect();
    let mut memory = HashMap::with_capacity(keys.len());
    for r in readers {
        let part = r
            .await
            .map_err(|e| failed(e.to_string()))?
            .map_err(failed)?;
        memory.extend(part);
    }
    Ok(memory)
}

/// Replays txn-server's log file into a plain state, as a fresh
/// kvs-server would.
async fn read_log(path: &Path) -> Result<(PlainState, ReplayStats), SoakError> {
    let opts = FileOptions {
        truncate_corrupt: false,
        compact_min_bytes: u64::MAX,
    };
    let mut log = FileLog::open(path, opts)?;
    let state = Arc::new(Mutex::new(PlainState::new()));
    let sink = state.clone();
    let stats = log
        .replay(move |t: Txn| t.apply_to(&mut *sink.lock().unwrap_or_else(|e| e.into_inner())))
        .await?;
    drop(log);
    let state = std::mem::take(&mut *state.lock().unwrap_or_else(|e| e.into_inner()));
    Ok((state, stats))
}

/// Sleeps until `deadline`, waking early when `stop` is set; false then.
async fn sleep_unless_stopped(deadline: Instant, stop: &AtomicBool) -> bool {
    while Instant::now() < deadline {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let step = (deadline - Instant::now()).min(Duration::from_millis(100));
        tokio::time::sleep(step).await;
    }
    !stop.load(Ordering::Relaxed)
}

impl SoakConfig {
    fn validate(&self) -> Result<(), SoakError> {
        let bad = |s: &str| Err(SoakError::Config(s.to_owned()));
        if self.duration < Duration::from_secs(3) {
            return bad("--duration must be at least 3 seconds");
        }
        if self.connections < PARTS.len() {
            return bad(&format!(
                "--connections must be at least {} (one per part of the load)",
                PARTS.len()
            ));
        }
        if self.keys == 0 {
            return bad("--keys must be at least 1");
        }
        let slot = self.duration / (self.restarts + 1);
        if self.restarts > 0 && self.downtime >= slot {
            return bad("--downtime must be shorter than the time between restarts");
        }
        Ok(())
    }

    /// The bench configuration of each part.
    fn parts(&self, target: &Target) -> Result<Vec<BenchConfig>, SoakError> {
        let weights: Vec<usize> = PARTS.iter().map(|p| p.weight).collect();
        let conns = split_connections(self.connections, &weights);
        PARTS
            .iter()
            .zip(conns)
            .enumerate()
            .map(|(i, (p, connections))| {
                let mut spec = WorkloadSpec::new(p.kind, (self.keys / p.keys_divisor).max(1));
                spec.value_type = p.value_type;
                spec.value_size = self.value_size;
                spec.read_ratio = self.read_ratio;
                spec.fields = self.fields;
                spec.key_prefix = p.prefix.to_owned();
                let mut b = BenchConfig::new(target.clone(), spec.build()?);
                b.connections = connections;
                b.seed = self.seed.wrapping_add(i as u64);
                b.timeout = Some(self.timeout);
                b.stop = self.stop.clone();
                Ok(b)
            })
            .collect()
    }
}

/// Runs the soak. An `Err` is a soak that could not be run; a soak that ran
/// and found a problem is an `Ok` report with `passed: false`.
pub async fn run(cfg: &SoakConfig) -> Result<SoakReport, SoakError> {
    cfg.validate()?;
    let _stop = StopOnDrop(cfg.stop.clone());
    let dir = tempfile::Builder::new()
        .prefix("kvs-bench-soak")
        .tempdir()?;
    let mut stack = Stack::start(cfg, dir.path()).await?;
    let baseline = stack.kvs.memory()?;
    let target = Target::addr(stack.kvs.addr);
    let parts = cfg.parts(&target)?;

    // Every key once, so that reads hit and the live data hardly grows
    // during the load: growth of memory then means something.
    let puts: u64 = parts.iter().map(|p| p.workload.spec.keys).sum();
    if cfg.progress {
        eprintln!("kvs-bench soak: prefilling {puts} keys");
    }
    let prefilled = run_parts(
        parts
            .iter()
            .map(|p| BenchConfig {
                prefill: true,
                limit: Limit::Requests(0),
                ..p.clone()
            })
            .collect(),
    )
    .await?;
    let prefill = merged(&prefilled, |r| r.prefill.as_ref());
    if cfg.progress {
        eprintln!(
            "kvs-bench soak: prefilled {puts} keys in {:.1} s; {:.0} s of load follow",
            prefill.seconds,
            cfg.duration.as_secs_f64()
        );
    }

    let prefilled_rss = stack.kvs.memory()?.rss_bytes;
    let load_start = Instant::now();
    let timeline = Arc::new(Timeline::new(load_start, cfg.duration + PROCESS_TIMEOUT));
    let load = tokio::spawn(run_parts(
        parts
            .iter()
            .map(|p| BenchConfig {
                limit: Limit::Duration(cfg.duration),
                observer: Some(timeline.clone()),
                ..p.clone()
            })
            .collect(),
    ));
    let txn_state = Arc::new(Mutex::new("txn-server up".to_owned()));
    let (done, done_rx) = tokio::sync::oneshot::channel();
    let sampler = tokio::spawn(sample(
        stack.kvs.pid,
        load_start,
        cfg.duration,
        timeline.clone(),
        txn_state.clone(),
        cfg.progress,
        done_rx,
    ));
    let set_state = |s: String| *txn_state.lock().unwrap_or_else(|e| e.into_inner()) = s;

    let mut outages = Vec::new();
    for n in 1..=cfg.restarts {
        let at = load_start + cfg.duration * n / (cfg.restarts + 1);
        if !sleep_unless_stopped(at, &cfg.stop).await {
            break;
        }
        set_state(format!("txn-server away ({n} of {})", cfg.restarts));
        let outage = stack.outage(cfg.fault, cfg.downtime, load_start).await?;
        set_state("txn-server up".to_owned());
        outages.push(outage);
    }
    let results = load
        .await
        .map_err(|e| SoakError::Bench(BenchError::Other(e.to_string())))??;
    let _ = done.send(());
    let samples = sampler.await.unwrap_or_default();
    let stopped_early = cfg.stop.load(Ordering::Relaxed);

    // The last answers are in; a write refused at the very end may still
    // be recovering: wait until kvs-server takes writes again.
    stack.kvs.check_running()?;
    let settled = stack.kvs.wait_ready(PROCESS_TIMEOUT).await;
    let end = stack.kvs.memory()?;
    let memory = dump(&target, cfg.connections.min(16), cfg.timeout).await?;
    stack.compactions += stack.txn.as_ref().map_or(0, |t| t.count_events(COMPACTED));
    let stopped = match stack.txn.take() {
        Some(txn) => Some(txn.terminate(PROCESS_TIMEOUT).await),
        None => None,
    };
    let (log_state, replayed) = read_log(&stack.log_path).await?;
    let comparison = compare(&memory, &log_state);
    let log = LogReport {
        path: stack.log_path.display().to_string(),
        records: replayed.records,
        bytes: replayed.bytes,
        torn_bytes: replayed.torn_bytes,
        compactions: stack.compactions,
        failed_appends: stack.kvs.count_events(APPEND_FAILED),
        reapplied_batches: stack.kvs.count_events(REAPPLIED),
    };
    stack.kvs.stop().await;

    // Outage windows: from the kill to a little after kvs-server's recovery
    // (to the end, when it never recovered).
    let ticks = timeline.counts();
    let windows: Vec<(Duration, Duration)> = outages
        .iter()
        .map(|o| {
            let from = Duration::from_secs_f64(o.at_s);
            let to = o.recovered_ms.map_or(Duration::MAX, |ms| {
                from + Duration::from_secs_f64(ms / 1e3) + RECOVERY_GRACE
            });
            (from, to)
        })
        .collect();
    let (inside, outside) = unavailable_by_window(&ticks, &windows);
    for (o, n) in outages.iter_mut().zip(&inside) {
        o.unavailable = *n;
    }
    let unavailable = Unavailable {
        total: ticks.iter().map(|t| t.unavailable).sum(),
        during_outages: inside.iter().sum(),
        outside_outages: outside,
        to_reads: ticks.iter().map(|t| t.unavailable_reads).sum(),
    };

    let load_report = merged(&results, |r| Some(&r.measured));
    let live = live_bytes(&log_state);
    let bound = rss_bound(baseline.rss_bytes, live, cfg.rss_factor, cfg.rss_allowance);
    let (second, last) = third_means(&samples, cfg.duration);
    let memory_report = MemoryReport {
        baseline_rss_bytes: baseline.rss_bytes,
        prefilled_rss_bytes: prefilled_rss,
        peak_rss_bytes: samples
            .iter()
            .map(|s| s.rss_bytes)
            .chain([end.peak_rss_bytes, end.rss_bytes])
            .max()
            .unwrap_or(0),
        end_rss_bytes: end.rss_bytes,
        live_keys: log_state.len() as u64,
        live_bytes: live,
        factor: cfg.rss_factor,
        allowance_bytes: cfg.rss_allowance,
        bound_bytes: bound,
        second_third_mean_bytes: second,
        final_third_mean_bytes: last,
        final_third_limit_bytes: second.map(|m| m * (1.0 + cfg.rss_growth)),
        headroom_per_request_bytes: bound.saturating_sub(end.rss_bytes) as f64
            / (prefill.requests + load_report.requests).max(1) as f64,
        samples,
    };

    let part_reports: Vec<Report> = results.iter().map(|(c, r)| Report::new(c, r)).collect();
    let checks = checks(
        cfg,
        &prefill,
        &load_report,
        &outages,
        &unavailable,
        &memory_report,
        &log,
        &comparison,
        settled.err().map(|e| e.to_string()),
        stopped,
        stopped_early,
    );
    let failures: Vec<String> = checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect();
    Ok(SoakReport {
        passed: failures.is_empty(),
        failures,
        checks,
        kvs_server: cfg.kvs_bin.display().to_string(),
        txn_server: cfg.txn_bin.display().to_string(),
        duration_s: cfg.duration.as_secs_f64(),
        keys: cfg.keys,
        connections: part_reports.iter().map(|r| r.connections).sum(),
        fault: cfg.fault,
        downtime_s: cfg.downtime.as_secs_f64(),
        timeout_s: cfg.timeout.as_secs_f64(),
        stopped_early,
        prefill,
        load: load_report,
        parts: part_reports,
        outages,
        unavailable,
        memory: memory_report,
        log,
        comparison,
    })
}

fn check(name: &'static str, passed: bool, detail: String) -> Check {
    Check {
        name,
        passed,
        detail,
    }
}

/// Answers with a status outside 2xx and 503, described.
fn unexpected_statuses(p: &PhaseReport) -> Vec<String> {
    p.statuses
        .iter()
        .filter(|(s, _)| {
            let s: u16 = s.parse().unwrap_or(0);
            !(acceptable(s) || s == 503)
        })
        .map(|(s, n)| format!("{n} answered {s}"))
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn checks(
    cfg: &SoakConfig,
    prefill: &PhaseReport,
    load: &PhaseReport,
    outages: &[Outage],
    unavailable: &Unavailable,
    memory: &MemoryReport,
    log: &LogReport,
    comparison: &Comparison,
    unsettled: Option<String>,
    txn_stop: Option<Result<std::process::ExitStatus, ServerError>>,
    stopped_early: bool,
) -> Vec<Check> {
    let mut out = Vec::new();
    out.push(check(
        "full run",
        !stopped_early,
        if stopped_early {
            "stopped early (Ctrl-C)".into()
        } else {
            format!("{:.0} s of load", cfg.duration.as_secs_f64())
        },
    ));
    out.push(check(
        "prefill",
        prefill.transport_errors == 0 && prefill.non_2xx() == 0,
        format!(
            "{} PUTs, {} not 2xx, {} transport errors",
            prefill.requests,
            prefill.non_2xx(),
            prefill.transport_errors
        ),
    ));
    let bad = unexpected_statuses(load);
    out.push(check(
        "statuses",
        bad.is_empty() && load.requests > 0,
        if bad.is_empty() {
            format!("{} requests, every answer 2xx or 503", load.requests)
        } else {
            bad.join(", ")
        },
    ));
    let slowest = load.latency_us.max_us as f64 / 1e6;
    out.push(check(
        "no stuck requests",
        load.transport_errors == 0,
        format!(
            "{} transport errors{} (a timeout is a request unanswered after {:.1} s); slowest answer {slowest:.3} s",
            load.transport_errors,
            if load.errors.is_empty() {
                String::new()
            } else {
                format!(" {:?}", load.errors)
            },
            cfg.timeout.as_secs_f64()
        ),
    ));
    let recovered = outages.iter().filter(|o| o.recovered_ms.is_some()).count();
    let seen = outages.iter().filter(|o| o.unavailable > 0).count();
    out.push(check(
        "restarts",
        outages.len() == cfg.restarts as usize
            && recovered == outages.len()
            && seen == outages.len(),
        format!(
            "{} of {} outages done, kvs-server recovered from {recovered} by itself, writes got 503 during {seen}",
            outages.len(),
            cfg.restarts
        ),
    ));
    out.push(check(
        "503 only during outages",
        unavailable.outside_outages == 0 && unavailable.to_reads == 0,
        format!(
            "{} during the outages, {} outside them, {} to reads",
            unavailable.during_outages, unavailable.outside_outages, unavailable.to_reads
        ),
    ));
    out.push(check(
        "settled",
        unsettled.is_none(),
        unsettled.unwrap_or_else(|| "kvs-server took writes after the load".into()),
    ));
    let (stop_ok, stop_detail) = match txn_stop {
        Some(Ok(status)) => (status.success(), format!("txn-server exited with {status}")),
        Some(Err(e)) => (false, e.to_string()),
        None => (false, "txn-server was not running".into()),
    };
    out.push(check("txn-server stops on SIGTERM", stop_ok, stop_detail));
    out.push(check(
        "log intact",
        log.torn_bytes == 0,
        format!(
            "{} records, {} torn bytes after the graceful stop",
            log.records, log.torn_bytes
        ),
    ));
    out.push(check(
        "memory equals the log",
        comparison.divergences() == 0 && comparison.log_keys > 0,
        format!(
            "{} keys in memory, {} in the log: {} equal, {} missing, {} extra, {} differing{}",
            comparison.memory_keys,
            comparison.log_keys,
            comparison.equal,
            comparison.missing,
            comparison.extra,
            comparison.differing,
            if comparison.examples.is_empty() {
                String::new()
            } else {
                format!("; {}", comparison.examples.join("; "))
            }
        ),
    ));
    out.push(check(
        "RSS within the live data",
        memory.end_rss_bytes <= memory.bound_bytes,
        format!(
            "end {:.1} MiB <= {:.1} MiB (baseline {:.1} + {} x {:.1} MiB of live keys and values + {:.0} MiB)",
            mib(memory.end_rss_bytes as f64),
            mib(memory.bound_bytes as f64),
            mib(memory.baseline_rss_bytes as f64),
            memory.factor,
            mib(memory.live_bytes as f64),
            mib(memory.allowance_bytes as f64)
        ),
    ));
    let steady = match (
        memory.second_third_mean_bytes,
        memory.final_third_mean_bytes,
        memory.final_third_limit_bytes,
    ) {
        (Some(second), Some(last), Some(limit)) => (
            last <= limit,
            format!(
                "mean of the final third {:.1} MiB <= {:.1} MiB (second third {:.1} MiB + {:.0}%)",
                mib(last),
                mib(limit),
                mib(second),
                cfg.rss_growth * 100.0
            ),
        ),
        _ => (false, "too few RSS samples to compare the thirds".into()),
    };
    out.push(check("RSS steady", steady.0, steady.1));
    out
}

impl SoakReport {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report serialises")
    }

    /// The human-readable report.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let ms = |us: u64| us as f64 / 1000.0;
        let _ = writeln!(
            out,
            "soak         {:.0} s of load{}, {} connections; txn-server {} {} times, {:.1} s each",
            self.duration_s,
            if self.stopped_early {
                " (stopped early)"
            } else {
                ""
            },
            self.connections,
            self.fault.name(),
            self.outages.len(),
            self.downtime_s
        );
        let _ = writeln!(out, "kvs-server   {} (durability sync)", self.kvs_server);
        let _ = writeln!(
            out,
            "txn-server   {} (file backend, mutual TLS)",
            self.txn_server
        );
        let p = &self.prefill;
        let _ = writeln!(
            out,
            "prefill      {} PUTs in {:.1} s ({:.0}/s), {} not 2xx, {} transport errors",
            p.requests,
            p.seconds,
            p.throughput_rps,
            p.non_2xx(),
            p.transport_errors
        );
        let _ = writeln!(out);
        let names: Vec<String> = self.parts.iter().map(|p| p.workload.describe()).collect();
        let w = names.iter().map(String::len).max().unwrap_or(0);
        let _ = writeln!(
            out,
            "{:<w$} {:>5} {:>10} {:>8} {:>7} {:>8} {:>8}",
            "load", "conns", "requests", "req/s", "503", "p99 ms", "max ms"
        );
        let mut row = |name: &str, conns: usize, r: &PhaseReport| {
            let l: &LatencySummary = &r.latency_us;
            let _ = writeln!(
                out,
                "{name:<w$} {conns:>5} {:>10} {:>8.0} {:>7} {:>8.2} {:>8.1}",
                r.requests,
                r.throughput_rps,
                r.statuses.get("503").copied().unwrap_or(0),
                ms(l.p99_us),
                ms(l.max_us)
            );
        };
        for (part, name) in self.parts.iter().zip(&names) {
            row(name, part.connections, &part.result);
        }
        row("all", self.connections, &self.load);
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "outage  at         noticed   back     recovered   503s  torn bytes cut at restart"
        );
        let opt_ms = |v: Option<f64>| v.map_or("never".to_owned(), |v| format!("+{v:.0} ms"));
        for (i, o) in self.outages.iter().enumerate() {
            let _ = writeln!(
                out,
                "{:<7} {:>8.1}s  {:<9} {:<8} {:<11} {:>5}  {}",
                i + 1,
                o.at_s,
                opt_ms(o.noticed_ms),
                format!("+{:.0} ms", o.back_ms),
                opt_ms(o.recovered_ms),
                o.unavailable,
                o.torn_bytes.map_or("-".to_owned(), |b| b.to_string())
            );
        }
        let u = &self.unavailable;
        let _ = writeln!(
            out,
            "503s    {} in all: {} during the outages, {} outside them, {} to reads",
            u.total, u.during_outages, u.outside_outages, u.to_reads
        );
        let _ = writeln!(out);
        let m = &self.memory;
        let b = |x: u64| mib(x as f64);
        let _ = writeln!(
            out,
            "RSS          baseline {:.1} MiB, after the prefill {:.1} MiB, peak {:.1} MiB, end {:.1} MiB ({} samples)",
            b(m.baseline_rss_bytes),
            b(m.prefilled_rss_bytes),
            b(m.peak_rss_bytes),
            b(m.end_rss_bytes),
            m.samples.len()
        );
        let _ = writeln!(
            out,
            "live data    {} keys, {:.1} MiB of keys and values",
            m.live_keys,
            b(m.live_bytes)
        );
        let _ = writeln!(
            out,
            "bound        baseline + {} x live data + {:.0} MiB = {:.1} MiB; the end RSS is {:.0}% of it",
            m.factor,
            b(m.allowance_bytes),
            b(m.bound_bytes),
            100.0 * m.end_rss_bytes as f64 / m.bound_bytes.max(1) as f64
        );
        let _ = writeln!(
            out,
            "             (a leak of more than {:.0} bytes per request would have exceeded it)",
            m.headroom_per_request_bytes
        );
        if let (Some(second), Some(last)) = (m.second_third_mean_bytes, m.final_third_mean_bytes) {
            let _ = writeln!(
                out,
                "steady       mean of the second third {:.1} MiB, of the final third {:.1} MiB ({:+.1}%)",
                mib(second),
                mib(last),
                100.0 * (last - second) / second
            );
        }
        let l = &self.log;
        let _ = writeln!(
            out,
            "log          {} records, {:.1} MiB, {} torn bytes; {} compactions; kvs-server: {} failed appends, {} found durable and applied again",
            l.records,
            b(l.bytes),
            l.torn_bytes,
            l.compactions,
            l.failed_appends,
            l.reapplied_batches
        );
        let c = &self.comparison;
        let _ = writeln!(
            out,
            "comparison   {} keys in memory, {} in the log: {} equal, {} missing, {} extra, {} differing",
            c.memory_keys, c.log_keys, c.equal, c.missing, c.extra, c.differing
        );
        for e in &c.examples {
            let _ = writeln!(out, "               {e}");
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "checks");
        for c in &self.checks {
            let _ = writeln!(
                out,
                "  {:<5} {:<28} {}",
                if c.passed { "ok" } else { "FAIL" },
                c.name,
                c.detail
            );
        }
        let _ = writeln!(out);
        let failed = self.checks.iter().filter(|c| !c.passed).count();
        if self.passed {
            let _ = writeln!(out, "soak PASSED ({} checks)", self.checks.len());
        } else {
            let _ = writeln!(
                out,
                "soak FAILED ({failed} of {} checks)",
                self.checks.len()
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use kvs_core::Key;

    use super::*;
    use crate::report::WorkloadReport;

    fn key(s: &str) -> Key {
        Key::parse(s).unwrap()
    }

    #[test]
    fn comparison_finds_missing_extra_and_differing_keys() {
        let mut log = PlainState::new();
        log.insert((ValueType::Int, key("a")), Value::Int(-7));
        log.insert((ValueType::Str, key("a")), Value::Str("x".into()));
        log.insert((ValueType::Float, key("f")), Value::Float(0.1));
        let map: BTreeMap<String, String> =
            [("b".into(), "2".into()), ("a".into(), "1".into())].into();
        log.insert((ValueType::Map, key("m")), Value::Map(map));
        log.insert((ValueType::Set, key("gone")), Value::Set(BTreeSet::new()));
        log.insert((ValueType::Uint, key("u")), Value::Uint(5));

        let mut memory: HashMap<(ValueType, String), Fetched> = HashMap::new();
        memory.insert((ValueType::Int, "a".into()), Ok(b"-7".to_vec()));
        memory.insert((ValueType::Str, "a".into()), Ok(b"y".to_vec()));
        memory.insert((ValueType::Float, "f".into()), Ok(b"0.1".to_vec()));
        memory.insert(
            (ValueType::Map, "m".into()),
            Ok(br#"{"a":"1","b":"2"}"#.to_vec()),
        );
        memory.insert((ValueType::Uint, "u".into()), Err(404));
        memory.insert((ValueType::Str, "new".into()), Ok(b"z".to_vec()));

        let c = compare(&memory, &log);
        assert_eq!((c.memory_keys, c.log_keys, c.equal), (6, 6, 3), "{c:?}");
        assert_eq!((c.missing, c.extra, c.differing), (1, 1, 2), "{c:?}");
        assert_eq!(c.divergences(), 4);
        assert_eq!(
            c.examples,
            [
                "uint/u: listed, but GET answered 404",
                "str/a: memory has \"y\", the log \"x\"",
                "str/new: in memory only: \"z\"",
                "set/gone: missing from memory; the log has \"[]\"",
            ]
        );

        let same: HashMap<_, Fetched> = log
            .iter()
            .map(|((ty, k), v)| ((*ty, k.as_str().to_owned()), Ok(v.render())))
            .collect();
        let c = compare(&same, &log);
        assert_eq!((c.equal, c.divergences()), (6, 0));
        assert!(c.examples.is_empty());
    }

    #[test]
    fn examples_are_few_and_values_cut_short() {
        let mut log = PlainState::new();
        for i in 0..50 {
            log.insert(
                (ValueType::Str, key(&format!("k{i:02}"))),
                Value::Str("v".repeat(100)),
            );
        }
        let c = compare(&HashMap::new(), &log);
        assert_eq!(c.missing, 50);
        assert_eq!(c.examples.len(), EXAMPLES);
        assert!(
            c.examples[0].starts_with("str/k00: missing"),
            "{}",
            c.examples[0]
        );
        assert!(c.examples[0].ends_with("…"), "{}", c.examples[0]);
    }

    #[test]
    fn live_bytes_count_keys_and_payloads() {
        let mut s = PlainState::new();
        s.insert((ValueType::Int, key("ab")), Value::Int(1));
        s.insert((ValueType::Str, key("abc")), Value::Str("hello".into()));
        let map: BTreeMap<String, String> = [("f".into(), "xyz".into())].into();
        s.insert((ValueType::Map, key("m")), Value::Map(map));
        let set: BTreeSet<String> = ["m0".into(), "m1".into()].into();
        s.insert((ValueType::Set, key("t")), Value::Set(set));
        assert_eq!(live_bytes(&s), (2 + 4) + (3 + 5) + (1 + 4) + (1 + 4));
    }

    #[test]
    fn rss_bound_and_thirds() {
        assert_eq!(rss_bound(100, 10, 8.0, 1000), 1180);
        let samples: Vec<RssSample> = (0..9)
            .map(|i| RssSample {
                at_s: f64::from(i) + 0.5,
                rss_bytes: 100 * (i as u64 + 1),
            })
            .collect();
        // Thirds of 9 s: [3, 6) holds 400, 500, 600; [6, ..) 700, 800, 900.
        let (second, last) = third_means(&samples, Duration::from_secs(9));
        assert_eq!(second, Some(500.0));
        assert_eq!(last, Some(800.0));
        assert_eq!(
            third_means(&samples[..2], Duration::from_secs(9)),
            (None, None)
        );
    }

    #[test]
    fn unavailable_answers_are_placed_in_their_outage() {
        let mut ticks = vec![TickCounts::default(); 50];
        ticks[5].unavailable = 1; // 0.5 s: before any outage
        ticks[10].unavailable = 2; // 1.0 s: the first
        ticks[19].unavailable = 3; // 1.9 s: the first still
        ticks[30].unavailable = 4; // 3.0 s: the second
        ticks[49].unavailable = 5; // 4.9 s: after both
        let windows = [
            (Duration::from_millis(1050), Duration::from_millis(1900)),
            (Duration::from_secs(3), Duration::from_secs(4)),
        ];
        assert_eq!(unavailable_by_window(&ticks, &windows), (vec![5, 4], 6));
        assert_eq!(unavailable_by_window(&ticks, &[]), (vec![], 15));
    }

    #[test]
    fn timeline_counts_by_tick_and_kind() {
        let start = Instant::now();
        let t = Timeline::new(start, Duration::from_secs(1));
        t.observe(start, OpClass::Write, Ok(200));
        t.observe(start + TICK, OpClass::Write, Ok(503));
        t.observe(start + TICK, OpClass::Read, Ok(503));
        t.observe(start + TICK * 2, OpClass::Read, Ok(204));
        t.observe(start + TICK * 2, OpClass::Read, Ok(404));
        t.observe(start + TICK * 2, OpClass::Read, Err(ErrorKind::Timeout));
        // Past the span: the last tick.
        t.observe(start + Duration::from_secs(5), OpClass::Write, Ok(200));
        let c = t.counts();
        assert_eq!(c.len(), 11);
        assert_eq!(c[0].requests, 1);
        assert_eq!(
            c[1],
            TickCounts {
                requests: 2,
                unavailable: 2,
                unavailable_reads: 1,
                failed: 0
            }
        );
        assert_eq!((c[2].requests, c[2].failed), (3, 2));
        assert_eq!(c[10].requests, 1);
    }

    #[test]
    fn connections_are_split_by_weight() {
        assert_eq!(
            split_connections(48, &[4, 2, 1, 1, 2, 2, 1]),
            [14, 7, 3, 3, 7, 7, 3]
        );
        assert_eq!(
            split_connections(7, &[4, 2, 1, 1, 2, 2, 1]),
            [2, 1, 1, 1, 1, 1, 1]
        );
    }

    #[test]
    fn every_value_type_is_written() {
        let written: BTreeSet<&str> = PARTS
            .iter()
            .map(|p| {
                WorkloadReport::of(&WorkloadSpec {
                    value_type: p.value_type,
                    ..WorkloadSpec::new(p.kind, 1)
                })
                .value_type
            })
            .collect();
        assert_eq!(written.len(), ValueType::ALL.len(), "{written:?}");
    }

    #[test]
    fn bad_settings_are_refused() {
        let cfg = SoakConfig {
            duration: Duration::from_secs(1),
            ..SoakConfig::default()
        };
        assert!(cfg.validate().is_err());
        let cfg = SoakConfig {
            connections: 3,
            ..SoakConfig::default()
        };
        assert!(cfg.validate().is_err());
        let cfg = SoakConfig {
            duration: Duration::from_secs(6),
            downtime: Duration::from_secs(2),
            ..SoakConfig::default()
        };
        assert!(cfg.validate().is_err(), "2 s outages every 2 s");
        assert!(SoakConfig::default().validate().is_ok());
    }
}
