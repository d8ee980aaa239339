"""Every use of uvicorn beyond its documented API, in one module, checked against the installed uvicorn.

``serve`` needs two things uvicorn does not promise to keep:

* **The worker supervisor.** ``uvicorn.supervisors.Multiprocess`` starts, restarts and health-checks worker
  processes, and every process it creates reads ``self.sockets`` at that moment (``init_processes``,
  ``restart_all``, ``keep_subprocess_alive``, ``handle_ttin``). :class:`ReusePortSupervisor` turns that attribute
  into a property that binds a fresh ``SO_REUSEPORT`` socket per process (why: :mod:`.serve`).
* **``module:attr`` loading.** ``uvicorn.importer.import_from_string``, whose error says exactly what was not found.

:func:`missing_internals` says what of this the installed uvicorn lacks; ``serve --workers`` refuses to start with
that list rather than fail inside a worker, and ``tests/test_uvicorn.py`` fails on an upgrade that breaks it. The
range that passed is pinned in ``pyproject.toml`` (:data:`TESTED`): widen both after running the tests.
"""

from __future__ import annotations

import inspect
import socket
from collections.abc import Callable

import uvicorn
from starlette.types import ASGIApp
from uvicorn.importer import ImportFromStringError, import_from_string
from uvicorn.supervisors import Multiprocess

from ..errors import AirssysError

__all__ = ["TESTED", "ReusePortSupervisor", "import_app", "missing_internals"]

#: The uvicorn versions this module was tested with (the pin in pyproject.toml).
TESTED = ">=0.55,<0.56"
#: The supervisor methods that create a process, each reading ``self.sockets`` when it does.
_CREATORS = ("init_processes", "restart_all", "keep_subprocess_alive", "handle_ttin")


def missing_internals(supervisor: type = Multiprocess) -> list[str]:
    """What this module relies on that the installed uvicorn's ``supervisor`` does not have (empty: all there)."""
    missing = []
    params = list(inspect.signature(supervisor).parameters)
    if params[:2] != ["config", "sockets"]:
        missing.append(f"Multiprocess(config, sockets) (it takes {', '.join(params)})")
    for name in _CREATORS:
        method = getattr(supervisor, name, None)
        if method is None:
            missing.append(f"Multiprocess.{name}")
        elif "self.sockets" not in inspect.getsource(method):
            missing.append(f"Multiprocess.{name} reading self.sockets for each process it starts")
    return missing


def check_internals(supervisor: type = Multiprocess) -> None:
    """Raise AirssysError naming what the installed uvicorn lacks, and the versions that work."""
    missing = missing_internals(supervisor)
    if missing:
        raise AirssysError(f"uvicorn {uvicorn.__version__} lacks what `serve --workers` uses ({'; '.join(missing)}); "
                           f"install uvicorn{TESTED}")


def import_app(path: str) -> ASGIApp:
    """The app at ``module:attr`` (``--app``); AirssysError saying what was not found."""
    try:
        app: ASGIApp = import_from_string(path)
    except ImportFromStringError as e:
        raise AirssysError(f"--app {path!r}: {e}") from None
    return app


class ReusePortSupervisor(Multiprocess):
    """uvicorn's worker supervisor (restarts, signals, health checks), handing every process it starts a fresh
    socket from ``bind`` (one more of a ``SO_REUSEPORT`` group). The parent's copy is closed once the process is
    started (spawned children inherit their descriptors at exec), so a dead worker's socket leaves the group with it.
    ``on_exit(pid)`` is told of every worker that exited and was replaced or dropped (metrics mark it dead).
    """

    on_exit: Callable[[int], None] | None = None

    def __init__(self, config: uvicorn.Config, bind: Callable[[], socket.socket]) -> None:
        check_internals()
        self._bind = bind
        self._pending: list[socket.socket] = []
        bind().close()  # fail early, in the parent, if the address is taken (and fix an ephemeral port)
        super().__init__(config, sockets=[])

    @property
    def sockets(self) -> list[socket.socket]:  # read by uvicorn once per process it creates
        self.close_pending()
        sock = self._bind()
        self._pending.append(sock)
        return [sock]

    @sockets.setter
    def sockets(self, value: list[socket.socket]) -> None:
        pass  # uvicorn's __init__ stores the (empty) shared list; every process gets its own socket instead

    def close_pending(self) -> None:
        while self._pending:
            self._pending.pop().close()

    def init_processes(self) -> None:
        super().init_processes()
        self.close_pending()

    def restart_all(self) -> None:
        before = self._pids()
        super().restart_all()
        self.close_pending()
        self._exited(before)

    def keep_subprocess_alive(self) -> None:
        before = self._pids()
        super().keep_subprocess_alive()
        self.close_pending()
        self._exited(before)

    def handle_ttou(self) -> None:
        before = self._pids()
        super().handle_ttou()
        self._exited(before)

    def _pids(self) -> set[int]:
        return {p.pid for p in self.processes if p.pid is not None}

    def _exited(self, before: set[int]) -> None:
        if self.on_exit is not None:
            for pid in before - self._pids():
                self.on_exit(pid)
