//! Guest stdout and stderr, collected per instance and handed to Python's logging after each call.
//!
//! Writes never block and never fail: past `LIMIT` bytes between two drains, the rest is counted and dropped
//! (a guest printing in a loop must not grow the host's memory). Python drains it with the GIL held, after the
//! guest call returned, so guest code never waits for the interpreter to log.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

const LIMIT: usize = 64 * 1024;

#[derive(Default)]
struct Buffers {
    chunks: Vec<(u8, Vec<u8>)>,
    size: usize,
    dropped: usize,
}

/// Both streams of one instance (cheap to clone; clones share the buffer).
#[derive(Clone, Default)]
pub struct Output {
    inner: Arc<Mutex<Buffers>>,
}

impl Output {
    pub fn stream(&self, which: u8) -> Sink {
        Sink {
            which,
            out: self.clone(),
        }
    }

    fn write(&self, which: u8, data: &[u8]) {
        let mut b = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let room = LIMIT.saturating_sub(b.size);
        let take = data.len().min(room);
        if take > 0 {
            b.size += take;
            match b.chunks.last_mut() {
                Some((w, buf)) if *w == which => buf.extend_from_slice(&data[..take]),
                _ => b.chunks.push((which, data[..take].to_vec())),
            }
        }
        b.dropped += data.len() - take;
    }

    /// Whether anything was written since the last drain (cheap: one uncontended lock).
    pub fn pending(&self) -> bool {
        let b = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        b.size > 0 || b.dropped > 0
    }

    /// Take everything written so far: (stream, text) pairs in order, stream 1 = stdout, 2 = stderr; and how
    /// many bytes were dropped past the limit.
    pub fn drain(&self) -> (Vec<(u8, String)>, usize) {
        let mut b = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let chunks = std::mem::take(&mut b.chunks);
        let dropped = std::mem::take(&mut b.dropped);
        b.size = 0;
        let text = chunks
            .into_iter()
            .map(|(w, v)| (w, String::from_utf8_lossy(&v).into_owned()))
            .collect();
        (text, dropped)
    }
}

/// One of the two streams, as WASI sees it.
#[derive(Clone)]
pub struct Sink {
    which: u8,
    out: Output,
}

impl IsTerminal for Sink {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Sink {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for Sink {
    async fn ready(&mut self) {}
}

impl OutputStream for Sink {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.out.write(self.which, &bytes);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }
    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(LIMIT)
    }
}

impl AsyncWrite for Sink {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.out.write(self.which, buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_caps_size() {
        let out = Output::default();
        let mut o = out.stream(1);
        let mut e = out.stream(2);
        o.write(Bytes::from_static(b"a")).unwrap();
        o.write(Bytes::from_static(b"b\n")).unwrap();
        e.write(Bytes::from_static(b"err\n")).unwrap();
        assert!(out.pending());
        let (chunks, dropped) = out.drain();
        assert_eq!(
            chunks,
            vec![(1, "ab\n".to_string()), (2, "err\n".to_string())]
        );
        assert_eq!(dropped, 0);
        assert!(!out.pending());
        o.write(Bytes::from(vec![b'x'; LIMIT + 10])).unwrap();
        let (chunks, dropped) = out.drain();
        assert_eq!(chunks[0].1.len(), LIMIT);
        assert_eq!(dropped, 10);
    }
}
