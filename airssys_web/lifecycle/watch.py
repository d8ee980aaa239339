"""Keeping a host in step with its registry: when to look (poll, push, backoff) and whether the registry answers.

:class:`RegistryWatch` runs the host's ``tick`` (read the change token, sync if it moved, check the auto-rollback
watches) on one daemon thread:

* every ``poll_interval`` seconds (0.2 s): the fallback that always works, on any registry;
* at once when a registry that pushes changes (:class:`~.registry.ChangeFeed`: Redis pub/sub) says something
  changed, so a deploy through any host reaches the others in about a round trip plus the warm-up;
* with exponential backoff (up to ``max_backoff``, 5 s) while the registry is unreachable
  (:class:`~airssys_web.errors.RegistryUnavailable`). Meanwhile the host keeps serving what it loaded: nothing on
  the request path reads the registry.

:class:`RegistryHealth` is what ``status`` (the admin API's ``GET /status``) and metrics report: whether the
registry answers, since when, the last error and the number of retries. The first failure and the recovery are
logged once each (``airssys_web.lifecycle.watch``), not every retry; ``on_change`` callbacks (a metrics hook) are
called on each of those transitions.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from ..errors import RegistryUnavailable
from .registry import ChangeFeed, Registry, describe_location

log = logging.getLogger("airssys_web.lifecycle.watch")

#: The longest pause between two attempts to reach an unreachable registry.
MAX_BACKOFF = 5.0


@dataclass(frozen=True)
class RegistryHealth:
    """Whether this process can reach its registry (as of its last attempt)."""

    reachable: bool = True
    #: Wall-clock time (seconds since the epoch) of the last change of ``reachable``.
    since: float = 0.0
    error: str | None = None
    #: Failed attempts since the registry became unreachable.
    retries: int = 0
    #: Wall-clock time of the last successful look at the registry.
    last_ok: float | None = None

    def to_json(self) -> dict[str, Any]:
        def iso(t: float | None) -> str | None:
            return None if t is None else datetime.fromtimestamp(t, UTC).isoformat()

        return {"state": "ok" if self.reachable else "unreachable", "since": iso(self.since), "error": self.error,
                "retries": self.retries, "last_ok": iso(self.last_ok)}


class RegistryWatch:
    """Calls ``tick`` on a thread, as the module docstring says. ``clock`` is the wall clock of the health
    record (injectable); waits use the thread's own timed waits."""

    def __init__(self, registry: Registry, tick: Callable[[], None], *, poll_interval: float = 0.2,
                 max_backoff: float = MAX_BACKOFF, clock: Callable[[], float] = time.time,
                 label: str | None = None) -> None:
        self.registry = registry
        self.poll_interval = poll_interval
        self.max_backoff = max(max_backoff, poll_interval)
        self.label = label or describe_location(str(getattr(registry, "location", getattr(registry, "root", "?"))))
        self.on_change: list[Callable[[RegistryHealth], None]] = []
        self._tick = tick
        self._clock = clock
        self._health = RegistryHealth(since=clock(), last_ok=clock())
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._unsubscribe: Callable[[], None] | None = None

    @property
    def health(self) -> RegistryHealth:
        return self._health

    def start(self) -> None:
        if self._thread is not None:
            return
        if isinstance(self.registry, ChangeFeed):
            self._unsubscribe = self.registry.subscribe(self.wake)
        self._thread = threading.Thread(target=self._run, name="airssys-watch", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Look at the registry now (a change was announced)."""
        self._wake.set()

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        delay = self.poll_interval
        while not self._stop.is_set():
            self._wake.wait(delay)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self._tick()
            except RegistryUnavailable as e:
                self.failed(e)
                delay = min(max(delay * 2, self.poll_interval), self.max_backoff)
                continue
            except Exception:
                log.exception("registry watcher: sync failed; will retry")
            else:
                self.succeeded()
            delay = self.poll_interval

    # -- health ---------------------------------------------------------------------------------------------
    def failed(self, error: RegistryUnavailable) -> None:
        """Record a failed attempt to reach the registry (the first one is logged)."""
        before, now = self._health, self._clock()
        if before.reachable:
            self._set(RegistryHealth(False, now, str(error), 1, before.last_ok))
            log.warning("registry %s is unreachable: %s; serving what was loaded, retrying (at most %gs apart)",
                        self.label, error, self.max_backoff)
        else:
            self._health = replace(before, error=str(error), retries=before.retries + 1)
            log.debug("registry %s still unreachable (attempt %d): %s", self.label, before.retries + 1, error)

    def succeeded(self) -> None:
        """Record a successful look at the registry (a recovery is logged)."""
        before, now = self._health, self._clock()
        if not before.reachable:
            self._set(RegistryHealth(True, now, None, 0, now))
            log.warning("registry %s is reachable again after %.1fs (%d retries); caught up with its changes",
                        self.label, now - before.since, before.retries)
        else:
            self._health = replace(before, last_ok=now)

    def _set(self, health: RegistryHealth) -> None:
        self._health = health
        for callback in list(self.on_change):
            try:
                callback(health)
            except Exception:  # pragma: no cover - a hook's bug must not stop the watch
                log.exception("registry health hook failed")
