//! What `/metrics` serves, in the OpenMetrics text format, through
//! prometheus-client.
//!
//! Every label is bounded, so that no client can grow the series: a route
//! is its pattern (or `unmatched`), a method one of HTTP's own (or
//! `OTHER`), a status its number, a value type one of six.
//!
//! A request is counted without a lock or a hash: its route's series are
//! resolved once, when the router is built ([`RouteSeries`]), and each
//! route keeps the children of the request families it has used.

use std::sync::OnceLock;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use axum::http::Method;
use kvs_core::ValueType;
use kvs_log::ReplayStats;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The content type of [`Metrics::render`]'s text.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabels {
    r#type: &'static str,
}

/// Seconds, from 100 µs to about 13 s: a cached read to a slow commit.
fn seconds() -> Histogram {
    Histogram::new(exponential_buckets(1e-4, 2.0, 18))
}

pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    log_batches: Counter,
    log_records: Counter,
    log_append: Histogram,
    batch_records: Histogram,
    pub(crate) log_failures: Counter,
    pub(crate) audit_dropped: Counter,
    pub(crate) expired: Counter,
    replay_records: Counter,
    replay_skipped: Counter,
    replay_seconds: Gauge<f64, AtomicU64>,
    keys: Family<TypeLabels, Gauge>,
    ready: Gauge,
    pub(crate) watchers: Gauge,
    pub(crate) watch_events: Counter,
    pub(crate) watch_cut: Counter,
    pub(crate) followed: Counter,
    pub(crate) follow_lag: Gauge,
    pub(crate) lease_epoch: Gauge,
}

/// How many (method, status) pairs a route keeps at hand; pairs beyond
/// them are counted through their family's lookup.
const PAIRS: usize = 16;

/// One route's request series. A child is taken from its family when the
/// route first answers that way, so that `/metrics` lists only series
/// that were used, as the families alone would.
pub(crate) struct RouteSeries {
    route: &'static str,
    latency: OnceLock<Histogram>,
    /// Filled in order; two requests filling slots with the same pair at
    /// once share one child, which the family holds.
    counts: [OnceLock<((&'static str, u16), Counter)>; PAIRS],
}

impl RouteSeries {
    /// The series of route pattern `route` (or `unmatched`).
    pub(crate) fn new(route: &'static str) -> RouteSeries {
        RouteSeries {
            route,
            latency: OnceLock::new(),
            counts: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// The route's label.
    pub(crate) fn route(&self) -> &'static str {
        self.route
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut m = Metrics {
            registry: Registry::default(),
            requests: Family::default(),
            latency: Family::new_with_constructor(seconds),
            log_batches: Counter::default(),
            log_records: Counter::default(),
            log_append: seconds(),
            batch_records: Histogram::new(exponential_buckets(1.0, 2.0, 13)),
            log_failures: Counter::default(),
            audit_dropped: Counter::default(),
            expired: Counter::default(),
            replay_records: Counter::default(),
            replay_skipped: Counter::default(),
            replay_seconds: Gauge::default(),
            keys: Family::default(),
            ready: Gauge::default(),
            watchers: Gauge::default(),
            watch_events: Counter::default(),
            watch_cut: Counter::default(),
            followed: Counter::default(),
            follow_lag: Gauge::default(),
            lease_epoch: Gauge::default(),
        };
        let r = &mut m.registry;
        r.register(
            "kvs_http_requests",
            "HTTP requests answered, by method, route and status",
            m.requests.clone(),
        );
        r.register(
            "kvs_http_request_duration_seconds",
            "Time spent answering HTTP requests, by route",
            m.latency.clone(),
        );
        r.register("kvs_keys", "Keys stored, by value type", m.keys.clone());
        r.register(
            "kvs_ready",
            "1 once the log is replayed and reachable",
            m.ready.clone(),
        );
        r.register(
            "kvs_log_batches",
            "Batches appended to the transaction log",
            m.log_batches.clone(),
        );
        r.register(
            "kvs_log_records",
            "Transactions appended to the transaction log",
            m.log_records.clone(),
        );
        r.register(
            "kvs_log_append_seconds",
            "Time one batch took to append and make durable (write and fsync, or the round trip to txn-server)",
            m.log_append.clone(),
        );
        r.register(
            "kvs_log_batch_records",
            "Transactions in one appended batch",
            m.batch_records.clone(),
        );
        r.register(
            "kvs_log_failures",
            "Appends that failed; their writes were undone",
            m.log_failures.clone(),
        );
        r.register(
            "kvs_audit_dropped",
            "Read-audit records dropped because the log queue was full",
            m.audit_dropped.clone(),
        );
        r.register(
            "kvs_expired_keys",
            "Keys whose TTL ran out, expired by the server",
            m.expired.clone(),
        );
        r.register(
            "kvs_replay_records",
            "Transactions replayed at start-up",
            m.replay_records.clone(),
        );
        r.register(
            "kvs_replay_skipped",
            "Rows of the log that could not be replayed and were left out (txn-server's PostgreSQL backend, in its default, lenient mode)",
            m.replay_skipped.clone(),
        );
        r.register(
            "kvs_replay_seconds",
            "Time the start-up replay took",
            m.replay_seconds.clone(),
        );
        r.register(
            "kvs_watchers",
            "Watch streams open (GET /watch)",
            m.watchers.clone(),
        );
        r.register(
            "kvs_watch_events",
            "Events sent to watchers",
            m.watch_events.clone(),
        );
        r.register(
            "kvs_watch_disconnected",
            "Watchers disconnected because they fell behind the history (--watch-history)",
            m.watch_cut.clone(),
        );
        r.register(
            "kvs_followed_changes",
            "Changes a follower or standby applied from txn-server's change stream",
            m.followed.clone(),
        );
        r.register(
            "kvs_follow_lag_revisions",
            "How far a follower or standby is behind the log, in revisions, as of the last batch of the change stream (0 on the primary)",
            m.follow_lag.clone(),
        );
        r.register(
            "kvs_lease_epoch",
            "The epoch of the write lease this node holds: nonzero only on the primary of a standby pair",
            m.lease_epoch.clone(),
        );
        m
    }
}

/// The method as a label: HTTP's own methods by name, any other token as
/// `OTHER`, so that clients cannot grow the series with names of their own.
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

impl Metrics {
    /// Counts one answered request on `route`.
    pub(crate) fn request(
        &self,
        route: &RouteSeries,
        method: &Method,
        status: u16,
        took: Duration,
    ) {
        let pair = (method_label(method), status);
        let labels = || RequestLabels {
            method: pair.0,
            route: route.route,
            status,
        };
        let known = route.counts.iter().find_map(|slot| {
            let (held, counter) =
                slot.get_or_init(|| (pair, self.requests.get_or_create_owned(&labels())));
            (*held == pair).then_some(counter)
        });
        match known {
            Some(counter) => counter.inc(),
            None => self.requests.get_or_create(&labels()).inc(),
        };
        route
            .latency
            .get_or_init(|| {
                self.latency
                    .get_or_create_owned(&RouteLabels { route: route.route })
            })
            .observe(took.as_secs_f64());
    }

    pub(crate) fn log_appended(&self, records: usize, took: Duration) {
        self.log_batches.inc();
        self.log_records.inc_by(records as u64);
        self.log_append.observe(took.as_secs_f64());
        self.batch_records.observe(records as f64);
    }

    pub(crate) fn replayed(&self, stats: &ReplayStats, took: Duration) {
        self.replay_records.inc_by(stats.records);
        self.replay_skipped.inc_by(stats.skipped);
        self.replay_seconds.set(took.as_secs_f64());
    }

    /// The exposition text; `keys` holds the key count of each type, in
    /// [`ValueType::ALL`] order.
    pub(crate) fn render(&self, keys: [usize; ValueType::ALL.len()], ready: bool) -> String {
        for (ty, n) in ValueType::ALL.iter().zip(keys) {
            self.keys
                .get_or_create(&TypeLabels { r#type: ty.name() })
                .set(n as i64);
        }
        self.ready.set(i64::from(ready));
        let mut out = String::with_capacity(8192);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requests(text: &str) -> Vec<&str> {
        let mut lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("kvs_http_request"))
            .collect();
        lines.sort_unstable();
        lines
    }

    #[test]
    fn a_route_counts_each_method_and_status_in_its_own_series_and_lists_only_those_used() {
        let m = Metrics::default();
        let route = RouteSeries::new("/kvs/v1-0-0/{type}/{key}");
        let other = RouteSeries::new("unmatched");
        let none = requests(&m.render(Default::default(), true)).join("\n");
        assert_eq!(none, "", "no series before any request");
        let ms = Duration::from_millis(1);
        for _ in 0..3 {
            m.request(&route, &Method::GET, 200, ms);
        }
        m.request(&route, &Method::PUT, 200, ms);
        m.request(&route, &Method::GET, 404, ms);
        m.request(&other, &Method::from_bytes(b"BREW").unwrap(), 404, ms);
        let text = m.render(Default::default(), true);
        let lines = requests(&text);
        let count = |method: &str, route: &str, status: u16| {
            format!(
                r#"kvs_http_requests_total{{method="{method}",route="{route}",status="{status}"}}"#
            )
        };
        let expected = [
            format!("{} 3", count("GET", route.route(), 200)),
            format!("{} 1", count("PUT", route.route(), 200)),
            format!("{} 1", count("GET", route.route(), 404)),
            format!("{} 1", count("OTHER", "unmatched", 404)),
        ];
        for line in &expected {
            assert!(lines.contains(&line.as_str()), "{line} missing:\n{text}");
        }
        let total = lines
            .iter()
            .filter(|l| l.starts_with("kvs_http_requests_total"))
            .count();
        assert_eq!(total, expected.len(), "{text}");
        let latency =
            r#"kvs_http_request_duration_seconds_count{route="/kvs/v1-0-0/{type}/{key}"} 5"#;
        assert!(lines.contains(&latency), "{text}");
    }

    #[test]
    fn pairs_beyond_those_a_route_keeps_at_hand_are_counted_all_the_same() {
        let m = Metrics::default();
        let route = RouteSeries::new("/kvs/v1-0-0/txn");
        let statuses = 200..200 + 2 * PAIRS as u16;
        for round in 1..=2 {
            for status in statuses.clone() {
                m.request(&route, &Method::POST, status, Duration::ZERO);
            }
            let text = m.render(Default::default(), true);
            for status in statuses.clone() {
                let line = format!(
                    r#"kvs_http_requests_total{{method="POST",route="/kvs/v1-0-0/txn",status="{status}"}} {round}"#
                );
                assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
            }
        }
    }
}
