"""How a new version replaces the active one: ``immediate``, ``blue-green`` or ``canary``.

Every strategy does its risky work *before* the registry changes, so a failure leaves everything as it was and the
error names the step that failed (``check``, ``warm``, ``probe``, ``switch``):

- **immediate**: check (validate, compile, trial instance), warm, switch; the old generation drains.
- **blue-green**: as immediate, and a probe request (``GET PATH`` through the new generation itself, must be 2xx)
  before the switch.
- **canary**: check, warm, optional probe, then ``percent`` % of clients go to the new version. A client's bucket
  (0-99) lives in a signed cookie, so one client keeps seeing one version; ``promote`` moves to 100 %, ``rollback``
  back to 0 %.

In a server (the admin API) the warmed generation is handed to the host (:meth:`AirssysHost.prepare`) and adopted
by the sync that follows the registry write, so nothing is warmed twice and the call returns once the new version
serves. On a registry directory (the CLI without a server) the same steps run in the CLI process on a throw-away
generation, then the registry is written and the running server picks the change up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from itsdangerous import BadSignature, Signer

from ..errors import Conflict, DeployError, GuestError, InvalidName, NotFound
from ..runtime.artifacts import ArtifactCache
from ..runtime.engine import Runtime
from ..runtime.generation import Generation
from .api import DeployRequest, Plan, Strategy
from .deploy import ComponentReport, check_component, finalize_settings
from .generations import Code, GenerationFactory
from .host import AirssysHost
from .registry import Deployment, Registry
from .services import HostServices
from .settings import VersionSettings
from .targets import BUCKETS

log = logging.getLogger("airssys_web.lifecycle.strategies")

T = TypeVar("T")


class BucketCookie:
    """The sticky canary cookie: a client's bucket (0-99), signed so a client cannot choose its version.

    Every process that serves the registry must sign with the same key, or a client that reaches another worker or
    host gets a new bucket (and maybe the other version): the key is the admin secret, or else one the registry
    keeps (``secret`` may be a function that fetches it, called once, on first use or :meth:`load`).
    """

    name = "airssys_bucket"
    max_age = 30 * 86400

    def __init__(self, secret: str | bytes | Callable[[], bytes]) -> None:
        self._secret = secret
        self._signer_now: Signer | None = None

    @property
    def _signer(self) -> Signer:
        if self._signer_now is None:
            secret = self._secret() if callable(self._secret) else self._secret
            self._signer_now = Signer(secret, salt="airssys-web canary bucket")
        return self._signer_now

    def load(self) -> None:
        """Fetch the key now (it may take a registry round trip: call it off the event loop)."""
        self._signer  # noqa: B018 - the property fetches and keeps the key

    def issue(self) -> tuple[int, bytes]:
        """A fresh random bucket and the ``Set-Cookie`` header value that pins it."""
        bucket = secrets.randbelow(BUCKETS)
        value = self._signer.sign(str(bucket)).decode()
        return bucket, f"{self.name}={value}; Path=/; Max-Age={self.max_age}; HttpOnly; SameSite=Lax".encode()

    def read(self, value: str | None) -> int | None:
        """The bucket in a cookie value, or ``None`` if it is missing, forged or out of range."""
        if not value:
            return None
        try:
            raw = self._signer.unsign(value).decode()
        except BadSignature:
            return None
        return int(raw) if raw.isdigit() and int(raw) < BUCKETS else None


# -- steps shared by both modes ----------------------------------------------------------------------------------
def preflight(registry: Registry, request: DeployRequest) -> None:
    """The cheap checks, before anything is compiled: route ownership and what the strategy needs (the request
    validated its names when it was made)."""
    name, route, plan = request.name, request.route, request.plan
    try:
        component = registry.get_component(name)
    except NotFound:  # new: a route component without a route is refused once its kind is known (compiled)
        if plan.strategy is Strategy.CANARY:
            raise DeployError(f"a canary needs an active version of {name!r}; deploy one first "
                              "(--strategy immediate or blue-green)") from None
        if route is not None:
            registry.check_route(name, route, allow_nested=request.nested)
        return
    if route is not None and route != component.route:
        registry.check_route(name, route, allow_nested=request.nested)
    if plan.strategy is Strategy.CANARY:
        if component.active_version is None:
            raise DeployError(f"a canary needs an active version of {name!r}; deploy one first")
        if route is not None and route != component.route:
            raise DeployError(f"a canary cannot move {name} from {component.route} to {route}; "
                              "use --strategy immediate or blue-green to move the route")
        running = registry.get_deployment(name).canary_version
        if running not in (None, request.version):  # refuse before compiling and warming anything
            raise Conflict(f"{name} already runs canary {running}; promote or roll it back first")


def check(registry: Registry, artifacts: ArtifactCache, name: str, wasm: bytes,
          settings: VersionSettings) -> tuple[ComponentReport, VersionSettings]:
    """Validate and compile ``wasm`` (storing its artifact), prove it instantiates, store the blob. Returns what
    was learnt of it (sha256, kind) and the settings to store: grants checked against the component's declared
    needs, secret values moved to the registry's secret store (only references remain)."""
    final = finalize_settings(registry, wasm, settings)
    _, report = check_component(wasm, artifacts, label=name, settings=final.to_json())
    sha = registry.blobs.put(wasm)
    assert sha == report.sha256
    return report, final


def probe(gen: Generation, path: str) -> None:
    """``GET path`` through ``gen`` itself; anything but a 2xx answer raises."""
    try:
        resp = gen.call("GET", path, "", [("user-agent", "airssys-web probe")], b"")
    except GuestError as e:
        raise DeployError(f"GET {path} failed: {e}") from None
    if not 200 <= resp.status < 300:
        raise DeployError(f"GET {path} answered {resp.status}, not 2xx")


def switch(registry: Registry, request: DeployRequest, report: ComponentReport, settings: VersionSettings,
           actor: str) -> Deployment:
    """The registry write that makes the change (one transaction; a canary adds the version first). ``settings``
    are the ones to store (:func:`check`'s)."""
    name, version, route, plan = request.name, request.version, request.route, request.plan
    sha, kind = report.sha256, report.kind
    if plan.strategy is Strategy.CANARY:
        registry.add_version(name, version, sha256=sha, route=route, settings=settings, allow_nested=request.nested,
                             kind=kind)
        return registry.start_canary(name, version, plan.percent, actor=actor, auto_rollback=plan.policy_text)
    return registry.deploy(name, version, sha256=sha, route=route, settings=settings, actor=actor,
                           strategy=plan.strategy.value, auto_rollback=plan.policy_text, allow_nested=request.nested,
                           kind=kind)


def _exists(registry: Registry, name: str) -> bool:
    try:
        registry.get_component(name)
    except NotFound:
        return False
    return True


def _failed(plan: Plan, step: str, e: Exception) -> Exception:
    """Name the step in a refusal while keeping its class (so the admin API keeps the right status); a guest that
    fails to start is a refusal too. Bad input (InvalidName) is about the request, not a step: it passes through
    unchanged, as does anything else (a broken registry disk, a bug)."""
    if not isinstance(e, (DeployError, GuestError)) or isinstance(e, InvalidName):
        return e
    message = f"{plan.strategy} step '{step}' failed: {e}; nothing changed"
    return type(e)(message) if type(e).__init__ is Exception.__init__ else DeployError(message)


def _record_failure(registry: Registry, request: DeployRequest, actor: str, error: Exception) -> None:
    try:
        registry.record(request.name, request.version, action="deploy", strategy=request.plan.strategy.value,
                        actor=actor, outcome="failed", detail=str(error))
    except NotFound:
        pass  # a failed first deploy leaves no component to attach the entry to
    except Exception:
        log.exception("could not record the failed deploy of %s@%s in the history", request.name, request.version)


# -- the steps, in order ------------------------------------------------------------------------------------------
class _Warmer(Protocol):
    """Where the warm step happens: in the server that will serve the version, or on a throw-away generation."""

    def warm(self, code: Code, wasm: bytes) -> Generation: ...
    def done(self, code: Code, gen: Generation) -> None: ...


def _roll_out(registry: Registry, artifacts: ArtifactCache, warmer: _Warmer | None, request: DeployRequest,
              actor: str) -> Deployment:
    """preflight, check, warm (unless ``warmer`` is None), probe, switch; a failed step is named and recorded."""
    plan = request.plan
    preflight(registry, request)
    step = "check"
    code: Code | None = None
    gen: Generation | None = None
    try:
        report, final = check(registry, artifacts, request.name, request.wasm, request.settings)
        if request.route is None and report.kind == "route" and not _exists(registry, request.name):
            raise InvalidName(f"component {request.name!r} is new: give it a route, e.g. --route /{request.name}")
        if plan.probe is not None and report.kind == "middleware":
            raise DeployError(f"--probe {plan.probe}: {request.name} is a middleware stage, which only answers in "
                              "front of a route; deploy it without --probe and probe the route")
        code = Code(request.name, request.version, report.sha256, final.json_text())
        if warmer is not None:
            step = "warm"
            gen = warmer.warm(code, request.wasm)
            if plan.probe is not None:
                step = "probe"
                probe(gen, plan.probe)
        step = "switch"
        return switch(registry, request, report, final, actor)
    except Exception as e:
        error = _failed(plan, step, e)
        _record_failure(registry, request, actor, error)
        if error is e:
            raise
        raise error from None
    finally:
        if warmer is not None and code is not None and gen is not None:
            warmer.done(code, gen)


# -- in a server: the admin API ------------------------------------------------------------------------------------
async def _off_loop(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.to_thread(fn, *args, **kwargs)


class _InHost:
    """Warm in the server itself: the generation is handed to the host and adopted by the sync after the switch."""

    def __init__(self, host: AirssysHost) -> None:
        self.host = host

    def warm(self, code: Code, wasm: bytes) -> Generation:
        return self.host.prepare(code)

    def done(self, code: Code, gen: Generation) -> None:
        self.host.discard_prepared(code)  # a no-op once the sync adopted it


async def rollout(host: AirssysHost, request: DeployRequest, *, actor: str = "admin") -> Deployment:
    """Deploy ``request`` in this server; returns once the new version serves.

    The steps run on a worker thread, never on the event loop.
    """
    dep = await _off_loop(_roll_out, host.registry, host.artifacts, _InHost(host), request, actor)
    await _off_loop(host.sync)
    return dep


async def promote(host: AirssysHost, name: str, *, actor: str = "admin") -> Deployment:
    """Make the running canary of ``name`` the active version (its generation is reused: nothing is warmed)."""
    dep = await _off_loop(host.registry.promote, name, actor=actor)
    await _off_loop(host.sync)
    return dep


async def set_pipeline(host: AirssysHost, name: str, stages: Sequence[str], *, actor: str = "admin") -> Deployment:
    """Change the pipeline in front of ``name``; returns once this server serves it (the stages are live already:
    nothing is warmed, the next route table links them)."""
    dep = await _off_loop(host.registry.set_pipeline, name, stages, actor=actor)
    await _off_loop(host.sync)
    return dep


async def rollback(host: AirssysHost, name: str, to_version: str | None = None, *, actor: str = "admin") -> Deployment:
    """Undo the last change of ``name`` (a canary goes to 0 %), or activate ``to_version``, with the settings that
    version was deployed with. The target is warmed from the artifact cache *before* the registry changes."""
    registry = host.registry
    dep = await _off_loop(registry.get_deployment, name)
    target = to_version if to_version is not None else (
        dep.active_version if dep.canary_version is not None else dep.previous_version)
    code: Code | None = None
    if target is not None and target != dep.active_version:
        info = await _off_loop(registry.get_version, name, target)
        code = Code(name, target, info.sha256, info.settings_json)
        try:
            await _off_loop(host.prepare, code)
        except Exception as e:
            host.discard_prepared(code)
            raise DeployError(f"rollback step 'warm' failed for {name}@{target}: {e}; nothing changed") from None
    try:
        dep = await _off_loop(registry.rollback, name, to_version, actor=actor)
    finally:
        if code is not None:
            host.discard_prepared(code)
    await _off_loop(host.sync)
    return dep


# -- on a registry directory: the CLI without a server -------------------------------------------------------------
class _ThrowAway:
    """Warm a generation in this process only to prove it starts (and to probe it), then close it."""

    def __init__(self, factory: GenerationFactory) -> None:
        self.factory = factory

    def warm(self, code: Code, wasm: bytes) -> Generation:
        return self.factory.build(code, wasm=wasm)

    def done(self, code: Code, gen: Generation) -> None:
        gen.close()


def rollout_local(registry: Registry, request: DeployRequest, *, actor: str = "cli",
                  artifacts: ArtifactCache | None = None) -> Deployment:
    """The same steps as :func:`rollout`, run in this process on a throw-away generation (immediate: none; the
    server warms its own), then the registry write; a server watching the registry picks the change up."""
    with contextlib.ExitStack() as stack:
        if artifacts is None:
            runtime = stack.enter_context(Runtime(threads=1))
            artifacts = ArtifactCache(registry.artifacts_dir, runtime)
        warmer: _Warmer | None = None
        if request.plan.strategy is not Strategy.IMMEDIATE:
            services = HostServices.for_registry(registry)
            stack.callback(services.close)
            warmer = _ThrowAway(GenerationFactory(artifacts.runtime, artifacts, services))
        return _roll_out(registry, artifacts, warmer, request, actor)
