"""The embedded registry's SQLite database: schema, connections, transactions, and the audit log kept in it.

``<root>/registry.db`` is SQLite in WAL mode. Every change is one ``BEGIN IMMEDIATE`` transaction with
``synchronous=FULL``, so a crash leaves the old or the new state, never a mix. Every write transaction bumps a
counter in ``meta`` (the registry's change token: one primary-key read, cheap enough to poll every 200 ms; a
recreated registry starts again at 0, so compare tokens for inequality).

Threads: each thread gets its own connection on first use, so a read on the event loop never queues behind a write
that is waiting for another process's lock (WAL readers never wait for writers). :meth:`Database.close` closes every
connection and must come last.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from airssys_web.errors import RegistryError

from .records import AuditEntry

__all__ = ["BUMP_SQL", "SCHEMA_VERSION", "Database", "SqliteAuditLog", "now"]

# Schema migrations: entry i upgrades schema i to i+1 inside one write transaction, and PRAGMA user_version
# records the result. To evolve the schema (canary split, audit log, ...), append a tuple of statements;
# never edit a released one. Columns reserved now: deployments.canary_version / canary_percent.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
        "INSERT INTO meta (key, value) VALUES ('change', 0)",
        """CREATE TABLE components (
            name TEXT PRIMARY KEY,
            route TEXT NOT NULL UNIQUE,
            created_at TEXT NOT NULL)""",
        """CREATE TABLE versions (
            component TEXT NOT NULL REFERENCES components (name),
            version TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            settings_json TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL,
            PRIMARY KEY (component, version))""",
        """CREATE TABLE deployments (
            component TEXT PRIMARY KEY REFERENCES components (name),
            active_version TEXT NOT NULL,
            previous_version TEXT,
            canary_version TEXT,
            canary_percent INTEGER NOT NULL DEFAULT 0 CHECK (canary_percent BETWEEN 0 AND 100),
            updated_at TEXT NOT NULL,
            FOREIGN KEY (component, active_version) REFERENCES versions (component, version),
            FOREIGN KEY (component, previous_version) REFERENCES versions (component, version),
            FOREIGN KEY (component, canary_version) REFERENCES versions (component, version))""",
        """CREATE TABLE history (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            component TEXT NOT NULL,
            version TEXT NOT NULL,
            previous_version TEXT,
            action TEXT NOT NULL,
            strategy TEXT NOT NULL,
            actor TEXT NOT NULL,
            outcome TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT '',
            at TEXT NOT NULL)""",
        "CREATE INDEX history_by_version ON history (component, version, id)",
    ),
    (
        # 2: the policy watching the newest version, and the admin API's audit log.
        "ALTER TABLE deployments ADD COLUMN auto_rollback TEXT",
        """CREATE TABLE audit (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            token_id TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL,
            outcome TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT '',
            at TEXT NOT NULL)""",
    ),
    (
        # 3: the component's route was claimed with allow_nested (it may lie under or above another's route).
        "ALTER TABLE components ADD COLUMN nested INTEGER NOT NULL DEFAULT 0",
    ),
    (
        # 4: middleware stages (a component of kind 'middleware' has no route) and the pipeline of stages in front
        # of a route component (a JSON list of names). SQLite cannot drop NOT NULL in place: the table is rebuilt
        # (the migration runs with foreign keys off and checks them all before it commits).
        """CREATE TABLE components_v4 (
            name TEXT PRIMARY KEY,
            route TEXT UNIQUE,
            created_at TEXT NOT NULL,
            nested INTEGER NOT NULL DEFAULT 0,
            kind TEXT NOT NULL DEFAULT 'route' CHECK (kind IN ('route', 'middleware')),
            stages TEXT NOT NULL DEFAULT '[]',
            CHECK ((kind = 'route') = (route IS NOT NULL)))""",
        "INSERT INTO components_v4 (name, route, created_at, nested) SELECT name, route, created_at, nested "
        "FROM components",
        "DROP TABLE components",
        "ALTER TABLE components_v4 RENAME TO components",
        # History: the pipeline a change set (and the one it replaced), and which change a rollback undid.
        "ALTER TABLE history ADD COLUMN stages TEXT",
        "ALTER TABLE history ADD COLUMN stages_before TEXT",
        "ALTER TABLE history ADD COLUMN undoes INTEGER",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)
#: Moves the change token (done by every write transaction, unless it asked not to: then it runs this when it did
#: change something).
BUMP_SQL = "UPDATE meta SET value = value + 1 WHERE key = 'change'"


def now() -> str:
    """The current time as the database stores it (ISO 8601, UTC, microseconds: it sorts as text)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


class Database:
    """One registry database, shared by the threads of a process (see the module docstring)."""

    def __init__(self, path: Path, *, busy_timeout: float = 10.0) -> None:
        self.path = path
        self._busy_timeout = busy_timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: list[sqlite3.Connection] = []
        self._closed = False
        self._migrate()

    def conn(self) -> sqlite3.Connection:
        """This thread's connection (outside a transaction: for single reads such as the change token)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and not self._closed:
            return conn
        with self._lock:
            if self._closed:
                raise RegistryError(f"registry {self.path.parent} is closed")
            try:
                conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None,
                                       check_same_thread=False)
                conn.execute("PRAGMA foreign_keys = ON")
                conn.execute("PRAGMA synchronous = FULL")
            except sqlite3.Error as exc:
                raise self.error(exc) from exc
            self._conns.append(conn)
        self._local.conn = conn
        return conn

    def error(self, exc: sqlite3.Error) -> RegistryError:
        """``exc`` as the one-line RegistryError the user sees."""
        if "locked" in str(exc) or "busy" in str(exc):
            return RegistryError(
                f"registry database {self.path} stayed locked by another writer for over "
                f"{self._busy_timeout:g}s; retry, or look for a stuck airssys-web process"
            )
        return RegistryError(f"registry database {self.path} is unusable: {exc}")

    @contextmanager
    def transaction(self, *, write: bool = False, bump: bool = True) -> Iterator[sqlite3.Connection]:
        """One transaction; writes take the write lock up front (so the busy timeout applies) and bump
        the change counter unless ``bump`` is False. Errors from the body roll everything back."""
        db = self.conn()
        try:
            db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield db
                if write and bump:
                    db.execute(BUMP_SQL)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise self.error(exc) from exc

    def change_token(self) -> int:
        try:
            rows = self.conn().execute("SELECT value FROM meta WHERE key = 'change'").fetchall()
        except sqlite3.Error as exc:
            raise self.error(exc) from exc
        return int(rows[0][0])

    def close(self) -> None:
        """Close every thread's connection; later calls raise :class:`RegistryError`. Idempotent."""
        with self._lock:
            conns, self._conns, self._closed = self._conns, [], True
        for conn in conns:
            conn.close()

    def _migrate(self) -> None:
        try:
            mode = self.conn().execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.Error as exc:
            raise self.error(exc) from exc
        if mode != "wal":
            raise RegistryError(f"registry database {self.path} cannot use WAL mode (got {mode!r})")
        conn = self.conn()
        # A table rebuild (the SQLite way to change a column) drops a table other tables reference: foreign keys are
        # off while migrating (a connection setting, not allowed inside a transaction), and checked before commit.
        conn.execute("PRAGMA foreign_keys = OFF")
        try:
            with self.transaction(write=True, bump=False) as db:
                (current,) = db.execute("PRAGMA user_version").fetchone()
                if current > SCHEMA_VERSION:
                    raise RegistryError(
                        f"registry {self.path.parent} has schema {current}, newer than this airssys-web supports "
                        f"({SCHEMA_VERSION}); upgrade airssys-web"
                    )
                for step in _MIGRATIONS[current:]:
                    for statement in step:
                        db.execute(statement)
                if current != SCHEMA_VERSION:
                    broken = db.execute("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RegistryError(f"registry {self.path.parent}: migrating to schema {SCHEMA_VERSION} "
                                            f"would break references ({broken[:3]}); nothing was changed")
                    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        finally:
            conn.execute("PRAGMA foreign_keys = ON")


_AUDIT_COLS = "id, token_id, action, target, outcome, detail, at"


class SqliteAuditLog:
    """The :class:`~.base.AuditLog` in the registry database's ``audit`` table."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def append(self, action: str, target: str, outcome: str, *, token_id: str, detail: str = "") -> None:
        """Append one admin action (it does not bump the change token: nothing to apply)."""
        with self._db.transaction(write=True, bump=False) as db:
            db.execute(
                f"INSERT INTO audit ({_AUDIT_COLS[4:]}) VALUES (?, ?, ?, ?, ?, ?)",
                (token_id, action, target, outcome, detail, now()),
            )

    def entries(self, limit: int = 100) -> list[AuditEntry]:
        """The newest ``limit`` audit entries, oldest first."""
        with self._db.transaction() as db:
            rows = db.execute(
                f"SELECT {_AUDIT_COLS} FROM (SELECT * FROM audit ORDER BY id DESC LIMIT ?) ORDER BY id", (limit,)
            ).fetchall()
        return [AuditEntry(r[0], r[1], r[2], r[3], r[4], r[5], datetime.fromisoformat(r[6])) for r in rows]
