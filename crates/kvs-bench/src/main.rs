use std::process::ExitCode;

use clap::Parser;
use kvs_bench::cli::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().run().await {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kvs-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
