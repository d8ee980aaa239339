"""``airssys-web serve``: wrap an ASGI app (or the landing app) in the middleware and run it with uvicorn.

With ``workers > 1`` the supervisor spawns that many processes, which cannot inherit an app object (a host, its
threads and pools do not survive into a new process). uvicorn's config travels pickled to each of them, with a factory
for the app (:func:`app_from_options` bound to the :class:`ServeOptions` and the admin secret) that every worker calls
to build its own. Neither the options nor the secret travel in the environment, which ``serve`` leaves as it was
(but for prometheus-client's variable, below): a secret from ``--secret-file`` enters no process's environment.

Each worker runs its own host, pool and registry watcher, so a deploy reaches every worker within the watcher's
``poll_interval`` (at once on Redis, which pushes changes) plus the time to warm the new version; nothing is shared
between workers but the registry (a directory: SQLite in WAL mode and compiled artifacts, read-only once deployed;
or Redis, with the artifacts in this machine's cache) and what it keeps: secrets, KV data, the key that signs canary
cookies, and the auto-rollback counters.

Metrics with several workers use prometheus-client's multiprocess mode: ``serve`` makes the directory
(``PROMETHEUS_MULTIPROC_DIR``, or a temporary one it removes at exit) before the workers start, and marks a worker
that exits (``mark_process_dead``) so its live gauges leave the sums. Logging is configured once for the server
and every worker (``--log-format text|json``: airssys-web, the wrapped app and uvicorn alike).
"""

from __future__ import annotations

import functools
import logging
import logging.config
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import uvicorn
from starlette.types import ASGIApp

from ..errors import AirssysError
from ..lifecycle.host import AirssysHost
from ..lifecycle.registry import Registry, describe_location, is_redis_location, open_registry
from ..lifecycle.routing import ADMIN_PREFIX
from ..observability.logs import logging_config
from ..observability.metrics import mark_dead, prepare_multiprocess_dir
from ._uvicorn import ReusePortSupervisor, import_app
from .landing import landing_app
from .middleware import BODY_TIMEOUT, AirssysMiddleware
from .observe import METRICS_PATH


@dataclass(frozen=True)
class ServeOptions:
    """What a worker needs to build the served app: picklable, since it travels to each spawned worker process.

    The admin secret is not a field, so that no repr of the options (a log line, a traceback) can show it; it
    travels beside them, as :func:`app_from_options`'s second argument."""

    registry: str
    app: str | None = None
    version_header: bool = True
    poll_interval: float = 0.2
    admin_prefix: str | None = ADMIN_PREFIX
    max_upload: int = 128 * 1024 * 1024
    threads: int | None = None
    inline: bool = True
    body_timeout: float = BODY_TIMEOUT
    metrics_path: str | None = METRICS_PATH


def build_app(registry: str | Path | Registry, app: str | ASGIApp | None = None, *, version_header: bool = True,
              poll_interval: float = 0.2, threads: int | None = None, inline: bool = True,
              body_timeout: float = BODY_TIMEOUT, metrics_path: str | None = METRICS_PATH,
              **admin: Any) -> AirssysMiddleware:
    """The ASGI app ``serve`` runs: ``app`` (an object or a ``module:attr`` string) behind the middleware.

    ``threads`` caps the worker threads that run guest calls (default: :func:`~.dispatch.default_threads`);
    ``inline=False`` sends every guest call to a thread, even those measured to be short. ``body_timeout`` bounds
    the wait for the next byte of a request body (408); ``metrics_path`` is where the metrics answer (None: off).
    ``admin`` takes the middleware's admin API options (``secret``, ``admin_prefix``, ``max_upload``)."""
    holder: list[AirssysHost] = []
    if app is None:
        inner: ASGIApp = landing_app(lambda: holder[0] if holder else None)
    elif isinstance(app, str):
        inner = import_app(app)
    else:
        inner = app
    host = AirssysHost(registry, poll_interval=poll_interval, threads=threads, inline=inline)
    mw = AirssysMiddleware(inner, host=host, version_header=version_header, body_timeout=body_timeout,
                           metrics_path=metrics_path, **admin)
    holder.append(mw.host)
    return mw


def app_from_options(options: ServeOptions, secret: str | None = None) -> AirssysMiddleware:
    """The app a worker process serves, built in that process (uvicorn calls it as a factory).

    ``serve --workers`` hands uvicorn ``functools.partial(app_from_options, options, secret)``: a module-level
    function and picklable arguments, so the partial survives the trip to a spawned worker. ``secret=None``: the
    middleware reads ``AIRSSYS_SECRET`` as it does in one process."""
    return build_app(options.registry, options.app, version_header=options.version_header,
                     poll_interval=options.poll_interval, threads=options.threads, inline=options.inline,
                     body_timeout=options.body_timeout, secret=secret, admin_prefix=options.admin_prefix,
                     max_upload=options.max_upload, metrics_path=options.metrics_path)


def run(*, registry: str | Path, host: str = "127.0.0.1", port: int = 8000, app: str | None = None,
        version_header: bool = True, log_level: str = "info", workers: int = 1, threads: int | None = None,
        inline: bool = True, secret: str | None = None, admin_prefix: str | None = ADMIN_PREFIX,
        max_upload: int = 128 * 1024 * 1024, body_timeout: float = BODY_TIMEOUT,
        metrics_path: str | None = METRICS_PATH, log_format: str = "text") -> None:
    """Serve until interrupted. ``workers`` > 1 runs that many processes sharing the listening socket.

    The address printed is the one the socket is bound to (``port=0``: the port the system chose).
    ``log_format`` is ``"text"`` or ``"json"`` (one object per line) for everything the server logs."""
    if workers < 1:
        raise AirssysError(f"--workers must be at least 1, got {workers}")
    if threads is not None and threads < 1:
        raise AirssysError(f"--threads must be at least 1, got {threads}")
    if metrics_path is not None and (not metrics_path.startswith("/") or metrics_path.endswith("/")):
        raise AirssysError(f"--metrics-path must start and not end with '/', e.g. {METRICS_PATH}")
    try:
        log_config = logging_config(log_format, log_level)
    except ValueError as e:
        raise AirssysError(f"--log-format: {e}") from None
    logging.config.dictConfig(log_config)
    where = describe_location(registry)
    if workers == 1:
        asgi = build_app(registry, app, version_header=version_header, threads=threads, inline=inline,
                         body_timeout=body_timeout, secret=secret, admin_prefix=admin_prefix, max_upload=max_upload,
                         metrics_path=metrics_path)
        config = uvicorn.Config(asgi, host=host, port=port, log_level=log_level, lifespan="on",
                                log_config=log_config)
        sock = _ReusePortBinder(host, port, config.backlog, reuse_port=False)()
        click.echo(f"airssys-web serving registry {where} at {listening_url(*sock.getsockname()[:2])}", err=True)
        _run_one(uvicorn.Server(config), sock)
        return
    if app is not None:
        import_app(app)  # fail here, once, with a clear message, rather than in every worker
    open_registry(registry).close()  # likewise for a registry that cannot be opened (Redis not answering, ...)
    location = str(registry) if is_redis_location(registry) else str(Path(registry).resolve())
    options = ServeOptions(registry=location, app=app, version_header=version_header,
                           admin_prefix=admin_prefix, max_upload=max_upload, threads=threads, inline=inline,
                           body_timeout=body_timeout, metrics_path=metrics_path)
    # pickled into each worker with uvicorn's config (a spawned process): no environment variable carries them
    factory = functools.partial(app_from_options, options, secret or None)
    config = uvicorn.Config(factory, factory=True, host=host, port=port, log_level=log_level, lifespan="on",
                            workers=workers, log_config=log_config)
    directory, made = prepare_multiprocess_dir()  # before any worker starts (they inherit the variable)
    try:
        _run_workers(config, f"airssys-web serving registry {where} at {{url}} with {workers} workers",
                     on_exit=lambda pid: mark_dead(pid, directory))
    finally:
        if made:
            shutil.rmtree(directory, ignore_errors=True)


def listening_url(host: str, port: int) -> str:
    """``http://127.0.0.1:8000/`` for the address a socket is bound to (an IPv6 address in brackets)."""
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def _run_one(server: uvicorn.Server, sock: socket.socket) -> None:
    """What ``uvicorn.run`` does for one process, on a socket bound here (so the printed address is the real one)."""
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # pragma: no cover - interactive stop
        pass
    finally:
        sock.close()
    if not server.started:
        raise AirssysError("the server did not start; see the log above")


def _run_workers(config: uvicorn.Config, banner: str, on_exit: Callable[[int], None] | None = None) -> None:
    """What ``uvicorn.run`` does for ``workers > 1``, except that each worker gets a listening socket of its own.

    uvicorn shares one listener between its workers, and asyncio accepts every pending connection in one go, so
    the first worker to wake takes a whole burst (all 32 connections of a load test, measured) and the others
    idle. Sockets in one ``SO_REUSEPORT`` group are balanced by the kernel instead. They are also created with
    ``IPPROTO_TCP``: uvicorn's shared listener has ``proto=0``, which keeps asyncio from setting ``TCP_NODELAY``
    on accepted connections (every keep-alive response then waits ~40 ms for a delayed ACK; Kludex/uvicorn#3149).
    """
    binder = _ReusePortBinder(config.host, config.port, config.backlog)
    supervisor = ReusePortSupervisor(config, binder)  # binds once: an ephemeral port is fixed from here on
    supervisor.on_exit = on_exit
    click.echo(banner.format(url=listening_url(binder.host, binder.port)), err=True)
    try:
        supervisor.run()
    except KeyboardInterrupt:  # pragma: no cover - interactive stop
        pass
    finally:
        supervisor.close_pending()


class _ReusePortBinder:
    """Binds one more listening socket to the same address and port (the first bind fixes an ephemeral port).
    ``reuse_port=False`` binds a plain socket (one process: no other may share the port)."""

    def __init__(self, host: str, port: int, backlog: int, *, reuse_port: bool = True) -> None:
        self.family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.host, self.port, self.backlog, self.reuse_port = host, port, backlog, reuse_port

    def __call__(self) -> socket.socket:
        sock = socket.socket(self.family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if self.reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((self.host, self.port))
            sock.listen(self.backlog)
        except OSError as e:
            sock.close()
            raise AirssysError(f"cannot listen on {self.host}:{self.port}: {e.strerror or e}") from None
        self.port = sock.getsockname()[1]
        sock.set_inheritable(True)
        return sock
