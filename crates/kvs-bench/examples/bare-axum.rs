//! The plain HTTP ceiling of GET on this machine, for scripts/bench.sh: axum
//! and a `RwLock<HashMap>` with nothing else (no log, no revisions, no
//! middleware), holding the 100k keys `scripts/bench/kvs-get.lua` reads
//! under the same path, so that wrk measures it with the same script.
//!
//!     cargo run --release -p kvs-bench --example bare-axum -- 127.0.0.1:8080

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use bytes::Bytes;

type Table = Arc<RwLock<HashMap<String, Bytes>>>;

async fn read(State(table): State<Table>, Path(key): Path<String>) -> Result<Bytes, StatusCode> {
    let table = table.read().expect("no writer panics");
    table.get(&key).cloned().ok_or(StatusCode::NOT_FOUND)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listen = std::env::args().nth(1).unwrap_or("127.0.0.1:8080".into());
    let value = Bytes::from(vec![b'v'; 32]);
    let table: HashMap<String, Bytes> = (0..100_000)
        .map(|i| (format!("k{i:015}"), value.clone()))
        .collect();
    let app = Router::new()
        .route("/kvs/v1-0-0/str/{key}", get(read))
        .with_state(Arc::new(RwLock::new(table)));
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await
}
