"""The native side of the benchmarks: the app ``serve --app benchmarks.apps:app`` wraps.

* ``/native``: the Starlette route equivalent to the hello guests (same status, ``content-type`` and body);
* ``/native-echo``: echoes the request body (the reference of the body benchmarks);
* ``/native-big?n=N``: N bytes of ``00 01 .. ff`` repeated, made per request like the guests' ``/big``;
* ``/extism``: the hello answer from an Extism plugin (``guests/extism_hello.wat``) driven by the Extism Python
  SDK, called inline in an ``async`` route - the fastest way to call it.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

HELLO = b"Hello, world!\n"
HEADERS = {"content-type": "text/plain"}
BINARY = {"content-type": "application/octet-stream"}
EXTISM_WAT = Path(__file__).resolve().parent / "guests" / "extism_hello.wat"


async def native(request: Request) -> Response:
    return Response(HELLO, headers=HEADERS)


async def native_echo(request: Request) -> Response:
    return Response(await request.body(), headers=BINARY)


def pattern(n: int) -> bytes:
    return bytes(range(256)) * (n // 256) + bytes(range(n % 256))


async def native_big(request: Request) -> Response:
    return Response(pattern(int(request.query_params.get("n", 1 << 20))), headers=BINARY)


@cache
def extism_wasm() -> bytes:
    from airssys_web.guest.build import compile_wat

    return compile_wat(EXTISM_WAT.read_text())


def new_plugin() -> Any:
    import extism  # type: ignore[import-untyped]

    return extism.Plugin(extism_wasm(), wasi=False)


_plugin: Any = None


async def extism_route(request: Request) -> Response:
    global _plugin
    if _plugin is None:
        _plugin = new_plugin()
    return Response(_plugin.call("handle", request.scope["path"].encode()), headers=HEADERS)


app = Starlette(routes=[
    Route("/native", native),
    Route("/native-echo", native_echo, methods=["POST"]),
    Route("/native-big", native_big),
    Route("/extism", extism_route),
])
