"""``airssys-web dev``: watch a guest's sources, rebuild on save, hot-swap each good build into a running server.

Spin's ``watch`` restarts the whole app on every change; here the server keeps running and only the route's
generation is swapped: every good build is deployed as a new version (``0.0.0-dev.<ms>+<sha>``), the server warms
it and switches the route in one step, and requests already running finish on the previous version, so no
request fails across a save. A build or deploy error is shown and changes nothing: the last good version keeps
serving until the next save fixes it. Edits to ``airssys.toml`` redeploy with the new grants and limits without a
rebuild (the manifest is not a build input).

The target is any :class:`~airssys_web.lifecycle.api.Lifecycle`: a registry directory a server watches
(``LocalLifecycle``, ``--registry``) or a server's admin API (``RemoteLifecycle``, ``--server``).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..capabilities.grants import Grants
from ..errors import AirssysError
from ..lifecycle.api import DeployRequest, Lifecycle
from ..lifecycle.manifest import MANIFEST_NAME, load_manifest
from ..lifecycle.settings import VersionSettings
from .build import BuildResult, build_component, iter_guest_sources

__all__ = ["Cycle", "DevSession", "dev_version"]


def dev_version(sha256: str, base: str = "0.0.0", now: float | None = None) -> str:
    """A fresh, increasing SemVer for a dev build: ``0.0.0-dev.<unix ms>+<sha256[:12]>``."""
    millis = int((time.time() if now is None else now) * 1000)
    return f"{base}-dev.{millis}+{sha256[:12]}"


@dataclass(frozen=True)
class Cycle:
    """One rebuild: what was built, what serves afterwards, or why nothing changed."""

    ok: bool
    serving: str | None  # NAME@VERSION serving after this cycle (the previous one when this cycle failed)
    build: BuildResult | None = None
    deployed: bool = False
    error: str | None = None
    seconds: float = 0.0


Report = Callable[[Cycle], None]


@dataclass
class DevSession:
    """Build ``source`` and keep ``target`` serving its latest good build as component ``name`` at ``route``
    (``nested``: the route may lie under or above another component's route). A middleware stage has no route
    (``None``): each build replaces the stage in every pipeline it is in."""

    source: Path
    target: Lifecycle
    name: str
    route: str | None
    grants: Grants = field(default_factory=Grants)
    limits: dict[str, Any] = field(default_factory=dict)
    language: str | None = None
    console: Any = None
    nested: bool = False
    serving: str | None = None
    cycles: int = 0
    _last: str | None = None  # hash of (wasm, manifest, flags) last deployed

    def __post_init__(self) -> None:
        self.source = Path(self.source)

    @property
    def manifest(self) -> Path | None:
        folder = self.source if self.source.is_dir() else self.source.parent
        path = folder / MANIFEST_NAME
        return path if path.is_file() else None

    def cycle(self) -> Cycle:
        """Build and, if the result or its settings changed, deploy it. Never raises for the user's mistakes."""
        started = time.perf_counter()
        self.cycles += 1
        built: BuildResult | None = None
        try:
            built = build_component(self.source, language=self.language, console=self.console)
            wasm = built.path.read_bytes()
            manifest = self.manifest
            fingerprint = hashlib.sha256(wasm + (manifest.read_bytes() if manifest else b"") + json.dumps(
                [self.grants.describe(), self.limits], sort_keys=True, default=str).encode()).hexdigest()
            if fingerprint == self._last:
                return Cycle(True, self.serving, built, False, None, time.perf_counter() - started)
            served = self._deploy(wasm, manifest)
        except AirssysError as e:
            return Cycle(False, self.serving, built, False, str(e), time.perf_counter() - started)
        self._last = fingerprint
        self.serving = f"{self.name}@{served}"
        return Cycle(True, self.serving, built, True, None, time.perf_counter() - started)

    def _deploy(self, wasm: bytes, manifest: Path | None) -> str:
        """Deploy ``wasm`` as a new dev version with the manifest's settings and the flags on top; the version now
        serving."""
        from ..lifecycle.deploy import plan_capabilities

        loaded = load_manifest(manifest) if manifest is not None else None
        settings = plan_capabilities(wasm, settings=VersionSettings(self.grants, self.limits), manifest=loaded).settings
        request = DeployRequest(self.name, wasm, version=dev_version(hashlib.sha256(wasm).hexdigest()),
                                route=self.route, settings=settings, nested=self.nested)
        return self.target.deploy(request).deployment.active_version

    def watch(self, report: Report, *, stop: threading.Event | None = None, debounce_ms: int = 300) -> None:
        """Run a first cycle, then one per batch of saved changes, until ``stop`` is set (or Ctrl-C)."""
        import watchfiles

        report(self.cycle())
        root = self.source if self.source.is_dir() else self.source.parent
        relevant = _Relevant(root, self.source)
        for _changes in watchfiles.watch(root, watch_filter=relevant, stop_event=stop, debounce=debounce_ms,
                                         step=50, raise_interrupt=False, yield_on_timeout=False):
            report(self.cycle())


class _Relevant:
    """watchfiles filter: a change matters if it touches a build input or the manifest (not outputs, caches)."""

    def __init__(self, root: Path, source: Path) -> None:
        import watchfiles

        self._default = watchfiles.DefaultFilter()
        self._root = root.resolve()
        self._single = source.resolve() if source.is_file() else None

    def __call__(self, change: Any, path: str) -> bool:
        if not self._default(change, path):
            return False
        p = Path(path)
        if self._single is not None:
            return p.resolve() in (self._single, self._root / MANIFEST_NAME)
        return p.name == MANIFEST_NAME or (p.suffix not in (".wasm", ".pyc") and not p.name.startswith("."))


def guest_files(source: Path) -> Iterable[Path]:
    """The files ``dev`` rebuilds for (shown at start)."""
    return iter_guest_sources(source) if Path(source).is_dir() else [Path(source)]
