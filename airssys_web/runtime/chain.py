"""A route with middleware stages in front of it: the chain one request goes through.

Each stage is its own generation (its own sandbox, grants, limits, version and instances); the last element is
the route's own component. The first stage receives the request; when it calls its imported ``handler``, the
next element receives what it passed on, and so on; each answer travels back the same way. A stage may also
answer itself (an auth check's 401): the elements after it are never called.

A request enters every element of the chain it started with (the drain protocol of each generation), so a swap of
any stage publishes a new chain while requests in flight finish on the one they entered: a request always sees
one whole chain. The chain runs in one thread: on the event loop when every element could run a call there on its
own (each element's inline policy allows it and an instance of each is free and warm, see :meth:`Chain.handle`),
else on one worker thread. Each element's deadline is its own timeout or what the element before it has left,
whichever is sooner, so one deadline covers the chain. A failure of an element is the request's failure (the same
clean 5xx as a route component's), and counts against that element's version.

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
from .instance import GuestResponse, Slot
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

    __slots__ = ("elements", "inlinable", "route", "stages", "tag_bytes", "version_headers")

    def __init__(self, stages: Sequence[Generation], route: Generation) -> None:
        self.stages = tuple(stages)
        self.route = route
        self.elements = (*self.stages, route)
        self.tag_bytes = route.tag_bytes
        stages_text = ", ".join(g.tag for g in self.stages).encode()
        #: Response headers naming the versions the request went through: the route's, and the stages' in order.
        self.version_headers = [(VERSION_HEADER, route.tag_bytes), (STAGES_HEADER, stages_text)]
        #: Whether the chain may ever run on the event loop: not with a request-isolated element, whose instance
        #: is made per call (a stage may call its next handler more than once; each call would need a fresh
        #: instance, and one that cannot be had without waiting could then only fail or block the loop).
        self.inlinable = not any(g.fresh for g in self.elements)

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
        """Run the chain inline on the event loop if every element may (:meth:`_take_inline`), else on a worker
        thread; either way its elements call each other synchronously in that one thread.

        The hop to a worker thread costs several times what a chain of short stages does, which is why a chain
        is worth running inline under the same conditions a single generation is.
        """
        held = self._take_inline(len(body))
        if held is not None:
            try:
                return self._call(0, method, path, query, list(headers), body, None, 0, held)
            finally:
                self._release(held)
        try:
            return await self.elements[0].dispatcher.run(self.call, method, path, query, headers, body)
        except RuntimeError:  # the dispatcher is closed (shutting down): nothing ran
            raise HostClosed(f"{self.tag}: the host is shutting down", component=self.name,
                             version=self.version) from None

    def _take_inline(self, body_size: int) -> list[Slot] | None:
        """One instance of every element, taken without waiting, if the chain may run inline now; else None
        (whatever was taken is given back, and the chain goes to a worker thread as it always did).

        The conditions are a single generation's (:meth:`Generation.handle`), for every element: its policy
        allows an inline call (measured short; never with grants that may block, which make it long-running;
        the request's body size stands for what each stage will pass on, unknown before it runs), and it has an
        idle instance that served a call before (a first call is cold). Every policy is asked, not only up to
        the first refusal: a request through the chain is a call of each element, so each counts down its own
        hold after a doubt. Accounting: each element records the wall time of its own calls, the elements after
        it included (:meth:`Generation.call_held`) - what a threaded stage's CPU time measures too - so a slow
        element turns itself and every stage in front of it back to threads, and the first stage's record is
        the whole chain's hold on the loop.
        """
        if not self.inlinable:
            return None
        allowed = True
        for gen in self.elements:
            if not gen.inline.allows(body_size):
                allowed = False
        if not allowed:
            return None
        held: list[Slot] = []
        for gen in self.elements:
            slot = gen.pool.try_acquire()
            if slot is None or not slot.calls:
                if slot is not None:
                    gen.pool.release(slot)
                self._release(held)
                return None
            held.append(slot)
        return held

    def _release(self, held: list[Slot]) -> None:
        """Give back the instances an inline run held (a trapped one is discarded by its pool)."""
        for gen, slot in zip(self.elements, held, strict=False):
            gen.pool.release(slot)

    def call(self, method: str, path: str, query: str, headers: Sequence[tuple[str, str]], body: bytes, *,
             timeout: float | None = None, depth: int = 0) -> GuestResponse:
        """Run the chain in this thread (blocking)."""
        return self._call(0, method, path, query, list(headers), body, timeout, depth, None)

    def _call(self, i: int, method: str, path: str, query: str, headers: list[tuple[str, str]], body: bytes,
              timeout: float | None, depth: int, held: list[Slot] | None) -> GuestResponse:
        """Element ``i``'s call: on an instance ``held`` for an inline run (the same one each time a stage calls
        its next handler again; after a failure nothing calls it again, as the failure traps every stage in front
        of it), else on one its pool hands out."""
        gen = self.elements[i]
        if len(body) > gen.limits.max_body:
            raise BodyTooLarge(f"{gen.tag} takes bodies up to {gen.limits.max_body} bytes; "
                               f"the stage before it passed on {len(body)}")
        last = i + 1 == len(self.elements)
        next_ = None if last else self._next(i + 1, depth, held)
        slot = None if held is None else held[i]
        started = perf_counter()
        try:
            tracer = TRACING.tracer()
            if tracer is None:
                answer = _invoke(gen, slot, method, path, query, headers, body, timeout, next_, depth)
            else:
                with TRACING.stage(tracer, gen.name, gen.version, i, last) as span:
                    answer = _invoke(gen, slot, method, path, query, headers, body, timeout, next_, depth)
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

    def _next(self, i: int, depth: int, held: list[Slot] | None) -> _native.Next:
        def next_(method: str, path: str, query: str, headers: list[tuple[str, str]], body: bytes,
                  remaining: float) -> tuple[int, list[tuple[str, str]], bytes]:
            answer = self._call(i, method, path, query, headers, body, remaining, depth, held)
            return answer.status, answer.headers, answer.body

        return next_


def _invoke(gen: Generation, slot: Slot | None, method: str, path: str, query: str, headers: list[tuple[str, str]],
            body: bytes, timeout: float | None, next_: _native.Next | None, depth: int) -> GuestResponse:
    """One element's call: on the instance an inline run holds, or (``slot`` None) on one from its pool."""
    if slot is None:
        return gen.call(method, path, query, headers, body, timeout=timeout, next=next_, depth=depth)
    return gen.call_held(slot, method, path, query, headers, body, timeout=timeout, next=next_, depth=depth)


class _NextFailed(Exception):
    """An element after the first failed; raised through the stages before it (whose next handler it was)."""

    def __init__(self, error: AirssysError) -> None:
        super().__init__(str(error))
        self.error = error


__all__ = ["STAGES_HEADER", "Chain", "Servable"]
