"""Atomic file writes: a reader sees the old file or the whole new one, never a torn one.

The data goes to a temporary file in the destination's directory (``.tmp-*.part``, created 0600 by ``mkstemp``)
which is then renamed over the destination; on any failure the temporary file is removed. ``durable`` also
fsyncs the data before the rename (registry blobs, artifacts, secrets), which build outputs can do without.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@contextmanager
def _replacing(path: Path, *, durable: bool, mode: int | None) -> Iterator[BinaryIO]:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            if mode is not None:
                os.fchmod(f.fileno(), mode)
            yield f
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: Path, data: bytes, *, durable: bool = True, mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` in one rename; ``mode`` overrides mkstemp's 0600."""
    with _replacing(path, durable=durable, mode=mode) as f:
        f.write(data)


#: Mode for files handed to the user (built components): readable by others, like a compiler's output.
PUBLIC_MODE = 0o644


def copy_atomic(source: Path, dest: Path, *, durable: bool = False, mode: int | None = PUBLIC_MODE) -> None:
    """Replace ``dest`` with a copy of ``source`` in one rename (streamed: components can be large)."""
    with _replacing(dest, durable=durable, mode=mode) as f, source.open("rb") as src:
        shutil.copyfileobj(src, f)
