"""What a route is served by: one generation, a canary :class:`Split` of two, or a pipeline's chain.

The host publishes a route table of these targets (one assignment per change); the middleware picks, per request,
what to enter: the generation a client's canary bucket selects, or, for a route with middleware stages in front of
it (:class:`Piped`), a :class:`~airssys_web.runtime.chain.Chain` of the stages' and the route's generations, each
picked by the same bucket. Chains are kept per combination, so a request builds none. A pipeline naming a stage
this server could not load is served by :class:`Unavailable`: the route answers 503 rather than run unguarded.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import Receive, Scope, Send

from ..errors import AirssysError, StageUnavailable
from ..observability.stats import RequestStats
from ..runtime.chain import Chain
from ..runtime.generation import Generation

__all__ = ["BUCKETS", "Piped", "Split", "Target", "Unavailable", "pick"]

#: Canary buckets: a client's bucket is uniform in ``range(BUCKETS)``; bucket < percent -> canary.
BUCKETS = 100


class Split:
    """A route shared by the active (``stable``) generation and a ``canary`` serving ``percent`` % of clients."""

    __slots__ = ("canary", "percent", "stable")

    def __init__(self, stable: Generation, canary: Generation, percent: int) -> None:
        self.stable = stable
        self.canary = canary
        self.percent = percent

    def pick(self, bucket: int) -> Generation:
        return self.canary if bucket < self.percent else self.stable

    @property
    def name(self) -> str:
        return self.stable.name

    @property
    def tag(self) -> str:
        return f"{self.stable.tag} + {self.canary.tag} ({self.percent}%)"


def pick(target: Generation | Split, bucket: Callable[[], int] | None) -> Generation:
    """The generation of ``target`` a client in ``bucket()`` gets (the stable one without a bucket)."""
    if isinstance(target, Split):
        return target.pick(bucket()) if bucket is not None else target.stable
    return target


class Piped:
    """A route with middleware stages in front of it: every request gets a :class:`Chain` of the generations its
    canary bucket picks (chains are kept per combination, so a request builds none)."""

    __slots__ = ("_chains", "route", "stages")

    def __init__(self, stages: tuple[Generation | Split, ...], route: Generation | Split) -> None:
        self.stages = stages
        self.route = route
        self._chains: dict[tuple[int, ...], Chain] = {}

    def pick(self, bucket: Callable[[], int] | None) -> Chain:
        gens = tuple(pick(t, bucket) for t in self.stages)
        route = pick(self.route, bucket)
        key = (*map(id, gens), id(route))
        chain = self._chains.get(key)
        if chain is None:  # at most 2 ** (stages + 1) combinations, each built once (a race builds one twice)
            chain = self._chains[key] = Chain(gens, route)
        return chain

    @property
    def name(self) -> str:
        return self.route.name

    @property
    def tag(self) -> str:
        return " > ".join(t.tag for t in (*self.stages, self.route))


class Unavailable:
    """What a route is served by when its pipeline names a stage this server could not load: a 503 naming it."""

    version_headers: list[tuple[bytes, bytes]] = []

    def __init__(self, name: str, missing: list[str]) -> None:
        self.name = self.tag = name
        self.version = ""  # no version answers: the 503 is the host's
        self.missing = missing
        #: Its 503s are counted here, not under a version of the route's component (none of it ran).
        self.stats = RequestStats()

    def enter(self) -> bool:
        return True

    def leave(self) -> None:
        pass

    def outcome(self, status: int, error: AirssysError | None = None) -> None:
        pass

    async def serve(self, scope: Scope, receive: Receive, send: Send, extra: list[tuple[bytes, bytes]], *,
                    body_timeout: float) -> int:
        raise StageUnavailable(f"{self.name}: its pipeline stage {', '.join(self.missing)} is not loaded on this "
                               "server (see the log); the route is not served without it", component=self.name)


Target = Generation | Split | Piped | Unavailable
