"""Python test guest (componentize-py): echoes the request as JSON and exercises the imports.

- ``.../fetch``: calls ``outbound.fetch`` on https://example.com/ and answers the error string (the host must deny
  it: the test grants nothing, so no connection is ever made);
- ``.../kv``: increments the ``count`` key and answers the new value (or the error string);
- ``.../boom``: raises, which traps the instance;
- anything else: 200 JSON with method, path, query, headers, body length and ``config.get("greeting")``.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import config, kv, outbound, types


def text(body: str, status: int = 200) -> types.Response:
    return types.Response(status=status, headers=[("content-type", "text/plain; charset=utf-8")], body=body.encode())


class Handler(exports.Handler):
    def handle(self, req: types.Request) -> types.Response:
        if req.path.endswith("/boom"):
            raise RuntimeError("boom requested")
        if req.path.endswith("/fetch"):
            try:
                answer = outbound.fetch("GET", "https://example.com/", [], b"")
            except Err as err:
                return text(str(err.value))
            return text(f"fetch unexpectedly succeeded with status {answer.status}", status=500)
        if req.path.endswith("/kv"):
            try:
                count = int(kv.get("count") or b"0") + 1
                kv.set("count", str(count).encode())
            except Err as err:
                return text(str(err.value))
            return text(str(count))
        document = {
            "method": req.method,
            "path": req.path,
            "query": req.query,
            "headers": [[name, value] for name, value in req.headers],
            "body_length": len(req.body),
            "greeting": config.get("greeting"),
        }
        return types.Response(
            status=200, headers=[("content-type", "application/json")], body=json.dumps(document).encode()
        )
