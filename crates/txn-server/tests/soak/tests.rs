//! The soak in short, as the test suite runs it: 15 s of load with
//! txn-server killed twice, and two more. The full run is ignored here and
//! started by scripts/soak.sh; docs/soak.md describes both.

use std::time::Duration;

use super::config::{Fault, SoakConfig};
use super::report::SoakReport;

fn config(duration: Duration, keys: u64, restarts: u32) -> SoakConfig {
    SoakConfig {
        duration,
        keys,
        connections: 14,
        restarts,
        downtime: Duration::from_millis(1500),
        // Small, so that txn-server compacts its log (and may be killed in
        // the middle of it) even in a short run.
        txn_compact_min_bytes: 64 << 10,
        ..SoakConfig::default()
    }
}

fn failed(report: &SoakReport) -> String {
    format!("{}\n{}", report.failures.join("\n"), report.table())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_soak_with_two_txn_server_kills_passes() {
    let report = super::run(&config(Duration::from_secs(15), 2_000, 2))
        .await
        .expect("the soak runs");
    assert!(report.passed, "{}", failed(&report));
    assert!(report.checks.iter().all(|c| c.passed));

    // Each kill was noticed, refused writes, and kvs-server came back by
    // itself; no 503 outside them.
    assert_eq!(report.outages.len(), 2, "{}", failed(&report));
    for o in &report.outages {
        assert!(o.recovered_ms.is_some(), "{o:?}");
        assert!(o.unavailable > 0, "{o:?}");
    }
    let u = &report.unavailable;
    assert!(u.during_outages > 0);
    assert_eq!((u.outside_outages, u.to_reads), (0, 0));
    assert_eq!(u.total, u.during_outages);

    // Every key is prefilled: 2000 str, 2000 int, 200 each of uint, float,
    // map and set, 20 counters; all of them compared, none divergent.
    let c = &report.comparison;
    assert_eq!(c.log_keys, 4_820, "{}", failed(&report));
    assert_eq!((c.memory_keys, c.equal, c.divergences()), (4_820, 4_820, 0));
    assert_eq!(report.prefill.requests, 4_820);
    assert!(report.load.requests > 1_000, "{}", report.load.requests);
    assert_eq!(report.load.transport_errors, 0);
    assert_eq!(report.log.torn_bytes, 0);
    assert!(report.log.compactions > 0, "{}", failed(&report));

    let m = &report.memory;
    assert!(m.samples.len() >= 10, "{m:?}");
    assert!(m.end_rss_bytes > 0 && m.end_rss_bytes <= m.bound_bytes);
    assert!(m.live_bytes > 4_820 * 4);

    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["passed"], true);
    assert_eq!(json["comparison"]["log_keys"], 4_820);
    assert_eq!(json["outages"].as_array().map(Vec::len), Some(2));
    assert_eq!(json["parts"].as_array().map(Vec::len), Some(7));
    assert!(report.table().contains("soak PASSED"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_that_fails_fails_the_soak() {
    let mut cfg = config(Duration::from_secs(3), 200, 0);
    // No growth at all allowed, not even from nothing: "RSS steady" fails.
    cfg.rss_growth = -1.0;
    let report = super::run(&cfg).await.expect("the soak runs");
    assert!(!report.passed);
    assert_eq!(report.failures.len(), 1, "{}", failed(&report));
    assert!(
        report.failures[0].starts_with("RSS steady:"),
        "{}",
        failed(&report)
    );
    assert_eq!(report.comparison.divergences(), 0);
    assert!(report.table().contains("soak FAILED (1 of 12 checks)"));
}

/// txn-server frozen (SIGSTOP) past kvs-server's --txn-timeout-ms, then
/// resumed: the appends kvs-server gave up on (answered 503, undone in
/// memory) must not land in the log afterwards (they once did; see
/// docs/soak.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_txn_server_leaves_memory_equal_to_the_log() {
    let mut cfg = config(Duration::from_secs(20), 2_000, 4);
    cfg.fault = Fault::Stop;
    cfg.downtime = Duration::from_secs(3);
    let report = super::run(&cfg).await.expect("the soak runs");
    assert_eq!(
        report.comparison.divergences(),
        0,
        "{}",
        report.comparison.examples.join("\n")
    );
    assert!(report.passed, "{}", failed(&report));
}

/// A setting of the full run from the environment, or its default.
fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a valid value")),
        Err(_) => default,
    }
}

/// The full soak of docs/soak.md (scripts/soak.sh runs it on release
/// binaries): KVS_SOAK_SECONDS of load (300) over KVS_SOAK_KEYS (100000),
/// txn-server taken away KVS_SOAK_RESTARTS times (2) by KVS_SOAK_FAULT
/// (kill or stop) for KVS_SOAK_DOWNTIME seconds (2). Prints the report
/// and writes its JSON to KVS_SOAK_JSON when set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "minutes long: scripts/soak.sh runs it"]
async fn the_full_soak_passes() {
    let fault = match env_or("KVS_SOAK_FAULT", "kill".to_owned()).as_str() {
        "kill" => Fault::Kill,
        "stop" => Fault::Stop,
        other => panic!("KVS_SOAK_FAULT={other:?}: kill or stop"),
    };
    let defaults = SoakConfig::default();
    let cfg = SoakConfig {
        duration: Duration::from_secs_f64(env_or("KVS_SOAK_SECONDS", 300.0)),
        keys: env_or("KVS_SOAK_KEYS", defaults.keys),
        restarts: env_or("KVS_SOAK_RESTARTS", defaults.restarts),
        downtime: Duration::from_secs_f64(env_or("KVS_SOAK_DOWNTIME", 2.0)),
        fault,
        progress: true,
        ..defaults
    };
    let report = super::run(&cfg).await.expect("the soak runs");
    println!("{}", report.table());
    if let Ok(path) = std::env::var("KVS_SOAK_JSON") {
        std::fs::write(&path, report.to_json()).unwrap_or_else(|e| panic!("{path}: {e}"));
    }
    assert!(report.passed, "{}", failed(&report));
}
