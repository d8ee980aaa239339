"""The ``/wasm/greet`` route: a Python component (built with componentize-py) that greets ``?name=``.

The greeting comes from the component's configuration (key ``greeting``, granted at deploy time) and defaults
to "Hello". Every query parameter is listed back, to show what the host passed in. Ask for
``Accept: application/json`` to get the same as JSON.
"""

import html
import json
from urllib.parse import parse_qsl

from wit_world import exports
from wit_world.imports import config, types

PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>{message}</title></head>
<body style="font: 16px/1.5 system-ui, sans-serif; max-width: 44rem; margin: 3rem auto">
  <h1>{message}</h1>
  <p>Served by a Python WebAssembly component. Query parameters received:</p>
  <table>{rows}</table>
  <p><a href="/">Back to the example site</a></p>
</body>
</html>
"""


class Handler(exports.Handler):
    def handle(self, req: types.Request) -> types.Response:
        greeting = config.get("greeting") or "Hello"
        params = parse_qsl(req.query, keep_blank_values=True)
        name = next((value for key, value in params if key == "name" and value), "world")
        message = f"{greeting}, {name}!"
        accept = ",".join(value for key, value in req.headers if key.lower() == "accept")
        if "application/json" in accept:
            body = json.dumps({"message": message, "query": [[k, v] for k, v in params]})
            return types.Response(status=200, headers=[("content-type", "application/json")], body=body.encode())
        rows = "".join(
            f"<tr><td><code>{html.escape(key)}</code></td><td>{html.escape(value)}</td></tr>" for key, value in params
        )
        page = PAGE.format(message=html.escape(message), rows=rows or "<tr><td><em>none</em></td></tr>")
        return types.Response(status=200, headers=[("content-type", "text/html; charset=utf-8")], body=page.encode())
