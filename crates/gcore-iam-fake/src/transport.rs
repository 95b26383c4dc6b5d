//! Faults that live below HTTP: a body cut short and a connection reset.
//!
//! hyper will not knowingly send a short body: when a body ends before its Content-Length it
//! drops the connection without flushing what it had buffered, so the client would see the
//! same thing as a reset. To cut a body after real bytes went out, the fake's server wraps
//! each socket, and the handler tells that wrapper (reached through `ConnectInfo`) where to cut.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use super::lock;

/// A TCP listener whose connections can be sabotaged by the handler serving them.
pub(crate) struct FaultListener(pub TcpListener);

impl Listener for FaultListener {
    type Io = FaultyStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // axum's own TcpListener impl already logs and retries accept errors.
        let (stream, addr) = Listener::accept(&mut self.0).await;
        let stream = FaultyStream { inner: stream, sabotage: Connection::default() };
        (stream, addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// The handler's grip on the connection its request came in on.
#[derive(Clone, Debug, Default)]
pub(crate) struct Connection(Arc<Mutex<Sabotage>>);

impl Connection {
    /// The next write fails and the socket closes with a TCP reset.
    pub fn reset(&self) {
        *lock(&self.0) = Sabotage::Reset;
    }

    /// The next response goes out with its head and `keep` bytes of body, then the connection
    /// closes.
    pub fn cut_next_body_after(&self, keep: usize) {
        *lock(&self.0) = Sabotage::CutAfterHead { keep, matched: 0 };
    }
}

impl Connected<IncomingStream<'_, FaultListener>> for Connection {
    fn connect_info(stream: IncomingStream<'_, FaultListener>) -> Self {
        stream.io().sabotage.clone()
    }
}

/// A socket that obeys its [`Connection`]'s sabotage when written to.
pub(crate) struct FaultyStream {
    inner: TcpStream,
    sabotage: Connection,
}

impl AsyncRead for FaultyStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for FaultyStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let mut sabotage = lock(&this.sabotage.0);
        if matches!(*sabotage, Sabotage::Reset) {
            // Zero linger turns the close hyper does next into a RST, as a crashed peer sends.
            if let Err(error) = this.inner.set_zero_linger() {
                tracing::debug!(%error, "fake API: cannot set SO_LINGER for a reset");
            }
            return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
        }
        let allowed = sabotage.allowance(buf);
        if allowed == 0 && !buf.is_empty() {
            return Poll::Ready(Err(io::ErrorKind::ConnectionAborted.into()));
        }
        let written = Pin::new(&mut this.inner).poll_write(cx, &buf[..allowed]);
        if let Poll::Ready(Ok(n)) = written {
            sabotage.consume(&buf[..n]);
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// What to do to the bytes hyper writes. Pure, so the cutting arithmetic is unit-tested.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Sabotage {
    #[default]
    None,
    Reset,
    /// Looking for the blank line that ends the response head; `matched` bytes of it seen.
    CutAfterHead {
        keep: usize,
        matched: usize,
    },
    /// In the body; `keep` more bytes may pass.
    CutInBody {
        keep: usize,
    },
}

const HEAD_END: &[u8] = b"\r\n\r\n";

impl Sabotage {
    /// How many leading bytes of `buf` may be written.
    fn allowance(self, buf: &[u8]) -> usize {
        match self {
            Self::None => buf.len(),
            Self::Reset => 0,
            Self::CutInBody { keep } => keep.min(buf.len()),
            Self::CutAfterHead { keep, matched } => match head_end(matched, buf) {
                Ok(body_start) => body_start.saturating_add(keep).min(buf.len()),
                Err(_) => buf.len(),
            },
        }
    }

    /// Accounts for `written` having gone out.
    fn consume(&mut self, written: &[u8]) {
        *self = match *self {
            Self::CutInBody { keep } => Self::CutInBody { keep: keep.saturating_sub(written.len()) },
            Self::CutAfterHead { keep, matched } => match head_end(matched, written) {
                Ok(body_start) => Self::CutInBody { keep: keep.saturating_sub(written.len() - body_start) },
                Err(matched) => Self::CutAfterHead { keep, matched },
            },
            other => other,
        };
    }
}

/// Where the body starts in `buf`, given `matched` bytes of the head's end already seen; or,
/// if the head does not end in `buf`, how much of its end has been seen by the last byte.
fn head_end(mut matched: usize, buf: &[u8]) -> Result<usize, usize> {
    for (i, byte) in buf.iter().enumerate() {
        matched = if *byte == HEAD_END[matched] { matched + 1 } else { usize::from(*byte == b'\r') };
        if matched == HEAD_END.len() {
            return Ok(i + 1);
        }
    }
    Err(matched)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_lets_the_head_and_keep_bytes_through_in_one_write() {
        let response = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n0123456789";
        let head = response.len() - 10;
        let mut sabotage = Sabotage::CutAfterHead { keep: 4, matched: 0 };
        assert_eq!(sabotage.allowance(response), head + 4);
        sabotage.consume(&response[..head + 4]);
        assert_eq!(sabotage, Sabotage::CutInBody { keep: 0 });
        assert_eq!(sabotage.allowance(&response[head + 4..]), 0);
    }

    #[test]
    fn cut_finds_a_head_end_split_across_writes() {
        let mut sabotage = Sabotage::CutAfterHead { keep: 3, matched: 0 };
        let first = b"HTTP/1.1 200 OK\r\nx: y\r\n\r";
        assert_eq!(sabotage.allowance(first), first.len());
        sabotage.consume(first);
        assert_eq!(sabotage, Sabotage::CutAfterHead { keep: 3, matched: 3 });
        let second = b"\nabcdef";
        assert_eq!(sabotage.allowance(second), 4);
        // A short write by the socket still keeps the count right.
        sabotage.consume(&second[..2]);
        assert_eq!(sabotage, Sabotage::CutInBody { keep: 2 });
    }

    #[test]
    fn reset_allows_nothing_and_none_everything() {
        assert_eq!(Sabotage::Reset.allowance(b"abc"), 0);
        assert_eq!(Sabotage::None.allowance(b"abc"), 3);
    }
}
