//! The load itself: one HTTP/1.1 keep-alive connection per task (hyper's
//! connection API, no pool), each sending its requests back to back (closed
//! loop) or on a schedule (open loop, `--rate`).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, Connection, SendRequest};
use hyper::header::{HOST, HeaderValue};
use hyper::{Method, Request, Uri};
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
    #[error("--rate must be a positive number of requests per second")]
    BadRate,
    #[error("{0}")]
    Other(String),
}

impl Target {
    /// Resolves an `http://host[:port]` URL (any path is ignored; the API
    /// base path is part of the workload).
    pub async fn resolve(url: &str) -> Result<Target, BenchError> {
        let bad = |reason: &str| BenchError::BadUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: Uri = url.parse().map_err(|e| bad(&format!("{e}")))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => {
                return Err(bad(&format!(
                    "scheme {other:?} is not supported; only http"
                )));
            }
            None => return Err(bad("it needs a scheme, as in http://127.0.0.1:8080")),
        }
        let authority = uri.authority().ok_or_else(|| bad("it has no host"))?;
        let port = authority.port_u16().unwrap_or(80);
        let addr = tokio::net::lookup_host((authority.host(), port))
            .await
            .map_err(|e| bad(&format!("cannot resolve {}: {e}", authority.host())))?
            .next()
            .ok_or_else(|| bad("the host resolves to no address"))?;
        let host = HeaderValue::from_str(authority.as_str()).map_err(|e| bad(&format!("{e}")))?;
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
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
    driver: Driver,
    /// The connection ended or failed: make a new one.
    broken: bool,
}

impl Conn {
    pub async fn connect(target: &Target) -> Result<Conn, String> {
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
    pub fn is_broken(&self) -> bool {
        self.broken || self.sender.is_closed()
    }

    /// Sends one request and reads the whole response; returns its status.
    /// The response body is read and dropped.
    pub async fn send(
        &mut self,
        target: &Target,
        method: Method,
        path: String,
        body: Bytes,
        timeout: Option<Duration>,
    ) -> Result<u16, ErrorKind> {
        self.request(target, method, path, body, timeout, false)
            .await
            .map(|(status, _)| status)
    }

    /// A GET of `path`; returns the status and the response body.
    pub async fn get(
        &mut self,
        target: &Target,
        path: String,
        timeout: Option<Duration>,
    ) -> Result<(u16, Vec<u8>), ErrorKind> {
        self.request(target, Method::GET, path, Bytes::new(), timeout, true)
            .await
    }

    /// Sends one request and reads the whole response; its body is kept
    /// only when `keep_body`.
    async fn request(
        &mut self,
        target: &Target,
        method: Method,
        path: String,
        body: Bytes,
        timeout: Option<Duration>,
        keep_body: bool,
    ) -> Result<(u16, Vec<u8>), ErrorKind> {
        let uri = Uri::try_from(path).map_err(|_| ErrorKind::Request)?;
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = method;
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
                r = exchange(sender, req, keep_body) => r,
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

    /// Sends `op`.
    pub async fn send_op(
        &mut self,
        target: &Target,
        op: Op,
        timeout: Option<Duration>,
    ) -> Result<u16, ErrorKind> {
        self.send(target, op.method, op.path, op.body, timeout)
            .await
    }
}

async fn exchange(
    sender: &mut SendRequest<Full<Bytes>>,
    req: Request<Full<Bytes>>,
    keep_body: bool,
) -> Result<(u16, Vec<u8>), ErrorKind> {
    sender.ready().await.map_err(|_| ErrorKind::Request)?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|_| ErrorKind::Request)?;
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut kept = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| ErrorKind::Body)?;
        if keep_body && let Some(data) = frame.data_ref() {
            kept.extend_from_slice(data);
        }
    }
    Ok((status, kept))
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
    /// Open loop: aim at this many requests per second in all.
    pub rate: Option<f64>,
    pub seed: u64,
    /// PUT every key of the key space once first.
    pub prefill: bool,
    /// A request without a complete answer by then counts as a timeout.
    pub timeout: Option<Duration>,
    /// Print a progress line on stderr about once a second.
    pub progress: bool,
    /// Set it to end the run early (Ctrl-C); what was measured is reported.
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
            rate: None,
            seed: 1,
            prefill: false,
            timeout: Some(Duration::from_secs(10)),
            progress: false,
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
    /// Ended early by [`BenchConfig::stop`].
    pub stopped: bool,
}

const PHASE_CONNECT: u8 = 0;
const PHASE_PREFILL: u8 = 1;
const PHASE_MAIN: u8 = 2;
const PHASE_DONE: u8 = 3;

/// What the tasks and the progress printer share.
#[derive(Default)]
struct Shared {
    /// Answers and errors so far, all phases.
    done: AtomicU64,
    /// Of which measured (after the warm-up).
    measured: AtomicU64,
    /// `done` when the main phase began.
    main_base: AtomicU64,
    errors: AtomicU64,
    phase: AtomicU8,
    /// Measured requests claimed (request-count limit).
    tickets: AtomicU64,
    measure_start: OnceLock<Instant>,
}

/// Runs the prefill (if asked), the warm-up and the measured load.
pub async fn run(cfg: &BenchConfig) -> Result<RunResult, BenchError> {
    if cfg.connections == 0 {
        return Err(BenchError::NoConnections);
    }
    if let Some(rate) = cfg.rate
        && !(rate.is_finite() && rate > 0.0)
    {
        return Err(BenchError::BadRate);
    }
    let shared = Arc::new(Shared::default());
    let printer = cfg
        .progress
        .then(|| tokio::spawn(progress(shared.clone(), cfg.stop.clone())));
    let result = run_phases(cfg, &shared).await;
    shared.phase.store(PHASE_DONE, Ordering::Relaxed);
    if let Some(p) = printer {
        p.abort();
        let _ = p.await;
    }
    result
}

async fn run_phases(cfg: &BenchConfig, shared: &Arc<Shared>) -> Result<RunResult, BenchError> {
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
        let conn = c
            .await
            .map_err(|e| BenchError::Other(e.to_string()))?
            .map_err(|reason| BenchError::Connect {
                addr: cfg.target.addr,
                reason,
            })?;
        conns.push(Some(conn));
    }

    let prefill = if cfg.prefill {
        shared.phase.store(PHASE_PREFILL, Ordering::Relaxed);
        let (result, back) = prefill_phase(cfg, shared, conns).await?;
        conns = back;
        Some(result)
    } else {
        None
    };

    shared
        .main_base
        .store(shared.done.load(Ordering::Relaxed), Ordering::Relaxed);
    shared.phase.store(PHASE_MAIN, Ordering::Relaxed);
    if cfg.limit == Limit::Requests(0) || cfg.stop.load(Ordering::Relaxed) {
        return Ok(RunResult {
            prefill,
            measured: PhaseResult {
                stats: Stats::new(),
                elapsed: Duration::ZERO,
            },
            warmup_requests: 0,
            stopped: cfg.stop.load(Ordering::Relaxed),
        });
    }
    let start = Instant::now();
    let measure_start = start + cfg.warmup;
    let _ = shared.measure_start.set(measure_start);
    let end = match cfg.limit {
        Limit::Duration(d) => Some(measure_start + d),
        Limit::Requests(_) => None,
    };
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, conn)| {
            let task = MainTask {
                target: cfg.target.clone(),
                generator: Generator::new(cfg.workload.clone(), cfg.seed, i as u64),
                conn,
                shared: shared.clone(),
                stop: cfg.stop.clone(),
                observer: cfg.observer.clone(),
                timeout: cfg.timeout,
                start,
                measure_start,
                end,
                max_requests: match cfg.limit {
                    Limit::Requests(n) => Some(n),
                    Limit::Duration(_) => None,
                },
                // Each connection's share of the rate, its first send
                // staggered so that connections do not fire together.
                schedule: cfg.rate.map(|rate| {
                    let interval = Duration::from_secs_f64(cfg.connections as f64 / rate);
                    let offset = interval.mul_f64(i as f64 / cfg.connections as f64);
                    (interval, offset)
                }),
            };
            tokio::spawn(task.run())
        })
        .collect();
    let mut stats = Stats::new();
    let mut warmup_requests = 0;
    let mut last = measure_start;
    for t in tasks {
        let out = t.await.map_err(|e| BenchError::Other(e.to_string()))?;
        stats.merge(&out.stats);
        warmup_requests += out.warmup_requests;
        if let Some(l) = out.last_answer {
            last = last.max(l);
        }
    }
    Ok(RunResult {
        prefill,
        measured: PhaseResult {
            stats,
            elapsed: last.saturating_duration_since(measure_start),
        },
        warmup_requests,
        stopped: cfg.stop.load(Ordering::Relaxed),
    })
}

/// PUTs every key once; connection `i` of `n` takes keys `i, i+n, ...`.
async fn prefill_phase(
    cfg: &BenchConfig,
    shared: &Arc<Shared>,
    conns: Vec<Option<Conn>>,
) -> Result<(PhaseResult, Vec<Option<Conn>>), BenchError> {
    let start = Instant::now();
    let n = conns.len() as u64;
    let keys = cfg.workload.spec.keys;
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, mut conn)| {
            let target = cfg.target.clone();
            let mut generator = Generator::new(cfg.workload.clone(), cfg.seed, i as u64);
            let shared = shared.clone();
            let stop = cfg.stop.clone();
            let timeout = cfg.timeout;
            tokio::spawn(async move {
                let mut stats = Stats::new();
                let mut last = None;
                let mut key = i as u64;
                while key < keys && !stop.load(Ordering::Relaxed) {
                    let Some(c) = usable(&mut conn, &target, &mut stats, true, &shared).await
                    else {
                        key += n;
                        continue;
                    };
                    let op = generator.prefill_op(key);
                    let class = op.class;
                    let t0 = Instant::now();
                    match c.send_op(&target, op, timeout).await {
                        Ok(status) => stats.record(class, t0.elapsed(), status),
                        Err(kind) => {
                            stats.record_error(kind);
                            shared.errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    last = Some(Instant::now());
                    shared.done.fetch_add(1, Ordering::Relaxed);
                    key += n;
                }
                (stats, last, conn)
            })
        })
        .collect();
    let mut stats = Stats::new();
    let mut last = start;
    let mut back = Vec::with_capacity(tasks.len());
    for t in tasks {
        let (s, l, conn) = t.await.map_err(|e| BenchError::Other(e.to_string()))?;
        stats.merge(&s);
        if let Some(l) = l {
            last = last.max(l);
        }
        back.push(conn);
    }
    Ok((
        PhaseResult {
            stats,
            elapsed: last - start,
        },
        back,
    ))
}

/// The connection to use, made anew when it is missing or broken. A failed
/// connect counts as one request that got no answer (when `counted`) and
/// waits a little before the next try.
async fn usable<'a>(
    conn: &'a mut Option<Conn>,
    target: &Target,
    stats: &mut Stats,
    counted: bool,
    shared: &Shared,
) -> Option<&'a mut Conn> {
    if conn.as_ref().is_none_or(Conn::is_broken) {
        *conn = None;
        match Conn::connect(target).await {
            Ok(c) => *conn = Some(c),
            Err(_) => {
                if counted {
                    stats.record_error(ErrorKind::Connect);
                }
                shared.errors.fetch_add(1, Ordering::Relaxed);
                shared.done.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
                return None;
            }
        }
    }
    conn.as_mut()
}

struct MainTask {
    target: Target,
    generator: Generator,
    conn: Option<Conn>,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    observer: Option<Arc<dyn Observer>>,
    timeout: Option<Duration>,
    start: Instant,
    measure_start: Instant,
    end: Option<Instant>,
    max_requests: Option<u64>,
    /// Open loop: the interval between this connection's sends, and the
    /// offset of its first.
    schedule: Option<(Duration, Duration)>,
}

struct TaskOutput {
    stats: Stats,
    warmup_requests: u64,
    last_answer: Option<Instant>,
}

impl MainTask {
    async fn run(mut self) -> TaskOutput {
        let mut stats = Stats::new();
        let mut warmup_requests = 0;
        let mut last_answer = None;
        let mut next_send = self.schedule.map(|(_, offset)| self.start + offset);
        loop {
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            let now = Instant::now();
            if self.end.is_some_and(|end| now >= end) {
                break;
            }
            let measured = now >= self.measure_start;
            if measured
                && let Some(max) = self.max_requests
                && self.shared.tickets.fetch_add(1, Ordering::Relaxed) >= max
            {
                break;
            }
            // Open loop: wait for this request's slot. When the slot has
            // already passed (the server kept the previous request past it),
            // latency counts from the slot, so that the server is charged
            // for the queueing it causes; otherwise from the actual send, so
            // that the timer's own lateness (about a millisecond) is not.
            let intended = match (&mut next_send, self.schedule) {
                (Some(slot), Some((interval, _))) => {
                    let t = *slot;
                    *slot += interval;
                    if t > now {
                        tokio::time::sleep_until(t.into()).await;
                        None
                    } else {
                        Some(t)
                    }
                }
                _ => None,
            };
            let Some(conn) = usable(
                &mut self.conn,
                &self.target,
                &mut stats,
                measured,
                &self.shared,
            )
            .await
            else {
                continue;
            };
            let op = self.generator.next_op();
            let class = op.class;
            let t0 = intended.unwrap_or_else(Instant::now);
            let result = conn.send_op(&self.target, op, self.timeout).await;
            let t1 = Instant::now();
            if measured && let Some(o) = &self.observer {
                o.observe(t1, class, result);
            }
            match result {
                Ok(status) if measured => {
                    stats.record(class, t1 - t0, status);
                    last_answer = Some(t1);
                }
                Ok(_) => warmup_requests += 1,
                Err(kind) => {
                    if measured {
                        stats.record_error(kind);
                        last_answer = Some(t1);
                    } else {
                        warmup_requests += 1;
                    }
                    self.shared.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            self.shared.done.fetch_add(1, Ordering::Relaxed);
            if measured {
                self.shared.measured.fetch_add(1, Ordering::Relaxed);
            }
        }
        TaskOutput {
            stats,
            warmup_requests,
            last_answer,
        }
    }
}

/// Prints a line on stderr about once a second: phase, rate over the last
/// second, the phase's requests so far, errors.
async fn progress(shared: Arc<Shared>, stop: Arc<AtomicBool>) {
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut last_done = 0;
    let mut last_at = Instant::now();
    loop {
        tick.tick().await;
        let now = Instant::now();
        let done = shared.done.load(Ordering::Relaxed);
        let (label, so_far) = match shared.phase.load(Ordering::Relaxed) {
            PHASE_CONNECT => ("connect", done),
            PHASE_PREFILL => ("prefill", done),
            PHASE_MAIN => match shared.measure_start.get() {
                Some(m) if now >= *m => ("run", shared.measured.load(Ordering::Relaxed)),
                _ => (
                    "warm-up",
                    done - shared.main_base.load(Ordering::Relaxed).min(done),
                ),
            },
            _ => return,
        };
        let rate = (done - last_done) as f64 / (now - last_at).as_secs_f64();
        eprintln!(
            "kvs-bench: {:>6.1}s  {:<8} {:>10.0} req/s  {:>10} requests  {} errors{}",
            (now - started).as_secs_f64(),
            label,
            rate,
            so_far,
            shared.errors.load(Ordering::Relaxed),
            if stop.load(Ordering::Relaxed) {
                "  (stopping)"
            } else {
                ""
            },
        );
        last_done = done;
        last_at = now;
    }
}
