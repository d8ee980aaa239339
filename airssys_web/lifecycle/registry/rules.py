"""The rules every registry applies the same way: names, versions, routes, blob digests, and route ownership.

Component names match ``[a-z0-9][a-z0-9_-]{0,62}``; versions are strict SemVer 2.0.0 (sorted by SemVer precedence,
build metadata as a tie-break); routes are canonical absolute paths (segments of ``A-Za-z0-9._~-``, no ``.``/``..``,
no ``//``, query or trailing ``/``). Anything else is refused rather than silently rewritten, so a stored route is
exactly what the user typed. ``/`` is refused: it would shadow the whole host app, and so is every route in
``/_airssys`` (reserved for airssys-web itself: the admin API).

Route ownership: two components never share a route, and a component may not claim a route nested under another
component's route (``/adm/sub`` under ``/adm``), nor one containing another's (``/adm`` above ``/adm/sub``), unless
the deploy asks for it (``allow_nested=True``, ``--nested``): a nested route silently takes requests away from
the other component, since the longest matching prefix wins. The permission is stored with the component
(``ComponentInfo.nested``) so ``list`` and ``status`` show it. Only claiming a route is checked: a new component,
or a route move; a later deploy that keeps the route keeps its permission.

Kinds and pipelines: a component is a ``route`` component or a ``middleware`` stage, fixed by its first version
(a stage imports the handler it passes requests on to). A stage owns no route; a route component may have a
pipeline of at most :data:`MAX_STAGES` distinct stages in front of it (:func:`check_pipeline`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from contextlib import suppress

import semver

from airssys_web.capabilities.grants import COMPONENT_NAME
from airssys_web.errors import CapabilityError, InvalidName, NotFound, PipelineError, RouteConflict
from airssys_web.lifecycle.routing import RESERVED_ROUTE, route_matches
from airssys_web.lifecycle.settings import VersionSettings

__all__ = [
    "MAX_ROUTE_LEN",
    "MAX_STAGES",
    "MAX_VERSION_LEN",
    "check_kind",
    "check_pipeline",
    "route_overlap",
    "validate_name",
    "validate_route",
    "validate_sha256",
    "validate_version",
    "version_key",
]

_NAME_RE = COMPONENT_NAME
_SEGMENT_RE = re.compile(r"[A-Za-z0-9._~-]+")
_SHA_RE = re.compile(r"[0-9a-f]{64}")
MAX_VERSION_LEN = 128
MAX_ROUTE_LEN = 256


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


def validate_sha256(sha256: str) -> str:
    """Return ``sha256`` if it is a blob's name (64 lowercase hex digits), else raise :class:`InvalidName`."""
    if isinstance(sha256, str) and _SHA_RE.fullmatch(sha256):
        return sha256
    raise InvalidName(f"invalid sha256 {sha256!r}: expected 64 lowercase hex digits")


#: The most stages one pipeline may have (each adds an instance call and a copy of the request to every request).
MAX_STAGES = 16


def check_kind(name: str, kind: str, route: str | None, existing: str | None) -> None:
    """Refuse a version of kind ``kind`` for component ``name`` (of kind ``existing``; None if it is new) when the
    kinds differ, or when a middleware stage is given a route."""
    if kind not in ("route", "middleware"):
        raise PipelineError(f"unknown component kind {kind!r}: a component is a route component or a middleware")
    if existing is not None and existing != kind:
        this = "a middleware stage (it imports airssys:web/handler)" if kind == "middleware" else \
            "a route component (it does not import airssys:web/handler)"
        raise PipelineError(f"{name} is a {existing} component, but this version is {this}; a component keeps its "
                            "kind: deploy it under another name")
    if kind == "middleware" and route is not None:
        raise PipelineError(f"{name} is a middleware stage: it owns no route but runs in front of route components "
                            f"(airssys-web pipeline set COMPONENT {name}); deploy it without --route")


def check_pipeline(name: str, stages: Sequence[str], kinds: Mapping[str, str],
                   active: Collection[str]) -> tuple[str, ...]:
    """The pipeline ``stages`` for route component ``name``, checked against ``kinds`` (every component's kind)
    and ``active`` (the components with an active version); raises saying what is wrong and what to do."""
    validate_name(name)
    stages = tuple(stages)
    for stage in stages:
        validate_name(stage)
    if name not in kinds:
        raise NotFound(f"no component named {name!r}; deploy it first")
    if kinds[name] != "route":
        raise PipelineError(f"{name} is a middleware stage; a pipeline goes in front of a route component")
    if len(stages) > MAX_STAGES:
        raise PipelineError(f"a pipeline has at most {MAX_STAGES} stages; {len(stages)} were given")
    seen: set[str] = set()
    for stage in stages:
        if stage == name:
            raise PipelineError(f"{name} cannot be a stage in front of itself")
        if stage in seen:
            raise PipelineError(f"stage {stage} is listed twice; a request passes each stage once (no cycles)")
        seen.add(stage)
        if stage not in kinds:
            raise NotFound(f"stage {stage!r} is not a component; deploy it first "
                           f"(airssys-web deploy {stage} FILE --version V)")
        if kinds[stage] != "middleware":
            raise PipelineError(f"{stage} is a route component, not a middleware stage; only components built for "
                                "the middleware world can be stages (airssys-web build --kind middleware)")
        if stage not in active:
            raise PipelineError(f"stage {stage} has no active version; deploy one first")
    return stages


def check_new_version(name: str, version: str, sha256: str, route: str | None, settings: VersionSettings | None,
                      blob_size: Callable[[str], int | None]) -> str:
    """Validate a new version's fields (every flavour, before its write transaction); return its canonical
    settings text. ``blob_size`` is the registry's ``blobs.size``: the version's bytes must be stored first."""
    validate_name(name)
    validate_version(version)
    if route is not None:
        validate_route(route)
    if settings is not None and not isinstance(settings, VersionSettings):
        raise CapabilityError(f"settings must be a VersionSettings, not {type(settings).__name__} "
                              "(VersionSettings.from_json reads the JSON form)")
    settings_json = (settings or VersionSettings()).json_text()
    if blob_size(sha256) is None:
        raise NotFound(f"blob {sha256} is not in the registry; store it with blobs.put() before deploying")
    return settings_json
