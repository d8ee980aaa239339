"""The WSGI adapter: the ASGI middleware's core, serving component routes in a Flask, Django or any WSGI app.

For Flask::

    app.wsgi_app = AirssysWSGIMiddleware(app.wsgi_app, registry="./airssys-data")

for Django, around the WSGI application (``wsgi.py``)::

    application = AirssysWSGIMiddleware(get_wsgi_application(), registry="./airssys-data")

There is one implementation of routing, pools, grants, limits, swaps, canaries, the admin API and metrics: the
:class:`~airssys_web.web.middleware.AirssysMiddleware` this adapter runs on an event loop of its own, in a thread
(``airssys-wsgi-loop``). A request goes one of two ways:

* its path belongs to the admin API or to a component (:meth:`AirssysMiddleware.claims`): it is handed to the
  core on the loop and the server's thread waits for the answer, which it then writes, streamed
  (:mod:`airssys_web.web.wsgi_bridge`);
* anything else goes straight to the wrapped WSGI app, in the server's own thread: Flask's and Django's request
  state lives in that thread, and the app pays nothing but one route-table lookup.

WSGI has no lifespan, so the core starts on the first request (that request waits for the active versions to be
loaded and warmed) and closes at interpreter exit (``atexit``) or on :meth:`AirssysWSGIMiddleware.close`.

Pre-fork servers (gunicorn, uWSGI) import the app in a master process and fork workers from it. Nothing is made
when the adapter is constructed: no thread, engine, native runtime or SQLite connection; everything is made by
the first request in the process that serves it. If a process that already served requests forks, the child
sees a new pid on its next request and starts a core of its own; the one made before the fork is left untouched
(its threads do not exist in the child, and its SQLite connections and epoll descriptors are shared with the
parent). Threaded servers (waitress, gunicorn ``gthread``) share one core per process between their threads.
"""

from __future__ import annotations

import asyncio
import atexit
import inspect
import logging
import os
import threading
from pathlib import Path
from typing import Any

from ..lifecycle.host import AirssysHost
from ..lifecycle.registry import Registry
from .middleware import AirssysMiddleware, check_options
from .wsgi_bridge import Exchange, StartResponse, WSGIApp, pass_through, request_path

log = logging.getLogger("airssys_web")

#: How long :meth:`AirssysWSGIMiddleware.close` lets requests in flight finish before it closes the host.
CLOSE_GRACE = 10.0
# Cores made in a process that has since forked: kept referenced in the child so that nothing finalizes them there.
_BEFORE_FORK: list[_Core] = []


class _Core:
    """The core of one process: the ASGI middleware and the event loop thread it runs on."""

    def __init__(self, app_options: dict[str, Any]) -> None:
        self.pid = os.getpid()
        self.middleware = AirssysMiddleware(pass_through, **app_options)
        self.loop = asyncio.new_event_loop()
        self.exchanges: set[Exchange] = set()
        self.thread = threading.Thread(target=self._run, name="airssys-wsgi-loop", daemon=True)
        self.thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self.middleware.startup(), self.loop).result()
        except BaseException:
            self.close(0.0)
            raise

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def serve(self, environ: dict[str, Any], path: str, app: WSGIApp, start_response: StartResponse) -> Any:
        exchange = Exchange(self.loop, environ, path)
        self.exchanges.add(exchange)
        try:
            return exchange.run(self.middleware, app, start_response)
        finally:
            self.exchanges.discard(exchange)  # a streamed body goes on: the exchange no longer needs the core

    def close(self, grace: float) -> None:
        """Let requests in flight finish (at most ``grace`` seconds), close the host, then stop the loop."""
        if self.loop.is_closed():
            return
        try:
            asyncio.run_coroutine_threadsafe(self._finish(grace), self.loop).result()
            # Here, not in the loop's executor: at interpreter exit (atexit) no new thread may be started.
            self.middleware.host.close()
        finally:
            for exchange in list(self.exchanges):  # a server thread still waiting for a head: wake it up
                exchange.events.put(("done", RuntimeError("airssys-web is shutting down")))
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join()
            self.loop.close()

    async def _finish(self, grace: float) -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)


class AirssysWSGIMiddleware:
    """Serve deployed components' routes (and the admin API) in a WSGI app; every other request goes to ``app``.

    Takes the options of :class:`~airssys_web.web.middleware.AirssysMiddleware` (``registry`` or ``host``,
    ``version_header``, ``poll_interval``, ``admin_prefix``, ``secret``, ``max_upload``, ``body_timeout``, ...),
    checked here and used when the first request starts the core in the process that serves it.

    Under a pre-fork server pass ``registry`` as a directory: a :class:`Registry` object or an
    :class:`AirssysHost` made in the master process holds handles (SQLite connections, engines, threads) that do
    not survive a fork, and using one in another process than the one that made it raises ``RuntimeError``.
    """

    def __init__(self, app: WSGIApp, registry: str | Path | Registry | None = None, *,
                 host: AirssysHost | None = None, **options: Any) -> None:
        try:
            bound = inspect.signature(AirssysMiddleware).bind(app, registry, host=host, **options)
        except TypeError as e:
            raise TypeError(f"AirssysWSGIMiddleware: {e}") from None
        bound.apply_defaults()
        check_options(registry, host, bound.arguments["admin_prefix"], bound.arguments["body_timeout"],
                      metrics_path=bound.arguments["metrics_path"], dashboard_path=bound.arguments["dashboard_path"],
                      who="AirssysWSGIMiddleware")
        self.app = app
        self._options = {k: v for k, v in bound.arguments.items() if k != "app"}
        # Objects the caller made belong to the process that made them (see the class docstring).
        self._made_in = os.getpid() if host is not None or not isinstance(registry, (str, Path)) else None
        self._core: _Core | None = None
        self._lock = threading.Lock()
        self._at_exit = False

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Any:
        core = self._core
        if core is None or core.pid != os.getpid():
            core = self._start()
        path = request_path(environ)
        if not core.middleware.claims(path):
            return self.app(environ, start_response)
        return core.serve(environ, path, self.app, start_response)

    @property
    def middleware(self) -> AirssysMiddleware | None:
        """The ASGI core serving this process (None until the first request)."""
        core = self._core
        return core.middleware if core is not None and core.pid == os.getpid() else None

    def start(self) -> AirssysMiddleware:
        """Start the core in this process now (the first request does it otherwise); returns it. Idempotent."""
        return self._start().middleware

    def _start(self) -> _Core:
        with self._lock:
            pid = os.getpid()
            core = self._core
            if core is not None and core.pid != pid:
                log.info("process %d was forked from %d, which served requests: starting afresh", pid, core.pid)
                _BEFORE_FORK.append(core)
                core = self._core = None
            if core is None:
                if self._made_in is not None and self._made_in != pid:
                    raise RuntimeError(
                        f"AirssysWSGIMiddleware was given a ready {'host' if self._options.get('host') else 'registry'}"
                        f" made in process {self._made_in}, and this is process {pid} (a forked worker?): objects "
                        "made before a fork cannot be used after it; pass registry= as a directory path, so that "
                        "each worker opens its own")
                core = self._core = _Core(self._options)
                if not self._at_exit:
                    atexit.register(self.close)
                    self._at_exit = True
            return core

    def close(self, grace: float = CLOSE_GRACE) -> None:
        """Close the core of this process: requests in flight get ``grace`` seconds to finish, then the host closes
        (generations, runtime, registry watcher) and the loop thread ends. Idempotent; a later request starts a new
        core. Runs at interpreter exit too."""
        with self._lock:
            core, pid = self._core, os.getpid()
            if core is None or core.pid != pid:
                return
            self._core = None
        core.close(grace)
