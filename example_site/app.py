"""The example site: an ordinary Starlette app whose ``/wasm/...`` routes are served by WebAssembly components.

Only the native routes live here. The component routes are built from ``components/`` and deployed into the
running app by airssys-web (see ``run.py``), so they can be replaced or rolled back while the site serves.
"""

from __future__ import annotations

import html
import time
from datetime import UTC, datetime

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse
from starlette.routing import Route

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>airssys-web example site</title>
  <style>
    body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 3rem auto; padding: 0 1rem; }}
    code, pre {{ background: #f2f2f2; padding: 0 .25em; border-radius: 3px; }}
    pre {{ padding: .6rem; overflow-x: auto; }}
    li {{ margin: .4rem 0; }}
    .lang {{ font-size: .8em; color: #555; border: 1px solid #ccc; border-radius: 3px; padding: 0 .3em; }}
  </style>
</head>
<body>
  <h1>airssys-web example site</h1>
  <p>This is a plain <a href="https://www.starlette.io/">Starlette</a> application with one extra middleware.
  Some routes are ordinary Python endpoints; the others are answered by <strong>WebAssembly components</strong>
  that were deployed into this running process. Each component runs in its own sandbox, sees only the
  configuration, storage and hosts it was granted, is stopped if it runs too long or uses too much memory, and
  can be replaced or rolled back without restarting the server. Every component response carries an
  <code>x-airssys-version</code> header naming the version that answered.</p>

  <h2>Native Python routes</h2>
  <ul>
    <li><a href="/native/hello"><code>/native/hello</code></a> &mdash; a Starlette endpoint returning text.</li>
    <li><a href="/native/time"><code>/native/time</code></a> &mdash; a Starlette endpoint returning JSON.</li>
  </ul>

  <h2>WebAssembly component routes</h2>
  <ul>
{components}
  </ul>
  <p>The notes API from the command line:</p>
  <pre>curl -X POST {base}/wasm/notes -H 'content-type: application/json' -d '{{"title": "first", "body": "hi"}}'
curl {base}/wasm/notes</pre>

  <h2>Change it while it runs</h2>
  <p>Edit a component and let <code>airssys-web dev</code> rebuild and hot-swap it on every save (a failed build
  leaves the running version alone):</p>
  <pre>airssys-web dev example_site/components/markdown_js --name markdown-js --route /wasm/markdown \\
    --registry {registry}</pre>
  <p>Roll back with <code>airssys-web rollback markdown-js --registry {registry}</code>;
  see every version with <code>airssys-web list --registry {registry}</code>.</p>
  <p>The Markdown route runs behind a middleware stage, <code>guard-js</code>. See the pipeline with
  <code>airssys-web pipeline show markdown-js --registry {registry}</code>, take the stage away with
  <code>airssys-web pipeline clear markdown-js --registry {registry}</code>, and undo that with
  <code>airssys-web rollback markdown-js --registry {registry}</code>.</p>
{admin}
</body>
</html>
"""

ADMIN_ON = """  <h2>Admin API</h2>
  <p>The admin API answers at <a href="{prefix}/status"><code>{prefix}</code></a> (it needs a bearer token:
  <code>airssys-web token --scope read</code> with the same <code>AIRSSYS_SECRET</code>). The CLI uses it with
  <code>--server {base}</code>, e.g. <code>airssys-web status --server {base}</code>.</p>"""

ADMIN_OFF = """  <p>The admin API is off: start the site with <code>AIRSSYS_SECRET</code> set (32+ characters) to
  deploy, update and roll back over HTTP with <code>--server</code>.</p>"""


def _components(request: Request) -> str:
    from example_site.run import EXAMPLES

    examples = getattr(request.app.state, "examples", EXAMPLES)
    return "\n".join(
        f'    <li><a href="{html.escape(e.link)}"><code>{html.escape(e.route or e.name)}</code></a> '
        f'<span class="lang">{html.escape(e.language)}</span> &mdash; {html.escape(e.about)}.</li>'
        for e in examples)


async def home(request: Request) -> HTMLResponse:
    base = f"{request.url.scheme}://{request.url.netloc}"
    prefix = getattr(request.app.state, "admin_prefix", None)
    admin = ADMIN_ON.format(prefix=html.escape(prefix), base=html.escape(base)) if prefix else ADMIN_OFF
    registry = getattr(request.app.state, "registry", ".cache/example_site/registry")
    return HTMLResponse(PAGE.format(components=_components(request), base=html.escape(base), admin=admin,
                                    registry=html.escape(str(registry))))


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
