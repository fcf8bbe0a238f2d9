use std::process::ExitCode;

use clap::Parser;
use kvs_bench::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = cli.threads() {
        rt.worker_threads(n.max(1));
    }
    match rt.build() {
        Ok(rt) => rt.block_on(cli::run(cli)),
        Err(e) => {
            eprintln!("kvs-bench: cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}
