"""Run guest calls on dedicated worker threads and hand results back to the event loop.

ctypes releases the GIL while wasm runs, so guests execute in parallel with the event loop (and with each other on
several cores). A plain queue + long-lived threads avoids the per-call ``concurrent.futures`` wrapping that
``run_in_executor``/``anyio.to_thread`` add: one ``call_soon_threadsafe`` per call is the whole hand-off.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Job = tuple[Callable[..., Any], tuple[Any, ...], asyncio.AbstractEventLoop, "asyncio.Future[Any]"]


def _set_result(fut: asyncio.Future[Any], value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


def _set_exception(fut: asyncio.Future[Any], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)


class Dispatcher:
    """A fixed-size pool of daemon worker threads, started lazily as load requires."""

    def __init__(self, max_threads: int = 32, name: str = "airssys-worker") -> None:
        if max_threads < 1:
            raise ValueError("max_threads must be at least 1")
        self.max_threads = max_threads
        self._name = name
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._lock = threading.Lock()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on a worker thread; the caller's task awaits without blocking the loop."""
        if self._closed:
            raise RuntimeError("dispatcher is closed")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._maybe_spawn()
        self._queue.put((fn, args, loop, fut))
        return await fut

    def _maybe_spawn(self) -> None:
        with self._lock:
            if self._idle > 0 or len(self._threads) >= self.max_threads:
                self._idle -= 1 if self._idle > 0 else 0
                return
            t = threading.Thread(target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True)
            self._threads.append(t)
        t.start()

    def _work(self) -> None:
        get = self._queue.get
        while True:
            job = get()
            if job is None:
                return
            fn, args, loop, fut = job
            try:
                result = fn(*args)
            except BaseException as e:  # delivered to the awaiting task
                try:
                    loop.call_soon_threadsafe(_set_exception, fut, e)
                except RuntimeError:  # loop closed while we worked
                    pass
            else:
                try:
                    loop.call_soon_threadsafe(_set_result, fut, result)
                except RuntimeError:
                    pass
            with self._lock:
                self._idle += 1

    def close(self) -> None:
        """Stop the workers after the jobs already queued (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for _ in self._threads:
            self._queue.put(None)
