//! The command line: the load run (no subcommand), `replay` and `memory`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::client::{self, BenchConfig, Limit, Target};
use crate::memory::{self, MemoryConfig};
use crate::replay::{self, ReplayConfig};
use crate::report::Report;
use crate::server::default_server_bin;
use crate::workload::{KeyDist, ValueKind, WorkloadKind, WorkloadSpec};

#[derive(Debug, Parser)]
#[command(
    name = "kvs-bench",
    version,
    about = "Load generator and measurements for KVS",
    long_about = "Load generator and measurements for KVS.\n\n\
        Without a subcommand it drives a running kvs-server's REST API over N HTTP/1.1 \
        keep-alive connections, each sending its requests back to back (or at --rate), and \
        reports throughput, latency percentiles (an HDR histogram), responses by status and \
        transport errors.\n\n\
        `kvs-bench replay` times a server start on a log of N transactions; `kvs-bench memory` \
        measures the resident memory of a server holding N keys.",
    after_help = "Examples:\n  \
        kvs-bench --workload get --prefill --keys 100000 --connections 50 --duration 10\n  \
        kvs-bench --workload mixed --read-ratio 0.9 --dist zipf --duration 30 --json\n  \
        kvs-bench --workload put --requests 100000 --rate 20000\n  \
        kvs-bench replay --records 1000000\n  \
        kvs-bench replay --reuse-log -- --txn-addr https://localhost:5051 --tls-ca ca.crt --tls-cert client.crt --tls-key client.key\n  \
        kvs-bench memory --keys 1000000 --key-size 16 --value-size 32",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub load: LoadArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a file log of N put transactions, then time kvs-server from
    /// process start to /readyz answering 200.
    #[command(
        long_about = "Write a file log of N put transactions (through the kvs-log crate), then \
            start kvs-server on it (--listen 127.0.0.1:0 --log-format json --data-dir DIR, then \
            any arguments after `--`) and time it from process start to /kvs/v1-0-0/readyz \
            answering 200. The server's own \"replayed the transaction log; ready\" figures \
            (took_ms, records) are reported beside it.\n\n\
            To time a replay from txn-server and PostgreSQL, fill them beforehand and run \
            `kvs-bench replay --reuse-log -- --txn-addr ... --tls-ca ... --tls-cert ... --tls-key ...`."
    )]
    Replay(ReplayArgs),
    /// Fill a memory-only kvs-server with N string keys and report its
    /// resident memory (VmRSS).
    Memory(MemoryArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DistArg {
    /// Every key equally likely.
    Uniform,
    /// Zipfian (YCSB-style): key 0 the most popular, skew --zipf-theta.
    Zipf,
}

#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// The server's address (http only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,

    /// The API's base path on the server.
    #[arg(long, default_value = "/kvs/v1-0-0")]
    pub base_path: String,

    /// HTTP/1.1 keep-alive connections, each with one request in flight.
    #[arg(short, long, default_value_t = 50)]
    pub connections: usize,

    /// The operations to send: get (GET /{type}/{key}), put (PUT
    /// /{type}/{key}), incr (POST /int/{key}/incr), mixed (GET or PUT, see
    /// --read-ratio), map-field (PUT /map/{key}/{field}), set-add (PUT
    /// /set/{key}/{member}).
    #[arg(short, long, value_enum, default_value = "get")]
    pub workload: WorkloadKind,

    /// Value type of get, put and mixed.
    #[arg(long = "type", value_enum, default_value = "str")]
    pub value_type: ValueKind,

    /// Size of the key space: keys k0 .. k{N-1}.
    #[arg(long, default_value_t = 100_000)]
    pub keys: u64,

    /// How keys are picked.
    #[arg(long, value_enum, default_value = "uniform")]
    pub dist: DistArg,

    /// Skew of --dist zipf, in [0, 1): 0 is uniform, 0.99 is YCSB's default.
    #[arg(long, default_value_t = 0.99)]
    pub zipf_theta: f64,

    /// Bytes of each string value (str values, map field values, the member
    /// of a set value); int, uint and float values are random numbers.
    #[arg(long, default_value_t = 32)]
    pub value_size: usize,

    /// Share of GETs in --workload mixed, 0.0 to 1.0.
    #[arg(long, default_value_t = 0.9)]
    pub read_ratio: f64,

    /// Distinct map fields (map-field) or set members (set-add) per key.
    #[arg(long, default_value_t = 16)]
    pub fields: u64,

    /// Keys are this prefix followed by the key number.
    #[arg(long, default_value = "k")]
    pub key_prefix: String,

    /// Zero-pad key numbers so that every key is exactly this many bytes.
    #[arg(long)]
    pub key_size: Option<usize>,

    /// Seconds of measured load (after the warm-up); decimals allowed.
    #[arg(short, long, default_value = "10", value_parser = parse_secs)]
    pub duration: Duration,

    /// Send this many measured requests in all instead of running for
    /// --duration.
    #[arg(short = 'n', long, conflicts_with = "duration")]
    pub requests: Option<u64>,

    /// Seconds of load before the measurement, not counted [default: 1 with
    /// --duration, 0 with --requests].
    #[arg(long, value_parser = parse_secs)]
    pub warmup: Option<Duration>,

    /// Open loop: aim at this many requests per second in all, spread over
    /// the connections; latency then counts from a request's scheduled
    /// time whenever the server made it late. Without it, each connection
    /// sends its next request as soon as the previous one is answered. The
    /// timer has millisecond resolution: keep connections/rate well above
    /// 1 ms (use more connections for high rates).
    #[arg(long)]
    pub rate: Option<f64>,

    /// Seed of the request streams; connection i draws from stream i of it,
    /// so a run with the same seed and settings sends the same requests.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// PUT every key of the key space once before the run (over the same
    /// connections), so that reads hit.
    #[arg(long)]
    pub prefill: bool,

    /// Seconds a request may take before it counts as a timeout error (0:
    /// no limit).
    #[arg(long, default_value = "10", value_parser = parse_secs)]
    pub timeout: Duration,

    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// Directory for kvs.log, given to the server as --data-dir [default: a
    /// temporary directory, removed afterwards].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,

    /// Put transactions to write.
    #[arg(long, default_value_t = 1_000_000)]
    pub records: u64,

    /// Distinct keys the transactions go to (record i writes key i mod K)
    /// [default: --records, every record a new key].
    #[arg(long)]
    pub keys: Option<u64>,

    /// Bytes of each string value.
    #[arg(long, default_value_t = 32)]
    pub value_size: usize,

    /// Zero-pad key numbers so that every key is exactly this many bytes.
    #[arg(long)]
    pub key_size: Option<usize>,

    /// Transactions per append to the log (one fdatasync each).
    #[arg(long, default_value_t = 10_000)]
    pub batch: usize,

    /// Write nothing: time the server on the log already in --data-dir, or
    /// on the backend the server arguments after `--` name.
    #[arg(long)]
    pub reuse_log: bool,

    /// Replace an existing DIR/kvs.log instead of refusing to.
    #[arg(long)]
    pub overwrite: bool,

    /// Server starts to time (the log is written once).
    #[arg(long, default_value_t = 1)]
    pub runs: usize,

    /// Seed of the values written.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Seconds to wait for the server to become ready.
    #[arg(long, default_value = "600", value_parser = parse_secs)]
    pub ready_timeout: Duration,

    #[command(flatten)]
    pub common: Common,

    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, Clone, Args)]
pub struct MemoryArgs {
    /// String keys to store.
    #[arg(long, default_value_t = 1_000_000)]
    pub keys: u64,

    /// Bytes of each key (k and a zero-padded number).
    #[arg(long, default_value_t = 16)]
    pub key_size: usize,

    /// Bytes of each value.
    #[arg(long, default_value_t = 32)]
    pub value_size: usize,

    /// Connections that PUT the keys.
    #[arg(short, long, default_value_t = 50)]
    pub connections: usize,

    /// Seed of the values.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Seconds between the last PUT and reading the memory.
    #[arg(long, default_value = "0.5", value_parser = parse_secs)]
    pub settle: Duration,

    #[command(flatten)]
    pub common: Common,

    #[command(flatten)]
    pub server: ServerArgs,
}

/// The flags of every mode: the runtime and the report.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Worker threads of the tool's runtime [default: one per CPU].
    #[arg(long)]
    pub threads: Option<usize>,

    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,

    /// No progress lines on stderr.
    #[arg(short, long)]
    pub quiet: bool,
}

/// The kvs-server that `replay` and `memory` start.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// The kvs-server binary [default: the one beside kvs-bench, else
    /// kvs-server on the PATH].
    #[arg(long)]
    pub server_bin: Option<PathBuf>,

    /// Extra arguments for kvs-server, after `--` (`memory` gives
    /// --memory-only before them).
    #[arg(last = true, value_name = "SERVER_ARGS")]
    pub server_args: Vec<OsString>,
}

impl ServerArgs {
    fn bin(&self) -> PathBuf {
        self.server_bin.clone().unwrap_or_else(default_server_bin)
    }
}

/// Seconds, decimals allowed.
pub fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("{s:?} is not a number of seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

impl Cli {
    /// Worker threads asked for, if any.
    pub fn threads(&self) -> Option<usize> {
        match &self.command {
            None => self.load.common.threads,
            Some(Command::Memory(m)) => m.common.threads,
            Some(Command::Replay(r)) => r.common.threads,
        }
    }
}

impl LoadArgs {
    /// The workload these arguments describe.
    pub fn workload_spec(&self) -> WorkloadSpec {
        WorkloadSpec {
            kind: self.workload,
            value_type: self.value_type,
            keys: self.keys,
            dist: match self.dist {
                DistArg::Uniform => KeyDist::Uniform,
                DistArg::Zipf => KeyDist::Zipf {
                    theta: self.zipf_theta,
                },
            },
            value_size: self.value_size,
            read_ratio: self.read_ratio,
            fields: self.fields,
            key_prefix: self.key_prefix.clone(),
            key_size: self.key_size,
            base_path: self.base_path.trim_end_matches('/').to_owned(),
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
        cfg.limit = match self.requests {
            Some(n) => Limit::Requests(n),
            None => Limit::Duration(self.duration),
        };
        cfg.warmup = self.warmup.unwrap_or(match cfg.limit {
            Limit::Duration(_) => Duration::from_secs(1),
            Limit::Requests(_) => Duration::ZERO,
        });
        cfg.rate = self.rate;
        cfg.seed = self.seed;
        cfg.prefill = self.prefill;
        cfg.timeout = (!self.timeout.is_zero()).then_some(self.timeout);
        cfg.progress = !self.common.quiet;
        Ok(cfg)
    }
}

/// Sets `stop` on the first Ctrl-C.
fn stop_on_ctrl_c(stop: &Arc<AtomicBool>) {
    let stop = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("kvs-bench: stopping (Ctrl-C again to abort)");
            stop.store(true, Ordering::Relaxed);
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
}

/// Runs what the command line asks for; prints the report on stdout.
pub async fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        None => run_load(&cli.load).await,
        Some(Command::Replay(args)) => run_replay(args).await,
        Some(Command::Memory(args)) => run_memory(args).await,
    };
    match result {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kvs-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run_load(args: &LoadArgs) -> Result<String, String> {
    let cfg = args.config().await?;
    stop_on_ctrl_c(&cfg.stop);
    let result = client::run(&cfg).await.map_err(|e| e.to_string())?;
    let report = Report::new(&cfg, &result);
    Ok(if args.common.json {
        report.to_json() + "\n"
    } else {
        report.table()
    })
}

async fn run_replay(args: ReplayArgs) -> Result<String, String> {
    // Kept alive until the end: dropping it removes the directory.
    let mut temp = None;
    let data_dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => {
            let t = replay::temp_data_dir().map_err(|e| format!("temporary directory: {e}"))?;
            let path = t.path().to_owned();
            temp = Some(t);
            path
        }
    };
    let mut cfg = ReplayConfig::new(data_dir);
    cfg.server_bin = args.server.bin();
    cfg.records = args.records;
    cfg.keys = args.keys.unwrap_or(args.records);
    cfg.value_size = args.value_size;
    cfg.key_size = args.key_size;
    cfg.batch = args.batch;
    cfg.reuse = args.reuse_log;
    cfg.overwrite = args.overwrite;
    cfg.runs = args.runs;
    cfg.seed = args.seed;
    cfg.server_args = args.server.server_args;
    cfg.ready_timeout = args.ready_timeout;
    cfg.progress = !args.common.quiet;
    let report = replay::run(&cfg).await.map_err(|e| e.to_string())?;
    drop(temp);
    Ok(if args.common.json {
        serde_json::to_string_pretty(&report).expect("a report serialises") + "\n"
    } else {
        report.table()
    })
}

async fn run_memory(args: MemoryArgs) -> Result<String, String> {
    let cfg = MemoryConfig {
        server_bin: args.server.bin(),
        keys: args.keys,
        key_size: args.key_size,
        value_size: args.value_size,
        connections: args.connections,
        seed: args.seed,
        server_args: args.server.server_args,
        settle: args.settle,
        progress: !args.common.quiet,
        ..MemoryConfig::default()
    };
    stop_on_ctrl_c(&cfg.stop);
    let report = memory::run(&cfg).await.map_err(|e| e.to_string())?;
    Ok(if args.common.json {
        serde_json::to_string_pretty(&report).expect("a report serialises") + "\n"
    } else {
        report.table()
    })
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
        let cli = Cli::parse_from(["kvs-bench"]);
        assert!(cli.command.is_none());
        let a = cli.load;
        assert_eq!(a.url, "http://127.0.0.1:8080");
        assert_eq!(a.connections, 50);
        assert_eq!(a.duration, Duration::from_secs(10));
        assert_eq!(a.keys, 100_000);
        assert_eq!(a.workload, WorkloadKind::Get);
        assert_eq!(a.value_type, ValueKind::Str);
        assert_eq!(a.dist, DistArg::Uniform);
        assert!(a.requests.is_none() && !a.prefill && !a.common.json);
    }

    #[test]
    fn load_flags_map_to_the_workload() {
        let cli = Cli::parse_from([
            "kvs-bench",
            "-w",
            "mixed",
            "--read-ratio",
            "0.5",
            "--dist",
            "zipf",
            "--zipf-theta",
            "0.8",
            "--type",
            "int",
            "-n",
            "1000",
            "--warmup",
            "0.5",
            "--base-path",
            "/kvs/v1-0-0/",
        ]);
        let spec = cli.load.workload_spec();
        assert_eq!(spec.kind, WorkloadKind::Mixed);
        assert_eq!(spec.read_ratio, 0.5);
        assert_eq!(spec.dist, KeyDist::Zipf { theta: 0.8 });
        assert_eq!(spec.value_type, ValueKind::Int);
        assert_eq!(spec.base_path, "/kvs/v1-0-0");
        assert_eq!(cli.load.requests, Some(1000));
        assert_eq!(cli.load.warmup, Some(Duration::from_millis(500)));
    }

    #[test]
    fn requests_and_duration_conflict() {
        assert!(Cli::try_parse_from(["kvs-bench", "-n", "10", "-d", "5"]).is_err());
    }

    #[test]
    fn subcommands_take_server_args_after_dashes() {
        let cli = Cli::parse_from([
            "kvs-bench",
            "replay",
            "--records",
            "10",
            "--",
            "--txn-addr",
            "https://localhost:5051",
        ]);
        match cli.command {
            Some(Command::Replay(r)) => {
                assert_eq!(r.records, 10);
                assert_eq!(
                    r.server.server_args,
                    ["--txn-addr", "https://localhost:5051"]
                );
            }
            other => panic!("{other:?}"),
        }
        let cli = Cli::parse_from(["kvs-bench", "memory", "--keys", "5", "--key-size", "8"]);
        match cli.command {
            Some(Command::Memory(m)) => assert_eq!((m.keys, m.key_size), (5, 8)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_mode_takes_the_common_flags() {
        for mode in [
            &["kvs-bench"][..],
            &["kvs-bench", "replay"],
            &["kvs-bench", "memory"],
        ] {
            let args = [mode, &["--json", "-q", "--threads", "3"]].concat();
            let cli = Cli::parse_from(&args);
            assert_eq!(cli.threads(), Some(3), "{mode:?}");
            let common = match &cli.command {
                None => &cli.load.common,
                Some(Command::Replay(r)) => &r.common,
                Some(Command::Memory(m)) => &m.common,
            };
            assert!(common.json && common.quiet, "{mode:?}");
        }
    }

    #[test]
    fn seconds_parse() {
        assert_eq!(parse_secs("2.5"), Ok(Duration::from_millis(2500)));
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("x").is_err());
    }
}
