//! The checks a soak must pass, each with what it found.

use serde::Serialize;

use super::compare::Comparison;
use super::config::SoakConfig;
use super::memory::{MemoryReport, mib};
use super::outage::{Outage, Unavailable, acceptable};
use super::report::LogReport;
use kvs_bench::report::PhaseReport;

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub passed: bool,
    pub detail: String,
}

fn check(name: &'static str, passed: bool, detail: String) -> Check {
    Check {
        name,
        passed,
        detail,
    }
}

/// Answers with a status outside 2xx, 503 and 504, described.
fn unexpected_statuses(p: &PhaseReport) -> Vec<String> {
    p.statuses
        .iter()
        .filter(|(s, _)| {
            let s: u16 = s.parse().unwrap_or(0);
            !(acceptable(s) || s == 503 || s == 504)
        })
        .map(|(s, n)| format!("{n} answered {s}"))
        .collect()
}

#[allow(clippy::too_many_arguments)]
pub(super) fn checks(
    cfg: &SoakConfig,
    prefill: &PhaseReport,
    load: &PhaseReport,
    outages: &[Outage],
    unavailable: &Unavailable,
    memory: &MemoryReport,
    log: &LogReport,
    comparison: &Comparison,
    unsettled: Option<String>,
    txn_stop: Result<std::process::ExitStatus, String>,
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
            format!("{} requests, every answer 2xx, 503 or 504", load.requests)
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
        Ok(status) => (status.success(), format!("txn-server exited with {status}")),
        Err(e) => (false, e),
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
