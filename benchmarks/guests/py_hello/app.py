"""The Python guest of the benchmarks (componentize-py).

* ``.../echo``: answers the request body (the 1 MiB and 16 MiB echo benchmarks);
* ``.../big?n=N``: answers N bytes of ``00 01 .. ff`` repeated (N a multiple of 256; the 64 MiB response);
* anything else: the small guest's answer, like the WAT guest and the native route (``Hello, world!``).

Two suffix checks are all the trivial path pays for the other two routes (well under a microsecond).
"""

from wit_world import exports
from wit_world.imports import types

BODY = b"Hello, world!\n"
HEADERS = [("content-type", "text/plain")]
BINARY = [("content-type", "application/octet-stream")]
BLOCK = bytes(range(256))


class Handler(exports.Handler):
    def handle(self, req: types.Request) -> types.Response:
        if req.path.endswith("/echo"):
            return types.Response(status=200, headers=BINARY, body=req.body)
        if req.path.endswith("/big"):
            n = int(req.query.partition("n=")[2] or 1 << 20)
            return types.Response(status=200, headers=BINARY, body=BLOCK * (n // 256))
        return types.Response(status=200, headers=HEADERS, body=BODY)
