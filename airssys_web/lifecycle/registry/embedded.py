"""The registry: which components exist, their immutable versions, which version serves each route.

The CLI writes it and a running server (another process) polls it, so the embedded flavour is a
directory rather than in-memory state::

    <root>/blobs/<sha[:2]>/<sha>.wasm   uploaded components, named by SHA-256, written once
    <root>/artifacts/                   compile cache, owned by ``airssys_web.runtime.artifacts``
    <root>/registry.db                  SQLite in WAL mode: meta, components, versions, deployments, history,
                                        audit

Crash safety: a blob is fsynced and renamed into place before any row names it, and every change is one
``BEGIN IMMEDIATE`` transaction (``synchronous=FULL``), so a crash leaves the old or the new state, never a
mix; at worst an unreferenced blob or a ``.tmp-*`` file stays behind, which is harmless.

Change detection: every write transaction bumps a counter in ``meta``; :meth:`EmbeddedRegistry.change_token`
is one primary-key read, cheap enough to poll every 200 ms. Compare tokens for *inequality* (a recreated
registry starts again at 0).

Threads: each thread gets its own SQLite connection on first use, so a read on the event loop never queues
behind a write that is waiting for another process's lock (WAL readers never wait for writers). Calls are
safe from any thread; :meth:`~EmbeddedRegistry.close` closes every connection and must come last.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from airssys_web._files import write_atomic
from airssys_web.errors import Conflict, InvalidName, NotFound, RegistryError, VersionExists

from .base import (
    ACTIVATIONS,
    AuditEntry,
    ComponentInfo,
    Deployment,
    HistoryEntry,
    Registry,
    VersionInfo,
    _check_sha,
    _file_sha,
    _fsync_dir,
    _now,
    _settings_json,
    route_overlap,
    validate_name,
    validate_route,
    validate_version,
    version_key,
)

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
)
SCHEMA_VERSION = len(_MIGRATIONS)

_DEPLOYMENT_SQL = """
    SELECT d.component, c.route, d.active_version, v.sha256, v.settings_json, d.previous_version, d.updated_at,
           d.canary_version, d.canary_percent, cv.sha256, cv.settings_json, d.auto_rollback, c.nested
    FROM deployments d
    JOIN components c ON c.name = d.component
    JOIN versions v ON v.component = d.component AND v.version = d.active_version
    LEFT JOIN versions cv ON cv.component = d.component AND cv.version = d.canary_version"""


_VERSION_COLS = "component, version, sha256, settings_json, created_at"
_HISTORY_COLS = "id, component, version, previous_version, action, strategy, actor, outcome, detail, at"
_AUDIT_COLS = "id, token_id, action, target, outcome, detail, at"
_ACTIVATION_SQL = f"action IN ({', '.join(repr(a) for a in ACTIVATIONS)}) AND outcome = 'ok'"


def _deployment(r: tuple[Any, ...]) -> Deployment:
    return Deployment(r[0], r[1], r[2], r[3], r[4], r[5], datetime.fromisoformat(r[6]), r[7], r[8], r[9], r[10], r[11],
                      bool(r[12]))


_COMPONENT_SQL = ("SELECT c.name, c.route, c.created_at, d.active_version, c.nested FROM components c "
                  "LEFT JOIN deployments d ON d.component = c.name")


def _component_info(r: tuple[Any, ...]) -> ComponentInfo:
    return ComponentInfo(r[0], r[1], datetime.fromisoformat(r[2]), r[3], bool(r[4]))


def _history(r: tuple[Any, ...]) -> HistoryEntry:
    return HistoryEntry(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], datetime.fromisoformat(r[9]))


def _version(r: tuple[Any, ...]) -> VersionInfo:
    return VersionInfo(r[0], r[1], r[2], r[3], datetime.fromisoformat(r[4]))


class EmbeddedRegistry(Registry):
    """A registry in a local directory; see the module docstring for layout, locking and rules."""

    def __init__(self, root: str | Path, *, busy_timeout: float = 10.0) -> None:
        self.root = Path(root)
        self._db_path = self.root / "registry.db"
        self._busy_timeout = busy_timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: list[sqlite3.Connection] = []
        self._closed = False
        try:
            for sub in (self.root, self.root / "blobs", self.artifacts_dir):
                sub.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RegistryError(f"cannot create registry directory {self.root}: {exc}") from exc
        self._migrate()

    # -- blobs ---------------------------------------------------------------------------------------

    @property
    def artifacts_dir(self) -> Path:
        return self.root / "artifacts"

    def blob_path(self, sha256: str) -> Path:
        _check_sha(sha256)
        return self.root / "blobs" / sha256[:2] / f"{sha256}.wasm"

    def put_blob(self, data: bytes) -> str:
        """Store ``data`` durably under its SHA-256 and return the digest; storing it again is a no-op."""
        sha = hashlib.sha256(data).hexdigest()
        path = self.blob_path(sha)
        try:
            if path.is_file() and _file_sha(path) == sha:
                return sha
            path.parent.mkdir(exist_ok=True)
            write_atomic(path, data, mode=0o644)
            _fsync_dir(path.parent)
            _fsync_dir(path.parent.parent)
        except OSError as exc:
            raise RegistryError(f"cannot write blob {sha} under {self.root}: {exc}") from exc
        return sha

    def read_blob(self, sha256: str) -> bytes:
        """Return the blob's bytes after checking them against ``sha256``."""
        path = self.blob_path(sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise NotFound(f"blob {sha256} is not in the registry at {self.root}") from None
        except OSError as exc:
            raise RegistryError(f"cannot read blob {path}: {exc}") from exc
        if hashlib.sha256(data).hexdigest() != sha256:
            raise RegistryError(f"blob {path} is corrupt (its content does not match its sha256); redeploy it")
        return data

    # -- writes --------------------------------------------------------------------------------------

    def deploy(
        self,
        name: str,
        version: str,
        *,
        sha256: str,
        route: str | None = None,
        settings: Mapping[str, Any] | None = None,
        actor: str = "cli",
        strategy: str = "immediate",
        auto_rollback: str | None = None,
        allow_nested: bool = False,
    ) -> Deployment:
        """Add ``version`` (if new), claim or move the route, and make it active, in one transaction.

        ``route`` is required on a component's first deploy; later it may be omitted (keep the route) or
        changed (if no other component owns the new one). A route nested under or containing another component's
        route needs ``allow_nested`` (see :func:`~.base.route_overlap`). Re-deploying an identical version is a
        no-op apart from its history entry; the same version with other content raises :class:`VersionExists`.
        A canary in progress ends: the deployed version serves everyone.
        """
        settings_json = self._check_new(name, version, sha256, route, settings)
        with self._transaction(write=True) as db:
            detail = self._add_version_in(db, name, version, sha256, route, settings_json, allow_nested)
            event = ("deploy", strategy, actor, detail, auto_rollback)
            return self._activate_in(db, name, version, self._pushed(db, name), *event)

    def add_version(
        self,
        name: str,
        version: str,
        *,
        sha256: str,
        route: str | None = None,
        settings: Mapping[str, Any] | None = None,
        allow_nested: bool = False,
    ) -> VersionInfo:
        """Record ``version`` (and the component, on first use) without activating it, e.g. before a canary."""
        settings_json = self._check_new(name, version, sha256, route, settings)
        with self._transaction(write=True) as db:
            self._add_version_in(db, name, version, sha256, route, settings_json, allow_nested)
            return self._require_version(db, name, version)

    def _add_version_in(
        self,
        db: sqlite3.Connection,
        name: str,
        version: str,
        sha256: str,
        route: str | None,
        settings_json: str,
        allow_nested: bool,
    ) -> str:
        """Insert the component (claiming ``route``) and the version if new; return a history detail.
        The arguments were checked by :meth:`_check_new` before the transaction began."""
        now = _now()
        row = db.execute("SELECT route FROM components WHERE name = ?", (name,)).fetchone()
        detail = ""
        if row is None:
            if route is None:
                raise InvalidName(f"component {name!r} is new: give it a route, e.g. --route /{name}")
            self._claim_route(db, name, route, allow_nested)
            db.execute("INSERT INTO components (name, route, created_at, nested) VALUES (?, ?, ?, ?)",
                       (name, route, now, allow_nested))
        elif route is not None and route != row[0]:
            self._claim_route(db, name, route, allow_nested)
            db.execute("UPDATE components SET route = ?, nested = ? WHERE name = ?", (route, allow_nested, name))
            detail = f"route {row[0]} -> {route}" + (" (nested)" if allow_nested else "")
        old = db.execute(
            "SELECT sha256, settings_json FROM versions WHERE component = ? AND version = ?", (name, version)
        ).fetchone()
        if old is None:
            db.execute(
                f"INSERT INTO versions ({_VERSION_COLS}) VALUES (?, ?, ?, ?, ?)",
                (name, version, sha256, settings_json, now),
            )
        elif tuple(old) != (sha256, settings_json):
            what = f"sha256 {old[0][:12]}..." if old[0] != sha256 else f"settings {old[1]}"
            raise VersionExists(
                f"{name} {version} already exists with different content ({what}); "
                "versions are immutable: deploy a new version"
            )
        return detail

    def _check_new(
        self, name: str, version: str, sha256: str, route: str | None, settings: Mapping[str, Any] | None
    ) -> str:
        """Validate a new version's fields (before taking the write lock); return its canonical settings."""
        validate_name(name)
        validate_version(version)
        if route is not None:
            validate_route(route)
        settings_json = _settings_json(settings)
        if not self.blob_path(sha256).is_file():
            raise NotFound(f"blob {sha256} is not in the registry; store it with put_blob() before deploying")
        return settings_json

    def check_route(self, name: str, route: str, *, allow_nested: bool = False) -> None:
        """Raise :class:`RouteConflict` now if ``name`` could not claim ``route`` (a cheap check before compiling;
        the claim itself checks again in its transaction). Its own current route is always fine."""
        validate_name(name)
        validate_route(route)
        with self._transaction() as db:
            row = db.execute("SELECT route FROM components WHERE name = ?", (name,)).fetchone()
            if row is None or row[0] != route:
                self._claim_route(db, name, route, allow_nested)

    def activate(
        self,
        name: str,
        version: str,
        *,
        actor: str = "cli",
        action: str = "activate",
        strategy: str = "immediate",
        auto_rollback: str | None = None,
    ) -> Deployment:
        """Make an existing version active; the formerly active one becomes the rollback target."""
        validate_name(name)
        validate_version(version)
        with self._transaction(write=True) as db:
            self._require_version(db, name, version)
            event = (action, strategy, actor, "", auto_rollback)
            return self._activate_in(db, name, version, self._pushed(db, name), *event)

    def rollback(
        self,
        name: str,
        to_version: str | None = None,
        *,
        actor: str = "cli",
        reason: str = "",
        expect: str | None = None,
    ) -> Deployment:
        """Undo the last change: abort a canary in progress (0 %), else return to the version active before the
        current one. ``to_version`` names the version to activate instead (a canary ends too).

        ``expect`` guards against races: when given, the newest version (the canary, else the active one) must
        still be ``expect`` or :class:`Conflict` is raised and nothing changes. ``reason`` goes to the history.
        """
        validate_name(name)
        if to_version is not None:
            validate_version(to_version)
        with self._transaction(write=True) as db:
            current = self._current(db, name)
            if expect is not None and current.newest_version != expect:
                raise Conflict(
                    f"{name} changed meanwhile: the newest version is {current.newest_version}, not {expect}; "
                    "nothing was rolled back"
                )
            why = f"; {reason}" if reason else ""
            if to_version is None and current.canary_version is not None:
                db.execute(
                    "UPDATE deployments SET canary_version = NULL, canary_percent = 0, auto_rollback = NULL, "
                    "updated_at = ? WHERE component = ?",
                    (_now(), name),
                )
                detail = f"canary {current.canary_version} aborted (0%){why}"
                self._log(db, name, current.active_version, current.previous_version, "rollback", "canary", actor,
                          detail)
                return self._current(db, name)
            target = to_version if to_version is not None else current.previous_version
            if target is None:
                raise NotFound(
                    f"{name} has no earlier version to roll back to (active: {current.active_version}); "
                    "name a version explicitly"
                )
            self._require_version(db, name, target)
            # Restore the stack below ``target`` as it was when ``target`` was last activated.
            row = db.execute(
                f"SELECT previous_version FROM history WHERE component = ? AND version = ? AND {_ACTIVATION_SQL} "
                "ORDER BY id DESC LIMIT 1",
                (name, target),
            ).fetchone()
            below = row[0] if row is not None else current.active_version
            detail = f"from {current.active_version}{why}"
            return self._activate_in(db, name, target, below, "rollback", "immediate", actor, detail, None)

    def start_canary(
        self, name: str, version: str, percent: int, *, actor: str = "cli", auto_rollback: str | None = None
    ) -> Deployment:
        """Serve ``version`` to ``percent`` % of clients (1-100) next to the active version, or change the share
        of the canary already running. The active version and the rollback stack stay as they are."""
        validate_name(name)
        validate_version(version)
        if isinstance(percent, bool) or not isinstance(percent, int) or not 1 <= percent <= 100:
            raise InvalidName(f"invalid canary percent {percent!r}: use a whole number from 1 to 100")
        with self._transaction(write=True) as db:
            self._require_version(db, name, version)
            current = self._current(db, name)
            if version == current.active_version:
                raise Conflict(f"{name} {version} is already the active version; a canary needs another version")
            if current.canary_version not in (None, version):
                raise Conflict(
                    f"{name} already runs canary {current.canary_version}; promote or roll it back first"
                )
            db.execute(
                "UPDATE deployments SET canary_version = ?, canary_percent = ?, auto_rollback = ?, updated_at = ? "
                "WHERE component = ?",
                (version, percent, auto_rollback, _now(), name),
            )
            was = f"{current.canary_percent}% -> " if current.canary_version == version else ""
            self._log(db, name, version, current.active_version, "canary", "canary", actor, f"{was}{percent}%")
            return self._current(db, name)

    def promote(self, name: str, *, actor: str = "cli") -> Deployment:
        """Make the canary the active version (100 %); the formerly active version becomes the rollback target.
        The auto-rollback policy watching the canary keeps watching it."""
        validate_name(name)
        with self._transaction(write=True) as db:
            current = self._current(db, name)
            if current.canary_version is None:
                raise NotFound(f"{name} has no canary in progress to promote (active: {current.active_version})")
            detail = f"canary at {current.canary_percent}%"
            event = ("promote", "canary", actor, detail, current.auto_rollback)
            return self._activate_in(db, name, current.canary_version, current.active_version, *event)

    def record(
        self, name: str, version: str, *, action: str, strategy: str, actor: str, outcome: str, detail: str = ""
    ) -> HistoryEntry:
        """Add a history entry that changes nothing else, e.g. a deploy that failed its probe (the component
        must exist: a failed first deploy leaves no trace)."""
        validate_name(name)
        with self._transaction(write=True, bump=False) as db:
            self._component(db, name)
            previous = self._pushed(db, name)
            entry_id = self._log(db, name, version, previous, action, strategy, actor, detail, outcome=outcome)
            row = db.execute(f"SELECT {_HISTORY_COLS} FROM history WHERE id = ?", (entry_id,)).fetchone()
        return _history(row)

    # -- audit log -------------------------------------------------------------------------------------

    def audit(self, action: str, target: str, outcome: str, *, token_id: str, detail: str = "") -> None:
        """Append one admin action to the audit log (it does not bump the change token: nothing to apply)."""
        with self._transaction(write=True, bump=False) as db:
            db.execute(
                f"INSERT INTO audit ({_AUDIT_COLS[4:]}) VALUES (?, ?, ?, ?, ?, ?)",
                (token_id, action, target, outcome, detail, _now()),
            )

    def audit_log(self, limit: int = 100) -> list[AuditEntry]:
        """The newest ``limit`` audit entries, oldest first."""
        with self._transaction() as db:
            rows = db.execute(
                f"SELECT {_AUDIT_COLS} FROM (SELECT * FROM audit ORDER BY id DESC LIMIT ?) ORDER BY id", (limit,)
            ).fetchall()
        return [AuditEntry(r[0], r[1], r[2], r[3], r[4], r[5], datetime.fromisoformat(r[6])) for r in rows]

    # -- reads ---------------------------------------------------------------------------------------

    def get_component(self, name: str) -> ComponentInfo:
        validate_name(name)
        with self._transaction() as db:
            return self._component(db, name)

    def components(self) -> list[ComponentInfo]:
        with self._transaction() as db:
            rows = db.execute(_COMPONENT_SQL + " ORDER BY c.name").fetchall()
        return [_component_info(r) for r in rows]

    def versions(self, name: str) -> list[VersionInfo]:
        """All versions of ``name``, oldest first by SemVer precedence."""
        validate_name(name)
        with self._transaction() as db:
            self._component(db, name)
            rows = db.execute(f"SELECT {_VERSION_COLS} FROM versions WHERE component = ?", (name,)).fetchall()
        return sorted(map(_version, rows), key=lambda v: version_key(v.version))

    def get_version(self, name: str, version: str) -> VersionInfo:
        validate_name(name)
        validate_version(version)
        with self._transaction() as db:
            return self._require_version(db, name, version)

    def get_deployment(self, name: str) -> Deployment:
        """What serves ``name`` now (active version, canary split, watch policy); NotFound if nothing does."""
        validate_name(name)
        with self._transaction() as db:
            return self._current(db, name)

    def active(self) -> list[Deployment]:
        """Every active deployment with its route, blob and settings, in one query."""
        with self._transaction() as db:
            rows = db.execute(_DEPLOYMENT_SQL + " ORDER BY d.component").fetchall()
        return [_deployment(row) for row in rows]

    def history(self, name: str | None = None) -> list[HistoryEntry]:
        """Activations of ``name`` (or of all components), oldest first."""
        sql = f"SELECT {_HISTORY_COLS} FROM history"
        with self._transaction() as db:
            if name is None:
                rows = db.execute(sql + " ORDER BY id").fetchall()
            else:
                self._component(db, validate_name(name))
                rows = db.execute(sql + " WHERE component = ? ORDER BY id", (name,)).fetchall()
        return [_history(r) for r in rows]

    def change_token(self) -> int:
        """A number that differs after every committed change, by any process; cheap enough to poll."""
        try:
            rows = self._conn().execute("SELECT value FROM meta WHERE key = 'change'").fetchall()
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        return int(rows[0][0])

    def verify(self) -> list[str]:
        """Check database integrity and every referenced blob; return the problems found (none: ``[]``)."""
        problems: list[str] = []
        with self._transaction() as db:
            integrity = [r[0] for r in db.execute("PRAGMA integrity_check").fetchall()]
            if integrity != ["ok"]:
                problems += [f"database: {line}" for line in integrity]
            for table, rowid, parent, _ in db.execute("PRAGMA foreign_key_check").fetchall():
                problems.append(f"database: {table} row {rowid} references a missing {parent} row")
            shas = [r[0] for r in db.execute("SELECT DISTINCT sha256 FROM versions ORDER BY sha256").fetchall()]
        for sha in shas:
            try:
                self.read_blob(sha)
            except (NotFound, RegistryError) as exc:
                problems.append(str(exc))
        return problems

    # -- lifecycle -----------------------------------------------------------------------------------

    def close(self) -> None:
        """Close every thread's connection; later calls raise :class:`RegistryError`. Idempotent."""
        with self._lock:
            conns, self._conns, self._closed = self._conns, [], True
        for conn in conns:
            conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EmbeddedRegistry({str(self.root)!r})"

    # -- internals -----------------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and not self._closed:
            return conn
        with self._lock:
            if self._closed:
                raise RegistryError(f"registry {self.root} is closed")
            try:
                conn = sqlite3.connect(
                    self._db_path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
                )
                conn.execute("PRAGMA foreign_keys = ON")
                conn.execute("PRAGMA synchronous = FULL")
            except sqlite3.Error as exc:
                raise self._error(exc) from exc
            self._conns.append(conn)
        self._local.conn = conn
        return conn

    def _error(self, exc: sqlite3.Error) -> RegistryError:
        if "locked" in str(exc) or "busy" in str(exc):
            return RegistryError(
                f"registry database {self._db_path} stayed locked by another writer for over "
                f"{self._busy_timeout:g}s; retry, or look for a stuck airssys-web process"
            )
        return RegistryError(f"registry database {self._db_path} is unusable: {exc}")

    @contextmanager
    def _transaction(self, *, write: bool = False, bump: bool = True) -> Iterator[sqlite3.Connection]:
        """One transaction; writes take the write lock up front (so the busy timeout applies) and bump
        the change counter. Errors from the body roll everything back."""
        db = self._conn()
        try:
            db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield db
                if write and bump:
                    db.execute("UPDATE meta SET value = value + 1 WHERE key = 'change'")
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def _migrate(self) -> None:
        try:
            mode = self._conn().execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        if mode != "wal":
            raise RegistryError(f"registry database {self._db_path} cannot use WAL mode (got {mode!r})")
        with self._transaction(write=True, bump=False) as db:
            (current,) = db.execute("PRAGMA user_version").fetchone()
            if current > SCHEMA_VERSION:
                raise RegistryError(
                    f"registry {self.root} has schema {current}, newer than this airssys-web supports "
                    f"({SCHEMA_VERSION}); upgrade airssys-web"
                )
            for step in _MIGRATIONS[current:]:
                for statement in step:
                    db.execute(statement)
            if current != SCHEMA_VERSION:
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _claim_route(self, db: sqlite3.Connection, name: str, route: str, allow_nested: bool) -> None:
        owners = db.execute("SELECT name, route FROM components WHERE name != ? ORDER BY name", (name,)).fetchall()
        route_overlap(name, route, owners, allow_nested=allow_nested)

    def _component(self, db: sqlite3.Connection, name: str) -> ComponentInfo:
        row = db.execute(_COMPONENT_SQL + " WHERE c.name = ?", (name,)).fetchone()
        if row is None:
            raise NotFound(f"no component named {name!r}; deploy it first")
        return _component_info(row)

    def _require_version(self, db: sqlite3.Connection, name: str, version: str) -> VersionInfo:
        sql = f"SELECT {_VERSION_COLS} FROM versions WHERE component = ? AND version = ?"
        row = db.execute(sql, (name, version)).fetchone()
        if row is None:
            self._component(db, name)
            raise NotFound(f"component {name!r} has no version {version}")
        return _version(row)

    def _current(self, db: sqlite3.Connection, name: str) -> Deployment:
        row = db.execute(_DEPLOYMENT_SQL + " WHERE d.component = ?", (name,)).fetchone()
        if row is None:
            self._component(db, name)
            raise NotFound(f"component {name!r} has no active version")
        return _deployment(row)

    def _pushed(self, db: sqlite3.Connection, name: str) -> str | None:
        """The rollback target after a plain activation: the version active until now."""
        row = db.execute("SELECT active_version FROM deployments WHERE component = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def _activate_in(
        self,
        db: sqlite3.Connection,
        name: str,
        version: str,
        previous: str | None,
        action: str,
        strategy: str,
        actor: str,
        detail: str,
        auto_rollback: str | None,
    ) -> Deployment:
        """Point ``name`` at ``version`` with rollback target ``previous`` (ending any canary), set the watch
        policy and log the event. Re-activating the active version keeps its rollback target."""
        row = db.execute(
            "SELECT active_version, previous_version, canary_version FROM deployments WHERE component = ?", (name,)
        ).fetchone()
        if row is not None and row[0] == version:
            previous, detail = row[1], detail or "already active"
        if row is not None and row[2] is not None and action != "promote":
            detail = "; ".join(filter(None, [detail, f"canary {row[2]} ended"]))
        db.execute(
            "INSERT INTO deployments (component, active_version, previous_version, auto_rollback, updated_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (component) DO UPDATE SET "
            "active_version = excluded.active_version, previous_version = excluded.previous_version, "
            "canary_version = NULL, canary_percent = 0, auto_rollback = excluded.auto_rollback, "
            "updated_at = excluded.updated_at",
            (name, version, previous, auto_rollback, _now()),
        )
        self._log(db, name, version, previous, action, strategy, actor, detail)
        return self._current(db, name)

    def _log(
        self,
        db: sqlite3.Connection,
        name: str,
        version: str,
        previous: str | None,
        action: str,
        strategy: str,
        actor: str,
        detail: str,
        *,
        outcome: str = "ok",
    ) -> int:
        cur = db.execute(
            f"INSERT INTO history ({_HISTORY_COLS[4:]}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (name, version, previous, action, strategy, actor, outcome, detail, _now()),
        )
        return int(cur.lastrowid or 0)
