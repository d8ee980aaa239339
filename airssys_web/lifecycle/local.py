"""The lifecycle on a registry directory: changes run in this process, then a server watching the registry applies them.

A deploy with the default plan is :func:`~.deploy.deploy` (check, compile, record as active); any other strategy
runs its steps here on a throw-away generation (:func:`~.strategies.rollout_local`) before the registry changes.
Either way the running server sees the change within its poll interval and warms its own instances.
"""

from __future__ import annotations

import getpass
from pathlib import Path
from types import TracebackType
from typing import Self

from .api import Change, ComponentStatus, DeployRequest, Plan, component_status
from .deploy import deploy
from .internal import call_warnings
from .pipeline import Pipeline
from .registry import AuditEntry, HistoryEntry, Registry, open_registry
from .strategies import rollout_local

__all__ = ["LocalLifecycle", "local_actor"]


def local_actor() -> str:
    """Who a change made from this machine is recorded as: ``cli:<user>``."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # pragma: no cover - no user name in this environment
        return "cli"


class LocalLifecycle:
    """:class:`~.api.Lifecycle` on ``registry`` (a directory or a ``redis://`` URL, opened and closed here, or a
    :class:`Registry`).

    ``actor`` is who the history records (default: :func:`local_actor`).
    """

    def __init__(self, registry: str | Path | Registry, *, actor: str | None = None) -> None:
        self.registry: Registry = open_registry(registry)
        self._owns = self.registry is not registry
        self.actor = actor or local_actor()

    def deploy(self, request: DeployRequest) -> Change:
        if request.plan == Plan():
            dep = deploy(self.registry, request.name, request.wasm, version=request.version, route=request.route,
                         settings=request.settings, manifest=False, allow_nested=request.nested, actor=self.actor)
        else:
            dep = rollout_local(self.registry, request, actor=self.actor)
        return Change(dep, warnings=call_warnings(self.registry, request.name, request.settings.grants.components))

    def promote(self, name: str) -> Change:
        return Change(self.registry.promote(name, actor=self.actor))

    def rollback(self, name: str, to_version: str | None = None) -> Change:
        return Change(self.registry.rollback(name, to_version, actor=self.actor))

    def set_pipeline(self, pipeline: Pipeline) -> Change:
        return Change(self.registry.set_pipeline(pipeline.component, pipeline.stages, actor=self.actor))

    def components(self) -> list[ComponentStatus]:
        return [component_status(self.registry, c) for c in self.registry.components()]

    def component(self, name: str) -> ComponentStatus:
        return component_status(self.registry, self.registry.get_component(name))

    def history(self, name: str) -> list[HistoryEntry]:
        return self.registry.history(name)

    def audit(self, limit: int = 100) -> list[AuditEntry]:
        return self.registry.audit.entries(limit)

    def describe(self) -> str:
        where = getattr(self.registry, "root", None) or getattr(self.registry, "location", None)
        return f"registry {where}" if where is not None else repr(self.registry)

    def close(self) -> None:
        """Close the registry if this object opened it (idempotent)."""
        if self._owns:
            self.registry.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
