"""Where guest calls run: the worker-thread dispatcher (results, errors, cancellation, closing) and the inline
policy that lets measured-short guests run on the event loop. Nothing here is timed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from support import artifacts, make_generation, runtime_for, text_component, wait_until

from airssys_web.errors import GuestTimeout, HostClosed
from airssys_web.guest.build import compile_wat
from airssys_web.lifecycle.host import AirssysHost
from airssys_web.lifecycle.registry import EmbeddedRegistry
from airssys_web.lifecycle.settings import VersionSettings
from airssys_web.runtime.artifacts import sha256_hex
from airssys_web.runtime.dispatch import Dispatcher, InlinePolicy, default_threads
from airssys_web.runtime.generation import Generation
from airssys_web.runtime.imports import HostContext
from airssys_web.runtime.limits import Limits
from airssys_web.web.middleware import AirssysMiddleware

BUSY = Path(__file__).resolve().parents[1] / "benchmarks" / "guests" / "busy.wat"


# -- the dispatcher ---------------------------------------------------------------------------------------------

def test_run_returns_the_result_from_a_worker_thread() -> None:
    dispatcher = Dispatcher(2)

    async def main() -> tuple[int, str]:
        return await dispatcher.run(lambda a, b: a + b, 40, 2), await dispatcher.run(threading.current_thread)

    total, thread = asyncio.run(main())
    assert total == 42
    assert thread.name.startswith("airssys-worker")  # type: ignore[attr-defined]
    dispatcher.close()


def test_exceptions_reach_the_awaiting_task() -> None:
    dispatcher = Dispatcher(1)

    def boom() -> None:
        raise ValueError("from the guest side")

    async def main() -> None:
        with pytest.raises(ValueError, match="from the guest side"):
            await dispatcher.run(boom)
        assert await dispatcher.run(lambda: "still serving") == "still serving"

    asyncio.run(main())
    dispatcher.close()


def test_threads_start_lazily_and_are_reused() -> None:
    dispatcher = Dispatcher(3)
    assert dispatcher.threads == 0

    async def main() -> None:
        for _ in range(20):  # sequential calls: one thread suffices
            await dispatcher.run(lambda: None)

    asyncio.run(main())
    assert dispatcher.threads == 1
    dispatcher.close()


def test_thread_count_is_capped() -> None:
    dispatcher = Dispatcher(2)
    gate = threading.Event()

    async def main() -> list[str]:
        jobs = [dispatcher.run(lambda: (gate.wait(10), threading.current_thread().name)[1]) for _ in range(6)]
        tasks = [asyncio.ensure_future(j) for j in jobs]
        await asyncio.sleep(0)
        gate.set()
        return list(await asyncio.gather(*tasks))

    names = asyncio.run(main())
    assert len(names) == 6 and len(set(names)) <= 2
    assert dispatcher.threads == 2
    assert default_threads() >= 64  # stalled calls of one component must not take every thread
    dispatcher.close()


def test_idle_threads_leave_beyond_the_kept_ones() -> None:
    dispatcher = Dispatcher(8, idle_exit=0.05)
    dispatcher._keep = 1  # keep one thread whatever the cores
    gate = threading.Event()

    async def main() -> None:
        tasks = [asyncio.ensure_future(dispatcher.run(gate.wait, 10)) for _ in range(4)]
        await asyncio.sleep(0)
        gate.set()
        await asyncio.gather(*tasks)

    asyncio.run(main())
    assert dispatcher.threads == 4
    wait_until(lambda: dispatcher.threads == 1, timeout=10)
    assert asyncio.run(_one(dispatcher)) == "still serving"  # the kept thread (or a new one) takes new work
    dispatcher.close()


async def _one(dispatcher: Dispatcher) -> str:
    return await dispatcher.run(lambda: "still serving")


def test_cancelled_before_a_worker_picks_it_up_is_skipped() -> None:
    dispatcher = Dispatcher(1)
    gate = threading.Event()
    ran: list[str] = []
    skipped: list[str] = []
    done = threading.Event()

    async def main() -> None:
        # submit() queues at once, in order: the only worker takes the blocker first, so the victim is still
        # queued when it is cancelled (the gate opens only after that)
        blocker = dispatcher.submit(gate.wait, 10)
        victim = dispatcher.submit(ran.append, "victim", on_skip=lambda: (skipped.append("victim"), done.set()))
        victim.cancel()
        with pytest.raises(asyncio.CancelledError):
            await victim
        gate.set()
        await blocker

    asyncio.run(main())
    assert done.wait(10)
    assert ran == [] and skipped == ["victim"]
    dispatcher.close()


def test_cancelled_while_running_finishes_and_drops_the_result() -> None:
    dispatcher = Dispatcher(1)
    started, gate, finished = threading.Event(), threading.Event(), threading.Event()

    def job() -> str:
        started.set()
        gate.wait(10)
        finished.set()
        return "nobody reads this"

    async def main() -> None:
        task = asyncio.ensure_future(dispatcher.run(job))
        assert await asyncio.to_thread(started.wait, 10)  # the job runs on the worker
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        gate.set()
        assert await dispatcher.run(lambda: "next") == "next"  # the same (only) worker is free again

    asyncio.run(main())
    assert finished.is_set()
    dispatcher.close()


def test_closed_dispatcher_refuses_work() -> None:
    dispatcher = Dispatcher(1)
    dispatcher.close()
    dispatcher.close()  # idempotent

    async def main() -> None:
        with pytest.raises(RuntimeError, match="closed"):
            await dispatcher.run(lambda: None)

    asyncio.run(main())


def test_invalid_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="max_threads"):
        Dispatcher(0)
    with pytest.raises(ValueError, match="threshold"):
        InlinePolicy(budget=0.001, threshold=0.01)
    with pytest.raises(ValueError, match="warmup"):
        InlinePolicy(warmup=0)


# -- the inline policy ------------------------------------------------------------------------------------------

def test_policy_inlines_only_after_a_short_warmup() -> None:
    policy = InlinePolicy(budget=0.001, threshold=0.0002, warmup=4, max_body=100)
    for _ in range(3):
        policy.record(0.00002)
        assert not policy.allows(0)
    policy.record(0.00002)
    assert policy.allows(0) and policy.allows(100)
    assert not policy.allows(101)  # lowering a large body is not short


def test_policy_mean_above_threshold_goes_back_to_threads() -> None:
    policy = InlinePolicy(budget=0.001, threshold=0.0002, warmup=1, alpha=0.5)
    policy.record(0.0001)
    assert policy.allows(0)
    for _ in range(5):
        policy.record(0.0009)  # under budget, but the mean drifts above the threshold
    assert not policy.allows(0) and not policy.long_running
    for _ in range(20):
        policy.record(0.00001)
    assert policy.allows(0)  # it may come back: it never ran *long*


def test_policy_a_call_far_over_budget_is_final() -> None:
    policy = InlinePolicy(budget=0.001, threshold=0.0002, warmup=1)
    for _ in range(10):
        policy.record(0.00001)
    policy.record(0.02)  # ten budgets of CPU in one call
    assert policy.long_running
    for _ in range(1000):
        policy.record(0.00001)
    assert not policy.allows(0)


def test_policy_a_slow_inline_call_sends_the_next_calls_to_threads() -> None:
    policy = InlinePolicy(budget=0.001, threshold=0.0002, warmup=1)
    for _ in range(20):
        policy.record(0.00002)
    policy.record_inline(0.00003)
    assert policy.allows(0) and policy.inline_calls == 1
    policy.record_inline(0.005)  # held the loop 5 ms: computing, sleeping or preempted - threads will tell
    assert [policy.allows(0) for _ in range(2)] == [False, True]  # first doubt: one call on a thread
    policy.record_inline(0.005)
    assert [policy.allows(0) for _ in range(3)] == [False, False, True]  # then two, four, ...
    policy.record_inline(0.005)
    assert [policy.allows(0) for _ in range(5)] == [False] * 4 + [True]
    assert not policy.long_running  # only CPU measured on a thread can make that final
    for _ in range(InlinePolicy.FORGIVE):
        policy.record_inline(0.00003)
    assert policy.doubts == 2  # clean calls forgive doubts
    policy.record_inline(0.0005)  # over the threshold, within the budget: a (pessimistic) sample, no doubt
    assert policy.doubts == 2 and policy.allows(0)


def test_policy_a_lone_cpu_spike_is_forgiven() -> None:
    policy = InlinePolicy(budget=0.001, threshold=0.0002, warmup=1)
    for _ in range(50):
        policy.record(0.00002)
    policy.record(0.002)  # one garbage collection during a call
    for _ in range(50):
        policy.record(0.00002)
    assert policy.allows(0) and not policy.long_running


def test_policy_blocked_time_reported_with_cpu_counts_as_a_doubt() -> None:
    policy = InlinePolicy(budget=0.001, threshold=0.0002, warmup=1)
    policy.record(0.00002)
    policy.record(0.00002, blocked=0.05)  # a guest that slept 50 ms through an inline call
    assert not policy.allows(0) and policy.allows(0)


def test_policy_repeated_cpu_over_budget_is_final() -> None:
    policy = InlinePolicy(budget=0.001, threshold=0.0002, warmup=1)
    for _ in range(3):
        policy.record(0.002)
    assert policy.long_running


def test_budget_zero_disables_inlining() -> None:
    policy = Dispatcher(1, inline_budget=0).new_policy()
    for _ in range(100):
        policy.record(0.0)
    assert not policy.allows(0)


# -- generations: where their calls actually run ------------------------------------------------------------------

def _serve_many(gen_handle: Callable[[], object], n: int) -> None:
    async def main() -> None:
        for _ in range(n):
            await gen_handle()  # type: ignore[misc]

    asyncio.run(main())


def test_a_short_guest_goes_inline_after_warmup() -> None:
    dispatcher = Dispatcher(2, inline_warmup=4)
    gen = make_generation(text_component("quick"), dispatcher=dispatcher)
    gen.warm()
    loop_thread: list[str] = []

    async def main() -> None:
        loop_thread.append(threading.current_thread().name)
        for _ in range(40):
            assert (await gen.handle("GET", "/", "", [], b"")).body == b"quick"

    asyncio.run(main())
    assert gen.inline.samples >= 4
    assert gen.inline.inline_calls > 0  # trivially short, measured: served on the loop
    assert not gen.inline.long_running
    dispatcher.close()
    gen.close()


def test_large_bodies_and_cold_slots_stay_on_threads() -> None:
    dispatcher = Dispatcher(2, inline_warmup=1, inline_max_body=10)
    gen = make_generation(text_component("x"), dispatcher=dispatcher, limits=Limits(min_instances=1))
    gen.warm()

    async def main() -> None:
        await gen.handle("GET", "/", "", [], b"")  # the slot's first call: a thread, and not a sample
        assert gen.inline.samples == 0
        await gen.handle("GET", "/", "", [], b"")
        before = gen.inline.inline_calls
        await gen.handle("POST", "/", "", [], b"y" * 11)
        assert gen.inline.inline_calls == before

    asyncio.run(main())
    dispatcher.close()
    gen.close()


def test_a_guest_that_ran_long_never_goes_inline() -> None:
    dispatcher = Dispatcher(2, inline_warmup=1, inline_budget=0.001)
    gen = make_generation(compile_wat(BUSY.read_text()), dispatcher=dispatcher,
                          limits=Limits(min_instances=1, max_instances=1))  # one slot: every call after the first
    gen.warm()                                                            # one is a sample

    async def main() -> None:
        for _ in range(20):  # quick calls (empty query): eligible
            await gen.handle("GET", "/", "", [], b"")
        assert gen.inline.allows(0)
        before = gen.inline.inline_calls
        await gen.handle("GET", "/", "x" * 20, [], b"")  # ~20 ms of CPU, inline: it held the loop - a doubt
        assert gen.inline.inline_calls == before + 1 and gen.inline.doubts == 1
        assert not gen.inline.long_running
        await gen.handle("GET", "/", "x" * 20, [], b"")  # sent to a thread, which measures the CPU: final
        assert gen.inline.long_running
        before = gen.inline.inline_calls
        for _ in range(5):
            await gen.handle("GET", "/", "", [], b"")
        assert gen.inline.inline_calls == before

    asyncio.run(main())
    dispatcher.close()
    gen.close()


def test_a_guest_with_outbound_access_never_goes_inline() -> None:
    dispatcher = Dispatcher(2, inline_warmup=1)
    wasm = text_component("x")

    def fetch(method: str, url: str, headers: list[tuple[str, str]], body: bytes, *, deadline: float | None = None
              ) -> tuple[int, list[tuple[str, str]], bytes]:
        return 200, [], b""

    ctx = HostContext(component="t", version="1.0.0", fetch=fetch)
    runtime = runtime_for(dispatcher)
    gen = Generation(artifacts(runtime=runtime).get(sha256_hex(wasm), wasm), ctx, Limits(), runtime=runtime)
    gen.warm()
    assert gen.inline.long_running  # outbound I/O may block: never on the event loop
    _serve_many(lambda: gen.handle("GET", "/", "", [], b""), 10)
    assert gen.inline.inline_calls == 0
    dispatcher.close()
    gen.close()


def test_guest_errors_and_cancellation_give_slots_back(wat_guest: Callable[[str], bytes]) -> None:
    dispatcher = Dispatcher(2)
    gen = make_generation(wat_guest("spin"), dispatcher=dispatcher,
                          limits=Limits(timeout=0.05, min_instances=1, max_instances=2))
    gen.warm()

    started = threading.Event()
    run = gen._run

    def running(*args: Any) -> Any:
        started.set()
        return run(*args)

    gen._run = running  # type: ignore[method-assign]

    async def main() -> None:
        with pytest.raises(GuestTimeout):
            await gen.handle("GET", "/", "", [], b"")
        started.clear()
        task = asyncio.ensure_future(gen.handle("GET", "/", "", [], b""))
        assert await asyncio.to_thread(started.wait, 10)  # cancelled while the guest runs, not while queued
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    # the cancelled call still runs to its (short) deadline, then its slot is dropped
    wait_until(lambda: gen.pool.size <= 2 and not any(s.poisoned for s in gen.pool.idle_slots())
               and gen.pool.discarded == 2, 10, "the cancelled call's slot to be dropped")
    assert gen.pool.discarded == 2
    assert gen.pool.size <= 2
    dispatcher.close()
    gen.close()


def test_closed_dispatcher_gives_the_lease_back() -> None:
    """A call after the host began closing is a 503 the middleware answers and auto-rollback counts, not a bare
    RuntimeError, and the instance it reserved goes back to the pool."""
    dispatcher = Dispatcher(1)
    gen = make_generation(text_component("x"), dispatcher=dispatcher, limits=Limits(min_instances=1, max_instances=1))
    gen.warm()
    dispatcher.close()

    async def main() -> None:
        with pytest.raises(HostClosed, match="shutting down") as caught:
            await gen.handle("GET", "/", "", [], b"")
        assert caught.value.status == 503

    asyncio.run(main())
    assert gen.pool.idle == 1
    gen.close()


# -- no event-loop stall ----------------------------------------------------------------------------------------

def test_native_route_answers_while_a_spinning_guest_holds_every_instance(
        tmp_path: Path, wat_guest: Callable[[str], bytes], uvicorn_server: Callable[..., object]) -> None:
    """Not timed: the native route must answer at all while both instances of a spin guest are busy."""
    from airssys_web.lifecycle.deploy import deploy

    with EmbeddedRegistry(tmp_path / "reg") as reg:
        deploy(reg, "spin", wat_guest("spin"), version="1.0.0", route="/spin",
               settings=VersionSettings.of(timeout=3.0, min_instances=2, max_instances=2, acquire_timeout=5.0))

    async def native(request: object) -> PlainTextResponse:
        return PlainTextResponse("native ok")

    host = AirssysHost(tmp_path / "reg", threads=4)
    app = AirssysMiddleware(Starlette(routes=[Route("/native", native)]), host=host)
    with uvicorn_server(app) as url:  # type: ignore[attr-defined]
        results: list[int] = []

        def hit_spin() -> None:
            with httpx.Client(timeout=30) as client:
                results.append(client.get(url + "/spin").status_code)

        spinners = [threading.Thread(target=hit_spin) for _ in range(2)]
        for t in spinners:
            t.start()
        gen = host.generations()["spin"]
        for _ in range(1000):
            if gen.pool.idle == 0 and gen.in_flight >= 2:
                break
            threading.Event().wait(0.005)
        assert gen.pool.idle == 0  # both instances are spinning now
        with httpx.Client(timeout=30) as client:
            answer = client.get(url + "/native")
        assert answer.status_code == 200 and answer.text == "native ok"
        assert gen.in_flight >= 1  # answered while the guest still held its instances
        for t in spinners:
            t.join(30)
    assert results == [504, 504]
