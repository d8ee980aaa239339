"""The guest author's commands: ``new``, ``build``, ``dev`` and ``call`` (one module each, registered in ``cli``).

They import their heavy parts (wasmtime, toolchains, watchfiles) inside the command, so ``airssys-web --help``
stays fast.
"""

from __future__ import annotations

from typing import NoReturn

import click

from .build import build_cmd
from .call import call_cmd
from .dev import dev_cmd
from .new import new_cmd

__all__ = ["build_cmd", "call_cmd", "dev_cmd", "fail", "new_cmd"]


def fail(message: str, code: int = 2) -> NoReturn:
    """The CLI's one-line error: ``error: ...`` on stderr, exit code 2."""
    click.echo(f"error: {message}", err=True)
    raise SystemExit(code)
