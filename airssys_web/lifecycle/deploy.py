"""Deploy: validate a ``.wasm``, compile it once, and record it in the registry as the active version.

Everything that can be wrong with an upload is found here, before the registry changes: not wasm, a core module,
a component of another world, a missing ``handle`` export, an import the host cannot provide, a bad name, version
or route. The artifact is compiled and stored *before* the registry row that activates it, so a running server's
swap only loads (milliseconds) and never compiles.

Capabilities are settled here too, in two steps. :func:`plan_capabilities` (pure; the CLI runs it to show the
table) puts the given settings on top of the manifest's, lines them up with what the component declares (its
``airssys-web:needs`` section and the manifest's ``[needs]``) and refuses a declared need nothing grants.
:func:`finalize_settings` (next to the registry: ``deploy`` and the lifecycle strategies call it) re-checks the
needs, checks granted directories, and moves secret values into the registry's secret store so the stored
settings only hold references.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .. import _native
from ..capabilities.grants import Grants
from ..capabilities.needs import NeedsCheck, check_needs, grant_declared, read_needs, with_defaults
from ..errors import CapabilityError, InvalidComponent
from ..runtime.artifacts import ArtifactCache, Component, sha256_hex
from ..runtime.engine import Runtime
from ..runtime.imports import HANDLER_INTERFACE, HostBridge, HostContext
from ..runtime.instance import GuestFault, Slot, native_error
from ..runtime.limits import Limits
from ..runtime.platform import group_interfaces, unavailable_imports
from ..runtime.worlds import is_middleware, world_of_exports
from .manifest import Manifest, find_manifest, load_manifest
from .registry import Deployment, Registry, validate_name, validate_route, validate_version
from .services import state_dir
from .settings import VersionSettings, union_needs

log = logging.getLogger("airssys_web.lifecycle.deploy")

_COMPONENT_HEADER = b"\x00asm\x0d\x00\x01\x00"
_MODULE_HEADER = b"\x00asm\x01\x00\x00\x00"


@dataclass(frozen=True)
class ComponentReport:
    """What deploy learned about a component (shown by the CLI)."""

    sha256: str
    size: int
    imports: tuple[str, ...]
    exports: tuple[str, ...]
    world: str = "airssys:web"  # or "wasi:http": the world it serves (runtime.worlds)
    #: Imports the host does not provide (wasi:http components): linked so that a call fails (runtime.platform).
    unavailable: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        """``middleware`` for a stage (it imports the handler it passes requests on to), else ``route``."""
        return "middleware" if is_middleware(self.imports) else "route"


def check_component(wasm: bytes, artifacts: ArtifactCache, *, label: str = "component",
                    settings: dict[str, Any] | None = None) -> tuple[Component, ComponentReport]:
    """Compile ``wasm`` (storing its artifact) and prove it fits the ``airssys:web/route`` world or wasi:http
    (``wasi:http/proxy`` 0.2 or ``wasi:http/service`` 0.3; ``report.world`` says which)."""
    if len(wasm) < 8 or wasm[:4] != b"\x00asm":
        raise InvalidComponent(f"{label} is not a WebAssembly file (it does not start with \\0asm)")
    if wasm[:8] == _MODULE_HEADER:
        raise InvalidComponent(
            f"{label} is a core WebAssembly module, not a component; build it for the component model "
            "(componentize-py, componentize-qjs, or `wasm-tools component new`)")
    if wasm[:8] != _COMPONENT_HEADER:
        raise InvalidComponent(f"{label} has an unsupported WebAssembly version/layer {wasm[4:8].hex()}")
    sha = sha256_hex(wasm)
    limits = Limits.from_dict((settings or {}).get("limits"))
    fuel = limits.fuel is not None
    component = artifacts.get(sha, wasm, fuel=fuel)  # a verified stored artifact of the same bytes is reused
    exports = tuple(component.exports())
    imports = tuple(component.imports())
    world = world_of_exports(exports)
    if world is None:
        found = ", ".join(exports) or "nothing"
        raise InvalidComponent(
            f"{label} does not export {HANDLER_INTERFACE} (it exports: {found}); "
            "build it against the airssys:web/route world (`airssys-web wit` prints it) "
            "or the standard wasi:http/proxy world (exporting wasi:http/incoming-handler@0.2.x, or "
            "wasi:http/handler@0.3.x)")
    # A trial instantiation (with the granted directories and the limits) proves every import is satisfiable,
    # the handler has the contract's signature, every preopen opens and the guest starts within its memory cap.
    ctx = HostContext(component=label, version="check", files=Grants.from_settings(settings or {}).files, fuel=fuel)
    trial = Limits(timeout=min(limits.timeout, 30.0), memory=limits.memory, fuel=limits.fuel, min_instances=0,
                   max_instances=1)
    try:
        pre = _native.Pre(artifacts.runtime.native, component, tag=label, preopens=[(f.host, f.guest, f.writable)
                                                                        for f in ctx.files],
                          memory=trial.memory, timeout=trial.timeout, fuel=trial.fuel, host=HostBridge(ctx))
    except GuestFault as e:
        raise native_error(e, ctx, trial) from None
    Slot(pre, ctx, trial).close()
    return component, ComponentReport(sha, len(wasm), imports, exports, world, tuple(pre.unavailable))


# -- capabilities ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CapabilityPlan:
    """Settings ready for :func:`deploy` (secrets still held as values) and the needs-vs-grants table to show."""

    settings: VersionSettings
    check: NeedsCheck


def plan_capabilities(wasm: bytes, *, settings: VersionSettings | None = None, manifest: Manifest | None = None,
                      grant_declared_needs: bool = False, enforce: bool = True) -> CapabilityPlan:
    """``settings`` on top of the manifest's (given limits and grants win), checked against the declared needs.

    Raises CapabilityError naming each declared need nothing grants (``grant_declared_needs`` first grants what
    can be granted without the operator: origins, KV, config defaults), unless ``enforce`` is False (the caller
    then shows ``plan.check`` and calls ``plan.check.raise_for_missing()`` itself).
    """
    merged = (manifest.settings if manifest is not None else VersionSettings()).merged(settings or VersionSettings())
    needs = union_needs(read_needs(wasm, lenient=True), merged.needs)
    grants = merged.grants
    if needs is not None and grant_declared_needs:
        grants = grant_declared(needs, grants)
    check = check_needs(needs, grants, unavailable=group_interfaces(unavailable_imports(wasm)))
    if enforce:
        check.raise_for_missing()
    return CapabilityPlan(merged.replace(grants=with_defaults(needs, grants), needs=needs), check)


def finalize_settings(registry: Registry, wasm: bytes, settings: VersionSettings) -> VersionSettings:
    """The settings to store for a version: needs re-checked, directories resolved and checked, secret values moved
    into the registry's secret store (only references remain)."""
    root = state_dir(registry)
    files = [f.checked() for f in settings.grants.files]
    if root is not None:
        reg = root.resolve()
        for f in files:
            host = Path(f.host)
            if host == reg or reg.is_relative_to(host) or host.is_relative_to(reg):
                raise CapabilityError(f"--allow-file {f.host}: that directory holds or is inside the registry "
                                      f"({reg}), which keeps secrets and other components' data; grant another one")
    grants = Grants.of(settings.grants, files)
    needs = union_needs(read_needs(wasm, lenient=True), settings.needs)
    check_needs(needs, grants).raise_for_missing()
    return settings.replace(grants=grants, needs=needs).with_secrets_stored(registry.secrets)


def read_wasm(file: str | Path) -> bytes:
    """The bytes of a ``.wasm`` file; InvalidComponent naming the file if it cannot be read or is not wasm."""
    path = Path(file)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InvalidComponent(f"file not found: {path}") from None
    except IsADirectoryError:
        raise InvalidComponent(f"{path} is a directory; give the built .wasm file") from None
    except OSError as e:
        raise InvalidComponent(f"cannot read {path}: {e.strerror or e}") from None
    if not data.startswith(b"\x00asm"):
        hint = (f"build it first (airssys-web build {path}) and give the .wasm" if path.suffix in (".wat", ".py", ".js")
                else "give the .wasm file `airssys-web build` writes")
        raise InvalidComponent(f"{path} is not a WebAssembly file (it does not start with \\0asm); {hint}")
    return data


def deploy(registry: Registry, name: str, wasm: bytes | str | Path, *, version: str, route: str | None = None,
           settings: VersionSettings | None = None, manifest: Manifest | str | Path | Literal[False] | None = None,
           allow_nested: bool = False, actor: str = "cli", artifacts: ArtifactCache | None = None) -> Deployment:
    """Validate, compile, store and activate a component version. Raises a DeployError or CapabilityError;
    nothing changes then.

    ``route`` is required for a new route component (and refused for a middleware stage, which runs in front of
    routes: see ``Registry.set_pipeline``); without it an existing component keeps its route. A route under
    or above another component's route needs ``allow_nested=True`` (see :mod:`airssys_web.lifecycle.registry.rules`).
    ``settings`` (grants, limits: :class:`~airssys_web.lifecycle.settings.VersionSettings`) go on top of the
    ``manifest``'s (default: the ``airssys.toml`` next to ``wasm`` when it is a path; ``False``: none).
    ``artifacts`` compiles on a runtime the caller already has (default: a small one made for this deploy).
    """
    validate_name(name)
    validate_version(version)
    if route is not None:
        registry.check_route(name, validate_route(route), allow_nested=allow_nested)  # before compiling anything
    if manifest is None and isinstance(wasm, (str, Path)):
        manifest = find_manifest(wasm) or False
    loaded = load_manifest(manifest) if isinstance(manifest, (str, Path)) else manifest or None
    data = read_wasm(wasm) if isinstance(wasm, str | Path) else bytes(wasm)
    plan = plan_capabilities(data, settings=settings, manifest=loaded)
    final = finalize_settings(registry, data, plan.settings)
    if artifacts is None:
        with Runtime(threads=1) as runtime:
            _, report = check_component(data, ArtifactCache(registry.artifacts_dir, runtime), label=name,
                                        settings=final.to_json())
    else:
        _, report = check_component(data, artifacts, label=name, settings=final.to_json())
    sha = registry.blobs.put(data)
    assert sha == report.sha256
    dep = registry.deploy(name, version, sha256=sha, route=route, settings=final, actor=actor,
                          allow_nested=allow_nested, kind=report.kind)
    log.info("deployed %s@%s %s (sha256 %s)", name, version,
             f"at {dep.route}" if dep.route is not None else "as a middleware stage", sha[:12])
    return dep
