"""A bounded pool of pre-instantiated guest instances for one generation.

Slots are checked out by one caller at a time (a Store is never entered from two threads at once). When every slot
is busy and the pool is at ``max_size``, callers wait - asynchronously on the event loop, or blocking from a thread -
for at most ``timeout`` seconds, then get PoolExhausted (503). A poisoned slot (the guest trapped or ran out of
time) is never reused: it is dropped, and the pool refills itself back to ``min_size`` in the background.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Final

from ..errors import PoolExhausted
from .instance import Slot

log = logging.getLogger("airssys_web.pool")


class _CreateToken:
    """Capacity reserved for a slot the receiver must create itself (instantiation happens off the loop)."""

    def __repr__(self) -> str:
        return "CREATE"


CREATE: Final = _CreateToken()
Lease = Slot | _CreateToken

_maintenance = ThreadPoolExecutor(max_workers=2, thread_name_prefix="airssys-refill")


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class _Waiter:
    __slots__ = ("item", "notify")

    def __init__(self, notify: Callable[[], None]) -> None:
        self.item: Lease | None = None
        self.notify = notify


class InstancePool:
    def __init__(self, factory: Callable[[], Slot], *, min_size: int, max_size: int, name: str) -> None:
        self._factory = factory
        self.min_size = min_size
        self.max_size = max_size
        self.name = name
        self._idle: list[Slot] = []
        self._total = 0  # idle + checked out + being created
        self._waiters: deque[_Waiter] = deque()
        self._lock = threading.Lock()
        self._closed = False
        self.discarded = 0

    # -- introspection -------------------------------------------------------------------------------------
    @property
    def size(self) -> int:
        return self._total

    @property
    def idle(self) -> int:
        return len(self._idle)

    # -- acquiring -----------------------------------------------------------------------------------------
    def _reserve_locked(self) -> Lease | None:
        if self._closed:
            raise PoolExhausted(f"{self.name}: pool is closed")
        if self._idle:
            return self._idle.pop()
        if self._total < self.max_size:
            self._total += 1
            return CREATE
        return None

    async def acquire(self, timeout: float) -> Lease:
        """Reserve a slot (or capacity to create one) without blocking the event loop."""
        with self._lock:
            lease = self._reserve_locked()
            if lease is not None:
                return lease
            loop = asyncio.get_running_loop()
            fut: asyncio.Future[None] = loop.create_future()

            def notify() -> None:
                loop.call_soon_threadsafe(_wake, fut)

            waiter = _Waiter(notify)
            self._waiters.append(waiter)
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            with self._lock:
                if waiter.item is None:
                    self._waiters.remove(waiter)
                    raise PoolExhausted(
                        f"{self.name}: all {self.max_size} instances stayed busy for {timeout:g}s") from None
        except asyncio.CancelledError:
            with self._lock:
                if waiter.item is None:
                    self._waiters.remove(waiter)
            if waiter.item is not None:
                self.give_back(waiter.item)
            raise
        assert waiter.item is not None
        return waiter.item

    def acquire_blocking(self, timeout: float) -> Lease:
        """Thread-side twin of :meth:`acquire` for callers that are not on an event loop."""
        with self._lock:
            lease = self._reserve_locked()
            if lease is not None:
                return lease
            event = threading.Event()
            waiter = _Waiter(event.set)
            self._waiters.append(waiter)
        if not event.wait(timeout):
            with self._lock:
                if waiter.item is None:
                    self._waiters.remove(waiter)
                    raise PoolExhausted(f"{self.name}: all {self.max_size} instances stayed busy for {timeout:g}s")
        assert waiter.item is not None
        return waiter.item

    def materialize(self, lease: Lease) -> Slot:
        """Turn a lease into a usable slot, instantiating one if the lease is reserved capacity."""
        if isinstance(lease, Slot):
            return lease
        try:
            return self._factory()
        except BaseException:
            self._discard()
            raise

    # -- returning -----------------------------------------------------------------------------------------
    def give_back(self, lease: Lease) -> None:
        """Return an unused lease (the caller gave up before using it)."""
        if isinstance(lease, Slot):
            self.release(lease)
        else:
            self._discard()

    def release(self, slot: Slot) -> None:
        """Return a slot after a call; a poisoned one is discarded and replaced in the background."""
        if slot.poisoned:
            slot.close()
            self.discarded += 1
            self._discard()
        else:
            self._put(slot)

    def _put(self, slot: Slot) -> None:
        with self._lock:
            if not self._closed:
                if self._waiters:
                    self._hand_to_waiter_locked(slot)
                else:
                    self._idle.append(slot)
                return
            self._total -= 1
        slot.close()

    def _discard(self) -> None:
        """One slot (or reserved capacity) is gone: let a waiter create a replacement, or refill to min_size."""
        with self._lock:
            self._total -= 1
            if self._closed:
                return
            if self._waiters:
                self._total += 1
                self._hand_to_waiter_locked(CREATE)
                return
            if self._total >= self.min_size:
                return
            self._total += 1
        _maintenance.submit(self._refill_one)

    def _hand_to_waiter_locked(self, item: Lease) -> None:
        waiter = self._waiters.popleft()
        waiter.item = item
        waiter.notify()

    def _refill_one(self) -> None:
        try:
            slot = self._factory()
        except Exception:
            log.exception("%s: could not refill a discarded instance", self.name)
            with self._lock:
                self._total -= 1
            return
        self._put(slot)

    # -- lifecycle -----------------------------------------------------------------------------------------
    def warm(self, count: int) -> None:
        """Instantiate up to ``count`` slots now (in the calling thread); errors propagate to the caller."""
        created: list[Slot] = []
        try:
            for _ in range(count):
                with self._lock:
                    if self._total >= self.max_size:
                        break
                    self._total += 1
                try:
                    created.append(self._factory())
                except BaseException:
                    with self._lock:
                        self._total -= 1
                    raise
        finally:
            for slot in created:
                self._put(slot)

    def close(self) -> None:
        """Close idle slots now; slots still checked out are closed when returned (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            idle, self._idle = self._idle, []
            self._total -= len(idle)
        for slot in idle:
            slot.close()
