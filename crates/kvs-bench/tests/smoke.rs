//! A short, bounded load through the library against a real kvs-server
//! running in this process. Counts are checked; timings are not.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use kvs_bench::cli::Cli;
use kvs_bench::client::{self, BenchConfig, Limit, Target};
use kvs_bench::report::{PhaseReport, Report};
use kvs_bench::stats::LatencySummary;
use kvs_bench::workload::{KeyDist, ValueKind, WorkloadKind, WorkloadSpec};

struct Server {
    addr: SocketAddr,
    _dir: tempfile::TempDir,
    /// Dropping it shuts the server down.
    _server: kvs_server::Running,
}

/// A ready server on an ephemeral port with its own data directory.
async fn server(args: &[&str]) -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = kvs_server::spawn_with(dir.path(), args)
        .await
        .expect("server failed to start");
    Server {
        addr: server.addr(),
        _dir: dir,
        _server: server,
    }
}

fn config(addr: SocketAddr, spec: WorkloadSpec, requests: u64) -> BenchConfig {
    let mut cfg = BenchConfig::new(Target::addr(addr), spec.build().unwrap());
    cfg.connections = 4;
    cfg.limit = Limit::Requests(requests);
    cfg.seed = 7;
    cfg
}

fn assert_ordered(l: &LatencySummary) {
    assert!(l.count > 0);
    assert!(l.min_us <= l.p50_us, "{l:?}");
    assert!(l.p50_us <= l.p90_us, "{l:?}");
    assert!(l.p90_us <= l.p99_us, "{l:?}");
    assert!(l.p99_us <= l.p999_us, "{l:?}");
    assert!(l.p999_us <= l.max_us, "{l:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefilled_gets_all_hit() {
    let srv = server(&["--memory-only"]).await;
    let mut spec = WorkloadSpec::new(WorkloadKind::Mixed, 50);
    spec.read_ratio = 1.0;
    spec.dist = KeyDist::Zipf;
    let mut cfg = config(srv.addr, spec, 200);
    cfg.prefill = true;
    let run = client::run(&cfg).await.unwrap();

    let prefill = run.prefill.as_ref().expect("prefill ran");
    assert_eq!(prefill.stats.responses(), 50, "one PUT per key");
    assert_eq!(prefill.stats.statuses.get(&200), Some(&50));
    assert_eq!(prefill.stats.error_count(), 0);

    let s = &run.measured.stats;
    assert_eq!(s.responses(), 200);
    assert_eq!(s.statuses.get(&200), Some(&200), "{:?}", s.statuses);
    assert_eq!(s.error_count(), 0);
    assert_eq!(s.reads.len(), 200);
    assert!(s.writes.is_empty());
    assert_eq!(run.warmup_requests, 0);

    let report = Report::new(&cfg, &run);
    assert_eq!(report.result.requests, 200);
    assert_eq!(report.result.transport_errors, 0);
    assert_ordered(&report.result.latency_us);
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["requests"], 200);
    assert_eq!(json["statuses"]["200"], 200);
    assert_eq!(json["prefill"]["requests"], 50);
    assert_eq!(json["workload"]["distribution"], "zipf");
    let table = report.table();
    assert!(table.contains("p99.9"), "{table}");
    assert!(table.contains("statuses     200: 200\n"), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gets_without_prefill_miss() {
    let srv = server(&["--memory-only"]).await;
    let mut spec = WorkloadSpec::new(WorkloadKind::Mixed, 1000);
    spec.read_ratio = 1.0;
    let cfg = config(srv.addr, spec, 100);
    let run = client::run(&cfg).await.unwrap();
    assert_eq!(run.measured.stats.statuses.get(&404), Some(&100));
    assert_eq!(run.measured.stats.error_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_workload_is_answered_200() {
    // The durable file log, as in production.
    let srv = server(&[]).await;
    for (kind, read_ratio) in [
        (WorkloadKind::Mixed, 0.0),
        (WorkloadKind::Mixed, 0.9),
        (WorkloadKind::Incr, 0.9),
        (WorkloadKind::MapField, 0.9),
        (WorkloadKind::SetAdd, 0.9),
    ] {
        for ty in [
            ValueKind::Str,
            ValueKind::Int,
            ValueKind::Uint,
            ValueKind::Float,
        ] {
            if ty != ValueKind::Str && kind != WorkloadKind::Mixed {
                continue;
            }
            let mut spec = WorkloadSpec::new(kind, 100);
            spec.value_type = ty;
            spec.read_ratio = read_ratio;
            spec.key_size = Some(16);
            spec.value_size = 64;
            let mut cfg = config(srv.addr, spec, 120);
            cfg.prefill = true;
            let run = client::run(&cfg).await.unwrap();
            let s = &run.measured.stats;
            assert_eq!(
                s.statuses.get(&200),
                Some(&120),
                "{kind:?} {ty:?}: {:?} {:?}",
                s.statuses,
                s.errors
            );
            assert_eq!(s.error_count(), 0);
            assert_ordered(&LatencySummary::of(&s.all()));
            if read_ratio == 0.0 {
                assert!(s.reads.is_empty() && !s.writes.is_empty());
            } else if kind == WorkloadKind::Mixed {
                // A read ratio of 0.9: both kinds show up.
                assert!(!s.reads.is_empty() && !s.writes.is_empty());
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duration_limit_after_a_warm_up() {
    let srv = server(&["--memory-only"]).await;
    let mut spec = WorkloadSpec::new(WorkloadKind::Mixed, 100);
    spec.read_ratio = 0.0;
    let mut cfg = config(srv.addr, spec, 0);
    cfg.limit = Limit::Duration(Duration::from_millis(300));
    cfg.warmup = Duration::from_millis(100);
    let run = client::run(&cfg).await.unwrap();
    let s = &run.measured.stats;
    // No timing is asserted: only that the run ends and counts its answers.
    assert!(s.responses() > 0);
    assert_eq!(s.error_count(), 0);
    assert_eq!(PhaseReport::of(&run.measured).non_2xx(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_not_there_is_an_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let cfg = config(addr, WorkloadSpec::new(WorkloadKind::Mixed, 10), 10);
    let err = client::run(&cfg).await.unwrap_err();
    assert!(err.to_string().contains("cannot connect"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_drives_a_run() {
    let srv = server(&["--memory-only"]).await;
    let url = format!("http://{}", srv.addr);
    let run = |args: &[&str]| {
        let cli = Cli::parse_from([&["kvs-bench", "--url", &url, "--json"], args].concat());
        async move {
            let out = cli.run().await.unwrap();
            serde_json::from_str::<serde_json::Value>(&out).unwrap()
        }
    };
    let report = run(&["-c", "3", "-n", "90", "--workload", "incr", "--keys", "10"]).await;
    assert_eq!(report["requests"], 90);
    assert_eq!(report["statuses"]["200"], 90);
    assert_eq!(report["warmup_requests"], 0);

    // The fill of the benchmark script: every key once, nothing measured.
    let args = ["--prefill", "-n", "0", "--keys", "30", "--key-size", "16"];
    let report = run(&args).await;
    assert_eq!(report["prefill"]["statuses"]["200"], 30);
    assert_eq!(report["requests"], 0);
    let args = [
        "--read-ratio",
        "1",
        "-n",
        "60",
        "--keys",
        "30",
        "--key-size",
        "16",
    ];
    let report = run(&args).await;
    assert_eq!(report["statuses"]["200"], 60, "every read hits: {report}");
}
