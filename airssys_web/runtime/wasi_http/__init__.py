"""Hosting standard wasi:http components (0.2 ``incoming-handler``, 0.3 ``handler``) next to ``airssys:web`` ones.

The same ``.wasm`` that ``wasmtime serve`` or Spin run is served behind the same route table, generations, pools,
swaps, limits and grants. The native core serves it with wasmtime-wasi-http (its outgoing requests go through the
component's outbound grants, like ``airssys:web/outbound.fetch``); :mod:`.asgi` streams requests and responses
through ASGI with bounded buffers.
"""

from __future__ import annotations

from collections.abc import Iterable

from ... import _native

AIRSSYS_WORLD = "airssys:web"
WASI_HTTP_WORLD = "wasi:http"
HANDLER_PREFIX = "wasi:http/incoming-handler@0.2."
HANDLER_P3_PREFIX = "wasi:http/handler@0.3."
AIRSSYS_PREFIX = "airssys:web/handler@0.1."


def world_of_exports(exports: Iterable[str]) -> str | None:
    """``"airssys:web"``, ``"wasi:http"`` or None, from a component's export names."""
    names = list(exports)
    if any(n.startswith(AIRSSYS_PREFIX) for n in names):
        return AIRSSYS_WORLD
    if any(n.startswith((HANDLER_PREFIX, HANDLER_P3_PREFIX)) for n in names):
        return WASI_HTTP_WORLD
    return None


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


__all__ = ["AIRSSYS_WORLD", "HANDLER_PREFIX", "WASI_HTTP_WORLD", "detect_world", "http_version", "world_of_exports"]
