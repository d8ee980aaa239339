"""The ASGI middleware: requests for a deployed component's route go to its guest, the rest to the wrapped app.

Mount it in any ASGI app (Starlette, FastAPI, ...)::

    app.add_middleware(AirssysMiddleware, registry="./airssys-data")

It starts the host (loads and warms the active versions, starts watching the registry) on lifespan startup, or on
the first request when the server runs no lifespan, and closes it on shutdown.

It also mounts the admin API (``airssys_web.web.admin``) under ``admin_prefix`` when a secret is configured, and
splits a route between two versions while a canary runs (a client's bucket lives in a signed cookie).

Every request passed to a component carries ``x-airssys-route: <the route it matched>`` (its mount point, from the
route table; a client's own header of that name is dropped), so a guest routes below wherever it is deployed.
Reading a request body is bounded twice: ``body_timeout`` without a byte, or the route's deadline in all, gives 408.
A component route that shadows one of the wrapped app's own routes is logged as a warning.

Observability (``airssys_web.observability``): every component request gets a request id (the client's
``x-request-id`` if well-formed, else a new one), sent back as ``x-request-id`` and passed to the guest; it is
counted in its generation's counters, which ``metrics_path`` (default ``/_airssys/metrics``, open like any
Prometheus endpoint) exposes; everything logged while it is served carries its id, component, version and route;
with an OpenTelemetry SDK installed it gets a span. ``dashboard_path`` serves the dashboard (with the admin API).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from time import perf_counter

from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import AirssysError, GuestError, NotFound
from ..lifecycle.host import AirssysHost
from ..lifecycle.registry import Registry
from ..lifecycle.routing import ADMIN_PREFIX, app_routes, route_matches, shadow_warning, shadowed_paths
from ..lifecycle.strategies import BucketCookie
from ..observability.logs import REQUEST, REQUEST_ID_HEADER, REQUEST_IDS, configure_logging
from ..observability.tracing import TRACING
from ..runtime.chain import Servable
from ..runtime.generation import Generation
from ..units import parse_duration
from .auth import SECRET_ENV, TokenAuthority, load_secret
from .errors import send_error
from .observe import DASHBOARD_PATH, METRICS_PATH, ObservePaths, check_path

log = logging.getLogger("airssys_web")

#: The request header that tells a component the route it was reached through (its mount point).
ROUTE_HEADER = b"x-airssys-route"
#: How long reading a request body may wait for the next byte before the request gets 408.
BODY_TIMEOUT = 10.0
# Framing is the server's job: whatever the guest says about these is dropped and recomputed.
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "upgrade", "content-length",
                         "proxy-connection", "te", "trailer"})


MAX_UPLOAD = 128 * 1024 * 1024


class _Bucket:
    """The client's canary bucket, read from its cookie (or newly issued) only when a split route needs it."""

    __slots__ = ("cookies", "scope", "set_cookie", "value")

    def __init__(self, cookies: BucketCookie, scope: Scope) -> None:
        self.cookies = cookies
        self.scope = scope
        self.value: int | None = None
        self.set_cookie: bytes | None = None

    def __call__(self) -> int:
        if self.value is None:
            raw = b"; ".join(v for k, v in self.scope["headers"] if k == b"cookie").decode("latin-1")
            self.value = self.cookies.read(cookie_parser(raw).get(self.cookies.name)) if raw else None
            if self.value is None:
                self.value, self.set_cookie = self.cookies.issue()
        return self.value


def check_options(registry: object, host: object, admin_prefix: str | None, body_timeout: float | str, *,
                  metrics_path: str | None = None, dashboard_path: str | None = None,
                  who: str = "AirssysMiddleware") -> float:
    """Validate the options both adapters take (the WSGI one before it makes anything); returns ``body_timeout``
    in seconds."""
    if (registry is None) == (host is None):
        raise TypeError(f"{who} needs exactly one of registry=... or host=...")
    if admin_prefix is not None and (not admin_prefix.startswith("/") or admin_prefix.endswith("/")):
        raise ValueError(f"admin_prefix must start and not end with '/', e.g. {ADMIN_PREFIX}")
    check_path(metrics_path, "metrics_path")
    check_path(dashboard_path, "dashboard_path")
    return parse_duration(body_timeout, what="body_timeout")


class AirssysMiddleware:
    """Route requests owned by deployed components to their guests; everything else falls through to ``app``.

    Give either ``registry`` (a directory, a ``redis://host:port/db`` URL, or a :class:`Registry`) or a ready
    ``host``. ``version_header`` adds
    ``x-airssys-version: NAME@VERSION`` to every component response.

    The admin API answers under ``admin_prefix`` (``None`` turns it off) if there is a ``secret`` (default: the
    ``AIRSSYS_SECRET`` environment variable); without one it answers 404: it is never open by default.
    ``max_upload`` caps the size of an uploaded ``.wasm`` in bytes. ``body_timeout`` (seconds, or a duration such
    as ``"10s"``) is how long reading a request body may wait for the next byte (408 beyond it).

    ``metrics_path`` is where the Prometheus metrics answer (``None``: nowhere), ``dashboard_path`` the dashboard
    (it needs the admin API); ``log_format="json"`` (or ``"text"``) sets up airssys-web's logging in that format
    (:func:`~airssys_web.observability.logs.configure_logging`); by default logging is left as the app set it.
    """

    def __init__(self, app: ASGIApp, registry: str | Path | Registry | None = None, *,
                 host: AirssysHost | None = None, version_header: bool = True, poll_interval: float = 0.2,
                 admin_prefix: str | None = ADMIN_PREFIX, secret: str | None = None,
                 max_upload: int = MAX_UPLOAD, body_timeout: float | str = BODY_TIMEOUT,
                 metrics_path: str | None = METRICS_PATH, dashboard_path: str | None = DASHBOARD_PATH,
                 log_format: str | None = None) -> None:
        self.body_timeout = check_options(registry, host, admin_prefix, body_timeout, metrics_path=metrics_path,
                                          dashboard_path=dashboard_path)
        if log_format is not None:
            configure_logging(log_format)
        self.app = app
        self.host = host if host is not None else AirssysHost(registry, poll_interval=poll_interval)  # type: ignore[arg-type]
        self.version_header = version_header
        self.admin_prefix = admin_prefix
        secret = secret if secret is not None else load_secret()
        self.admin: ASGIApp | None = None
        if admin_prefix is not None and secret:
            from .admin import admin_app

            self.admin = admin_app(self.host, TokenAuthority(secret), max_upload=max_upload,
                                   shadows=self.shadowed_paths)
        self.observe = ObservePaths(self.host, metrics_path=metrics_path, dashboard_path=dashboard_path,
                                    admin_prefix=admin_prefix if self.admin is not None else None)
        self._reserved = self.observe.paths
        self._tracer = TRACING.tracer
        self._new_id = REQUEST_IDS.new
        self._shadow_checked: set[tuple[str, str]] = set()
        self.host.on_swap.append(self._warn_shadowing)
        self._buckets = BucketCookie(secret or self.host.cookie_key)  # one key for every worker and host
        self._started = False
        self._start_lock: asyncio.Lock | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            if not self._started:
                await self._start()
            path = scope["path"]
            if self.admin_prefix is not None and route_matches(self.admin_prefix, path):
                await self._admin(scope, receive, send)
                return
            if self._reserved and path.startswith(self._reserved) and await self.observe.serve(scope, receive, send):
                return
            bucket = _Bucket(self._buckets, scope)
            entered = self.host.enter_route(path, bucket)
            if entered is None:
                await self.app(scope, receive, send)
                return
            gen, route = entered
            try:
                await self._serve(gen, route, scope, receive, send, bucket.set_cookie)
            finally:
                gen.leave()
        elif kind == "lifespan":
            await self._lifespan(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def claims(self, path: str) -> bool:
        """Whether a request for ``path`` is answered here (the admin API, a component route) rather than by the
        wrapped app. The WSGI adapter asks first, so that the app's own requests stay in the server's thread; a
        route that goes away in between falls through to the app as usual."""
        return ((self.admin_prefix is not None and route_matches(self.admin_prefix, path))
                or self.observe.claims(path) or self.host.match(path) is not None)

    # -- lifecycle ------------------------------------------------------------------------------------------
    async def startup(self) -> None:
        """Start the host (what lifespan startup does); for adapters that have no lifespan (WSGI). Idempotent."""
        await self._start()

    async def shutdown(self) -> None:
        """Close the host (what lifespan shutdown does). Idempotent."""
        await asyncio.to_thread(self.host.close)

    async def _start(self) -> None:
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if not self._started:
                if self.admin is None and self.admin_prefix is not None:
                    log.warning("the admin API at %s is off: no secret (set %s or pass --secret-file)",
                                self.admin_prefix, SECRET_ENV)
                TRACING.resolve()  # a provider named in the environment is loaded now, not on a request
                await asyncio.to_thread(self.host.start)
                await asyncio.to_thread(self._buckets.load)
                self._started = True

    async def _admin(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.admin is None:
            await send_error(send, NotFound("the admin API is off on this server"))
            return
        root = scope.get("root_path", "") + self.admin_prefix
        await self.admin(dict(scope, root_path=root), receive, send)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def wrapped_receive() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self._start()
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
            return message

        await self.app(scope, wrapped_receive, send)

    # -- the wrapped app's own routes -----------------------------------------------------------------------
    def shadowed_paths(self, route: str) -> list[str]:
        """The wrapped app's routes a component at ``route`` takes requests from (when the app exposes them)."""
        routes = app_routes(self.app)
        return [] if routes is None else shadowed_paths(route, routes)

    def _warn_shadowing(self, name: str, old: Generation | None, new: Generation | None) -> None:
        route = self.host.route_of(name)
        if new is None or route is None or (name, route) in self._shadow_checked:
            return
        self._shadow_checked.add((name, route))
        paths = self.shadowed_paths(route)
        if paths:
            log.warning("%s", shadow_warning(name, route, paths))

    # -- serving --------------------------------------------------------------------------------------------
    async def _serve(self, gen: Servable, route: str, scope: Scope, receive: Receive, send: Send,
                     set_cookie: bytes | None) -> None:
        started = perf_counter()
        # The guest learns its mount point from the route table's match (a client cannot spoof it), and the
        # request id: the client's if well-formed, else a new one.
        incoming = None
        raw_headers = []
        for h in scope["headers"]:
            name = h[0]
            if name == ROUTE_HEADER:
                continue
            if name == REQUEST_ID_HEADER:
                incoming = h[1]
                continue
            raw_headers.append(h)
        rid = self._new_id() if incoming is None else REQUEST_IDS.accept(incoming)
        raw_headers.append((ROUTE_HEADER, route.encode("latin-1")))
        raw_headers.append((REQUEST_ID_HEADER, rid))
        extra = list(gen.version_headers) if self.version_header else []
        extra.append((REQUEST_ID_HEADER, rid))
        if set_cookie is not None:
            extra.append((b"set-cookie", set_cookie))
        context = REQUEST.set((rid, gen, route))
        tracer = self._tracer()
        span, attached = None, None
        if tracer is not None:
            span, attached = TRACING.start_request(tracer, scope["headers"], scope["method"], scope["path"],
                                                   gen.name, gen.version, route)
        status, error = 500, None
        try:
            status = await gen.serve(dict(scope, headers=raw_headers), receive, send, extra,
                                     body_timeout=self.body_timeout)
        except AirssysError as e:  # nothing was sent: every failure gets the same clean answer, and is counted
            status, error = e.status, e
            shown = isinstance(e, GuestError) or e.status >= 500
            request_id = rid.decode()
            if shown:
                log.error("request %s %s %s failed [%s]: %s", request_id, scope["method"], scope["path"],
                          type(e).__name__, e,
                          extra={"status": e.status, "duration_ms": round((perf_counter() - started) * 1e3, 3)})
            gen.outcome(e.status, e)
            await send_error(send, e, extra, request_id=request_id if shown else None)
            return
        else:
            gen.outcome(status)
        finally:
            gen.stats.request(status, perf_counter() - started)
            if span is not None:
                TRACING.end_request(span, attached, status, error)
            REQUEST.reset(context)
