//! What the binaries say of themselves: one version, the workspace's, and
//! a start-up summary that names only what the backend has.

use kvs_testkit::process::run_to_exit;
use kvs_testkit::stack::Stack;

#[test]
fn both_servers_print_the_workspace_version() {
    for name in ["kvs-server", "txn-server"] {
        let (status, out) = run_to_exit(&kvs_testkit::binary(name), &["--version".to_owned()]);
        assert!(status.success(), "{name} --version: {out}");
        assert_eq!(
            out.trim(),
            format!("{name} {}", env!("CARGO_PKG_VERSION")),
            "{name}"
        );
    }
}

/// The fields of kvs-server's "ready" line in `output`.
fn ready_line(output: &str) -> serde_json::Map<String, serde_json::Value> {
    output
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"] == "replayed the transaction log; ready")
        .and_then(|v| v["fields"].as_object().cloned())
        .unwrap_or_else(|| panic!("no ready line in:\n{output}"))
}

#[tokio::test]
async fn the_replay_summary_names_only_what_the_backend_has() {
    let stack = Stack::file().await;
    let remote = ready_line(&stack.kvs.as_ref().unwrap().output());
    assert!(remote.contains_key("records") && remote.contains_key("keys"));
    for field in ["bytes", "torn_bytes", "corrupt_bytes"] {
        assert!(!remote.contains_key(field), "{field} in {remote:?}");
    }

    let dir = tempfile::tempdir().unwrap();
    let embedded = kvs_testkit::process::KvsProcess::start(
        &kvs_testkit::binary("kvs-server"),
        &["--data-dir".to_owned(), dir.path().display().to_string()],
    )
    .await;
    let file = ready_line(&embedded.output());
    for field in ["records", "keys", "bytes", "torn_bytes", "corrupt_bytes"] {
        assert!(file.contains_key(field), "{field} missing from {file:?}");
    }
}
