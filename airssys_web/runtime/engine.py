"""The runtime: everything that runs in the background for one host, owned by it and stopped by :meth:`close`.

A :class:`Runtime` holds

* the native runtime (``_native.Runtime``): the wasmtime engines - epoch interruption; a second one that also
  meters fuel, made on first use - with their pooling allocator, the thread that advances their epoch every
  ``TICK_SECONDS``, and a small tokio runtime for wasi:http bodies;
* the :class:`~airssys_web.runtime.dispatch.Dispatcher`, whose worker threads run guest calls off the event loop;
* the :class:`~airssys_web.runtime.maintenance.Maintenance` that refills and trims instance pools.

The model is httpx's ``Client`` owning its transport: an ``AirssysHost`` (or a ``ComponentClient``, or a CLI
command checking a component) makes one, passes it to what it builds, and closes it. Nothing starts at import.
Compiled components belong to the engine that compiled them, so an :class:`~.artifacts.ArtifactCache` is bound
to one runtime; serialized artifacts on disk are shared by every runtime with the same
:func:`engine_fingerprint` (wasmtime version and engine settings).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from types import TracebackType

from .. import _native
from .dispatch import Dispatcher
from .maintenance import TRIM_INTERVAL, Maintenance

#: Wall-clock length of one epoch tick. Deadlines are rounded up to whole ticks.
TICK_SECONDS = _native.Runtime.tick_seconds()


def wasmtime_version() -> str:
    """The version of the wasmtime crate the native core was built with."""
    return _native.WASMTIME_VERSION


def engine_fingerprint(fuel: bool = False) -> str:
    """Identify the (wasmtime version, engine settings) pair that serialized artifacts depend on."""
    return hashlib.sha256(_native.Runtime.fingerprint(fuel).encode()).hexdigest()[:16]


class Runtime:
    """Engines, the epoch ticker, worker threads and pool upkeep for one host; :meth:`close` stops them all.

    ``threads`` caps the dispatcher's worker threads (default: :func:`~.dispatch.default_threads`); ``inline``
    lets calls measured to be short run on the event loop. ``dispatcher`` replaces the default one (tests).
    ``timer`` is the clock of pool idle times; ``trim_interval`` the seconds between trimming passes. ``memories``
    sizes the pooling allocator: how many linear memories may be live at once (reserved address space, not memory).
    """

    def __init__(self, *, threads: int | None = None, inline: bool = True, dispatcher: Dispatcher | None = None,
                 timer: Callable[[], float] = time.monotonic, trim_interval: float = TRIM_INTERVAL,
                 memories: int = 1000) -> None:
        self.native = _native.Runtime(memories=memories, tables=2 * memories, core_instances=5 * memories,
                                      component_instances=memories, stacks=memories)
        self.dispatcher = dispatcher if dispatcher is not None else Dispatcher(
            threads, inline_budget=0.001 if inline else 0.0)
        self.maintenance = Maintenance(timer=timer, trim_interval=trim_interval)
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop pool upkeep, the worker threads (after the jobs already queued) and the engines; idempotent."""
        if self._closed:
            return
        self._closed = True
        self.maintenance.close()
        self.dispatcher.close()
        self.native.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Runtime(wasmtime={wasmtime_version()}, pooling={self.native.pooling}, closed={self._closed})"
