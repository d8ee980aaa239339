"""Small helpers for building real generations and registries in tests (guests come from conftest)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from airssys_web.guest.build import compile_wat, wat_response_component
from airssys_web.runtime.artifacts import ArtifactCache, sha256_hex
from airssys_web.runtime.dispatch import Dispatcher
from airssys_web.runtime.engine import Runtime
from airssys_web.runtime.generation import Generation
from airssys_web.runtime.imports import HostContext
from airssys_web.runtime.limits import Limits

_runtimes: list[Runtime] = []
_shared: list[ArtifactCache] = []


def runtime_for(dispatcher: Dispatcher | None = None) -> Runtime:
    """The suite's shared runtime (made on first use), or a new one around ``dispatcher``; every runtime made
    here is closed at the end of the session (conftest's ``_close_runtimes``)."""
    if dispatcher is None and _shared:
        return _shared[0].runtime
    runtime = Runtime(dispatcher=dispatcher, memories=200)
    _runtimes.append(runtime)
    if dispatcher is None:
        _shared.append(ArtifactCache(None, runtime))
    return runtime


def artifacts(directory: str | Path | None = None, runtime: Runtime | None = None) -> ArtifactCache:
    """A new artifact cache on the shared runtime (memory-only without ``directory``)."""
    return ArtifactCache(directory, runtime or runtime_for())


def shared_artifacts(runtime: Runtime | None = None) -> ArtifactCache:
    """The shared runtime's memory cache (components compiled once per session), or a new one for ``runtime``."""
    if runtime is None or runtime is runtime_for():
        runtime_for()
        return _shared[0]
    return ArtifactCache(None, runtime)


def close_runtimes() -> None:
    for runtime in _runtimes:
        runtime.close()
    _runtimes.clear()
    _shared.clear()


def text_component(text: str, status: int = 200) -> bytes:
    """A component that always answers ``text`` (distinct texts give distinct versions)."""
    return compile_wat(wat_response_component(text, status=status))


def make_generation(wasm: bytes, *, name: str = "t", version: str = "1.0.0", limits: Limits | None = None,
                    dispatcher: Dispatcher | None = None, config: dict[str, str] | None = None) -> Generation:
    """A generation with a bare context (config only), on the shared runtime or one around ``dispatcher``."""
    runtime = runtime_for(dispatcher)
    sha = sha256_hex(wasm)
    component = shared_artifacts(runtime).get(sha, wasm)
    ctx = HostContext(component=name, version=version, config=config or {})
    return Generation(component, ctx, limits or Limits(), runtime=runtime, sha256=sha)


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
