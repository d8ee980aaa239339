"""airssys-web: hot-swappable WebAssembly component routes inside Python web apps.

Mount :class:`AirssysMiddleware` in a Starlette/FastAPI app; deploy components with ``airssys-web deploy`` or
:func:`deploy`; they are served without a restart.
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

from .capabilities import Capability, Grants
from .client import AdminClient
from .deploy import ComponentReport, check_component, deploy
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
from .host import AirssysHost
from .limits import Limits
from .middleware import AirssysMiddleware
from .registry import ComponentInfo, Deployment, EmbeddedRegistry, HistoryEntry, Registry, VersionInfo
from .serve import build_app

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
    "check_component",
    "deploy",
]
