"""The registry: which components exist, their immutable versions, and which version serves each route.

``base`` holds what every flavour shares (rules, records, the ``Registry`` protocol); ``embedded`` is the default
flavour, a local directory of blobs plus SQLite.
"""

from .base import (
    MAX_ROUTE_LEN,
    MAX_VERSION_LEN,
    AuditEntry,
    ComponentInfo,
    Deployment,
    HistoryEntry,
    Registry,
    VersionInfo,
    settings_json,
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
    "AuditEntry",
    "ComponentInfo",
    "Deployment",
    "EmbeddedRegistry",
    "HistoryEntry",
    "Registry",
    "VersionInfo",
    "settings_json",
    "validate_name",
    "validate_route",
    "validate_version",
    "version_key",
]
