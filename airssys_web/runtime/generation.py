"""A generation: one deployed (component, version) with its own pool of ready instances.

Swaps never touch a generation in use: the host warms a new generation, publishes it in the route table, then
drains the old one - requests that already entered it finish there, new ones cannot enter - and closes it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from time import perf_counter, thread_time

from wasmtime.component import Component, Linker

from ..limits import Limits
from .dispatch import Dispatcher, InlinePolicy
from .imports import HostContext, build_linker
from .instance import GuestResponse, Slot
from .pool import InstancePool, Lease
from .wasi_http import WASI_HTTP_WORLD, detect_world


class Generation:
    def __init__(self, component: Component, ctx: HostContext, limits: Limits, *, sha256: str = "",
                 dispatcher: Dispatcher | None = None) -> None:
        self.ctx = ctx
        self.limits = limits
        self.sha256 = sha256
        self.dispatcher = dispatcher
        self.inline = dispatcher.new_policy() if dispatcher is not None else InlinePolicy()
        if ctx.blocking_io:  # outbound fetch / KV may block for seconds: never on the event loop
            self.inline.long_running = True
        self._component = component
        #: The world the component serves: "airssys:web" or "wasi:http" (served by runtime.wasi_http).
        self.world = detect_world(component)
        self._linker = build_linker(ctx) if self.world != WASI_HTTP_WORLD else _wasi_http_linker(ctx, component)
        self.pool = InstancePool(self._new_slot, min_size=limits.min_instances,
                                 max_size=limits.max_instances, name=ctx.tag)
        #: ``tag`` as bytes, for the response header that names the version (encoded once, not per request).
        self.tag_bytes = ctx.tag.encode()
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
        if self.world == WASI_HTTP_WORLD:
            from .wasi_http.slot import WasiHttpSlot
            return WasiHttpSlot(self._component, self._linker, self.ctx, self.limits)
        return Slot(self._component, self._linker, self.ctx, self.limits)

    def warm(self) -> None:
        """Pre-instantiate ``min_instances`` (at least one, which proves the component links and starts)."""
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

    def outcome(self, status: int) -> None:
        """Count one answered request; a status >= 500 (5xx, trap, timeout, no instance) is a failure."""
        self.completed += 1
        if status >= 500:
            self.failed += 1

    def counts(self) -> tuple[int, int]:
        """(completed, failed) so far: what an auto-rollback watch samples."""
        return self.completed, self.failed

    def leave(self) -> None:
        with self._lock:
            self._in_flight -= 1
            if self._in_flight == 0 and self._closing:  # only drain() waits (threading.Condition is pure Python)
                self._cond.notify_all()

    # -- calling --------------------------------------------------------------------------------------------
    def _run(self, lease: Lease, method: str, path: str, query: str, headers: Sequence[tuple[str, str]],
             body: bytes) -> GuestResponse:
        """A call on a worker thread (or a plain thread): its CPU time predicts what it would cost inline.

        Thread CPU time, not wall time: a worker waits for the GIL while the loop runs Python, which says nothing
        about the guest. A slot's first call (cold caches, lazy page faults) is not a sample.
        """
        slot = self.pool.materialize(lease)
        sample = slot.calls > 0
        started = thread_time()
        try:
            return slot.call(method, path, query, headers, body)
        finally:
            if sample:
                self.inline.record(thread_time() - started)
            self.pool.release(slot)

    def _run_inline(self, slot: Slot, method: str, path: str, query: str, headers: Sequence[tuple[str, str]],
                    body: bytes) -> GuestResponse:
        """A call on the event loop, accounted by how long it held the loop (two clock reads: the hot path)."""
        started = perf_counter()
        try:
            return slot.call(method, path, query, headers, body)
        finally:
            self.inline.record_inline(perf_counter() - started)
            self.pool.release(slot)

    async def handle(self, method: str, path: str, query: str, headers: Sequence[tuple[str, str]],
                     body: bytes) -> GuestResponse:
        """Call the guest: inline if its calls are known to be short (see ``dispatch``), else on a worker thread.

        The caller must hold an ``enter()``.
        """
        dispatcher = self.dispatcher
        slot = self.pool.try_acquire()
        if slot is not None and slot.calls and self.inline.allows(len(body)):
            return self._run_inline(slot, method, path, query, headers, body)
        lease = slot if slot is not None else await self.pool.acquire(self.limits.acquire_timeout)
        if dispatcher is None:  # no worker threads (tests, embedding): call right here
            return self._run(lease, method, path, query, headers, body)
        try:
            fut = dispatcher.submit(self._run, lease, method, path, query, headers, body,
                                    on_skip=lambda: self.pool.give_back(lease))
        except RuntimeError:  # the dispatcher is closed (shutting down): nothing was queued
            self.pool.give_back(lease)
            raise
        return await fut

    def call(self, method: str, path: str, query: str = "", headers: Sequence[tuple[str, str]] = (),
             body: bytes = b"") -> GuestResponse:
        """Blocking call from a plain thread (tests, ``airssys-web call``, WSGI)."""
        lease = self.pool.acquire_blocking(self.limits.acquire_timeout)
        return self._run(lease, method, path, query, headers, body)

    # -- lifecycle ------------------------------------------------------------------------------------------
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
        return drained

    def close(self) -> None:
        """Close without waiting (idempotent); in-flight calls finish and their slots are dropped."""
        with self._cond:
            self._closing = True
        self.pool.close()
        self.ctx.close()


def _wasi_http_linker(ctx: HostContext, component: Component) -> Linker:
    from .wasi_http.linker import build_linker as build_wasi_http_linker
    return build_wasi_http_linker(ctx, component)
