//! The plain exposition as an HTTP body: its chunks handed to the connection one by one, with
//! the exact length known up front (so the response has a `Content-Length`).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// A plain body as shared chunks and their total length, counted once when the body is
/// assembled rather than at every scrape.
#[derive(Debug, Clone, Default)]
pub struct Chunks {
    parts: Arc<[Bytes]>,
    len: u64,
}

impl Chunks {
    pub fn new(parts: Vec<Bytes>) -> Self {
        let len = parts.iter().map(|c| c.len() as u64).sum();
        Chunks { parts: parts.into(), len }
    }

    /// The body in one buffer (tests, benchmarks).
    pub fn to_bytes(&self) -> Bytes {
        Bytes::from(self.parts.concat())
    }
}

/// A body made of shared chunks; cloning the list is a reference count.
#[derive(Debug)]
pub struct ChunkedBody {
    chunks: Arc<[Bytes]>,
    next: usize,
    remaining: u64,
}

impl ChunkedBody {
    pub fn new(chunks: &Chunks) -> Self {
        ChunkedBody { chunks: chunks.parts.clone(), next: 0, remaining: chunks.len }
    }
}

impl Body for ChunkedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        let Some(chunk) = this.chunks.get(this.next).cloned() else { return Poll::Ready(None) };
        this.next += 1;
        this.remaining -= chunk.len() as u64;
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}
