//! A kvs-server child process for the replay and memory measurements: its
//! JSON log lines are read as they come, its address taken from the
//! "listening" line, its readiness polled over HTTP. (The tests' servers
//! are kvs-testkit's.)

use std::collections::VecDeque;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::Method;
use parking_lot::Mutex;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Notify;

use crate::client::{Conn, Target};

/// The readiness route.
pub const READYZ: &str = "/kvs/v1-0-0/readyz";

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot start {bin}: {source}")]
    Spawn {
        bin: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}; its last output:\n{tail}")]
    Failed { what: String, tail: String },
    #[error("cannot read /proc/{pid}/status: {source}")]
    Proc {
        pid: u32,
        #[source]
        source: std::io::Error,
    },
}

/// The kvs-server next to this program when there is one, or the one on
/// the PATH.
pub fn default_server_bin() -> PathBuf {
    const NAME: &str = "kvs-server";
    std::env::current_exe()
        .ok()
        .map(|exe| exe.with_file_name(NAME))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(NAME))
}

/// What the output reader collected.
#[derive(Default)]
struct Output {
    /// Parsed JSON log events, in order.
    events: Vec<Value>,
    /// The last lines, for error messages.
    tail: VecDeque<String>,
    /// Both output streams ended (the process exited).
    closed: usize,
}

const TAIL_LINES: usize = 30;

/// A running server, killed when dropped.
pub struct ServerProcess {
    child: Child,
    /// The program's file name, for messages.
    pub name: String,
    pub pid: u32,
    pub addr: SocketAddr,
    /// Just before the process was spawned.
    pub spawned_at: Instant,
    /// When its "listening" line was read.
    pub listening_at: Instant,
    output: Arc<Mutex<Output>>,
    news: Arc<Notify>,
}

impl ServerProcess {
    /// Starts `bin` with `--log-format json`, `--listen 127.0.0.1:0` unless
    /// `args` choose an address themselves, then `args`; waits for it to
    /// listen.
    pub async fn start(
        bin: &Path,
        args: &[OsString],
        timeout: Duration,
    ) -> Result<ServerProcess, ServerError> {
        let mut cmd = Command::new(bin);
        if !args.iter().any(|a| a == "--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        cmd.args(["--log-format", "json"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let spawned_at = Instant::now();
        let mut child = cmd.spawn().map_err(|source| ServerError::Spawn {
            bin: bin.display().to_string(),
            source,
        })?;
        let pid = child.id().unwrap_or(0);
        let output = Arc::new(Mutex::new(Output::default()));
        let news = Arc::new(Notify::new());
        if let Some(out) = child.stdout.take() {
            tokio::spawn(read_lines(out, output.clone(), news.clone()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(read_lines(err, output.clone(), news.clone()));
        }
        let name = bin.file_name().map_or_else(
            || bin.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let mut server = ServerProcess {
            child,
            name,
            pid,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            spawned_at,
            listening_at: spawned_at,
            output,
            news,
        };
        let listening = server.wait_event("listening", timeout).await?;
        let addr = listening
            .get("addr")
            .and_then(Value::as_str)
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| server.failed("the \"listening\" line has no address"))?;
        server.addr = addr;
        server.listening_at = Instant::now();
        Ok(server)
    }

    /// The fields of the first log event whose message is `message`,
    /// waiting for it up to `timeout`.
    pub async fn wait_event(
        &self,
        message: &str,
        timeout: Duration,
    ) -> Result<serde_json::Map<String, Value>, ServerError> {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.news.notified();
            {
                let out = self.output.lock();
                if let Some(fields) = find_event(&out.events, message) {
                    return Ok(fields);
                }
                if out.closed >= 2 {
                    drop(out);
                    return Err(
                        self.failed(&format!("{} exited before logging {message:?}", self.name))
                    );
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(self.failed(&format!(
                    "{} did not log {message:?} within {timeout:?}",
                    self.name
                )));
            }
            let _ = tokio::time::timeout(deadline - now, notified).await;
        }
    }

    /// An error with the process's last output when it has exited (both its
    /// output streams ended).
    fn check_running(&self) -> Result<(), ServerError> {
        if self.output.lock().closed >= 2 {
            return Err(self.failed(&format!("{} exited", self.name)));
        }
        Ok(())
    }

    /// Polls kvs-server's `/readyz` every millisecond over one keep-alive
    /// connection until it answers 200; returns when that answer came.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<Instant, ServerError> {
        let target = Target::addr(self.addr);
        let deadline = Instant::now() + timeout;
        let mut conn: Option<Conn> = None;
        while Instant::now() < deadline {
            if conn.as_ref().is_none_or(Conn::is_broken) {
                conn = Conn::connect(&target).await.ok();
            }
            if let Some(c) = conn.as_mut() {
                let answer = c
                    .send(
                        &target,
                        Method::GET,
                        READYZ.to_owned(),
                        Bytes::new(),
                        Some(Duration::from_secs(5)),
                    )
                    .await;
                if answer == Ok(200) {
                    return Ok(Instant::now());
                }
            }
            self.check_running()?;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Err(self.failed(&format!("{} was not ready within {timeout:?}", self.name)))
    }

    /// The server's resident set size and its peak, from /proc.
    pub fn memory(&self) -> Result<ProcMemory, ServerError> {
        ProcMemory::of(self.pid)
    }

    /// Kills the server (SIGKILL: no chance to flush anything) and waits for
    /// it to exit.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }

    fn failed(&self, what: &str) -> ServerError {
        let out = self.output.lock();
        ServerError::Failed {
            what: what.to_owned(),
            tail: out.tail.iter().cloned().collect::<Vec<_>>().join("\n"),
        }
    }
}

/// Memory figures of a process, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProcMemory {
    /// VmRSS: resident now.
    pub rss_bytes: u64,
    /// VmHWM: the peak resident size.
    pub peak_rss_bytes: u64,
}

impl ProcMemory {
    /// The figures of process `pid`.
    pub fn of(pid: u32) -> Result<ProcMemory, ServerError> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .map_err(|source| ServerError::Proc { pid, source })?;
        Ok(ProcMemory::parse(&status))
    }

    /// Reads `VmRSS` and `VmHWM` out of a /proc/PID/status text.
    pub fn parse(status: &str) -> ProcMemory {
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
                .map_or(0, |kb| kb * 1024)
        };
        ProcMemory {
            rss_bytes: field("VmRSS:"),
            peak_rss_bytes: field("VmHWM:"),
        }
    }
}

/// The `fields` of the first event whose `fields.message` is `message`.
fn find_event(events: &[Value], message: &str) -> Option<serde_json::Map<String, Value>> {
    events.iter().find_map(|e| {
        let fields = e.get("fields")?.as_object()?;
        (fields.get("message")?.as_str()? == message).then(|| fields.clone())
    })
}

async fn read_lines(stream: impl AsyncRead + Unpin, output: Arc<Mutex<Output>>, news: Arc<Notify>) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        {
            let mut out = output.lock();
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && v.get("fields").is_some()
            {
                out.events.push(v);
            }
            if out.tail.len() == TAIL_LINES {
                out.tail.pop_front();
            }
            out.tail.push_back(line);
        }
        news.notify_waiters();
    }
    output.lock().closed += 1;
    news.notify_waiters();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_status() {
        let status = "Name:\tkvs-server\nVmPeak:\t  999 kB\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\nThreads:\t3\n";
        assert_eq!(
            ProcMemory::parse(status),
            ProcMemory {
                rss_bytes: 1024 * 1024,
                peak_rss_bytes: 2048 * 1024
            }
        );
        assert_eq!(ProcMemory::parse(""), ProcMemory::default());
    }

    #[test]
    fn finds_log_events_by_message() {
        let events: Vec<Value> = [
            r#"{"timestamp":"t","level":"INFO","fields":{"message":"listening","addr":"127.0.0.1:4000"},"target":"x"}"#,
            r#"{"timestamp":"t","level":"INFO","fields":{"message":"replayed the transaction log; ready","records":5,"took_ms":12},"target":"x"}"#,
        ]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
        let f = find_event(&events, "replayed the transaction log; ready").unwrap();
        assert_eq!(f["records"], 5);
        assert_eq!(f["took_ms"], 12);
        assert_eq!(
            find_event(&events, "listening").unwrap()["addr"],
            "127.0.0.1:4000"
        );
        assert!(find_event(&events, "stopped").is_none());
    }
}
