use clap::Parser;
use kvs_server::{Config, run};
use kvs_service::telemetry;
use tokio::net::TcpListener;

// Small size classes without per-block headers: a 16-byte key or a 32-byte
// value takes 16 or 32 bytes instead of glibc's 32 or 48 (see
// docs/benchmarks.md for the resident memory and throughput it buys).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = Config::parse();
    if let Err(e) = telemetry::init(&config.log_level, config.log_format) {
        eprintln!("kvs-server: {e}");
        return std::process::ExitCode::from(2);
    }
    let listener = match TcpListener::bind(&config.listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(listen = %config.listen, error = %e, "cannot listen");
            return std::process::ExitCode::FAILURE;
        }
    };
    match run(listener, config, kvs_service::shutdown_signal()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "kvs-server stopped");
            std::process::ExitCode::FAILURE
        }
    }
}
