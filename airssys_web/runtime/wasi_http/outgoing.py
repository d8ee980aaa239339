"""``wasi:http/outgoing-handler`` and the outbound half of ``wasi:http/types``, over the host's grants.

A guest's request goes through ``HostContext.fetch`` - in production an :class:`airssys_web.outbound.Fetcher`, so
the same SSRF-proof checks as ``airssys:web/outbound.fetch`` apply (strict URL parsing, grants, resolved-address
checks, no redirects followed). With nothing granted, ``handle`` answers ``HTTP-request-denied`` at once. The
body is collected (up to the fetcher's cap) until the guest finishes it; the request then runs on a small thread
pool, so an asyncio-style guest can keep several in flight and poll them. The future's pollable is ready when the
answer (or error-code) is in.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .codec import Trap
from .error_codes import DENIED, ErrorCode, from_outbound, internal
from .fields import Fields
from .http import HttpSession, IncomingBody, OutgoingBody, method_text, method_value
from .io import IoError, IoSession, Pipe, Pollable

log = logging.getLogger("airssys_web.wasi_http")
Result = tuple[str, Any]
_executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="airssys-outgoing")
_NS = 1_000_000_000
#: The most bytes an outbound request body may have (it is collected, then sent; the Fetcher's default cap).
MAX_REQUEST_BODY = 10 * 1024 * 1024


class RequestOptions:
    RESOURCE_ID = 13

    def __init__(self) -> None:
        self.timeouts: dict[str, int | None] = {"connect": None, "first-byte": None, "between-bytes": None}
        self.frozen = False

    def setter(self, key: str, value: int | None) -> Result:
        if self.frozen:
            return "err", None
        self.timeouts[key] = value
        return "ok", None


class OutgoingRequest:
    RESOURCE_ID = 12

    def __init__(self, session: HttpSession, headers: Fields) -> None:
        self.session = session
        self.headers = headers
        self.method: tuple[str, Any] = ("get", None)
        self.path: str | None = None
        self.scheme: tuple[str, Any] | None = None
        self.authority: str | None = None
        self.body_obj: OutgoingBody | None = None

    def body(self) -> Result:
        if self.body_obj is not None:
            return "err", None
        pipe = Pipe(self.session.cond, capacity=None)
        pipe.max_total = MAX_REQUEST_BODY  # collected until sent: bounded
        self.body_obj = OutgoingBody(self.session, pipe, _declared(self.headers), response=False)
        return "ok", self.body_obj

    def set_method(self, value: tuple[str, Any]) -> Result:
        if value[0] == "other" and not _is_token(str(value[1])):
            return "err", None
        self.method = value
        return "ok", None

    def set_path(self, value: str | None) -> Result:
        if value is not None and (not value.startswith("/") or any(c in value for c in " \r\n#")):
            return "err", None
        self.path = value
        return "ok", None

    def set_scheme(self, value: tuple[str, Any] | None) -> Result:
        if value is not None and value[0] == "other" and str(value[1]).lower() not in ("http", "https"):
            return "err", None
        self.scheme = value
        return "ok", None

    def set_authority(self, value: str | None) -> Result:
        if value is not None and (not value or any(c in value for c in "/?#@ \r\n")):
            return "err", None
        self.authority = value
        return "ok", None

    def url(self) -> str:
        scheme = "https" if self.scheme is None else self.scheme[0].lower() if self.scheme[0] != "other" \
            else str(self.scheme[1]).lower()
        return f"{scheme}://{self.authority}{self.path or '/'}"


def _is_token(text: str) -> bool:
    return bool(text) and all(c.isalnum() or c in "!#$%&'*+-.^_`|~" for c in text) and text.isascii()


def _declared(headers: Fields) -> int | None:
    values = headers.get("content-length")
    if len(values) == 1 and values[0].strip().isdigit():
        return int(values[0])
    return None


class IncomingResponse:
    RESOURCE_ID = 15

    def __init__(self, session: IoSession, status: int, headers: list[tuple[str, bytes]], body: bytes) -> None:
        self.status = status
        self.headers = Fields(headers, immutable=True)
        pipe = Pipe(threading.Condition(threading.RLock()), capacity=None)
        pipe.put(body)
        pipe.finish()
        self.body_obj: IncomingBody | None = IncomingBody(session, pipe)

    def consume(self) -> Result:
        body, self.body_obj = self.body_obj, None
        return ("ok", body) if body is not None else ("err", None)


class FutureIncomingResponse:
    """The answer to one outbound request, filled in by a worker thread."""

    RESOURCE_ID = 20

    def __init__(self, session: HttpSession, timeout: float | None) -> None:
        self.session = session
        self.cond = session.cond
        self.result: Result | None = None
        self.taken = False
        self.expires = None if timeout is None else time.monotonic() + timeout

    def resolve(self, result: Result) -> None:
        with self.cond:
            if self.result is None:
                self.result = result
            self.cond.notify_all()

    def ready(self) -> bool:
        if self.result is None and self.expires is not None and time.monotonic() >= self.expires:
            self.result = "err", ("HTTP-response-timeout", None)
        return self.result is not None

    def subscribe(self) -> Pollable:
        return Pollable(self.ready, self.expires)

    def get(self) -> Any:
        with self.cond:
            if not self.ready():
                return None
            if self.taken:
                return "err", None
            self.taken = True
            assert self.result is not None
            return "ok", self.result


def handle(session: HttpSession, request: OutgoingRequest, options: RequestOptions | None) -> Result:
    """``outgoing-handler.handle``: check what can be checked now, then send once the body is finished."""
    ctx = session.ctx
    fetch = ctx.fetch or (ctx.fetcher.fetch if ctx.fetcher is not None else None)
    if fetch is None:  # nothing granted: never connects (counted like airssys:web/outbound.fetch's denials)
        ctx._denials.add("not-granted")
        log.warning("%s: outbound request to %s denied (not-granted): no outbound hosts are granted", ctx.tag,
                    request.authority or "(no authority)")
        return "err", DENIED
    if request.authority is None:
        return "err", ("HTTP-request-URI-invalid", None)
    request.headers.freeze()
    timeout = None
    if options is not None:
        options.frozen = True
        parts = [options.timeouts[k] for k in ("connect", "first-byte")]
        if any(p is not None for p in parts):
            timeout = sum(p or 0 for p in parts) / _NS
    future = FutureIncomingResponse(session, timeout)
    body = request.body_obj
    method, url = method_text(request.method), request.url()
    headers = [(k, v.decode("latin-1")) for k, v in request.headers.entries]

    def send() -> None:
        data = b""
        if body is not None:
            with body.pipe.cond:
                if body.pipe.error is not None:
                    future.resolve(("err", body.pipe.error.code or internal(body.pipe.error.message)))
                    return
                data = body.pipe.take_all()
        try:
            status, rheaders, rbody = fetch(method, url, headers, data)
        except Exception as e:  # every failure becomes an error-code for the guest
            code: ErrorCode = from_outbound(e)
            log.info("%s: outbound %s %s failed: %s", ctx.tag, method, _origin(url), e)
            future.resolve(("err", code))
            return
        encoded = [(k.lower(), v.encode("latin-1")) for k, v in rheaders]
        future.resolve(("ok", IncomingResponse(session, status, encoded, rbody)))

    if body is None or body.pipe.eof:
        _executor.submit(send)
    else:  # send when the guest finishes (or drops) the body
        pipe = body.pipe
        previous = pipe.on_change

        def on_change() -> None:
            if pipe.eof and pipe.on_change is on_change:
                pipe.on_change = previous
                _executor.submit(send)
            elif previous is not None:
                previous()

        pipe.on_change = on_change
    return "ok", future


def _origin(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


def http_error_code(_s: Any, err: IoError) -> Any:
    return err.code


def outgoing_functions() -> dict[str, Any]:
    def opt(key: str) -> Any:
        return lambda _s, o: o.timeouts[key]

    def set_opt(key: str) -> Any:
        return lambda _s, o, value: o.setter(key, value)

    def guard(fn: Any) -> Any:
        def call(s: HttpSession, *args: Any) -> Any:
            if s.exchange is None:
                raise Trap("wasi:http/types used outside a request")
            return fn(s, *args)
        return call

    return {
        "[constructor]outgoing-request": guard(lambda s, headers: OutgoingRequest(s, headers)),
        "[method]outgoing-request.body": lambda _s, r: r.body(),
        "[method]outgoing-request.method": lambda _s, r: r.method,
        "[method]outgoing-request.set-method": lambda _s, r, v: r.set_method(v),
        "[method]outgoing-request.path-with-query": lambda _s, r: r.path,
        "[method]outgoing-request.set-path-with-query": lambda _s, r, v: r.set_path(v),
        "[method]outgoing-request.scheme": lambda _s, r: r.scheme,
        "[method]outgoing-request.set-scheme": lambda _s, r, v: r.set_scheme(v),
        "[method]outgoing-request.authority": lambda _s, r: r.authority,
        "[method]outgoing-request.set-authority": lambda _s, r, v: r.set_authority(v),
        "[method]outgoing-request.headers": lambda _s, r: r.headers,
        "[constructor]request-options": lambda _s: RequestOptions(),
        "[method]request-options.connect-timeout": opt("connect"),
        "[method]request-options.set-connect-timeout": set_opt("connect"),
        "[method]request-options.first-byte-timeout": opt("first-byte"),
        "[method]request-options.set-first-byte-timeout": set_opt("first-byte"),
        "[method]request-options.between-bytes-timeout": opt("between-bytes"),
        "[method]request-options.set-between-bytes-timeout": set_opt("between-bytes"),
        "[method]incoming-response.status": lambda _s, r: r.status,
        "[method]incoming-response.headers": lambda _s, r: r.headers,
        "[method]incoming-response.consume": lambda _s, r: r.consume(),
        "[method]future-incoming-response.subscribe": lambda _s, f: f.subscribe(),
        "[method]future-incoming-response.get": lambda _s, f: f.get(),
        "http-error-code": http_error_code,
    }


__all__ = ["handle", "method_value", "outgoing_functions"]
