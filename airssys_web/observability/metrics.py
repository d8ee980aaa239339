"""Prometheus metrics for one host: the series, and how per-generation counters become them.

Every generation counts what it serves in its own :class:`~.stats.RequestStats` (plain counters, no labels, no
locks on the request path). :class:`Metrics` knows the live generations (:meth:`Metrics.bind` when one is built,
:meth:`Metrics.release` when it closes) and copies what they counted since the last time into the label children
of ``prometheus_client`` metrics when it is scraped (:meth:`Metrics.flush`). The label children of a generation are
made from its component and version once, off the request path, and removed when the last generation with those
labels closes (a version that drains while its successor serves keeps them until then).

With several worker processes (``serve --workers N``) ``prometheus_client``'s multiprocess mode applies: every
process writes its values to files in ``PROMETHEUS_MULTIPROC_DIR`` (which ``serve`` creates and removes), and a
scrape answered by any worker reads all of them. A worker flushes its counters every ``flush_interval`` seconds
(a thread started by :meth:`Metrics.start`, stopped by :meth:`Metrics.close`), and before it answers a scrape, so
one scrape covers every worker, the others as of at most a second ago. In that mode series cannot be removed
(``prometheus_client`` does not implement it): a retired version's counters stay at their last value and its
gauges drop to 0. ``serve`` marks a dead worker's files (``mark_process_dead``) so its live gauges leave the sum.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import tempfile
import threading
from collections import Counter as Tally
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.values import ValueClass

from ..errors import AirssysError
from .stats import BUCKETS, ERROR_KINDS, OUTCOMES, RequestStats, StatsSnapshot, Timings

log = logging.getLogger("airssys_web.metrics")

#: prometheus-client's multiprocess directory variable.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Buckets of ``airssys_swap_duration_seconds``: building, warming and switching to a new generation.
SWAP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
FLUSH_INTERVAL = 1.0


class Pool(Protocol):
    @property
    def idle(self) -> int: ...
    @property
    def size(self) -> int: ...


class Observed(Protocol):
    """What metrics need of a generation (``airssys_web.runtime.generation.Generation``)."""

    stats: RequestStats

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def pool(self) -> Pool: ...


class _Bound:
    """A live generation, the label children made for it, and what was already copied into them."""

    __slots__ = ("busy", "duration", "gen", "idle", "key", "last", "stage_duration")

    def __init__(self, gen: Observed, metrics: Metrics) -> None:
        self.gen = gen
        self.key = (gen.name, gen.version)
        self.last = StatsSnapshot.empty()
        self.duration = metrics._child(metrics.duration, self.key)
        self.stage_duration: Any = None  # made when the version first runs as a pipeline stage
        self.idle = metrics._child(metrics.instances, (*self.key, "idle"))
        self.busy = metrics._child(metrics.instances, (*self.key, "busy"))


class Metrics:
    """The airssys series of one host, exported from its generations' counters (a ``prometheus_client`` collector).

    ``multiprocess_dir`` (default: ``$PROMETHEUS_MULTIPROC_DIR``) turns on multiprocess mode; it must have been set
    before ``prometheus_client`` was first imported in the process, as ``serve --workers`` does for its workers.
    :attr:`registry` holds what :meth:`render` exposes; ``REGISTRY.register(metrics)`` adds the series to another
    registry (single-process mode).
    """

    def __init__(self, *, multiprocess_dir: str | None = None, flush_interval: float = FLUSH_INTERVAL) -> None:
        directory = multiprocess_dir if multiprocess_dir is not None else os.environ.get(MULTIPROC_ENV)
        self.multiprocess_dir = directory or None
        if self.multiprocess_dir is not None and not getattr(ValueClass, "_multiprocess", False):
            raise AirssysError(f"{MULTIPROC_ENV} was set after prometheus_client was imported in this process; "
                               "set it before the process starts (serve --workers does this for its workers)")
        self.flush_interval = flush_interval
        labels = ["component", "version"]
        self.requests = Counter("airssys_requests", "Requests answered through a component's route, by status.",
                                [*labels, "status"], registry=None)
        self.duration = Histogram("airssys_request_duration_seconds",
                                  "Time to answer a request through a component's route (pipeline stages included).",
                                  labels, buckets=BUCKETS, registry=None)
        self.guest_errors = Counter("airssys_guest_errors", "Failed guest calls by kind.", [*labels, "kind"],
                                    registry=None)
        self.instances = Gauge("airssys_instances",
                               "Instances of a version: idle (ready) or busy (serving a request, or being made).",
                               [*labels, "state"], registry=None, multiprocess_mode="livesum")
        self.outbound = Counter("airssys_outbound_requests", "Outbound fetches of a version by outcome.",
                                [*labels, "outcome"], registry=None)
        self.swaps = Counter("airssys_swaps", "Changes of the versions serving a component.", ["component"],
                             registry=None)
        self.swap_duration = Histogram("airssys_swap_duration_seconds",
                                       "From building a new generation (load, link, warm) to the route switching "
                                       "to it.", buckets=SWAP_BUCKETS, registry=None)
        self.canary = Gauge("airssys_canary_percent", "Percent of clients each serving version of a component gets.",
                            labels, registry=None, multiprocess_mode="livemax")
        self.stage_requests = Counter("airssys_stage_requests",
                                      "Calls of a version as a pipeline stage (middleware), by the status it answered.",
                                      [*labels, "status"], registry=None)
        self.stage_duration = Histogram("airssys_stage_duration_seconds",
                                        "Time a pipeline stage took (the stages after it included).", labels,
                                        buckets=BUCKETS, registry=None)
        self._families = (self.requests, self.duration, self.guest_errors, self.instances, self.outbound,
                          self.swaps, self.swap_duration, self.canary, self.stage_requests, self.stage_duration)
        self._lock = threading.RLock()
        self._bound: dict[int, _Bound] = {}
        self._refs: Tally[tuple[str, str]] = Tally()
        self._children: dict[tuple[str, str], set[tuple[Any, tuple[str, ...]]]] = {}
        self._split: dict[str, set[str]] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        if self.multiprocess_dir is not None:
            _WorkersCollector(self.registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        else:
            self.registry.register(self)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> None:
        """In multiprocess mode, start flushing every ``flush_interval`` seconds (idempotent); else nothing."""
        with self._lock:
            if self.multiprocess_dir is None or self._thread is not None or self._stop.is_set():
                return
            self._thread = threading.Thread(target=self._run, name="airssys-metrics", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_interval):
            try:
                self.flush()
            except Exception:  # pragma: no cover - a bug here must not end the flushing
                log.exception("metrics: flushing failed")

    def close(self) -> None:
        """Stop the flusher thread after a last flush (idempotent)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()
        self.flush()

    # -- generations ----------------------------------------------------------------------------------------
    def bind(self, gen: Observed) -> None:
        """Export ``gen``'s counters from now on (called when the generation is built)."""
        with self._lock:
            if id(gen) in self._bound:
                return
            self._refs[(gen.name, gen.version)] += 1
            self._bound[id(gen)] = _Bound(gen, self)

    def release(self, gen: Observed) -> None:
        """Copy ``gen``'s last counts, then forget it; the last generation of a (component, version) takes its
        series along (called when the generation closes, after its drain)."""
        with self._lock:
            bound = self._bound.pop(id(gen), None)
            if bound is None:
                return
            self._flush(bound)
            self._refs[bound.key] -= 1
            if self._refs[bound.key] > 0:
                return
            del self._refs[bound.key]
            bound.idle.set(0)
            bound.busy.set(0)
            children = self._children.pop(bound.key, set())
            if self.multiprocess_dir is None:
                for family, values in children:
                    family.remove(*values)

    def _child(self, family: Any, values: tuple[str, ...]) -> Any:
        """``family.labels(*values)``, remembered under its (component, version) so it can be removed."""
        self._children.setdefault((values[0], values[1]), set()).add((family, values))
        return family.labels(*values)

    # -- events that are not per request -----------------------------------------------------------------------
    def swapped(self, component: str, seconds: float | None = None) -> None:
        """A change of the versions serving ``component``; ``seconds`` it took to prepare, if it built one."""
        self.swaps.labels(component).inc()
        if seconds is not None:
            self.swap_duration.observe(max(0.0, seconds))

    def set_split(self, component: str, split: Iterable[tuple[str, float]]) -> None:
        """The versions serving ``component`` and the percent of clients each gets (empty: no longer served)."""
        with self._lock:
            now = dict(split)
            for version in self._split.get(component, set()) - set(now):
                if self.multiprocess_dir is None:
                    self.canary.remove(component, version)
                else:
                    self.canary.labels(component, version).set(0)
            for version, percent in now.items():
                self.canary.labels(component, version).set(percent)
            self._split[component] = set(now)

    # -- exporting --------------------------------------------------------------------------------------------
    def flush(self) -> None:
        """Copy what every live generation counted since the last flush into the label children."""
        with self._lock:
            for bound in list(self._bound.values()):
                self._flush(bound)

    def _flush(self, b: _Bound) -> None:
        snap, last = b.gen.stats.snapshot(), b.last
        key = b.key
        if snap.statuses != last.statuses:
            for status, (now, before) in enumerate(zip(snap.statuses, last.statuses, strict=True)):
                if now != before:
                    self._child(self.requests, (*key, str(status))).inc(now - before)
        add_timings(b.duration, snap.timings, last.timings)
        for i, kind in enumerate(ERROR_KINDS):
            if snap.errors[i] != last.errors[i]:
                self._child(self.guest_errors, (*key, kind)).inc(snap.errors[i] - last.errors[i])
        for i, outcome in enumerate(OUTCOMES):
            if snap.outbound[i] != last.outbound[i]:
                self._child(self.outbound, (*key, outcome)).inc(snap.outbound[i] - last.outbound[i])
        if snap.stage_statuses != last.stage_statuses:
            for status, (now, before) in enumerate(zip(snap.stage_statuses, last.stage_statuses, strict=True)):
                if now != before:
                    self._child(self.stage_requests, (*key, str(status))).inc(now - before)
            if b.stage_duration is None:
                b.stage_duration = self._child(self.stage_duration, key)
            add_timings(b.stage_duration, snap.stage_timings, last.stage_timings)
        b.last = snap
        pool = b.gen.pool
        idle = pool.idle
        b.idle.set(idle)
        b.busy.set(max(0, pool.size - idle))

    def collect(self) -> Iterator[Metric]:
        """The collector protocol (single-process mode): flush, then every family's samples."""
        self.flush()
        for family in self._families:
            yield from family.collect()

    def describe(self) -> list[Metric]:
        return []

    def samples(self) -> list[Metric]:
        """Everything a scrape would show, as ``prometheus_client`` metric families (the dashboard reads these)."""
        if self.multiprocess_dir is not None:
            self.flush()
        return list(self.registry.collect())

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition of every series, and its content type."""
        if self.multiprocess_dir is not None:
            self.flush()
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _WorkersCollector(MultiProcessCollector):  # type: ignore[misc]
    """prometheus-client's multiprocess collector, robust to a worker starting during a scrape.

    Its ``collect`` lists the ``*.db`` files and reads each. A worker that has just started may have made its
    file but not sized it yet, and reading an empty file failed the whole scrape with a 500 (seen when the
    supervisor replaced a killed worker). Such a file holds no sample yet: it is left out. (A dead worker's live
    gauge file removed by ``mark_process_dead`` between the listing and the read, prometheus-client skips itself.)
    """

    def collect(self) -> Any:
        files = []
        for path in glob.glob(os.path.join(self._path, "*.db")):
            with contextlib.suppress(OSError):  # gone since the listing: nothing to read
                if os.path.getsize(path) >= 8:  # its used-bytes header is there: the file has been sized
                    files.append(path)
        return self.merge(files, accumulate=True)  # type: ignore[no-untyped-call]


def prepare_multiprocess_dir() -> tuple[str, bool]:
    """The multiprocess directory for a pre-fork server about to start its workers, and whether it was made here.

    ``$PROMETHEUS_MULTIPROC_DIR`` if set (its ``*.db`` files from an earlier run are removed, as
    prometheus-client requires), else a new temporary directory (the caller removes it when the server stops).
    Sets the variable, so the workers (new processes) inherit it before they import prometheus-client.
    """
    directory = os.environ.get(MULTIPROC_ENV)
    made = not directory
    if made:
        directory = tempfile.mkdtemp(prefix="airssys-metrics-")
    else:
        assert directory is not None
        os.makedirs(directory, exist_ok=True)
        for name in os.listdir(directory):
            if name.endswith(".db"):
                os.remove(os.path.join(directory, name))
    os.environ[MULTIPROC_ENV] = directory
    return directory, made


def mark_dead(pid: int, directory: str | None = None) -> None:
    """A worker process exited: its live gauges (instances, canary split) leave the sums; its counters stay."""
    mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]


def add_timings(child: Any, now: Timings, before: Timings) -> None:
    """Add the observations ``now`` has beyond ``before`` to a ``prometheus_client`` histogram child.

    prometheus_client has no public call that adds many observations at once, and one ``observe()`` per request
    is what the counters avoid. A histogram child keeps one value per bucket (not cumulative) in ``_buckets``
    and the sum in ``_sum``; tests/test_metrics.py checks that layout against the installed version.
    """
    if now.counts == before.counts:
        return
    buckets = child._buckets
    for i, (a, b) in enumerate(zip(now.counts, before.counts, strict=True)):
        if a != b:
            buckets[i].inc(a - b)
    child._sum.inc(now.sum - before.sum)


__all__ = ["MULTIPROC_ENV", "Metrics", "Observed", "add_timings", "mark_dead", "prepare_multiprocess_dir"]
