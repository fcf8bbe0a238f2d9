//! The real kvs-server binary as a child process.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct ServerProcess {
    child: Child,
    pub base: String,
    output: Arc<Mutex<Vec<String>>>,
}

fn command(data_dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kvs-server"));
    cmd.args([
        "--listen",
        "127.0.0.1:0",
        "--log-format",
        "json",
        "--data-dir",
    ])
    .arg(data_dir)
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

impl ServerProcess {
    /// Starts the binary and waits for it to listen and be ready.
    pub async fn start(data_dir: &Path, args: &[&str]) -> ServerProcess {
        let mut child = command(data_dir, args)
            .spawn()
            .expect("cannot start kvs-server");
        let output = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let lines = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = listening_addr(&line) {
                    let _ = addr_tx.send(addr);
                }
                lines.lock().unwrap().push(line);
            }
        });
        let stderr = child.stderr.take().unwrap();
        let lines = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        let addr = match addr_rx.recv_timeout(Duration::from_secs(20)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "kvs-server did not listen; output:\n{}",
                    output.lock().unwrap().join("\n")
                );
            }
        };
        let server = ServerProcess {
            child,
            base: format!("http://{addr}/kvs/v1-0-0"),
            output,
        };
        super::helpers::wait_ready(&reqwest::Client::new(), &server.base).await;
        server
    }

    pub fn output(&self) -> String {
        self.output.lock().unwrap().join("\n")
    }

    /// kill -9: no chance to flush anything.
    pub fn kill(mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
    }

    /// SIGTERM, then wait for a graceful exit.
    pub fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
        assert!(sent.success());
        self.child.wait().expect("wait")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary expecting it to stop by itself (a refused start-up);
/// returns its exit status and everything it printed.
pub fn run_to_exit(data_dir: &Path, args: &[&str]) -> (ExitStatus, String) {
    let out = command(data_dir, args)
        .output()
        .expect("cannot start kvs-server");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status, text)
}
