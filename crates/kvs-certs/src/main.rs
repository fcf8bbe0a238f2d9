use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Writes a CA, a server and a client certificate for the mutual-TLS link
/// between kvs-server and txn-server: ca.crt, ca.key, server.crt,
/// server.key, client.crt, client.key.
#[derive(Parser)]
#[command(name = "kvs-certs", version)]
struct Args {
    /// Directory to write the six files into (created if missing).
    #[arg(long, default_value = "./certs")]
    out: PathBuf,
    /// A name or address the server certificate is valid for; repeat for
    /// more. kvs-server checks the name it is given by --txn-server-name.
    #[arg(long = "server-name", default_values_t = ["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()])]
    server_names: Vec<String>,
    /// Common name of the client certificate.
    #[arg(long, default_value = "kvs-server")]
    client_name: String,
    /// Days the certificates stay valid.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(i64).range(1..=36500))]
    days: i64,
    /// Replace certificates that already exist (otherwise it refuses).
    #[arg(long)]
    force: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let opts = kvs_certs::Options {
        server_names: args.server_names,
        client_name: args.client_name,
        days: args.days,
        force: args.force,
    };
    match kvs_certs::write(&args.out, &opts) {
        Ok(paths) => {
            for p in paths {
                println!("wrote {}", p.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kvs-certs: {e}");
            ExitCode::FAILURE
        }
    }
}
