//! The soak's report: what it found, as a table and as JSON.

use std::fmt::Write as _;

use serde::Serialize;

use super::checks::Check;
use super::compare::Comparison;
use super::config::Fault;
use super::memory::{MemoryReport, mib};
use super::outage::{Outage, Unavailable};
use kvs_bench::report::{PhaseReport, Report};
use kvs_bench::stats::LatencySummary;

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
