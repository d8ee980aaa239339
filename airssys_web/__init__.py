"""airssys-web: hot-swappable WebAssembly component routes inside Python web apps.

Mount :class:`AirssysMiddleware` in a Starlette/FastAPI app, or :class:`AirssysWSGIMiddleware` in a Flask, Django or
other WSGI app; deploy components with ``airssys-web deploy`` or :func:`deploy` (or any :class:`Lifecycle`:
:class:`LocalLifecycle` on a registry, :class:`RemoteLifecycle` through a server's admin API); they are served
without a restart. Test a component in-process with :class:`ComponentClient`.

The package is layered (each layer imports only the ones below it):

* ``cli`` - the ``airssys-web`` command: parses, calls the layers below, renders;
* ``web`` - the ASGI middleware and its WSGI adapter, the admin API and its tokens, ``serve``; ``guest`` -
  building, scaffolding, testing and live-reloading components, and the guest SDKs;
* ``lifecycle`` - the registry, deploy checks, roll-out strategies, auto-rollback, and the host that keeps live
  generations in step with the registry;
* ``runtime`` - the wasm side (engines, artifacts, instances, pools, generations, the two worlds), on the Rust
  extension ``_native``; ``capabilities`` - grants and the policies behind them (outbound, KV, secrets, needs);
* ``errors``, ``units`` and ``observability`` (metrics, logs, traces), used by all.

The names below are imported on first use (PEP 562), so ``import airssys_web`` and ``airssys-web --help`` stay fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    AirssysError,
    ArtifactError,
    AuthError,
    BadGuestResponse,
    BuildError,
    CapabilityError,
    Conflict,
    DeployError,
    GuestError,
    GuestMemoryLimit,
    GuestTimeout,
    GuestTrap,
    InvalidComponent,
    InvalidName,
    KVError,
    NotFound,
    OutboundDenied,
    OutboundError,
    OutboundTimeout,
    PipelineError,
    PoolExhausted,
    RegistryError,
    RegistryUnavailable,
    RouteConflict,
    VersionExists,
)

if TYPE_CHECKING:
    from .capabilities.grants import Capability, Grants
    from .guest.build import build_component
    from .guest.testing import ComponentClient
    from .lifecycle.api import DeployRequest, Lifecycle
    from .lifecycle.deploy import ComponentReport, check_component, deploy
    from .lifecycle.host import AirssysHost
    from .lifecycle.local import LocalLifecycle
    from .lifecycle.pipeline import Pipeline
    from .lifecycle.registry import (
        ComponentInfo,
        Deployment,
        EmbeddedRegistry,
        HistoryEntry,
        Registry,
        VersionInfo,
        open_registry,
    )
    from .lifecycle.registry.redis_registry import RedisRegistry
    from .lifecycle.remote import RemoteLifecycle
    from .lifecycle.settings import VersionSettings
    from .observability.logs import configure_logging
    from .runtime.limits import Limits
    from .web.middleware import AirssysMiddleware
    from .web.serve import build_app
    from .web.wsgi import AirssysWSGIMiddleware

#: public name -> the module that defines it
_LAZY = {
    "AirssysHost": "lifecycle.host",
    "AirssysMiddleware": "web.middleware",
    "AirssysWSGIMiddleware": "web.wsgi",
    "Capability": "capabilities.grants",
    "ComponentClient": "guest.testing",
    "ComponentInfo": "lifecycle.registry",
    "ComponentReport": "lifecycle.deploy",
    "DeployRequest": "lifecycle.api",
    "Deployment": "lifecycle.registry",
    "EmbeddedRegistry": "lifecycle.registry",
    "Grants": "capabilities.grants",
    "HistoryEntry": "lifecycle.registry",
    "Lifecycle": "lifecycle.api",
    "Limits": "runtime.limits",
    "LocalLifecycle": "lifecycle.local",
    "Pipeline": "lifecycle.pipeline",
    "RedisRegistry": "lifecycle.registry.redis_registry",
    "Registry": "lifecycle.registry",
    "RemoteLifecycle": "lifecycle.remote",
    "VersionInfo": "lifecycle.registry",
    "VersionSettings": "lifecycle.settings",
    "build_app": "web.serve",
    "build_component": "guest.build",
    "check_component": "lifecycle.deploy",
    "configure_logging": "observability.logs",
    "deploy": "lifecycle.deploy",
    "open_registry": "lifecycle.registry",
}


def __getattr__(name: str) -> Any:
    if name == "__version__":  # importlib.metadata alone costs ~30 ms: only when asked
        value: Any = _installed_version()
    elif name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    else:
        raise AttributeError(f"module 'airssys_web' has no attribute {name!r}")
    globals()[name] = value  # the next access is a plain lookup
    return value


def _installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("airssys-web")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
        return "0.0.0"


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | {"__version__"})

__all__ = [
    "AirssysError",
    "AirssysHost",
    "AirssysMiddleware",
    "AirssysWSGIMiddleware",
    "ArtifactError",
    "AuthError",
    "BadGuestResponse",
    "BuildError",
    "Capability",
    "CapabilityError",
    "ComponentClient",
    "ComponentInfo",
    "ComponentReport",
    "Conflict",
    "DeployError",
    "DeployRequest",
    "Deployment",
    "EmbeddedRegistry",
    "Grants",
    "GuestError",
    "GuestMemoryLimit",
    "GuestTimeout",
    "GuestTrap",
    "HistoryEntry",
    "InvalidComponent",
    "InvalidName",
    "KVError",
    "Lifecycle",
    "Limits",
    "LocalLifecycle",
    "NotFound",
    "OutboundDenied",
    "OutboundError",
    "OutboundTimeout",
    "Pipeline",
    "PipelineError",
    "PoolExhausted",
    "RedisRegistry",
    "Registry",
    "RegistryError",
    "RegistryUnavailable",
    "RemoteLifecycle",
    "RouteConflict",
    "VersionExists",
    "VersionInfo",
    "VersionSettings",
    "__version__",
    "build_app",
    "build_component",
    "check_component",
    "configure_logging",
    "deploy",
    "open_registry",
]
