"""The records a registry returns, and their one JSON form each.

Every record is an immutable value. ``to_json`` is the only JSON shape of that concept: the CLI's ``--json``, the
admin API's responses and the remote client (``from_json``) all use it. The rules of the shape:

* keys are the record's field names, except that a component's name is ``"component"`` everywhere;
* settings appear as their stored JSON object (``"settings"``, ``"canary_settings"``; see
  :mod:`airssys_web.lifecycle.settings`), never as text; secrets in it are references, never values;
* times are ISO 8601 with their UTC offset.

``from_json`` accepts what ``to_json`` wrote (extra keys are ignored, so a newer server may add some); a missing or
mistyped key raises ``KeyError``/``TypeError``/``ValueError``, which the remote client reports as a bad answer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..settings import VersionSettings

__all__ = ["ACTIVATIONS", "KINDS", "AuditEntry", "ComponentInfo", "Deployment", "HistoryEntry", "VersionInfo"]

#: History actions that make a version active (the rollback stack is rebuilt from these only).
ACTIVATIONS = ("deploy", "activate", "rollback", "promote")
#: What a component is: a ``route`` component serves a route; a ``middleware`` stage runs in front of routes.
KINDS = ("route", "middleware")


def _stages(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"stages must be a list of component names, not {value!r}")
    return tuple(value)


def _kind(value: Any) -> str:
    if value not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {value!r}")
    return str(value)


def _settings_object(text: str | None) -> dict[str, Any] | None:
    return None if text is None else dict(json.loads(text))


def _settings_text(data: Mapping[str, Any] | None) -> str | None:
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise TypeError(f"settings must be a JSON object, not {type(data).__name__}")
    return json.dumps(dict(data), sort_keys=True, separators=(",", ":"), allow_nan=False)


def _time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise TypeError(f"a time must be ISO 8601 text, not {type(value).__name__}")
    return datetime.fromisoformat(value)


@dataclass(frozen=True, slots=True)
class ComponentInfo:
    """A component: its name, the route it owns, and its active version (``None`` before the first activation).

    A ``middleware`` component owns no route (``route`` is None); a route component may have ``stages``, the
    middleware components in front of it (the first sees a request first)."""

    name: str
    route: str | None
    created_at: datetime
    active_version: str | None
    #: The route was claimed with ``allow_nested``: it may lie under or above another component's route.
    nested: bool = False
    kind: str = "route"
    stages: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"component": self.name, "kind": self.kind, "route": self.route, "nested": self.nested,
                "stages": list(self.stages), "active_version": self.active_version,
                "created_at": self.created_at.isoformat()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ComponentInfo:
        route = data["route"]
        return cls(str(data["component"]), None if route is None else str(route), _time(data["created_at"]),
                   data["active_version"], bool(data["nested"]), _kind(data.get("kind", "route")),
                   _stages(data.get("stages", [])))


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """One immutable version of a component: its blob and the settings it was deployed with."""

    component: str
    version: str
    sha256: str
    #: The settings exactly as stored (canonical JSON text; :attr:`settings` parses them).
    settings_json: str
    created_at: datetime

    @property
    def settings(self) -> VersionSettings:
        """The grants, limits and needs the version was deployed with (parsed on each access, so a stored row that
        no longer parses fails only where it is read)."""
        return VersionSettings.from_json(json.loads(self.settings_json))

    def to_json(self) -> dict[str, Any]:
        return {"component": self.component, "version": self.version, "sha256": self.sha256,
                "settings": _settings_object(self.settings_json), "created_at": self.created_at.isoformat()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VersionInfo:
        return cls(str(data["component"]), str(data["version"]), str(data["sha256"]),
                   _settings_text(data["settings"]) or "{}", _time(data["created_at"]))


@dataclass(frozen=True, slots=True)
class Deployment:
    """What serves a component now: everything a server needs to build its route table. A middleware stage has
    no route; a route component's ``stages`` are the middleware components in front of it, first to last."""

    component: str
    route: str | None
    active_version: str
    sha256: str
    settings_json: str
    previous_version: str | None
    updated_at: datetime
    #: A canary in progress: ``canary_percent`` % of clients are served ``canary_version`` (with its own blob
    #: and settings); ``None``/0 when there is none.
    canary_version: str | None = None
    canary_percent: int = 0
    canary_sha256: str | None = None
    canary_settings_json: str | None = None
    #: The auto-rollback policy (``error-rate=5%,window=30s,min-requests=20``) watching the newest version
    #: (the canary if there is one, else the active version); ``None`` when nothing is watched.
    auto_rollback: str | None = None
    #: The route was claimed with ``allow_nested`` (see :class:`ComponentInfo`).
    nested: bool = False
    kind: str = "route"
    stages: tuple[str, ...] = ()

    @property
    def settings(self) -> VersionSettings:
        """The active version's settings."""
        return VersionSettings.from_json(json.loads(self.settings_json))

    @property
    def canary_settings(self) -> VersionSettings | None:
        """The canary's settings while a canary runs."""
        text = self.canary_settings_json
        return None if text is None else VersionSettings.from_json(json.loads(text))

    @property
    def newest_version(self) -> str:
        """The version the last change introduced: the canary while one runs, else the active version."""
        return self.canary_version or self.active_version

    def to_json(self) -> dict[str, Any]:
        return {"component": self.component, "kind": self.kind, "route": self.route, "nested": self.nested,
                "stages": list(self.stages), "active_version": self.active_version, "sha256": self.sha256,
                "settings": _settings_object(self.settings_json), "previous_version": self.previous_version,
                "canary_version": self.canary_version, "canary_percent": self.canary_percent,
                "canary_sha256": self.canary_sha256, "canary_settings": _settings_object(self.canary_settings_json),
                "auto_rollback": self.auto_rollback, "updated_at": self.updated_at.isoformat()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Deployment:
        route = data["route"]
        return cls(str(data["component"]), None if route is None else str(route), str(data["active_version"]),
                   str(data["sha256"]), _settings_text(data["settings"]) or "{}", data["previous_version"],
                   _time(data["updated_at"]), data["canary_version"], int(data["canary_percent"]),
                   data["canary_sha256"], _settings_text(data["canary_settings"]), data["auto_rollback"],
                   bool(data["nested"]), _kind(data.get("kind", "route")), _stages(data.get("stages", [])))


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One change of a component; ``previous_version`` is where a rollback from ``version`` would go.

    A change of the pipeline in front of a route (action ``pipeline``, or a ``rollback`` that undid one) carries
    the ``stages`` it left in place; other entries have ``None``."""

    id: int
    component: str
    version: str
    previous_version: str | None
    action: str
    strategy: str
    actor: str
    outcome: str
    detail: str
    at: datetime
    stages: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "component": self.component, "version": self.version,
                "previous_version": self.previous_version, "action": self.action, "strategy": self.strategy,
                "actor": self.actor, "outcome": self.outcome, "detail": self.detail, "at": self.at.isoformat(),
                "stages": None if self.stages is None else list(self.stages)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HistoryEntry:
        stages = data.get("stages")
        return cls(int(data["id"]), str(data["component"]), str(data["version"]), data["previous_version"],
                   str(data["action"]), str(data["strategy"]), str(data["actor"]), str(data["outcome"]),
                   str(data["detail"]), _time(data["at"]), None if stages is None else _stages(stages))


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One admin-API action: who (token id), what (action, target), how it ended (outcome, detail)."""

    id: int
    token_id: str
    action: str
    target: str
    outcome: str
    detail: str
    at: datetime

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "token_id": self.token_id, "action": self.action, "target": self.target,
                "outcome": self.outcome, "detail": self.detail, "at": self.at.isoformat()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AuditEntry:
        return cls(int(data["id"]), str(data["token_id"]), str(data["action"]), str(data["target"]),
                   str(data["outcome"]), str(data["detail"]), _time(data["at"]))
