"""Small helpers for building real generations and registries in tests (guests come from conftest)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from airssys_web.guest.build import compile_wat, wat_response_component
from airssys_web.runtime.artifacts import ArtifactCache, sha256_hex
from airssys_web.runtime.dispatch import Dispatcher
from airssys_web.runtime.generation import Generation
from airssys_web.runtime.imports import HostContext
from airssys_web.runtime.limits import Limits

_cache = ArtifactCache(None)


def text_component(text: str, status: int = 200) -> bytes:
    """A component that always answers ``text`` (distinct texts give distinct versions)."""
    return compile_wat(wat_response_component(text, status=status))


def make_generation(wasm: bytes, *, name: str = "t", version: str = "1.0.0", limits: Limits | None = None,
                    dispatcher: Dispatcher | None = None, config: dict[str, str] | None = None) -> Generation:
    sha = sha256_hex(wasm)
    component = _cache.get(sha, wasm)
    ctx = HostContext(component=name, version=version, config=config or {})
    return Generation(component, ctx, limits or Limits(), sha256=sha, dispatcher=dispatcher)


def write_wasm(tmp: Path, name: str, data: bytes) -> Path:
    path = tmp / name
    path.write_bytes(data)
    return path


def wait_until(cond: Callable[[], bool], timeout: float = 10.0, what: str = "the condition") -> None:
    """Wait until ``cond()`` holds, checking every few milliseconds; fail after ``timeout`` seconds.

    The one wait helper of the suite: for state that another thread or process changes and that offers no event
    to wait on. ``timeout`` is a generous bound on a failure, never a speed assertion.
    """
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:g}s")
        pause.wait(0.005)
