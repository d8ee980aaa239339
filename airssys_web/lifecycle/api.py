"""The lifecycle API: deploy (with a strategy), promote, roll back and inspect, the same on a registry directory and
against a running server.

:class:`Lifecycle` is the protocol; :class:`~.local.LocalLifecycle` implements it on a registry (the change runs in
this process, a server watching the registry applies it) and :class:`~.remote.RemoteLifecycle` through a server's
admin API. Both return the same typed records, and each record has one JSON form (``to_json``/``from_json``), which
the CLI's ``--json``, the admin API's answers and the remote client share:

* :class:`Change` (deploy, promote, rollback): ``{"deployment": Deployment, "serving": Serving | null,
  "warnings": [str]}``;
* :class:`ComponentStatus` (``list``, ``status``): the component's fields with ``"versions"``, ``"deployment"`` and
  ``"serving"``;
* :class:`Serving`: what one server process serves (``{"active", "canary", "canary_percent"}``);
* the registry's records (:mod:`.registry.records`): ``Deployment``, ``VersionInfo``, ``HistoryEntry``,
  ``AuditEntry``.

A request to change something is a :class:`DeployRequest` with its :class:`Plan` (the strategy), both validated
when made, so a bad one fails before anything is read, uploaded or compiled.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from enum import StrEnum
from types import TracebackType
from typing import Any, Protocol, Self

from ..errors import DeployError
from .autorollback import Policy
from .pipeline import Pipeline
from .registry import (
    AuditEntry,
    ComponentInfo,
    Deployment,
    HistoryEntry,
    Registry,
    VersionInfo,
    validate_name,
    validate_route,
    validate_version,
)
from .settings import VersionSettings

__all__ = [
    "DEFAULT_CANARY_PERCENT",
    "Change",
    "ComponentStatus",
    "DeployRequest",
    "Lifecycle",
    "Plan",
    "Serving",
    "Strategy",
    "component_status",
]

DEFAULT_CANARY_PERCENT = 10


class Strategy(StrEnum):
    """How a new version replaces the active one (see :mod:`.strategies`)."""

    IMMEDIATE = "immediate"
    BLUE_GREEN = "blue-green"
    CANARY = "canary"


@dataclass(frozen=True)
class Plan:
    """A validated strategy with its options; build one from user input with :meth:`parse`."""

    strategy: Strategy = Strategy.IMMEDIATE
    percent: int = 0
    probe: str | None = None
    auto_rollback: Policy | None = None

    @classmethod
    def parse(cls, strategy: str = "immediate", *, percent: int | None = None, probe: str | None = None,
              auto_rollback: str | None = None) -> Plan:
        try:
            kind = Strategy(strategy)
        except ValueError:
            raise DeployError(
                f"unknown strategy {strategy!r}: use one of {', '.join(s.value for s in Strategy)}") from None
        if kind is Strategy.CANARY:
            percent = DEFAULT_CANARY_PERCENT if percent is None else percent
            if isinstance(percent, bool) or not isinstance(percent, int) or not 1 <= percent <= 100:
                raise DeployError(f"invalid canary percent {percent!r}: use a whole number from 1 to 100")
        elif percent is not None:
            raise DeployError(f"--percent applies to --strategy canary only (got --strategy {kind})")
        if probe is not None:
            if kind is Strategy.IMMEDIATE:
                raise DeployError("--probe needs --strategy blue-green or canary")
            if not isinstance(probe, str) or not probe.startswith("/") or any(c in probe for c in " \r\n#"):
                raise DeployError(f"invalid probe path {probe!r}: give an absolute request path such as /hello/health")
        policy = Policy.parse(auto_rollback) if auto_rollback else None
        return cls(kind, percent or 0, probe, policy)

    @property
    def policy_text(self) -> str | None:
        return None if self.auto_rollback is None else str(self.auto_rollback)


@dataclass(frozen=True)
class DeployRequest:
    """Deploy ``wasm`` as version ``version`` of component ``name``, with ``settings`` and the strategy of ``plan``.

    ``route`` is required for a new component (omitted later: the component keeps its route); ``nested`` lets it
    claim a route under or above another component's. ``settings`` may still hold secret values: the registry that
    stores the version keeps only references. Names, version and route are validated here.
    """

    name: str
    wasm: bytes = field(repr=False)
    _: KW_ONLY
    version: str
    route: str | None = None
    settings: VersionSettings = field(default_factory=VersionSettings)
    plan: Plan = field(default_factory=Plan)
    nested: bool = False

    def __post_init__(self) -> None:
        validate_name(self.name)
        validate_version(self.version)
        if self.route is not None:
            validate_route(self.route)


@dataclass(frozen=True)
class Serving:
    """What one server process serves for a component: its active version and the canary split, if any."""

    active: str | None
    canary: str | None = None
    canary_percent: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"active": self.active, "canary": self.canary, "canary_percent": self.canary_percent}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Serving:
        return cls(data["active"], data["canary"], int(data["canary_percent"]))


def _serving(data: Any) -> Serving | None:
    return None if data is None else Serving.from_json(data)


@dataclass(frozen=True)
class Change:
    """The outcome of a deploy, promote or rollback: the deployment it produced, what the server that made it serves
    now (``None`` on a registry directory: no server took part), and warnings (routes of the host app the
    component's route shadows, which only a server can see)."""

    deployment: Deployment
    serving: Serving | None = None
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"deployment": self.deployment.to_json(),
                "serving": None if self.serving is None else self.serving.to_json(),
                "warnings": list(self.warnings)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Change:
        return cls(Deployment.from_json(data["deployment"]), _serving(data["serving"]),
                   tuple(str(w) for w in data["warnings"]))


@dataclass(frozen=True)
class ComponentStatus:
    """A component with its versions, what serves it (the registry's deployment) and, from a server, what that
    server process serves. ``unavailable``: the active version's imports this host does not provide, by package
    (a wasi:http component's; see :mod:`airssys_web.runtime.platform`)."""

    component: ComponentInfo
    versions: tuple[VersionInfo, ...]
    deployment: Deployment | None = None
    serving: Serving | None = None
    unavailable: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {**self.component.to_json(), "versions": [v.to_json() for v in self.versions],
                "deployment": None if self.deployment is None else self.deployment.to_json(),
                "serving": None if self.serving is None else self.serving.to_json(),
                "unavailable": list(self.unavailable)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ComponentStatus:
        deployment = data["deployment"]
        return cls(ComponentInfo.from_json(data), tuple(VersionInfo.from_json(v) for v in data["versions"]),
                   None if deployment is None else Deployment.from_json(deployment), _serving(data["serving"]),
                   tuple(str(u) for u in data.get("unavailable", ())))


def component_status(registry: Registry, component: ComponentInfo,
                     serving: Callable[[str], Serving] | None = None) -> ComponentStatus:
    """``component``'s status from ``registry`` (``serving``: what this process serves, in a server)."""
    from ..runtime.platform import group_interfaces, unavailable_imports  # the native module, only when asked

    name = component.name
    deployment = registry.get_deployment(name) if component.active_version is not None else None
    unavailable: tuple[str, ...] = ()
    if deployment is not None:
        unavailable = tuple(group_interfaces(unavailable_imports(registry.blobs.read(deployment.sha256))))
    return ComponentStatus(component, tuple(registry.versions(name)), deployment,
                           serving(name) if serving is not None else None, unavailable)


class Lifecycle(Protocol):
    """Deploy, promote, roll back and inspect components: on a registry directory (``LocalLifecycle``) or through a
    server's admin API (``RemoteLifecycle``). Refusals raise the :mod:`airssys_web.errors` class that says why, and
    leave everything as it was. Use it as a context manager, or call :meth:`close`."""

    def deploy(self, request: DeployRequest) -> Change:
        """Deploy ``request.wasm`` with the request's strategy; returns once the change is made (through a server:
        once the new version serves)."""
        ...

    def promote(self, name: str) -> Change:
        """Make the running canary of ``name`` the active version."""
        ...

    def rollback(self, name: str, to_version: str | None = None) -> Change:
        """Undo the last change of ``name`` (a canary goes to 0 %, a pipeline change is reverted, else the previous
        version comes back), or activate ``to_version``."""
        ...

    def set_pipeline(self, pipeline: Pipeline) -> Change:
        """Put ``pipeline.stages`` in front of route component ``pipeline.component`` (none: clear it)."""
        ...

    def components(self) -> list[ComponentStatus]:
        """Every component, by name."""
        ...

    def component(self, name: str) -> ComponentStatus: ...

    def history(self, name: str) -> list[HistoryEntry]:
        """Every change of ``name``, oldest first."""
        ...

    def audit(self, limit: int = 100) -> list[AuditEntry]:
        """The newest ``limit`` entries of the audit log (changes made through the admin API), oldest first."""
        ...

    def describe(self) -> str:
        """Where changes go, for messages: ``registry ./airssys-data`` or ``server http://...``."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...
