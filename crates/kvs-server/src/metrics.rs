//! Counters for `/metrics`, rendered in the Prometheus text format.
//!
//! Plain atomics and one small map: no metrics framework is needed for a
//! dozen series, and the hot path pays one atomic add per counter.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::Method;
use kvs_core::ValueType;
use kvs_log::ReplayStats;

#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Default)]
struct RouteStats {
    count: u64,
    nanos: u64,
}

/// Per route pattern: (method, status) to its totals.
type RouteTable = HashMap<String, HashMap<(&'static str, u16), RouteStats>>;

/// The method as a label: HTTP's own methods by name, any other token as
/// `OTHER`, so that clients cannot grow the table with names of their own.
fn method_label(method: &Method) -> &'static str {
    static KNOWN: [Method; 9] = [
        Method::GET,
        Method::PUT,
        Method::POST,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
        Method::PATCH,
        Method::TRACE,
        Method::CONNECT,
    ];
    KNOWN
        .iter()
        .find(|known| *known == method)
        .map_or("OTHER", Method::as_str)
}

#[derive(Default)]
pub struct Metrics {
    /// Route pattern, then (method, status), to count and total time; keyed
    /// by route first so that counting needs no allocation.
    http: Mutex<RouteTable>,
    pub log_batches: Counter,
    pub log_records: Counter,
    log_append_nanos: Counter,
    pub log_failures: Counter,
    pub audit_dropped: Counter,
    pub replay_records: Counter,
    replay_skipped: Counter,
    replay_nanos: Counter,
}

impl Metrics {
    pub fn request(&self, method: &Method, route: &str, status: u16, took: Duration) {
        let mut http = self.http.lock().unwrap_or_else(|e| e.into_inner());
        let by_route = match http.get_mut(route) {
            Some(m) => m,
            None => http.entry(route.to_owned()).or_default(),
        };
        let stats = by_route.entry((method_label(method), status)).or_default();
        stats.count += 1;
        stats.nanos += took.as_nanos() as u64;
    }

    pub fn log_appended(&self, records: usize, took: Duration) {
        self.log_batches.inc();
        self.log_records.add(records as u64);
        self.log_append_nanos.add(took.as_nanos() as u64);
    }

    pub fn replayed(&self, stats: &ReplayStats, took: Duration) {
        self.replay_records.add(stats.records);
        self.replay_skipped.add(stats.skipped);
        self.replay_nanos.add(took.as_nanos() as u64);
    }

    /// The exposition text; `keys` holds the key count of each type, in
    /// [`ValueType::ALL`] order.
    pub fn render(&self, keys: [usize; ValueType::ALL.len()], ready: bool) -> String {
        let mut out = String::with_capacity(4096);
        let secs = |c: &Counter| c.get() as f64 / 1e9;
        header(
            &mut out,
            "kvs_http_requests_total",
            "counter",
            "HTTP requests answered, by route and status.",
        );
        let http = self.http.lock().unwrap_or_else(|e| e.into_inner());
        let mut rows: Vec<_> = http
            .iter()
            .flat_map(|(route, m)| {
                m.iter()
                    .map(move |((method, status), s)| ((*method, route.as_str(), *status), s))
            })
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        for ((method, route, status), s) in &rows {
            let _ = writeln!(
                out,
                "kvs_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {}",
                s.count
            );
        }
        header(
            &mut out,
            "kvs_http_request_duration_seconds_sum",
            "counter",
            "Time spent answering HTTP requests, by route and status.",
        );
        for ((method, route, status), s) in &rows {
            let _ = writeln!(
                out,
                "kvs_http_request_duration_seconds_sum{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {}",
                s.nanos as f64 / 1e9
            );
        }
        drop(http);
        header(&mut out, "kvs_keys", "gauge", "Keys stored, by value type.");
        for (ty, n) in ValueType::ALL.iter().zip(keys) {
            let _ = writeln!(out, "kvs_keys{{type=\"{ty}\"}} {n}");
        }
        let simple: [(&str, &str, &str, f64); 9] = [
            (
                "kvs_ready",
                "gauge",
                "1 once the log is replayed and reachable.",
                f64::from(u8::from(ready)),
            ),
            (
                "kvs_log_batches_total",
                "counter",
                "Batches appended to the transaction log.",
                self.log_batches.get() as f64,
            ),
            (
                "kvs_log_records_total",
                "counter",
                "Transactions appended to the transaction log.",
                self.log_records.get() as f64,
            ),
            (
                "kvs_log_append_seconds_total",
                "counter",
                "Time spent appending batches (write and sync).",
                secs(&self.log_append_nanos),
            ),
            (
                "kvs_log_failures_total",
                "counter",
                "Appends that failed; their writes were undone.",
                self.log_failures.get() as f64,
            ),
            (
                "kvs_audit_dropped_total",
                "counter",
                "Read-audit records dropped because the log queue was full.",
                self.audit_dropped.get() as f64,
            ),
            (
                "kvs_replay_records_total",
                "counter",
                "Transactions replayed at start-up.",
                self.replay_records.get() as f64,
            ),
            (
                "kvs_replay_skipped_total",
                "counter",
                "Rows of the log that could not be replayed and were left out (txn-server's PostgreSQL backend, in its default, lenient mode).",
                self.replay_skipped.get() as f64,
            ),
            (
                "kvs_replay_seconds",
                "gauge",
                "Time the start-up replay took.",
                secs(&self.replay_nanos),
            ),
        ];
        for (name, kind, help, value) in simple {
            header(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {value}");
        }
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}
