//! The load itself: one HTTP/1.1 keep-alive connection per task (hyper's
//! connection API, no pool), each sending its requests back to back.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, Connection, SendRequest};
use hyper::header::{HOST, HeaderValue};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::stats::{ErrorKind, Stats};
use crate::workload::{Generator, Op, OpClass, Workload};

/// Where the load goes: the server's address and the `Host` header for it.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub host: HeaderValue,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("bad --url {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: SocketAddr, reason: String },
    #[error("--connections must be at least 1")]
    NoConnections,
    #[error("{0}")]
    Other(String),
}

impl Target {
    /// Resolves an `http://host[:port]` URL (any path is ignored: the API's
    /// base path is the workload's).
    pub async fn resolve(url: &str) -> Result<Target, BenchError> {
        let bad = |reason: String| BenchError::BadUrl {
            url: url.to_owned(),
            reason,
        };
        let uri: Uri = url.parse().map_err(|e| bad(format!("{e}")))?;
        let authority = match (uri.scheme_str(), uri.authority()) {
            (Some("http"), Some(a)) => a,
            _ => return Err(bad("only http://host[:port] is supported".into())),
        };
        let port = authority.port_u16().unwrap_or(80);
        let addr = tokio::net::lookup_host((authority.host(), port))
            .await
            .map_err(|e| bad(format!("cannot resolve {}: {e}", authority.host())))?
            .next()
            .ok_or_else(|| bad("the host resolves to no address".into()))?;
        let host = HeaderValue::from_str(authority.as_str()).map_err(|e| bad(format!("{e}")))?;
        Ok(Target { addr, host })
    }

    /// A target at a known address.
    pub fn addr(addr: SocketAddr) -> Target {
        let host = HeaderValue::from_str(&addr.to_string()).expect("an address is a valid header");
        Target { addr, host }
    }
}

type Driver = Pin<Box<Connection<TokioIo<TcpStream>, Full<Bytes>>>>;

/// One HTTP/1.1 keep-alive connection. The task that owns it drives it:
/// no background task per connection.
struct Conn {
    sender: SendRequest<Full<Bytes>>,
    driver: Driver,
    /// The connection ended or failed: make a new one.
    broken: bool,
}

impl Conn {
    async fn connect(target: &Target) -> Result<Conn, String> {
        let stream = TcpStream::connect(target.addr)
            .await
            .map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (sender, driver) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        Ok(Conn {
            sender,
            driver: Box::pin(driver),
            broken: false,
        })
    }

    /// Whether the connection can take no more requests.
    fn is_broken(&self) -> bool {
        self.broken || self.sender.is_closed()
    }

    /// Sends `op` and reads the whole response, dropping its body; returns
    /// its status.
    async fn send(
        &mut self,
        target: &Target,
        op: Op,
        timeout: Option<Duration>,
    ) -> Result<u16, ErrorKind> {
        let uri = Uri::try_from(op.path).map_err(|_| ErrorKind::Request)?;
        let mut req = Request::new(Full::new(op.body));
        *req.method_mut() = op.method;
        *req.uri_mut() = uri;
        req.headers_mut().insert(HOST, target.host.clone());

        let Conn {
            sender,
            driver,
            broken,
        } = self;
        let exchange = async {
            tokio::select! {
                biased;
                r = exchange(sender, req) => r,
                // The connection ended before the answer was complete.
                _ = driver.as_mut() => {
                    *broken = true;
                    Err(ErrorKind::Request)
                }
            }
        };
        let result = match timeout {
            None => exchange.await,
            Some(t) => tokio::time::timeout(t, exchange)
                .await
                .unwrap_or(Err(ErrorKind::Timeout)),
        };
        if result.is_err() {
            // After a failure the connection's state is unknown.
            self.broken = true;
        }
        result
    }
}

async fn exchange(
    sender: &mut SendRequest<Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> Result<u16, ErrorKind> {
    sender.ready().await.map_err(|_| ErrorKind::Request)?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|_| ErrorKind::Request)?;
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    while let Some(frame) = body.frame().await {
        frame.map_err(|_| ErrorKind::Body)?;
    }
    Ok(status)
}

/// When the measured part of a run ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    /// After this long (requests in flight then still finish and count).
    Duration(Duration),
    /// After this many requests in all (responses and transport errors).
    Requests(u64),
}

/// Told of every measured request as it ends, while the run goes on (the
/// soak test's progress line and its accounting of outages, which need to know
/// *when* each answer came, not only how many there were). A connection that
/// cannot be made is no request it is told of; the run's [`Stats`] count it.
pub trait Observer: Send + Sync + std::fmt::Debug {
    /// A request of `class` ended at `at` with `outcome`.
    fn observe(&self, at: Instant, class: OpClass, outcome: Result<u16, ErrorKind>);
}

/// Everything about a run but the workload's own parameters.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub target: Target,
    pub workload: Arc<Workload>,
    pub connections: usize,
    pub limit: Limit,
    /// Load before the measured part, not counted.
    pub warmup: Duration,
    pub seed: u64,
    /// PUT every key of the key space once first.
    pub prefill: bool,
    /// A request without a complete answer by then counts as a timeout.
    pub timeout: Option<Duration>,
    /// Set it to end the run early; what was measured is returned.
    pub stop: Arc<AtomicBool>,
    /// Told of every measured request as it ends.
    pub observer: Option<Arc<dyn Observer>>,
}

impl BenchConfig {
    pub fn new(target: Target, workload: Arc<Workload>) -> BenchConfig {
        BenchConfig {
            target,
            workload,
            connections: 50,
            limit: Limit::Duration(Duration::from_secs(10)),
            warmup: Duration::ZERO,
            seed: 1,
            prefill: false,
            timeout: Some(Duration::from_secs(10)),
            stop: Arc::default(),
            observer: None,
        }
    }
}

/// The counts of one phase.
#[derive(Debug, Clone)]
pub struct PhaseResult {
    pub stats: Stats,
    /// From the phase's start to its last answer.
    pub elapsed: Duration,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub prefill: Option<PhaseResult>,
    /// The measured part (warm-up excluded).
    pub measured: PhaseResult,
    /// Requests sent during the warm-up.
    pub warmup_requests: u64,
}

/// Runs the prefill (if asked), the warm-up and the measured load.
pub async fn run(cfg: &BenchConfig) -> Result<RunResult, BenchError> {
    if cfg.connections == 0 {
        return Err(BenchError::NoConnections);
    }
    // Open every connection first: a server that is not there is an error,
    // not a run full of connect failures.
    let connecting: Vec<_> = (0..cfg.connections)
        .map(|_| {
            let target = cfg.target.clone();
            tokio::spawn(async move { Conn::connect(&target).await })
        })
        .collect();
    let mut conns = Vec::with_capacity(cfg.connections);
    for c in connecting {
        let conn = joined(c.await)?.map_err(|reason| BenchError::Connect {
            addr: cfg.target.addr,
            reason,
        })?;
        conns.push(Some(conn));
    }

    let prefill = if cfg.prefill {
        let start = Instant::now();
        let (outs, back) = run_phase(cfg, conns, Phase::Prefill).await?;
        conns = back;
        Some(merged(outs, start).0)
    } else {
        None
    };
    let measure_start = Instant::now() + cfg.warmup;
    let (end, max_requests) = match cfg.limit {
        Limit::Duration(d) => (Some(measure_start + d), None),
        Limit::Requests(n) => (None, Some(n)),
    };
    let load = Phase::Load {
        measure_start,
        end,
        max_requests,
        tickets: Arc::default(),
    };
    let (outs, _) = run_phase(cfg, conns, load).await?;
    let (measured, warmup_requests) = merged(outs, measure_start);
    Ok(RunResult {
        prefill,
        measured,
        warmup_requests,
    })
}

fn joined<T>(r: Result<T, tokio::task::JoinError>) -> Result<T, BenchError> {
    r.map_err(|e| BenchError::Other(e.to_string()))
}

/// What the connections' tasks send.
#[derive(Debug, Clone)]
enum Phase {
    /// Every key once; connection `i` of `n` takes keys `i, i+n, ...`.
    Prefill,
    /// The workload: a warm-up until `measure_start`, then the measured part
    /// until `end` or until `max_requests` are claimed from `tickets`.
    Load {
        measure_start: Instant,
        end: Option<Instant>,
        max_requests: Option<u64>,
        tickets: Arc<AtomicU64>,
    },
}

#[derive(Default)]
struct TaskOutput {
    stats: Stats,
    warmup_requests: u64,
    last_answer: Option<Instant>,
}

/// Runs `phase` on every connection; hands the connections back.
async fn run_phase(
    cfg: &BenchConfig,
    conns: Vec<Option<Conn>>,
    phase: Phase,
) -> Result<(Vec<TaskOutput>, Vec<Option<Conn>>), BenchError> {
    let n = conns.len();
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, conn)| tokio::spawn(task(cfg.clone(), phase.clone(), i, n, conn)))
        .collect();
    let mut outs = Vec::with_capacity(n);
    let mut back = Vec::with_capacity(n);
    for t in tasks {
        let (out, conn) = joined(t.await)?;
        outs.push(out);
        back.push(conn);
    }
    Ok((outs, back))
}

/// The tasks' counts together, and their warm-up requests; the phase lasts
/// from `since` to the last answer.
fn merged(outs: Vec<TaskOutput>, since: Instant) -> (PhaseResult, u64) {
    let mut stats = Stats::new();
    let mut last = since;
    let mut warmup_requests = 0;
    for out in outs {
        stats.merge(&out.stats);
        last = last.max(out.last_answer.unwrap_or(since));
        warmup_requests += out.warmup_requests;
    }
    let elapsed = last - since;
    (PhaseResult { stats, elapsed }, warmup_requests)
}

/// Connection `i` of `n` sending `phase`'s requests back to back.
async fn task(
    cfg: BenchConfig,
    phase: Phase,
    i: usize,
    n: usize,
    mut conn: Option<Conn>,
) -> (TaskOutput, Option<Conn>) {
    let mut generator = Generator::new(cfg.workload.clone(), cfg.seed, i as u64);
    let mut keys = (i as u64..cfg.workload.spec.keys).step_by(n);
    let mut out = TaskOutput::default();
    while !cfg.stop.load(Ordering::Relaxed) {
        let (op, measured) = match &phase {
            Phase::Prefill => match keys.next() {
                Some(key) => (generator.prefill_op(key), true),
                None => break,
            },
            Phase::Load {
                measure_start,
                end,
                max_requests,
                tickets,
            } => {
                let now = Instant::now();
                if end.is_some_and(|end| now >= end) {
                    break;
                }
                let measured = now >= *measure_start;
                if measured
                    && max_requests
                        .is_some_and(|max| tickets.fetch_add(1, Ordering::Relaxed) >= max)
                {
                    break;
                }
                (generator.next_op(), measured)
            }
        };
        let Some(c) = usable(&mut conn, &cfg.target).await else {
            // A connection that cannot be made counts as a request that got
            // no answer.
            if measured {
                out.stats.record_error(ErrorKind::Connect);
            }
            continue;
        };
        let class = op.class;
        let t0 = Instant::now();
        let result = c.send(&cfg.target, op, cfg.timeout).await;
        let t1 = Instant::now();
        if !measured {
            out.warmup_requests += 1;
            continue;
        }
        if let (Phase::Load { .. }, Some(o)) = (&phase, &cfg.observer) {
            o.observe(t1, class, result);
        }
        match result {
            Ok(status) => out.stats.record(class, t1 - t0, status),
            Err(kind) => out.stats.record_error(kind),
        }
        out.last_answer = Some(t1);
    }
    (out, conn)
}

/// The connection to use, made anew when it is missing or broken; after a
/// failed connect, a little wait before the next try.
async fn usable<'a>(conn: &'a mut Option<Conn>, target: &Target) -> Option<&'a mut Conn> {
    if conn.as_ref().is_none_or(Conn::is_broken) {
        *conn = Conn::connect(target).await.ok();
        if conn.is_none() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    conn.as_mut()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn urls_resolve_to_an_address_and_a_host() {
        let t = Target::resolve("http://127.0.0.1:8080/ignored")
            .await
            .unwrap();
        assert_eq!(t.addr, SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert_eq!(t.host, "127.0.0.1:8080");
        assert_eq!(
            Target::resolve("http://127.0.0.1")
                .await
                .unwrap()
                .addr
                .port(),
            80
        );
        for bad in ["https://127.0.0.1:8080", "127.0.0.1:8080", "http://", "::"] {
            let err = Target::resolve(bad).await.unwrap_err();
            assert!(matches!(err, BenchError::BadUrl { .. }), "{bad}: {err}");
        }
    }
}
