"""``wasi:io`` for host-side streams: errors, pollables tied to real readiness, and input/output streams.

All state of one instance is guarded by its session's condition variable: the guest's thread waits on it (a
``blocking-*`` call, ``pollable.block``, ``poll``), and whoever makes something ready - the event loop feeding a
request body or draining a response, a thread finishing an outbound request - notifies it. Waits never outlast
the request's deadline: past it they return, the guest resumes, and epoch interruption stops it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from .codec import Trap
from .linking import Session

#: The most bytes one ``read`` hands the guest (a bigger ask gets less, as the WIT allows).
MAX_READ = 64 * 1024
#: Bytes a response (or request) body may buffer between guest and client before writers wait.
PIPE_CAPACITY = 256 * 1024

Result = tuple[str, Any]
OK_NONE: Result = ("ok", None)
CLOSED: Result = ("err", ("closed", None))


class IoSession(Session):
    """A :class:`Session` with the condition variable every wait of the instance uses."""

    def __init__(self) -> None:
        super().__init__()
        self.cond = threading.Condition(threading.RLock())
        self.deadline = float("inf")  # time.monotonic() after which waits give up

    def wait_for(self, ready: Callable[[], bool], wake_at: float | None = None,
                 cond: threading.Condition | None = None) -> bool:
        """Block until ``ready()`` (checked under ``cond``), ``wake_at`` or the deadline; return ``ready()``."""
        cond = cond or self.cond
        with cond:
            while not ready():
                limit = self.deadline if wake_at is None else min(wake_at, self.deadline)
                remaining = limit - time.monotonic()
                if remaining <= 0:
                    return ready()
                cond.wait(remaining)
            return True

    def notify(self) -> None:
        with self.cond:
            self.cond.notify_all()


class IoError:
    """``wasi:io/error.error``: a message, and the ``wasi:http`` error-code it stands for (if any)."""

    RESOURCE_ID = 1

    def __init__(self, message: str, code: Any = None) -> None:
        self.message = message
        self.code = code


class Pollable:
    """``wasi:io/poll.pollable``: ``ready()`` is evaluated under the session lock; timers give ``wake_at``."""

    RESOURCE_ID = 2
    __slots__ = ("ready", "wake_at")

    def __init__(self, ready: Callable[[], bool], wake_at: float | None = None) -> None:
        self.ready = ready
        self.wake_at = wake_at


def always() -> bool:
    return True


def poll(session: IoSession, pollables: list[Pollable]) -> list[int]:
    """``poll``: wait until at least one is ready; return the indexes of all that are."""
    if not pollables:
        raise Trap("poll needs at least one pollable")
    if len(pollables) > 0xFFFFFFFF:
        raise Trap("too many pollables")
    wake = [p.wake_at for p in pollables if p.wake_at is not None]
    wake_at = min(wake) if wake else None

    def timer_due() -> bool:
        return wake_at is not None and time.monotonic() >= wake_at

    while True:
        session.wait_for(lambda: timer_due() or any(p.ready() for p in pollables), wake_at)
        with session.cond:
            ready = [i for i, p in enumerate(pollables) if p.ready()]
        if ready or time.monotonic() >= session.deadline:
            return ready or [0]  # past the deadline: let the guest run into its interrupt


class Timer:
    """A pollable deadline (``monotonic-clock.subscribe-*``)."""

    def __init__(self, at: float) -> None:
        self.at = at

    def pollable(self) -> Pollable:
        at = self.at
        return Pollable(lambda: time.monotonic() >= at, at)


class Pipe:
    """A byte channel between two threads (guest and event loop), guarded by ``cond`` (the exchange's).

    ``capacity`` bounds what a writer may buffer (``None``: unbounded, used when nobody drains concurrently).
    ``on_change`` is called (under the lock) after every change, so the other side can be woken.
    """

    def __init__(self, cond: threading.Condition, capacity: int | None = PIPE_CAPACITY,
                 on_change: Callable[[], None] | None = None) -> None:
        self.cond = cond
        self.capacity = capacity
        self.chunks: deque[bytes] = deque()
        self.size = 0
        self.eof = False  # the writer finished
        self.error: IoError | None = None  # the writer failed
        self.reader_gone = False  # nobody will read any more: writes fail with closed
        self.total = 0  # bytes ever written
        self.on_change = on_change
        self.max_total: int | None = None  # bytes a writer may ever put (an outbound request body's cap)

    # both sides call these with the lock (``cond``) held
    def _changed(self) -> None:
        if self.cond._waiters:  # type: ignore[attr-defined]  # (CPython's Condition) nobody waits: skip the call
            self.cond.notify_all()
        if self.on_change is not None:
            self.on_change()

    def space(self) -> int:
        if self.capacity is None:
            return 1 << 30
        return max(0, self.capacity - self.size)

    def put(self, data: bytes) -> None:
        if data:
            self.chunks.append(data)
            self.size += len(data)
            self.total += len(data)
            self._changed()

    def finish(self, error: IoError | None = None) -> None:
        if not self.eof:
            self.eof = True
            self.error = error
            self._changed()

    def take(self, n: int) -> bytes:
        """Up to ``n`` buffered bytes (fewer if fewer are there)."""
        out: list[bytes] = []
        want = n
        chunks = self.chunks
        while chunks and want > 0:
            head = chunks[0]
            if len(head) <= want:
                out.append(chunks.popleft())
                want -= len(head)
            else:
                out.append(head[:want])
                chunks[0] = head[want:]
                want = 0
        got = n - want
        if got:
            self.size -= got
            self._changed()
        return out[0] if len(out) == 1 else b"".join(out)

    def take_all(self) -> bytes:
        return self.take(self.size)

    def close_reader(self) -> None:
        if not self.reader_gone:
            self.reader_gone = True
            self.chunks.clear()
            self.size = 0
            self._changed()

    # readiness, evaluated under the lock
    def readable(self) -> bool:
        return self.size > 0 or self.eof

    def writable(self) -> bool:
        return self.reader_gone or self.space() > 0


class InputStream:
    """``wasi:io/streams.input-stream`` over a :class:`Pipe` (a request or response body, or empty stdin)."""

    RESOURCE_ID = 3

    def __init__(self, session: IoSession, pipe: Pipe, on_drop: Callable[[], None] | None = None) -> None:
        self.session = session
        self.pipe = pipe
        self._on_drop = on_drop

    def read(self, n: int) -> Result:
        pipe = self.pipe
        with self.pipe.cond:
            if pipe.size:
                return "ok", pipe.take(min(n, MAX_READ))
            if pipe.eof:
                return ("err", ("last-operation-failed", pipe.error)) if pipe.error is not None else CLOSED
            return "ok", b""

    def blocking_read(self, n: int) -> Result:
        if n:
            self.session.wait_for(self.pipe.readable, cond=self.pipe.cond)
        return self.read(n)

    def skip(self, n: int) -> Result:
        got = self.read(n)
        return ("ok", len(got[1])) if got[0] == "ok" else got

    def blocking_skip(self, n: int) -> Result:
        got = self.blocking_read(n)
        return ("ok", len(got[1])) if got[0] == "ok" else got

    def subscribe(self) -> Pollable:
        return Pollable(self.pipe.readable)

    def drop(self) -> None:
        if self._on_drop is not None:
            self._on_drop()


class OutputStream:
    """``wasi:io/streams.output-stream`` into a :class:`Pipe` (a response or request body) or a log sink."""

    RESOURCE_ID = 4

    def __init__(self, session: IoSession, pipe: Pipe, limit: int | None = None,
                 on_drop: Callable[[], None] | None = None) -> None:
        self.session = session
        self.pipe = pipe
        self.limit = limit  # a declared content-length: writing past it fails
        self._on_drop = on_drop
        self.failed: IoError | None = None

    def _failure(self) -> Result | None:
        if self.failed is not None:
            return "err", ("last-operation-failed", self.failed)
        if self.pipe.reader_gone or self.pipe.eof:
            return CLOSED
        return None

    def check_write(self) -> Result:
        with self.pipe.cond:
            return self._failure() or ("ok", self.pipe.space())

    def write(self, data: bytes) -> Result:
        with self.pipe.cond:
            bad = self._failure()
            if bad is not None:
                return bad
            if len(data) > self.pipe.space():
                raise Trap("output-stream.write: wrote more than check-write permitted")
            cap = self.pipe.max_total
            if cap is not None and self.pipe.total + len(data) > cap:
                self.failed = IoError(f"the body is over the {cap}-byte cap", ("HTTP-request-body-size", None))
                return "err", ("last-operation-failed", self.failed)
            if self.limit is not None and self.pipe.total + len(data) > self.limit:
                from .error_codes import body_size_error
                self.failed = body_size_error(self.limit, self.pipe.total + len(data))
                return "err", ("last-operation-failed", self.failed)
            self.pipe.put(bytes(data))
            return OK_NONE

    def blocking_write_and_flush(self, data: bytes) -> Result:
        """Write everything (waiting for room as needed), then flush. Unlike wasmtime, more than 4096 bytes at
        once is accepted: it is written in pieces."""
        pipe = self.pipe
        if data:
            with pipe.cond:
                if len(data) <= pipe.space():  # the common case: room for all of it, no wait, one write
                    got = self.write(data)
                    return got if got[0] != "ok" else self._failure() or OK_NONE
        view = memoryview(data)
        session = self.session
        while view:
            session.wait_for(self.pipe.writable, cond=self.pipe.cond)
            with self.pipe.cond:
                bad = self._failure()
                if bad is not None:
                    return bad
                n = min(len(view), self.pipe.space())
                if not n:  # past the deadline: return to the guest, whose interrupt is due
                    return "err", ("last-operation-failed", IoError("deadline exceeded"))
                got = self.write(view[:n].tobytes())
                if got[0] != "ok":
                    return got
            view = view[n:]
        return self.blocking_flush()

    def flush(self) -> Result:
        with self.pipe.cond:
            return self._failure() or OK_NONE

    def blocking_flush(self) -> Result:
        """Bytes in the pipe are already the host's (as in wasmtime, where a body's channel is the sink)."""
        return self.flush()

    def subscribe(self) -> Pollable:
        return Pollable(self.pipe.writable)

    def write_zeroes(self, n: int) -> Result:
        return self.write(bytes(n))

    def blocking_write_zeroes_and_flush(self, n: int) -> Result:
        return self.blocking_write_and_flush(bytes(n))

    def splice(self, src: InputStream, n: int) -> Result:
        with self.pipe.cond:
            n = min(n, self.pipe.space())
        got = src.read(n)
        if got[0] != "ok":
            return got
        wrote = self.write(got[1])
        return ("ok", len(got[1])) if wrote[0] == "ok" else wrote

    def blocking_splice(self, src: InputStream, n: int) -> Result:
        self.session.wait_for(self.pipe.writable, cond=self.pipe.cond)
        got = src.blocking_read(min(n, max(1, self.pipe.space())))
        if got[0] != "ok":
            return got
        wrote = self.blocking_write_and_flush(got[1]) if len(got[1]) <= 4096 else self.write(got[1])
        return ("ok", len(got[1])) if wrote[0] == "ok" else wrote

    def drop(self) -> None:
        if self._on_drop is not None:
            self._on_drop()


class LogSink(Pipe):
    """A pipe that is never full and forwards every write to a logger (guest stdout/stderr)."""

    def __init__(self, logger: logging.Logger, level: int, tag: str, stream: str,
                 capture: list[str] | None = None) -> None:
        super().__init__(threading.Condition(threading.RLock()), capacity=None)
        self._capture = capture
        self._log = logger
        self._level = level
        self._prefix = f"[{tag} {stream}]"
        self._partial = b""

    def put(self, data: bytes) -> None:
        if self._capture is not None and len(self._capture) < 64:
            self._capture.append(data[:4096].decode("utf-8", "replace"))
        text = self._partial + data
        *lines, self._partial = text.split(b"\n")
        for line in lines:
            self._log.log(self._level, "%s %s", self._prefix, line.decode("utf-8", "replace"))
        if len(self._partial) > 8192:
            self._log.log(self._level, "%s %s", self._prefix, self._partial.decode("utf-8", "replace"))
            self._partial = b""


def io_functions() -> dict[str, dict[str, Callable[..., Any]]]:
    """Implementations of ``wasi:io/{error,poll,streams}`` by interface and function name."""

    def s(method: Callable[..., Any]) -> Callable[..., Any]:
        return lambda _session, obj, *args: method(obj, *args)

    return {
        "wasi:io/error": {"[method]error.to-debug-string": lambda _s, err: err.message},
        "wasi:io/poll": {
            "[method]pollable.ready": lambda session, p: _ready(session, p),
            "[method]pollable.block": lambda session, p: poll(session, [p]) and None,
            "poll": poll,
        },
        "wasi:io/streams": {
            "[method]input-stream.read": s(InputStream.read),
            "[method]input-stream.blocking-read": s(InputStream.blocking_read),
            "[method]input-stream.skip": s(InputStream.skip),
            "[method]input-stream.blocking-skip": s(InputStream.blocking_skip),
            "[method]input-stream.subscribe": s(InputStream.subscribe),
            "[method]output-stream.check-write": s(OutputStream.check_write),
            "[method]output-stream.write": s(OutputStream.write),
            "[method]output-stream.blocking-write-and-flush": s(OutputStream.blocking_write_and_flush),
            "[method]output-stream.flush": s(OutputStream.flush),
            "[method]output-stream.blocking-flush": s(OutputStream.blocking_flush),
            "[method]output-stream.subscribe": s(OutputStream.subscribe),
            "[method]output-stream.write-zeroes": s(OutputStream.write_zeroes),
            "[method]output-stream.blocking-write-zeroes-and-flush": s(OutputStream.blocking_write_zeroes_and_flush),
            "[method]output-stream.splice": s(OutputStream.splice),
            "[method]output-stream.blocking-splice": s(OutputStream.blocking_splice),
        },
    }


def _ready(session: IoSession, p: Pollable) -> bool:
    with session.cond:
        return p.ready()
