"""Route ownership: which generation answers a request path.

A route ``/hello`` owns ``/hello`` and everything below it (``/hello/anything``) but not ``/helloworld``. The
longest matching route wins, so ``/api/admin`` can belong to another component than ``/api``. A RouteTable is
immutable; the host publishes a new one by a single attribute assignment, which is the atomic switch of a swap.
:meth:`RouteTable.match_route` also says which route matched: the mount point the middleware tells the guest.
Routes under :data:`RESERVED_ROUTE` belong to airssys-web itself (the admin API at :data:`ADMIN_PREFIX`).

The host app's own routes can be seen when the wrapped app exposes them (Starlette and FastAPI do):
:func:`app_routes` finds them below any middleware layers, and :func:`shadowed_paths` says which of them a
component route takes requests from, so the middleware can warn about it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Generic, TypeVar

T = TypeVar("T")

#: Where airssys-web answers itself: no component route may lie in it (see ``registry.rules.validate_route``).
RESERVED_ROUTE = "/_airssys"
#: Where the admin API answers by default (``AirssysMiddleware(admin_prefix=...)``, ``serve --admin-prefix``), and
#: where a client looks for it when a server URL has no path (``--server http://host:8000``).
ADMIN_PREFIX = RESERVED_ROUTE + "/api"


def route_matches(route: str, path: str) -> bool:
    if route == "/":
        return path.startswith("/")
    return path == route or (path.startswith(route) and path[len(route)] == "/")


class RouteTable(Generic[T]):
    __slots__ = ("_entries", "_exact")

    def __init__(self, routes: Mapping[str, T] | Iterable[tuple[str, T]] = ()) -> None:
        items = list(routes.items()) if isinstance(routes, Mapping) else list(routes)
        # Longest first so the most specific route wins.
        self._entries: tuple[tuple[str, T], ...] = tuple(sorted(items, key=lambda kv: len(kv[0]), reverse=True))
        self._exact: dict[str, T] = dict(items)

    def match(self, path: str) -> T | None:
        hit = self._exact.get(path)
        if hit is not None:
            return hit
        for route, target in self._entries:
            if route_matches(route, path):
                return target
        return None

    def match_route(self, path: str) -> tuple[str, T] | None:
        """Like :meth:`match`, with the route that matched: ``("/api", target)`` for ``/api/items``."""
        hit = self._exact.get(path)
        if hit is not None:
            return path, hit
        for route, target in self._entries:
            if route_matches(route, path):
                return route, target
        return None

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"RouteTable({[r for r, _ in self._entries]!r})"


def app_routes(app: object) -> list[Any] | None:
    """The routes of ``app``, or of the first layer below it that has them (middleware layers are followed through
    their ``app`` attribute, as Starlette's and most others store the app they wrap); ``None`` if none is found."""
    seen: set[int] = set()
    while app is not None and id(app) not in seen:
        seen.add(id(app))
        routes = getattr(app, "routes", None)
        if isinstance(routes, list):
            return routes
        app = getattr(app, "app", None)
    return None


def shadowed_paths(route: str, routes: Iterable[Any]) -> list[str]:
    """The paths of the host-app ``routes`` (Starlette ``Route``, ``Mount``, ...) that a component at ``route``
    takes requests from: those at or below ``route`` (``/adm/{id}`` under ``/adm``) and those whose pattern matches
    ``route`` itself or a path below it (``/{page}``, a ``Mount`` at ``/static`` for ``/static/x``)."""
    out: list[str] = []
    for item in routes:
        path = getattr(item, "path", None)
        if not isinstance(path, str) or not path.startswith("/"):
            continue
        regex = getattr(item, "path_regex", None)
        static = path.split("{", 1)[0].rstrip("/") or "/"
        below = route_matches(route, static)
        if below or (isinstance(regex, re.Pattern) and (regex.match(route) or regex.match(route + "/x"))):
            out.append(path)
    return out


def shadow_warning(name: str, route: str, paths: list[str]) -> str:
    """What to tell the operator when component ``name`` at ``route`` shadows the host app's ``paths``."""
    shown = ", ".join(paths)
    return (f"route {route} of component {name} shadows the app's own route{'s' if len(paths) > 1 else ''} {shown}: "
            f"requests there now go to {name}; deploy it at another route if that is not intended")
