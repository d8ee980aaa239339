"""The native side of the benchmarks: the app ``serve --app benchmarks.apps:app`` wraps.

* ``/native``: the Starlette route equivalent to the hello guests (same status, ``content-type`` and body);
* ``/native-echo``: echoes the request body (P3's native reference);
* ``/extism``: the same answer from an Extism plugin (``guests/extism_hello.wat``) driven by the Extism Python SDK,
  called inline in an ``async`` route - the fastest way to call it (P7);
* ``/extism-sync``: the same from a plain ``def`` route, which Starlette runs in its thread pool (one plugin per
  thread: an Extism plugin must not be called from two threads at once).
"""

from __future__ import annotations

import threading
from functools import cache
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

HELLO = b"Hello, world!\n"
HEADERS = {"content-type": "text/plain"}
EXTISM_WAT = Path(__file__).resolve().parent / "guests" / "extism_hello.wat"


async def native(request: Request) -> Response:
    return Response(HELLO, headers=HEADERS)


async def native_echo(request: Request) -> Response:
    return Response(await request.body(), headers={"content-type": "application/octet-stream"})


@cache
def extism_wasm() -> bytes:
    import wasmtime

    return bytes(wasmtime.wat2wasm(EXTISM_WAT.read_text()))


def new_plugin() -> Any:
    import extism  # type: ignore[import-untyped]

    return extism.Plugin(extism_wasm(), wasi=False)


_plugin: Any = None
_local = threading.local()


async def extism_route(request: Request) -> Response:
    global _plugin
    if _plugin is None:
        _plugin = new_plugin()
    return Response(_plugin.call("handle", request.scope["path"].encode()), headers=HEADERS)


def extism_sync_route(request: Request) -> Response:
    plugin = getattr(_local, "plugin", None)
    if plugin is None:
        plugin = _local.plugin = new_plugin()
    return Response(plugin.call("handle", request.scope["path"].encode()), headers=HEADERS)


app = Starlette(routes=[
    Route("/native", native),
    Route("/native-echo", native_echo, methods=["POST"]),
    Route("/extism", extism_route),
    Route("/extism-sync", extism_sync_route),
])
