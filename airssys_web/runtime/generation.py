"""A generation: one deployed (component, version) with its own pool of ready instances.

Swaps never touch a generation in use: the host warms a new generation, publishes it in the route table, then
drains the old one - requests that already entered it finish there, new ones cannot enter - and closes it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from wasmtime.component import Component

from ..limits import Limits
from .dispatch import Dispatcher
from .imports import HostContext, build_linker
from .instance import GuestResponse, Slot
from .pool import InstancePool, Lease


class Generation:
    def __init__(self, component: Component, ctx: HostContext, limits: Limits, *, sha256: str = "",
                 dispatcher: Dispatcher | None = None) -> None:
        self.ctx = ctx
        self.limits = limits
        self.sha256 = sha256
        self.dispatcher = dispatcher
        self._component = component
        self._linker = build_linker(ctx)
        self.pool = InstancePool(self._new_slot, min_size=limits.min_instances,
                                 max_size=limits.max_instances, name=ctx.tag)
        self._in_flight = 0
        self._closing = False
        self._cond = threading.Condition()
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
        return Slot(self._component, self._linker, self.ctx, self.limits)

    def warm(self) -> None:
        """Pre-instantiate ``min_instances`` (at least one, which proves the component links and starts)."""
        self.pool.warm(max(1, self.limits.min_instances))

    # -- entering and leaving (the drain protocol) --------------------------------------------------------
    def enter(self) -> bool:
        """Register a request; False once draining began (the caller re-reads the route table)."""
        with self._cond:
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
        with self._cond:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._cond.notify_all()

    # -- calling --------------------------------------------------------------------------------------------
    def _run(self, lease: Lease, method: str, path: str, query: str, headers: Sequence[tuple[str, str]],
             body: bytes) -> GuestResponse:
        slot = self.pool.materialize(lease)
        try:
            return slot.call(method, path, query, headers, body)
        finally:
            self.pool.release(slot)

    async def handle(self, method: str, path: str, query: str, headers: Sequence[tuple[str, str]],
                     body: bytes) -> GuestResponse:
        """Call the guest off the event loop. The caller must hold an ``enter()``."""
        lease = await self.pool.acquire(self.limits.acquire_timeout)
        if self.dispatcher is None:
            return self._run(lease, method, path, query, headers, body)
        try:
            return await self.dispatcher.run(self._run, lease, method, path, query, headers, body)
        except RuntimeError:
            if self.dispatcher.closed:  # never queued: the lease is still ours
                self.pool.give_back(lease)
            raise

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
        return drained

    def close(self) -> None:
        """Close without waiting (idempotent); in-flight calls finish and their slots are dropped."""
        with self._cond:
            self._closing = True
        self.pool.close()
