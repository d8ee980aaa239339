"""Auto-rollback: watch a new version's failure rate and undo the change by itself when it is too high.

A policy such as ``error-rate=5%,window=30s,min-requests=20`` is stored with the deployment in the registry, so
every server process serving the registry watches the new version, and a restart re-arms the watch. A failure is a
response with status >= 500 (the guest's own 5xx, a trap, a timeout, no free instance).

The watch counts the whole fleet's outcomes, not one process's share: with ``serve --workers 4`` each worker sees a
quarter of the traffic, and on several hosts behind a load balancer less still, so per-process counts would reach
``min-requests`` late, or never. :class:`SharedCounts` adds what its process counted since its last look to the
registry's counters (:attr:`Registry.outcomes <airssys_web.lifecycle.registry.Registry.outcomes>`: a table beside
the embedded registry, a hash in Redis) and returns the totals every process contributed to; every process samples
those totals, so each sees the same rate, and the first to find it too high rolls back (``expect=``: the others
then find the change made and stand down). A process reports at every check (every 0.2 s), so the totals lag the
traffic by about that much. While the registry is unreachable nothing is judged: samples are skipped, and what a
process counted meanwhile is added when the registry answers again.

:class:`ErrorRateWatch` keeps a few ``(time, completed, failed)`` samples of one generation's outcome counters and
computes the rate over the last ``window`` seconds; it trips once at least ``min-requests`` completed in the window
and more than ``error-rate`` of them failed. The clock is injectable (``timer=``, as in cachetools) so tests drive
time by hand. :class:`AutoRollback` holds one watch per component and performs the rollback through the registry
(``expect=`` the watched version, so a change made meanwhile is never undone by mistake) with actor
``auto-rollback`` and the reason in the history.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import AirssysError, CapabilityError, Conflict, NotFound
from ..units import format_duration, parse_duration
from .registry import OutcomeCounters, Registry

log = logging.getLogger("airssys_web.lifecycle.autorollback")

ACTOR = "auto-rollback"
_EXAMPLE = "error-rate=5%,window=30s,min-requests=20"


@dataclass(frozen=True, slots=True)
class Policy:
    """Roll back when more than ``error_rate`` (0-1) of at least ``min_requests`` requests completed within the
    last ``window`` seconds failed."""

    error_rate: float = 0.05
    window: float = 30.0
    min_requests: int = 20

    def __post_init__(self) -> None:
        if not 0 <= self.error_rate < 1:
            raise CapabilityError(f"auto-rollback error-rate must be from 0% to below 100%, got {self.error_rate:.0%}")
        if not 0 < self.window <= 86400:
            raise CapabilityError(f"auto-rollback window must be between 0 and 24h, got {format_duration(self.window)}")
        if not 1 <= self.min_requests <= 1_000_000:
            raise CapabilityError(f"auto-rollback min-requests must be 1 or more, got {self.min_requests}")

    @classmethod
    def parse(cls, text: str) -> Policy:
        """``error-rate=5%,window=30s,min-requests=20`` (any subset; the rest keep their defaults)."""
        values: dict[str, float | int] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            key, sep, raw = (s.strip() for s in item.partition("="))
            try:
                if not sep:
                    raise ValueError
                if key == "error-rate":
                    values["error_rate"] = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
                elif key == "window":
                    values["window"] = parse_duration(raw, what="auto-rollback window", positive=False)
                elif key == "min-requests":
                    values["min_requests"] = int(raw)
                else:
                    raise CapabilityError(
                        f"unknown auto-rollback setting {key!r}; known: error-rate, window, min-requests "
                        f"(e.g. {_EXAMPLE})")
            except ValueError:
                raise CapabilityError(f"invalid auto-rollback setting {item!r}; expected e.g. {_EXAMPLE}") from None
        if not values:
            raise CapabilityError(f"empty auto-rollback policy; expected e.g. {_EXAMPLE}")
        return cls(**values)  # type: ignore[arg-type]

    def __str__(self) -> str:
        window = format_duration(self.window)
        return f"error-rate={self.error_rate * 100:g}%,window={window},min-requests={self.min_requests}"


#: Returns (completed, failed) counters that only grow, or ``None`` when they cannot be read now.
Counts = Callable[[], tuple[int, int] | None]


class SharedCounts:
    """The fleet's totals for one version: each call adds what ``local`` (this process's generation) counted since
    the previous call to ``outcomes``, and returns the totals over every process (``None`` if the registry cannot
    be reached: the outcomes are added on a later call)."""

    def __init__(self, outcomes: OutcomeCounters, component: str, version: str,
                 local: Callable[[], tuple[int, int]]) -> None:
        self.outcomes, self.component, self.version, self._local = outcomes, component, version, local
        self._reported = local()  # what the generation counted before the watch began is not the watch's business

    def __call__(self) -> tuple[int, int] | None:
        completed, failed = self._local()
        new = (completed - self._reported[0], failed - self._reported[1])
        try:
            if new == (0, 0):
                return self.outcomes.totals(self.component, self.version)
            totals = self.outcomes.add(self.component, self.version, *new)
        except AirssysError as e:
            log.debug("%s@%s: outcomes not shared now: %s", self.component, self.version, e)
            return None
        self._reported = (completed, failed)
        return totals


class ErrorRateWatch:
    """The failure rate of one generation over a sliding window (see the module docstring)."""

    def __init__(self, policy: Policy, counts: Counts, *, timer: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self._counts = counts
        self._timer = timer
        self._samples: deque[tuple[float, int, int]] = deque()
        first = counts()
        if first is not None:  # else the first sample that can be read is the baseline
            self._samples.append((timer(), *first))

    def observe(self) -> str | None:
        """Take a sample; return why to roll back if the policy is violated, else ``None``."""
        now = self._timer()
        counts = self._counts()
        samples = self._samples
        if counts is None:
            return None
        completed, failed = counts
        samples.append((now, completed, failed))
        horizon = now - self.policy.window
        # Keep the newest sample at or before the horizon as the baseline of the window.
        while len(samples) > 2 and samples[1][0] <= horizon:
            samples.popleft()
        _, base_completed, base_failed = samples[0]
        total, bad = completed - base_completed, failed - base_failed
        if total < self.policy.min_requests or bad <= self.policy.error_rate * total:
            return None
        return (f"{bad} of {total} requests failed (5xx/trap/timeout) within {self.policy.window:g}s: "
                f"{bad / total:.0%} > {self.policy.error_rate * 100:g}% [{self.policy}]")


@dataclass
class _Armed:
    version: str
    policy_text: str
    generation_id: int
    watch: ErrorRateWatch


class AutoRollback:
    """One :class:`ErrorRateWatch` per component; :meth:`check` rolls back the components that trip.

    Thread-safe: the host arms watches from whichever thread syncs and checks them from its watcher thread.
    """

    def __init__(self, registry: Registry, *, timer: Callable[[], float] = time.monotonic) -> None:
        self.registry = registry
        self.timer = timer
        self._armed: dict[str, _Armed] = {}
        self._lock = threading.Lock()

    def arm(self, component: str, version: str, policy_text: str, generation_id: int, counts: Counts) -> None:
        """Watch ``version`` of ``component``; re-arming the same (version, policy, generation) keeps its window."""
        with self._lock:
            current = self._armed.get(component)
            if current is not None and (current.version, current.policy_text, current.generation_id) == (
                    version, policy_text, generation_id):
                return
            try:
                policy = Policy.parse(policy_text)
            except CapabilityError as e:
                log.error("%s@%s: ignoring the stored auto-rollback policy: %s", component, version, e)
                self._armed.pop(component, None)
                return
            self._armed[component] = _Armed(version, policy_text, generation_id,
                                            ErrorRateWatch(policy, counts, timer=self.timer))

    def disarm(self, component: str) -> None:
        with self._lock:
            self._armed.pop(component, None)

    def watching(self) -> dict[str, str]:
        """component -> the version being watched."""
        with self._lock:
            return {name: armed.version for name, armed in self._armed.items()}

    def check(self) -> list[tuple[str, str, str]]:
        """Sample every watch; roll back those that trip. Returns (component, version, reason) per rollback."""
        done: list[tuple[str, str, str]] = []
        tripped: list[tuple[str, _Armed, str]] = []
        with self._lock:
            for name, armed in list(self._armed.items()):
                reason = armed.watch.observe()
                if reason is not None:
                    del self._armed[name]  # one verdict per activation; a later sync re-arms a new version
                    tripped.append((name, armed, reason))
        for name, armed, reason in tripped:  # registry writes happen outside the lock
            try:
                self.registry.rollback(name, actor=ACTOR, reason=reason, expect=armed.version)
            except (Conflict, NotFound) as e:  # changed meanwhile, or nothing to go back to
                log.warning("auto-rollback of %s@%s skipped: %s", name, armed.version, e)
                continue
            except AirssysError:
                log.exception("auto-rollback of %s@%s failed; will not retry this window", name, armed.version)
                continue
            log.warning("auto-rollback: %s@%s rolled back: %s", name, armed.version, reason)
            done.append((name, armed.version, reason))
        return done
