"""One WSGI request served by the ASGI core: the bridge between a WSGI server's thread and the core's event loop.

The core (:class:`~airssys_web.web.middleware.AirssysMiddleware`) runs on a loop thread of its own
(:mod:`airssys_web.web.wsgi`); the server's thread hands it a request and then waits. They talk through

* a ``queue.SimpleQueue`` of events, loop -> thread: ``read`` (the core wants the next piece of the request body),
  ``start`` (status and headers), ``body`` (a chunk, and whether more follows), ``pass`` (the route went away
  before the request reached it: the wrapped WSGI app answers), ``done`` (the core's task ended, with the
  exception it raised, if any);
* ``loop.call_soon_threadsafe``, thread -> loop: the answer to a ``read``, room for more response chunks, and
  ``abandon`` when the server closes the response while the core still waits on it.

A request with a small body (or none) and a response sent in one piece costs one round trip between the threads:
a body that Content-Length says fits in one chunk is read before the hand-off, and ``start`` and the last
``body`` do not wait for the server's thread. A larger body is read from ``wsgi.input`` a chunk at a time, when
the core asks (a wasi:http guest reads it as a stream). A streamed response is yielded chunk by chunk as the
guest produces it, with at most ``AHEAD`` chunks waiting for the server (back-pressure on the guest).

WSGI itself sets the limits of this: a server thread serves one request, reads ``wsgi.input`` by blocking (many
servers, waitress among them, buffer the whole request body before the app runs), and cannot tell the app that
the client left until a write fails. The server closing the response early (``close()`` before the end) is seen
by the core as a disconnect: its pending ``receive()`` answers ``http.disconnect`` and its next ``send()`` raises
``OSError``, as under an ASGI server.

Not a2wsgi's ``ASGIMiddleware``, though this follows its design (a loop thread, events in lock-step): it has no
way to hand a request back to the WSGI app in the server's thread, reads only ``CONTENT_LENGTH`` bytes (a chunked
request body under gunicorn arrives empty), and leaves the ASGI task waiting forever when the server closes the
response early, which here would hold a generation and an instance until the drain timeout.
"""

from __future__ import annotations

import asyncio
import io
import queue
import threading
from collections.abc import Callable, Coroutine, Iterator
from http import HTTPStatus
from typing import Any
from urllib.parse import quote_from_bytes

from starlette.types import Message, Receive, Scope, Send

#: The most the bridge reads from ``wsgi.input`` at once (and the largest body read before the hand-off).
CHUNK = 64 * 1024
#: How many response chunks the core may send ahead of the server before ``send()`` waits.
AHEAD = 4
#: The message the pass-through app sends: "the wrapped WSGI app answers this request".
PASS = "airssys.wsgi.pass"
_DISCONNECT: Message = {"type": "http.disconnect"}
# PEP 3333 forbids these in start_response (waitress and wsgiref refuse them): framing is the server's job.
_HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te",
                         b"trailer", b"trailers", b"transfer-encoding", b"upgrade", b"proxy-connection"})
_PATH_SAFE = b"/:@!$&'()*+,;=-._~"

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Any]
#: The ASGI core (an ``AirssysMiddleware``): an async callable, so that its call can become a task.
Core = Callable[[Scope, Receive, Send], Coroutine[Any, Any, None]]


async def pass_through(scope: Scope, receive: Receive, send: Send) -> None:
    """The core's wrapped app: whatever the core does not answer goes back to the WSGI app, in the server's
    thread (Flask and Django keep request state in thread-locals and context variables of that thread)."""
    await send({"type": PASS})


def request_path(environ: dict[str, Any]) -> str:
    """The request's path as an ASGI server gives it: ``SCRIPT_NAME + PATH_INFO``, decoded as UTF-8."""
    raw = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    return str(raw.encode("latin-1").decode("utf-8", "replace"))


def scope_from_environ(environ: dict[str, Any], path: str) -> Scope:
    """The ASGI HTTP scope of a WSGI request (PEP 3333 environ strings are latin-1 bytes)."""
    headers: list[tuple[bytes, bytes]] = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            if key in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                continue
            name = key[5:]
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            name = key
        else:
            continue
        headers.append((name.lower().replace("_", "-").encode("latin-1"), value.encode("latin-1")))
    root = environ.get("SCRIPT_NAME", "")
    raw = (root + environ.get("PATH_INFO", "")).encode("latin-1")
    scope: Scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": environ.get("SERVER_PROTOCOL", "HTTP/1.1").partition("/")[2] or "1.1",
        "method": environ["REQUEST_METHOD"], "scheme": environ.get("wsgi.url_scheme", "http"),
        "path": path, "raw_path": quote_from_bytes(raw, _PATH_SAFE).encode("ascii"),
        "query_string": environ.get("QUERY_STRING", "").encode("latin-1"),
        "root_path": root.encode("latin-1").decode("utf-8", "replace"), "headers": headers,
        "server": (environ.get("SERVER_NAME", ""), _port(environ.get("SERVER_PORT"))),
    }
    if environ.get("REMOTE_ADDR"):
        scope["client"] = (environ["REMOTE_ADDR"], _port(environ.get("REMOTE_PORT")))
    return scope


def _port(value: object) -> int:
    try:
        return int(value)  # type: ignore[call-overload,no-any-return]
    except (TypeError, ValueError):
        return 0


def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Unknown"


def _resolve(fut: asyncio.Future[Any], value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


class Exchange:
    """One request, from the server thread's call to the end of its response (see the module docstring).

    Attributes named ``loop_*`` and the futures are touched only on the loop; the rest only in the server's thread,
    except those under ``_flow``: the response chunks the server has not taken yet, how many futures the loop
    awaits that only the server's thread (or ``_abandon``) resolves, and ``gone``, set when the server closed the
    response. So closing costs a wake-up of the loop only when something there waits on the server.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, environ: dict[str, Any], path: str) -> None:
        self.loop = loop
        self.environ = environ
        self.path = path
        self.events: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        # the server's thread: the request body still to read (None: until EOF, for a terminated wsgi.input)
        self.left: int | None = _content_length(environ)
        self.prefetched: bytes | None = None  # the whole body, read before the hand-off
        self.finished = False  # the last chunk was taken
        self.closed = False
        # the loop (``loop_first`` is written once by the server's thread, before the hand-off)
        self.loop_first: Message | None = None
        self.loop_body_done = False
        self.loop_waiting: set[asyncio.Future[Message]] = set()
        # both sides, under the lock
        self._flow = threading.Lock()
        self._ahead = 0
        self._room: asyncio.Future[None] | None = None
        self._waiting = 0
        self._gone = False

    # -- the server's thread -----------------------------------------------------------------------------------
    def run(self, core: Core, app: WSGIApp, start_response: StartResponse) -> Any:
        """Hand the request to ``core`` on the loop and wait for the head of its answer; return the WSGI body."""
        if self.left is not None and self.left <= CHUNK:
            self.prefetched = self._read_exactly(self.left)
            self.loop_first = (_DISCONNECT if self.prefetched is None else
                               {"type": "http.request", "body": self.prefetched, "more_body": False})
        scope = scope_from_environ(self.environ, self.path)
        self.loop.call_soon_threadsafe(self._spawn, core, scope)
        try:
            while True:
                event = self.events.get()
                kind = event[0]
                if kind == "read":
                    self._serve_read(event[1])
                elif kind == "start":
                    _, status, headers = event
                    start_response(_status_line(status), [(k.decode("latin-1"), v.decode("latin-1"))
                                                         for k, v in headers if k.lower() not in _HOP_BY_HOP])
                    return _Body(self)
                elif kind == "pass":
                    self.close()
                    if self.prefetched is not None:
                        self.environ["wsgi.input"] = io.BytesIO(self.prefetched)
                    return app(self.environ, start_response)
                elif kind == "done":  # the core ended before a head: only a bug of the core does that
                    raise event[1] or RuntimeError(f"airssys-web sent no response for {self.path}")
        except BaseException:
            self.close()
            raise

    def next_chunk(self) -> bytes | None:
        """The next piece of the response body, as soon as the core sends it; None at the end."""
        while not self.finished:
            event = self.events.get()
            kind = event[0]
            if kind == "body":
                _, data, more = event
                if more:
                    self._took_one()
                else:
                    self.finished = True
                if data:
                    return data if isinstance(data, bytes) else bytes(data)
            elif kind == "read":
                self._serve_read(event[1])
            elif kind == "done":
                self.finished = True
                if event[1] is not None:  # after the head: the server can only cut the response short
                    raise event[1]
        return None

    def close(self) -> None:
        """The server is done with the response: if the core is still running, it sees a disconnect."""
        if self.closed:
            return
        self.closed = True
        with self._flow:
            self._gone = True
            waiting = self._waiting
        if waiting:
            try:
                self.loop.call_soon_threadsafe(self._abandon)
            except RuntimeError:  # the loop is closed: the core is gone, and nothing waits on us
                pass

    def _read_exactly(self, size: int) -> bytes | None:
        """``size`` bytes of ``wsgi.input`` (None if the client is gone or sent less)."""
        self.left = 0
        stream = self.environ.get("wsgi.input")
        parts: list[bytes] = []
        got = 0
        try:
            while got < size:
                data = stream.read(size - got) if stream is not None else b""
                if not data:
                    return None
                parts.append(data)
                got += len(data)
        except (OSError, ValueError):
            return None
        return b"".join(parts)

    def _serve_read(self, fut: asyncio.Future[Message]) -> None:
        message: Message
        stream = self.environ.get("wsgi.input")
        try:
            data = stream.read(CHUNK if self.left is None else min(CHUNK, self.left)) if stream else b""
        except (OSError, ValueError):
            data = None
        if data is None or (not data and self.left):
            message = _DISCONNECT  # the client went away before the end of the body
        else:
            if self.left is not None:
                self.left -= len(data)
            message = {"type": "http.request", "body": data, "more_body": bool(data) and self.left != 0}
        self.loop.call_soon_threadsafe(_resolve, fut, message)

    def _took_one(self) -> None:
        with self._flow:
            self._ahead -= 1
            room = self._room if self._ahead <= AHEAD else None
            if room is not None:
                self._room = None
        if room is not None:
            self.loop.call_soon_threadsafe(_resolve, room, None)

    # -- the loop ---------------------------------------------------------------------------------------------
    def _spawn(self, core: Core, scope: Scope) -> None:
        task = self.loop.create_task(core(scope, self.receive, self.send))
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self.events.put(("done", None if task.cancelled() else task.exception()))

    async def receive(self) -> Message:
        if self.loop_first is not None:
            message, self.loop_first = self.loop_first, None
            self.loop_body_done = True
            return message
        with self._flow:
            if self._gone:
                return _DISCONNECT
            self._waiting += 1
        fut: asyncio.Future[Message] = self.loop.create_future()
        self.loop_waiting.add(fut)
        if not self.loop_body_done:
            self.events.put(("read", fut))
        try:  # past the body, an ASGI receive() waits for the client to leave: here, for the server to close
            message = await fut
        finally:
            self.loop_waiting.discard(fut)
            with self._flow:
                self._waiting -= 1
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.loop_body_done = True
        return message

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.body":
            body, more = message.get("body", b""), message.get("more_body", False)
            room: asyncio.Future[None] | None = None
            with self._flow:
                if self._gone:
                    raise OSError("the WSGI server closed the response")
                if more:
                    self._ahead += 1
                    if self._ahead > AHEAD:
                        room = self._room = self.loop.create_future()
                        self._waiting += 1
            self.events.put(("body", body, more))
            if room is not None:
                try:
                    await room
                finally:
                    with self._flow:
                        self._waiting -= 1
            return
        if self._gone:
            raise OSError("the WSGI server closed the response")
        if kind == "http.response.start":
            self.events.put(("start", message["status"], message.get("headers", [])))
        elif kind == PASS:
            self.events.put(("pass",))
        # Anything else (trailers, ...) has no WSGI form.

    def _abandon(self) -> None:
        for fut in self.loop_waiting:
            _resolve(fut, _DISCONNECT)
        with self._flow:
            room, self._room = self._room, None
        if room is not None and not room.done():
            room.set_exception(OSError("the WSGI server closed the response"))


def _content_length(environ: dict[str, Any]) -> int | None:
    """How many body bytes to read: Content-Length; None for a body that ends at EOF (``wsgi.input_terminated``,
    e.g. a chunked request under gunicorn); 0 otherwise (PEP 3333: never read past what the server announced)."""
    value = environ.get("CONTENT_LENGTH")
    if value:
        try:
            return max(0, int(value))
        except ValueError:
            return 0
    return None if environ.get("wsgi.input_terminated") else 0


class _Body:
    """The WSGI response iterable: yields the core's chunks as they come; ``close()`` tells the core if the server
    stops early."""

    __slots__ = ("_exchange",)

    def __init__(self, exchange: Exchange) -> None:
        self._exchange = exchange

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        chunk = self._exchange.next_chunk()
        if chunk is None:
            raise StopIteration
        return chunk

    def close(self) -> None:
        self._exchange.close()
