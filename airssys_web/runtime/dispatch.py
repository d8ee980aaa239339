"""Where a guest call runs: inline on the event loop when it is known to be short, else on a worker thread.

A hop to a worker thread costs ~35 µs of latency per request (queue put, thread wake-up, ``call_soon_threadsafe``,
event-loop wake-up), about three times what a trivial guest call costs with the fast value path. So a generation
whose calls are *measured* to be short runs them inline, and everything else hops:

* :class:`InlinePolicy` (one per generation) decides. A new generation starts on threads; after ``warmup`` calls
  whose exponentially weighted mean CPU time stays under ``threshold`` (0.4 ms) it may run inline, for requests
  whose body is at most ``max_body`` bytes (lowering costs ~0.1 µs per byte) on an instance that has served a
  call before (a first call is cold). An inline call that holds the loop past ``threshold`` sends the next
  calls (exponentially more after each such call) back to threads, which measure their CPU time precisely;
  calls over ``budget`` (1 ms) of CPU - one over ten budgets, or a few in a row over one - make the
  generation "long-running" for good: it never runs inline again.
* Inline calls still run under the guest's epoch deadline, so even a guest that turns slow after its warm-up is
  stopped at its timeout. The loop is held by a slow inline call at most once before the generation is back on
  threads, and such calls get exponentially rarer.
* :class:`Dispatcher` owns long-lived worker threads fed by one queue: one ``call_soon_threadsafe`` per call is the
  whole hand-off (no ``concurrent.futures`` wrapping as with ``run_in_executor``/``anyio.to_thread``). ctypes
  releases the GIL while wasm runs, so threaded guests run in parallel with the loop and with each other.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

log = logging.getLogger("airssys_web.dispatch")


def default_threads() -> int:
    """The most worker threads a process may start. Threads start as load requires and leave after
    ``IDLE_EXIT`` idle seconds; what bounds them in practice is each generation's ``max_instances`` (its calls
    wait for an instance, not for a thread). The cap is high on purpose: a component whose calls are stalled in
    a host call (an upstream trickling bytes) must not occupy the threads another component's calls need."""
    return 256


#: Seconds a worker thread may wait for work before it leaves (beyond ``KEEP`` of them).
IDLE_EXIT = 60.0


def _keep() -> int:
    """Worker threads kept however idle: enough for the cores, so a steady load never starts threads."""
    return 2 * (os.cpu_count() or 1)


class InlinePolicy:
    """Decides, per call, whether a generation's guest call may run inline on the event loop.

    ``mean`` is an exponentially weighted mean of the calls' CPU time; a call may run inline while it stays under
    ``threshold``. Threaded calls measure their thread CPU time, which neither GIL waits nor the OS preempting a
    loaded machine inflate. Inline calls measure only wall time (two clock reads: they are the hot path): a call
    within ``budget`` is a sample (wall time bounds CPU time, so the mean errs on the safe side); a longer one is
    a *doubt* - the guest computed, blocked (a WASI sleep uses no CPU) or the loop thread was preempted, which
    cannot be told apart from here - and sends the next ``2 ** doubts`` calls to threads, which measure
    precisely. A doubt is forgiven after ``FORGIVE`` clean inline calls, so a busy machine's occasional
    preemption costs little, while a guest that stalls the loop on every inline call gets exponentially rarer
    chances to (its stalls grow like the logarithm of its calls).

    ``long_running`` is final: set by one call over ten budgets of CPU, or once calls over ``budget`` become a
    pattern: ``strikes``, the weighted share of recent calls over, passes ``STRIKES`` (three in a row, roughly).
    A lone spike (a garbage collection) does not.

    Not locked: it is only read on the event loop, and a racy update from a worker thread at worst delays the
    switch by one call (``long_running`` only ever goes from False to True).
    """

    STRIKES = 0.1
    FORGIVE = 32
    MAX_HOLD = 4096

    __slots__ = ("alpha", "budget", "clean", "doubts", "hold", "inline_calls", "long_running", "max_body", "mean",
                 "samples", "strikes", "threshold", "warmup")

    def __init__(self, *, budget: float = 0.001, threshold: float = 0.0004, warmup: int = 16,
                 max_body: int = 16 * 1024, alpha: float = 0.05) -> None:
        if budget < 0 or threshold < 0 or threshold > budget:
            raise ValueError("InlinePolicy needs 0 <= threshold <= budget (seconds); budget=0 disables inlining")
        if warmup < 1 or not 0 < alpha <= 1:
            raise ValueError("InlinePolicy needs warmup >= 1 and 0 < alpha <= 1")
        self.budget = budget
        self.threshold = threshold
        self.warmup = warmup
        self.max_body = max_body
        self.alpha = alpha
        self.mean = 0.0
        self.strikes = 0.0
        self.samples = 0
        self.doubts = 0
        self.hold = 0  # calls still to send to threads after a doubt
        self.clean = 0  # inline calls under threshold since the last forgiven doubt
        self.long_running = budget == 0
        self.inline_calls = 0

    def allows(self, body_size: int) -> bool:
        """True if a call with a body of ``body_size`` bytes may run inline now (counts down a doubt's hold)."""
        if self.hold:
            self.hold -= 1
            return False
        return (not self.long_running and self.samples >= self.warmup and self.mean <= self.threshold
                and body_size <= self.max_body)

    def record(self, cpu: float, blocked: float = 0.0) -> None:
        """Account one call by its thread CPU time (seconds); ``blocked``, for a call measured inline that way,
        is how long it held the loop beyond its CPU time (more than ``threshold`` counts as a doubt)."""
        self.mean = cpu if self.samples == 0 else self.mean + self.alpha * (cpu - self.mean)
        self.samples += 1
        over = cpu > self.budget
        self.strikes += self.alpha * (over - self.strikes)
        if self.strikes > self.STRIKES or cpu > 10 * self.budget:
            self.long_running = True
        if blocked > self.threshold:
            self._doubt()

    def record_inline(self, wall: float) -> None:
        """Account one inline call by how long it held the loop (seconds)."""
        self.inline_calls += 1
        if wall <= self.budget:
            self.mean += self.alpha * (wall - self.mean)
            self.strikes -= self.alpha * self.strikes
            self.clean += 1
            if self.clean >= self.FORGIVE and self.doubts:
                self.doubts -= 1
                self.clean = 0
            return
        self._doubt()

    def _doubt(self) -> None:
        self.hold = min(2 ** self.doubts, self.MAX_HOLD)
        self.doubts += 1
        self.clean = 0


_Job = tuple[Callable[..., Any], tuple[Any, ...], asyncio.AbstractEventLoop, "asyncio.Future[Any]",
             Callable[[], None] | None]


def _set_result(fut: asyncio.Future[Any], value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


def _set_exception(fut: asyncio.Future[Any], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)


class Dispatcher:
    """Daemon worker threads (at most ``max_threads``, started as load requires) that run blocking calls.

    ``inline_budget`` and ``inline_threshold`` (seconds) configure the :class:`InlinePolicy` of each generation
    that uses this dispatcher; ``inline_budget=0`` sends every call to a thread.
    """

    def __init__(self, max_threads: int | None = None, name: str = "airssys-worker", *,
                 inline_budget: float = 0.001, inline_threshold: float = 0.0004, inline_warmup: int = 16,
                 inline_max_body: int = 16 * 1024, idle_exit: float = IDLE_EXIT) -> None:
        max_threads = default_threads() if max_threads is None else max_threads
        if max_threads < 1:
            raise ValueError("max_threads must be at least 1")
        self.max_threads = max_threads
        self._policy_args: dict[str, Any] = {
            "budget": inline_budget, "threshold": min(inline_threshold, inline_budget), "warmup": inline_warmup,
            "max_body": inline_max_body}
        InlinePolicy(**self._policy_args)  # validate now, not at the first generation
        self._name = name
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0  # threads blocked in queue.get (or about to be), not yet promised to a queued job
        self._lock = threading.Lock()
        self._closed = False
        self._idle_exit = idle_exit
        self._keep = min(_keep(), max_threads)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def threads(self) -> int:
        return len(self._threads)

    def new_policy(self) -> InlinePolicy:
        """A fresh inline policy for one generation, with this dispatcher's settings."""
        return InlinePolicy(**self._policy_args)

    async def run(self, fn: Callable[..., T], *args: Any, on_skip: Callable[[], None] | None = None) -> T:
        """Run ``fn(*args)`` on a worker thread; the caller's task awaits without blocking the loop."""
        return await self.submit(fn, *args, on_skip=on_skip)

    def submit(self, fn: Callable[..., T], *args: Any, on_skip: Callable[[], None] | None = None
               ) -> asyncio.Future[T]:
        """Queue ``fn(*args)`` for a worker thread and return the future of its result (on the running loop).

        Raises RuntimeError, queueing nothing, once the dispatcher is closed. If the future is cancelled before
        a worker picks the job up, ``fn`` is skipped and ``on_skip()`` runs instead (on the worker), so whatever
        ``args`` hold (a pool lease) is given back. Once ``fn`` started it runs to completion; its result is then
        dropped. ``fn`` runs in a copy of the caller's context (``contextvars``), so what it logs carries the
        request's fields and its spans are children of the request's.
        """
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        spawn: threading.Thread | None = None
        with self._lock:  # jobs and the close() sentinels are queued in one order
            if self._closed:
                raise RuntimeError("dispatcher is closed")
            if self._idle > 0:
                self._idle -= 1  # an idle thread will take this job
            elif len(self._threads) < self.max_threads:
                spawn = threading.Thread(target=self._work, name=f"{self._name}-{len(self._threads)}",
                                         daemon=True)
                self._threads.append(spawn)
            self._queue.put((contextvars.copy_context().run, (fn, *args), loop, fut, on_skip))
        if spawn is not None:
            spawn.start()
        return fut

    def _work(self) -> None:
        get, lock = self._queue.get, self._lock
        while True:
            try:
                job = get(timeout=self._idle_exit)
            except queue.Empty:
                with lock:  # leave only if no queued job counts on this thread (submit took it from _idle)
                    if self._idle > self._keep and not self._closed:
                        self._idle -= 1
                        self._threads.remove(threading.current_thread())
                        return
                continue
            if job is None:
                return
            fn, args, loop, fut, on_skip = job
            del job
            if fut.cancelled():  # a read of a plain attribute; at worst we run a job nobody awaits any more
                if on_skip is not None:
                    try:
                        on_skip()
                    except Exception:  # pragma: no cover - on_skip only gives a lease back
                        log.exception("dispatcher: giving back a cancelled job's resources failed")
                with lock:
                    self._idle += 1
                continue
            try:
                result = fn(*args)
            except BaseException as e:  # delivered to the awaiting task
                with lock:  # idle before the caller can see the outcome and queue its next job
                    self._idle += 1
                _deliver(loop, _set_exception, fut, e)
                del e
            else:
                with lock:
                    self._idle += 1
                _deliver(loop, _set_result, fut, result)
                del result
            del fn, args, fut  # do not keep the last request's objects alive while idle

    def close(self) -> None:
        """Stop the workers after the jobs already queued (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for _ in self._threads:
                self._queue.put(None)


def _deliver(loop: asyncio.AbstractEventLoop, setter: Callable[[asyncio.Future[Any], Any], None],
             fut: asyncio.Future[Any], value: Any) -> None:
    try:
        loop.call_soon_threadsafe(setter, fut, value)
    except RuntimeError:  # the loop closed while we worked; nobody is waiting
        pass
