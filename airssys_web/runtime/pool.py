"""A bounded pool of pre-instantiated guest instances for one generation.

Slots are checked out by one caller at a time (a Store is never entered from two threads at once). When every slot
is busy and the pool is at ``max_size``, callers wait - asynchronously on the event loop, or blocking from a thread -
for at most ``timeout`` seconds, then get PoolExhausted (503). A poisoned slot (the guest trapped or ran out of
time) is never reused: it is dropped, and the pool refills itself back to ``min_size`` in the background.

Sizing: ``warm()`` pre-instantiates ``min_size`` slots. When a checkout takes the last idle slot, ``grow_ahead``
more are created in the background (up to ``max_size``), so a growing load rarely waits for an instantiation on
its request path. Slots idle for longer than ``idle_ttl`` seconds beyond ``min_size`` are closed by ``trim()``,
which the runtime's :class:`~airssys_web.runtime.maintenance.Maintenance` calls every few seconds; background
creations run on its refill workers too. The clock is injectable (``timer=``, as in cachetools) so tests advance
it instead of sleeping.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Final

from ..errors import PoolExhausted
from .instance import Slot
from .maintenance import Maintenance

log = logging.getLogger("airssys_web.pool")


class _CreateToken:
    """Capacity reserved for a slot the receiver must create itself (instantiation happens off the loop)."""

    def __repr__(self) -> str:
        return "CREATE"


CREATE: Final = _CreateToken()
Lease = Slot | _CreateToken

#: Default seconds a slot beyond ``min_size`` may stay idle before ``trim()`` closes it.
IDLE_TTL = 300.0


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class _Waiter:
    __slots__ = ("item", "notify")

    def __init__(self, notify: Callable[[], None]) -> None:
        self.item: Lease | None = None
        self.notify = notify


class InstancePool:
    def __init__(self, factory: Callable[[], Slot], *, min_size: int, max_size: int, name: str,
                 maintenance: Maintenance, idle_ttl: float = IDLE_TTL, grow_ahead: int = 1,
                 single_use: bool = False) -> None:
        if not 0 <= min_size <= max_size or max_size < 1:
            raise ValueError(f"{name}: pool sizes need 0 <= min_size <= max_size and max_size >= 1")
        if idle_ttl < 0 or grow_ahead < 0:
            raise ValueError(f"{name}: idle_ttl and grow_ahead must not be negative")
        self._factory = factory
        #: Request isolation: a slot serves one call and is closed; the pool only bounds how many run at once.
        self.single_use = single_use
        if single_use:
            min_size, grow_ahead = 0, 0
        self.min_size = min_size
        self.max_size = max_size
        self.name = name
        self.idle_ttl = idle_ttl
        self.grow_ahead = grow_ahead
        self._maintenance = maintenance
        self._timer = maintenance.timer
        self._idle: list[Slot] = []  # a stack: the most recently used slot (warm caches) is reused first
        self._since: list[float] = []  # when each idle slot was put back, oldest first
        self._total = 0  # idle + checked out + being created
        self._waiters: deque[_Waiter] = deque()
        self._lock = threading.Lock()
        self._closed = False
        self.discarded = 0
        self.created = 0
        self.trimmed = 0
        maintenance.register(self)

    # -- introspection -------------------------------------------------------------------------------------
    @property
    def size(self) -> int:
        return self._total

    @property
    def idle(self) -> int:
        return len(self._idle)

    def idle_slots(self) -> list[Slot]:
        """The idle slots, least recently used first (a snapshot, for introspection and tests)."""
        with self._lock:
            return list(self._idle)

    # -- acquiring -----------------------------------------------------------------------------------------
    def _pop_locked(self) -> Slot:
        self._since.pop()
        slot = self._idle.pop()
        if not self._idle and self.grow_ahead and self._total < self.max_size and not self._closed:
            grow = min(self.grow_ahead, self.max_size - self._total)
            self._total += grow
            for _ in range(grow):
                if not self._maintenance.submit(self._refill_one):
                    self._total -= 1
        return slot

    def _reserve_locked(self) -> Lease | None:
        if self._closed:
            raise PoolExhausted(f"{self.name}: pool is closed")
        if self._idle:
            return self._pop_locked()
        if self._total < self.max_size:
            self._total += 1
            return CREATE
        return None

    def try_reserve(self) -> bool:
        """Reserve capacity for a slot the caller creates itself (``materialize(CREATE)``), without waiting."""
        with self._lock:
            if self._closed or self._total >= self.max_size:
                return False
            self._total += 1
            return True

    def try_acquire(self) -> Slot | None:
        """An idle slot right now, or None (never waits, never instantiates: safe on the event loop)."""
        with self._lock:
            if self._idle and not self._closed:
                return self._pop_locked()
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
            slot = self._factory()
        except BaseException:
            self._discard()
            raise
        self.created += 1
        return slot

    # -- returning -----------------------------------------------------------------------------------------
    def give_back(self, lease: Lease) -> None:
        """Return an unused lease (the caller gave up before using it)."""
        if isinstance(lease, Slot):
            self.release(lease)
        else:
            self._discard()

    def release(self, slot: Slot) -> None:
        """Return a slot after a call; a poisoned one is discarded and replaced in the background."""
        if self.single_use:
            slot.close()
            self._discard(refill=False)
            return
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
                    self._since.append(self._timer())
                return
            self._total -= 1
        slot.close()

    def _discard(self, *, refill: bool = True) -> None:
        """One slot (or reserved capacity) is gone: let a waiter create a replacement, or refill to min_size."""
        with self._lock:
            self._total -= 1
            if self._closed:
                return
            if self._waiters:
                self._total += 1
                self._hand_to_waiter_locked(CREATE)
                return
            if self._total >= self.min_size or not refill:
                return
            self._total += 1
        if not self._maintenance.submit(self._refill_one):
            with self._lock:
                self._total -= 1

    def _hand_to_waiter_locked(self, item: Lease) -> None:
        waiter = self._waiters.popleft()
        waiter.item = item
        waiter.notify()

    def _refill_one(self) -> None:
        """Create one slot for capacity already reserved in ``_total`` (runs on the maintenance threads)."""
        try:
            if self._closed:
                raise PoolExhausted(f"{self.name}: pool is closed")
            slot = self._factory()
        except PoolExhausted:
            self._discard(refill=False)
            return
        except Exception:  # a waiter (if any) retries and gets the error; no background retry loop
            log.exception("%s: could not create an instance in the background", self.name)
            self._discard(refill=False)
            return
        self.created += 1
        self._put(slot)

    def trim(self) -> int:
        """Close slots idle longer than ``idle_ttl`` while the pool is above ``min_size``; return how many."""
        now = self._timer()
        victims: list[Slot] = []
        with self._lock:
            while (self._idle and self._total > self.min_size and now - self._since[0] > self.idle_ttl):
                self._since.pop(0)
                victims.append(self._idle.pop(0))
                self._total -= 1
            self.trimmed += len(victims)
        for slot in victims:
            slot.close()
        return len(victims)

    # -- lifecycle -----------------------------------------------------------------------------------------
    def warm(self, count: int) -> None:
        """Instantiate up to ``count`` slots now (in the calling thread); errors propagate to the caller.

        A single-use pool keeps none: it makes one trial instance (proving the component starts) and drops it."""
        if self.single_use:
            self._factory().close()
            self.created += 1
            return
        created: list[Slot] = []
        try:
            for _ in range(count):
                with self._lock:
                    if self._total >= self.max_size:
                        break
                    self._total += 1
                try:
                    created.append(self._factory())
                    self.created += 1
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
            idle, self._idle, self._since = self._idle, [], []
            self._total -= len(idle)
        self._maintenance.unregister(self)
        for slot in idle:
            slot.close()
