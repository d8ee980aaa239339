"""One live guest instance (a Store of its own), and the runtime boundary where native failures become ours.

:func:`native_error` is the one place a :class:`~airssys_web._native.GuestFault` from the native core is mapped to
the ``airssys_web.errors`` tree. The core already classified it by *kind*: the trap code says timeout, fuel or
stack; the store's memory limiter says whether a refused ``memory.grow`` preceded a trap (so a guest that hits
its cap is reported as such even when it prints nothing); host-side failures carry their own kind. A call that
trapped, timed out or hit a host failure poisons its instance (wasmtime cannot enter such a Store again): the
native instance releases its Store at once and the pool discards the slot.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from .. import _native
from ..errors import (
    AirssysError,
    BadGuestResponse,
    CapabilityError,
    GuestMemoryLimit,
    GuestTimeout,
    GuestTrap,
    InvalidComponent,
    PoolExhausted,
)
from .imports import HostContext
from .limits import Limits

Headers = list[tuple[str, str]]
HeaderPairs = Sequence[tuple[str, str]] | Sequence[tuple[bytes, bytes]]
GuestFault = _native.GuestFault


def _latin1(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("latin-1")


class GuestResponse(NamedTuple):
    status: int
    headers: Headers
    body: bytes


def native_error(exc: GuestFault, ctx: HostContext, limits: Limits) -> AirssysError:
    """Translate a failure of the native core into our tree (the one place this happens)."""
    kind, text = exc.kind, exc.detail
    kw = {"component": ctx.component, "version": ctx.version}
    if kind == "timeout":
        return GuestTimeout(text, **kw)
    if kind == "fuel":
        return GuestTimeout(f"{ctx.tag} ran out of fuel (its budget is {limits.fuel or 0:,} per request)", **kw)
    if kind == "memory":
        return GuestMemoryLimit(text, **kw)
    if kind in ("bad-response", "error-code"):
        error = BadGuestResponse(text, **kw)
        if exc.status is not None:
            error.status = exc.status
        return error
    if kind == "exhausted":
        return PoolExhausted(text, **kw)
    if kind in ("link", "invalid", "start-memory"):
        if "cannot open the granted directory" in text:
            return CapabilityError(text)
        return InvalidComponent(text)
    return GuestTrap(text, **kw)  # trap, stack, host, closed, internal


def new_exchange(method: str, target: str, headers: list[tuple[bytes, bytes]], *, scheme: str = "http",
                 authority: str | None = None, capacity: int | None = None,
                 notify: Callable[[], object] | None = None) -> _native.HttpExchange:
    """A wasi:http exchange: ``capacity`` bytes may wait each way (None: buffered); ``notify`` wakes the waiter."""
    return _native.HttpExchange(method, target, headers, scheme=scheme, authority=authority, capacity=capacity,
                                notify=notify)


class Slot:
    """A ready guest instance. Not thread-safe: the pool hands a slot to one caller at a time."""

    __slots__ = ("_http", "_instance", "ctx", "limits")

    def __init__(self, pre: _native.Pre, ctx: HostContext, limits: Limits) -> None:
        self.ctx = ctx
        self.limits = limits
        self._http = pre.world != "airssys:web"
        try:
            self._instance = pre.instantiate()
        except GuestFault as e:
            raise native_error(e, ctx, limits) from None

    @property
    def poisoned(self) -> bool:
        return self._instance.poisoned

    @property
    def calls(self) -> int:
        return self._instance.calls

    @property
    def native(self) -> _native.Instance:
        return self._instance

    def call(self, method: str, path: str, query: str, headers: HeaderPairs, body: bytes, *,
             timeout: float | None = None, next: _native.Next | None = None, depth: int = 0) -> GuestResponse:
        """Answer a buffered request (headers as str or latin-1 bytes pairs): ``handle`` of an ``airssys:web``
        guest, or a whole wasi:http exchange (the body in, the complete response out).

        ``timeout`` is the time the caller has left (the call's deadline is the version's timeout or this,
        whichever is sooner); ``next`` answers a pipeline stage's imported handler (its exceptions pass through
        unchanged); ``depth`` counts the component-to-component calls already made for the request.
        """
        if self._http:
            return self._call_http(method, path, query, headers, body, timeout, depth)
        if timeout is None and next is None and not depth:
            try:  # the hot path: no keywords
                status, out, data = self._instance.handle(method, path, query, headers, body)
            except GuestFault as e:
                raise native_error(e, self.ctx, self.limits) from None
            return GuestResponse(status, out, data)
        try:
            status, out, data = self._instance.handle(method, path, query, headers, body, timeout=timeout,
                                                      next=next, depth=depth)
        except GuestFault as e:
            raise native_error(e, self.ctx, self.limits) from None
        return GuestResponse(status, out, data)

    def _call_http(self, method: str, path: str, query: str, headers: HeaderPairs, body: bytes,
                   timeout: float | None = None, depth: int = 0) -> GuestResponse:
        pairs = [(_latin1(k).lower(), _latin1(v)) for k, v in headers]
        authority = next((v.decode("latin-1") for k, v in pairs if k == b"host"), None)
        exchange = new_exchange(method, path + ("?" + query if query else ""), pairs, authority=authority)
        exchange.feed(bytes(body))
        exchange.end_request()
        try:
            self._instance.serve(exchange, timeout=timeout, depth=depth)
            head = exchange.head()
            if head is None or not exchange.body_complete:
                exchange.raise_failure()
        except GuestFault as e:
            raise native_error(e, self.ctx, self.limits) from None
        if head is None or not exchange.body_complete:
            why = "returned without setting a response" if head is None else "did not finish its response body"
            raise BadGuestResponse(f"{self.ctx.tag} {why}", component=self.ctx.component, version=self.ctx.version)
        status, raw = head
        return GuestResponse(status, [(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw], exchange.take())

    def close(self) -> None:
        """Release the Store (idempotent)."""
        self._instance.close()
