"""What one generation answered: plain counters that the request path bumps, and exporters read.

A request pays for a few list increments and a ``bisect`` here, never for ``prometheus_client``'s ``labels()`` (a
dict lookup and a lock per call, ~1.5 µs measured) or its values (a lock each, and an ``mmap`` write in
multiprocess mode): :class:`~airssys_web.observability.metrics.Metrics` copies these counters into Prometheus
series when it is scraped (and, with several worker processes, every second), so the exported numbers and the
dashboard's come from the same counters.

Who writes what, and why there is no lock on the first part: :meth:`RequestStats.request` is only called by the
middleware on the event loop (one thread), while readers only read. Everything else (guest errors, pipeline stage
calls, outbound fetches) is counted from worker threads as well, under the object's lock; those paths already
cost a thread hop or a network round trip.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from typing import Any

from ..errors import (
    AirssysError,
    BadGuestResponse,
    GuestError,
    GuestMemoryLimit,
    GuestTimeout,
    HostClosed,
    PoolExhausted,
)

#: Upper bounds (seconds) of the request duration histogram's buckets; ``+Inf`` follows the last one.
BUCKETS: tuple[float, ...] = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                              30.0)
#: ``airssys_guest_errors_total``'s ``kind`` label, by index.
ERROR_KINDS: tuple[str, ...] = ("trap", "timeout", "memory", "bad_response", "busy")
#: ``airssys_outbound_requests_total``'s ``outcome`` label, by index.
OUTCOMES: tuple[str, ...] = ("allowed", "denied", "error")
ALLOWED, DENIED, FAILED = range(3)
#: Statuses are counted in a list indexed by the status code (100-599 from a guest, the rest from us).
_STATUSES = 600


def error_kind(error: BaseException) -> int | None:
    """The index in :data:`ERROR_KINDS` of a failed guest call, or None when it is not the guest's failure (a
    request refused before the guest ran, the host shutting down)."""
    if not isinstance(error, GuestError) or isinstance(error, HostClosed):
        return None
    if isinstance(error, GuestTimeout):
        return 1
    if isinstance(error, GuestMemoryLimit):
        return 2
    if isinstance(error, BadGuestResponse):
        return 3
    if isinstance(error, PoolExhausted):
        return 4
    return 0  # a trap, or a guest failure of no more precise kind


class Timings:
    """A histogram over :data:`BUCKETS`: counts per bucket (each bucket on its own, not cumulative) and the sum."""

    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.sum = 0.0

    @property
    def count(self) -> int:
        return sum(self.counts)

    def copy(self) -> Timings:
        other = Timings()
        other.counts = self.counts.copy()
        other.sum = self.sum
        return other


class RequestStats:
    """The counters of one generation (one component version in one process).

    * ``statuses[s]``, ``timings``: requests answered through the generation's route with status ``s`` and how long
      they took (the whole request as the middleware served it, pipeline stages included);
    * ``errors[k]``: failed calls of this version's guest, by :data:`ERROR_KINDS` index, wherever it ran;
    * ``stage_statuses``, ``stage_timings``: calls of this version as a pipeline stage (a middleware in front of
      a route), with the status it answered and the time it took (the stages after it included);
    * ``outbound[o]``: its outbound fetches by :data:`OUTCOMES` index.
    """

    __slots__ = ("_lock", "errors", "outbound", "stage_statuses", "stage_timings", "statuses", "timings")

    def __init__(self) -> None:
        self.statuses = [0] * _STATUSES
        self.timings = Timings()
        self.errors = [0] * len(ERROR_KINDS)
        self.stage_statuses = [0] * _STATUSES
        self.stage_timings = Timings()
        self.outbound = [0] * len(OUTCOMES)
        self._lock = threading.Lock()

    def request(self, status: int, seconds: float, _bisect: Any = bisect_left, _bounds: Any = BUCKETS) -> None:
        """Count one request answered with ``status`` (100-599: the runtime refuses any other from a guest) in
        ``seconds``. Event loop only (no lock): the hot path."""
        self.statuses[status] += 1
        timings = self.timings
        timings.counts[_bisect(_bounds, seconds)] += 1
        timings.sum += seconds

    def failed(self, error: AirssysError) -> None:
        """Count a failed guest call by its kind (nothing for errors that are not the guest's)."""
        kind = error_kind(error)
        if kind is not None:
            with self._lock:
                self.errors[kind] += 1

    def stage(self, status: int, seconds: float) -> None:
        """Count one call of this version as a pipeline stage (any thread)."""
        with self._lock:
            self.stage_statuses[status if 0 <= status < _STATUSES else 0] += 1
            self.stage_timings.counts[bisect_left(BUCKETS, seconds)] += 1
            self.stage_timings.sum += seconds

    def fetched(self, outcome: int) -> None:
        """Count one outbound fetch by its :data:`OUTCOMES` index (any thread)."""
        with self._lock:
            self.outbound[outcome] += 1

    def snapshot(self) -> StatsSnapshot:
        """A consistent copy of every counter (the locked ones under the lock)."""
        with self._lock:
            snap = StatsSnapshot(self.statuses.copy(), self.timings.copy(), self.errors.copy(),
                                 self.stage_statuses.copy(), self.stage_timings.copy(), self.outbound.copy())
        return snap


class StatsSnapshot:
    """A copy of a :class:`RequestStats`, as an exporter reads it."""

    __slots__ = ("errors", "outbound", "stage_statuses", "stage_timings", "statuses", "timings")

    def __init__(self, statuses: list[int], timings: Timings, errors: list[int], stage_statuses: list[int],
                 stage_timings: Timings, outbound: list[int]) -> None:
        self.statuses = statuses
        self.timings = timings
        self.errors = errors
        self.stage_statuses = stage_statuses
        self.stage_timings = stage_timings
        self.outbound = outbound

    @classmethod
    def empty(cls) -> StatsSnapshot:
        return RequestStats().snapshot()


__all__ = ["ALLOWED", "BUCKETS", "DENIED", "ERROR_KINDS", "FAILED", "OUTCOMES", "RequestStats", "StatsSnapshot",
           "Timings", "error_kind"]
