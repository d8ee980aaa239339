"""The running side of airssys-web: keeps live generations in step with the registry.

``AirssysHost`` loads the active deployments at start, then a watcher thread polls the registry's change token
(cheap) and applies changes made by any process as swaps: warm the new generation, publish a new route table in
one assignment, drain and close the old generation in the background. A deployment that cannot be loaded is
logged and skipped; whatever was serving keeps serving.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import AirssysError
from .limits import Limits
from .registry import EmbeddedRegistry, Registry
from .routing import RouteTable
from .runtime.artifacts import ArtifactCache
from .runtime.dispatch import Dispatcher
from .runtime.generation import Generation
from .runtime.imports import HostContext

log = logging.getLogger("airssys_web.host")

#: How long an old generation may take to finish its in-flight requests after a swap.
DRAIN_TIMEOUT = 60.0


@dataclass(frozen=True)
class _Key:
    component: str
    version: str
    sha256: str
    route: str
    settings_json: str


def _same_code(a: _Key, b: _Key) -> bool:
    return (a.version, a.sha256, a.settings_json) == (b.version, b.sha256, b.settings_json)


def settings_to_context(component: str, version: str, settings: dict[str, Any]) -> tuple[HostContext, Limits]:
    """Build the host context and limits a version was deployed with (so a rollback restores them too)."""
    limits = Limits.from_dict(settings.get("limits"))
    ctx = HostContext(component=component, version=version, config=dict(settings.get("config") or {}))
    return ctx, limits


class AirssysHost:
    """Serve the active versions of a registry, hot-swapping them as the registry changes.

    ``registry`` is a directory path (the embedded registry) or a :class:`Registry`. ``poll_interval`` bounds how
    long a change made by another process (the CLI) takes to be noticed.
    """

    def __init__(self, registry: str | Path | Registry, *, poll_interval: float = 0.2,
                 dispatcher: Dispatcher | None = None, drain_timeout: float = DRAIN_TIMEOUT) -> None:
        if isinstance(registry, (str, Path)):
            self.registry: Registry = EmbeddedRegistry(registry)
            self._owns_registry = True
        else:
            self.registry = registry
            self._owns_registry = False
        self.artifacts = ArtifactCache(self.registry.artifacts_dir)
        self.dispatcher = dispatcher or Dispatcher()
        self.poll_interval = poll_interval
        self.drain_timeout = drain_timeout
        self.routes: RouteTable[Generation] = RouteTable()
        self._live: dict[str, tuple[_Key, Generation]] = {}
        self._sync_lock = threading.Lock()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._token: Any = None
        self._started = False
        self._closed = False
        self.on_swap: list[Callable[[str, Generation | None, Generation | None], None]] = []

    # -- lifecycle ------------------------------------------------------------------------------------------
    def start(self, *, watch: bool = True) -> None:
        """Load and warm every active deployment, then (by default) start watching the registry."""
        if self._started:
            return
        self._started = True
        self.sync()
        if watch:
            self._watcher = threading.Thread(target=self._watch, name="airssys-watch", daemon=True)
            self._watcher.start()

    def close(self) -> None:
        """Stop watching, close every generation and the dispatcher (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        with self._sync_lock:
            live, self._live = self._live, {}
            self.routes = RouteTable()
        for _, gen in live.values():
            gen.close()
        self.dispatcher.close()
        if self._owns_registry:
            self.registry.close()

    def __enter__(self) -> AirssysHost:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- matching -------------------------------------------------------------------------------------------
    def match(self, path: str) -> Generation | None:
        return self.routes.match(path)

    def enter(self, path: str) -> Generation | None:
        """Find and enter the generation owning ``path``; retries if it began draining under our feet."""
        for _ in range(8):
            gen = self.routes.match(path)
            if gen is None or gen.enter():
                return gen
        return None

    # -- keeping in step with the registry -------------------------------------------------------------------
    def _watch(self) -> None:
        while not self._stop.wait(self.poll_interval):
            try:
                token = self.registry.change_token()
                if token != self._token:
                    self.sync()
            except Exception:
                log.exception("registry watcher: sync failed; will retry")

    def sync(self) -> list[str]:
        """Apply the registry's active deployments now. Returns the names of components that changed."""
        with self._sync_lock:
            if self._closed:
                return []
            self._token = self.registry.change_token()
            wanted: dict[str, _Key] = {}
            for dep in self.registry.active():
                wanted[dep.component] = _Key(dep.component, dep.active_version, dep.sha256, dep.route, dep.settings_json)
            live = dict(self._live)
            changed: list[str] = []
            retired: list[tuple[str, Generation, Generation | None]] = []
            for name, key in wanted.items():
                current = live.get(name)
                if current is not None and current[0] == key:
                    continue
                if current is not None and _same_code(current[0], key):
                    live[name] = (key, current[1])  # only the route moved: no new generation needed
                    changed.append(name)
                    continue
                try:
                    gen = self._build(key)
                except AirssysError as e:
                    log.error("cannot activate %s@%s: %s; %s", key.component, key.version, e,
                              "the previous version keeps serving" if current else "route stays unserved")
                    continue
                except Exception:
                    log.exception("cannot activate %s@%s", key.component, key.version)
                    continue
                live[name] = (key, gen)
                changed.append(name)
                if current is not None:
                    retired.append((name, current[1], gen))
            for name in set(live) - set(wanted):
                retired.append((name, live.pop(name)[1], None))
                changed.append(name)
            self._live = live
            self.routes = RouteTable({key.route: gen for key, gen in live.values()})  # the atomic switch
        for name, old, new in retired:
            log.info("swapped %s: %s -> %s", name, old.version, new.version if new else "(removed)")
            for cb in self.on_swap:
                cb(name, old, new)
            threading.Thread(target=old.drain, args=(self.drain_timeout,), name=f"airssys-drain-{name}",
                             daemon=True).start()
        return changed

    def _build(self, key: _Key) -> Generation:
        ctx, limits = settings_to_context(key.component, key.version, json.loads(key.settings_json or "{}"))
        if not self.artifacts.has_artifact(key.sha256):
            log.warning("%s@%s: no compiled artifact on disk; compiling now (deploy should have done this)",
                        key.component, key.version)
        component = self.artifacts.get(key.sha256, loader=lambda: self.registry.read_blob(key.sha256))
        gen = Generation(component, ctx, limits, sha256=key.sha256, dispatcher=self.dispatcher)
        gen.warm()
        return gen

    # -- introspection ----------------------------------------------------------------------------------------
    def generations(self) -> dict[str, Generation]:
        return {name: gen for name, (_, gen) in self._live.items()}
