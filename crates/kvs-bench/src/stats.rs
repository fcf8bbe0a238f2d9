//! What each connection counts, and how the counts are merged and
//! summarised: latency in HDR histograms (microseconds, 3 significant
//! digits), responses by status, transport errors by kind.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::workload::OpClass;

/// Latencies above this (60 s) are recorded as this.
pub const HIGHEST_US: u64 = 60_000_000;

/// An empty latency histogram: 1 µs to 60 s, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST_US, 3).expect("valid histogram bounds")
}

/// Why a request got no HTTP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorKind {
    /// The TCP connection (or the HTTP handshake) could not be made.
    Connect,
    /// Sending the request or reading the response head failed.
    Request,
    /// Reading the response body failed.
    Body,
    /// No complete answer within `--timeout`.
    Timeout,
}

impl ErrorKind {
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Request => "request",
            ErrorKind::Body => "body",
            ErrorKind::Timeout => "timeout",
        }
    }
}

/// The counts of one connection (or, merged, of a whole run).
#[derive(Debug, Clone)]
pub struct Stats {
    pub reads: Histogram<u64>,
    pub writes: Histogram<u64>,
    /// Responses by status code.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that got no response, by kind.
    pub errors: BTreeMap<ErrorKind, u64>,
}

impl Default for Stats {
    fn default() -> Stats {
        Stats::new()
    }
}

impl Stats {
    pub fn new() -> Stats {
        Stats {
            reads: new_histogram(),
            writes: new_histogram(),
            statuses: BTreeMap::new(),
            errors: BTreeMap::new(),
        }
    }

    /// A response with `status` after `latency`.
    pub fn record(&mut self, class: OpClass, latency: Duration, status: u16) {
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let hist = match class {
            OpClass::Read => &mut self.reads,
            OpClass::Write => &mut self.writes,
        };
        hist.saturating_record(us);
        *self.statuses.entry(status).or_insert(0) += 1;
    }

    /// A request that got no response.
    pub fn record_error(&mut self, kind: ErrorKind) {
        *self.errors.entry(kind).or_insert(0) += 1;
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &Stats) {
        self.reads
            .add(&other.reads)
            .expect("histograms of the same bounds merge");
        self.writes
            .add(&other.writes)
            .expect("histograms of the same bounds merge");
        for (status, n) in &other.statuses {
            *self.statuses.entry(*status).or_insert(0) += n;
        }
        for (kind, n) in &other.errors {
            *self.errors.entry(*kind).or_insert(0) += n;
        }
    }

    /// Responses received, whatever their status.
    pub fn responses(&self) -> u64 {
        self.statuses.values().sum()
    }

    /// Requests that got no response.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Reads and writes together.
    pub fn all(&self) -> Histogram<u64> {
        let mut h = self.reads.clone();
        h.add(&self.writes)
            .expect("histograms of the same bounds merge");
        h
    }
}

/// The latency figures of a report, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub min_us: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl LatencySummary {
    /// The figures of `h`; all zero when it is empty.
    pub fn of(h: &Histogram<u64>) -> LatencySummary {
        LatencySummary {
            count: h.len(),
            min_us: h.min(),
            mean_us: h.mean(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: u64, expected: u64) -> bool {
        // Three significant digits: within 0.1% (plus rounding of tiny values).
        let tol = (expected as f64 * 0.001).max(1.0);
        (actual as f64 - expected as f64).abs() <= tol
    }

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut s = Stats::new();
        for us in 1..=10_000u64 {
            s.record(OpClass::Read, Duration::from_micros(us), 200);
        }
        let l = LatencySummary::of(&s.all());
        assert_eq!(l.count, 10_000);
        assert_eq!(l.min_us, 1);
        assert!(close(l.p50_us, 5_000), "{l:?}");
        assert!(close(l.p90_us, 9_000), "{l:?}");
        assert!(close(l.p99_us, 9_900), "{l:?}");
        assert!(close(l.p999_us, 9_990), "{l:?}");
        assert!(close(l.max_us, 10_000), "{l:?}");
        assert!((l.mean_us - 5_000.5).abs() < 10.0, "{l:?}");
    }

    #[test]
    fn merge_adds_histograms_statuses_and_errors() {
        let mut a = Stats::new();
        let mut b = Stats::new();
        for us in 1..=1_000u64 {
            a.record(OpClass::Read, Duration::from_micros(us), 200);
        }
        for us in 1_001..=2_000u64 {
            b.record(OpClass::Write, Duration::from_micros(us), 404);
        }
        b.record(OpClass::Write, Duration::from_micros(50_000), 503);
        a.record_error(ErrorKind::Timeout);
        b.record_error(ErrorKind::Timeout);
        b.record_error(ErrorKind::Connect);

        let mut total = Stats::new();
        total.merge(&a);
        total.merge(&b);
        assert_eq!(total.responses(), 2_001);
        assert_eq!(total.statuses[&200], 1_000);
        assert_eq!(total.statuses[&404], 1_000);
        assert_eq!(total.statuses[&503], 1);
        assert_eq!(total.error_count(), 3);
        assert_eq!(total.errors[&ErrorKind::Timeout], 2);
        assert_eq!(total.reads.len(), 1_000);
        assert_eq!(total.writes.len(), 1_001);

        let all = LatencySummary::of(&total.all());
        assert_eq!(all.count, 2_001);
        assert_eq!(all.min_us, 1);
        assert!(close(all.p50_us, 1_000), "{all:?}");
        assert!(close(all.max_us, 50_000), "{all:?}");
        let reads = LatencySummary::of(&total.reads);
        assert!(close(reads.max_us, 1_000), "{reads:?}");
    }

    #[test]
    fn percentiles_are_ordered() {
        let mut s = Stats::new();
        use rand::{RngExt, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(8);
        for _ in 0..100_000 {
            // A long-tailed mix of latencies.
            let us = 50
                + rng.random_range(0..100)
                + if rng.random_range(0..100) == 0 {
                    rng.random_range(0..100_000)
                } else {
                    0
                };
            s.record(OpClass::Write, Duration::from_micros(us), 200);
        }
        let l = LatencySummary::of(&s.all());
        let p = [l.min_us, l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.max_us];
        assert!(p.is_sorted(), "{l:?}");
        assert!(l.mean_us >= l.min_us as f64 && l.mean_us <= l.max_us as f64);
    }

    #[test]
    fn empty_and_out_of_range_latencies() {
        let l = LatencySummary::of(&new_histogram());
        assert_eq!(
            (l.count, l.min_us, l.p50_us, l.p999_us, l.max_us, l.mean_us),
            (0, 0, 0, 0, 0, 0.0)
        );

        let mut s = Stats::new();
        s.record(OpClass::Read, Duration::ZERO, 200);
        s.record(OpClass::Read, Duration::from_secs(3600), 200);
        let l = LatencySummary::of(&s.all());
        assert_eq!(l.count, 2);
        assert_eq!(l.min_us, 1, "sub-microsecond counts as 1 µs");
        assert!(close(l.max_us, HIGHEST_US), "clamped to the top: {l:?}");
    }
}
