"""What every registry flavour shares: naming rules, the records it returns, and the ``Registry`` protocol.

Rules: component names match ``[a-z0-9][a-z0-9_-]{0,62}``; versions are strict SemVer 2.0.0 (sorted by
SemVer precedence, build metadata as a tie-break); routes are canonical absolute paths (segments of
``A-Za-z0-9._~-``, no ``.``/``..``, no ``//``, query or trailing ``/``). Anything else is refused rather than
silently rewritten, so a stored route is exactly what the user typed. ``/`` is refused: it would shadow the
whole host app, and so is every route in ``/_airssys`` (reserved for airssys-web itself: the admin API).

Route ownership: two components never share a route, and a component may not claim a route nested under another
component's route (``/adm/sub`` under ``/adm``), nor one containing another's (``/adm`` above ``/adm/sub``), unless
the deploy asks for it (``allow_nested=True``, ``--nested``): a nested route silently takes requests away from
the other component, since the longest matching prefix wins. The permission is stored with the component
(``ComponentInfo.nested``) so ``list`` and ``status`` show it. Only claiming a route is checked: a new component,
or a route move; a later deploy that keeps the route keeps its permission.

Rollback is an undo stack: each rollback returns to the version that was active before the current one
was activated, so repeated rollbacks walk back through deploys until there is nothing left.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, cast

import semver

from airssys_web.errors import CapabilityError, InvalidName, RouteConflict
from airssys_web.lifecycle.routing import route_matches

_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_SEGMENT_RE = re.compile(r"[A-Za-z0-9._~-]+")
_SHA_RE = re.compile(r"[0-9a-f]{64}")
MAX_VERSION_LEN = 128
MAX_ROUTE_LEN = 256
#: Where airssys-web answers itself (the admin API is ``/_airssys/api``): no component route may lie in it.
RESERVED_ROUTE = "/_airssys"


def validate_name(name: str) -> str:
    """Return ``name`` if it is a valid component name, else raise :class:`InvalidName`."""
    if isinstance(name, str) and _NAME_RE.fullmatch(name):
        return name
    raise InvalidName(
        f"invalid component name {name!r}: use 1-63 characters from a-z, 0-9, '_' and '-', "
        "starting with a letter or digit"
    )


def validate_version(version: str) -> str:
    """Return ``version`` if it is a strict SemVer 2.0.0 string, else raise :class:`InvalidName`."""
    if isinstance(version, str) and len(version) <= MAX_VERSION_LEN:
        with suppress(ValueError):
            semver.Version.parse(version)
            return version
    raise InvalidName(
        f"invalid version {version!r}: use SemVer 2.0.0 such as 1.0.0 or 1.2.0-rc.1+build.5 "
        f"(no 'v' prefix, no leading zeros, at most {MAX_VERSION_LEN} characters)"
    )


def version_key(version: str) -> tuple[semver.Version, str]:
    """Sort key: SemVer precedence, then the raw string so versions differing only in build metadata
    still sort deterministically."""
    return semver.Version.parse(validate_version(version)), version


def validate_route(route: str) -> str:
    """Return ``route`` if it is a canonical mount path, else raise :class:`InvalidName` saying why."""

    def bad(why: str) -> InvalidName:
        return InvalidName(f"invalid route {route!r}: {why}")

    if not isinstance(route, str) or not route.startswith("/"):
        raise bad("it must start with '/', e.g. /hello")
    if route == "/":
        raise bad("'/' would shadow the whole app; mount the component under a prefix such as /app")
    if route == RESERVED_ROUTE or route.startswith(RESERVED_ROUTE + "/"):
        raise bad(f"{RESERVED_ROUTE} and everything below it is reserved for airssys-web itself (the admin API); "
                  "choose another prefix")
    if len(route) > MAX_ROUTE_LEN:
        raise bad(f"it is longer than {MAX_ROUTE_LEN} characters")
    if "?" in route or "#" in route:
        raise bad("a route has no query or fragment; drop everything from '?' or '#'")
    if "//" in route:
        raise bad("it contains an empty segment ('//')")
    if route.endswith("/"):
        raise bad(f"it must not end with '/'; use {route.rstrip('/')!r}")
    for segment in route[1:].split("/"):
        if segment in (".", ".."):
            raise bad("'.' and '..' segments are not allowed")
        if not _SEGMENT_RE.fullmatch(segment):
            raise bad("path segments may only use A-Z, a-z, 0-9, '.', '_', '~' and '-'")
    return route


def route_overlap(name: str, route: str, owners: Iterable[tuple[str, str]], *, allow_nested: bool) -> None:
    """Refuse ``route`` for component ``name`` if another of ``owners`` (component, route) owns it, or, unless
    ``allow_nested``, a route it lies under or contains; raise :class:`RouteConflict` saying what to do."""
    for owner, other in owners:
        if owner == name:
            continue
        if other == route:
            raise RouteConflict(f"route {route} is owned by component {owner!r}; choose another route")
        if allow_nested:
            continue
        if route_matches(other, route):
            raise RouteConflict(
                f"route {route} is inside {other}, owned by {owner}; it would take {route} and everything below it "
                f"away from {owner}; {_NESTED_HINT}")
        if route_matches(route, other):
            raise RouteConflict(
                f"route {route} contains {other}, owned by {owner}; {owner} would keep {other} and everything below "
                f"it; {_NESTED_HINT}")


_NESTED_HINT = 'pass --nested to allow it (Python: allow_nested=True; admin API: "nested": true)'


def _check_sha(sha256: str) -> str:
    if isinstance(sha256, str) and _SHA_RE.fullmatch(sha256):
        return sha256
    raise InvalidName(f"invalid sha256 {sha256!r}: expected 64 lowercase hex digits")


def _settings_json(settings: Mapping[str, Any] | None) -> str:
    """Canonical JSON (sorted keys) so equal settings compare equal as text."""
    if settings is None:
        return "{}"
    if not isinstance(settings, Mapping) or not all(isinstance(k, str) for k in settings):
        raise CapabilityError("settings must be a mapping with string keys")
    try:
        return json.dumps(dict(settings), sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise CapabilityError(f"settings must be plain JSON (str, number, bool, null, list, dict): {exc}") from exc


def settings_json(settings: Mapping[str, Any] | None) -> str:
    """The canonical JSON text the registry stores for ``settings`` (equal settings give equal text)."""
    return _settings_json(settings)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _file_sha(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class ComponentInfo:
    name: str
    route: str
    created_at: datetime
    active_version: str | None
    #: The route was claimed with ``allow_nested``: it may lie under or above another component's route.
    nested: bool = False


@dataclass(frozen=True, slots=True)
class VersionInfo:
    component: str
    version: str
    sha256: str
    settings_json: str
    created_at: datetime

    @property
    def settings(self) -> dict[str, Any]:
        """A fresh copy of the opaque grants/limits dict (the record itself stays immutable)."""
        return cast(dict[str, Any], json.loads(self.settings_json))


@dataclass(frozen=True, slots=True)
class Deployment:
    """What serves ``route`` now: everything the server needs to build its route table."""

    component: str
    route: str
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

    @property
    def settings(self) -> dict[str, Any]:
        return cast(dict[str, Any], json.loads(self.settings_json))

    @property
    def newest_version(self) -> str:
        """The version the last change introduced: the canary while one runs, else the active version."""
        return self.canary_version or self.active_version


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One activation; ``previous_version`` is where a rollback from ``version`` would go."""

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


#: History actions that make a version active (the rollback stack is rebuilt from these only).
ACTIVATIONS = ("deploy", "activate", "rollback", "promote")


class Registry(Protocol):
    """What the CLI and the server need from a registry; a Redis flavour will implement the same."""

    @property
    def artifacts_dir(self) -> Path: ...
    def put_blob(self, data: bytes) -> str: ...
    def read_blob(self, sha256: str) -> bytes: ...
    def blob_path(self, sha256: str) -> Path: ...
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
    ) -> Deployment: ...
    def check_route(self, name: str, route: str, *, allow_nested: bool = False) -> None: ...
    def activate(
        self,
        name: str,
        version: str,
        *,
        actor: str = "cli",
        action: str = "activate",
        strategy: str = "immediate",
        auto_rollback: str | None = None,
    ) -> Deployment: ...
    def rollback(
        self,
        name: str,
        to_version: str | None = None,
        *,
        actor: str = "cli",
        reason: str = "",
        expect: str | None = None,
    ) -> Deployment: ...
    def add_version(
        self, name: str, version: str, *, sha256: str, route: str | None = None,
        settings: Mapping[str, Any] | None = None, allow_nested: bool = False,
    ) -> VersionInfo: ...
    def start_canary(
        self, name: str, version: str, percent: int, *, actor: str = "cli", auto_rollback: str | None = None
    ) -> Deployment: ...
    def promote(self, name: str, *, actor: str = "cli") -> Deployment: ...
    def get_deployment(self, name: str) -> Deployment: ...
    def record(
        self, name: str, version: str, *, action: str, strategy: str, actor: str, outcome: str, detail: str = ""
    ) -> HistoryEntry: ...
    def audit(self, action: str, target: str, outcome: str, *, token_id: str, detail: str = "") -> None: ...
    def audit_log(self, limit: int = 100) -> list[AuditEntry]: ...
    def get_component(self, name: str) -> ComponentInfo: ...
    def components(self) -> list[ComponentInfo]: ...
    def versions(self, name: str) -> list[VersionInfo]: ...
    def get_version(self, name: str, version: str) -> VersionInfo: ...
    def active(self) -> list[Deployment]: ...
    def history(self, name: str | None = None) -> list[HistoryEntry]: ...
    def change_token(self) -> int: ...
    def close(self) -> None: ...
