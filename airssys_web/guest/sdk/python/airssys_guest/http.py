"""Request, Response and headers: plain Python values in place of the raw WIT records.

Nothing here touches the host, so it works (and is unit-tested) outside a component too.
"""

from __future__ import annotations

import json as _json
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

__all__ = ["HTTPError", "Headers", "QueryParams", "Request", "Response"]

HeaderItems = Mapping[str, str] | Iterable[tuple[str, str]]


class Headers(MutableMapping[str, str]):
    """Case-insensitive, order-keeping HTTP headers that may repeat a name.

    ``headers["Content-Type"]`` is the first value, ``get_all(name)`` every value; setting a name replaces all
    its values, :meth:`add` appends one more. Names are kept lower-case, as the host delivers them.
    """

    __slots__ = ("_items",)

    def __init__(self, items: HeaderItems | None = None) -> None:
        self._items: list[tuple[str, str]] = []
        if items is not None:
            if isinstance(items, Headers):  # a copy keeps repeated names (a Mapping's items() would not)
                pairs: Iterable[tuple[str, str]] = items.raw()
            else:
                pairs = items.items() if isinstance(items, Mapping) else items
            for name, value in pairs:
                self.add(name, value)

    def __getitem__(self, name: str) -> str:
        key = name.lower()
        for k, v in self._items:
            if k == key:
                return v
        raise KeyError(name)

    def __setitem__(self, name: str, value: str) -> None:
        key = name.lower()
        kept = [(k, v) for k, v in self._items if k != key]
        self._items = [*kept, (key, _check_value(name, value))]

    def __delitem__(self, name: str) -> None:
        key = name.lower()
        kept = [(k, v) for k, v in self._items if k != key]
        if len(kept) == len(self._items):
            raise KeyError(name)
        self._items = kept

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(k for k, _ in self._items))

    def __len__(self) -> int:
        return len({k for k, _ in self._items})

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and any(k == name.lower() for k, _ in self._items)

    def add(self, name: str, value: str) -> None:
        """Append a value, keeping the ones already there (``set-cookie``, ``vary``, ...)."""
        self._items.append((name.lower(), _check_value(name, value)))

    def get_all(self, name: str) -> list[str]:
        key = name.lower()
        return [v for k, v in self._items if k == key]

    def raw(self) -> list[tuple[str, str]]:
        """Every (name, value) pair in order, repeats included: what goes on the wire."""
        return list(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return sorted(self._items) == sorted(other._items)
        if isinstance(other, Mapping):
            return dict(self) == {k.lower(): v for k, v in other.items()}
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


def _check_value(name: str, value: str) -> str:
    if not isinstance(name, str) or not isinstance(value, str):
        raise TypeError(f"header {name!r}: names and values must be str, got {type(value).__name__}")
    return value


class QueryParams(Mapping[str, str]):
    """The decoded query string: ``params["q"]`` is the first value, ``get_all("tag")`` every value."""

    __slots__ = ("_items",)

    def __init__(self, query: str = "") -> None:
        self._items = parse_qsl(query, keep_blank_values=True)

    def __getitem__(self, key: str) -> str:
        for k, v in self._items:
            if k == key:
                return v
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(k for k, _ in self._items))

    def __len__(self) -> int:
        return len({k for k, _ in self._items})

    def get_all(self, key: str) -> list[str]:
        return [v for k, v in self._items if k == key]

    def __repr__(self) -> str:
        return f"QueryParams({self._items!r})"


class HTTPError(Exception):
    """Raise it from a route to answer with ``status`` and a JSON body ``{"error": detail}``."""

    def __init__(self, status: int, detail: str | None = None, headers: HeaderItems | None = None) -> None:
        _check_status(status)
        self.status = status
        self.detail = detail if detail is not None else _REASONS.get(status, "error")
        self.headers = Headers(headers)
        super().__init__(f"{status}: {self.detail}")


class Request:
    """One incoming request. ``path`` is the full path the host received (percent-decoded), ``query`` the raw
    query string; ``path_params`` holds the values the matched route captured. ``root_path`` is where the component
    is mounted (its deploy route, e.g. ``/api``; ``""`` outside a host) and ``route_path`` the path below it, which
    the app's routes are matched against; build links with ``req.root_path + "/items/3"``."""

    __slots__ = ("body", "headers", "method", "path", "path_params", "query", "root_path", "route_path")

    def __init__(self, method: str, path: str, query: str = "", headers: HeaderItems | None = None,
                 body: bytes = b"") -> None:
        self.method = method.upper()
        self.path = path
        self.query = query
        self.headers = Headers(headers)
        self.body = bytes(body)
        self.path_params: dict[str, Any] = {}
        self.root_path = ""  # the component's mount point (set by App)
        self.route_path = path  # the path below the mount point: what routes are matched against

    @property
    def query_params(self) -> QueryParams:
        return QueryParams(self.query)

    @property
    def text(self) -> str:
        """The body decoded as UTF-8 (invalid bytes replaced)."""
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body parsed as JSON; a body that is not JSON answers 400 (raises :class:`HTTPError`)."""
        try:
            return _json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise HTTPError(400, f"the request body is not valid JSON: {exc}") from None

    def __repr__(self) -> str:
        query = f"?{self.query}" if self.query else ""
        return f"<Request {self.method} {self.path}{query}>"


class Response:
    """What a route answers: a status (100-599), headers and a body of bytes.

    Build one directly or with :meth:`text`, :meth:`json`, :meth:`html` and :meth:`redirect`. A route may also
    return a ``str`` (text), ``bytes``, a ``dict`` or ``list`` (JSON), ``None`` (204) or ``(body, status)``.
    """

    __slots__ = ("body", "headers", "status")

    def __init__(self, body: bytes | str = b"", status: int = 200, headers: HeaderItems | None = None,
                 content_type: str | None = None) -> None:
        self.status = _check_status(status)
        self.headers = Headers(headers)
        self.body = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        if content_type is not None and "content-type" not in self.headers:
            self.headers["content-type"] = content_type

    @classmethod
    def text(cls, text: str, status: int = 200, headers: HeaderItems | None = None) -> Response:
        return cls(text, status, headers, "text/plain; charset=utf-8")

    @classmethod
    def html(cls, html: str, status: int = 200, headers: HeaderItems | None = None) -> Response:
        return cls(html, status, headers, "text/html; charset=utf-8")

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: HeaderItems | None = None) -> Response:
        body = _json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        return cls(body, status, headers, "application/json")

    @classmethod
    def redirect(cls, location: str, status: int = 307) -> Response:
        return cls(b"", status, [("location", location)])

    def __repr__(self) -> str:
        return f"<Response {self.status} {len(self.body)} bytes>"


def _check_status(status: int) -> int:
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise ValueError(f"HTTP status must be an int from 100 to 599, got {status!r}")
    return status


_REASONS = {400: "bad request", 401: "unauthorized", 403: "forbidden", 404: "not found",
            405: "method not allowed", 409: "conflict", 413: "payload too large", 422: "unprocessable entity",
            429: "too many requests", 500: "internal error", 502: "bad gateway", 503: "unavailable"}
