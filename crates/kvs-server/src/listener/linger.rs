//! A connection closed with its client still sending (an answer given
//! before the body was read: a 413, a refused token) lingers before it
//! goes.
//!
//! Closing a socket with unread bytes in its receive buffer makes the
//! kernel answer with a reset, and a reset can destroy the answer the
//! client has not read yet: it sees a broken connection instead of the
//! 413. So at shutdown only the sending side is closed first (the client
//! gets the whole answer, then its end), and what the client still sends
//! is read and dropped until it closes its side too, or sends nothing for
//! [`LINGER_IDLE`] (an idle keep-alive connection, whose client sends
//! nothing more, goes after that short wait), for at most [`LINGER`] and
//! [`LINGER_BYTES`].

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// How long a closing connection waits for its client to stop sending.
const LINGER: Duration = Duration::from_secs(2);
/// How long it waits for the next bytes of a client still sending.
const LINGER_IDLE: Duration = Duration::from_millis(100);
/// The most bytes it reads meanwhile: past them, the reset it would have
/// sent at once is sent.
const LINGER_BYTES: usize = 8 << 20;

pub(super) struct Linger<S> {
    inner: S,
    state: State,
}

enum State {
    Open,
    /// Our side is closed; dropping what the client still sends.
    Draining {
        /// When it stops waiting, whatever the client does.
        end: Instant,
        /// When it stops unless more bytes come first.
        quiet: Pin<Box<Sleep>>,
        left: usize,
    },
    Closed,
}

impl<S> Linger<S> {
    pub(super) fn new(inner: S) -> Linger<S> {
        Linger {
            inner,
            state: State::Open,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Linger<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Linger<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                State::Open => {
                    ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
                    this.state = State::Draining {
                        end: Instant::now() + LINGER,
                        quiet: Box::pin(tokio::time::sleep(LINGER_IDLE)),
                        left: LINGER_BYTES,
                    };
                }
                State::Draining { end, quiet, left } => {
                    let mut scratch = [0u8; 16 << 10];
                    let mut buf = ReadBuf::new(&mut scratch);
                    match Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                        Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                            *left = left.saturating_sub(buf.filled().len());
                            let next = (Instant::now() + LINGER_IDLE).min(*end);
                            quiet.as_mut().reset(next);
                            if *left == 0 {
                                this.state = State::Closed;
                            }
                        }
                        // The client closed its side too, or broke off:
                        // nothing left to save.
                        Poll::Ready(_) => this.state = State::Closed,
                        Poll::Pending => {
                            ready!(quiet.as_mut().poll(cx));
                            this.state = State::Closed;
                        }
                    }
                }
                State::Closed => return Poll::Ready(Ok(())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    #[tokio::test]
    async fn an_answer_given_before_the_upload_ends_reaches_the_client() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Answers after 10 bytes of a 4 MiB upload, and closes, as hyper
        // does after an early answer.
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut conn = Linger::new(tcp);
            let mut head = [0u8; 10];
            conn.read_exact(&mut head).await.unwrap();
            conn.write_all(b"HTTP/1.1 413 Payload Too Large\r\n\r\n")
                .await
                .unwrap();
            conn.shutdown().await.unwrap();
        });
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(&vec![b'x'; 4 << 20]).await.unwrap();
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 413"), "{answer:?}");
        drop(client);
        server.await.unwrap();
    }
}
