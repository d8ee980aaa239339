"""The worlds a component can serve, one object each, which the middleware dispatches a request on.

* ``airssys:web`` (:mod:`.airssys`): the request is read whole (bounded by the route's ``max_body``, an idle
  timeout and the deadline), ``handle`` answers a whole response;
* ``wasi:http`` (:mod:`.wasi_http`): a standard ``wasi:http/proxy`` 0.2 (``incoming-handler``) or ``wasi:http/
  service`` 0.3 (``handler``) component - the same ``.wasm`` that ``wasmtime serve`` or Spin run - with both
  bodies streamed through ASGI.

A world's :meth:`World.serve` answers one ASGI request with a generation and returns the status sent; an error
before anything was sent is raised (an ``AirssysError``: the caller renders it), one after the head is logged and
the response cut short. The world of a component is detected from its exports (:func:`world_of_exports`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

from starlette.types import Receive, Scope, Send

if TYPE_CHECKING:
    from ... import _native
    from ..generation import Generation

AIRSSYS_WORLD = "airssys:web"
WASI_HTTP_WORLD = "wasi:http"
HANDLER_PREFIX = "wasi:http/incoming-handler@0.2."
HANDLER_P3_PREFIX = "wasi:http/handler@0.3."
AIRSSYS_PREFIX = "airssys:web/handler@0.1."
#: The response header naming the version that answered (``NAME@VERSION``).
VERSION_HEADER = b"x-airssys-version"
#: A middleware stage imports the handler it passes requests on to (and exports its own).
STAGE_IMPORT_PREFIX = AIRSSYS_PREFIX


class World(Protocol):
    """How requests reach the components of one world."""

    name: str

    async def serve(self, gen: Generation, scope: Scope, receive: Receive, send: Send,
                    extra: list[tuple[bytes, bytes]], *, body_timeout: float) -> int:
        """Answer one request with ``gen`` (``extra``: headers to add to the response); the status sent."""
        ...


def world_of_exports(exports: Iterable[str]) -> str | None:
    """``"airssys:web"``, ``"wasi:http"`` or None, from a component's export names."""
    names = list(exports)
    if any(n.startswith(AIRSSYS_PREFIX) for n in names):
        return AIRSSYS_WORLD
    if any(n.startswith((HANDLER_PREFIX, HANDLER_P3_PREFIX)) for n in names):
        return WASI_HTTP_WORLD
    return None


def is_middleware(imports: Iterable[str]) -> bool:
    """Whether a component is a middleware stage: it imports ``airssys:web/handler`` (the next in the chain)."""
    return any(n.startswith(STAGE_IMPORT_PREFIX) for n in imports)


def http_version(exports: Iterable[str]) -> str | None:
    """``"0.3"`` or ``"0.2"`` for a wasi:http component (0.3 wins when it exports both), else None."""
    names = list(exports)
    if any(n.startswith(HANDLER_P3_PREFIX) for n in names):
        return "0.3"
    if any(n.startswith(HANDLER_PREFIX) for n in names):
        return "0.2"
    return None


def detect_world(component: _native.Component) -> str:
    """The world a compiled component serves; ``airssys:web`` when it exports neither handler (the caller's
    validation reports what is missing)."""
    return world_of_exports(component.exports()) or AIRSSYS_WORLD


def world_named(name: str) -> World:
    """The world object for a world name (``airssys:web`` for anything that is not ``wasi:http``)."""
    if name == WASI_HTTP_WORLD:
        from .wasi_http import WASI_HTTP

        return WASI_HTTP
    from .airssys import AIRSSYS

    return AIRSSYS


__all__ = ["AIRSSYS_WORLD", "HANDLER_PREFIX", "VERSION_HEADER", "WASI_HTTP_WORLD", "World", "detect_world",
           "http_version", "is_middleware", "world_named", "world_of_exports"]
