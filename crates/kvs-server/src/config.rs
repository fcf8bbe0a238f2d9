//! Settings: every one a command-line flag and an environment variable.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;

use crate::auth::Tokens;
use crate::store::remote::RemoteOptions;
use crate::store::remote::token::TokenFile;
use crate::store::{Durability, Limits};
use crate::watch::Bounds;

/// The largest body limit: the file log refuses records over 64 MiB.
const MAX_BODY_LIMIT: usize = 64 << 20;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "kvs-server",
    version,
    about = "KVS: a typed key-value store over HTTP whose every write is logged before it is answered",
    after_help = "Every flag can also be set through the environment variable shown beside it.\n\
                  The API is served under /kvs/v1-0-0; its OpenAPI document is at /kvs/v1-0-0/openapi.json \
                  and a browsable page at /kvs/v1-0-0/docs."
)]
pub struct Config {
    /// Address to serve HTTP on (port 0 picks a free port).
    #[arg(long, env = "KVS_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,

    /// Directory of the embedded transaction log (the file `kvs.log` in it).
    #[arg(long, env = "KVS_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// When a write is answered: `sync` after its transaction is durable
    /// (fsynced; concurrent writes share one fsync), `async` at once, with the
    /// log written in the background through a bounded queue.
    #[arg(long, env = "KVS_DURABILITY", value_enum, default_value = "sync")]
    pub durability: Durability,

    /// Keep the log in a txn-server at this address (e.g.
    /// https://localhost:5051) instead of the embedded file; needs --tls-ca,
    /// --tls-cert and --tls-key.
    #[arg(long, env = "KVS_TXN_ADDR")]
    pub txn_addr: Option<String>,

    /// CA certificate (PEM) the txn-server's certificate must be signed by.
    #[arg(long, env = "KVS_TLS_CA")]
    pub tls_ca: Option<PathBuf>,

    /// This server's client certificate (PEM) for the txn-server.
    #[arg(long, env = "KVS_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "KVS_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// The name the txn-server's certificate must carry.
    #[arg(long, env = "KVS_TXN_SERVER_NAME", default_value = "localhost")]
    pub txn_server_name: String,

    /// Milliseconds a batch may wait for the txn-server before its append
    /// counts as failed (see --outcome-timeout-ms for how its writes are
    /// answered).
    #[arg(long, env = "KVS_TXN_TIMEOUT_MS", default_value_t = 2000)]
    pub txn_timeout_ms: u64,

    /// Milliseconds the writes of a failed append wait, after the failure,
    /// for the log to tell whether the batch is durable after all (its
    /// answer may be what was lost): 200 if it is, 503 if not. Past this
    /// they are answered 504 "outcome unknown". A write's longest wait is
    /// about --txn-timeout-ms plus this; keep that well below
    /// --request-timeout.
    #[arg(long, env = "KVS_OUTCOME_TIMEOUT_MS", default_value_t = 2000,
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub outcome_timeout_ms: u64,

    /// A file holding the bearer token (a JWT with `exp`) to send to a
    /// txn-server that checks tokens. It is read again every second and
    /// after a call refused as unauthenticated, so a token written there
    /// replaces the one held without a restart; a file that cannot be read
    /// or holds no token keeps the one held, with a warning.
    #[arg(long, env = "KVS_TXN_TOKEN_FILE")]
    pub txn_token_file: Option<PathBuf>,

    /// Keep no log at all: every value is lost when the server stops. For
    /// caches and measurements.
    #[arg(long, env = "KVS_MEMORY_ONLY")]
    pub memory_only: bool,

    /// Largest request body accepted, in bytes; larger ones get 413.
    #[arg(long, env = "KVS_MAX_BODY_BYTES", default_value_t = 1 << 20,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=MAX_BODY_LIMIT as u64))]
    pub max_body_bytes: usize,

    /// Largest value one key may hold, in bytes of text (a string's length,
    /// a map's fields and values, a set's members); larger writes get 413.
    #[arg(long, env = "KVS_MAX_VALUE_BYTES", default_value_t = 1 << 20,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_value_bytes: usize,

    /// Most fields of one map or members of one set; writes that would
    /// make more get 413.
    #[arg(long, env = "KVS_MAX_ENTRIES", default_value_t = 100_000,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_entries: usize,

    /// Most compares and operations one transaction (POST /txn) may hold;
    /// more get 413. Its shards stay locked while it runs.
    #[arg(long, env = "KVS_MAX_TXN_OPS", default_value_t = 128,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1 << 16))]
    pub max_txn_ops: usize,

    /// Seconds a request may take from its first byte to its answer (a
    /// slow body gets 408); also how long a client may take to send the
    /// headers and how long an idle connection is kept.
    #[arg(long, env = "KVS_REQUEST_TIMEOUT", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub request_timeout: u64,

    /// Connections served at once; one more is answered 503 and closed.
    #[arg(long, env = "KVS_MAX_CONNECTIONS", default_value_t = 1024,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1 << 20))]
    pub max_connections: usize,

    /// Serve HTTPS with this certificate chain (PEM) instead of plain HTTP;
    /// needs --http-tls-key.
    #[arg(long, env = "KVS_HTTP_TLS_CERT", requires = "http_tls_key")]
    pub http_tls_cert: Option<PathBuf>,

    /// The private key (PEM) of --http-tls-cert.
    #[arg(long, env = "KVS_HTTP_TLS_KEY", requires = "http_tls_cert")]
    pub http_tls_key: Option<PathBuf>,

    /// A file of bearer tokens that the API requires, one per line as
    /// `read-write:TOKEN` or `read-only:TOKEN` (`#` starts a comment). With
    /// tokens set, every request but GET /kvs/v1-0-0/healthz needs one.
    #[arg(long, env = "KVS_AUTH_TOKENS_FILE")]
    pub auth_tokens_file: Option<PathBuf>,

    /// Bearer tokens as comma-separated `read-write:TOKEN` or
    /// `read-only:TOKEN` entries, added to --auth-tokens-file's. Prefer the
    /// file or the environment: a flag is visible to every local user.
    #[arg(long, env = "KVS_AUTH_TOKENS", hide_env_values = true, value_parser = Tokens::parse)]
    pub auth_tokens: Option<Tokens>,

    /// Writes that may wait in the log queue; in `async` mode a full queue
    /// makes writers wait instead of growing memory.
    #[arg(long, env = "KVS_QUEUE_CAPACITY", default_value_t = 65_536,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1 << 24))]
    pub queue_capacity: usize,

    /// Compact the log file once it is larger than this many bytes and twice
    /// its size after the last compaction.
    #[arg(long, env = "KVS_COMPACT_MIN_BYTES", default_value_t = 64 << 20)]
    pub compact_min_bytes: u64,

    /// At start-up, cut the log at a corrupt record (dropping it and all
    /// after it) instead of refusing to start. Take a copy of the file first.
    #[arg(long, env = "KVS_TRUNCATE_CORRUPT")]
    pub truncate_corrupt: bool,

    /// Also log every successful read, as the original service did (an audit
    /// trail; replay skips these records).
    #[arg(long, env = "KVS_AUDIT_READS")]
    pub audit_reads: bool,

    /// What to log: a level (error, warn, info, debug, trace) or a tracing
    /// filter such as `info,kvs_server=debug`.
    #[arg(long, env = "KVS_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Log as human-readable text or as one JSON object per line.
    #[arg(long, env = "KVS_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: kvs_service::LogFormat,

    /// Revisions whose changes are kept in memory for watchers (GET
    /// /watch) to start from or resume at; a watcher asking for older ones,
    /// or falling further behind, is told to list again.
    #[arg(long, env = "KVS_WATCH_HISTORY", default_value_t = 100_000,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub watch_history: usize,

    /// Bytes of changes kept for watchers, at most (about: the newest
    /// revision is kept even alone over it).
    #[arg(long, env = "KVS_WATCH_HISTORY_BYTES", default_value_t = 64 << 20,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub watch_history_bytes: usize,

    /// Watch streams open at once; one more is answered 503.
    #[arg(long, env = "KVS_MAX_WATCHERS", default_value_t = 1024,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1 << 20))]
    pub max_watchers: usize,

    /// Seconds between the comments that keep an idle watch stream alive
    /// through proxies; at most --request-timeout, since a connection
    /// silent for a little longer is closed.
    #[arg(long, env = "KVS_WATCH_HEARTBEAT_SECS", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub watch_heartbeat_secs: u64,

    /// Seconds that in-flight requests get to finish at shutdown.
    #[arg(long, env = "KVS_SHUTDOWN_TIMEOUT", default_value_t = 10)]
    pub shutdown_timeout: u64,

    /// `standalone`: the only node, writing with no lease. `standby`: one
    /// of the nodes that share the write lease in txn-server (PostgreSQL
    /// backend): the one holding it is the primary and takes writes, the
    /// others follow the log and take over when its lease lapses.
    /// `follower`: follows the log and serves reads and watches, never
    /// writes. Followers and standbys send writes to the primary with a
    /// 307 redirect, and need --txn-addr.
    #[arg(long, env = "KVS_ROLE", value_enum, default_value = "standalone")]
    pub role: Role,

    /// This node's base URL as clients reach it (e.g. http://kvs-a:8080):
    /// where the other nodes redirect writes while it is the primary.
    /// Default: the scheme and listen address.
    #[arg(long, env = "KVS_ADVERTISE_URL")]
    pub advertise_url: Option<String>,

    /// Milliseconds a taken or renewed write lease lasts: a primary that
    /// stops renewing it (frozen, cut off, killed) is replaced this long
    /// after its last renewal, plus up to --lease-check-ms.
    #[arg(long, env = "KVS_LEASE_MS", default_value_t = 5000,
          value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub lease_ms: u64,

    /// Milliseconds between a node's lease checks: a primary renews its
    /// lease, a standby tries to take a lapsed one, and every node learns
    /// where the primary is. Keep it well below --lease-ms.
    #[arg(long, env = "KVS_LEASE_CHECK_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub lease_check_ms: u64,

    /// Milliseconds a request with `KVS-Min-Revision` waits for this node
    /// to reach that revision before it is answered 503 with Retry-After.
    #[arg(long, env = "KVS_MIN_REVISION_WAIT_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub min_revision_wait_ms: u64,
}

/// What a node does with the log; see `--role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    Standalone,
    Standby,
    Follower,
}

impl Config {
    /// The remote log's settings, when `--txn-addr` is given.
    pub(crate) fn remote(&self) -> Option<Result<RemoteOptions, String>> {
        let addr = self.txn_addr.clone()?;
        let (Some(ca), Some(cert), Some(key)) = (&self.tls_ca, &self.tls_cert, &self.tls_key)
        else {
            return Some(Err("--txn-addr needs --tls-ca, --tls-cert and --tls-key (KVS_TLS_CA, KVS_TLS_CERT, KVS_TLS_KEY)".into()));
        };
        let token = match &self.txn_token_file {
            Some(path) => match TokenFile::open(path) {
                Ok(token) => Some(Arc::new(token)),
                Err(e) => return Some(Err(format!("--txn-token-file {}: {e}", path.display()))),
            },
            None => None,
        };
        Some(Ok(RemoteOptions {
            token,
            addr,
            ca: ca.clone(),
            cert: cert.clone(),
            key: key.clone(),
            server_name: self.txn_server_name.clone(),
            timeout: std::time::Duration::from_millis(self.txn_timeout_ms.max(1)),
        }))
    }

    /// The bearer tokens of --auth-tokens-file and --auth-tokens; none
    /// means the API is open. Either given but empty is an error, so that a
    /// mistake cannot quietly leave the API open.
    pub(crate) fn tokens(&self) -> Result<Option<Tokens>, String> {
        if self.auth_tokens.as_ref().is_some_and(Tokens::is_empty) {
            return Err("--auth-tokens (KVS_AUTH_TOKENS) is set but holds no token".into());
        }
        let mut tokens = self.auth_tokens.clone().unwrap_or_default();
        if let Some(path) = &self.auth_tokens_file {
            let from_file = Tokens::read(path)?;
            if from_file.is_empty() {
                return Err(format!("{}: holds no token", path.display()));
            }
            tokens.extend(from_file);
        }
        Ok((!tokens.is_empty()).then_some(tokens))
    }

    pub(crate) fn limits(&self) -> Limits {
        Limits {
            max_value_bytes: self.max_value_bytes,
            max_entries: self.max_entries,
        }
    }

    /// What the watch history keeps.
    pub(crate) fn watch_history(&self) -> Bounds {
        Bounds {
            revisions: self.watch_history,
            bytes: self.watch_history_bytes,
        }
    }

    /// How often an idle watch stream is sent a comment: often enough
    /// that its connection is never closed as silent.
    pub(crate) fn watch_heartbeat(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.watch_heartbeat_secs.min(self.request_timeout))
    }

    /// Checks that the role has what it needs.
    pub(crate) fn check_role(&self) -> Result<(), String> {
        if self.role != Role::Standalone && self.txn_addr.is_none() {
            return Err(format!(
                "--role {} follows the log in txn-server: it needs --txn-addr (KVS_TXN_ADDR)",
                self.role_name()
            ));
        }
        if self.role == Role::Standby && self.lease_check_ms * 2 > self.lease_ms {
            return Err(format!(
                "--lease-check-ms ({}) must be at most half of --lease-ms ({}), so that a primary renews its lease before it lapses",
                self.lease_check_ms, self.lease_ms
            ));
        }
        Ok(())
    }

    pub(crate) fn role_name(&self) -> &'static str {
        match self.role {
            Role::Standalone => "standalone",
            Role::Standby => "standby",
            Role::Follower => "follower",
        }
    }

    /// Where the embedded log lives.
    pub(crate) fn log_path(&self) -> PathBuf {
        self.data_dir.join("kvs.log")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Config {
        Config::try_parse_from(std::iter::once("kvs-server").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn a_role_that_follows_needs_txn_server_and_a_standby_renews_in_time() {
        assert!(config(&[]).check_role().is_ok());
        let alone = config(&["--role", "follower"]).check_role().unwrap_err();
        assert!(alone.contains("needs --txn-addr"), "{alone}");
        let txn = ["--txn-addr", "https://localhost:5051"];
        assert!(
            config(&[&txn[..], &["--role", "follower"]].concat())
                .check_role()
                .is_ok()
        );
        let standby = [&txn[..], &["--role", "standby"]].concat();
        assert!(config(&standby).check_role().is_ok());
        let slow = [
            &standby[..],
            &["--lease-ms", "1000", "--lease-check-ms", "600"],
        ]
        .concat();
        let slow = config(&slow).check_role().unwrap_err();
        assert!(slow.contains("at most half of --lease-ms"), "{slow}");
    }
}
