"""The wasmtime runtime of this process: engines, the epoch ticker and the I/O threads of the native core.

The native :class:`~airssys_web._native.Runtime` holds two engines (epoch interruption; a second one that also
meters fuel, made on first use), the pooling allocator behind them, the thread that advances their epoch every
``TICK_SECONDS`` and a small tokio runtime for wasi:http bodies. Nothing is created at import: the first caller
of :func:`get_runtime` creates it, and :func:`close_runtime` stops it.

Compiled artifacts are only valid for the wasmtime version and engine settings that produced them, so
:func:`engine_fingerprint` (both of those, hashed) keys the on-disk compile cache.
"""

from __future__ import annotations

import hashlib
import threading

from .. import _native

#: Wall-clock length of one epoch tick. Deadlines are rounded up to whole ticks.
TICK_SECONDS = _native.Runtime.tick_seconds()

_lock = threading.Lock()
_runtime: _native.Runtime | None = None


def wasmtime_version() -> str:
    """The version of the wasmtime crate the native core was built with."""
    return _native.WASMTIME_VERSION


def engine_fingerprint(fuel: bool = False) -> str:
    """Identify the (wasmtime version, engine settings) pair that serialized artifacts depend on."""
    return hashlib.sha256(_native.Runtime.fingerprint(fuel).encode()).hexdigest()[:16]


def get_runtime() -> _native.Runtime:
    """The process's runtime, created (and its epoch ticker started) on first use."""
    global _runtime
    runtime = _runtime
    if runtime is None or runtime.closed:
        with _lock:
            runtime = _runtime
            if runtime is None or runtime.closed:
                runtime = _runtime = _native.Runtime()
    return runtime


def close_runtime() -> None:
    """Stop the process's runtime (idempotent); the next :func:`get_runtime` makes a new one."""
    global _runtime
    with _lock:
        runtime, _runtime = _runtime, None
    if runtime is not None:
        runtime.close()
