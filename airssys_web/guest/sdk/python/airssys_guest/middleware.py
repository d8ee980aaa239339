"""Middleware stages: a function that receives the request and ``next``, the rest of the chain.

::

    from airssys_guest import Next, Request, Response, middleware

    @middleware
    def auth(request: Request, next: Next) -> Response:
        if request.headers.get("authorization") != "Bearer let-me-in":
            return Response.json({"error": "unauthorized"}, 401)   # answers itself: next is never called
        request.headers["x-user"] = "alice"                         # seen by the stages after it and the route
        response = next(request)
        response.headers["x-auth"] = "checked"                      # on the way back
        return response

    Handler = auth.Handler   # what componentize-py exports as airssys:web/handler

A stage is built for the ``middleware`` world (``kind = "middleware"`` in ``airssys.toml``, or ``airssys-web build
--kind middleware``), deployed without a route, and put in front of a route with ``airssys-web pipeline set``.
``next`` calls the handler the stage imports: the next stage, or the route's own component. If what comes after
fails (a trap, a timeout), the host fails the whole request with that error: ``next`` does not return.

Outside a component (a unit test), call the stage directly with any ``next``: ``auth(request, lambda r: ...)``.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from typing import Any

from .http import Headers, HTTPError, Request, Response
from .routing import to_response

try:  # only a middleware build imports a handler (the next stage); a route build has none
    from wit_world.imports import handler as _wit_next  # type: ignore[import-not-found]
except ImportError:
    _wit_next = None

__all__ = ["Middleware", "Next", "middleware"]

#: What a stage calls to pass a request on: the next stage, or the route's component; returns its response.
Next = Callable[[Request], Response]
StageFunction = Callable[[Request, Next], Any]


class Middleware:
    """One stage. Its function returns a :class:`Response` (or anything :func:`to_response` accepts), from
    ``next(request)`` or its own; :class:`HTTPError` answers its status with a JSON body, any other exception is
    printed to stderr (the host logs it) and answers 500, with the traceback when ``debug`` is true."""

    def __init__(self, function: StageFunction, *, debug: bool = False) -> None:
        if not callable(function):
            raise TypeError(f"middleware takes a function (request, next) -> Response, got {function!r}")
        self.function = function
        self.debug = debug
        self._handler_class: type | None = None

    def __call__(self, request: Request, next: Next) -> Response:
        """Run the stage on ``request`` with ``next`` standing for the rest of the chain."""
        try:
            return to_response(self.function(request, next))
        except HTTPError as exc:
            return Response.json({"error": exc.detail}, exc.status, exc.headers.raw())
        except Exception:
            text = traceback.format_exc()
            print(f"error in middleware for {request.method} {request.path}:\n{text}", file=sys.stderr, end="")
            detail: dict[str, Any] = {"error": "internal error"}
            if self.debug:
                detail["traceback"] = text
            return Response(json.dumps(detail), 500, content_type="application/json")

    @property
    def Handler(self) -> type:  # componentize-py looks the class up by this name
        """The class componentize-py instantiates for the exported ``handle``: assign it as ``Handler`` in app.py."""
        if self._handler_class is None:
            self._handler_class = _make_handler(self)
        return self._handler_class


def middleware(function: StageFunction | None = None, *, debug: bool = False) -> Any:
    """Make ``function(request, next)`` a stage: ``@middleware`` or ``@middleware(debug=True)``."""
    if function is None:
        return lambda f: Middleware(f, debug=debug)
    return Middleware(function, debug=debug)


def _make_handler(stage: Middleware) -> type:
    """Subclass the generated ``wit_world.exports.Handler`` (only importable inside a componentize-py build)."""
    from wit_world import exports  # type: ignore[import-not-found]
    from wit_world.imports import types  # type: ignore[import-not-found]

    if _wit_next is None:
        raise RuntimeError("this component was not built for the middleware world: build it with "
                           "`airssys-web build --kind middleware` (or kind = \"middleware\" in airssys.toml)")

    def call_next(request: Request) -> Response:
        answer = _wit_next.handle(types.Request(method=request.method, path=request.path, query=request.query,
                                                headers=request.headers.raw(), body=request.body))
        return Response(answer.body, answer.status, Headers(answer.headers))

    class Handler(exports.Handler):  # type: ignore[misc]
        def handle(self, req: Any) -> Any:
            request = Request(req.method, req.path, req.query, Headers(req.headers), req.body)
            response = stage(request, call_next)
            return types.Response(status=response.status, headers=response.headers.raw(), body=response.body)

    return Handler
