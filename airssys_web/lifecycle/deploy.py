"""Deploy: validate a ``.wasm``, compile it once, and record it in the registry as the active version.

Everything that can be wrong with an upload is found here, before the registry changes: not wasm, a core module,
a component of another world, a missing ``handle`` export, an import the host cannot provide, a bad name, version
or route. The artifact is compiled and stored *before* the registry row that activates it, so a running server's
swap only loads (milliseconds) and never compiles.

Capabilities are settled here too, in two steps. :func:`plan_capabilities` (pure; the CLI runs it to show the
table) merges the manifest, the settings and explicit grants, lines them up with what the component declares
(its ``airssys-web:needs`` section and the manifest's ``[needs]``) and refuses a declared need nothing grants.
:func:`finalize_settings` (next to the registry: ``deploy`` and the lifecycle strategies call it) re-validates
everything, checks granted directories, and moves secret values into the registry's secret store so the stored
settings only hold references.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .. import _native
from ..capabilities.grants import Capability, Grants
from ..capabilities.needs import Needs, NeedsCheck, check_needs, grant_declared, read_needs, with_defaults
from ..capabilities.secrets import SecretStore
from ..errors import CapabilityError, InvalidComponent, InvalidName
from ..runtime.artifacts import ArtifactCache, Component, sha256_hex
from ..runtime.engine import Runtime
from ..runtime.imports import HANDLER_INTERFACE, HostBridge, HostContext
from ..runtime.instance import GuestFault, Slot, native_error
from ..runtime.limits import Limits
from ..runtime.platform import group_interfaces, unavailable_imports
from ..runtime.worlds import world_of_exports
from .manifest import Manifest, find_manifest, load_manifest
from .registry import Deployment, Registry, validate_name, validate_route, validate_version
from .services import SECRETS_DIR, state_dir

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
_SETTINGS_KEYS = frozenset({"limits", "outbound", "files", "config", "secrets", "kv", "needs"})


@dataclass(frozen=True)
class CapabilityPlan:
    """Settings ready for :func:`deploy` (secrets still in clear) and the needs-vs-grants table to show."""

    settings: dict[str, Any]
    check: NeedsCheck


def _split(settings: Mapping[str, Any] | None) -> tuple[Grants, dict[str, Any], Needs | None]:
    settings = dict(settings or {})
    unknown = sorted(set(settings) - _SETTINGS_KEYS)
    if unknown:
        known = ", ".join(sorted(_SETTINGS_KEYS))
        raise CapabilityError(f"unknown settings key(s) {', '.join(unknown)}; known: {known}")
    limits = settings.get("limits") or {}
    if not isinstance(limits, dict):
        raise CapabilityError("settings 'limits' must be a table such as {\"timeout\": 5}")
    needs = Needs.from_dict(settings["needs"], source="settings 'needs'") if settings.get("needs") is not None else None
    return Grants.from_settings(settings), Limits.canonical(limits), needs


def _union(*needs: Needs | None) -> Needs | None:
    present = [n for n in needs if n is not None]
    if not present:
        return None
    out = present[0]
    for n in present[1:]:
        out = out | n
    return out


def plan_capabilities(wasm: bytes, *, settings: Mapping[str, Any] | None = None,
                      grants: Grants | Iterable[Capability] = (), limits: Mapping[str, Any] | Limits | None = None,
                      manifest: Manifest | None = None, grant_declared_needs: bool = False,
                      enforce: bool = True) -> CapabilityPlan:
    """Merge manifest < settings < ``grants``/``limits`` (later wins), check them against the declared needs.

    Raises CapabilityError naming each declared need nothing grants (``grant_declared_needs`` first grants what
    can be granted without the operator: origins, KV, config defaults), unless ``enforce`` is False (the caller
    then shows ``plan.check`` and calls ``plan.check.raise_for_missing()`` itself).
    """
    base, base_limits, settings_needs = _split(settings)
    merged = Grants.of(manifest.grants if manifest else (), base, grants)
    merged_limits = Limits.canonical({**(manifest.limits if manifest else {}), **base_limits,
                                      **(limits.to_dict() if isinstance(limits, Limits) else dict(limits or {}))})
    needs = _union(read_needs(wasm, lenient=True), manifest.needs if manifest else None, settings_needs)
    if needs is not None and grant_declared_needs:
        merged = grant_declared(needs, merged)
    check = check_needs(needs, merged, unavailable=group_interfaces(unavailable_imports(wasm)))
    if enforce:
        check.raise_for_missing()
    merged = with_defaults(needs, merged)
    out: dict[str, Any] = {"limits": merged_limits} if merged_limits else {}
    out.update(merged.to_settings(reveal=True))
    if needs is not None:
        out["needs"] = needs.to_dict()
    return CapabilityPlan(out, check)


def finalize_settings(registry: Registry, wasm: bytes, settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """The settings to store for a version: validated, needs re-checked, directories resolved and checked, secret
    values moved into the registry's secret store (only references remain)."""
    grants, limits, settings_needs = _split(settings)
    root = state_dir(registry)
    files = [f.checked() for f in grants.files]
    if root is not None:
        reg = root.resolve()
        for f in files:
            host = Path(f.host)
            if host == reg or reg.is_relative_to(host) or host.is_relative_to(reg):
                raise CapabilityError(f"--allow-file {f.host}: that directory holds or is inside the registry "
                                      f"({reg}), which keeps secrets and other components' data; grant another one")
    grants = Grants.of(grants, files)
    needs = _union(read_needs(wasm, lenient=True), settings_needs)
    check_needs(needs, grants).raise_for_missing()
    store = SecretStore(root / SECRETS_DIR) if root is not None else None
    out: dict[str, Any] = {"limits": limits} if limits else {}  # empty settings stay "{}" (idempotent redeploys)
    out.update(grants.to_settings(store))
    if needs is not None:
        out["needs"] = needs.to_dict()
    return out


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
           settings: dict[str, Any] | None = None, grants: Grants | Iterable[Capability] = (),
           limits: Mapping[str, Any] | Limits | None = None,
           manifest: Manifest | str | Path | Literal[False] | None = None, grant_declared_needs: bool = False,
           actor: str = "cli", strategy: str = "immediate", artifacts: ArtifactCache | None = None,
           allow_nested: bool = False) -> Deployment:
    """Validate, compile, store and activate a component version. Raises a DeployError or CapabilityError;
    nothing changes then.

    ``route`` is required for a new component; without it an existing component keeps its route. A route under
    or above another component's route needs ``allow_nested=True`` (see :mod:`airssys_web.lifecycle.registry.base`).
    Grants come from ``manifest`` (default: the ``airssys.toml`` next to ``wasm`` when it is a path; ``False``:
    none), then ``settings`` (the stored JSON form), then ``grants``
    (:class:`~airssys_web.capabilities.grants.Capability` values) and ``limits``; later sources win.
    """
    validate_name(name)
    validate_version(version)
    if route is not None:
        registry.check_route(name, validate_route(route), allow_nested=allow_nested)  # before compiling anything
    elif not any(c.name == name for c in registry.components()):
        raise InvalidName(f"component {name!r} is new: give it a route, e.g. --route /{name}")
    if manifest is None and isinstance(wasm, (str, Path)):
        manifest = find_manifest(wasm) or False
    loaded = load_manifest(manifest) if isinstance(manifest, (str, Path)) else manifest or None
    data = read_wasm(wasm) if isinstance(wasm, str | Path) else bytes(wasm)
    plan = plan_capabilities(data, settings=settings, grants=grants, limits=limits, manifest=loaded,
                             grant_declared_needs=grant_declared_needs)
    final = finalize_settings(registry, data, plan.settings)
    if artifacts is None:
        with Runtime(threads=1) as runtime:
            _, report = check_component(data, ArtifactCache(registry.artifacts_dir, runtime), label=name,
                                        settings=final)
    else:
        _, report = check_component(data, artifacts, label=name, settings=final)
    sha = registry.put_blob(data)
    assert sha == report.sha256
    dep = registry.deploy(name, version, sha256=sha, route=route, settings=final, actor=actor,
                          strategy=strategy, allow_nested=allow_nested)
    log.info("deployed %s@%s at %s (sha256 %s)", name, version, dep.route, sha[:12])
    return dep
