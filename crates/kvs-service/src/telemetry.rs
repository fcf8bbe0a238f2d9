//! Logging set-up.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber; `filter` is a level or a tracing filter.
pub fn init(filter: &str, format: LogFormat) -> Result<(), String> {
    let filter =
        EnvFilter::try_new(filter).map_err(|e| format!("bad log level {filter:?}: {e}"))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stdout().is_terminal()).init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}

/// `TEST_LOG`, for tests: `None` when unset or `0` (servers' logs are only
/// kept for the test to read); otherwise they go to the test's output too,
/// at this level or filter, `1` meaning the servers' default, `info`.
pub fn test_log() -> Option<String> {
    let v = std::env::var("TEST_LOG").ok()?;
    match v.as_str() {
        "0" => None,
        "1" => Some("info".to_owned()),
        _ => Some(v),
    }
}

/// For servers run inside a test: with [`test_log`], logs as text to the
/// test's output; otherwise nothing. A subscriber already installed stays.
pub fn init_for_tests() {
    let Some(filter) = test_log() else { return };
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|e| panic!("TEST_LOG={filter:?}: {e}"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .with_ansi(std::io::stdout().is_terminal())
        .try_init();
}
