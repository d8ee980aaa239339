"""The instance pool with real guests: checkouts, bounded waits, and poisoned-slot replacement."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest
from support import make_generation, text_component, wait_until

from airssys_web.errors import GuestTimeout, GuestTrap, PoolExhausted
from airssys_web.runtime.dispatch import Dispatcher
from airssys_web.runtime.instance import Slot
from airssys_web.runtime.limits import Limits
from airssys_web.runtime.maintenance import Maintenance
from airssys_web.runtime.pool import InstancePool


def test_warm_creates_min_instances() -> None:
    gen = make_generation(text_component("hi"), limits=Limits(min_instances=3, max_instances=5))
    gen.warm()
    assert gen.pool.size == 3 and gen.pool.idle == 3
    assert gen.call("GET", "/").body == b"hi"
    assert gen.pool.idle == 3  # the slot came back
    gen.close()
    assert gen.pool.idle == 0


def test_trap_discards_slot_and_refills(wat_guest: Callable[[str], bytes]) -> None:
    gen = make_generation(wat_guest("trap"), limits=Limits(min_instances=2, max_instances=2))
    gen.warm()
    originals = gen.pool.idle_slots()  # held, so that no new slot can reuse an original's id
    before = set(map(id, originals))
    with pytest.raises(GuestTrap):
        gen.call("GET", "/")
    assert gen.pool.discarded == 1
    wait_until(lambda: gen.pool.idle == 2)
    after = set(map(id, gen.pool.idle_slots()))
    assert len(before & after) == 1  # one of the original slots was replaced, never reused
    with pytest.raises(GuestTrap):  # the replacement works (and traps afresh)
        gen.call("GET", "/")
    gen.close()


def test_timeout_poisons_and_next_request_is_served(wat_guest: Callable[[str], bytes]) -> None:
    gen = make_generation(wat_guest("spin"), limits=Limits(timeout=0.05, min_instances=1, max_instances=1))
    gen.warm()
    with pytest.raises(GuestTimeout):
        gen.call("GET", "/")
    assert gen.pool.discarded == 1
    gen.close()


def test_concurrent_checkouts_never_share_a_slot() -> None:
    gen = make_generation(text_component("x"), limits=Limits(min_instances=0, max_instances=4))
    in_use: set[int] = set()
    lock = threading.Lock()
    overlaps = []
    failures: list[BaseException] = []  # collected here, asserted in the main thread
    answered = []
    original = Slot.call

    def tracking_call(self: Slot, *args: object, **kwargs: object) -> object:
        with lock:
            if id(self) in in_use:
                overlaps.append(id(self))
            in_use.add(id(self))
        try:
            return original(self, *args, **kwargs)  # type: ignore[arg-type]
        finally:
            with lock:
                in_use.discard(id(self))

    Slot.call = tracking_call  # type: ignore[method-assign]
    try:
        def worker() -> None:
            try:
                for _ in range(50):
                    answered.append(gen.call("GET", "/").body)
            except BaseException as e:
                failures.append(e)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        Slot.call = original  # type: ignore[method-assign]
    assert failures == [] and answered == [b"x"] * 400
    assert overlaps == []
    assert gen.pool.size <= 4
    gen.close()


def test_pool_exhaustion_gives_pool_exhausted_after_bounded_wait(wat_guest: Callable[[str], bytes]) -> None:
    gen = make_generation(wat_guest("spin"), limits=Limits(timeout=1.0, max_instances=1, min_instances=0,
                                                            acquire_timeout=0.05))
    dispatcher = Dispatcher(4)
    gen.dispatcher = dispatcher

    async def main() -> list[BaseException | object]:
        first = asyncio.ensure_future(gen.handle("GET", "/", "", [], b""))
        await asyncio.sleep(0)  # one step of the first request: it reserves the only instance before it suspends
        assert gen.pool.size == 1 and gen.pool.idle == 0
        second = await asyncio.gather(gen.handle("GET", "/", "", [], b""), return_exceptions=True)
        return [*second, *(await asyncio.gather(first, return_exceptions=True))]

    second, first = asyncio.run(main())
    assert isinstance(second, PoolExhausted)
    assert isinstance(first, GuestTimeout)
    dispatcher.close()
    gen.close()


def test_waiter_gets_slot_released_by_another_request() -> None:
    gen = make_generation(text_component("ok"), limits=Limits(max_instances=1, min_instances=1))
    gen.warm()
    dispatcher = Dispatcher(4)
    gen.dispatcher = dispatcher

    async def main() -> list[bytes]:
        results = await asyncio.gather(*[gen.handle("GET", "/", "", [], b"") for _ in range(20)])
        return [r.body for r in results]

    assert asyncio.run(main()) == [b"ok"] * 20
    assert gen.pool.size == 1
    dispatcher.close()
    gen.close()


def test_drain_waits_for_in_flight_and_refuses_new() -> None:
    gen = make_generation(text_component("d"))
    gen.warm()
    assert gen.enter()
    done = threading.Event()
    t = threading.Thread(target=lambda: (gen.drain(5), done.set()))
    t.start()
    wait_until(lambda: gen._closing, 10, "the drain to begin")  # then it waits for the request in flight
    assert not done.is_set()
    assert not gen.enter()  # draining: new requests go elsewhere
    gen.leave()
    t.join(5)
    assert done.is_set()


# -- sizing: try_acquire, growth ahead of demand, idle trimming (a fake clock: no sleeping) ---------------------

class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_pool(min_size: int, max_size: int, *, clock: FakeClock | None = None, grow_ahead: int = 0,
              idle_ttl: float = 60.0) -> InstancePool:
    gen = make_generation(text_component("p"))
    maintenance = Maintenance(timer=clock or FakeClock())
    return InstancePool(gen._new_slot, min_size=min_size, max_size=max_size, name="p", idle_ttl=idle_ttl,
                        grow_ahead=grow_ahead, maintenance=maintenance)


def test_try_acquire_never_waits_nor_instantiates() -> None:
    pool = make_pool(0, 2)
    assert pool.try_acquire() is None  # nothing idle: no instantiation on the caller's thread
    assert pool.size == 0
    pool.warm(1)
    slot = pool.try_acquire()
    assert slot is not None and pool.try_acquire() is None
    pool.release(slot)
    assert pool.idle == 1
    pool.close()
    assert pool.try_acquire() is None


def test_taking_the_last_idle_slot_grows_ahead_in_the_background() -> None:
    pool = make_pool(1, 3, grow_ahead=1)
    pool.warm(1)
    slot = pool.try_acquire()
    assert slot is not None
    wait_until(lambda: pool.idle == 1)  # a spare was created off the caller's thread
    assert pool.size == 2 and pool.created == 2
    second = pool.try_acquire()
    third_wait = pool.size
    assert second is not None
    wait_until(lambda: pool.idle == 1)
    assert pool.size == 3 and third_wait == 3  # grown to max_size, and no further
    third = pool.try_acquire()
    assert third is not None and pool.size == 3
    for s in (slot, second, third):
        pool.release(s)
    assert pool.idle == 3
    pool.close()


def test_idle_slots_beyond_min_size_are_trimmed_after_the_ttl() -> None:
    clock = FakeClock()
    pool = make_pool(2, 4, clock=clock, idle_ttl=60.0)
    pool.warm(4)
    assert pool.trim() == 0  # just put back
    clock.advance(59)
    assert pool.trim() == 0
    slot = pool.try_acquire()  # the most recently used slot is reused first...
    assert slot is not None
    clock.advance(2)
    pool.release(slot)  # ...and is fresh again
    assert pool.trim() == 2  # the three others are over the ttl; min_size keeps one of them
    assert pool.size == 2 and pool.idle == 2 and pool.trimmed == 2
    clock.advance(61)
    assert pool.trim() == 0  # never below min_size
    assert pool.size == 2
    assert pool.try_acquire() is slot
    pool.release(slot)
    pool.close()


def test_trimming_skips_slots_in_use_and_pools_at_min_size() -> None:
    clock = FakeClock()
    pool = make_pool(2, 2, clock=clock)
    pool.warm(2)
    a = pool.try_acquire()
    clock.advance(3600)
    assert pool.trim() == 0
    assert a is not None
    pool.release(a)
    pool.close()


def test_invalid_pool_sizes_are_rejected() -> None:
    with pytest.raises(ValueError, match="min_size"):
        make_pool(3, 2)
    with pytest.raises(ValueError, match="grow_ahead"):
        make_pool(0, 2, grow_ahead=-1)


def test_large_bodies_cross_intact_both_ways(wat_guest: Callable[[str], bytes]) -> None:
    """Bodies are copied in bulk: 16 MiB in and out, bounded only by max_body and the memory cap."""
    gen = make_generation(wat_guest("echo"), limits=Limits(memory=128 * 1024 * 1024, max_body=32 * 1024 * 1024))
    body = bytes(range(256)) * (16 * 4096)  # 16 MiB, every byte value
    assert gen.call("POST", "/", body=body).body == body
    assert gen.call("POST", "/", body=b"small").body == b"small"  # the same instance keeps serving
    assert gen.pool.discarded == 0
    gen.close()


def test_a_body_larger_than_the_memory_cap_is_a_memory_limit(wat_guest: Callable[[str], bytes]) -> None:
    from airssys_web.errors import GuestMemoryLimit

    gen = make_generation(wat_guest("echo"), limits=Limits(memory=4 * 1024 * 1024, max_body=32 * 1024 * 1024))
    with pytest.raises(GuestMemoryLimit, match="memory limit of 4 MiB"):
        gen.call("POST", "/", body=b"x" * (8 * 1024 * 1024))
    assert gen.call("POST", "/", body=b"small").body == b"small"  # a fresh instance serves on
    gen.close()
