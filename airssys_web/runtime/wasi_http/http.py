"""The incoming side of ``wasi:http/types``: one request a guest reads and the response it writes.

An :class:`Exchange` is that request as the server sees it. The guest's resources (incoming-request,
incoming-body, response-outparam, outgoing-response, outgoing-body) read from and write into it; the ASGI side
(or a buffered caller) feeds the request body into ``exchange.body`` and drains the response body from
``exchange.response_pipe``. ``on_change`` is called, under the exchange's lock, whenever the guest did something
the server side waits for.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from ..imports import HostContext
from .codec import Trap
from .error_codes import ErrorCode, body_size_error
from .fields import Entries, Fields
from .io import PIPE_CAPACITY, InputStream, IoError, IoSession, OutputStream, Pipe, Pollable

Result = tuple[str, Any]
_METHODS = frozenset({"get", "head", "post", "put", "delete", "connect", "options", "trace", "patch"})


def method_value(method: str) -> tuple[str, Any]:
    lower = method.lower()
    return (lower, None) if lower in _METHODS and method.isupper() else ("other", method)


def method_text(value: tuple[str, Any]) -> str:
    case, payload = value
    return str(payload) if case == "other" else case.upper()


class Exchange:
    """One incoming request and the guest's answer, shared by the guest's thread and the server side."""

    def __init__(self, method: str, path_with_query: str, headers: Entries, *, scheme: str = "http",
                 authority: str | None = None, streaming: bool = True) -> None:
        self.cond = threading.Condition(threading.RLock())
        self.method = method
        self.path_with_query = path_with_query
        self.scheme = scheme
        self.authority = authority
        self.headers = headers
        self.capacity: int | None = PIPE_CAPACITY if streaming else None
        self.on_change: Callable[[], None] | None = None
        self.body = Pipe(self.cond, self.capacity, self._changed)
        # the answer
        self.status: int | None = None
        self.response_headers: Entries = []
        self.response_pipe: Pipe | None = None
        self.error_code: ErrorCode | None = None
        self.trailers: Entries | None = None
        self.done = False  # the guest's handle() returned (or failed)
        self.failure: BaseException | None = None

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    @property
    def answered(self) -> bool:
        return self.status is not None or self.error_code is not None

    def respond(self, response: OutgoingResponse) -> None:
        with self.cond:
            response.headers.freeze()
            self.status = response.status
            self.response_headers = response.headers.entries
            pipe = response.pipe(self)
            if response.body_taken is False:
                pipe.finish()
            self.response_pipe = pipe
            self._changed()

    def respond_error(self, code: ErrorCode) -> None:
        with self.cond:
            self.error_code = code
            self._changed()

    def finish(self, failure: BaseException | None) -> None:
        """The guest returned: nothing more will be written."""
        with self.cond:
            self.done = True
            self.failure = failure
            self.body.close_reader()
            self._changed()


class HttpSession(IoSession):
    """Host state of one ``wasi:http`` instance; ``begin`` points it at the request being served."""

    def __init__(self, ctx: HostContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.exchange: Exchange | None = None
        self.stderr: list[str] = []  # what the guest wrote to stderr during this call (out-of-memory reports)

    def begin(self, exchange: Exchange, deadline: float) -> None:
        self.exchange = exchange
        self.cond = exchange.cond
        self.deadline = deadline

    @property
    def capacity(self) -> int | None:
        return self.exchange.capacity if self.exchange is not None else None


class IncomingRequest:
    RESOURCE_ID = 11

    def __init__(self, session: HttpSession, exchange: Exchange) -> None:
        self.session = session
        self.exchange = exchange
        self.consumed = False

    def consume(self) -> Result:
        if self.consumed:
            return "err", None
        self.consumed = True
        return "ok", IncomingBody(self.session, self.exchange.body)


class IncomingBody:
    """A body being received: the request's, or an outbound response's."""

    RESOURCE_ID = 16

    def __init__(self, session: IoSession, pipe: Pipe) -> None:
        self.session = session
        self.pipe = pipe
        self.streamed = False

    def stream(self) -> Result:
        if self.streamed:
            return "err", None
        self.streamed = True
        return "ok", InputStream(self.session, self.pipe)

    def finish(self) -> FutureTrailers:
        return FutureTrailers(self.pipe)


class FutureTrailers:
    RESOURCE_ID = 17

    def __init__(self, pipe: Pipe) -> None:
        self.pipe = pipe
        self.taken = False

    def subscribe(self) -> Pollable:
        pipe = self.pipe
        return Pollable(lambda: pipe.eof)

    def get(self) -> Any:
        with self.pipe.cond:
            if not self.pipe.eof:
                return None
            if self.taken:
                return "err", None
            self.taken = True
            error = self.pipe.error
            if error is not None and error.code is not None:
                return "ok", ("err", error.code)
            return "ok", ("ok", None)


class OutgoingResponse:
    RESOURCE_ID = 18

    def __init__(self, session: HttpSession, headers: Fields) -> None:
        self.session = session
        self.status = 200
        self.headers = headers
        self.body_taken = False
        self._pipe: Pipe | None = None

    def pipe(self, exchange: Exchange) -> Pipe:
        if self._pipe is None:
            self._pipe = Pipe(exchange.cond, exchange.capacity)
        self._pipe.on_change = exchange._changed
        return self._pipe

    def set_status_code(self, code: int) -> Result:
        if not 100 <= code <= 599:
            return "err", None
        self.status = code
        return "ok", None

    def body(self) -> Result:
        if self.body_taken:
            return "err", None
        exchange = self.session.exchange
        if exchange is None:
            raise Trap("outgoing-response.body called outside a request")
        self.body_taken = True
        return "ok", OutgoingBody(self.session, self.pipe(exchange), _content_length(self.headers), response=True)


class OutgoingBody:
    """A body being sent: the response's, or an outbound request's."""

    RESOURCE_ID = 19

    def __init__(self, session: IoSession, pipe: Pipe, limit: int | None, *, response: bool) -> None:
        self.session = session
        self.pipe = pipe
        self.limit = limit
        self.response = response
        self.written = False
        self.trailers: Entries | None = None

    def write(self) -> Result:
        if self.written:
            return "err", None
        self.written = True
        return "ok", OutputStream(self.session, self.pipe, self.limit)

    def finish(self, trailers: Fields | None) -> Result:
        with self.pipe.cond:
            if self.limit is not None and self.pipe.total != self.limit:
                error = body_size_error(self.limit, self.pipe.total, response=self.response)
                self.pipe.finish(error)
                return "err", error.code
            if trailers is not None:
                trailers.freeze()
                self.trailers = trailers.entries
            self.pipe.finish()
        return "ok", None

    def drop(self) -> None:
        """Dropped without ``finish``: the body is incomplete, and the message must not look complete."""
        with self.pipe.cond:
            self.pipe.finish(IoError("the outgoing-body was dropped without finish"))


def _content_length(headers: Fields) -> int | None:
    if not headers.entries:
        return None
    values = headers.get("content-length")
    if len(values) != 1:
        return None
    text = values[0].strip()
    return int(text) if text.isdigit() and len(text) < 19 else None


def _respond(_s: HttpSession, param: ResponseOutparam, response: Result) -> None:
    exchange = param.exchange
    if exchange.answered:
        raise Trap("response-outparam.set called twice")
    tag, value = response
    if tag == "ok":
        exchange.respond(value)
    else:
        exchange.respond_error(value)


class ResponseOutparam:
    RESOURCE_ID = 14

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange


def incoming_functions() -> dict[str, Any]:
    """``wasi:http/types`` functions of the incoming request and the response (``outgoing`` has the rest)."""

    def scheme(_s: HttpSession, req: IncomingRequest) -> Any:
        s = req.exchange.scheme
        return ("HTTP", None) if s == "http" else ("HTTPS", None) if s == "https" else ("other", s)

    def body_finish(_s: HttpSession, body: OutgoingBody, trailers: Fields | None) -> Result:
        return body.finish(trailers)

    return {
        "[method]incoming-request.method": lambda _s, r: method_value(r.exchange.method),
        "[method]incoming-request.path-with-query": lambda _s, r: r.exchange.path_with_query,
        "[method]incoming-request.scheme": scheme,
        "[method]incoming-request.authority": lambda _s, r: r.exchange.authority,
        "[method]incoming-request.headers": lambda _s, r: Fields(r.exchange.headers, immutable=True),
        "[method]incoming-request.consume": lambda _s, r: r.consume(),
        "[method]incoming-body.stream": lambda _s, b: b.stream(),
        "[static]incoming-body.finish": lambda _s, b: b.finish(),
        "[method]future-trailers.subscribe": lambda _s, t: t.subscribe(),
        "[method]future-trailers.get": lambda _s, t: t.get(),
        "[constructor]outgoing-response": lambda s, headers: OutgoingResponse(s, headers),
        "[method]outgoing-response.status-code": lambda _s, r: r.status,
        "[method]outgoing-response.set-status-code": lambda _s, r, code: r.set_status_code(code),
        "[method]outgoing-response.headers": lambda _s, r: r.headers,
        "[method]outgoing-response.body": lambda _s, r: r.body(),
        "[method]outgoing-body.write": lambda _s, b: b.write(),
        "[static]outgoing-body.finish": body_finish,
        "[static]response-outparam.set": _respond,
    }


def now() -> float:
    return time.monotonic()
