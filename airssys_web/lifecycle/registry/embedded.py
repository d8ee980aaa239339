"""The embedded registry: a local directory that implements :class:`~.base.Registry` with its blob store and audit log.

The CLI writes it and a running server (another process) polls it, so it is a directory rather than in-memory
state::

    <root>/blobs/<sha[:2]>/<sha>.wasm   uploaded components (:mod:`.blobs`), named by SHA-256, written once
    <root>/artifacts/                   compile cache, owned by ``airssys_web.runtime.artifacts``
    <root>/registry.db                  SQLite in WAL mode (:mod:`.sqlite`): meta, components, versions,
                                        deployments, history, audit
    <root>/secrets/, <root>/kv.db       secret values and guest KV data (``airssys_web.capabilities``)
    <root>/outcomes.db                  auto-rollback counters of every process (:mod:`.counters`)

Crash safety: a blob is durable before any row names it, and every change is one transaction, so a crash leaves the
old or the new state, never a mix; at worst an unreferenced blob stays behind, which is harmless. Calls are safe
from any thread; :meth:`~EmbeddedRegistry.close` must come last.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from airssys_web.capabilities.kv import SqliteKVStore
from airssys_web.capabilities.secrets import SecretStore
from airssys_web.errors import (
    Conflict,
    InvalidName,
    NotFound,
    RegistryError,
    VersionExists,
)

from ..settings import VersionSettings
from .blobs import DirectoryBlobStore
from .counters import SqliteOutcomes
from .records import ACTIVATIONS, ComponentInfo, Deployment, HistoryEntry, VersionInfo
from .rules import (
    check_kind,
    check_new_version,
    check_pipeline,
    route_overlap,
    validate_name,
    validate_route,
    validate_version,
    version_key,
)
from .sqlite import BUMP_SQL, SCHEMA_VERSION, Database, SqliteAuditLog, now

__all__ = ["SCHEMA_VERSION", "EmbeddedRegistry"]

_DEPLOYMENT_SQL = """
    SELECT d.component, c.route, d.active_version, v.sha256, v.settings_json, d.previous_version, d.updated_at,
           d.canary_version, d.canary_percent, cv.sha256, cv.settings_json, d.auto_rollback, c.nested, c.kind,
           c.stages
    FROM deployments d
    JOIN components c ON c.name = d.component
    JOIN versions v ON v.component = d.component AND v.version = d.active_version
    LEFT JOIN versions cv ON cv.component = d.component AND cv.version = d.canary_version"""


_VERSION_COLS = "component, version, sha256, settings_json, created_at"
_HISTORY_COLS = "id, component, version, previous_version, action, strategy, actor, outcome, detail, at, stages"
_ACTIVATION_SQL = f"action IN ({', '.join(repr(a) for a in ACTIVATIONS)}) AND outcome = 'ok'"
# The changes a plain rollback can undo, newest first: activations and pipeline changes (and the undos themselves,
# which cancel what they undid).
_CHANGES_SQL = ("SELECT id, action, stages_before, undoes FROM history WHERE component = ? AND outcome = 'ok' AND "
                f"(action IN ({', '.join(repr(a) for a in ACTIVATIONS)}) OR action = 'pipeline') ORDER BY id DESC")


def _names(text: str | None) -> tuple[str, ...]:
    return tuple(json.loads(text)) if text else ()


def _describe(stages: Sequence[str]) -> str:
    return ", ".join(stages) if stages else "(none)"


def _deployment(r: tuple[Any, ...]) -> Deployment:
    return Deployment(r[0], r[1], r[2], r[3], r[4], r[5], datetime.fromisoformat(r[6]), r[7], r[8], r[9], r[10], r[11],
                      bool(r[12]), r[13], _names(r[14]))


_COMPONENT_SQL = ("SELECT c.name, c.route, c.created_at, d.active_version, c.nested, c.kind, c.stages "
                  "FROM components c LEFT JOIN deployments d ON d.component = c.name")


def _component_info(r: tuple[Any, ...]) -> ComponentInfo:
    return ComponentInfo(r[0], r[1], datetime.fromisoformat(r[2]), r[3], bool(r[4]), r[5], _names(r[6]))


def _history(r: tuple[Any, ...]) -> HistoryEntry:
    return HistoryEntry(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], datetime.fromisoformat(r[9]),
                        None if r[10] is None else _names(r[10]))


def _version(r: tuple[Any, ...]) -> VersionInfo:
    return VersionInfo(r[0], r[1], r[2], r[3], datetime.fromisoformat(r[4]))


class EmbeddedRegistry:
    """A registry in a local directory; see the module docstring for its layout and :mod:`.base` for the rules."""

    blobs: DirectoryBlobStore
    audit: SqliteAuditLog

    def __init__(self, root: str | Path, *, busy_timeout: float = 10.0) -> None:
        self.root = Path(root)
        try:
            for sub in (self.root, self.artifacts_dir):
                sub.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RegistryError(f"cannot create registry directory {self.root}: {exc}") from exc
        self.blobs = DirectoryBlobStore(self.root / "blobs")
        self._db = Database(self.root / "registry.db", busy_timeout=busy_timeout)
        self.audit = SqliteAuditLog(self._db)
        self.secrets = SecretStore(self.root / "secrets")
        self.outcomes = SqliteOutcomes(self.root / "outcomes.db")

    @property
    def artifacts_dir(self) -> Path:
        return self.root / "artifacts"

    def kv_store(self) -> SqliteKVStore:
        """A new handle on the components' KV data, ``<root>/kv.db`` (the caller closes it)."""
        return SqliteKVStore(self.root / "kv.db")

    # -- writes --------------------------------------------------------------------------------------

    def deploy(self, name: str, version: str, *, sha256: str, route: str | None = None,
               settings: VersionSettings | None = None, actor: str = "cli", strategy: str = "immediate",
               auto_rollback: str | None = None, allow_nested: bool = False, kind: str = "route") -> Deployment:
        """Add ``version`` (if new), claim or move the route, and make it active, in one transaction.

        ``route`` is required on a component's first deploy; later it may be omitted (keep the route) or
        changed (if no other component owns the new one). A route nested under or containing another component's
        route needs ``allow_nested`` (see :func:`~.base.route_overlap`). Re-deploying an identical version is a
        no-op apart from its history entry; the same version with other content raises :class:`VersionExists`.
        A canary in progress ends: the deployed version serves everyone. A ``middleware`` component (``kind``) has no
        route, and a component keeps the kind of its first version.
        """
        settings_json = check_new_version(name, version, sha256, route, settings, self.blobs.size)
        with self._db.transaction(write=True) as db:
            detail = self._add_version_in(db, name, version, sha256, route, settings_json, allow_nested, kind)
            event = ("deploy", strategy, actor, detail, auto_rollback)
            return self._activate_in(db, name, version, self._pushed(db, name), *event)

    def add_version(self, name: str, version: str, *, sha256: str, route: str | None = None,
                    settings: VersionSettings | None = None, allow_nested: bool = False,
                    kind: str = "route") -> VersionInfo:
        """Record ``version`` (and the component, on first use) without activating it, e.g. before a canary."""
        settings_json = check_new_version(name, version, sha256, route, settings, self.blobs.size)
        with self._db.transaction(write=True) as db:
            self._add_version_in(db, name, version, sha256, route, settings_json, allow_nested, kind)
            return self._require_version(db, name, version)

    def _add_version_in(self, db: sqlite3.Connection, name: str, version: str, sha256: str, route: str | None,
                        settings_json: str, allow_nested: bool, kind: str) -> str:
        """Insert the component (claiming ``route``) and the version if new; return a history detail.
        The arguments were checked by :func:`~.rules.check_new_version` before the transaction began."""
        created = now()
        row = db.execute("SELECT route, kind FROM components WHERE name = ?", (name,)).fetchone()
        check_kind(name, kind, route, None if row is None else row[1])
        detail = ""
        if row is None:
            if route is None and kind == "route":
                raise InvalidName(f"component {name!r} is new: give it a route, e.g. --route /{name}")
            if route is not None:
                self._claim_route(db, name, route, allow_nested)
            db.execute("INSERT INTO components (name, route, created_at, nested, kind) VALUES (?, ?, ?, ?, ?)",
                       (name, route, created, allow_nested, kind))
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
                (name, version, sha256, settings_json, created),
            )
        elif tuple(old) != (sha256, settings_json):
            what = f"sha256 {old[0][:12]}..." if old[0] != sha256 else f"settings {old[1]}"
            raise VersionExists(
                f"{name} {version} already exists with different content ({what}); "
                "versions are immutable: deploy a new version"
            )
        return detail

    def check_route(self, name: str, route: str, *, allow_nested: bool = False) -> None:
        """Raise :class:`RouteConflict` now if ``name`` could not claim ``route`` (a cheap check before compiling;
        the claim itself checks again in its transaction). Its own current route is always fine."""
        validate_name(name)
        validate_route(route)
        with self._db.transaction() as db:
            row = db.execute("SELECT route FROM components WHERE name = ?", (name,)).fetchone()
            if row is None or row[0] != route:
                self._claim_route(db, name, route, allow_nested)

    def activate(self, name: str, version: str, *, actor: str = "cli", action: str = "activate",
                 strategy: str = "immediate", auto_rollback: str | None = None) -> Deployment:
        """Make an existing version active; the formerly active one becomes the rollback target."""
        validate_name(name)
        validate_version(version)
        with self._db.transaction(write=True) as db:
            self._require_version(db, name, version)
            event = (action, strategy, actor, "", auto_rollback)
            return self._activate_in(db, name, version, self._pushed(db, name), *event)

    def rollback(self, name: str, to_version: str | None = None, *, actor: str = "cli", reason: str = "",
                 expect: str | None = None) -> Deployment:
        """Undo the last change: abort a canary in progress (0 %), else undo the newest change not yet undone -
        a pipeline change restores the pipeline before it, an activation returns to the version active before
        the current one. ``to_version`` names the version to activate instead (a canary ends too).

        ``expect`` guards against races: when given, the newest version (the canary, else the active one) must
        still be ``expect`` or :class:`Conflict` is raised and nothing changes; the rollback is then of versions
        (what auto-rollback asks), even after a later pipeline change. ``reason`` goes to the history.
        """
        validate_name(name)
        if to_version is not None:
            validate_version(to_version)
        with self._db.transaction(write=True) as db:
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
                    (now(), name),
                )
                started = db.execute("SELECT max(id) FROM history WHERE component = ? AND action = 'canary'",
                                     (name,)).fetchone()[0]
                detail = f"canary {current.canary_version} aborted (0%){why}"
                self._log(db, name, current.active_version, current.previous_version, "rollback", "canary", actor,
                          detail, undoes=started)
                return self._current(db, name)
            undone = None if to_version is not None else self._last_change(db, name, versions=expect is not None)
            if undone is not None and undone[1] == "pipeline":
                restored, replaced = _names(undone[2]), current.stages
                db.execute("UPDATE components SET stages = ? WHERE name = ?", (json.dumps(list(restored)), name))
                detail = f"pipeline {_describe(replaced)} -> {_describe(restored)}{why}"
                self._log(db, name, current.active_version, current.previous_version, "rollback", "pipeline", actor,
                          detail, stages=restored, stages_before=replaced, undoes=undone[0])
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
                "AND strategy != 'pipeline' ORDER BY id DESC LIMIT 1",
                (name, target),
            ).fetchone()
            below = row[0] if row is not None else current.active_version
            detail = f"from {current.active_version}{why}"
            return self._activate_in(db, name, target, below, "rollback", "immediate", actor, detail, None,
                                     undoes=None if undone is None else undone[0])

    def _last_change(self, db: sqlite3.Connection, name: str, *, versions: bool) -> tuple[Any, ...] | None:
        """The newest change of ``name`` not undone yet (id, action, stages_before, undoes): a rollback undoes it.
        Undos are not changes themselves: they cancel what they undid. ``versions``: activations only."""
        cancelled: set[int] = set()
        for row in db.execute(_CHANGES_SQL, (name,)):
            if row[3] is not None:
                cancelled.add(row[3])
            elif row[0] not in cancelled and not (versions and row[1] == "pipeline"):
                return tuple(row)
        return None

    def set_pipeline(self, name: str, stages: Sequence[str], *, actor: str = "cli") -> Deployment:
        """Put ``stages`` (middleware components, the first sees a request first) in front of route component
        ``name``, replacing its pipeline (``[]`` clears it), in one transaction recorded in its history (a
        rollback undoes it). Unknown components, a route component as a stage, a stage without an active version,
        a stage twice or a middleware as ``name`` are refused and change nothing. Setting the same pipeline again
        changes nothing and records nothing."""
        with self._db.transaction(write=True, bump=False) as db:
            kinds = dict(db.execute("SELECT name, kind FROM components").fetchall())
            active = {r[0] for r in db.execute("SELECT component FROM deployments").fetchall()}
            stages = check_pipeline(name, stages, kinds, active)
            current = self._current(db, name)
            if stages == current.stages:
                return current
            db.execute("UPDATE components SET stages = ? WHERE name = ?", (json.dumps(list(stages)), name))
            db.execute(BUMP_SQL)
            detail = f"{_describe(current.stages)} -> {_describe(stages)}"
            self._log(db, name, current.active_version, current.previous_version, "pipeline", "pipeline", actor,
                      detail, stages=stages, stages_before=current.stages)
            return self._current(db, name)

    def pipelines_using(self, stage: str) -> list[str]:
        """The route components whose pipeline includes ``stage``."""
        with self._db.transaction() as db:
            rows = db.execute("SELECT name, stages FROM components WHERE stages != '[]' ORDER BY name").fetchall()
        return [r[0] for r in rows if stage in _names(r[1])]

    def start_canary(self, name: str, version: str, percent: int, *, actor: str = "cli",
                     auto_rollback: str | None = None) -> Deployment:
        """Serve ``version`` to ``percent`` % of clients (1-100) next to the active version, or change the share
        of the canary already running. The active version and the rollback stack stay as they are."""
        validate_name(name)
        validate_version(version)
        if isinstance(percent, bool) or not isinstance(percent, int) or not 1 <= percent <= 100:
            raise InvalidName(f"invalid canary percent {percent!r}: use a whole number from 1 to 100")
        with self._db.transaction(write=True) as db:
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
                (version, percent, auto_rollback, now(), name),
            )
            was = f"{current.canary_percent}% -> " if current.canary_version == version else ""
            self._log(db, name, version, current.active_version, "canary", "canary", actor, f"{was}{percent}%")
            return self._current(db, name)

    def promote(self, name: str, *, actor: str = "cli") -> Deployment:
        """Make the canary the active version (100 %); the formerly active version becomes the rollback target.
        The auto-rollback policy watching the canary keeps watching it."""
        validate_name(name)
        with self._db.transaction(write=True) as db:
            current = self._current(db, name)
            if current.canary_version is None:
                raise NotFound(f"{name} has no canary in progress to promote (active: {current.active_version})")
            detail = f"canary at {current.canary_percent}%"
            event = ("promote", "canary", actor, detail, current.auto_rollback)
            return self._activate_in(db, name, current.canary_version, current.active_version, *event)

    def record(self, name: str, version: str, *, action: str, strategy: str, actor: str, outcome: str,
               detail: str = "") -> HistoryEntry:
        """Add a history entry that changes nothing else, e.g. a deploy that failed its probe (the component
        must exist: a failed first deploy leaves no trace)."""
        validate_name(name)
        with self._db.transaction(write=True, bump=False) as db:
            self._component(db, name)
            previous = self._pushed(db, name)
            entry_id = self._log(db, name, version, previous, action, strategy, actor, detail, outcome=outcome)
            row = db.execute(f"SELECT {_HISTORY_COLS} FROM history WHERE id = ?", (entry_id,)).fetchone()
        return _history(row)

    # -- reads ---------------------------------------------------------------------------------------

    def get_component(self, name: str) -> ComponentInfo:
        validate_name(name)
        with self._db.transaction() as db:
            return self._component(db, name)

    def components(self) -> list[ComponentInfo]:
        with self._db.transaction() as db:
            rows = db.execute(_COMPONENT_SQL + " ORDER BY c.name").fetchall()
        return [_component_info(r) for r in rows]

    def versions(self, name: str) -> list[VersionInfo]:
        """All versions of ``name``, oldest first by SemVer precedence."""
        validate_name(name)
        with self._db.transaction() as db:
            self._component(db, name)
            rows = db.execute(f"SELECT {_VERSION_COLS} FROM versions WHERE component = ?", (name,)).fetchall()
        return sorted(map(_version, rows), key=lambda v: version_key(v.version))

    def get_version(self, name: str, version: str) -> VersionInfo:
        validate_name(name)
        validate_version(version)
        with self._db.transaction() as db:
            return self._require_version(db, name, version)

    def get_deployment(self, name: str) -> Deployment:
        """What serves ``name`` now (active version, canary split, watch policy); NotFound if nothing does."""
        validate_name(name)
        with self._db.transaction() as db:
            return self._current(db, name)

    def active(self) -> list[Deployment]:
        """Every active deployment with its route, blob and settings, in one query."""
        with self._db.transaction() as db:
            rows = db.execute(_DEPLOYMENT_SQL + " ORDER BY d.component").fetchall()
        return [_deployment(row) for row in rows]

    def history(self, name: str | None = None) -> list[HistoryEntry]:
        """Activations of ``name`` (or of all components), oldest first."""
        sql = f"SELECT {_HISTORY_COLS} FROM history"
        with self._db.transaction() as db:
            if name is None:
                rows = db.execute(sql + " ORDER BY id").fetchall()
            else:
                self._component(db, validate_name(name))
                rows = db.execute(sql + " WHERE component = ? ORDER BY id", (name,)).fetchall()
        return [_history(r) for r in rows]

    def change_token(self) -> int:
        """A number that differs after every committed change, by any process; cheap enough to poll."""
        return self._db.change_token()

    def verify(self) -> list[str]:
        """Check database integrity and every referenced blob; return the problems found (none: ``[]``)."""
        problems: list[str] = []
        with self._db.transaction() as db:
            integrity = [r[0] for r in db.execute("PRAGMA integrity_check").fetchall()]
            if integrity != ["ok"]:
                problems += [f"database: {line}" for line in integrity]
            for table, rowid, parent, _ in db.execute("PRAGMA foreign_key_check").fetchall():
                problems.append(f"database: {table} row {rowid} references a missing {parent} row")
            shas = [r[0] for r in db.execute("SELECT DISTINCT sha256 FROM versions ORDER BY sha256").fetchall()]
        for sha in shas:
            try:
                self.blobs.read(sha)
            except (NotFound, RegistryError) as exc:
                problems.append(str(exc))
        return problems

    # -- lifecycle -----------------------------------------------------------------------------------

    def close(self) -> None:
        """Close every thread's connection; later calls raise :class:`RegistryError`. Idempotent."""
        self._db.close()
        self.outcomes.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EmbeddedRegistry({str(self.root)!r})"

    # -- internals -----------------------------------------------------------------------------------

    def _claim_route(self, db: sqlite3.Connection, name: str, route: str, allow_nested: bool) -> None:
        owners = db.execute("SELECT name, route FROM components WHERE name != ? AND route IS NOT NULL ORDER BY name",
                            (name,)).fetchall()
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

    def _activate_in(self, db: sqlite3.Connection, name: str, version: str, previous: str | None, action: str,
                     strategy: str, actor: str, detail: str, auto_rollback: str | None, *,
                     undoes: int | None = None) -> Deployment:
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
            (name, version, previous, auto_rollback, now()),
        )
        self._log(db, name, version, previous, action, strategy, actor, detail, undoes=undoes)
        return self._current(db, name)

    def _log(self, db: sqlite3.Connection, name: str, version: str, previous: str | None, action: str, strategy: str,
             actor: str, detail: str, *, outcome: str = "ok", stages: Sequence[str] | None = None,
             stages_before: Sequence[str] | None = None, undoes: int | None = None) -> int:
        cur = db.execute(
            f"INSERT INTO history ({_HISTORY_COLS[4:]}, stages_before, undoes) VALUES ({', '.join('?' * 12)})",
            (name, version, previous, action, strategy, actor, outcome, detail, now(),
             None if stages is None else json.dumps(list(stages)),
             None if stages_before is None else json.dumps(list(stages_before)), undoes),
        )
        return int(cur.lastrowid or 0)
