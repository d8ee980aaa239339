"""The instance pool with real guests: checkouts, bounded waits, and poisoned-slot replacement."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest

from airssys_web.errors import GuestTimeout, GuestTrap, PoolExhausted
from airssys_web.limits import Limits
from airssys_web.runtime.dispatch import Dispatcher
from airssys_web.runtime.instance import Slot

from support import make_generation, text_component


def wait_until(cond: Callable[[], bool], bound: float = 10.0) -> None:
    deadline = time.monotonic() + bound
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


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
    before = set(map(id, gen.pool._idle))
    with pytest.raises(GuestTrap):
        gen.call("GET", "/")
    assert gen.pool.discarded == 1
    wait_until(lambda: gen.pool.idle == 2)
    after = set(map(id, gen.pool._idle))
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
    original = Slot.call

    def tracking_call(self: Slot, *args: object) -> object:
        with lock:
            if id(self) in in_use:
                overlaps.append(id(self))
            in_use.add(id(self))
        try:
            return original(self, *args)  # type: ignore[arg-type]
        finally:
            with lock:
                in_use.discard(id(self))

    Slot.call = tracking_call  # type: ignore[method-assign]
    try:
        def worker() -> None:
            for _ in range(50):
                assert gen.call("GET", "/").body == b"x"

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        Slot.call = original  # type: ignore[method-assign]
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
        await asyncio.sleep(0.2)  # let the first request occupy the only instance
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
    time.sleep(0.05)
    assert not done.is_set()
    assert not gen.enter()  # draining: new requests go elsewhere
    gen.leave()
    t.join(5)
    assert done.is_set()
