"""The embedded registry's blob store: uploaded ``.wasm`` files in a directory, named by their SHA-256.

Layout: ``<directory>/<sha[:2]>/<sha>.wasm``, written once. A blob is written to a temporary file, fsynced and
renamed into place (and the directories fsynced) before ``put`` returns, so a registry row never names a blob a crash
could lose; at worst a ``.tmp-*`` file stays behind, which is harmless. Every read is checked against the digest.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from airssys_web._files import write_atomic
from airssys_web.errors import NotFound, RegistryError

from .rules import validate_sha256

__all__ = ["DirectoryBlobStore"]


class DirectoryBlobStore:
    """A :class:`~.base.BlobStore` in ``directory`` (created if missing)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RegistryError(f"cannot create blob directory {self.directory}: {exc}") from exc

    def path(self, sha256: str) -> Path:
        """Where the blob named ``sha256`` is (or would be) stored."""
        validate_sha256(sha256)
        return self.directory / sha256[:2] / f"{sha256}.wasm"

    def put(self, data: bytes) -> str:
        """Store ``data`` durably under its SHA-256 and return the digest; storing it again is a no-op."""
        sha = hashlib.sha256(data).hexdigest()
        path = self.path(sha)
        try:
            if path.is_file() and _file_sha(path) == sha:
                return sha
            path.parent.mkdir(exist_ok=True)
            write_atomic(path, data, mode=0o644)
            _fsync_dir(path.parent)
            _fsync_dir(path.parent.parent)
        except OSError as exc:
            raise RegistryError(f"cannot write blob {sha} under {self.directory}: {exc}") from exc
        return sha

    def read(self, sha256: str) -> bytes:
        """Return the blob's bytes after checking them against ``sha256``."""
        path = self.path(sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise NotFound(f"blob {sha256} is not in the registry at {self.directory.parent}") from None
        except OSError as exc:
            raise RegistryError(f"cannot read blob {path}: {exc}") from exc
        if hashlib.sha256(data).hexdigest() != sha256:
            raise RegistryError(f"blob {path} is corrupt (its content does not match its sha256); redeploy it")
        return data

    def size(self, sha256: str) -> int | None:
        try:
            return self.path(sha256).stat().st_size
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise RegistryError(f"cannot read blob {sha256} under {self.directory}: {exc}") from exc

    def __repr__(self) -> str:
        return f"DirectoryBlobStore({str(self.directory)!r})"


def _file_sha(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
