"""The running side of airssys-web: keeps live generations in step with the registry.

``AirssysHost`` loads the active deployments at start, then a watcher thread polls the registry's change token
(cheap) and applies changes made by any process as swaps: warm the new generation, publish a new route table in
one assignment, drain and close the old generation in the background. A deployment that cannot be loaded is
logged and skipped; whatever was serving keeps serving.

A generation is identified by its *code* (component, version, blob, settings): a route move, a canary promoted to
active or a rollback to a version still live reuses the running generation instead of building and warming a new
one. ``prepare()`` lets a strategy build and warm (and probe) a generation *before* it writes the registry; the next
``sync()`` adopts it. A component with a canary in progress is served by a :class:`Split` of two generations.

Middleware stages are live like any component but own no route; a route with a pipeline is served by a
:class:`Piped` target, which makes each request a :class:`~airssys_web.runtime.chain.Chain` of the stages' and the
route's generations (each picked by the client's canary bucket). Any swap publishes a new table, so a request
enters one whole chain. A pipeline naming a stage this server could not load is not served without it (503).

The host owns what runs in the background: its :class:`~airssys_web.runtime.engine.Runtime` (engines, epoch
ticker, worker threads, pool upkeep), the registry watcher (:mod:`.watch`: polls, wakes on pushed changes, backs
off while the registry is unreachable, and reports its health) and one drainer thread; :meth:`close` stops them all.
A sync that could not read a blob because the registry went away is retried when it answers again.
A sync builds and warms new generations without holding the lock that ``prepare()``, ``close()`` and the
introspection methods take: it publishes under it, in one assignment of the route table.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import AirssysError, RegistryUnavailable
from ..observability.metrics import Metrics
from ..runtime.artifacts import ArtifactCache
from ..runtime.chain import Servable
from ..runtime.engine import Runtime
from ..runtime.generation import Generation
from .autorollback import AutoRollback, SharedCounts
from .generations import Code, GenerationFactory
from .observe import SwapMetrics
from .registry import Deployment, EmbeddedRegistry, Registry, open_registry
from .routing import RouteTable
from .services import HostServices
from .targets import Piped, Split, Target, Unavailable, pick
from .watch import RegistryHealth, RegistryWatch

log = logging.getLogger("airssys_web.lifecycle.host")

#: How long an old generation may take to finish its in-flight requests after a swap.
DRAIN_TIMEOUT = 60.0

@dataclass(frozen=True)
class _Live:
    """What serves one component: its route (None for a middleware stage), the active generation, an optional
    canary, and the stages of its pipeline."""

    route: str | None
    stable: Generation
    stable_code: Code
    canary: Generation | None = None
    canary_code: Code | None = None
    percent: int = 0
    stages: tuple[str, ...] = ()

    def target(self) -> Generation | Split:
        return self.stable if self.canary is None else Split(self.stable, self.canary, self.percent)

    def generations(self) -> Iterable[tuple[Code, Generation]]:
        yield self.stable_code, self.stable
        if self.canary is not None and self.canary_code is not None:
            yield self.canary_code, self.canary


class _Drainer:
    """One thread that drains retired generations: each refuses new requests as soon as it is retired, finishes
    what it holds (at most ``timeout`` seconds), then closes. Started on first use; :meth:`close` closes what is
    left at once."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._queue: queue.SimpleQueue[tuple[Generation, float] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._pending: list[Generation] = []

    def retire(self, gen: Generation) -> None:
        gen.retire()  # no new request enters it from now on
        with self._lock:
            if self._closed:
                gen.close()
                return
            self._pending.append(gen)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="airssys-drain", daemon=True)
                self._thread.start()
        self._queue.put((gen, time.monotonic() + self.timeout))

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            gen, deadline = item
            gen.drain(max(0.0, deadline - time.monotonic()))
            with self._lock:
                if gen in self._pending:
                    self._pending.remove(gen)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pending, self._pending = self._pending, []
            thread = self._thread
        for gen in pending:
            gen.close()
        if thread is not None:
            self._queue.put(None)
            thread.join()


def _table(live: dict[str, _Live]) -> dict[str, Target]:
    """The route table of ``live``: each route component's target, with its pipeline's stages in front."""
    table: dict[str, Target] = {}
    for name, entry in live.items():
        if entry.route is None:
            continue  # a middleware stage: reached only through pipelines
        if not entry.stages:
            table[entry.route] = entry.target()
            continue
        missing = [s for s in entry.stages if s not in live or live[s].route is not None]
        if missing:
            log.error("%s: pipeline stage %s is not loaded; the route answers 503 until it is", name,
                      ", ".join(missing))
            table[entry.route] = Unavailable(name, missing)
        else:
            table[entry.route] = Piped(tuple(live[s].target() for s in entry.stages), entry.target())
    return table


class AirssysHost:
    """Serve the active versions of a registry, hot-swapping them as the registry changes.

    ``registry`` is a directory path (the embedded registry), a ``redis://`` URL, or a :class:`Registry`.
    ``poll_interval`` bounds how long a change made by another process (the CLI) takes to be noticed (a registry
    that pushes changes is heard at once). The host makes its own :class:`Runtime`
    (``threads`` and ``inline`` configure its worker threads) unless given one, and closes only what it made;
    ``artifacts``, ``services``, ``metrics`` (where its generations are exported; by default its own
    :class:`~airssys_web.observability.metrics.Metrics`) and ``timer`` (the clock of pool idle times and auto-rollback
    windows) can be injected too.
    """

    def __init__(self, registry: str | Path | Registry, *, poll_interval: float = 0.2, runtime: Runtime | None = None,
                 threads: int | None = None, inline: bool = True, artifacts: ArtifactCache | None = None,
                 services: HostServices | None = None, timer: Callable[[], float] = time.monotonic,
                 drain_timeout: float = DRAIN_TIMEOUT, metrics: Metrics | None = None) -> None:
        self.registry: Registry = open_registry(registry)
        self._owns_registry = self.registry is not registry
        self._owns_runtime = runtime is None
        self.runtime = runtime if runtime is not None else Runtime(threads=threads, inline=inline, timer=timer)
        cache = artifacts if artifacts is not None else ArtifactCache(self.registry.artifacts_dir, self.runtime)
        self._owns_services = services is None
        self.services = services if services is not None else HostServices.for_registry(self.registry)
        self.services.resolve_component = self.component  # internal calls reach this host's components
        self._owns_metrics = metrics is None
        #: The Prometheus series of this host's generations (``/_airssys/metrics``, the dashboard).
        self.metrics = metrics if metrics is not None else Metrics()
        #: Builds this host's generations (its runtime, artifact cache and services).
        self.factory = GenerationFactory(self.runtime, cache, self.services, loader=self.registry.blobs.read,
                                         local_artifacts=not isinstance(self.registry, EmbeddedRegistry),
                                         metrics=self.metrics)
        self.poll_interval = poll_interval
        self.drain_timeout = drain_timeout
        self.routes: RouteTable[Target] = RouteTable()
        self.autorollback = AutoRollback(self.registry, timer=timer)
        self._live: dict[str, _Live] = {}
        self._prepared: dict[Code, Generation] = {}
        self._prepare_lock = threading.Lock()
        self._state_lock = threading.Lock()  # _live, routes and _token: held only to read or publish
        self._sync_mutex = threading.Lock()  # one sync at a time (held while it builds)
        self._drainer = _Drainer(drain_timeout)
        self.watch = RegistryWatch(self.registry, self._tick, poll_interval=poll_interval)
        self._token: Any = None
        self._resync = False  # a sync could not reach the registry for a blob or a secret: sync again
        self._cookie_key: bytes | None = None
        self._started = False
        self._closed = False
        self.on_swap: list[Callable[[str, Generation | None, Generation | None], None]] = [
            SwapMetrics(self.metrics, self.serving_generations)]

    @property
    def artifacts(self) -> ArtifactCache:
        """The compile cache of this host's runtime."""
        return self.factory.artifacts

    # -- lifecycle ------------------------------------------------------------------------------------------
    def start(self, *, watch: bool = True) -> None:
        """Load and warm every active deployment, then (by default) start watching the registry."""
        if self._started:
            return
        self._started = True
        self.metrics.start()
        self.sync()
        if watch:
            self.watch.start()

    def close(self) -> None:
        """Stop watching, close every generation, then the runtime and services this host made (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self.watch.close()
        with self._sync_mutex:  # a sync under way finishes (or sees _closed) first
            with self._state_lock:
                live, self._live = self._live, {}
                self.routes = RouteTable()
        with self._prepare_lock:
            prepared, self._prepared = self._prepared, {}
        for entry in live.values():
            for _, gen in entry.generations():
                gen.close()
        for gen in prepared.values():
            gen.close()
        self._drainer.close()
        if self._owns_runtime:
            self.runtime.close()
        if self._owns_services:
            self.services.close()
        if self._owns_metrics:
            self.metrics.close()
        if self._owns_registry:
            self.registry.close()

    def __enter__(self) -> AirssysHost:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- matching -------------------------------------------------------------------------------------------
    def match(self, path: str) -> Target | None:
        return self.routes.match(path)

    def enter(self, path: str, bucket: Callable[[], int] | None = None) -> Servable | None:
        """Find and enter what serves ``path`` (a generation, or the chain of a route with a pipeline); retries if
        it began draining under our feet.

        On a route split by a canary, ``bucket()`` gives the client's bucket (0-99); without it the stable
        generation answers.
        """
        entered = self.enter_route(path, bucket)
        return None if entered is None else entered[0]

    def enter_route(self, path: str, bucket: Callable[[], int] | None = None) -> tuple[Servable, str] | None:
        """:meth:`enter`, also returning the route that matched ``path`` in the route table: the component's mount
        point now (a route move keeps the generation, so the generation cannot know it)."""
        while True:
            table = self.routes
            hit = table.match_route(path)
            if hit is None:
                return None
            route, target = hit
            gen: Servable
            if isinstance(target, Piped):
                gen = target.pick(bucket)
            elif isinstance(target, Unavailable):
                gen = target
            else:
                gen = pick(target, bucket)
            if gen.enter():
                return gen, route
            # It was retired: a newer table is published before any generation is retired, so look again;
            # if the table is the same, the host is closing.
            if self.routes is table:
                return None

    def route_of(self, name: str) -> str | None:
        """The route component ``name`` is served at in this process, if it is served."""
        entry = self._live.get(name)
        return None if entry is None else entry.route

    def component(self, name: str) -> Generation | None:
        """The active generation of route component ``name`` (what an internal call reaches), if it is served; a
        middleware stage runs only in a pipeline, so it is None for one."""
        entry = self._live.get(name)
        return None if entry is None or entry.route is None else entry.stable

    # -- preparing generations ahead of a registry change ----------------------------------------------------
    def prepare(self, code: Code) -> Generation:
        """Build and warm the generation for ``code`` now (blocking; call it off the event loop) and keep it for
        the next :meth:`sync` to adopt. A generation already live for ``code`` is returned as it is."""
        with self._state_lock:
            for entry in self._live.values():
                for live_code, gen in entry.generations():
                    if live_code == code:
                        return gen
        with self._prepare_lock:
            ready = self._prepared.get(code)
        if ready is not None:
            return ready
        gen = self.factory.build(code)
        with self._prepare_lock:
            if self._closed or code in self._prepared:
                gen.close()
                return self._prepared[code] if code in self._prepared else gen
            self._prepared[code] = gen
        return gen

    def discard_prepared(self, code: Code) -> None:
        """Close the prepared generation for ``code`` unless a sync adopted it (call after the registry write)."""
        with self._prepare_lock:
            gen = self._prepared.pop(code, None)
        if gen is not None:
            gen.close()

    # -- keeping in step with the registry -------------------------------------------------------------------
    def _tick(self) -> None:
        """One look at the registry (the watcher's): sync if it changed, then check the auto-rollback watches."""
        token = self.registry.change_token()
        if token != self._token or self._resync:
            self.sync()
        if self.autorollback.check():
            self.sync()

    @property
    def registry_health(self) -> RegistryHealth:
        """Whether the watcher reaches the registry (``status`` shows it; a metrics hook can read it)."""
        return self.watch.health

    def cookie_key(self) -> bytes:
        """The key that signs canary cookies when no secret is configured: derived from the registry's own random
        key, so every worker and every host serving the registry accepts the cookies the others issued."""
        if self._cookie_key is None:
            try:
                self._cookie_key = self.registry.secrets.derive_key("airssys-web canary bucket")
            except (AirssysError, OSError) as e:
                log.warning("canary cookies are signed with a key of this process only (%s): set AIRSSYS_SECRET so "
                            "that every worker accepts them", e)
                self._cookie_key = secrets.token_bytes(32)
        return self._cookie_key

    def sync(self) -> list[str]:
        """Apply the registry's active deployments now. Returns the names of components that changed.

        New generations are built and warmed first, without the state lock (serving, ``prepare()`` and
        ``close()`` go on meanwhile); the new route table is then published in one assignment, and the
        generations no longer served are retired to the drainer.
        """
        with self._sync_mutex:
            if self._closed:
                return []
            token = self.registry.change_token()  # read first: a change made after it is seen by the next sync
            self._resync = False
            deployments = {dep.component: dep for dep in self.registry.active()}
            with self._state_lock:
                current = dict(self._live)
            running = dict(pair for entry in current.values() for pair in entry.generations())
            live: dict[str, _Live] = {}
            for name, dep in deployments.items():
                entry = self._entry(dep, running, current.get(name))
                if entry is not None:
                    live[name] = entry
            kept = {id(gen) for entry in live.values() for _, gen in entry.generations()}
            with self._state_lock:
                if self._closed:  # closed while building: what this sync made is closed here, the rest by close()
                    before = {id(g) for g in running.values()}
                    for entry in live.values():
                        for _, gen in entry.generations():
                            if id(gen) not in before:
                                gen.close()
                    return []
                changed = sorted(n for n in set(live) | set(current) if live.get(n) != current.get(n))
                swaps = [(n, current[n].stable if n in current else None, live[n].stable if n in live else None)
                         for n in changed]
                self._token = token
                self._live = live
                self.routes = RouteTable(_table(live))  # the switch
                self._arm(deployments, live)
            retired = [gen for gen in running.values() if id(gen) not in kept]
        for name, old, new in swaps:
            if old is not new:
                log.info("swapped %s: %s -> %s", name, old.version if old else "(none)",
                         new.version if new else "(removed)")
            for cb in self.on_swap:
                cb(name, old, new)
        for gen in retired:
            self._drainer.retire(gen)
        return changed

    def _entry(self, dep: Deployment, running: dict[Code, Generation], current: _Live | None) -> _Live | None:
        """The live entry for ``dep``, reusing running or prepared generations; on failure keep ``current``."""
        code = Code.active(dep)
        stable = self._obtain(code, running)
        if stable is None:
            if current is not None:
                log.error("%s: the previous version keeps serving", dep.component)
                return _Live(dep.route, current.stable, current.stable_code, current.canary, current.canary_code,
                             current.percent, dep.stages)
            return None
        canary_code = Code.canary(dep)
        if canary_code is None:
            return _Live(dep.route, stable, code, stages=dep.stages)
        canary = self._obtain(canary_code, running)
        if canary is None:
            log.error("%s: canary %s is not served; %s serves every client", dep.component, dep.canary_version,
                      dep.active_version)
            return _Live(dep.route, stable, code, stages=dep.stages)
        return _Live(dep.route, stable, code, canary, canary_code, dep.canary_percent, dep.stages)

    def _obtain(self, code: Code, running: dict[Code, Generation]) -> Generation | None:
        gen = running.get(code)
        if gen is not None:
            return gen
        with self._prepare_lock:
            gen = self._prepared.pop(code, None)
        if gen is not None:
            return gen
        try:
            return self.factory.build(code)
        except RegistryUnavailable as e:  # not the version's fault: try again when the registry answers
            self._resync = True
            log.error("cannot activate %s@%s now: %s", code.component, code.version, e)
        except AirssysError as e:
            log.error("cannot activate %s@%s: %s", code.component, code.version, e)
        except Exception:
            log.exception("cannot activate %s@%s", code.component, code.version)
        return None

    def _arm(self, deployments: dict[str, Deployment], live: dict[str, _Live]) -> None:
        """Point the auto-rollback watches at the newest live version of each component that has a policy."""
        for name in set(self.autorollback.watching()) - set(live):
            self.autorollback.disarm(name)
        for name, entry in live.items():
            dep = deployments[name]
            watched = entry.canary if dep.canary_version is not None else entry.stable
            if dep.auto_rollback is None or watched is None or watched.version != dep.newest_version:
                self.autorollback.disarm(name)
            else:
                counts = SharedCounts(self.registry.outcomes, name, watched.version, watched.counts)
                self.autorollback.arm(name, watched.version, dep.auto_rollback, id(watched), counts)

    # -- introspection ----------------------------------------------------------------------------------------
    def generations(self) -> dict[str, Generation]:
        """component -> the generation serving its active version."""
        return {name: entry.stable for name, entry in self._live.items()}

    def canaries(self) -> dict[str, tuple[Generation, int]]:
        """component -> (canary generation, percent) for every canary being served."""
        return {name: (entry.canary, entry.percent) for name, entry in self._live.items() if entry.canary}

    def serving_generations(self, name: str) -> list[tuple[Generation, int]]:
        """The generations serving ``name`` in this process, with the percent of clients each gets."""
        entry = self._live.get(name)
        if entry is None:
            return []
        if entry.canary is None:
            return [(entry.stable, 100)]
        return [(entry.stable, 100 - entry.percent), (entry.canary, entry.percent)]

    def serving(self, name: str) -> tuple[str | None, str | None, int]:
        """(active version, canary version, canary percent) this process serves for ``name``."""
        entry = self._live.get(name)
        if entry is None:
            return None, None, 0
        return entry.stable.version, entry.canary.version if entry.canary else None, entry.percent
