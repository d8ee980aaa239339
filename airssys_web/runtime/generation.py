"""A generation: one deployed (component, version), linked once, with its own pool of ready instances.

The component is linked against what the host provides once, when the generation is made (a native ``Pre``
holding wasmtime's ``InstancePre``), so every instance after that is a Store plus an instantiation from the
pooling allocator. With ``isolation="pooled"`` instances are reused, one request at a time each; with
``isolation="request"`` every request gets a fresh instance that is dropped after it (nothing a request leaves
in memory can reach the next one).

Swaps never touch a generation in use: the host warms a new generation, publishes it in the route table, then
drains the old one - requests that already entered it finish there, new ones cannot enter - and closes it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from time import perf_counter, thread_time
from typing import TYPE_CHECKING

from .. import _native
from ..errors import AirssysError, HostClosed
from ..observability.stats import RequestStats
from .engine import Runtime
from .imports import HostBridge, HostContext
from .instance import GuestFault, GuestResponse, Slot, native_error
from .limits import Limits
from .pool import CREATE, InstancePool, Lease
from .worlds import VERSION_HEADER, World, detect_world, world_named

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send


class Generation:
    """One version, linked once, with its pool. ``runtime`` supplies the engines, the worker threads and the pool
    upkeep; the generation's component must have been compiled by that runtime's engines."""

    def __init__(self, component: _native.Component, ctx: HostContext, limits: Limits, *, runtime: Runtime,
                 sha256: str = "") -> None:
        self.ctx = ctx
        self.limits = limits
        self.sha256 = sha256
        self.dispatcher = runtime.dispatcher
        self.inline = self.dispatcher.new_policy()
        if ctx.blocking_io:  # outbound fetch / KV may block for seconds: never on the event loop
            self.inline.long_running = True
        #: The world the component serves (``world.name``: "airssys:web" or "wasi:http", 0.2 or 0.3): the object
        #: that answers a request with this generation (``runtime.worlds``).
        self.world: World = world_named(detect_world(component))
        self.fresh = limits.isolation == "request"
        #: What this version answered, for metrics and the dashboard (``observability.stats``).
        self.stats = RequestStats()
        #: ``perf_counter()`` when building it began (set by whoever builds it): a swap's preparation time.
        self.built_at: float | None = None
        self._on_close: list[Callable[[Generation], None]] = []
        try:
            self._pre = _native.Pre(
                runtime.native, component, tag=ctx.tag, config=dict(ctx.config),
                preopens=[(f.host, f.guest, f.writable) for f in ctx.files], memory=limits.memory,
                timeout=limits.timeout, fuel=limits.fuel if ctx.fuel else None, host=HostBridge(ctx, self.stats))
        except GuestFault as e:
            raise native_error(e, ctx, limits) from None
        self.pool = InstancePool(self._new_slot, min_size=0 if self.fresh else limits.min_instances,
                                 max_size=limits.max_instances, name=ctx.tag, maintenance=runtime.maintenance,
                                 single_use=self.fresh)
        #: ``tag`` as bytes, for the response header that names the version (encoded once, not per request).
        self.tag_bytes = ctx.tag.encode()
        #: The response headers naming what answered (a :class:`~.chain.Chain` adds its stages).
        self.version_headers = [(VERSION_HEADER, self.tag_bytes)]
        self._in_flight = 0
        self._closing = False
        # enter/leave (every request) take the plain lock, a C-level ``with``; only drain() waits on the condition.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self.requests = 0
        # Outcomes of answered requests, counted by the middleware (on the event loop) for auto-rollback.
        self.completed = 0
        self.failed = 0

    @property
    def name(self) -> str:
        return self.ctx.component

    @property
    def version(self) -> str:
        return self.ctx.version

    @property
    def tag(self) -> str:
        return self.ctx.tag

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def _new_slot(self) -> Slot:
        return Slot(self._pre, self.ctx, self.limits)

    def warm(self) -> None:
        """Pre-instantiate ``min_instances`` (at least one, which proves the component links and starts; with
        request isolation that one is only a trial and is dropped)."""
        self.pool.warm(max(1, self.limits.min_instances))

    # -- entering and leaving (the drain protocol) --------------------------------------------------------
    def enter(self) -> bool:
        """Register a request; False once draining began (the caller re-reads the route table)."""
        with self._lock:
            if self._closing:
                return False
            self._in_flight += 1
            self.requests += 1
            return True

    def outcome(self, status: int, error: AirssysError | None = None) -> None:
        """Count one answered request; a status >= 500 (5xx, trap, timeout, no instance) is a failure, and a guest
        ``error`` is counted by its kind too."""
        self.completed += 1
        if status >= 500:
            self.failed += 1
            if error is not None:
                self.stats.failed(error)

    def counts(self) -> tuple[int, int]:
        """(completed, failed) so far: what an auto-rollback watch samples."""
        return self.completed, self.failed

    def leave(self) -> None:
        with self._lock:
            self._in_flight -= 1
            if self._in_flight == 0 and self._closing:  # only drain() waits (threading.Condition is pure Python)
                self._cond.notify_all()

    # -- calling --------------------------------------------------------------------------------------------
    async def serve(self, scope: Scope, receive: Receive, send: Send, extra: list[tuple[bytes, bytes]], *,
                    body_timeout: float) -> int:
        """Answer one ASGI request the way this generation's world does (see :class:`~.worlds.World`)."""
        return await self.world.serve(self, scope, receive, send, extra, body_timeout=body_timeout)

    def _run(self, lease: Lease, method: str, path: str, query: str, headers: Sequence[tuple[str, str]],
             body: bytes, timeout: float | None = None, next: _native.Next | None = None,
             depth: int = 0) -> GuestResponse:
        """A call on a worker thread (or a plain thread): its CPU time predicts what it would cost inline.

        Thread CPU time, not wall time: a worker waits for the GIL while the loop runs Python, which says nothing
        about the guest. A slot's first call (cold caches, lazy page faults) is not a sample.
        """
        started = thread_time()
        slot = self.pool.materialize(lease)
        sample = slot.calls > 0 or self.fresh  # a fresh instance per request: every call is a whole sample
        if not self.fresh:
            started = thread_time()
        try:
            return slot.call(method, path, query, headers, body, timeout=timeout, next=next, depth=depth)
        finally:
            if sample:
                self.inline.record(thread_time() - started)
            self.pool.release(slot)

    def _run_inline(self, slot: Slot, method: str, path: str, query: str, headers: Sequence[tuple[str, str]],
                    body: bytes, started: float | None = None) -> GuestResponse:
        """A call on the event loop, accounted by how long it held the loop (two clock reads: the hot path)."""
        if started is None:
            started = perf_counter()
        try:
            return slot.call(method, path, query, headers, body)
        finally:
            self.inline.record_inline(perf_counter() - started)
            self.pool.release(slot)

    def _run_fresh_inline(self, method: str, path: str, query: str, headers: Sequence[tuple[str, str]],
                          body: bytes) -> GuestResponse:
        """Instantiate, call and drop on the event loop (capacity already reserved), accounted as one call."""
        started = perf_counter()
        try:
            slot = self.pool.materialize(CREATE)
        except BaseException:
            self.inline.record_inline(perf_counter() - started)
            raise
        return self._run_inline(slot, method, path, query, headers, body, started=started)

    async def handle(self, method: str, path: str, query: str, headers: Sequence[tuple[str, str]],
                     body: bytes) -> GuestResponse:
        """Call the guest: inline if its calls are known to be short (see ``dispatch``), else on a worker thread.

        The caller must hold an ``enter()``.
        """
        dispatcher = self.dispatcher
        if self.fresh:
            if self.inline.allows(len(body)) and self.pool.try_reserve():
                return self._run_fresh_inline(method, path, query, headers, body)
            slot = None
        else:
            slot = self.pool.try_acquire()
            if slot is not None and slot.calls and self.inline.allows(len(body)):
                return self._run_inline(slot, method, path, query, headers, body)
        lease = slot if slot is not None else await self.pool.acquire(self.limits.acquire_timeout)
        try:
            fut = dispatcher.submit(self._run, lease, method, path, query, headers, body,
                                    on_skip=lambda: self.pool.give_back(lease))
        except RuntimeError:  # the dispatcher is closed (shutting down): nothing was queued
            self.pool.give_back(lease)
            raise HostClosed(f"{self.tag}: the host is shutting down", component=self.name,
                             version=self.version) from None
        return await fut

    def call(self, method: str, path: str, query: str = "", headers: Sequence[tuple[str, str]] = (),
             body: bytes = b"", *, timeout: float | None = None, next: _native.Next | None = None,
             depth: int = 0) -> GuestResponse:
        """Blocking call from a plain thread (tests, ``airssys-web call``, pipelines, component calls, WSGI).

        ``timeout``, ``next`` and ``depth`` are as for :meth:`Slot.call`: the caller's time left, a pipeline
        stage's next handler, and the component-to-component calls already made. The wait for a free instance is
        bounded by ``acquire_timeout`` and by ``timeout``.
        """
        wait = self.limits.acquire_timeout if timeout is None else min(self.limits.acquire_timeout, timeout)
        lease = self.pool.acquire_blocking(wait)
        return self._run(lease, method, path, query, headers, body, timeout, next, depth)

    # -- lifecycle ------------------------------------------------------------------------------------------
    def retire(self) -> None:
        """Refuse new requests from now on (those in flight finish); :meth:`drain` or :meth:`close` follows."""
        with self._lock:
            self._closing = True

    def drain(self, timeout: float | None = None) -> bool:
        """Refuse new requests, wait for in-flight ones (at most ``timeout`` s), then close. True if drained."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._closing = True
            while self._in_flight:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._cond.wait(remaining)
            drained = self._in_flight == 0
        self.pool.close()
        self.ctx.close()  # the outbound fetcher's connections
        self._closed()
        return drained

    def close(self) -> None:
        """Close without waiting (idempotent); in-flight calls finish and their slots are dropped."""
        with self._cond:
            self._closing = True
        self.pool.close()
        self.ctx.close()
        self._closed()

    def on_close(self, callback: Callable[[Generation], None]) -> None:
        """Call ``callback(self)`` once, when the generation has closed (after its drain): metrics release it."""
        self._on_close.append(callback)

    def _closed(self) -> None:
        with self._lock:
            callbacks, self._on_close = self._on_close, []
        for callback in callbacks:
            callback(self)
