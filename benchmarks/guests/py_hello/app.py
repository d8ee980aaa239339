"""The Python guest of the benchmarks (componentize-py): answers like the small WAT guest and the native route."""

from wit_world import exports
from wit_world.imports import types

BODY = b"Hello, world!\n"
HEADERS = [("content-type", "text/plain")]


class Handler(exports.Handler):
    def handle(self, req: types.Request) -> types.Response:
        return types.Response(status=200, headers=HEADERS, body=BODY)
