//! A real binary as a child process, told to listen on port 0 and log JSON;
//! its address is read from its `listening` log line. With `TEST_LOG` set
//! (see [`kvs_service::telemetry::test_log`]), what it prints goes to the
//! test's stderr as well, and a level other than `1` is the one it runs at.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use kvs_service::telemetry::test_log;

use crate::http::Api;

pub struct ServerProcess {
    child: Child,
    /// The `host:port` it listens on.
    pub addr: String,
    output: Arc<Mutex<Vec<String>>>,
    /// The threads collecting its stdout and stderr.
    readers: Vec<JoinHandle<()>>,
}

/// `args` after `--log-format json`, and `--listen 127.0.0.1:0` unless
/// they choose an address themselves.
fn command(binary: &Path, args: &[String]) -> Command {
    let mut cmd = Command::new(binary);
    if !args.iter().any(|a| a == "--listen") {
        cmd.args(["--listen", "127.0.0.1:0"]);
    }
    // Through the environment, so that a test's own `--log-level` wins.
    if let Some(level) = test_log().filter(|l| l != "info") {
        cmd.env("KVS_LOG_LEVEL", &level)
            .env("TXN_LOG_LEVEL", &level);
    }
    cmd.args(["--log-format", "json"])
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// The address in a JSON log line that announces the listener.
fn listening_addr(line: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = &v["fields"];
    (fields["message"] == "listening").then(|| fields["addr"].as_str().map(str::to_owned))?
}

/// Collects a pipe's lines on a thread of its own, which ends when the pipe
/// closes; sends the listening address when it appears. With `TEST_LOG`,
/// each line goes to stderr too, after `name`; the test harness captures it
/// with the test's own output.
fn collect(
    name: String,
    pipe: impl std::io::Read + Send + 'static,
    lines: Arc<Mutex<Vec<String>>>,
    addr: mpsc::Sender<String>,
) -> JoinHandle<()> {
    let echo = test_log().is_some();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if let Some(a) = listening_addr(&line) {
                let _ = addr.send(a);
            }
            if echo {
                eprintln!("[{name}] {line}");
            }
            lines.lock().unwrap().push(line);
        }
    })
}

impl ServerProcess {
    /// Starts `binary` with `args` and waits until it listens.
    pub fn start(binary: &Path, args: &[String]) -> ServerProcess {
        let mut child = command(binary, args)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let output = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = mpsc::channel();
        let name = binary.file_name().map_or_else(
            || binary.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let readers = vec![
            collect(
                name.clone(),
                child.stdout.take().unwrap(),
                output.clone(),
                addr_tx.clone(),
            ),
            collect(name, child.stderr.take().unwrap(), output.clone(), addr_tx),
        ];
        let addr = match addr_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "{} did not listen; output:\n{}",
                    binary.display(),
                    output.lock().unwrap().join("\n")
                );
            }
        };
        ServerProcess {
            child,
            addr,
            output,
            readers,
        }
    }

    /// Once it has exited: waits until its last lines are collected, so
    /// that what it printed on its way out is in [`ServerProcess::output`].
    fn read_to_end(&mut self) {
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }

    /// Everything it printed so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().join("\n")
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The `fields` of its JSON log events whose message is `message`, in
    /// order.
    pub fn events(&self, message: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
        self.output
            .lock()
            .unwrap()
            .iter()
            .filter_map(|line| {
                let v: serde_json::Value = serde_json::from_str(line).ok()?;
                let fields = v.get("fields")?.as_object()?;
                (fields.get("message")? == message).then(|| fields.clone())
            })
            .collect()
    }

    /// Sends the signal `name` (`STOP`, `CONT`...) and waits for nothing.
    pub fn signal(&self, name: &str) {
        let sent = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .unwrap_or_else(|e| panic!("kill -{name}: {e}"));
        assert!(sent.success(), "kill -{name} {}", self.child.id());
    }

    /// Its exit status, once it has stopped by itself.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.try_wait().expect("try_wait");
        if status.is_some() {
            self.read_to_end();
        }
        status
    }

    /// kill -9: no chance to flush anything.
    pub fn kill(mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
    }

    /// SIGTERM, then wait for a graceful exit.
    pub fn terminate(mut self) -> ExitStatus {
        self.sigterm();
        let status = self.child.wait().expect("wait");
        self.read_to_end();
        status
    }

    /// SIGTERM, then wait up to `limit` for it to exit; panics if it does
    /// not. Its output stays readable.
    pub async fn terminate_within(&mut self, limit: Duration) -> ExitStatus {
        self.sigterm();
        let mut status = None;
        crate::wait_until("the process to exit after SIGTERM", limit, || {
            status = self.child.try_wait().expect("wait");
            status.is_some()
        })
        .await;
        self.read_to_end();
        status.expect("it exited")
    }

    fn sigterm(&self) {
        self.signal("TERM");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `binary` expecting it to stop by itself (a refused start-up);
/// returns its exit status and everything it printed.
pub fn run_to_exit(binary: &Path, args: &[String]) -> (ExitStatus, String) {
    let out = command(binary, args)
        .output()
        .expect("cannot start the binary");
    (out.status, printed(&out))
}

/// [`run_to_exit`] for a binary that might not stop: one still running
/// after `limit` is killed, and the test fails with what it printed.
pub async fn run_to_exit_within(
    binary: &Path,
    args: &[String],
    limit: Duration,
) -> (ExitStatus, String) {
    let child = command(binary, args)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
    let pid = child.id().to_string();
    let mut waited = tokio::task::spawn_blocking(move || child.wait_with_output());
    let out = match tokio::time::timeout(limit, &mut waited).await {
        Ok(joined) => joined.expect("waiting for the binary").expect("wait"),
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
            let out = waited.await.expect("waiting for the binary").expect("wait");
            panic!(
                "{} did not stop by itself within {limit:?}; output:\n{}",
                binary.display(),
                printed(&out)
            );
        }
    };
    (out.status, printed(&out))
}

/// Everything a finished process printed, stdout then stderr.
fn printed(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A kvs-server process and its API.
pub struct KvsProcess {
    pub server: ServerProcess,
    pub api: Api,
}

impl KvsProcess {
    /// Starts kvs-server with `args` and waits until `/readyz` says ready.
    pub async fn start(binary: &Path, args: &[String]) -> KvsProcess {
        let server = ServerProcess::start(binary, args);
        let api = Api::new(format!("http://{}/kvs/v1-0-0", server.addr));
        wait_ready(&api, &server).await;
        KvsProcess { server, api }
    }

    pub fn output(&self) -> String {
        self.server.output()
    }

    pub fn kill(self) {
        self.server.kill()
    }

    pub fn terminate(self) -> ExitStatus {
        self.server.terminate()
    }
}

/// Polls `/readyz` until it answers 200.
async fn wait_ready(api: &Api, server: &ServerProcess) {
    for _ in 0..1500 {
        if let Ok(r) = api.client.get(api.url("/readyz")).send().await
            && r.status() == reqwest::StatusCode::OK
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "kvs-server at {} did not become ready within 30 s; output:\n{}",
        api.base,
        server.output()
    );
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// A process that prints a lot on its way out: more than a pipe holds,
    /// so its last lines are still in the pipe when it has exited.
    #[test]
    fn what_a_process_prints_on_its_way_out_is_in_its_output() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("server");
        std::fs::write(
            &script,
            "#!/bin/sh\n\
             trap 'seq 1 100000; exit 0' TERM\n\
             echo '{\"fields\":{\"message\":\"listening\",\"addr\":\"127.0.0.1:1\"}}'\n\
             while :; do sleep 0.01; done\n",
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let server = ServerProcess::start(&script, &[]);
        let output = Arc::clone(&server.output);
        assert!(server.terminate().success());
        let lines = output.lock().unwrap();
        assert_eq!(lines.len(), 100_001, "the listening line and 100000 more");
        assert_eq!(lines.last().map(String::as_str), Some("100000"));
    }
}
