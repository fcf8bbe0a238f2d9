use std::process::ExitCode;

use clap::Parser;
use tokio::net::TcpListener;
use txn_server::Config;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    if let Err(e) = kvs_service::telemetry::init(&config.log_level, config.log_format) {
        eprintln!("txn-server: {e}");
        return ExitCode::from(2);
    }
    if config.check_config {
        return match txn_server::check(&config) {
            Ok(()) => {
                println!("txn-server: configuration is valid");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("txn-server: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let listener = match TcpListener::bind(&config.listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(listen = %config.listen, error = %e, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    match txn_server::run(listener, config, kvs_service::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "txn-server stopped");
            ExitCode::FAILURE
        }
    }
}
