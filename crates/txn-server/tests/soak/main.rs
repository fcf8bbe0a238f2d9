//! The soak: a bounded mixed load (kvs-bench's load generator) on
//! kvs-server keeping its log in a real txn-server (file backend, mutual
//! TLS), txn-server killed and restarted (or frozen) in the middle, then a
//! full comparison of kvs-server's memory with the log and checks of its
//! resident memory. See docs/soak.md.
//!
//! - `config`: the settings, the fault, and the parts of the load.
//! - `stack`: kvs-testkit's `stack::Stack`, as the e2e suite starts it, and
//!   the outages of txn-server.
//! - `load`: the parts run together and their counts merged.
//! - `outage`: every answer on a timeline, the 503s placed against the
//!   outages.
//! - `memory`: kvs-server's RSS sampled during the load, and its bounds.
//! - `compare`: kvs-server's keys and values (the paged dump of the test
//!   harness) against the log replayed.
//! - `checks`: what a soak must show to pass.
//! - `report`: the report, as a table and as JSON.
//! - `tests`: the short soaks of the test suite, and the long one.
//!
//! A test binary of its own, so that its load does not share the machine
//! with the end-to-end tests, whose stack it uses.

mod checks;
mod compare;
mod config;
mod load;
mod memory;
mod outage;
mod report;
mod stack;
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kvs_bench::client::{BenchConfig, BenchError, Limit, Target};
use kvs_bench::report::Report;
use kvs_bench::workload::WorkloadError;
use kvs_log::LogError;
use parking_lot::Mutex;

use checks::checks;
use compare::{compare, memory_of, read_log};
use config::SoakConfig;
use load::{merged, run_parts};
use memory::{MemoryReport, ProcMemory, live_bytes, rss_bound, sample, third_means};
use outage::{Timeline, Unavailable, unavailable_by_window};
use report::{LogReport, SoakReport};
use stack::SoakStack;

/// After kvs-server says it is ready again, writes refused a little later
/// were decided before it recovered and still count as the outage's.
const RECOVERY_GRACE: Duration = Duration::from_secs(1);
/// How long a server may take to start, txn-server to come back, kvs-server
/// to recover and txn-server to stop on SIGTERM.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(60);

/// kvs-server's log events the report counts.
const APPEND_FAILED: &str = "log append failed; undoing the batch";
const REAPPLIED: &str = "the failed batch turned out durable; applying it again";
/// txn-server's.
const COMPACTED: &str = "compacted the log";
const OPENED: &str = "opened the file log";

#[derive(Debug, thiserror::Error)]
pub enum SoakError {
    #[error("{0}")]
    Config(String),
    #[error("reading kvs-server's memory: {0}")]
    Proc(#[from] std::io::Error),
    #[error("{0}")]
    Workload(#[from] WorkloadError),
    #[error("{0}")]
    Bench(#[from] BenchError),
    #[error("reading kvs-server's keys and values: {0}")]
    Dump(String),
    #[error("reading txn-server's log: {0}")]
    Log(#[from] LogError),
}

/// Sets the flag when dropped: load tasks stop when the soak ends early on
/// an error.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
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

/// Runs the soak. An `Err` is a soak that could not be run; a soak that ran
/// and found a problem is an `Ok` report with `passed: false`.
pub async fn run(cfg: &SoakConfig) -> Result<SoakReport, SoakError> {
    cfg.validate()?;
    let _stop = StopOnDrop(cfg.stop.clone());
    let mut stack = SoakStack::start(cfg).await;
    let kvs_pid = stack.kvs().pid();
    let baseline = ProcMemory::of(kvs_pid)?;
    let addr = stack.kvs().addr.parse().expect("kvs-server's address");
    let target = Target::addr(addr);
    let parts = cfg.parts(&target)?;

    // Every key once, so that reads hit and the live data hardly grows
    // during the load: growth of memory then means something.
    let puts: u64 = parts.iter().map(|p| p.workload.spec.keys).sum();
    if cfg.progress {
        eprintln!("soak: prefilling {puts} keys");
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
            "soak: prefilled {puts} keys in {:.1} s; {:.0} s of load follow",
            prefill.seconds,
            cfg.duration.as_secs_f64()
        );
    }

    let prefilled_rss = ProcMemory::of(kvs_pid)?.rss_bytes;
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
        kvs_pid,
        load_start,
        cfg.duration,
        timeline.clone(),
        txn_state.clone(),
        cfg.progress,
        done_rx,
    ));
    let set_state = |s: String| *txn_state.lock() = s;

    let mut outages = Vec::new();
    for n in 1..=cfg.restarts {
        let at = load_start + cfg.duration * n / (cfg.restarts + 1);
        if !sleep_unless_stopped(at, &cfg.stop).await {
            break;
        }
        set_state(format!("txn-server away ({n} of {})", cfg.restarts));
        let outage = stack.outage(cfg.fault, cfg.downtime, load_start).await;
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
    let settled = stack.wait_readyz(true, PROCESS_TIMEOUT).await;
    let end = ProcMemory::of(kvs_pid)?;
    // One request per key, one after the other: a millisecond each is
    // generous even for a loaded debug build.
    let dump_limit = PROCESS_TIMEOUT + Duration::from_millis(puts);
    let memory = tokio::time::timeout(dump_limit, stack.stack.api().dump())
        .await
        .map_err(|_| SoakError::Dump(format!("not done within {dump_limit:?}")))?;
    let memory = memory_of(memory);
    let stopped = stack.terminate_txn(PROCESS_TIMEOUT).await;
    let (log_state, replayed) = read_log(&stack.log_path).await?;
    let comparison = compare(&memory, &log_state);
    let log = LogReport {
        path: stack.log_path.display().to_string(),
        records: replayed.records,
        bytes: replayed.bytes,
        torn_bytes: replayed.torn_bytes,
        compactions: stack.compactions,
        failed_appends: stack.kvs().events(APPEND_FAILED).len(),
        reapplied_batches: stack.kvs().events(REAPPLIED).len(),
    };
    drop(stack);

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
        settled
            .is_none()
            .then(|| format!("kvs-server was not ready within {PROCESS_TIMEOUT:?}")),
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
        kvs_server: kvs_testkit::binary("kvs-server").display().to_string(),
        txn_server: kvs_testkit::binary("txn-server").display().to_string(),
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
