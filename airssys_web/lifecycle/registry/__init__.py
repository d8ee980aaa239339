"""The registry: which components exist, their immutable versions, and which version serves each route.

``base`` holds the protocols every flavour implements (:class:`BlobStore`, :class:`Registry`, :class:`AuditLog`),
``records`` the values they return, ``rules`` the validation they share; ``embedded`` is the default flavour, a local
directory of blobs (``blobs``) plus SQLite (``sqlite``); ``redis_registry`` keeps the same in a Redis server that
several hosts share (``redis_store``: its connection, key layout, blobs and audit log; ``redis_tx``: its rows and
transactions).

:func:`open_registry` opens one from where the user wrote it: a directory, or a ``redis://`` URL.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from airssys_web.errors import InvalidName

from .base import AuditLog, BlobStore, ChangeFeed, OutcomeCounters, Registry
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

if TYPE_CHECKING:
    from .redis_registry import RedisRegistry


def is_redis_location(location: object) -> bool:
    """Whether ``location`` is written as a Redis URL (``redis://``, ``rediss://``, ``unix://``) rather than a
    directory."""
    return isinstance(location, str) and location.partition("://")[0] in ("redis", "rediss", "unix") and (
        "://" in location)


def open_registry(location: str | Path | Registry) -> Registry:
    """The registry at ``location``: a :class:`Registry` as it is, a ``redis://host:port/db`` URL (a
    :class:`RedisRegistry`; RegistryUnavailable if Redis does not answer), or a directory (an
    :class:`EmbeddedRegistry`, created if missing). The caller closes what this opened."""
    if isinstance(location, (str, Path)):
        if is_redis_location(location):
            from .redis_registry import RedisRegistry  # redis-py is only imported by those who use it

            return RedisRegistry(str(location))
        if isinstance(location, str) and "://" in location:
            raise InvalidName(f"unknown registry location {location!r}: give a directory, or a Redis URL such as "
                              "redis://127.0.0.1:6379/0")
        return EmbeddedRegistry(location)
    return location


def describe_location(location: str | Path) -> str:
    """``location`` for messages (a Redis URL without its password)."""
    if is_redis_location(location):
        from .redis_store import RedisLocation

        try:
            return str(RedisLocation.parse(str(location)))
        except InvalidName:
            return "a Redis URL"
    return str(location)


def __getattr__(name: str) -> object:
    if name == "RedisRegistry":  # PEP 562: importing the package does not import redis-py
        from .redis_registry import RedisRegistry

        return RedisRegistry
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "MAX_ROUTE_LEN",
    "MAX_VERSION_LEN",
    "SCHEMA_VERSION",
    "AuditEntry",
    "AuditLog",
    "BlobStore",
    "ChangeFeed",
    "ComponentInfo",
    "Deployment",
    "DirectoryBlobStore",
    "EmbeddedRegistry",
    "HistoryEntry",
    "OutcomeCounters",
    "RedisRegistry",
    "Registry",
    "VersionInfo",
    "describe_location",
    "is_redis_location",
    "open_registry",
    "validate_name",
    "validate_route",
    "validate_sha256",
    "validate_version",
    "version_key",
]
