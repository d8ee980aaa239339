"""The native runtime object: created on first use, closed on request, and what keys the compile cache."""

from __future__ import annotations

import subprocess
import sys

import pytest

from airssys_web import _native
from airssys_web.runtime.engine import TICK_SECONDS, engine_fingerprint, wasmtime_version


def _os_threads(code: str) -> int:
    """Threads of a fresh interpreter after running ``code`` (the kernel's count: Rust threads included)."""
    probe = code + "\nprint(open('/proc/self/status').read().split('Threads:')[1].split()[0])"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return int(done.stdout.split()[-1])


def test_importing_starts_no_thread() -> None:
    imports = ("import airssys_web, airssys_web.runtime.engine, airssys_web.runtime.generation, "
               "airssys_web.lifecycle.host")
    assert _os_threads(imports) == 1
    # a runtime starts its epoch ticker and I/O threads, and close() stops them
    assert _os_threads(imports + "\nfrom airssys_web._native import Runtime\nr = Runtime(threads=2)") >= 4
    assert _os_threads(imports + "\nfrom airssys_web._native import Runtime\nr = Runtime(threads=2)\nr.close()") == 1


def test_a_closed_runtime_refuses_work() -> None:
    runtime = _native.Runtime(memories=64, tables=128, core_instances=256, component_instances=64, stacks=32)
    assert not runtime.closed and runtime.pooling
    runtime.close()
    runtime.close()  # idempotent
    assert runtime.closed
    with pytest.raises(_native.GuestFault, match="runtime is closed") as caught:
        _native.Component.compile(runtime, b"\0asm\r\0\1\0")
    assert caught.value.kind == "closed"


def test_fingerprints_name_the_engine_settings() -> None:
    assert engine_fingerprint() != engine_fingerprint(fuel=True)
    assert engine_fingerprint() == engine_fingerprint()
    assert wasmtime_version() in _native.Runtime.fingerprint()
    assert 0 < TICK_SECONDS <= 0.01
