"""The Redis registry's rows and transactions: :class:`Tx`, one optimistic transaction's view of the registry (reads
at once on the watching connection, overlaid with the writes it queued), and the conversions between the JSON rows
kept in Redis (key layout: :mod:`.redis_store`) and the registry's records.

Rows: a component ``{route, created_at, nested, kind, stages}``, a version ``{sha256, settings, created_at}``, a
deployment ``{active_version, previous_version, canary_version, canary_percent, auto_rollback, updated_at}``, and a
history entry ``{component, version, previous_version, action, strategy, actor, outcome, detail, stages,
stages_before, undoes}`` (its id and time are the server's: :data:`.redis_store.APPEND_SCRIPT`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from redis.client import Pipeline

from .records import ACTIVATIONS, ComponentInfo, Deployment, HistoryEntry, VersionInfo
from .redis_store import Keys, as_bytes, dumps, parse_entry

__all__ = ["Row", "Tx", "component_info", "default_artifacts_dir", "deployment", "describe", "history_entry",
           "last_change", "version_info"]

Row = dict[str, Any]


def default_artifacts_dir() -> Path:
    """Where a host keeps compiled artifacts of a Redis registry's blobs: ``$AIRSSYS_WEB_CACHE/artifacts``, else
    ``$XDG_CACHE_HOME/airssys-web/artifacts`` (``~/.cache`` by default). Artifacts are keyed by blob and engine, so
    every registry on the machine can share the directory."""
    env = os.environ.get("AIRSSYS_WEB_CACHE")
    if env:
        return Path(env) / "artifacts"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "airssys-web" / "artifacts"


class Tx:
    """One transaction's view: reads go to Redis at once (on the watching connection) and are overlaid with the
    writes this transaction has queued, which :meth:`RedisRegistry._change` sends in one ``MULTI``."""

    def __init__(self, pipe: Pipeline, keys: Keys) -> None:
        self.pipe, self.keys = pipe, keys
        self._rows: dict[tuple[str, str], Row | None] = {}
        self.writes: dict[tuple[str, str], Row] = {}
        self.logs: list[tuple[str, str]] = []  # (component, JSON body)

    def _get(self, key: str, field: str) -> Row | None:
        if (key, field) not in self._rows:
            raw = self.pipe.hget(key, field)
            self._rows[key, field] = None if raw is None else dict(json.loads(raw))
        return self._rows[key, field]

    def _set(self, key: str, field: str, row: Row) -> None:
        self._rows[key, field] = self.writes[key, field] = row

    def component(self, name: str) -> Row | None:
        return self._get(self.keys.components, name)

    def set_component(self, name: str, row: Row) -> None:
        self._set(self.keys.components, name, row)

    def all_components(self) -> dict[str, Row]:
        """Every component's row, by name."""
        stored = {as_bytes(k).decode(): dict(json.loads(v)) for k, v in self.pipe.hgetall(self.keys.components).items()}
        for (key, name), row in self.writes.items():
            if key == self.keys.components:
                stored[name] = row
        return stored

    def routes(self) -> list[tuple[str, str]]:
        """(component, route) of every component that owns a route, by name."""
        return sorted((n, c["route"]) for n, c in self.all_components().items() if c["route"] is not None)

    def active_names(self) -> set[str]:
        """The components with an active version."""
        stored = {as_bytes(k).decode() for k in self.pipe.hkeys(self.keys.deployments)}
        return stored | {name for key, name in self.writes if key == self.keys.deployments}

    def version(self, name: str, version: str) -> Row | None:
        return self._get(self.keys.versions(name), version)

    def set_version(self, name: str, version: str, row: Row) -> None:
        self._set(self.keys.versions(name), version, row)

    def deployment(self, name: str) -> Row | None:
        return self._get(self.keys.deployments, name)

    def set_deployment(self, name: str, row: Row) -> None:
        self._set(self.keys.deployments, name, row)

    def history(self, name: str) -> list[bytes]:
        return [as_bytes(raw) for raw in self.pipe.lrange(self.keys.history(name), 0, -1)]

    def log(self, name: str, version: str, previous: str | None, action: str, strategy: str, actor: str,
            detail: str, outcome: str = "ok", *, stages: Sequence[str] | None = None,
            stages_before: Sequence[str] | None = None, undoes: int | None = None) -> None:
        self.logs.append((name, dumps({
            "component": name, "version": version, "previous_version": previous, "action": action,
            "strategy": strategy, "actor": actor, "outcome": outcome, "detail": detail,
            "stages": None if stages is None else list(stages),
            "stages_before": None if stages_before is None else list(stages_before), "undoes": undoes})))


def component_info(name: str, comp: Row, dep: Row | None) -> ComponentInfo:
    return ComponentInfo(name, comp["route"], datetime.fromisoformat(comp["created_at"]),
                         dep["active_version"] if dep else None, bool(comp["nested"]), comp.get("kind", "route"),
                         tuple(comp.get("stages", ())))


def version_info(name: str, version: str, row: Row) -> VersionInfo:
    return VersionInfo(name, version, row["sha256"], row["settings"], datetime.fromisoformat(row["created_at"]))


def deployment(name: str, comp: Row, dep: Row, active: Row, canary: Row | None) -> Deployment:
    return Deployment(name, comp["route"], dep["active_version"], active["sha256"], active["settings"],
                      dep["previous_version"], datetime.fromisoformat(dep["updated_at"]), dep["canary_version"],
                      int(dep["canary_percent"]), canary["sha256"] if canary else None,
                      canary["settings"] if canary else None, dep["auto_rollback"], bool(comp["nested"]),
                      comp.get("kind", "route"), tuple(comp.get("stages", ())))


def history_entry(raw: bytes) -> HistoryEntry:
    entry_id, at, f = parse_entry(raw)
    stages = f.get("stages")
    return HistoryEntry(entry_id, f["component"], f["version"], f["previous_version"], f["action"], f["strategy"],
                        f["actor"], f["outcome"], f["detail"], at, None if stages is None else tuple(stages))


def describe(stages: Sequence[str]) -> str:
    return ", ".join(stages) if stages else "(none)"


def last_change(tx: Tx, name: str, *, versions: bool) -> Row | None:
    """The newest change of ``name`` not undone yet (its stored fields and ``id``): what a plain rollback undoes.
    Undos are not changes themselves: they cancel what they undid. ``versions``: activations only."""
    cancelled: set[int] = set()
    for raw in reversed(tx.history(name)):
        entry_id, _, f = parse_entry(raw)
        if f["outcome"] != "ok" or not (f["action"] in ACTIVATIONS or f["action"] == "pipeline"):
            continue
        if f.get("undoes") is not None:
            cancelled.add(int(f["undoes"]))
        elif entry_id not in cancelled and not (versions and f["action"] == "pipeline"):
            return {**f, "id": entry_id}
    return None
