"""Compile cache: content-addressed components in memory and serialized artifacts on disk.

Compiling a large guest takes seconds; loading a serialized artifact takes milliseconds. ``deploy`` compiles and
stores the artifact before it returns, so a running server only ever *loads* (no compilation on a request path).

wasmtime's ``deserialize`` trusts its input completely, so an artifact is only loaded after the sha256 recorded
beside it matches, artifacts live only in the operator's registry directory, and they are keyed by the component's
sha256 *and* the engine fingerprint (wasmtime version + engine settings; versions with a fuel limit use the
fuel-metering engine, whose artifacts are separate). Anything stale or corrupt is recompiled from the source blob,
never trusted. A verified artifact is memory-mapped, so its memory images are shared copy-on-write by every
instance.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from cachetools import LRUCache

from .. import _native
from .._files import write_atomic
from ..errors import InvalidComponent
from .engine import Runtime, engine_fingerprint

log = logging.getLogger("airssys_web.artifacts")

Component = _native.Component


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ArtifactCache:
    """Compiled components keyed by the sha256 of their ``.wasm`` bytes, for one runtime's engines.

    ``directory`` may be ``None`` for a memory-only cache (tests, ``airssys-web call``). ``compilations`` counts
    real compilations so callers (and tests) can prove a boot or a rollback did not recompile.
    """

    def __init__(self, directory: str | Path | None, runtime: Runtime, *, memory_entries: int = 64) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.runtime = runtime
        self._memory: LRUCache[tuple[str, bool], Component] = LRUCache(maxsize=memory_entries)
        self._lock = threading.Lock()
        self.compilations = 0

    def _paths(self, sha: str, fuel: bool) -> tuple[Path, Path]:
        assert self.directory is not None
        stem = f"{sha}-{engine_fingerprint(fuel)}"
        return self.directory / f"{stem}.cwasm", self.directory / f"{stem}.cwasm.sha256"

    def has_artifact(self, sha: str, *, fuel: bool = False) -> bool:
        if self.directory is None:
            return False
        art, chk = self._paths(sha, fuel)
        return art.exists() and chk.exists()

    def get(self, sha: str, wasm: bytes | None = None, *, loader: Callable[[], bytes] | None = None,
            fuel: bool = False) -> Component:
        """Return the compiled component for ``sha``: from memory, else a verified disk artifact, else compile
        ``wasm`` (or what ``loader`` returns; one of them must be given). ``fuel`` selects the metering engine."""
        with self._lock:
            comp = self._memory.get((sha, fuel))
        if comp is not None:
            return comp
        comp = self._load(sha, fuel)
        if comp is None:
            if wasm is None and loader is not None:
                wasm = loader()
            if wasm is None:
                raise InvalidComponent(f"no compiled artifact for {sha[:12]} and no source to compile it from")
            comp = self.compile(wasm, sha=sha, fuel=fuel)
        with self._lock:
            self._memory[(sha, fuel)] = comp
        return comp

    def compile(self, wasm: bytes, *, sha: str | None = None, fuel: bool = False) -> Component:
        """Compile ``wasm`` and store its artifact on disk; raises InvalidComponent if wasmtime refuses it."""
        sha = sha or sha256_hex(wasm)
        try:
            comp = Component.compile(self.runtime.native, wasm, fuel=fuel)
        except _native.GuestFault as e:
            raise InvalidComponent(e.detail) from None
        self.compilations += 1
        if self.directory is not None:
            data = comp.serialize()
            art, chk = self._paths(sha, fuel)
            art.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(art, data)
            write_atomic(chk, sha256_hex(data).encode())
        with self._lock:
            self._memory[(sha, fuel)] = comp
        return comp

    def _load(self, sha: str, fuel: bool) -> Component | None:
        if self.directory is None:
            return None
        art, chk = self._paths(sha, fuel)
        try:
            expected = chk.read_text().strip()
            data = art.read_bytes()
        except FileNotFoundError:
            return None
        if sha256_hex(data) != expected:
            log.warning("artifact %s failed its checksum; recompiling from the blob", art.name)
            return None
        try:
            return Component.load(self.runtime.native, art, fuel=fuel)
        except _native.GuestFault as e:
            log.warning("artifact %s could not be loaded (%s); recompiling", art.name, e.detail)
            return None
