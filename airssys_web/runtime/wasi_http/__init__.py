"""Hosting standard ``wasi:http/proxy`` components (0.2.x) next to ``airssys:web`` ones.

The same ``.wasm`` that ``wasmtime serve`` or Spin run is served behind the same route table, generations,
pools, swaps, limits and grants. What is where:

* :mod:`.codec`, :mod:`.linking` - C-level value conversion compiled once per import type, and the
  definitions of host functions and resources (per-Store handle tables).
* :mod:`.io` - ``wasi:io`` streams and pollables tied to real readiness; :mod:`.wasi` - stdio, clocks and the
  file-system/socket stubs that must share those resource types.
* :mod:`.fields`, :mod:`.http`, :mod:`.outgoing`, :mod:`.error_codes` - ``wasi:http/types`` and
  ``outgoing-handler`` (through the component's outbound grants).
* :mod:`.linker` - the per-component linker; :mod:`.slot` - the pooled instance; :mod:`.asgi` - streaming
  requests and responses through ASGI with back-pressure.
"""

from __future__ import annotations

from collections.abc import Iterable

from wasmtime.component import Component

from ..engine import get_engine
from ..imports import HANDLER_INTERFACE

AIRSSYS_WORLD = "airssys:web"
WASI_HTTP_WORLD = "wasi:http"
HANDLER_PREFIX = "wasi:http/incoming-handler@0.2."


def world_of_exports(exports: Iterable[str]) -> str | None:
    """``"airssys:web"``, ``"wasi:http"`` or None, from a component's export names."""
    names = set(exports)
    if HANDLER_INTERFACE in names:
        return AIRSSYS_WORLD
    if any(n.startswith(HANDLER_PREFIX) for n in names):
        return WASI_HTTP_WORLD
    return None


def detect_world(component: Component) -> str:
    """The world a compiled component serves; ``airssys:web`` when it exports neither handler (the caller's
    validation reports what is missing)."""
    return world_of_exports(component.type.exports(get_engine())) or AIRSSYS_WORLD


__all__ = ["AIRSSYS_WORLD", "HANDLER_PREFIX", "WASI_HTTP_WORLD", "detect_world", "world_of_exports"]
