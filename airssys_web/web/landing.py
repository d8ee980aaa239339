"""The small app ``airssys-web serve`` wraps when no ``--app`` is given: it lists what is deployed."""

from __future__ import annotations

import html
from collections.abc import Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from ..lifecycle.host import AirssysHost
from ..lifecycle.routing import RESERVED_ROUTE


def landing_app(get_host: Callable[[], AirssysHost | None]) -> Starlette:
    def _routes() -> list[tuple[str, str]]:
        host = get_host()
        if host is None:
            return []
        return [(route, gen.tag) for route, gen in sorted(host.routes.items())]

    async def home(request: Request) -> HTMLResponse:
        rows = "".join(f'<li><a href="{html.escape(r)}">{html.escape(r)}</a> &rarr; {html.escape(t)}</li>'
                       for r, t in _routes()) or "<li>nothing deployed yet</li>"
        return HTMLResponse(
            "<!doctype html><title>airssys-web</title><h1>airssys-web</h1>"
            "<p>WebAssembly component routes served by this app:</p>"
            f"<ul>{rows}</ul><p>Deploy one: <code>airssys-web deploy NAME FILE.wasm --route /path "
            "--version 1.0.0 --registry DIR</code></p>")

    async def routes(request: Request) -> JSONResponse:
        return JSONResponse([{"route": r, "served_by": t} for r, t in _routes()])

    return Starlette(routes=[Route("/", home), Route(f"{RESERVED_ROUTE}/routes", routes)])
