//! A run's figures: as a table for people, as JSON for scripts.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::client::{BenchConfig, Limit, PhaseResult, RunResult};
use crate::stats::{LatencySummary, Stats};
use crate::workload::{KeyDist, WorkloadKind, WorkloadSpec, ZIPF_THETA};

/// What the workload was.
#[derive(Debug, Clone, Serialize)]
pub struct WorkloadReport {
    pub workload: WorkloadKind,
    #[serde(rename = "type")]
    pub value_type: &'static str,
    pub keys: u64,
    pub distribution: KeyDist,
    pub value_size: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_ratio: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<u64>,
}

impl WorkloadReport {
    pub fn of(spec: &WorkloadSpec) -> WorkloadReport {
        let value_type = match spec.kind {
            WorkloadKind::Mixed => spec.value_type.name(),
            WorkloadKind::Incr => "int",
            WorkloadKind::MapField => "map",
            WorkloadKind::SetAdd => "set",
        };
        WorkloadReport {
            workload: spec.kind,
            value_type,
            keys: spec.keys,
            distribution: spec.dist,
            value_size: spec.value_size,
            read_ratio: (spec.kind == WorkloadKind::Mixed).then_some(spec.read_ratio),
            fields: matches!(spec.kind, WorkloadKind::MapField | WorkloadKind::SetAdd)
                .then_some(spec.fields),
        }
    }

    /// One line: the workload, its type, key space, distribution and sizes.
    pub fn describe(&self) -> String {
        let dist = match self.distribution {
            KeyDist::Uniform => "uniform".to_owned(),
            KeyDist::Zipf => format!("zipfian (theta {ZIPF_THETA})"),
        };
        let mut s = format!(
            "{} ({}), {} keys, {dist}",
            self.workload.name(),
            self.value_type,
            self.keys
        );
        if let Some(r) = self.read_ratio {
            let _ = write!(s, ", {:.0}% reads", r * 100.0);
        }
        if let Some(f) = self.fields {
            let _ = write!(s, ", {f} fields/members per key");
        }
        if !matches!(self.workload, WorkloadKind::Incr | WorkloadKind::SetAdd) {
            let _ = write!(s, ", {}-byte values", self.value_size);
        }
        s
    }
}

/// The counts of a phase.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseReport {
    pub seconds: f64,
    /// Responses plus requests that got none.
    pub requests: u64,
    pub responses: u64,
    pub throughput_rps: f64,
    pub latency_us: LatencySummary,
    /// Reads and writes apart, when the run had both.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_latency_us: Option<LatencySummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_latency_us: Option<LatencySummary>,
    /// Responses by status code.
    pub statuses: BTreeMap<String, u64>,
    /// Requests that got no response, by kind; `transport_errors` in all.
    pub errors: BTreeMap<String, u64>,
    pub transport_errors: u64,
}

impl PhaseReport {
    pub fn of(phase: &PhaseResult) -> PhaseReport {
        let s: &Stats = &phase.stats;
        let seconds = phase.elapsed.as_secs_f64();
        let requests = s.responses() + s.error_count();
        let both = !s.reads.is_empty() && !s.writes.is_empty();
        PhaseReport {
            seconds,
            requests,
            responses: s.responses(),
            throughput_rps: if seconds > 0.0 {
                requests as f64 / seconds
            } else {
                0.0
            },
            latency_us: LatencySummary::of(&s.all()),
            read_latency_us: both.then(|| LatencySummary::of(&s.reads)),
            write_latency_us: both.then(|| LatencySummary::of(&s.writes)),
            statuses: s
                .statuses
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            errors: s
                .errors
                .iter()
                .map(|(k, v)| (k.name().to_owned(), *v))
                .collect(),
            transport_errors: s.error_count(),
        }
    }

    /// Responses with a status outside 2xx.
    pub fn non_2xx(&self) -> u64 {
        self.statuses
            .iter()
            .filter(|(s, _)| !s.starts_with('2'))
            .map(|(_, n)| n)
            .sum()
    }
}

/// The report of a load run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub target: String,
    pub connections: usize,
    pub seed: u64,
    pub workload: WorkloadReport,
    pub warmup_seconds: f64,
    pub warmup_requests: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests_limit: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_limit_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefill: Option<PhaseReport>,
    #[serde(flatten)]
    pub result: PhaseReport,
}

impl Report {
    pub fn new(cfg: &BenchConfig, run: &RunResult) -> Report {
        Report {
            target: format!("http://{}", cfg.target.addr),
            connections: cfg.connections,
            seed: cfg.seed,
            workload: WorkloadReport::of(&cfg.workload.spec),
            warmup_seconds: cfg.warmup.as_secs_f64(),
            warmup_requests: run.warmup_requests,
            requests_limit: match cfg.limit {
                Limit::Requests(n) => Some(n),
                Limit::Duration(_) => None,
            },
            duration_limit_seconds: match cfg.limit {
                Limit::Duration(d) => Some(d.as_secs_f64()),
                Limit::Requests(_) => None,
            },
            prefill: run.prefill.as_ref().map(PhaseReport::of),
            result: PhaseReport::of(&run.measured),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report serialises")
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let r = &self.result;
        let _ = writeln!(out, "workload     {}", self.workload.describe());
        let _ = writeln!(
            out,
            "target       {}, {} connections, seed {}",
            self.target, self.connections, self.seed
        );
        if let Some(p) = &self.prefill {
            let _ = writeln!(
                out,
                "prefill      {} PUTs in {:.2} s ({:.0}/s), {} not 2xx, {} transport errors",
                p.requests,
                p.seconds,
                p.throughput_rps,
                p.non_2xx(),
                p.transport_errors
            );
        }
        if self.warmup_seconds > 0.0 {
            let _ = writeln!(
                out,
                "warm-up      {:.1} s, {} requests not counted",
                self.warmup_seconds, self.warmup_requests
            );
        }
        let _ = writeln!(out, "measured     {:.2} s", r.seconds);
        let _ = writeln!(
            out,
            "requests     {} ({} responses, {} transport errors)",
            r.requests, r.responses, r.transport_errors
        );
        let _ = writeln!(out, "throughput   {:.0} req/s", r.throughput_rps);
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "latency (ms)      p50      p90      p99    p99.9      max     mean"
        );
        let mut row = |name: &str, l: &LatencySummary| {
            let ms = |us: u64| us as f64 / 1000.0;
            let _ = writeln!(
                out,
                "{name:<12} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
                ms(l.p50_us),
                ms(l.p90_us),
                ms(l.p99_us),
                ms(l.p999_us),
                ms(l.max_us),
                l.mean_us / 1000.0
            );
        };
        row("all", &r.latency_us);
        if let Some(l) = &r.read_latency_us {
            row("reads", l);
        }
        if let Some(l) = &r.write_latency_us {
            row("writes", l);
        }
        let counts = |m: &BTreeMap<String, u64>| {
            let each: Vec<String> = m.iter().map(|(k, n)| format!("{k}: {n}")).collect();
            each.join(", ")
        };
        let _ = writeln!(out);
        let _ = writeln!(out, "statuses     {}", counts(&r.statuses));
        if !r.errors.is_empty() {
            let _ = writeln!(out, "errors       {}", counts(&r.errors));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::stats::ErrorKind;
    use crate::workload::OpClass;

    fn phase() -> PhaseResult {
        let mut stats = Stats::new();
        for us in 1..=900u64 {
            stats.record(OpClass::Read, Duration::from_micros(us), 200);
        }
        for us in 1..=100u64 {
            stats.record(OpClass::Write, Duration::from_micros(us * 10), 404);
        }
        stats.record_error(ErrorKind::Timeout);
        PhaseResult {
            stats,
            elapsed: Duration::from_secs(2),
        }
    }

    #[test]
    fn phase_report_counts_and_rates() {
        let r = PhaseReport::of(&phase());
        assert_eq!(r.requests, 1001);
        assert_eq!(r.responses, 1000);
        assert_eq!(r.transport_errors, 1);
        assert!((r.throughput_rps - 500.5).abs() < 1e-9);
        assert_eq!(r.statuses["200"], 900);
        assert_eq!(r.statuses["404"], 100);
        assert_eq!(r.non_2xx(), 100);
        assert_eq!(r.errors["timeout"], 1);
        assert_eq!(r.latency_us.count, 1000);
        assert_eq!(r.read_latency_us.unwrap().count, 900);
        assert_eq!(r.write_latency_us.unwrap().count, 100);
        let l = r.latency_us;
        assert!(l.p50_us <= l.p90_us && l.p90_us <= l.p99_us);
        assert!(l.p99_us <= l.p999_us && l.p999_us <= l.max_us);
    }

    #[test]
    fn read_and_write_rows_only_for_mixed_runs() {
        let mut stats = Stats::new();
        stats.record(OpClass::Read, Duration::from_micros(5), 200);
        let r = PhaseReport::of(&PhaseResult {
            stats,
            elapsed: Duration::from_secs(1),
        });
        assert!(r.read_latency_us.is_none() && r.write_latency_us.is_none());
        let json = serde_json::to_value(&r).unwrap();
        assert!(json.get("read_latency_us").is_none());
        assert_eq!(json["latency_us"]["count"], 1);
    }

    #[test]
    fn empty_phase_has_zero_throughput() {
        let r = PhaseReport::of(&PhaseResult {
            stats: Stats::new(),
            elapsed: Duration::ZERO,
        });
        assert_eq!(r.requests, 0);
        assert_eq!(r.throughput_rps, 0.0);
    }
}
