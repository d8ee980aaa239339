"""Background upkeep of instance pools: creating replacements off the request path, and closing idle instances.

One :class:`Maintenance` belongs to a :class:`~airssys_web.runtime.engine.Runtime`. It starts its threads only
when a pool first needs them (a refill, or a pool to trim) and :meth:`close` stops them, so importing the package
starts nothing and a closed host leaves nothing running. The clock is injectable (``timer=``, as in cachetools'
``TTLCache``) so tests advance it instead of sleeping; :meth:`trim_now` runs one trimming pass on demand.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

log = logging.getLogger("airssys_web.runtime.maintenance")

#: Seconds between two trimming passes.
TRIM_INTERVAL = 15.0


class Trimmable(Protocol):
    name: str

    def trim(self) -> int: ...


class Maintenance:
    """Refill workers (two threads, started on first use) and one trimming thread for the pools of a runtime."""

    def __init__(self, *, timer: Callable[[], float] = time.monotonic, trim_interval: float = TRIM_INTERVAL) -> None:
        self.timer = timer
        self.trim_interval = trim_interval
        self._lock = threading.Lock()
        self._pools: weakref.WeakSet[Trimmable] = weakref.WeakSet()
        self._executor: ThreadPoolExecutor | None = None
        self._trimmer: threading.Thread | None = None
        self._stop = threading.Event()
        self._closed = False

    def submit(self, fn: Callable[[], None]) -> bool:
        """Run ``fn`` on a refill worker; False (and nothing runs) once closed."""
        with self._lock:
            if self._closed:
                return False
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="airssys-refill")
            executor = self._executor
        try:
            executor.submit(fn)
        except RuntimeError:  # shut down meanwhile
            return False
        return True

    def register(self, pool: Trimmable) -> None:
        """Trim ``pool`` every ``trim_interval`` seconds from now on (until :meth:`unregister` or close)."""
        with self._lock:
            if self._closed:
                return
            self._pools.add(pool)
            if self._trimmer is None:
                self._trimmer = threading.Thread(target=self._run, name="airssys-pool-trim", daemon=True)
                self._trimmer.start()

    def unregister(self, pool: Trimmable) -> None:
        with self._lock:
            self._pools.discard(pool)

    def trim_now(self) -> int:
        """One trimming pass over every registered pool; how many instances were closed."""
        with self._lock:
            pools = list(self._pools)
        closed = 0
        for pool in pools:
            try:
                closed += pool.trim()
            except Exception:  # pragma: no cover - trim only closes Stores
                log.exception("%s: idle trimming failed", pool.name)
        return closed

    def _run(self) -> None:
        while not self._stop.wait(self.trim_interval):
            self.trim_now()

    def close(self) -> None:
        """Stop trimming and the refill workers (queued refills are dropped); idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            executor, self._executor = self._executor, None
            trimmer = self._trimmer
        self._stop.set()
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        if trimmer is not None:
            trimmer.join()
