"""Routing inside one component: ``@app.get("/items/{id:int}")`` and the ``Handler`` componentize-py exports.

A component owns a path prefix on the host (its deploy ``--route``) and receives the full request path. The host
says which route it was reached through in the ``x-airssys-route`` request header, and ``App`` matches its routes
against the part of the path below it: deployed at ``/api``, ``@app.get("/items/{id}")`` serves ``/api/items/3``,
and the same build deployed at ``/v2/api`` serves ``/v2/api/items/3``. ``App(prefix="/api")`` fixes the mount point
instead (the older way, kept for compatibility: the component then answers 404 at any other route). Without either
(a unit test calling the app directly), routes are matched against the full path.
"""

from __future__ import annotations

import json
import re
import sys
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from .http import Headers, HTTPError, Request, Response

__all__ = ["App", "Route"]

RouteHandler = Callable[..., Any]
#: The request header in which the host names the route the component was reached through.
ROUTE_HEADER = "x-airssys-route"
_PARAM = re.compile(r"{([A-Za-z_][A-Za-z0-9_]*)(?::(str|int|float|path))?}")
_CONVERTERS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "str": ("[^/]+", str),
    "int": ("[0-9]+", int),
    "float": (r"[0-9]+(?:\.[0-9]+)?", float),
    "path": (".*", str),
}


@dataclass(frozen=True)
class Route:
    """One pattern, the methods it answers and its function."""

    pattern: str
    methods: frozenset[str]
    endpoint: RouteHandler
    regex: re.Pattern[str]
    converters: dict[str, Callable[[str], Any]]

    @classmethod
    def compile(cls, pattern: str, methods: Iterable[str], endpoint: RouteHandler) -> Route:
        if not pattern.startswith("/"):
            raise ValueError(f"route {pattern!r} must start with '/'")
        regex, converters, pos = "^", {}, 0
        for m in _PARAM.finditer(pattern):
            name, kind = m.group(1), m.group(2) or "str"
            if name in converters:
                raise ValueError(f"route {pattern!r} names {{{name}}} twice")
            regex += re.escape(pattern[pos:m.start()]) + f"(?P<{name}>{_CONVERTERS[kind][0]})"
            converters[name] = _CONVERTERS[kind][1]
            pos = m.end()
        rest = pattern[pos:]
        if "{" in rest or "}" in rest:
            raise ValueError(f"route {pattern!r}: a parameter is written {{name}} or {{name:int|float|str|path}}")
        regex += re.escape(rest) + "$"
        names = frozenset(m.upper() for m in methods)
        if "GET" in names:
            names |= {"HEAD"}
        return cls(pattern, names, endpoint, re.compile(regex), converters)

    def match(self, path: str) -> dict[str, Any] | None:
        m = self.regex.match(path)
        if m is None:
            return None
        return {name: self.converters[name](value) for name, value in m.groupdict().items()}


class App:
    """A component's routes. Export it to componentize-py with ``Handler = app.Handler`` in ``app.py``.

    A route function receives the :class:`Request` and the captured path parameters as keyword arguments, and
    returns a :class:`Response` or anything :func:`to_response` turns into one. :class:`HTTPError` becomes its
    status with a JSON body; any other exception is printed to stderr (the host logs it, tagged with the
    component's name and version) and answers 500, with the traceback in the body when ``debug`` is true.
    """

    def __init__(self, *, prefix: str = "", debug: bool = False) -> None:
        """``prefix`` fixes the mount point (default: the route the host names in each request)."""
        if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
            raise ValueError(f"prefix {prefix!r} must start with '/' and not end with one, e.g. '/api'")
        self.prefix = prefix
        self.debug = debug
        self.routes: list[Route] = []
        self._handler_class: type | None = None

    # -- declaring routes -----------------------------------------------------------------------------------
    def route(self, pattern: str, methods: Iterable[str] = ("GET",)) -> Callable[[RouteHandler], RouteHandler]:
        template = Route.compile(pattern, methods, _unset)  # a bad pattern fails here, at the decorator

        def register(endpoint: RouteHandler) -> RouteHandler:
            self.routes.append(replace(template, endpoint=endpoint))
            return endpoint

        return register

    def get(self, pattern: str) -> Callable[[RouteHandler], RouteHandler]:
        return self.route(pattern, ("GET",))

    def post(self, pattern: str) -> Callable[[RouteHandler], RouteHandler]:
        return self.route(pattern, ("POST",))

    def put(self, pattern: str) -> Callable[[RouteHandler], RouteHandler]:
        return self.route(pattern, ("PUT",))

    def patch(self, pattern: str) -> Callable[[RouteHandler], RouteHandler]:
        return self.route(pattern, ("PATCH",))

    def delete(self, pattern: str) -> Callable[[RouteHandler], RouteHandler]:
        return self.route(pattern, ("DELETE",))

    # -- answering --------------------------------------------------------------------------------------------
    def __call__(self, request: Request) -> Response:
        """Answer one request (what the exported ``handle`` does, minus the WIT conversion)."""
        try:
            response = self._dispatch(request)
        except HTTPError as exc:
            response = Response.json({"error": exc.detail}, exc.status, exc.headers.raw())
        except Exception:
            text = traceback.format_exc()
            print(f"error in {request.method} {request.path}:\n{text}", file=sys.stderr, end="")
            detail: dict[str, Any] = {"error": "internal error"}
            if self.debug:
                detail["traceback"] = text
            response = Response(json.dumps(detail), 500, content_type="application/json")
        if request.method == "HEAD":
            response.body = b""
        return response

    def _dispatch(self, request: Request) -> Response:
        path = request.path
        prefix = self.prefix or request.headers.get(ROUTE_HEADER, "")
        if prefix:
            if path != prefix and not path.startswith(prefix + "/"):
                raise HTTPError(404, f"{path} is outside this component's prefix {prefix}")
            path = path[len(prefix):] or "/"
        request.root_path = prefix
        request.route_path = path
        allowed: set[str] = set()
        for route in self.routes:
            params = route.match(path)
            if params is None:
                continue
            if request.method not in route.methods:
                allowed |= route.methods
                continue
            request.path_params = params
            return to_response(route.endpoint(request, **params))
        if allowed:
            raise HTTPError(405, f"{request.method} is not allowed here",
                            [("allow", ", ".join(sorted(allowed)))])
        raise HTTPError(404, f"no route matches {request.method} {path}")

    @property
    def Handler(self) -> type:  # componentize-py looks the class up by this name
        """The class componentize-py instantiates for the exported ``handle``: assign it as ``Handler`` in app.py."""
        if self._handler_class is None:
            self._handler_class = _make_handler(self)
        return self._handler_class


def _unset(request: Request) -> Response:  # pragma: no cover - replaced before use
    raise HTTPError(500, "route without a function")


def to_response(value: Any) -> Response:
    """Turn what a route returned into a :class:`Response` (see :class:`Response` for the accepted forms)."""
    if isinstance(value, Response):
        return value
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], int):
        response = to_response(value[0])
        response.status = Response(b"", value[1]).status
        return response
    if value is None:
        return Response(b"", 204)
    if isinstance(value, str):
        return Response.text(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return Response(bytes(value), content_type="application/octet-stream")
    if isinstance(value, dict | list):
        return Response.json(value)
    raise TypeError(f"a route returned {type(value).__name__}; return a Response, str, bytes, dict, list or None")


def _make_handler(app: App) -> type:
    """Subclass the generated ``wit_world.exports.Handler`` (only importable inside a componentize-py build)."""
    from wit_world import exports  # type: ignore[import-not-found]
    from wit_world.imports import types  # type: ignore[import-not-found]

    class Handler(exports.Handler):  # type: ignore[misc]
        def handle(self, req: Any) -> Any:
            request = Request(req.method, req.path, req.query, Headers(req.headers), req.body)
            response = app(request)
            return types.Response(status=response.status, headers=response.headers.raw(), body=response.body)

    return Handler
