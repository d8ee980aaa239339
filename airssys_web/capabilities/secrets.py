"""Secret values granted to components, kept out of every listing, log and error message.

A version's settings (shown by ``list``/``status``, compared on redeploy, returned by the API) hold only a
*reference* to each secret. The value lives in ``<registry>/secrets/<ref>`` (directory 0700, files 0600), where
the reference is an HMAC-SHA256 of the value under a random per-registry key: equal values get equal references
(so redeploying the same version with the same secret is a no-op), yet a reference reveals nothing about a
low-entropy value to anyone who can read the settings but not the key.

A Redis registry keeps the key and the values in Redis instead (:class:`~.redis_stores.RedisSecretStore`), so
every host can read what a deploy through any of them stored; both implement :class:`SecretBackend`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets as _random
from pathlib import Path
from typing import Protocol

from .._files import write_atomic
from ..errors import CapabilityError

REF = re.compile(r"hmac-sha256:[0-9a-f]{64}")


class SecretStore:
    """Write-once, content-addressed secret values in a directory only the registry's owner can read."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def _key(self) -> bytes:
        path = self.directory / ".key"
        try:
            return path.read_bytes()
        except FileNotFoundError:
            pass
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = _random.token_bytes(32)
        try:  # O_EXCL: two deployers racing both end up with the first key
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_bytes()
        with os.fdopen(fd, "wb") as f:
            f.write(key)
            f.flush()
            os.fsync(f.fileno())
        return key

    def put(self, value: str) -> str:
        """Store ``value`` (idempotent) and return its reference."""
        data = value.encode("utf-8")
        ref = "hmac-sha256:" + hmac.new(self._key(), data, hashlib.sha256).hexdigest()
        path = self._path(ref)
        if not path.exists():
            write_atomic(path, data)  # created 0600
        return ref

    def get(self, ref: str) -> str:
        """The value behind ``ref``; CapabilityError (naming only the reference) if it is missing."""
        try:
            return self._path(ref).read_bytes().decode("utf-8")
        except FileNotFoundError:
            raise CapabilityError(f"secret {ref[:24]}... is missing from {self.directory}; deploy it again") from None

    def derive_key(self, purpose: str) -> bytes:
        """A key for ``purpose`` derived from this registry's random key (see :class:`SecretBackend`)."""
        return hmac.new(self._key(), purpose.encode("utf-8"), hashlib.sha256).digest()

    def _path(self, ref: str) -> Path:
        if not REF.fullmatch(ref):
            raise CapabilityError("malformed secret reference in the version's settings")
        return self.directory / ref.partition(":")[2]


class SecretBackend(Protocol):
    """Where a registry keeps secret values: :class:`SecretStore` (a directory) or :class:`RedisSecretStore`."""

    def put(self, value: str) -> str:
        """Store ``value`` (idempotent) and return its reference."""
        ...

    def get(self, ref: str) -> str:
        """The value behind ``ref``; CapabilityError (naming only the reference) if it is missing."""
        ...

    def derive_key(self, purpose: str) -> bytes:
        """A key for ``purpose`` derived from the store's random key: the same in every process that opens the same
        registry (e.g. to sign canary cookies that every worker and host must accept)."""
        ...

