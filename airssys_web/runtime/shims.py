"""Make wasmtime-py 50's component layer safe to call from several threads.

Two module-global states in wasmtime-py are shared by every thread:

* ``component._enter.LAST_EXCEPTION`` holds the Python exception raised by a host function until the call returns;
  a host function failing on one thread could surface on another thread's call.
* ``component._types.case_test_cache`` is a scratch set cleared and refilled while lowering untagged
  ``result``/``option``/``variant`` values; two threads lowering at once can pick the wrong case.

We replace both with thread-local equivalents, once, before any call. The patch is verified against the installed
version so an upgrade that changes these internals fails loudly at import instead of racing silently.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable, Iterator
from typing import Any

from wasmtime import StoreContext, WasmtimeError
from wasmtime.component import _enter, _linker, _types

_installed = False
_local = threading.local()


class _ThreadLocalSet:
    """A set-like scratch object that is private to each thread (stands in for ``case_test_cache``)."""

    def _set(self) -> set[type]:
        s: set[type] | None = getattr(_local, "case_set", None)
        if s is None:
            s = set()
            _local.case_set = s
        return s

    def clear(self) -> None:
        self._set().clear()

    def add(self, item: type) -> None:
        self._set().add(item)

    def __iter__(self) -> Iterator[type]:
        return iter(self._set())

    def __len__(self) -> int:
        return len(self._set())

    def __and__(self, other: set[type]) -> set[type]:
        return self._set() & other


def _catch_exceptions(store_raw: Any, func: Callable[[StoreContext], None]) -> Any:
    store = StoreContext(store_raw)
    exception = None
    try:
        func(store)
    except WasmtimeError as e:
        exception = e
    except Exception as e:
        _local.last_exception = e
        exception = WasmtimeError("python exception")
    finally:
        store._invalidate()
    if exception:
        return ctypes.cast(exception._consume(), ctypes.c_void_p).value
    return 0


def _maybe_raise_last_exn() -> None:
    exn: BaseException | None = getattr(_local, "last_exception", None)
    if exn is None:
        return
    _local.last_exception = None
    raise exn


def install() -> None:
    """Install the thread-local replacements (idempotent)."""
    global _installed
    if _installed:
        return
    for module, name in ((_enter, "catch_exceptions"), (_enter, "maybe_raise_last_exn"),
                         (_linker, "catch_exceptions"), (_types, "case_test_cache")):
        if not hasattr(module, name):
            raise ImportError(
                f"wasmtime-py internals changed ({module.__name__}.{name} is gone); "
                "airssys-web supports wasmtime 50.x only"
            )
    _enter.catch_exceptions = _catch_exceptions
    _enter.maybe_raise_last_exn = _maybe_raise_last_exn
    _linker.catch_exceptions = _catch_exceptions  # imported by name there
    _types.case_test_cache = _ThreadLocalSet()
    _installed = True
