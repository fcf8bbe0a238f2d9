//! Settings: every one a command-line flag and an environment variable.

use std::path::PathBuf;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use kvs_service::LogFormat;

use crate::auth::TokenRules;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// The original's per-type tables in PostgreSQL (`--database-url`).
    Postgres,
    /// One checksummed append-only file under `--data-dir`.
    File,
}

#[derive(Debug, Clone, Parser)]
#[command(
    name = "txn-server",
    version,
    about = "KVS transaction service: keeps kvs-server's transaction log in PostgreSQL or a file, behind gRPC with mutual TLS",
    after_help = "Every flag can also be set through the environment variable shown beside it. \
                  `txn-server health --help` tells how to ask a running txn-server whether it serves."
)]
pub struct Config {
    /// Address to serve gRPC on (port 0 picks a free port).
    #[arg(long, env = "TXN_LISTEN", default_value = "127.0.0.1:5051")]
    pub listen: String,

    /// Where transactions are kept.
    #[arg(long, env = "TXN_BACKEND", value_enum, default_value = "postgres")]
    pub backend: Backend,

    /// PostgreSQL to use with `--backend postgres`, e.g.
    /// postgres://kvs:secret@localhost:5432/kvs. Migrations are applied at start.
    #[arg(long, env = "TXN_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Directory of the log file (`txn.log`) with `--backend file`.
    #[arg(long, env = "TXN_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// CA certificate (PEM) that client certificates must be signed by.
    #[arg(long, env = "TXN_TLS_CA")]
    pub tls_ca: PathBuf,

    /// This server's certificate chain (PEM).
    #[arg(long, env = "TXN_TLS_CERT")]
    pub tls_cert: PathBuf,

    /// This server's private key (PEM).
    #[arg(long, env = "TXN_TLS_KEY")]
    pub tls_key: PathBuf,

    /// Also require an RS256 JWT bearer token on every call, checked against
    /// this RSA public key (PEM), as the original service could.
    #[arg(long, env = "TXN_JWT_PUBLIC_KEY")]
    pub jwt_public_key: Option<PathBuf>,

    /// Seconds of clock difference between token issuer and this server
    /// allowed when checking a token's `exp` and `nbf` (and `iat`, with
    /// --jwt-max-lifetime-secs): a token expired this long ago still passes.
    /// At most 3600.
    #[arg(long, env = "TXN_JWT_LEEWAY_SECS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub jwt_leeway_secs: u64,

    /// Refuse tokens meant to live longer than this many seconds: a token
    /// must then carry `iat` (not in the future) and `exp - iat` may not
    /// exceed this. Unset, a token may live as long as its issuer says.
    #[arg(long, env = "TXN_JWT_MAX_LIFETIME_SECS", requires = "jwt_public_key",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub jwt_max_lifetime_secs: Option<u64>,

    /// Database connections for appends. Replays have connections of their
    /// own, one per `--max-replay-streams`, so they never take these.
    #[arg(long, env = "TXN_POOL_SIZE", default_value_t = 8,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1024))]
    pub pool_size: usize,

    /// Milliseconds to wait for a database connection before a batch fails
    /// (and its writers are told to retry).
    #[arg(long, env = "TXN_DB_TIMEOUT_MS", default_value_t = 2000)]
    pub db_timeout_ms: u64,

    /// Compact the file log once it is larger than this many bytes and twice
    /// its size after the last compaction (`--backend file`).
    #[arg(long, env = "TXN_COMPACT_MIN_BYTES", default_value_t = 64 << 20)]
    pub compact_min_bytes: u64,

    /// Refuse to replay a PostgreSQL log with rows that cannot be replayed
    /// (the original service's increments logged without their amount, say):
    /// the replay ends with an error naming the first such row. By default
    /// each is skipped, named in a warning and counted.
    #[arg(long, env = "TXN_STRICT_REPLAY")]
    pub strict_replay: bool,

    /// Forget a writer (its mark in the log, its fence) once it has logged
    /// nothing for this many seconds. Each kvs-server start is a new writer,
    /// so this bounds what old ones leave behind; a live writer forgotten
    /// has one batch refused and takes up again by itself.
    #[arg(long, env = "TXN_WRITER_TTL_SECS", default_value_t = 86_400)]
    pub writer_ttl_secs: u64,

    /// `ReadTransactions` streams served at once (each kvs-server start opens
    /// one). One more is refused at once with RESOURCE_EXHAUSTED, and its
    /// client tries again later. Each stream holds a database connection (of
    /// its own pool) or a file-reading thread until it ends.
    #[arg(long, env = "TXN_MAX_REPLAY_STREAMS", default_value_t = 4,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=64))]
    pub max_replay_streams: usize,

    /// `Follow` streams served at once (each follower and standby kvs-server
    /// holds one). One more is refused at once with RESOURCE_EXHAUSTED, and
    /// its client tries again later.
    #[arg(long, env = "TXN_MAX_FOLLOW_STREAMS", default_value_t = 64,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=4096))]
    pub max_follow_streams: usize,

    /// Revisions whose changes the log keeps for `Follow` (a table in
    /// PostgreSQL, memory with `--backend file`): a follower further behind
    /// is answered OUT_OF_RANGE and replays the whole log instead. With
    /// `--backend file` the window is refilled from the file at start.
    #[arg(long, env = "TXN_FOLLOW_KEEP", default_value_t = kvs_log::follow::DEFAULT_KEEP,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub follow_keep: u64,

    /// End a `ReadTransactions` or `Follow` stream whose client has taken
    /// nothing of it for this many seconds, freeing its place for another.
    #[arg(long, env = "TXN_REPLAY_STALL_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub replay_stall_secs: u64,

    /// Seconds that in-flight requests and open streams get to finish at
    /// shutdown (SIGTERM or Ctrl-C). Streams are ended at once, each with
    /// what it received committed; a client that does not read the end of
    /// its stream is cut off when this runs out.
    #[arg(long, env = "TXN_SHUTDOWN_TIMEOUT", default_value_t = 10)]
    pub shutdown_timeout: u64,

    /// Check the settings and certificates, then exit without serving.
    #[arg(long)]
    pub check_config: bool,

    /// What to log: a level (error, warn, info, debug, trace) or a tracing filter.
    #[arg(long, env = "TXN_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Log as human-readable text or as one JSON object per line.
    #[arg(long, env = "TXN_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

impl Config {
    pub fn db_timeout(&self) -> Duration {
        Duration::from_millis(self.db_timeout_ms.max(1))
    }

    pub fn writer_ttl(&self) -> Duration {
        Duration::from_secs(self.writer_ttl_secs)
    }

    pub fn replay_stall(&self) -> Duration {
        Duration::from_secs(self.replay_stall_secs)
    }

    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout)
    }

    pub fn token_rules(&self) -> TokenRules {
        TokenRules {
            leeway_secs: self.jwt_leeway_secs,
            max_lifetime_secs: self.jwt_max_lifetime_secs,
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.data_dir.join("txn.log")
    }
}

/// What the command line asks for: serving, or asking a server's health.
pub enum Invocation {
    Serve(Config),
    Health(ProbeArgs),
}

#[derive(Debug, Clone, Subcommand)]
enum Commands {
    Health(ProbeArgs),
}

impl Invocation {
    /// Parses the command line, or exits with clap's message. The
    /// subcommand takes none of the server's flags, and needs none of them.
    pub fn parse() -> Invocation {
        Invocation::try_parse_from(std::env::args_os()).unwrap_or_else(|e| e.exit())
    }

    pub fn try_parse_from<I, T>(args: I) -> Result<Invocation, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let command = Commands::augment_subcommands(Config::command())
            .args_conflicts_with_subcommands(true)
            .subcommand_negates_reqs(true);
        let matches = command.try_get_matches_from(args)?;
        if matches.subcommand().is_some() {
            let Commands::Health(probe) = Commands::from_arg_matches(&matches)?;
            return Ok(Invocation::Health(probe));
        }
        Config::from_arg_matches(&matches).map(Invocation::Serve)
    }
}

/// `txn-server health`: one standard gRPC health check of a running
/// txn-server, over its mutual TLS.
#[derive(Debug, Clone, clap::Args)]
#[command(
    about = "Ask a running txn-server whether it serves: exit 0 if it answers SERVING, 1 otherwise",
    long_about = "Ask a running txn-server whether it serves, with the standard gRPC health \
                  check (grpc.health.v1.Health/Check) over its mutual TLS. Exits 0 if it answers \
                  SERVING; 1 if it answers NOT_SERVING (it waits for PostgreSQL, or lost it), \
                  cannot be reached, or does not answer in time. For container health checks: \
                  it needs nothing in the image but this binary and a client certificate.",
    after_help = "A load balancer or another gRPC client can ask the same: the health service \
                  needs a client certificate signed by the CA, and no bearer token."
)]
pub struct ProbeArgs {
    /// The address txn-server listens on (its --listen); an unspecified
    /// address (0.0.0.0, [::]) is asked on loopback.
    #[arg(long, env = "TXN_LISTEN", default_value = "127.0.0.1:5051")]
    pub listen: String,

    /// CA certificate (PEM) that txn-server's certificate is signed by.
    #[arg(long, env = "TXN_TLS_CA")]
    pub tls_ca: PathBuf,

    /// Client certificate (PEM) signed by that CA: txn-server takes no
    /// connection without one.
    #[arg(long)]
    pub client_cert: PathBuf,

    /// The client certificate's private key (PEM).
    #[arg(long)]
    pub client_key: PathBuf,

    /// The name txn-server's certificate is checked against.
    #[arg(long, default_value = "localhost")]
    pub server_name: String,

    /// The service asked about: the whole server (empty, the default) or
    /// api.TransactionService.
    #[arg(long, default_value = "")]
    pub service: String,

    /// Milliseconds for connecting and answering together.
    #[arg(long, default_value_t = 2000,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub timeout_ms: u64,
}

impl ProbeArgs {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Invocation, clap::Error> {
        Invocation::try_parse_from(std::iter::once("txn-server").chain(args.iter().copied()))
    }

    #[test]
    fn health_needs_a_client_certificate_and_none_of_the_server_s_flags() {
        let probe = [
            "health",
            "--tls-ca",
            "ca",
            "--client-cert",
            "c",
            "--client-key",
            "k",
        ];
        match parse(&probe).unwrap() {
            Invocation::Health(args) => {
                assert_eq!(args.client_cert, PathBuf::from("c"));
                assert_eq!(args.service, "");
                assert_eq!(args.timeout(), Duration::from_secs(2));
            }
            Invocation::Serve(_) => panic!("parsed as serving"),
        }
        assert!(parse(&probe[..3]).is_err(), "no client certificate");
        let mut mixed = vec!["--backend", "file"];
        mixed.extend(probe);
        assert!(parse(&mixed).is_err(), "a server flag before health");
    }

    #[test]
    fn serving_still_needs_its_certificates() {
        let serve = ["--tls-ca", "ca", "--tls-cert", "c", "--tls-key", "k"];
        assert!(matches!(parse(&serve), Ok(Invocation::Serve(_))));
        assert!(parse(&serve[..4]).is_err());
    }
}
