"""airssys-web: hot-swappable WebAssembly component routes inside Python web apps.

Mount :class:`AirssysMiddleware` in a Starlette/FastAPI app; deploy components with ``airssys-web deploy`` or
:func:`deploy`; they are served without a restart. Test a component in-process with :class:`ComponentClient`.

The package is layered (each layer imports only the ones below it):

* ``cli`` - the ``airssys-web`` command: parses, calls the layers below, renders;
* ``web`` - the ASGI middleware, the admin API and its tokens, ``serve``; ``guest`` - building, scaffolding,
  testing and live-reloading components, and the guest SDKs;
* ``lifecycle`` - the registry, deploy checks, roll-out strategies, auto-rollback, and the host that keeps live
  generations in step with the registry;
* ``runtime`` - the wasm side (engines, artifacts, instances, pools, generations, the two worlds), on the Rust
  extension ``_native``; ``capabilities`` - grants and the policies behind them (outbound, KV, secrets, needs);
* ``errors`` and ``units``, used by all.

The names below are imported on first use (PEP 562), so ``import airssys_web`` and ``airssys-web --help`` stay fast.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version
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
    PoolExhausted,
    RegistryError,
    RouteConflict,
    VersionExists,
)

if TYPE_CHECKING:
    from .capabilities.grants import Capability, Grants
    from .guest.build import build_component
    from .guest.testing import ComponentClient
    from .lifecycle.deploy import ComponentReport, check_component, deploy
    from .lifecycle.host import AirssysHost
    from .lifecycle.registry import ComponentInfo, Deployment, EmbeddedRegistry, HistoryEntry, Registry, VersionInfo
    from .lifecycle.remote import AdminClient
    from .runtime.limits import Limits
    from .web.middleware import AirssysMiddleware
    from .web.serve import build_app

#: public name -> the module that defines it
_LAZY = {
    "AdminClient": "lifecycle.remote",
    "AirssysHost": "lifecycle.host",
    "AirssysMiddleware": "web.middleware",
    "Capability": "capabilities.grants",
    "ComponentClient": "guest.testing",
    "ComponentInfo": "lifecycle.registry",
    "ComponentReport": "lifecycle.deploy",
    "Deployment": "lifecycle.registry",
    "EmbeddedRegistry": "lifecycle.registry",
    "Grants": "capabilities.grants",
    "HistoryEntry": "lifecycle.registry",
    "Limits": "runtime.limits",
    "Registry": "lifecycle.registry",
    "VersionInfo": "lifecycle.registry",
    "build_app": "web.serve",
    "build_component": "guest.build",
    "check_component": "lifecycle.deploy",
    "deploy": "lifecycle.deploy",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'airssys_web' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # the next access is a plain lookup
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


try:
    __version__ = _version("airssys-web")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = [
    "AdminClient",
    "AirssysError",
    "AirssysHost",
    "AirssysMiddleware",
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
    "Limits",
    "NotFound",
    "OutboundDenied",
    "OutboundError",
    "OutboundTimeout",
    "PoolExhausted",
    "Registry",
    "RegistryError",
    "RouteConflict",
    "VersionExists",
    "VersionInfo",
    "__version__",
    "build_app",
    "build_component",
    "check_component",
    "deploy",
]
