"""The registry: which components exist, their immutable versions, and which version serves each route.

``base`` holds the protocols every flavour implements (:class:`BlobStore`, :class:`Registry`, :class:`AuditLog`),
``records`` the values they return, ``rules`` the validation they share; ``embedded`` is the default flavour, a local
directory of blobs (``blobs``) plus SQLite (``sqlite``).
"""

from .base import AuditLog, BlobStore, Registry
from .blobs import DirectoryBlobStore
from .embedded import SCHEMA_VERSION, EmbeddedRegistry
from .records import AuditEntry, ComponentInfo, Deployment, HistoryEntry, VersionInfo
from .rules import (
    MAX_ROUTE_LEN,
    MAX_VERSION_LEN,
    validate_name,
    validate_route,
    validate_sha256,
    validate_version,
    version_key,
)

__all__ = [
    "MAX_ROUTE_LEN",
    "MAX_VERSION_LEN",
    "SCHEMA_VERSION",
    "AuditEntry",
    "AuditLog",
    "BlobStore",
    "ComponentInfo",
    "Deployment",
    "DirectoryBlobStore",
    "EmbeddedRegistry",
    "HistoryEntry",
    "Registry",
    "VersionInfo",
    "validate_name",
    "validate_route",
    "validate_sha256",
    "validate_version",
    "version_key",
]
