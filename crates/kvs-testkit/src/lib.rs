//! What the end-to-end tests stand on.
//!
//! - [`process`]: the real binaries as child processes on ephemeral ports.
//! - [`pg`]: a throwaway PostgreSQL cluster (or a database in the one that
//!   `KVS_TEST_DATABASE_URL` names).
//! - [`certs`]: a fresh CA with server and client certificates.
//! - [`http`]: the requests tests make of a kvs-server.
//! - [`stack`]: PostgreSQL (or a file), txn-server and kvs-server together,
//!   as the end-to-end suite and the soak start them.
//! - [`fake_txn`]: a txn-server that replays what a test scripts.
//! - [`watch`]: a watch stream (`GET /watch`) read event by event.

pub mod certs;
pub mod fake_txn;
pub mod http;
pub mod pg;
pub mod process;
pub mod stack;
pub mod watch;

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A binary of this workspace, from the target directory the running test
/// was built into. Panics, saying how to build it, when it is missing.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary in target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the workspace's binaries first (cargo build --workspace --bins), as scripts/test.sh does",
        path.display()
    );
    path
}

/// Waits until `done` says yes, checking every 20 ms; panics, naming
/// `what`, after `limit`. A test waits for what it needs, never for a
/// fixed time.
pub async fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
