"""A route with middleware stages in front of it: the chain one request goes through.

Each stage is its own generation (its own sandbox, grants, limits, version and instances); the last element is
the route's own component. The first stage receives the request; when it calls its imported ``handler``, the
next element receives what it passed on, and so on; each answer travels back the same way. A stage may also
answer itself (an auth check's 401): the elements after it are never called.

A request enters every element of the chain it started with (the drain protocol of each generation), so a swap of
any stage publishes a new chain while requests in flight finish on the one they entered: a request always sees
one whole chain. The chain runs on one worker thread; each element's deadline is its own timeout or what the
element before it has left, whichever is sooner, so one deadline covers the chain. A failure of an element is
the request's failure (the same clean 5xx as a route component's), and counts against that element's version.

Observed per element: each stage's call is counted under its own version (``RequestStats.stage``: the status it
answered and its time, the elements after it included) and a failure by its kind; with a tracer installed, each
element gets a span, nested as the calls are. The request as a whole is counted by the middleware, under the
route's version (:attr:`Chain.stats`).
"""

from __future__ import annotations

from collections.abc import Sequence
from time import perf_counter
from typing import Protocol

from starlette.types import Receive, Scope, Send

from .. import _native
from ..errors import AirssysError, BodyTooLarge, HostClosed
from ..observability.stats import RequestStats
from ..observability.tracing import TRACING
from .generation import Generation
from .instance import GuestResponse
from .limits import Limits
from .worlds import VERSION_HEADER
from .worlds.airssys import AIRSSYS

STAGES_HEADER = b"x-airssys-stages"


class Servable(Protocol):
    """What answers a request that matched a route: a :class:`Generation`, or a :class:`Chain` of stages in front
    of one. The middleware enters it (the drain protocol), serves, counts the outcome, and leaves."""

    version_headers: list[tuple[bytes, bytes]]

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def tag(self) -> str: ...

    @property
    def stats(self) -> RequestStats: ...

    def enter(self) -> bool: ...

    def leave(self) -> None: ...

    def outcome(self, status: int, error: AirssysError | None = None) -> None: ...

    async def serve(self, scope: Scope, receive: Receive, send: Send, extra: list[tuple[bytes, bytes]], *,
                    body_timeout: float) -> int: ...


class Chain:
    """``stages`` (middleware generations, first sees the request first) in front of ``route``."""

    __slots__ = ("elements", "route", "stages", "tag_bytes", "version_headers")

    def __init__(self, stages: Sequence[Generation], route: Generation) -> None:
        self.stages = tuple(stages)
        self.route = route
        self.elements = (*self.stages, route)
        self.tag_bytes = route.tag_bytes
        stages_text = ", ".join(g.tag for g in self.stages).encode()
        #: Response headers naming the versions the request went through: the route's, and the stages' in order.
        self.version_headers = [(VERSION_HEADER, route.tag_bytes), (STAGES_HEADER, stages_text)]

    # -- what the middleware needs of a target --------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.route.name

    @property
    def version(self) -> str:
        return self.route.version

    @property
    def tag(self) -> str:
        return " > ".join(g.tag for g in self.elements)

    @property
    def limits(self) -> Limits:
        """The first stage's limits bound what is read from the client (it receives the request)."""
        return self.elements[0].limits

    def enter(self) -> bool:
        """Enter every element, or none (False: one began draining; the caller looks the route up again)."""
        for i, gen in enumerate(self.elements):
            if not gen.enter():
                for entered in self.elements[:i]:
                    entered.leave()
                return False
        return True

    def leave(self) -> None:
        for gen in self.elements:
            gen.leave()

    @property
    def stats(self) -> RequestStats:
        """Requests through the chain are counted under the route's version (its stages count their own calls)."""
        return self.route.stats

    def outcome(self, status: int, error: AirssysError | None = None) -> None:
        """Nothing to count here: each element counts its own answer as the chain runs (a stage's failure must
        not count against the route's version, nor a later element's against the stages before it)."""

    # -- calling ----------------------------------------------------------------------------------------------
    async def serve(self, scope: Scope, receive: Receive, send: Send, extra: list[tuple[bytes, bytes]], *,
                    body_timeout: float) -> int:
        """Answer one ASGI request: a chain is served like an ``airssys:web`` component (the first stage reads
        the request whole; the route's component may be of any world: it gets the request its stages passed on)."""
        return await AIRSSYS.serve(self, scope, receive, send, extra, body_timeout=body_timeout)

    async def handle(self, method: str, path: str, query: str, headers: Sequence[tuple[str, str]],
                     body: bytes) -> GuestResponse:
        """Run the chain on a worker thread (its elements call each other synchronously there)."""
        try:
            return await self.elements[0].dispatcher.run(self.call, method, path, query, headers, body)
        except RuntimeError:  # the dispatcher is closed (shutting down): nothing ran
            raise HostClosed(f"{self.tag}: the host is shutting down", component=self.name,
                             version=self.version) from None

    def call(self, method: str, path: str, query: str, headers: Sequence[tuple[str, str]], body: bytes, *,
             timeout: float | None = None, depth: int = 0) -> GuestResponse:
        """Run the chain in this thread (blocking)."""
        return self._call(0, method, path, query, list(headers), body, timeout, depth)

    def _call(self, i: int, method: str, path: str, query: str, headers: list[tuple[str, str]], body: bytes,
              timeout: float | None, depth: int) -> GuestResponse:
        gen = self.elements[i]
        if len(body) > gen.limits.max_body:
            raise BodyTooLarge(f"{gen.tag} takes bodies up to {gen.limits.max_body} bytes; "
                               f"the stage before it passed on {len(body)}")
        last = i + 1 == len(self.elements)
        next_ = None if last else self._next(i + 1, depth)
        started = perf_counter()
        try:
            tracer = TRACING.tracer()
            if tracer is None:
                answer = gen.call(method, path, query, headers, body, timeout=timeout, next=next_, depth=depth)
            else:
                with TRACING.stage(tracer, gen.name, gen.version, i, last) as span:
                    answer = gen.call(method, path, query, headers, body, timeout=timeout, next=next_, depth=depth)
                    span.set_attribute("http.response.status_code", answer.status)
        except _NextFailed as e:  # a later element failed: this stage is discarded, the request fails as it did
            gen.stats.stage(e.error.status, perf_counter() - started)
            raise (e.error if i == 0 else e) from None
        except AirssysError as e:
            gen.outcome(e.status, e)
            if not last:
                gen.stats.stage(e.status, perf_counter() - started)
            if i == 0:
                raise
            raise _NextFailed(e) from None  # through the stages before it, whose next handler this was
        gen.outcome(answer.status)
        if not last:
            gen.stats.stage(answer.status, perf_counter() - started)
        return answer

    def _next(self, i: int, depth: int) -> _native.Next:
        def next_(method: str, path: str, query: str, headers: list[tuple[str, str]], body: bytes,
                  remaining: float) -> tuple[int, list[tuple[str, str]], bytes]:
            answer = self._call(i, method, path, query, headers, body, remaining, depth)
            return answer.status, answer.headers, answer.body

        return next_


class _NextFailed(Exception):
    """An element after the first failed; raised through the stages before it (whose next handler it was)."""

    def __init__(self, error: AirssysError) -> None:
        super().__init__(str(error))
        self.error = error


__all__ = ["STAGES_HEADER", "Chain", "Servable"]
