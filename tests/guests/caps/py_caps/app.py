"""Capability probe guest (componentize-py) for tests/test_sandbox.py: each path tries one thing and reports.

Paths are matched after the mount prefix (one segment: ``/caps/read`` -> ``/read``):

- ``/read?PATH``: read a file; 200 with its bytes, or 403 with ``ExceptionName: message``
- ``/write?PATH``: write the request body to a file; 200 ``wrote N``, or 403 with the error
- ``/mkdir?PATH``, ``/remove?PATH``: create a directory / remove a file; 200 ``ok`` or 403 with the error
- ``/list?PATH``: the names in a directory, one per line, or 403
- ``/fetch?URL``: ``outbound.fetch("GET", URL)``; 200 ``STATUS BODY`` or 502 with the err string
- ``/config?KEY``: ``config.get(KEY)``; 200 with the value or 404
- ``/kv/get?KEY``, ``/kv/set?KEY`` (body is the value), ``/kv/delete?KEY``: 200 with the value or ``ok``; 500 err
- ``/alloc``: allocate 1 MiB chunks forever (a memory bomb)
- ``/spin``: loop forever
- ``/recurse``: unbounded recursion
- anything else: 200 ``ok``
"""

import os
from urllib.parse import unquote

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import config, kv, outbound, types


def answer(status: int, body: bytes | str) -> types.Response:
    data = body.encode() if isinstance(body, str) else body
    return types.Response(status=status, headers=[("content-type", "text/plain; charset=utf-8")], body=data)


def failure(exc: BaseException) -> types.Response:
    return answer(403, f"{type(exc).__name__}: {exc}")


def recurse(n: int) -> int:
    return recurse(n + 1) + 1


class Handler(exports.Handler):
    def handle(self, req: types.Request) -> types.Response:
        arg = unquote(req.query)
        path = "/" + req.path.split("/", 2)[2] if req.path.count("/") >= 2 else req.path
        try:
            if path == "/read":
                with open(arg, "rb") as f:
                    return answer(200, f.read())
            if path == "/write":
                with open(arg, "wb") as f:
                    return answer(200, f"wrote {f.write(bytes(req.body))}")
            if path == "/mkdir":
                os.mkdir(arg)
                return answer(200, "ok")
            if path == "/remove":
                os.remove(arg)
                return answer(200, "ok")
            if path == "/list":
                return answer(200, "\n".join(sorted(os.listdir(arg))))
        except OSError as exc:
            return failure(exc)
        if path == "/fetch":
            try:
                r = outbound.fetch("GET", arg, [], b"")
            except Err as err:
                return answer(502, str(err.value))
            return answer(200, f"{r.status} ".encode() + bytes(r.body))
        if path == "/config":
            value = config.get(arg)
            return answer(404, "unset") if value is None else answer(200, value)
        if path.startswith("/kv/"):
            try:
                if path == "/kv/get":
                    value = kv.get(arg)
                    return answer(404, "none") if value is None else answer(200, bytes(value))
                if path == "/kv/set":
                    kv.set(arg, bytes(req.body))
                elif path == "/kv/delete":
                    kv.delete(arg)
                return answer(200, "ok")
            except Err as err:
                return answer(500, str(err.value))
        if path == "/alloc":
            chunks = []
            while True:
                chunks.append(bytearray(1 << 20))
        if path == "/spin":
            while True:
                pass
        if path == "/recurse":
            return answer(200, str(recurse(0)))
        return answer(200, "ok")
