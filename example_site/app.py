"""The example site: an ordinary Starlette app whose ``/wasm/...`` routes are served by WebAssembly components.

Only the native routes live here. The component routes are built from ``components/`` and deployed into the
running app by airssys-web (see ``run.py``), so they can be replaced or rolled back while the site serves.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse
from starlette.routing import Route

HOME = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>airssys-web example site</title>
  <style>
    body { font: 16px/1.5 system-ui, sans-serif; max-width: 44rem; margin: 3rem auto; padding: 0 1rem; }
    code { background: #f2f2f2; padding: 0 .25em; border-radius: 3px; }
    li { margin: .4rem 0; }
  </style>
</head>
<body>
  <h1>airssys-web example site</h1>
  <p>This is a plain <a href="https://www.starlette.io/">Starlette</a> application with one extra middleware.
  Some routes are ordinary Python endpoints; the others are answered by <strong>WebAssembly components</strong>
  that were deployed into this running process. Each component runs in its own sandbox, sees only the
  configuration and hosts it was granted, is stopped if it runs too long or uses too much memory, and can be
  replaced or rolled back without restarting the server.</p>

  <h2>Native Python routes</h2>
  <ul>
    <li><a href="/native/hello"><code>/native/hello</code></a> &mdash; a Starlette endpoint returning text.</li>
    <li><a href="/native/time"><code>/native/time</code></a> &mdash; a Starlette endpoint returning JSON.</li>
  </ul>

  <h2>WebAssembly component routes</h2>
  <ul>
    <li><a href="/wasm/hello"><code>/wasm/hello</code></a> &mdash; a component hand-written in WebAssembly
      text (<code>components/hello_wat/hello.wat</code>): a few hundred bytes, answers in microseconds.</li>
    <li><a href="/wasm/greet?name=Ada&amp;lang=en"><code>/wasm/greet?name=Ada</code></a> &mdash; a Python
      component built with componentize-py (<code>components/greeter_py/app.py</code>); its greeting comes
      from the configuration it was granted, and it lists the query parameters it received.</li>
  </ul>

  <p>Edit a component, rebuild it and deploy it as a new version: the next request is served by the new code,
  and requests already running finish on the old one.</p>
</body>
</html>
"""


async def home(request: Request) -> HTMLResponse:
    return HTMLResponse(HOME)


async def native_hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("Hello from a native Python route (Starlette).\n")


async def native_time(request: Request) -> JSONResponse:
    now = time.time()
    return JSONResponse({"utc": datetime.fromtimestamp(now, UTC).isoformat(), "unix": now, "served_by": "python"})


app = Starlette(
    routes=[
        Route("/", home),
        Route("/native/hello", native_hello),
        Route("/native/time", native_time),
    ]
)
