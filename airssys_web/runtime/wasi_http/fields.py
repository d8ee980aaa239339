"""``wasi:http/types.fields``: header and trailer maps with the WIT's rules.

Names are HTTP tokens, stored lower-case (lookups ignore case, as in wasmtime); values are bytes without CR, LF,
NUL or other controls except tab. Fields a guest builds reject the headers wasmtime forbids a guest to set
(hop-by-hop ones and ``host``) with ``header-error.forbidden``. Fields that belong to a received message
(incoming request, response or trailers) or to a message already sent are immutable.
"""

from __future__ import annotations

import re
from typing import Any

FORBIDDEN = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
                       "transfer-encoding", "upgrade", "host", "http2-settings"})
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
MAX_FIELDS = 1000

Entries = list[tuple[str, bytes]]
Result = tuple[str, Any]
OK: Result = ("ok", None)


def header_error(name: str, value: bytes | None = None) -> str | None:
    """The ``header-error`` case for setting ``name`` (to ``value``) in guest-built fields, or None if valid."""
    raw = name.encode("utf-8", "surrogateescape")
    if not _TOKEN.fullmatch(raw):
        return "invalid-syntax"
    if value is not None and _BAD_VALUE.search(value):
        return "invalid-syntax"
    if name.lower() in FORBIDDEN:
        return "forbidden"
    return None


class Fields:
    """An ordered multimap of lower-case names to byte values."""

    RESOURCE_ID = 10
    __slots__ = ("entries", "immutable")

    def __init__(self, entries: Entries | None = None, *, immutable: bool = False) -> None:
        self.entries: Entries = entries if entries is not None else []
        self.immutable = immutable

    @classmethod
    def from_list(cls, entries: list[tuple[str, bytes]]) -> Result:
        out: Entries = []
        if len(entries) > MAX_FIELDS:
            return "err", "invalid-syntax"
        for name, value in entries:
            bad = header_error(name, value)
            if bad is not None:
                return "err", bad
            out.append((name.lower(), bytes(value)))
        return "ok", cls(out)

    def _check(self, name: str, values: list[bytes]) -> str | None:
        if self.immutable:
            return "immutable"
        if len(self.entries) + len(values) > MAX_FIELDS:
            return "invalid-syntax"
        for value in values or [None]:  # type: ignore[list-item]
            bad = header_error(name, value)
            if bad is not None:
                return bad
        return None

    def get(self, name: str) -> list[bytes]:
        key = name.lower()
        return [v for k, v in self.entries if k == key]

    def has(self, name: str) -> bool:
        key = name.lower()
        return any(k == key for k, _ in self.entries)

    def set(self, name: str, values: list[bytes]) -> Result:
        bad = self._check(name, values)
        if bad is not None:
            return "err", bad
        key = name.lower()
        self.entries = [(k, v) for k, v in self.entries if k != key] + [(key, bytes(v)) for v in values]
        return OK

    def delete(self, name: str) -> Result:
        if self.immutable:
            return "err", "immutable"
        bad = header_error(name)
        if bad is not None:
            return "err", bad
        key = name.lower()
        self.entries = [(k, v) for k, v in self.entries if k != key]
        return OK

    def append(self, name: str, value: bytes) -> Result:
        bad = self._check(name, [value])
        if bad is not None:
            return "err", bad
        self.entries.append((name.lower(), bytes(value)))
        return OK

    def clone(self) -> Fields:
        """A mutable copy (as the WIT says, even of immutable fields)."""
        return Fields(list(self.entries))

    def freeze(self) -> None:
        self.immutable = True


def fields_functions() -> dict[str, Any]:
    return {
        "[constructor]fields": lambda _s: Fields(),
        "[static]fields.from-list": lambda _s, entries: Fields.from_list(entries),
        "[method]fields.get": lambda _s, f, name: f.get(name),
        "[method]fields.has": lambda _s, f, name: f.has(name),
        "[method]fields.set": lambda _s, f, name, values: f.set(name, values),
        "[method]fields.delete": lambda _s, f, name: f.delete(name),
        "[method]fields.append": lambda _s, f, name, value: f.append(name, value),
        "[method]fields.entries": lambda _s, f: list(f.entries),
        "[method]fields.clone": lambda _s, f: f.clone(),
    }
