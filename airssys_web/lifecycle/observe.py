"""A host's changes as metrics: swaps, how long they took to prepare, and the canary split.

The host calls :class:`SwapMetrics` for every component whose serving generations it changed (its ``on_swap``
callbacks, after the new route table is published). A swap is a change of the generations serving a component
that was already served (a new active version, a canary started, promoted or rolled back); serving a component
for the first time, at boot or on its first deploy, is not one. Its duration runs from when building the newest
generation began (load, link, warm-up, and a probe when the strategy prepared it first) to the switch; a swap
that only reuses running generations (a promote) prepared nothing and is counted without a duration.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from time import perf_counter

from ..observability.metrics import Metrics
from ..runtime.generation import Generation


class SwapMetrics:
    """``on_swap`` callback: ``serving(name)`` gives the generations serving ``name`` now and their percent."""

    def __init__(self, metrics: Metrics, serving: Callable[[str], list[tuple[Generation, int]]]) -> None:
        self._metrics = metrics
        self._serving_now = serving
        self._serving: dict[str, frozenset[int]] = {}
        self._timed: weakref.WeakSet[Generation] = weakref.WeakSet()

    def __call__(self, name: str, old: Generation | None, new: Generation | None) -> None:
        now = perf_counter()
        serving = self._serving_now(name)
        gens = [g for g, _ in serving]
        ids = frozenset(id(g) for g in gens)
        before = self._serving.get(name, frozenset())
        if ids != before:
            fresh = [g.built_at for g in gens if g not in self._timed and g.built_at is not None]
            if before and ids:
                self._metrics.swapped(name, now - max(fresh) if fresh else None)
            self._timed.update(gens)
        if ids:
            self._serving[name] = ids
        else:
            self._serving.pop(name, None)
        self._metrics.set_split(name, [(g.version, percent) for g, percent in serving])
