"""The middleware's own pages beside the admin API: the Prometheus metrics and the dashboard.

``/_airssys/metrics`` answers the text exposition of the host's series without a token, as Prometheus endpoints
conventionally do (the README says how to put it behind auth). ``/_airssys/dashboard`` serves the dashboard's
three files (HTML, JS, CSS), shipped in the package next to this module: no CDN, no build step. The page logs in
with an admin API token and talks to the admin API only, so it exists only where the admin API is on.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from starlette.types import Receive, Scope, Send

from ..errors import NotFound, RequestError
from ..lifecycle.host import AirssysHost
from ..lifecycle.routing import route_matches
from .errors import send_error

METRICS_PATH = "/_airssys/metrics"
DASHBOARD_PATH = "/_airssys/dashboard"
DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboard"
#: The dashboard's files and their content types; nothing else under the path is served.
ASSETS = {"dashboard.js": "text/javascript; charset=utf-8", "dashboard.css": "text/css; charset=utf-8"}
#: Only the page's own files: no inline script, nothing from another origin.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


class MethodNotAllowed(RequestError):
    status = 405
    reason = "method not allowed"


def check_path(path: str | None, what: str) -> str | None:
    """``path`` if it can be served (starts and does not end with '/'), else ValueError naming the option."""
    if path is not None and (not path.startswith("/") or path.endswith("/") or len(path) < 2):
        raise ValueError(f"{what} must start and not end with '/', e.g. {METRICS_PATH}")
    return path


class ObservePaths:
    """Serves ``metrics_path`` and ``dashboard_path`` (either None: not served) for one host. The dashboard needs
    the admin API at ``admin_prefix`` (None: it is off, and the dashboard answers 404 saying so)."""

    def __init__(self, host: AirssysHost, *, metrics_path: str | None, dashboard_path: str | None,
                 admin_prefix: str | None) -> None:
        self.host = host
        self.metrics_path = check_path(metrics_path, "metrics_path")
        self.dashboard_path = check_path(dashboard_path, "dashboard_path")
        self.admin_prefix = admin_prefix
        #: Path prefixes answered here; the middleware checks a request against them in one call.
        self.paths = tuple(p for p in (self.metrics_path, self.dashboard_path) if p is not None)

    def claims(self, path: str) -> bool:
        """Whether :meth:`serve` answers ``path`` (the WSGI adapter asks before it hands a request over)."""
        return path == self.metrics_path or (self.dashboard_path is not None
                                             and route_matches(self.dashboard_path, path))

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Answer the request if its path is one of ours; False if it is not (the caller goes on routing)."""
        path = scope["path"]
        if path == self.metrics_path:
            await self.metrics(scope, send)
            return True
        if self.dashboard_path is not None and route_matches(self.dashboard_path, path):
            await self.dashboard(scope, send, path[len(self.dashboard_path):].lstrip("/"))
            return True
        return False

    async def metrics(self, scope: Scope, send: Send) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            await send_error(send, MethodNotAllowed("the metrics answer GET"), [(b"allow", b"GET, HEAD")])
            return
        body, content_type = await asyncio.to_thread(self.host.metrics.render)
        await _send(send, scope, 200, body, content_type, [(b"cache-control", b"no-store")])

    async def dashboard(self, scope: Scope, send: Send, name: str) -> None:
        if self.admin_prefix is None:
            await send_error(send, NotFound("the dashboard needs the admin API, which is off on this server: set "
                                            "AIRSSYS_SECRET (or serve --secret-file) and log in with a token"))
            return
        if scope["method"] not in ("GET", "HEAD"):
            await send_error(send, MethodNotAllowed("the dashboard answers GET"), [(b"allow", b"GET, HEAD")])
            return
        root = scope.get("root_path", "")
        if name in ("", "index.html"):
            page = (DASHBOARD_DIR / "index.html").read_text()
            page = page.replace("{{base}}", root + (self.dashboard_path or "")).replace(
                "{{api}}", root + self.admin_prefix)
            headers = [(b"content-security-policy", CSP.encode()), (b"cache-control", b"no-store"),
                       (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY")]
            await _send(send, scope, 200, page.encode(), "text/html; charset=utf-8", headers)
            return
        content_type = ASSETS.get(name)
        if content_type is None:
            await send_error(send, NotFound(f"no dashboard file {name!r}"))
            return
        await _send(send, scope, 200, (DASHBOARD_DIR / name).read_bytes(), content_type,
                    [(b"cache-control", b"no-cache")])


async def _send(send: Send, scope: Scope, status: int, body: bytes, content_type: str,
                headers: list[tuple[bytes, bytes]]) -> None:
    head = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()),
            (b"x-content-type-options", b"nosniff"), *headers]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})


__all__ = ["DASHBOARD_PATH", "METRICS_PATH", "ObservePaths"]
