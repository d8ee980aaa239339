"""The embedded registry's :class:`~.base.OutcomeCounters`: requests completed and failed per version, summed over
every process serving the registry directory (``serve --workers N``, gunicorn workers), so auto-rollback decides on
the whole server's traffic rather than on one worker's share of it.

They are kept in their own SQLite file, ``<root>/outcomes.db``, beside (not in) ``registry.db``: they change several
times a second under traffic, must not move the change token or wait for a deploy's write lock, and are statistics
that a crash may lose (``synchronous=OFF``), unlike the registry's changes.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from airssys_web.errors import RegistryError

__all__ = ["SqliteOutcomes"]


class SqliteOutcomes:
    """One row per (component, version); each process adds its new outcomes in one ``UPSERT``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: list[sqlite3.Connection] = []
        self._ready = False

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=5.0, isolation_level=None, check_same_thread=False)
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = OFF")
                if not self._ready:
                    conn.execute("CREATE TABLE IF NOT EXISTS outcomes (component TEXT NOT NULL, version TEXT NOT NULL,"
                                 " completed INTEGER NOT NULL, failed INTEGER NOT NULL,"
                                 " PRIMARY KEY (component, version)) WITHOUT ROWID")
                    self._ready = True
            except sqlite3.Error as exc:
                raise RegistryError(f"outcome counters {self.path} are unusable: {exc}") from exc
            with self._lock:
                self._conns.append(conn)
            self._local.conn = conn
        return conn

    def add(self, component: str, version: str, completed: int, failed: int) -> tuple[int, int]:
        try:
            row = self._conn().execute(
                "INSERT INTO outcomes (component, version, completed, failed) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (component, version) DO UPDATE SET completed = completed + excluded.completed, "
                "failed = failed + excluded.failed RETURNING completed, failed",
                (component, version, completed, failed)).fetchone()
        except sqlite3.Error as exc:
            raise RegistryError(f"outcome counters {self.path}: {exc}") from exc
        return int(row[0]), int(row[1])

    def totals(self, component: str, version: str) -> tuple[int, int]:
        try:
            row = self._conn().execute("SELECT completed, failed FROM outcomes WHERE component = ? AND version = ?",
                                       (component, version)).fetchone()
        except sqlite3.Error as exc:
            raise RegistryError(f"outcome counters {self.path}: {exc}") from exc
        return (0, 0) if row is None else (int(row[0]), int(row[1]))

    def close(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()
