//! The plain exposition as an HTTP body: its chunks handed to the connection one by one, with
//! the exact length known up front (so the response has a `Content-Length`).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// A body made of shared chunks; cloning the list is a reference count.
#[derive(Debug)]
pub struct ChunkedBody {
    chunks: Arc<[Bytes]>,
    next: usize,
    remaining: u64,
}

impl ChunkedBody {
    pub fn new(chunks: Arc<[Bytes]>) -> Self {
        let remaining = chunks.iter().map(|c| c.len() as u64).sum();
        ChunkedBody { chunks, next: 0, remaining }
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
