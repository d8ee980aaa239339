"""Making a generation from a version: the one place a version's code and settings become something that serves.

A version is identified by its :class:`Code` (component, version, blob, settings): two equal codes are
interchangeable, so a route move, a canary promoted to active or a rollback to a version still live reuses the
running generation. :class:`GenerationFactory` turns a code into a warmed :class:`Generation`: its settings into a
host context and limits (through the host's services: KV store, secret store, outbound fetchers), its blob into a
compiled component (from the artifact cache: memory, a verified artifact on disk, or a compilation), then the
generation itself on the runtime's engines. The host, the roll-out strategies and ``ComponentClient`` all use it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter

from ..observability.metrics import Metrics
from ..runtime.artifacts import ArtifactCache
from ..runtime.engine import Runtime
from ..runtime.generation import Generation
from .registry import Deployment
from .services import HostServices

log = logging.getLogger("airssys_web.lifecycle.generations")


@dataclass(frozen=True)
class Code:
    """What makes two generations interchangeable."""

    component: str
    version: str
    sha256: str
    settings_json: str

    @classmethod
    def active(cls, dep: Deployment) -> Code:
        return cls(dep.component, dep.active_version, dep.sha256, dep.settings_json)

    @classmethod
    def canary(cls, dep: Deployment) -> Code | None:
        if dep.canary_version is None or dep.canary_sha256 is None:
            return None
        return cls(dep.component, dep.canary_version, dep.canary_sha256, dep.canary_settings_json or "{}")

    @property
    def tag(self) -> str:
        return f"{self.component}@{self.version}"


class GenerationFactory:
    """Builds generations on one runtime, with one artifact cache and one set of host services.

    ``loader(sha256)`` reads a blob when no compiled artifact exists (the registry's ``blobs.read``); a caller that
    has the bytes passes ``wasm=`` instead. ``local_artifacts`` says that the artifact cache is this machine's own
    (a Redis registry's hosts each compile a version once, on first use) rather than the registry's, where a
    deploy left the artifact and a missing one is worth a warning. With ``metrics``, every generation built is
    exported there until it closes.
    """

    def __init__(self, runtime: Runtime, artifacts: ArtifactCache, services: HostServices, *,
                 loader: Callable[[str], bytes] | None = None, local_artifacts: bool = False,
                 metrics: Metrics | None = None) -> None:
        if artifacts.runtime is not runtime:
            raise ValueError("the artifact cache must belong to the same runtime (compiled code is per engine)")
        self.runtime = runtime
        self.artifacts = artifacts
        self.services = services
        self._loader = loader
        self.metrics = metrics
        self._local_artifacts = local_artifacts

    def build(self, code: Code, *, wasm: bytes | None = None, warm: bool = True) -> Generation:
        """A generation for ``code``: linked, and (``warm``) with its ``min_instances`` instantiated. Raises the
        AirssysError that says why it cannot serve (nothing is left running then)."""
        started = perf_counter()
        ctx, limits = self.services.context(code.component, code.version, json.loads(code.settings_json or "{}"))
        try:
            if wasm is None and not self.artifacts.has_artifact(code.sha256, fuel=ctx.fuel):
                if self._local_artifacts:
                    log.info("%s: compiling it for this machine (once; the artifact is cached locally)", code.tag)
                else:
                    log.warning("%s: no compiled artifact on disk; compiling now (deploy should have done this)",
                                code.tag)
            loader = self._loader
            component = self.artifacts.get(code.sha256, wasm, fuel=ctx.fuel,
                                           loader=(lambda: loader(code.sha256)) if loader is not None else None)
            gen = Generation(component, ctx, limits, runtime=self.runtime, sha256=code.sha256)
        except BaseException:
            ctx.close()
            raise
        gen.built_at = started
        if warm:
            try:
                gen.warm()
            except BaseException:
                gen.close()
                raise
        if self.metrics is not None:
            self.metrics.bind(gen)
            gen.on_close(self.metrics.release)
        return gen
