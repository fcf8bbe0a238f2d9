//! A TCP relay between kvs-server and txn-server that can hold back
//! txn-server's answers: requests still arrive and are carried out, only the
//! answers wait, as on a link that fails after the commit.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Relay {
    /// `127.0.0.1:port`, for kvs-server's `--txn-addr`.
    pub addr: String,
    held: watch::Sender<bool>,
    accept: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// Relays every connection made to it to `upstream`.
    pub async fn start(upstream: String) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (held, _) = watch::channel(false);
        let answers = held.subscribe();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = TcpStream::connect(&upstream).await.unwrap();
                let (mut from_client, mut to_client) = client.into_split();
                let (mut from_server, mut to_server) = server.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut from_client, &mut to_server).await;
                    let _ = to_server.shutdown().await;
                });
                let mut held = answers.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0; 64 << 10];
                    while let Ok(n @ 1..) = from_server.read(&mut buf).await {
                        // What was read while held goes on only once released.
                        if held.wait_for(|h| !h).await.is_err()
                            || to_client.write_all(&buf[..n]).await.is_err()
                        {
                            break;
                        }
                    }
                    let _ = to_client.shutdown().await;
                });
            }
        });
        Relay { addr, held, accept }
    }

    /// From now on, txn-server's answers wait in the relay.
    pub fn hold_answers(&self) {
        self.held.send_replace(true);
    }

    /// Delivers what was held, and every answer after it.
    pub fn release_answers(&self) {
        self.held.send_replace(false);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
    }
}
