"""Pipelines: middleware stages in front of a route component, changed as one value.

::

    from airssys_web import LocalLifecycle, Pipeline

    with LocalLifecycle("./airssys-data") as life:
        life.set_pipeline(Pipeline("api").then("auth", "audit"))   # auth sees each request first
        life.set_pipeline(Pipeline("api"))                         # no stages: cleared

A :class:`Pipeline` is an immutable value, checked as it is built (names valid, no stage twice, at most
:data:`~.registry.rules.MAX_STAGES`); what needs the registry (the components exist, have the right kinds and
active versions) is checked when it is set, in the same transaction as the change, which is recorded in the route's
history and undone by ``rollback`` like a version. Each stage keeps its own sandbox, grants, limits and versions:
deploying a new version of a stage (any strategy) changes every pipeline it is in, with no request failed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import PipelineError
from .registry import validate_name
from .registry.rules import MAX_STAGES

__all__ = ["Pipeline"]


@dataclass(frozen=True)
class Pipeline:
    """The ``stages`` (middleware component names, first to last) in front of route component ``component``."""

    component: str
    stages: tuple[str, ...] = ()

    def __init__(self, component: str, stages: Iterable[str] = ()) -> None:
        validate_name(component)
        names = tuple(stages)
        if isinstance(stages, str):
            raise TypeError(f"stages must be a list of component names, not the string {stages!r}")
        for name in names:
            validate_name(name)
        if len(set(names)) != len(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            raise PipelineError(f"stage {', '.join(twice)} is listed twice; a request passes each stage once")
        if len(names) > MAX_STAGES:
            raise PipelineError(f"a pipeline has at most {MAX_STAGES} stages; {len(names)} were given")
        object.__setattr__(self, "component", component)
        object.__setattr__(self, "stages", names)

    def then(self, *stages: str) -> Pipeline:
        """This pipeline with ``stages`` added after its own (they see requests after, and answers before, them)."""
        return Pipeline(self.component, (*self.stages, *stages))

    def without(self, stage: str) -> Pipeline:
        """This pipeline without ``stage``."""
        if stage not in self.stages:
            raise PipelineError(f"{stage} is not a stage of {self.component} ({self.describe()})")
        return Pipeline(self.component, (s for s in self.stages if s != stage))

    def describe(self) -> str:
        """``auth > audit > api``, or ``api (no stages)``."""
        return " > ".join((*self.stages, self.component)) if self.stages else f"{self.component} (no stages)"
