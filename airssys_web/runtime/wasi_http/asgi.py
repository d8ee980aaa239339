"""Serving a ``wasi:http`` generation through ASGI, streaming both bodies with back-pressure.

The guest runs on a worker thread for the whole request; this side feeds the request body into the exchange as
the client sends it (never more than ``PIPE_CAPACITY`` bytes ahead of the guest), and sends the response head as
soon as the guest sets it, then the body as the guest writes it (the guest waits while ``PIPE_CAPACITY`` bytes
are unsent, and ASGI's ``send`` waits for the client). Nothing is buffered whole.

A request whose body arrived in one message may instead run inline on the event loop, when the generation's
:class:`~airssys_web.runtime.dispatch.InlinePolicy` has measured its calls to be short: then the response is
collected (a short call cannot produce much) and sent like any other.

Failures before the response head is sent raise the GuestError the middleware turns into its error response.
After that, the status is on the wire: the response is cut short (the server closes the connection, so the
client sees an incomplete body, never a truncated one passed off as complete) and the failure is logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from starlette.types import Receive, Scope, Send

from ...errors import BadGuestResponse, GuestError, GuestTrap
from ..generation import Generation
from ..pool import Lease
from .error_codes import describe, status_for
from .http import Exchange
from .io import IoError
from .slot import WasiHttpSlot

log = logging.getLogger("airssys_web")

# Framing is the server's business; wasi:http fields forbid most of these already.
_DROP = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"upgrade", b"proxy-connection", b"te",
                   b"trailer", b"content-length"})


#: How long the head may wait for the body to complete (so a small response is sent whole, with content-length).
HEAD_GRACE = 0.002
GRACE_BYTES = 64 * 1024


class _Waker:
    """Wakes the event loop from a guest thread; armed and fired only under the exchange's lock."""

    __slots__ = ("_fut", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._fut: asyncio.Future[None] | None = None

    def arm(self) -> asyncio.Future[None]:
        fut = self._fut
        if fut is None or fut.done():
            fut = self._fut = self._loop.create_future()
        return fut

    def wake(self) -> None:
        fut = self._fut
        if fut is not None:
            self._fut = None
            try:
                self._loop.call_soon_threadsafe(_fire, fut)
            except RuntimeError:  # the loop closed (server shutdown): nobody is waiting any more
                pass


def _fire(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _request_exchange(scope: Scope) -> Exchange:
    raw = scope.get("raw_path") or scope["path"].encode()
    target = raw.decode("latin-1")
    query = scope.get("query_string", b"")
    if query:
        target += "?" + query.decode("latin-1")
    headers = [(k.decode("latin-1").lower(), bytes(v)) for k, v in scope["headers"]]
    authority = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), None)
    return Exchange(scope["method"], target, headers, scheme=scope.get("scheme", "http"), authority=authority)


def _run(gen: Generation, lease: Lease, exchange: Exchange, *, inline: bool = False) -> None:
    """Serve the exchange (on a worker thread, or inline); every outcome ends up in ``exchange``.

    Accounted like ``Generation._run``/``_run_inline``: a threaded call after a slot's first is a sample of its
    thread CPU time; an inline call counts by how long it held the loop, so a lone spike there (a garbage
    collection) sends a few calls back to threads rather than marking the generation long-running for good.
    """
    slot = gen.pool.materialize(lease)
    sample = slot.calls > 0
    started = time.perf_counter() if inline else time.thread_time()
    try:
        if not isinstance(slot, WasiHttpSlot):  # pragma: no cover - generations build the right slots
            raise GuestTrap(f"{gen.tag} is not a wasi:http generation")
        slot.serve(exchange)
    except BaseException as e:
        if not exchange.done:
            exchange.finish(e)
    finally:
        if inline:
            gen.inline.record_inline(time.perf_counter() - started)
        elif sample:
            gen.inline.record(time.thread_time() - started)
        gen.pool.release(slot)


async def serve_asgi(gen: Generation, scope: Scope, receive: Receive, send: Send,
                     extra: list[tuple[bytes, bytes]]) -> int:
    """Answer one HTTP request with ``gen`` (a ``wasi:http`` generation); return the status sent.

    Raises GuestError (nothing sent yet) for the caller to answer; a 413 is answered here.
    """
    limit = gen.limits.max_body
    for name, value in scope["headers"]:
        if name == b"content-length" and value.strip().isdigit() and int(value) > limit:
            return await _too_large(send, limit, extra)
    exchange = _request_exchange(scope)
    first = await receive()
    chunk = first.get("body", b"") if first["type"] == "http.request" else b""
    more = first["type"] == "http.request" and first.get("more_body", False)
    if len(chunk) > limit:
        return await _too_large(send, limit, extra)
    loop = asyncio.get_running_loop()
    waker = _Waker(loop)
    slot = None if more else gen.pool.try_acquire()
    if (slot is not None and slot.calls and gen.inline.allows(len(chunk)) and isinstance(slot, WasiHttpSlot)
            and gen.ctx.fetch is None and gen.ctx.fetcher is None):  # outbound requests may block: never inline
        exchange.capacity = exchange.body.capacity = None  # nobody drains while the guest runs: collect
        _feed(exchange, chunk, more=False)
        _run(gen, slot, exchange, inline=True)
        return await _respond(gen, exchange, waker, scope, receive, send, extra, None)
    exchange.on_change = waker.wake
    _feed(exchange, chunk, more=more)
    lease = slot if slot is not None else await gen.pool.acquire(gen.limits.acquire_timeout)
    if gen.dispatcher is None:
        _run(gen, lease, exchange)
        guest: asyncio.Future[None] | None = None
    else:
        try:
            guest = gen.dispatcher.submit(_run, gen, lease, exchange, on_skip=lambda: gen.pool.give_back(lease))
        except RuntimeError:
            gen.pool.give_back(lease)
            raise
    pump = loop.create_task(_pump(exchange, receive, waker, limit)) if more else None
    try:
        return await _respond(gen, exchange, waker, scope, receive, send, extra, pump)
    finally:
        if pump is not None and not pump.done():
            pump.cancel()
        if guest is not None:
            await asyncio.shield(guest)  # the instance is ours until the guest returns


def _feed(exchange: Exchange, chunk: bytes, *, more: bool) -> None:
    with exchange.cond:
        exchange.body.put(chunk)
        if not more:
            exchange.body.finish()


async def _pump(exchange: Exchange, receive: Receive, waker: _Waker, limit: int) -> None:
    """Feed the rest of the request body as the guest makes room for it; then watch for a disconnect."""
    body = exchange.body
    total = body.total
    while True:
        with exchange.cond:
            if exchange.done or body.reader_gone:
                return
            room = body.space() > 0
            fut = None if room else waker.arm()
        if fut is not None:
            await fut
            continue
        message = await receive()
        if message["type"] != "http.request":
            with exchange.cond:
                body.finish(IoError("the client disconnected", ("HTTP-request-body-size", None)))
            _client_gone(exchange)
            return
        chunk = message.get("body", b"")
        total += len(chunk)
        with exchange.cond:
            if total > limit:
                body.finish(IoError(f"the request body is over the route's {limit}-byte limit",
                                    ("HTTP-request-body-size", total)))
                return
            body.put(chunk)
            if not message.get("more_body", False):
                body.finish()
                break
    await _watch_disconnect(exchange, receive)


async def _watch_disconnect(exchange: Exchange, receive: Receive) -> None:
    message = await receive()
    if message["type"] == "http.disconnect":
        _client_gone(exchange)


def _client_gone(exchange: Exchange) -> None:
    with exchange.cond:
        if exchange.response_pipe is not None:
            exchange.response_pipe.close_reader()


async def _respond(gen: Generation, exchange: Exchange, waker: _Waker, scope: Scope, receive: Receive,
                   send: Send, extra: list[tuple[bytes, bytes]], pump: asyncio.Task[None] | None) -> int:
    # 1. the head
    while True:
        with exchange.cond:
            if exchange.answered or exchange.done:
                break
            fut = waker.arm()
        await fut
    # A guest that answers quickly usually finishes its body right after the head: a short grace lets the whole
    # response go out with a content-length in one message instead of chunked.
    loop = asyncio.get_running_loop()
    grace = loop.time() + HEAD_GRACE
    while True:
        with exchange.cond:
            pipe = exchange.response_pipe
            if pipe is None or pipe.eof or exchange.done or pipe.size >= GRACE_BYTES or pipe.space() == 0:
                break
            fut = waker.arm()
        remaining = grace - loop.time()
        if remaining <= 0:
            break
        timer = loop.call_later(remaining, _fire, fut)
        await fut
        timer.cancel()
    with exchange.cond:
        if exchange.status is None or exchange.response_pipe is None:
            raise _failure_before_head(gen, exchange)
        status = exchange.status
        pipe = exchange.response_pipe
        headers = [(k.encode("latin-1"), v) for k, v in exchange.response_headers]
        complete = pipe.eof and pipe.error is None
        data = pipe.take_all() if complete else b""
    try:
        _check_head(gen, status, headers)
    except GuestError:
        _client_gone(exchange)
        raise
    out = [(k, v) for k, v in headers if k not in _DROP]
    if complete:
        out.append((b"content-length", str(len(data)).encode()))
    else:
        out += [(k, v) for k, v in headers if k == b"content-length"]
    out.extend(extra)
    trailers_ok = "http.response.trailers" in scope.get("extensions", {})
    try:
        await send({"type": "http.response.start", "status": status, "headers": out,
                    "trailers": trailers_ok and complete is False})
        if complete:
            await send({"type": "http.response.body", "body": data})
            return status
        watcher = None if pump is not None else asyncio.get_running_loop().create_task(
            _watch_disconnect(exchange, receive))
        try:
            return await _stream_body(gen, exchange, waker, send, status, trailers_ok)
        finally:
            if watcher is not None:
                watcher.cancel()
    except OSError:
        _client_gone(exchange)
        return status


async def _stream_body(gen: Generation, exchange: Exchange, waker: _Waker, send: Send, status: int,
                       trailers_ok: bool) -> int:
    pipe = exchange.response_pipe
    assert pipe is not None
    while True:
        with exchange.cond:
            data = pipe.take_all() if pipe.size else b""
            ended = pipe.eof and not pipe.size
            broken = exchange.done and not pipe.eof
            fut = waker.arm() if not (data or ended or broken) else None
        if data:
            await send({"type": "http.response.body", "body": data, "more_body": True})
            continue
        if fut is not None:
            await fut
            continue
        if ended and pipe.error is None:
            await send({"type": "http.response.body", "body": b"", "more_body": trailers_ok})
            if trailers_ok:
                trailers = [(k.encode("latin-1"), v) for k, v in exchange.trailers or []]
                await send({"type": "http.response.trailers", "headers": trailers, "more_trailers": False})
            return status
        why = pipe.error.message if pipe.error is not None else (
            str(exchange.failure) if exchange.failure is not None else "it returned without finishing the body")
        log.error("request %s: %s failed after sending status %d; the response is cut short: %s",
                  uuid.uuid4().hex[:16], gen.tag, status, why)
        return 500


def _failure_before_head(gen: Generation, exchange: Exchange) -> GuestError:
    kw: dict[str, Any] = {"component": gen.name, "version": gen.version}
    failure = exchange.failure
    if isinstance(failure, GuestError):
        return failure
    if failure is not None:
        return GuestTrap(f"{gen.tag} failed: {type(failure).__name__}: {failure}", **kw)
    if exchange.error_code is not None:
        error = BadGuestResponse(f"{gen.tag} answered with error-code {describe(exchange.error_code)}", **kw)
        error.status = status_for(exchange.error_code)
        return error
    return BadGuestResponse(f"{gen.tag} returned without setting a response", **kw)


def _check_head(gen: Generation, status: int, headers: list[tuple[bytes, bytes]]) -> None:
    if not 100 <= status <= 599:
        raise BadGuestResponse(f"{gen.tag} answered with invalid status {status}", component=gen.name,
                               version=gen.version)


async def _too_large(send: Send, limit: int, extra: list[tuple[bytes, bytes]]) -> int:
    from ...middleware import _send_error

    await _send_error(send, 413, "request body too large", f"the limit for this route is {limit} bytes", extra)
    return 413


__all__ = ["serve_asgi"]
