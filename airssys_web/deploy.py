"""Deploy: validate a ``.wasm``, compile it once, and record it in the registry as the active version.

Everything that can be wrong with an upload is found here, before the registry changes: not wasm, a core module,
a component of another world, a missing ``handle`` export, an import the host cannot provide, a bad name, version
or route. The artifact is compiled and stored *before* the registry row that activates it, so a running server's
swap only loads (milliseconds) and never compiles.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import wasmtime
from wasmtime.component import Component, ComponentInstanceType, FuncType, RecordType

from .errors import InvalidComponent
from .limits import Limits
from .registry import Deployment, Registry, validate_name, validate_route, validate_version
from .runtime.artifacts import ArtifactCache, sha256_hex
from .runtime.engine import get_engine
from .runtime.imports import HANDLER_INTERFACE, HostContext, build_linker
from .runtime.instance import Slot

log = logging.getLogger("airssys_web.deploy")

_COMPONENT_HEADER = b"\x00asm\x0d\x00\x01\x00"
_MODULE_HEADER = b"\x00asm\x01\x00\x00\x00"


@dataclass(frozen=True)
class ComponentReport:
    """What deploy learned about a component (shown by the CLI)."""

    sha256: str
    size: int
    imports: tuple[str, ...]
    exports: tuple[str, ...]


def check_component(wasm: bytes, artifacts: ArtifactCache, *, label: str = "component",
                    settings: dict[str, Any] | None = None) -> tuple[Component, ComponentReport]:
    """Compile ``wasm`` (storing its artifact) and prove it fits the ``airssys:web/route`` world."""
    if len(wasm) < 8 or wasm[:4] != b"\x00asm":
        raise InvalidComponent(f"{label} is not a WebAssembly file (it does not start with \\0asm)")
    if wasm[:8] == _MODULE_HEADER:
        raise InvalidComponent(
            f"{label} is a core WebAssembly module, not a component; build it for the component model "
            "(componentize-py, componentize-qjs, or `wasm-tools component new`)")
    if wasm[:8] != _COMPONENT_HEADER:
        raise InvalidComponent(f"{label} has an unsupported WebAssembly version/layer {wasm[4:8].hex()}")
    sha = sha256_hex(wasm)
    component = artifacts.compile(wasm, sha=sha)
    engine = get_engine()
    ctype = component.type
    exports = ctype.exports(engine)
    imports = tuple(sorted(ctype.imports(engine)))
    _check_handler_export(exports, label)
    # A trial instantiation proves every import is satisfiable and the guest starts.
    ctx = HostContext(component=label, version="check")
    limits = Limits.from_dict((settings or {}).get("limits"))
    slot = Slot(component, build_linker(ctx), ctx, Limits(timeout=min(limits.timeout, 30.0), memory=limits.memory,
                                                          min_instances=0, max_instances=1))
    slot.close()
    return component, ComponentReport(sha, len(wasm), imports, tuple(sorted(exports)))


def _check_handler_export(exports: dict[str, Any], label: str) -> None:
    item = exports.get(HANDLER_INTERFACE)
    if item is None:
        found = ", ".join(sorted(exports)) or "nothing"
        raise InvalidComponent(
            f"{label} does not export {HANDLER_INTERFACE} (it exports: {found}); "
            "build it against the airssys:web/route world (`airssys-web wit` prints it)")
    iface = item.ty
    if not isinstance(iface, ComponentInstanceType):
        raise InvalidComponent(f"{label} exports {HANDLER_INTERFACE} but not as an interface instance")
    funcs = iface.exports(get_engine())
    handle = funcs.get("handle")
    fty = handle.ty if handle is not None else None
    if not isinstance(fty, FuncType):
        raise InvalidComponent(f"{label} lacks {HANDLER_INTERFACE}#handle")
    params = fty.params
    result = fty.result
    ok = (len(params) == 1 and isinstance(params[0][1], RecordType) and isinstance(result, RecordType)
          and [n for n, _ in result.fields] == ["status", "headers", "body"]
          and [n for n, _ in params[0][1].fields] == ["method", "path", "query", "headers", "body"])
    if not ok:
        raise InvalidComponent(
            f"{label}: {HANDLER_INTERFACE}#handle has the wrong signature; expected "
            "handle: func(req: request) -> response from airssys:web@0.1.0")


def deploy(registry: Registry, name: str, wasm: bytes | str | Path, *, version: str, route: str,
           settings: dict[str, Any] | None = None, actor: str = "cli", strategy: str = "immediate",
           artifacts: ArtifactCache | None = None) -> Deployment:
    """Validate, compile, store and activate a component version. Raises a DeployError; nothing changes then."""
    validate_name(name)
    validate_version(version)
    route = validate_route(route)
    if isinstance(wasm, (str, Path)):
        path = Path(wasm)
        try:
            wasm = path.read_bytes()
        except FileNotFoundError:
            raise InvalidComponent(f"file not found: {path}") from None
        except IsADirectoryError:
            raise InvalidComponent(f"{path} is a directory; give the built .wasm file") from None
    settings = dict(settings or {})
    Limits.from_dict(settings.get("limits"))  # validate before any work
    cache = artifacts or ArtifactCache(registry.artifacts_dir)
    try:
        _, report = check_component(wasm, cache, label=name, settings=settings)
    except wasmtime.WasmtimeError as e:  # pragma: no cover - check_component maps known failures
        raise InvalidComponent(f"{name}: {e}") from None
    sha = registry.put_blob(wasm)
    assert sha == report.sha256
    dep = registry.deploy(name, version, sha256=sha, route=route, settings=settings, actor=actor,
                          strategy=strategy)
    log.info("deployed %s@%s at %s (sha256 %s)", name, version, route, sha[:12])
    return dep
