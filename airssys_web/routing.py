"""Route ownership: which generation answers a request path.

A route ``/hello`` owns ``/hello`` and everything below it (``/hello/anything``) but not ``/helloworld``. The
longest matching route wins, so ``/api/admin`` can belong to another component than ``/api``. A RouteTable is
immutable; the host publishes a new one by a single attribute assignment, which is the atomic switch of a swap.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Generic, TypeVar

T = TypeVar("T")


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

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"RouteTable({[r for r, _ in self._entries]!r})"
