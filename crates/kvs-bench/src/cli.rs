//! The command line of a load run.

use std::time::Duration;

use clap::Parser;

use crate::client::{self, BenchConfig, Limit, Target};
use crate::report::Report;
use crate::workload::{KeyDist, WorkloadKind, WorkloadSpec};

#[derive(Debug, Clone, Parser)]
#[command(
    name = "kvs-bench",
    version,
    about = "The mixed and zipfian load of KVS, with latency percentiles of each operation",
    long_about = "The mixed and zipfian load of KVS, with latency percentiles of each operation.\n\n\
        Drives a running kvs-server's REST API over N HTTP/1.1 keep-alive connections, each \
        sending its requests back to back, and reports throughput, latency percentiles of \
        reads and writes (HDR histograms), responses by status and transport errors. A run \
        with --duration is preceded by a 1 s warm-up that is not counted.",
    after_help = "Examples:\n  \
        kvs-bench --dist zipf --read-ratio 0.9 --duration 30 --json\n  \
        kvs-bench --prefill --requests 0 --keys 1000000 --key-size 16   (fill the keys only)\n  \
        kvs-bench --workload map-field --requests 100000"
)]
pub struct Cli {
    /// The server's address (http only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,

    /// HTTP/1.1 keep-alive connections, each with one request in flight.
    #[arg(short, long, default_value_t = 50)]
    pub connections: usize,

    /// The operations to send.
    #[arg(short, long, value_enum, default_value = "mixed")]
    pub workload: WorkloadKind,

    /// Share of GETs in --workload mixed, 0.0 to 1.0.
    #[arg(long, default_value_t = 0.9)]
    pub read_ratio: f64,

    /// Size of the key space: keys k0 .. k{N-1}.
    #[arg(long, default_value_t = 100_000)]
    pub keys: u64,

    /// How keys are picked.
    #[arg(long, value_enum, default_value = "uniform")]
    pub dist: KeyDist,

    /// Zero-pad key numbers so that every key is exactly this many bytes.
    #[arg(long)]
    pub key_size: Option<usize>,

    /// Bytes of each string value.
    #[arg(long, default_value_t = 32)]
    pub value_size: usize,

    /// Seconds of measured load (after the warm-up); decimals allowed.
    #[arg(short, long, default_value = "10", value_parser = parse_secs)]
    pub duration: Duration,

    /// Send this many measured requests in all, without a warm-up, instead
    /// of running for --duration.
    #[arg(short = 'n', long, conflicts_with = "duration")]
    pub requests: Option<u64>,

    /// PUT every key of the key space once before the run (over the same
    /// connections), so that reads hit.
    #[arg(long)]
    pub prefill: bool,

    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Seconds, decimals allowed.
fn parse_secs(s: &str) -> Result<Duration, String> {
    s.trim()
        .parse::<f64>()
        .ok()
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .ok_or_else(|| format!("{s:?} is not a number of seconds"))
}

impl Cli {
    /// The workload these arguments describe.
    pub fn workload_spec(&self) -> WorkloadSpec {
        WorkloadSpec {
            read_ratio: self.read_ratio,
            dist: self.dist,
            key_size: self.key_size,
            value_size: self.value_size,
            ..WorkloadSpec::new(self.workload, self.keys)
        }
    }

    /// The run these arguments describe.
    pub async fn config(&self) -> Result<BenchConfig, String> {
        let workload = self.workload_spec().build().map_err(|e| e.to_string())?;
        let target = Target::resolve(&self.url)
            .await
            .map_err(|e| e.to_string())?;
        let mut cfg = BenchConfig::new(target, workload);
        cfg.connections = self.connections;
        (cfg.limit, cfg.warmup) = match self.requests {
            Some(n) => (Limit::Requests(n), Duration::ZERO),
            None => (Limit::Duration(self.duration), Duration::from_secs(1)),
        };
        cfg.prefill = self.prefill;
        Ok(cfg)
    }

    /// Runs the load; the report, as a table or as JSON.
    pub async fn run(&self) -> Result<String, String> {
        let cfg = self.config().await?;
        let result = client::run(&cfg).await.map_err(|e| e.to_string())?;
        let report = Report::new(&cfg, &result);
        Ok(if self.json {
            report.to_json() + "\n"
        } else {
            report.table()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults() {
        let a = Cli::parse_from(["kvs-bench"]);
        assert_eq!(a.url, "http://127.0.0.1:8080");
        assert_eq!(a.connections, 50);
        assert_eq!(a.duration, Duration::from_secs(10));
        assert_eq!(a.keys, 100_000);
        assert_eq!(a.workload, WorkloadKind::Mixed);
        assert_eq!(a.dist, KeyDist::Uniform);
        assert!(a.requests.is_none() && !a.prefill && !a.json);
    }

    #[test]
    fn flags_map_to_the_workload() {
        let cli = Cli::parse_from([
            "kvs-bench",
            "-w",
            "set-add",
            "--read-ratio",
            "0.5",
            "--dist",
            "zipf",
            "--keys",
            "1000",
            "--key-size",
            "8",
            "--value-size",
            "7",
            "-n",
            "1000",
        ]);
        let spec = cli.workload_spec();
        assert_eq!(spec.kind, WorkloadKind::SetAdd);
        assert_eq!(spec.read_ratio, 0.5);
        assert_eq!(spec.dist, KeyDist::Zipf);
        assert_eq!(
            (spec.keys, spec.key_size, spec.value_size),
            (1000, Some(8), 7)
        );
        assert_eq!(cli.requests, Some(1000));
    }

    #[tokio::test]
    async fn warm_up_only_before_a_timed_run() {
        let cfg = Cli::parse_from(["kvs-bench", "-d", "2.5"]).config().await;
        let cfg = cfg.unwrap();
        assert_eq!(cfg.limit, Limit::Duration(Duration::from_millis(2500)));
        assert_eq!(cfg.warmup, Duration::from_secs(1));
        let cfg = Cli::parse_from(["kvs-bench", "-n", "5"]).config().await;
        let cfg = cfg.unwrap();
        assert_eq!(
            (cfg.limit, cfg.warmup),
            (Limit::Requests(5), Duration::ZERO)
        );
    }

    #[test]
    fn requests_and_duration_conflict() {
        assert!(Cli::try_parse_from(["kvs-bench", "-n", "10", "-d", "5"]).is_err());
    }

    #[test]
    fn seconds_parse() {
        assert_eq!(parse_secs("2.5"), Ok(Duration::from_millis(2500)));
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("x").is_err());
    }
}
