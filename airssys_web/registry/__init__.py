"""The registry: which components exist, their immutable versions, and which version serves each route.

``base`` holds what every flavour shares (rules, records, the ``Registry`` protocol); ``embedded`` is the default
flavour, a local directory of blobs plus SQLite.
"""

from .base import (
    MAX_ROUTE_LEN,
    MAX_VERSION_LEN,
    ComponentInfo,
    Deployment,
    HistoryEntry,
    Registry,
    VersionInfo,
    validate_name,
    validate_route,
    validate_version,
    version_key,
)
from .embedded import SCHEMA_VERSION, EmbeddedRegistry

__all__ = [
    "MAX_ROUTE_LEN",
    "MAX_VERSION_LEN",
    "SCHEMA_VERSION",
    "ComponentInfo",
    "Deployment",
    "EmbeddedRegistry",
    "HistoryEntry",
    "Registry",
    "VersionInfo",
    "validate_name",
    "validate_route",
    "validate_version",
    "version_key",
]
