"""Serving a wasi:http generation through ASGI, streaming both bodies with back-pressure.

The guest runs on a worker thread for the whole request (the native core drives it with wasmtime-wasi-http); this
side feeds the request body into the native :class:`~airssys_web._native.HttpExchange` as the client sends it
(never more than ``PIPE_CAPACITY`` bytes ahead of the guest), and sends the response head as soon as the guest
sets it, then the body as the guest writes it (the guest waits while ``PIPE_CAPACITY`` bytes are unsent, and
ASGI's ``send`` waits for the client). Nothing is buffered whole. The exchange calls back (from the guest's
thread) only when this side registered interest in a change, and this side never blocks on the exchange.

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
from collections.abc import Callable

from starlette.types import Receive, Scope, Send

from ... import _native
from ...errors import AirssysError, BadGuestResponse, GuestTrap, HostClosed
from ..generation import Generation
from ..instance import GuestFault, Slot, native_error, new_exchange
from ..pool import Lease
from . import WASI_HTTP_WORLD
from .airssys import too_large

log = logging.getLogger("airssys_web")

READY_HEAD, READY_BODY, READY_SPACE, READY_DONE = (_native.READY_HEAD, _native.READY_BODY, _native.READY_SPACE,
                                                 _native.READY_DONE)

# Framing is the server's business; wasi:http fields forbid most of these already.
_DROP = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"upgrade", b"proxy-connection", b"te",
                   b"trailer", b"content-length"})

#: Bytes that may wait between the client and the guest, in each direction.
PIPE_CAPACITY = 256 * 1024
#: How long the head may wait for the body to complete (so a small response is sent whole, with content-length).
HEAD_GRACE = 0.002
GRACE_BYTES = 64 * 1024

class _Waker:
    """Wakes the event loop from a guest thread: ``arm()`` a future, then ask the exchange; it calls ``wake``."""

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
            try:
                self._loop.call_soon_threadsafe(_fire, fut)
            except RuntimeError:  # the loop closed (server shutdown): nobody is waiting any more
                pass


def _fire(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class _Outcome:
    """What happened on the guest's side, as Python sees it (a failure before the guest could run)."""

    __slots__ = ("error",)

    def __init__(self) -> None:
        self.error: BaseException | None = None


def _exchange_for(scope: Scope, *, capacity: int | None, notify: Callable[[], object] | None
                  ) -> _native.HttpExchange:
    raw = scope.get("raw_path") or scope["path"].encode()
    target = raw.decode("latin-1")
    query = scope.get("query_string", b"")
    if query:
        target += "?" + query.decode("latin-1")
    headers = [(bytes(k), bytes(v)) for k, v in scope["headers"]]
    authority = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), None)
    return new_exchange(scope["method"], target, headers, scheme=scope.get("scheme", "http"), authority=authority,
                        capacity=capacity, notify=notify)


def serve_slot(slot: Slot, exchange: _native.HttpExchange) -> None:
    """Run the exchange on ``slot`` to its end; a guest failure is recorded in the exchange (and raised)."""
    slot.native.serve(exchange)


def _run(gen: Generation, lease: Lease, exchange: _native.HttpExchange, outcome: _Outcome, *,
         inline: bool = False) -> None:
    """Serve the exchange (on a worker thread, or inline); every outcome ends up in ``exchange``/``outcome``.

    Accounted like ``Generation._run``/``_run_inline``: a threaded call after a slot's first is a sample of its
    thread CPU time; an inline call counts by how long it held the loop, so a lone spike there (a garbage
    collection) sends a few calls back to threads rather than marking the generation long-running for good.
    """
    started = time.perf_counter() if inline else time.thread_time()
    try:
        slot = gen.pool.materialize(lease)
    except BaseException as e:
        outcome.error = e
        exchange.abort(f"{gen.tag}: no instance to serve the request ({type(e).__name__})")
        return
    sample = slot.calls > 0 or gen.fresh
    if not gen.fresh and not inline:
        started = time.thread_time()
    try:
        serve_slot(slot, exchange)
    except GuestFault:
        pass  # recorded in the exchange, mapped where it is read
    except BaseException as e:
        outcome.error = e
        exchange.abort(f"{gen.tag}: serving failed ({type(e).__name__})")
    finally:
        if inline:
            gen.inline.record_inline(time.perf_counter() - started)
        elif sample:
            gen.inline.record(time.thread_time() - started)
        gen.pool.release(slot)


def _failure(gen: Generation, exchange: _native.HttpExchange, outcome: _Outcome) -> AirssysError:
    """The error that stands for an exchange that has no usable head."""
    if isinstance(outcome.error, AirssysError):
        return outcome.error
    if outcome.error is not None:
        return GuestTrap(f"{gen.tag} failed: {type(outcome.error).__name__}: {outcome.error}",
                         component=gen.name, version=gen.version)
    try:
        exchange.raise_failure()
    except GuestFault as e:
        return native_error(e, gen.ctx, gen.limits)
    return BadGuestResponse(f"{gen.tag} returned without setting a response", component=gen.name,
                            version=gen.version)


class WasiHttpWorld:
    name = WASI_HTTP_WORLD

    async def serve(self, gen: Generation, scope: Scope, receive: Receive, send: Send,
                    extra: list[tuple[bytes, bytes]], *, body_timeout: float) -> int:
        return await serve_asgi(gen, scope, receive, send, extra, body_timeout=body_timeout)


WASI_HTTP = WasiHttpWorld()


async def serve_asgi(gen: Generation, scope: Scope, receive: Receive, send: Send,
                     extra: list[tuple[bytes, bytes]], *, body_timeout: float = 10.0) -> int:
    """Answer one HTTP request with ``gen`` (a wasi:http generation); return the status sent.

    Raises an AirssysError (nothing sent yet) for the caller to answer: BodyTooLarge past the route's
    ``max_body``, a GuestError when the guest fails before its head. The request body streams to the guest; a
    client that sends nothing for ``body_timeout`` seconds, or has not finished within the route's deadline,
    breaks the guest's body stream (it reads an error, as if the client had gone).
    """
    limit = gen.limits.max_body
    for name, value in scope["headers"]:
        if name == b"content-length" and value.strip().isdigit() and int(value) > limit:
            raise too_large(limit)
    first = await receive()
    chunk = first.get("body", b"") if first["type"] == "http.request" else b""
    more = first["type"] == "http.request" and first.get("more_body", False)
    if len(chunk) > limit:
        raise too_large(limit)
    loop = asyncio.get_running_loop()
    waker = _Waker(loop)
    outcome = _Outcome()
    inline_ok = (not more and not gen.ctx.blocking_io and gen.inline.allows(len(chunk)))  # fetches may block
    if inline_ok and (slot := _inline_lease(gen)) is not None:
        exchange = _exchange_for(scope, capacity=None, notify=None)  # nobody drains while the guest runs: collect
        exchange.feed(chunk)
        exchange.end_request()
        _run(gen, slot, exchange, outcome, inline=True)
        return await _respond(gen, exchange, outcome, waker, scope, receive, send, extra, None)
    exchange = _exchange_for(scope, capacity=PIPE_CAPACITY, notify=waker.wake)
    exchange.feed(chunk)
    if not more:
        exchange.end_request()
    lease = await gen.pool.acquire(gen.limits.acquire_timeout)
    try:
        guest = gen.dispatcher.submit(_run, gen, lease, exchange, outcome,
                                      on_skip=lambda: _skipped(gen, lease, exchange))
    except RuntimeError:  # the dispatcher is closed (shutting down): nothing was queued
        gen.pool.give_back(lease)
        raise HostClosed(f"{gen.tag}: the host is shutting down", component=gen.name,
                         version=gen.version) from None
    bounds = (body_timeout, loop.time() + gen.limits.timeout)
    pump = loop.create_task(_pump(exchange, receive, waker, limit, bounds)) if more else None
    try:
        return await _respond(gen, exchange, outcome, waker, scope, receive, send, extra, pump)
    finally:
        if pump is not None and not pump.done():
            pump.cancel()
        await asyncio.shield(guest)  # the instance is ours until the guest returns


def _inline_lease(gen: Generation) -> Lease | None:
    if gen.fresh:
        from ..pool import CREATE
        return CREATE if gen.pool.try_reserve() else None
    slot = gen.pool.try_acquire()
    if slot is not None and not slot.calls:  # a first call is cold: not on the loop
        gen.pool.release(slot)
        return None
    return slot


def _skipped(gen: Generation, lease: Lease, exchange: _native.HttpExchange) -> None:
    gen.pool.give_back(lease)
    exchange.abort(f"{gen.tag}: the request was cancelled before it ran")


async def _pump(exchange: _native.HttpExchange, receive: Receive, waker: _Waker, limit: int,
                bounds: tuple[float, float]) -> None:
    """Feed the rest of the request body as the guest makes room for it; then watch for a disconnect.

    ``bounds`` is (idle seconds, loop time by which the body must be complete): past either, the guest's body
    stream breaks with a message saying which."""
    idle, end = bounds
    loop = asyncio.get_running_loop()
    total = 0
    while True:
        fut = waker.arm()
        if exchange.done:
            return
        if exchange.space() <= 0:
            if not exchange.ready(READY_SPACE):
                await fut
            continue
        wake = min(loop.time() + idle, end)
        try:
            async with asyncio.timeout_at(wake):
                message = await receive()
        except TimeoutError:
            why = (f"no byte of the request body for {idle:g}s" if wake < end
                   else "the request body was not complete within the route's deadline")
            exchange.end_request(f"request body timeout: {why}")
            return
        if message["type"] != "http.request":
            exchange.end_request("the client disconnected")
            exchange.close_client()
            return
        chunk = message.get("body", b"")
        total += len(chunk)
        if total > limit:
            exchange.end_request(f"the request body is over the route's {limit}-byte limit")
            return
        exchange.feed(chunk)
        if not message.get("more_body", False):
            exchange.end_request()
            break
    await _watch_disconnect(exchange, receive)


async def _watch_disconnect(exchange: _native.HttpExchange, receive: Receive) -> None:
    message = await receive()
    if message["type"] == "http.disconnect":
        exchange.close_client()


async def _wait(exchange: _native.HttpExchange, waker: _Waker, what: int) -> None:
    while True:
        fut = waker.arm()
        if exchange.ready(what):
            return
        await fut


async def _respond(gen: Generation, exchange: _native.HttpExchange, outcome: _Outcome, waker: _Waker,
                   scope: Scope, receive: Receive, send: Send, extra: list[tuple[bytes, bytes]],
                   pump: asyncio.Task[None] | None) -> int:
    # 1. the head
    await _wait(exchange, waker, READY_HEAD)
    # A guest that answers quickly usually finishes its body right after the head: a short grace lets the whole
    # response go out with a content-length in one message instead of chunked.
    loop = asyncio.get_running_loop()
    grace = loop.time() + HEAD_GRACE
    while not (exchange.done or exchange.body_complete or exchange.buffered >= GRACE_BYTES):
        remaining = grace - loop.time()
        if remaining <= 0:
            break
        fut = waker.arm()
        if exchange.ready(READY_BODY) and (exchange.done or exchange.body_complete):
            break
        timer = loop.call_later(remaining, _fire, fut)
        await fut
        timer.cancel()
    head = exchange.head()
    if head is None:
        exchange.close_client()
        raise _failure(gen, exchange, outcome)
    status, headers = head
    complete = exchange.body_complete and not exchange.failed
    data = exchange.take() if complete else b""
    out = [(k, v) for k, v in headers if k not in _DROP]
    if complete:
        out.append((b"content-length", str(len(data)).encode()))
    else:
        out += [(k, v) for k, v in headers if k == b"content-length"]
    out.extend(extra)
    trailers_ok = "http.response.trailers" in scope.get("extensions", {})
    try:
        await send({"type": "http.response.start", "status": status, "headers": out,
                    "trailers": trailers_ok and not complete})
        if complete:
            await send({"type": "http.response.body", "body": data})
            return status
        watcher = None if pump is not None else loop.create_task(_watch_disconnect(exchange, receive))
        try:
            return await _stream_body(gen, exchange, outcome, waker, send, status, trailers_ok)
        finally:
            if watcher is not None:
                watcher.cancel()
    except OSError:
        exchange.close_client()
        return status


async def _stream_body(gen: Generation, exchange: _native.HttpExchange, outcome: _Outcome, waker: _Waker,
                       send: Send, status: int, trailers_ok: bool) -> int:
    while True:
        fut = waker.arm()
        data = exchange.take()
        if data:
            await send({"type": "http.response.body", "body": data, "more_body": True})
            continue
        if not exchange.ready(READY_BODY):
            await fut
            continue
        if exchange.body_complete and not exchange.failed:
            await send({"type": "http.response.body", "body": b"", "more_body": trailers_ok})
            if trailers_ok:
                trailers = exchange.trailers or []
                await send({"type": "http.response.trailers", "headers": trailers, "more_trailers": False})
            return status
        if not exchange.done and not exchange.failed:
            continue  # more data raced in after take(): take it
        if not exchange.done:
            await _wait(exchange, waker, READY_DONE)  # the guest's fault is recorded when its call is over
        why = str(_failure(gen, exchange, outcome)) if exchange.failed or outcome.error else (
            "it returned without finishing the body")
        log.error("request %s: %s failed after sending status %d; the response is cut short: %s",
                  uuid.uuid4().hex[:16], gen.tag, status, why)
        return 500


__all__ = ["PIPE_CAPACITY", "WASI_HTTP", "WasiHttpWorld", "new_exchange", "serve_asgi"]
