"""Key-value storage for guests (``airssys:web/kv``): one namespace per component, bounded by quotas.

A component only reaches KV when it was granted (``--kv``), and then only its own namespace: the namespace is
the component name, fixed by the host, never chosen by the guest. Data belongs to the component, not to a
version, so it survives upgrades, rollbacks and restarts.

:class:`KVStore` is the interface a backend implements (the embedded :class:`SqliteKVStore` here; a Redis flavour
can implement the same six methods). Every quota is checked inside the write's transaction, so concurrent
writers (threads or processes) cannot overshoot it together. Failures raise :class:`~airssys_web.errors.KVError`
with a one-line message; the host function hands that message to the guest as the WIT ``err`` case.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Protocol

from ..errors import CapabilityError, KVError

KiB = 1024
MiB = 1024 * KiB


@dataclass(frozen=True, slots=True)
class KVQuota:
    """How much one component may store. ``max_total_bytes`` counts keys and values (UTF-8 key bytes + value)."""

    max_key_bytes: int = 512
    max_value_bytes: int = 1 * MiB
    max_keys: int = 10_000
    max_total_bytes: int = 64 * MiB

    def __post_init__(self) -> None:
        bounds = {"max_key_bytes": 64 * KiB, "max_value_bytes": 512 * MiB, "max_keys": 100_000_000,
                  "max_total_bytes": 1 << 40}
        for name, high in bounds.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= high:
                raise CapabilityError(f"invalid kv quota {name}={value!r}: must be a whole number from 1 to {high}")

    def to_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> KVQuota:
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CapabilityError(f"unknown kv quota(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**data)


@dataclass(frozen=True, slots=True)
class KVUsage:
    keys: int
    bytes: int


class KVStore(Protocol):
    """A namespaced byte store with quotas; implementations must be safe to call from several threads."""

    def get(self, namespace: str, key: str) -> bytes | None: ...
    def set(self, namespace: str, key: str, value: bytes, quota: KVQuota) -> None: ...
    def delete(self, namespace: str, key: str) -> None: ...
    def keys(self, namespace: str) -> list[str]: ...
    def usage(self, namespace: str) -> KVUsage: ...
    def close(self) -> None: ...


def check_key(key: object, quota: KVQuota) -> bytes:
    """The key's UTF-8 bytes, or KVError saying what is wrong with it."""
    if not isinstance(key, str) or not key:
        raise KVError("kv: the key is empty")
    try:
        raw = key.encode("utf-8")
    except UnicodeEncodeError:
        raise KVError("kv: the key is not valid UTF-8") from None
    if len(raw) > quota.max_key_bytes:
        raise KVError(f"kv: key of {len(raw)} bytes is over the {quota.max_key_bytes}-byte limit")
    return raw


class KVNamespace:
    """One component's view of a store: the calls the ``airssys:web/kv`` host functions make."""

    __slots__ = ("name", "quota", "store")

    def __init__(self, store: KVStore, name: str, quota: KVQuota) -> None:
        self.store = store
        self.name = name
        self.quota = quota

    def get(self, key: str) -> bytes | None:
        check_key(key, self.quota)
        return self.store.get(self.name, key)

    def set(self, key: str, value: bytes) -> None:
        self.store.set(self.name, key, value, self.quota)

    def delete(self, key: str) -> None:
        check_key(key, self.quota)
        self.store.delete(self.name, key)

    def keys(self) -> list[str]:
        """Every key of the namespace, sorted (the quota bounds how many)."""
        return self.store.keys(self.name)

    def usage(self) -> KVUsage:
        return self.store.usage(self.name)


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS kv (ns TEXT NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL,"
    " PRIMARY KEY (ns, key)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS usage (ns TEXT PRIMARY KEY, keys INTEGER NOT NULL, bytes INTEGER NOT NULL)",
)


class SqliteKVStore:
    """The embedded backend: one SQLite file (WAL) shared by every component, rows keyed by namespace.

    Each thread gets its own connection (guest calls run on worker threads); writes are ``BEGIN IMMEDIATE``
    transactions that read the namespace's usage row, check the quota and apply the change together.
    """

    def __init__(self, path: str | Path, *, busy_timeout: float = 5.0) -> None:
        self.path = Path(path)
        self._busy_timeout = busy_timeout
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._transaction() as conn:
                for statement in _SCHEMA:
                    conn.execute(statement)
        except sqlite3.Error as exc:
            raise KVError(f"kv: cannot open {self.path}: {exc}") from None

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise KVError("kv: the store is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            with self._lock:
                if self._closed:
                    raise KVError("kv: the store is closed")
                conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None,
                                       check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                self._conns.append(conn)
            self._local.conn = conn
        return conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def get(self, namespace: str, key: str) -> bytes | None:
        try:
            row = self._conn().execute("SELECT value FROM kv WHERE ns = ? AND key = ?",
                                       (namespace, key.encode())).fetchone()
        except sqlite3.Error as exc:
            raise KVError(f"kv: storage error: {exc}") from None
        return None if row is None else bytes(row[0])

    def set(self, namespace: str, key: str, value: bytes, quota: KVQuota) -> None:
        raw = check_key(key, quota)
        if len(value) > quota.max_value_bytes:
            raise KVError(f"kv: value of {len(value)} bytes is over the {quota.max_value_bytes}-byte limit")
        try:
            with self._transaction() as conn:
                keys, total = self._usage(conn, namespace)
                old = conn.execute("SELECT length(value) FROM kv WHERE ns = ? AND key = ?",
                                   (namespace, raw)).fetchone()
                new_keys = keys + (old is None)
                new_total = total + len(raw) + len(value) - (0 if old is None else len(raw) + old[0])
                if new_keys > quota.max_keys:
                    raise KVError(f"kv: quota exceeded: at most {quota.max_keys} keys per component")
                if new_total > quota.max_total_bytes:
                    raise KVError(f"kv: quota exceeded: this write would store {new_total} bytes, over the "
                                  f"{quota.max_total_bytes}-byte limit per component")
                conn.execute("INSERT OR REPLACE INTO kv (ns, key, value) VALUES (?, ?, ?)",
                             (namespace, raw, bytes(value)))
                self._set_usage(conn, namespace, new_keys, new_total)
        except sqlite3.Error as exc:
            raise KVError(f"kv: storage error: {exc}") from None

    def delete(self, namespace: str, key: str) -> None:
        raw = key.encode()
        try:
            with self._transaction() as conn:
                old = conn.execute("SELECT length(value) FROM kv WHERE ns = ? AND key = ?",
                                   (namespace, raw)).fetchone()
                if old is None:
                    return
                conn.execute("DELETE FROM kv WHERE ns = ? AND key = ?", (namespace, raw))
                keys, total = self._usage(conn, namespace)
                self._set_usage(conn, namespace, keys - 1, total - len(raw) - old[0])
        except sqlite3.Error as exc:
            raise KVError(f"kv: storage error: {exc}") from None

    def keys(self, namespace: str) -> list[str]:
        try:
            rows = self._conn().execute("SELECT key FROM kv WHERE ns = ? ORDER BY key", (namespace,)).fetchall()
        except sqlite3.Error as exc:
            raise KVError(f"kv: storage error: {exc}") from None
        return [bytes(row[0]).decode("utf-8") for row in rows]

    def usage(self, namespace: str) -> KVUsage:
        try:
            return KVUsage(*self._usage(self._conn(), namespace))
        except sqlite3.Error as exc:
            raise KVError(f"kv: storage error: {exc}") from None

    @staticmethod
    def _usage(conn: sqlite3.Connection, namespace: str) -> tuple[int, int]:
        row = conn.execute("SELECT keys, bytes FROM usage WHERE ns = ?", (namespace,)).fetchone()
        return (0, 0) if row is None else (int(row[0]), int(row[1]))

    @staticmethod
    def _set_usage(conn: sqlite3.Connection, namespace: str, keys: int, total: int) -> None:
        conn.execute("INSERT OR REPLACE INTO usage (ns, keys, bytes) VALUES (?, ?, ?)", (namespace, keys, total))

    def close(self) -> None:
        """Close every thread's connection (idempotent); later calls raise KVError."""
        with self._lock:
            self._closed = True
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()

    def __repr__(self) -> str:
        return f"SqliteKVStore({str(self.path)!r})"
