use std::process::ExitCode;

use tokio::net::TcpListener;
use txn_server::config::{Invocation, ProbeArgs};
use txn_server::{Config, probe};

#[tokio::main]
async fn main() -> ExitCode {
    match Invocation::parse() {
        Invocation::Serve(config) => serve(config).await,
        Invocation::Health(args) => health(&args).await,
    }
}

async fn serve(config: Config) -> ExitCode {
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

/// Exits 0 only when the server answers SERVING.
async fn health(args: &ProbeArgs) -> ExitCode {
    match probe::check(args).await {
        Ok(status) => {
            let name = status.as_str_name();
            if status == probe::ServingStatus::Serving {
                println!("txn-server: {name}");
                ExitCode::SUCCESS
            } else {
                eprintln!("txn-server: {name}");
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("txn-server: {e}");
            ExitCode::FAILURE
        }
    }
}
