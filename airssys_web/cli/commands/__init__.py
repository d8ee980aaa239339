"""The commands of ``airssys-web``, one module per family: ``lifecycle`` (deploy, update, promote, rollback, history,
status, list, token) and the guest author's ``new``, ``build``, ``dev`` and ``call``; ``options`` and ``output`` are
what they share.

Each imports its heavy parts (wasmtime, httpx, toolchains, watchfiles, rich) inside the command, so
``airssys-web --help`` stays fast, and raises its refusals for the CLI's error boundary (``airssys_web.cli``).
"""

from __future__ import annotations

from .build import build_cmd
from .call import call_cmd
from .dev import dev_cmd
from .new import new_cmd

__all__ = ["build_cmd", "call_cmd", "dev_cmd", "new_cmd"]
