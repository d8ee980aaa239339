//! One HTTP exchange between Python (ASGI) and a wasi:http guest, with bounded buffers both ways.
//!
//! Python feeds the request body as the client sends it and takes the response as the guest writes it; the
//! guest runs on another thread (or inline, for a buffered exchange). At most `capacity` bytes wait in each
//! direction: the guest's reads wait for Python to feed, the guest's writes wait for Python to take (so a
//! slow client slows the guest instead of filling memory).
//!
//! Python never blocks here. It asks "is what I wait for there?" with [`HttpExchange::ready`], which, when the
//! answer is no, registers interest atomically; the next change of that kind calls the `notify` callable
//! (which wakes the event loop). Locks are never held while calling into Python, and Python holds them only
//! for a few field updates, so the two sides cannot deadlock on each other.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::errors::Fault;

/// Header pairs as Python sees them.
type PyPairs<'py> = Vec<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)>;

pub const READY_HEAD: u8 = 1;
pub const READY_BODY: u8 = 2;
pub const READY_SPACE: u8 = 4;
pub const READY_DONE: u8 = 8;

#[derive(Default)]
pub struct State {
    // -- request body (Python -> guest)
    req: VecDeque<Bytes>,
    req_size: usize,
    req_end: bool,
    req_error: Option<String>,
    req_waker: Option<Waker>,
    pub req_reader_gone: bool,
    // -- response (guest -> Python)
    pub status: Option<u16>,
    pub headers: Vec<(Bytes, Bytes)>,
    resp: VecDeque<Bytes>,
    resp_size: usize,
    resp_end: bool,
    pub trailers: Option<Vec<(Bytes, Bytes)>>,
    resp_waker: Option<Waker>,
    client_gone: bool,
    // -- the whole exchange
    pub failure: Option<Fault>,
    /// The guest's call failed (its fault is recorded when the call is over): the body cannot be complete.
    guest_failed: bool,
    done: bool,
    interest: u8,
}

pub struct Shared {
    state: Mutex<State>,
    /// Bytes that may wait in each direction; None: unbounded (a buffered exchange).
    capacity: Option<usize>,
    notify: Option<Py<PyAny>>,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wake Python if it registered interest in any of `what` (call with the lock released).
    fn wake_python(&self, what: u8) {
        let fire = {
            let mut s = self.lock();
            if s.interest & what != 0 || (s.done && s.interest != 0) {
                s.interest = 0;
                true
            } else {
                false
            }
        };
        if fire {
            if let Some(notify) = &self.notify {
                Python::attach(|py| {
                    if let Err(e) = notify.call0(py) {
                        e.write_unraisable(py, None);
                    }
                });
            }
        }
    }

    fn room(&self, size: usize) -> bool {
        self.capacity.is_none_or(|cap| size < cap)
    }

    // -- guest side ------------------------------------------------------------------------------------------

    pub fn set_head(&self, status: u16, headers: Vec<(Bytes, Bytes)>) {
        {
            let mut s = self.lock();
            s.status = Some(status);
            s.headers = headers;
        }
        self.wake_python(READY_HEAD);
    }

    /// Queue a response chunk; `Pending` (waker stored) while the buffer is full and the client is there.
    pub fn poll_push(&self, cx: &mut Context<'_>, chunk: &mut Option<Bytes>) -> Poll<bool> {
        let pushed = {
            let mut s = self.lock();
            if s.client_gone {
                return Poll::Ready(false);
            }
            if !self.room(s.resp_size) {
                s.resp_waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            if let Some(c) = chunk.take() {
                s.resp_size += c.len();
                s.resp.push_back(c);
            }
            true
        };
        if pushed {
            self.wake_python(READY_BODY);
        }
        Poll::Ready(true)
    }

    pub fn end_response(&self, trailers: Option<Vec<(Bytes, Bytes)>>) {
        {
            let mut s = self.lock();
            s.resp_end = true;
            s.trailers = trailers;
        }
        self.wake_python(READY_BODY);
    }

    pub fn guest_failed(&self) {
        self.lock().guest_failed = true;
    }

    pub fn client_gone(&self) -> bool {
        self.lock().client_gone
    }

    /// Record the end of the exchange (with its failure, if any) and wake Python whatever it waits for.
    pub fn finish(&self, failure: Option<Fault>) {
        {
            let mut s = self.lock();
            if s.done {
                return;
            }
            if s.failure.is_none() {
                s.failure = failure;
            }
            s.done = true;
            s.req_reader_gone = true;
            s.req.clear();
            s.req_size = 0;
        }
        self.wake_python(READY_HEAD | READY_BODY | READY_SPACE | READY_DONE);
    }

    pub fn is_done(&self) -> bool {
        self.lock().done
    }
}

/// The request body as the guest reads it.
pub struct RequestBody {
    shared: Arc<Shared>,
}

impl RequestBody {
    pub fn new(shared: Arc<Shared>) -> RequestBody {
        RequestBody { shared }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let shared = self.shared.clone();
        let out = {
            let mut s = shared.lock();
            if let Some(chunk) = s.req.pop_front() {
                s.req_size -= chunk.len();
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            } else if let Some(err) = s.req_error.take() {
                s.req_end = true;
                Poll::Ready(Some(Err(wasmtime_wasi_http::Error::InternalError(Some(
                    err,
                )))))
            } else if s.req_end {
                Poll::Ready(None)
            } else {
                s.req_waker = Some(cx.waker().clone());
                Poll::Pending
            }
        };
        if matches!(out, Poll::Ready(Some(Ok(_)))) {
            shared.wake_python(READY_SPACE);
        }
        out
    }

    fn is_end_stream(&self) -> bool {
        let s = self.shared.lock();
        s.req_end && s.req.is_empty() && s.req_error.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        let mut s = self.shared.lock();
        s.req_reader_gone = true;
        s.req.clear();
        s.req_size = 0;
        drop(s);
        self.shared.wake_python(READY_SPACE);
    }
}

/// The Python side of an exchange.
#[pyclass(frozen, module = "airssys_web._native")]
pub struct HttpExchange {
    pub shared: Arc<Shared>,
    pub method: String,
    pub scheme: String,
    pub authority: Option<String>,
    pub path_with_query: String,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
}

#[pymethods]
impl HttpExchange {
    /// `capacity`: bytes that may wait in each direction (None: collect everything, for a buffered call);
    /// `notify`: called (from any thread) when something Python registered interest in happens.
    #[new]
    #[pyo3(signature = (method, path_with_query, headers, *, scheme="http", authority=None, capacity=None, notify=None))]
    fn new(
        method: String,
        path_with_query: String,
        headers: Vec<(Vec<u8>, Vec<u8>)>,
        scheme: &str,
        authority: Option<String>,
        capacity: Option<usize>,
        notify: Option<Py<PyAny>>,
    ) -> HttpExchange {
        HttpExchange {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                capacity,
                notify,
            }),
            method,
            scheme: scheme.to_owned(),
            authority,
            path_with_query,
            headers,
        }
    }

    /// Add a chunk of the request body (always accepted; check `space()` before reading more from the client).
    fn feed(&self, chunk: Vec<u8>) {
        let waker = {
            let mut s = self.shared.lock();
            if s.req_end || s.req_reader_gone {
                return;
            }
            if !chunk.is_empty() {
                s.req_size += chunk.len();
                s.req.push_back(Bytes::from(chunk));
            }
            s.req_waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// The request body is complete; with `error`, it broke (the guest's read fails with that message).
    #[pyo3(signature = (error=None))]
    fn end_request(&self, error: Option<String>) {
        let waker = {
            let mut s = self.shared.lock();
            if s.req_end {
                return;
            }
            match error {
                Some(e) => s.req_error = Some(e),
                None => s.req_end = true,
            }
            s.req_waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Bytes of request body the guest can take now without exceeding the capacity.
    fn space(&self) -> usize {
        let s = self.shared.lock();
        match self.shared.capacity {
            None => usize::MAX,
            Some(cap) => cap.saturating_sub(s.req_size),
        }
    }

    /// True if any of `what` (READY_HEAD, READY_BODY, READY_SPACE, READY_DONE) holds, or the exchange is over;
    /// otherwise
    /// register interest (the next such change calls `notify`) and return False.
    fn ready(&self, what: u8) -> bool {
        let mut s = self.shared.lock();
        let head = s.status.is_some() || s.failure.is_some();
        let body = !s.resp.is_empty() || s.resp_end;
        let space = s.req_reader_gone || self.shared.room(s.req_size);
        let hit = s.done
            || (what & READY_HEAD != 0 && head)
            || (what & READY_BODY != 0 && body)
            || (what & READY_SPACE != 0 && space);
        if !hit {
            s.interest |= what;
        }
        hit
    }

    /// `(status, headers)` once the guest set its response, else None.
    fn head<'py>(&self, py: Python<'py>) -> Option<(u16, PyPairs<'py>)> {
        let s = self.shared.lock();
        let status = s.status?;
        let headers = s
            .headers
            .iter()
            .map(|(k, v)| (PyBytes::new(py, k), PyBytes::new(py, v)))
            .collect();
        Some((status, headers))
    }

    /// Everything the guest wrote that Python has not taken yet.
    fn take<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let (data, waker) = {
            let mut s = self.shared.lock();
            let total = s.resp_size;
            s.resp_size = 0;
            let chunks = std::mem::take(&mut s.resp);
            let data = if chunks.len() == 1 {
                chunks.into_iter().next().unwrap_or_default()
            } else {
                let mut buf = Vec::with_capacity(total);
                chunks.iter().for_each(|c| buf.extend_from_slice(c));
                Bytes::from(buf)
            };
            (data, s.resp_waker.take())
        };
        if let Some(w) = waker {
            w.wake();
        }
        PyBytes::new(py, &data)
    }

    /// Bytes of response waiting to be taken.
    #[getter]
    fn buffered(&self) -> usize {
        self.shared.lock().resp_size
    }

    /// The guest finished its body (complete, not cut short).
    #[getter]
    fn body_complete(&self) -> bool {
        let s = self.shared.lock();
        s.resp_end && s.failure.is_none() && !s.guest_failed
    }

    #[getter]
    fn trailers<'py>(&self, py: Python<'py>) -> Option<PyPairs<'py>> {
        let s = self.shared.lock();
        s.trailers.as_ref().map(|t| {
            t.iter()
                .map(|(k, v)| (PyBytes::new(py, k), PyBytes::new(py, v)))
                .collect()
        })
    }

    /// The guest side is over (returned, failed or was cut off).
    #[getter]
    fn done(&self) -> bool {
        self.shared.is_done()
    }

    /// Raise the exchange's failure (a GuestFault), if it has one.
    fn raise_failure(&self) -> PyResult<()> {
        let failure = self.shared.lock().failure.clone();
        match failure {
            Some(f) => Err(f.into()),
            None => Ok(()),
        }
    }

    #[getter]
    fn failed(&self) -> bool {
        let s = self.shared.lock();
        s.failure.is_some() || s.guest_failed
    }

    /// End the exchange from Python's side (the guest never ran: no instance, a failed instantiation); Python
    /// keeps the reason. Wakes whatever waits on the exchange.
    fn abort(&self, message: String) {
        self.shared.finish(Some(Fault::closed(message)));
    }

    /// The client went away: the guest's next write fails and nothing more is buffered.
    fn close_client(&self) {
        let waker = {
            let mut s = self.shared.lock();
            s.client_gone = true;
            s.resp.clear();
            s.resp_size = 0;
            s.resp_waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}
